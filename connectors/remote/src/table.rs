//! The table provider for one remote dataset.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::pushdown::{RawColumns, filter_to_sql, is_pushable, placeholder_position, pushable_sql, quote_ident};
use crate::scan::RemoteScanExec;
use crate::source::RemoteSource;

/// A dataset served by a remote connector.
#[derive(Debug)]
pub struct RemoteTable {
    source: Arc<RemoteSource>,
    /// Table name at the connector.
    remote_table: String,
    schema: SchemaRef,
    raw_columns: RawColumns,
    /// Row policy applied at the connector before anything else.
    mandatory: Option<Expr>,
    /// Whether caller filters may be pushed to the connector at all.
    pushdown: bool,
}

impl RemoteTable {
    /// The connector table `remote_table` of `source`, with the schema the connector advertised.
    pub fn new(source: Arc<RemoteSource>, remote_table: impl Into<String>, schema: SchemaRef) -> Self {
        Self { source, remote_table: remote_table.into(), schema, raw_columns: None, mandatory: None, pushdown: true }
    }

    /// Whether caller filters may be pushed to the connector (the default).
    /// With `false` every filter is reported `Unsupported` and evaluated in
    /// the gateway; the row policy ([`RemoteTable::with_mandatory_filter`])
    /// is still applied at the connector. Pushdown never changes an answer,
    /// so this is for measuring and for differential tests.
    pub fn with_pushdown(mut self, enabled: bool) -> Self {
        self.pushdown = enabled;
        self
    }

    /// The SQL a caller filter is pushed as, or `None` if it stays in the
    /// gateway (see the pushdown rules in [`crate::pushable_sql`]).
    fn pushed(&self, filter: &Expr) -> Option<String> {
        if !self.pushdown {
            return None;
        }
        pushable_sql(filter, &self.raw_columns, &self.schema)
    }

    /// Restricts pushed predicates to these columns (the others are filtered in the gateway).
    pub fn with_raw_columns(mut self, columns: impl IntoIterator<Item = String>) -> Self {
        self.raw_columns = Some(columns.into_iter().collect());
        self
    }

    /// A row policy (row filters, retention) that the connector applies to
    /// every scan of this table, whatever the caller's query. It must be
    /// pushable (see [`is_pushable`] with all columns allowed); otherwise
    /// scans fail rather than return rows the caller may not see.
    pub fn with_mandatory_filter(mut self, filter: Option<Expr>) -> Self {
        self.mandatory = filter;
        self
    }

    /// How many placeholders the row policy has: `$1` to `$n`, each bound
    /// per scan. An error if they are not numbered from 1 without gaps.
    fn placeholders(&self) -> Result<usize> {
        let Some(mandatory) = &self.mandatory else { return Ok(0) };
        let mut positions = std::collections::BTreeSet::new();
        mandatory.apply(|e| {
            if let Expr::Placeholder(p) = e {
                positions.insert(placeholder_position(&p.id).unwrap_or(0));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        let n = positions.len();
        if positions.iter().copied().eq(1..=n) {
            Ok(n)
        } else {
            Err(datafusion::error::DataFusionError::Plan(
                "the row policy's placeholders must be $1 to $n without gaps".to_string(),
            ))
        }
    }

    fn remote_scan(&self, sql: String, schema: SchemaRef) -> Result<RemoteScanExec> {
        Ok(RemoteScanExec::with_placeholders(Arc::clone(&self.source), sql, self.placeholders()?, schema))
    }

    /// The source serving this table.
    pub fn source(&self) -> &Arc<RemoteSource> {
        &self.source
    }

    /// Builds the SQL sent to the connector for a scan. Every filter must be
    /// pushable (it fails otherwise: a filter is never dropped).
    pub fn scan_sql(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<(String, SchemaRef)> {
        let (columns, schema) = match projection {
            Some(indices) => {
                let fields: Vec<_> = indices.iter().map(|&i| self.schema.field(i).clone()).collect();
                let names: Vec<String> = fields.iter().map(|f| quote_ident(f.name())).collect();
                (names, Arc::new(Schema::new(fields)))
            }
            None => (self.schema.fields().iter().map(|f| quote_ident(f.name())).collect(), Arc::clone(&self.schema)),
        };
        let select = if columns.is_empty() { "1 AS \"__row\"".to_string() } else { columns.join(", ") };
        let mut sql = format!("SELECT {select} FROM {}", quote_ident(&self.remote_table));
        let mut pushed: Vec<String> = Vec::with_capacity(filters.len() + 1);
        if let Some(mandatory) = &self.mandatory {
            if !is_pushable(mandatory, &None) {
                return Err(datafusion::error::DataFusionError::Plan(
                    "row policy cannot be evaluated at the source; refusing to scan".to_string(),
                ));
            }
            pushed.push(filter_to_sql(mandatory)?);
        }
        for filter in filters {
            // A filter that cannot be written is never dropped silently
            // (the caller would get rows it filtered out).
            let sql = self.pushed(filter).ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(
                    "a filter the connector cannot evaluate exactly reached the remote scan".to_string(),
                )
            })?;
            pushed.push(sql);
        }
        if !pushed.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&pushed.join(" AND "));
        }
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        Ok((sql, schema))
    }
}

#[async_trait]
impl TableProvider for RemoteTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if self.pushed(f).is_some() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // DataFusion may simplify a filter again after this table reported it
        // `Exact` (`x IN (NULL, a)` becomes `NULL OR x = a`); a filter that no
        // longer has an exact form is evaluated here, above the remote scan.
        let (pushed, residual): (Vec<Expr>, Vec<Expr>) =
            filters.iter().cloned().partition(|f| self.pushed(f).is_some());
        let Some(residual) = conjunction(residual) else {
            let (sql, schema) = self.scan_sql(projection, &pushed, limit)?;
            return Ok(Arc::new(self.remote_scan(sql, schema)?));
        };
        let residual = residual
            .transform(|e| {
                Ok(match e {
                    Expr::Column(c) if c.relation.is_some() => {
                        Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                    }
                    other => Transformed::no(other),
                })
            })?
            .data;
        let mut columns: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let wanted = columns.len();
        for column in residual.column_refs() {
            let index = self.schema.index_of(&column.name)?;
            if !columns.contains(&index) {
                columns.push(index);
            }
        }
        // The limit applies after the residual filter, so it stays here too.
        let (sql, schema) = self.scan_sql(Some(&columns), &pushed, None)?;
        let scan = Arc::new(self.remote_scan(sql, Arc::clone(&schema))?);
        let predicate = state.create_physical_expr(residual, &DFSchema::try_from(schema.as_ref().clone())?)?;
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
        if columns.len() > wanted {
            let keep: Vec<(Arc<dyn PhysicalExpr>, String)> = (0..wanted)
                .map(|i| {
                    let name = schema.field(i).name().clone();
                    (Arc::new(PhysicalColumn::new(&name, i)) as Arc<dyn PhysicalExpr>, name)
                })
                .collect();
            plan = Arc::new(ProjectionExec::try_new(keep, plan)?);
        }
        if let Some(limit) = limit {
            plan = Arc::new(GlobalLimitExec::new(plan, 0, Some(limit)));
        }
        Ok(plan)
    }
}
