//! The table provider for one remote dataset.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

use crate::pushdown::{RawColumns, filter_to_sql, is_pushable, quote_ident};
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
}

impl RemoteTable {
    /// The connector table `remote_table` of `source`, with the schema the connector advertised.
    pub fn new(source: Arc<RemoteSource>, remote_table: impl Into<String>, schema: SchemaRef) -> Self {
        Self { source, remote_table: remote_table.into(), schema, raw_columns: None, mandatory: None }
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

    /// The source serving this table.
    pub fn source(&self) -> &Arc<RemoteSource> {
        &self.source
    }

    /// Builds the SQL sent to the connector for a scan.
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
        for filter in filters.iter().filter(|f| is_pushable(f, &self.raw_columns)) {
            pushed.push(filter_to_sql(filter)?);
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
                if is_pushable(f, &self.raw_columns) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (sql, schema) = self.scan_sql(projection, filters, limit)?;
        Ok(Arc::new(RemoteScanExec::new(Arc::clone(&self.source), sql, schema)))
    }
}
