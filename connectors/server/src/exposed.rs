//! A table restricted to the columns a source chose to expose.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;

/// Exposes a subset of an inner table's columns; the rest do not exist for
/// callers (they cannot be selected, filtered on, or seen in metadata).
#[derive(Debug)]
pub struct ExposedTable {
    inner: Arc<dyn TableProvider>,
    /// For each exposed column, its index in the inner schema.
    indices: Vec<usize>,
    schema: SchemaRef,
}

impl ExposedTable {
    /// Restricts `inner` to `columns` (in that order). Fails naming any column
    /// the inner table does not have.
    pub fn try_new(inner: Arc<dyn TableProvider>, columns: &[String]) -> Result<Self> {
        let inner_schema = inner.schema();
        let mut indices = Vec::with_capacity(columns.len());
        let mut missing = Vec::new();
        for column in columns {
            match inner_schema.index_of(column) {
                Ok(i) => indices.push(i),
                Err(_) => missing.push(column.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(DataFusionError::Plan(format!(
                "configured column(s) {} not found in the source (it has: {})",
                missing.join(", "),
                inner_schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
        let fields: Vec<_> = indices.iter().map(|&i| inner_schema.field(i).clone()).collect();
        Ok(Self { inner, indices, schema: Arc::new(Schema::new(fields)) })
    }
}

#[async_trait]
impl TableProvider for ExposedTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Filters only reference exposed columns (the planner resolved them
        // against our schema), and exposed names are the inner names.
        let mapped: Vec<usize> = match projection {
            Some(p) => p.iter().map(|&i| self.indices[i]).collect(),
            None => self.indices.clone(),
        };
        self.inner.scan(state, Some(&mapped), filters, limit).await
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
}
