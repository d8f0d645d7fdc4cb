//! What one principal may see of one dataset, in the form the gateway needs
//! to build the remote scan and the secure view.

use chrono::{Months, NaiveDate};
use creditgate_ident::DatasetName;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::Expr;
use serde::Serialize;

use crate::PolicyError;
use crate::masks::Mask;
use crate::model::{ColumnClass, NegativeRecords, RowFilter, SubjectKeys};
use crate::predicate::date32;

/// One granted column and how it is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GrantedColumn {
    /// Column name.
    pub name: String,
    /// Its class.
    pub class: ColumnClass,
    /// The mask applied in the secure view.
    pub mask: Mask,
}

/// The access one principal has to one dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DatasetGrant {
    /// `source.table`.
    pub dataset: DatasetName,
    /// Granted columns, sorted by name (the secure view uses the source's
    /// column order). Columns not listed do not exist for the caller.
    pub columns: Vec<GrantedColumn>,
    /// Row filters of the rule (ANDed), over raw columns.
    #[serde(serialize_with = "row_filter_sql")]
    pub row_filters: Vec<RowFilter>,
    /// Retention rule, for negative-record datasets.
    pub negative: Option<NegativeRecords>,
    /// Dispute-flag column (always among `columns`, mask `none`).
    pub dispute_column: Option<String>,
    /// Subject-key columns of the dataset.
    pub subject_keys: SubjectKeys,
    /// The dataset's record-date column, if it has one (see
    /// [`crate::Dataset::date_column`]).
    pub date_column: Option<String>,
}

fn row_filter_sql<S: serde::Serializer>(filters: &[RowFilter], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(filters.iter().map(|f| f.sql.as_str()))
}

impl DatasetGrant {
    /// The granted column `name`, if any.
    pub fn column(&self, name: &str) -> Option<&GrantedColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The first day whose records are still retained on `today`: `today`
    /// minus the retention period in calendar years (29 February maps to
    /// 28 February). `None` for datasets without negative records.
    pub fn retention_cutoff(&self, today: NaiveDate) -> Result<Option<NaiveDate>, PolicyError> {
        let Some(negative) = &self.negative else {
            return Ok(None);
        };
        let months = negative.retention_years.checked_mul(12).map(Months::new);
        let cutoff = months.and_then(|m| today.checked_sub_months(m)).ok_or_else(|| PolicyError::Retention {
            dataset: self.dataset.clone(),
            reason: format!("{today} minus {} years is out of range", negative.retention_years),
        })?;
        Ok(Some(cutoff))
    }

    /// The mandatory row predicate the connector applies before anything
    /// else: the AND of the rule's row filters and, for negative-record
    /// datasets, the retention rule
    /// `end_date IS NULL OR end_date >= <today − retention years>` (a record
    /// whose event has not ended stays; one that ended more than the
    /// retention period ago is gone). `None` when nothing restricts rows.
    ///
    /// Only plain comparisons of raw columns with literals appear (dates as
    /// `Date32` literals), so any connector can evaluate it exactly.
    pub fn row_predicate(&self, today: NaiveDate) -> Result<Option<Expr>, PolicyError> {
        let mut parts: Vec<Expr> = self.row_filters.iter().map(|f| f.expr.clone()).collect();
        if let (Some(negative), Some(cutoff)) = (&self.negative, self.retention_cutoff(today)?) {
            let end = Expr::Column(Column::from_name(negative.end_date.clone()));
            let cutoff = Expr::Literal(ScalarValue::Date32(Some(date32(cutoff))), None);
            parts.push(end.clone().is_null().or(end.gt_eq(cutoff)));
        }
        Ok(parts.into_iter().reduce(Expr::and))
    }

    /// The predicate that keeps only records dated within a consent's data
    /// date range: `date_column >= from AND date_column <= to` (inclusive
    /// bounds; an open bound adds no comparison). A record whose date is NULL
    /// is not known to lie in the range: the comparison is NULL, so the
    /// source drops it. `Ok(None)` when both bounds are open.
    ///
    /// Like [`DatasetGrant::row_predicate`] it compares a raw column with
    /// `Date32` literals only, so it can be part of the connector's mandatory
    /// predicate.
    ///
    /// Errors: [`PolicyError::NoRecordDate`] when a bound is given but the
    /// dataset has no record-date column (the range cannot be applied, so the
    /// dataset must not be read).
    pub fn date_range_predicate(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Option<Expr>, PolicyError> {
        if from.is_none() && to.is_none() {
            return Ok(None);
        }
        let Some(column) = &self.date_column else {
            return Err(PolicyError::NoRecordDate { dataset: self.dataset.clone() });
        };
        let date = || Expr::Column(Column::from_name(column.clone()));
        let literal = |d: NaiveDate| Expr::Literal(ScalarValue::Date32(Some(date32(d))), None);
        let mut parts = Vec::with_capacity(2);
        if let Some(from) = from {
            parts.push(date().gt_eq(literal(from)));
        }
        if let Some(to) = to {
            parts.push(date().lt_eq(literal(to)));
        }
        Ok(parts.into_iter().reduce(Expr::and))
    }

    /// Granted columns shown unmasked: the only columns on which a raw
    /// user predicate may be pushed to the source.
    pub fn raw_columns(&self) -> Vec<String> {
        self.columns.iter().filter(|c| c.mask == Mask::None).map(|c| c.name.clone()).collect()
    }
}
