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

use crate::source::RemoteSource;

/// Runs one SQL query on a connector and streams its result.
#[derive(Debug)]
pub struct RemoteScanExec {
    source: Arc<RemoteSource>,
    sql: String,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RemoteScanExec {
    /// A scan producing `schema` by running `sql` on `source`.
    pub fn new(source: Arc<RemoteSource>, sql: String, schema: SchemaRef) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        Self { source, sql, schema, properties }
    }

    /// The SQL sent to the source.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The same scan running `sql` instead (a cached plan bound to a new
    /// subject key; see the gateway's lookup fast path).
    pub fn with_sql(&self, sql: String) -> Self {
        Self {
            source: Arc::clone(&self.source),
            sql,
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
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
            let stream = self.source.query(self.sql.clone(), wire).map(move |item| {
                item.and_then(|batch| {
                    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                    Ok(RecordBatch::try_new_with_options(Arc::clone(&empty), vec![], &options)?)
                })
            });
            return Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), stream)));
        }
        Ok(self.source.query(self.sql.clone(), Arc::clone(&self.schema)))
    }
}
