//! The execution node that streams a remote query.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::StreamExt;

use crate::source::{RemoteSource, Statement};

/// Runs one SQL query on a connector and streams its result.
///
/// A scan whose SQL has placeholders (`$1`, … from a row policy with
/// [`crate::RemoteTable::with_mandatory_filter`] holding `Expr::Placeholder`)
/// runs only with its values bound ([`RemoteScanExec::with_parameters`]), as
/// a prepared statement at the connector.
#[derive(Debug)]
pub struct RemoteScanExec {
    source: Arc<RemoteSource>,
    sql: String,
    /// How many placeholders the SQL has.
    placeholders: usize,
    /// Their values, one row.
    parameters: Option<RecordBatch>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RemoteScanExec {
    /// A scan producing `schema` by running `sql` on `source`.
    pub fn new(source: Arc<RemoteSource>, sql: String, schema: SchemaRef) -> Self {
        Self::with_placeholders(source, sql, 0, schema)
    }

    /// A scan whose `sql` has `placeholders` placeholders, `$1` to `$n`.
    pub fn with_placeholders(source: Arc<RemoteSource>, sql: String, placeholders: usize, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self { source, sql, placeholders, parameters: None, schema, properties }
    }

    /// The SQL sent to the source.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many placeholders its SQL has.
    pub fn placeholders(&self) -> usize {
        self.placeholders
    }

    /// The same scan with `parameters` (one row, a column per placeholder)
    /// bound: a kept plan run for a new subject key (the gateway's lookup
    /// fast path). The values travel as values, never inside the SQL.
    pub fn with_parameters(&self, parameters: RecordBatch) -> Self {
        Self {
            source: Arc::clone(&self.source),
            sql: self.sql.clone(),
            placeholders: self.placeholders,
            parameters: Some(parameters),
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
        }
    }

    fn statement(&self) -> Result<Statement> {
        match (&self.parameters, self.placeholders) {
            (None, 0) => Ok(Statement::Text(self.sql.clone())),
            (Some(parameters), n) if parameters.num_columns() == n && parameters.num_rows() == 1 => {
                Ok(Statement::Prepared { sql: self.sql.clone(), parameters: parameters.clone() })
            }
            (_, n) => Err(datafusion::error::DataFusionError::Internal(format!(
                "a remote scan with {n} placeholders ran without one row of {n} values"
            ))),
        }
    }
}

impl DisplayAs for RemoteScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        // The SQL may carry literal values; plans show only the source.
        write!(f, "RemoteScanExec: source={}", self.source.name())
    }
}

impl ExecutionPlan for RemoteScanExec {
    fn name(&self) -> &str {
        "RemoteScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if self.schema.fields().is_empty() {
            // Row count only (e.g. COUNT(*)): the connector sends one constant
            // column and we keep just the row counts.
            let wire = Arc::new(Schema::new(vec![Field::new("__row", DataType::Int64, false)]));
            let empty = Arc::clone(&self.schema);
            let stream = self.source.query(self.statement()?, wire).map(move |item| {
                item.and_then(|batch| {
                    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                    Ok(RecordBatch::try_new_with_options(Arc::clone(&empty), vec![], &options)?)
                })
            });
            return Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream)));
        }
        Ok(self.source.query(self.statement()?, Arc::clone(&self.schema)))
    }
}
