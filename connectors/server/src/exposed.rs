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
    /// The inner table writes pushed filters as SQL (SQLite): a filter with
    /// a string literal holding a backslash is kept in the connector.
    writes_sql: bool,
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
        Ok(Self { inner, indices, schema: Arc::new(Schema::new(fields)), writes_sql: false })
    }

    /// For an inner table that writes pushed filters into SQL for a
    /// database (SQLite): filters with a string literal holding a backslash
    /// are evaluated by the connector instead. The SQL writer (sqlparser)
    /// takes a quote after a backslash as already escaped and leaves it
    /// single, so `x\' OR 1=1 --` would end the literal early and run the
    /// rest as SQL in the database.
    pub fn writing_sql(mut self) -> Self {
        self.writes_sql = true;
        self
    }
}

/// Whether `expr` holds a string literal with a backslash.
fn has_backslash_text(expr: &Expr) -> bool {
    use datafusion::common::ScalarValue;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    let mut found = false;
    let _ = expr.apply(|e| {
        if let Expr::Literal(
            ScalarValue::Utf8(Some(text)) | ScalarValue::LargeUtf8(Some(text)) | ScalarValue::Utf8View(Some(text)),
            _,
        ) = e
            && text.contains('\\')
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
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
        if !self.writes_sql {
            return self.inner.supports_filters_pushdown(filters);
        }
        // Ask the inner table only about the filters it may be given.
        let safe: Vec<&Expr> = filters.iter().copied().filter(|f| !has_backslash_text(f)).collect();
        let mut answers = self.inner.supports_filters_pushdown(&safe)?.into_iter();
        filters
            .iter()
            .map(|f| {
                if has_backslash_text(f) {
                    Ok(TableProviderFilterPushDown::Unsupported)
                } else {
                    answers.next().ok_or_else(|| {
                        DataFusionError::Internal("the inner table answered for fewer filters than asked".into())
                    })
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field};
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::{col, lit};

    /// An inner table that would push every filter.
    #[derive(Debug)]
    struct PushesAll(MemTable);

    #[async_trait]
    impl TableProvider for PushesAll {
        fn schema(&self) -> SchemaRef {
            self.0.schema()
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
            self.0.scan(state, projection, filters, limit).await
        }
        fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
            Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
        }
    }

    #[test]
    fn a_table_writing_sql_keeps_backslash_strings_in_the_connector() {
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)]));
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(vec!["a"]))]).expect("batch");
        let inner = || {
            Arc::new(PushesAll(MemTable::try_new(Arc::clone(&schema), vec![vec![batch.clone()]]).expect("mem")))
                as Arc<dyn TableProvider>
        };
        let columns = vec!["name".to_string()];
        let injected = col("name").eq(lit("x\\' OR 1=1 --"));
        let plain = col("name").eq(lit("it's"));
        let nested = col("name").eq(lit("a")).or(col("name").like(lit("a\\%")));
        let guarded = ExposedTable::try_new(inner(), &columns).expect("exposed").writing_sql();
        let answers = guarded.supports_filters_pushdown(&[&injected, &plain, &nested]).expect("answers");
        assert_eq!(
            answers,
            vec![
                TableProviderFilterPushDown::Unsupported,
                TableProviderFilterPushDown::Exact,
                TableProviderFilterPushDown::Unsupported
            ]
        );
        // Negative control: without the guard the inner table's answer stands.
        let open = ExposedTable::try_new(inner(), &columns).expect("exposed");
        let answers = open.supports_filters_pushdown(&[&injected, &plain]).expect("answers");
        assert_eq!(answers, vec![TableProviderFilterPushDown::Exact; 2]);
    }
}
