//! Prepared statements of the connector: each statement's plan made once and
//! reused with new parameter values.
//!
//! The gateway sends the same few statements (one per dataset it reads for a
//! lookup) with a new subject key each time. A statement is parsed and
//! planned once, with its `$1`, `$2`, … placeholders, and kept here
//! (bounded, least recently used out). An execution binds the values into
//! the kept plan (`LogicalPlan::with_param_values`: values, never SQL) and
//! makes the physical plan:
//!
//! - over file tables (Parquet, CSV) the kept plan is already optimized, so
//!   an execution only builds the physical plan: what the file scan prunes
//!   with (statistics, page index, bloom filters) is decided from the bound
//!   value when the scan opens, not by the logical optimizer;
//! - over database and SQLite tables the optimizer runs after binding,
//!   because what such a table pushes down into its SQL depends on the value
//!   (a placeholder is never pushed: the database would scan the table).
//!
//! Nothing here depends on the caller: the plan is the statement's, and the
//! connector's tables are the same for every caller it admits.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use creditgate_flight::engine::read_only_sql_options;

use crate::error::{ConnectorError, from_datafusion};

/// Most statements the connector keeps planned.
pub const MAX_STATEMENTS: usize = 1024;

/// One planned statement.
#[derive(Debug)]
pub(crate) struct Planned {
    /// As planned from the text, placeholders unbound.
    logical: LogicalPlan,
    /// Optimized with the placeholders still in it; only for statements
    /// whose every table is a file table (see the module docs).
    optimized: Option<LogicalPlan>,
    /// The type of each placeholder, `$1` first (`Utf8` where nothing says).
    parameter_types: Vec<DataType>,
    /// The schema of its results.
    schema: SchemaRef,
}

impl Planned {
    /// The schema of one row of parameters: `$1`, `$2`, … with their types.
    pub(crate) fn parameter_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .parameter_types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("${}", i + 1), t.clone(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The schema of its results.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// Counts of the statement cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatementCounts {
    /// Statements planned from text.
    pub planned: u64,
    /// Executions that reused a kept plan.
    pub reused: u64,
}

/// The connector's kept statements.
pub(crate) struct Statements {
    kept: Mutex<lru::LruCache<String, Arc<Planned>>>,
    /// Tables whose pushdown does not depend on the values (file tables).
    value_independent: HashSet<String>,
    planned: AtomicU64,
    reused: AtomicU64,
}

impl std::fmt::Debug for Statements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statements").finish_non_exhaustive()
    }
}

impl Statements {
    /// An empty cache; `file_tables` are the connector's Parquet and CSV tables.
    pub(crate) fn new(file_tables: impl IntoIterator<Item = String>) -> Statements {
        let capacity = NonZeroUsize::new(MAX_STATEMENTS).unwrap_or(NonZeroUsize::MIN);
        Statements {
            kept: Mutex::new(lru::LruCache::new(capacity)),
            value_independent: file_tables.into_iter().collect(),
            planned: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        }
    }

    /// How often statements were planned and reused.
    pub(crate) fn counts(&self) -> StatementCounts {
        StatementCounts { planned: self.planned.load(Ordering::Relaxed), reused: self.reused.load(Ordering::Relaxed) }
    }

    /// The kept plan of `sql`, planned now if it is not kept.
    pub(crate) async fn get(&self, ctx: &SessionContext, sql: &str) -> Result<Arc<Planned>, ConnectorError> {
        if let Some(found) = self.kept.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(Arc::clone(found));
        }
        let planned = Arc::new(self.plan(ctx, sql).await?);
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).put(sql.to_string(), Arc::clone(&planned));
        self.planned.fetch_add(1, Ordering::Relaxed);
        Ok(planned)
    }

    async fn plan(&self, ctx: &SessionContext, sql: &str) -> Result<Planned, ConnectorError> {
        let frame = ctx.sql_with_options(sql, read_only_sql_options()).await.map_err(|e| from_datafusion(e, true))?;
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let logical = frame.into_unoptimized_plan();
        let parameter_types = parameter_types(&logical)?;
        let optimized = if self.only_file_tables(&logical) {
            Some(ctx.state().optimize(&logical).map_err(|e| from_datafusion(e, true))?)
        } else {
            None
        };
        Ok(Planned { logical, optimized, parameter_types, schema })
    }

    fn only_file_tables(&self, plan: &LogicalPlan) -> bool {
        let mut all = true;
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && !self.value_independent.contains(scan.table_name.table())
            {
                all = false;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        all
    }

    /// The physical plan of `planned` with `row` bound to its placeholders.
    pub(crate) async fn bind(
        &self,
        ctx: &SessionContext,
        planned: &Planned,
        row: &RecordBatch,
    ) -> Result<Arc<dyn ExecutionPlan>, ConnectorError> {
        let values = parameter_values(planned, row)?;
        let state = ctx.state();
        match &planned.optimized {
            Some(optimized) => {
                let bound = optimized.clone().with_param_values(values).map_err(|e| from_datafusion(e, true))?;
                state.query_planner().create_physical_plan(&bound, &state).await.map_err(|e| from_datafusion(e, true))
            }
            None => {
                let bound = planned.logical.clone().with_param_values(values).map_err(|e| from_datafusion(e, true))?;
                state.create_physical_plan(&bound).await.map_err(|e| from_datafusion(e, true))
            }
        }
    }
}

/// The placeholder types of `plan`, `$1` first; a placeholder nothing types is text.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<DataType>, ConnectorError> {
    let found = plan.get_parameter_types().map_err(|e| from_datafusion(e, true))?;
    let mut types = Vec::with_capacity(found.len());
    for position in 1..=found.len() {
        let Some(data_type) = found.get(&format!("${position}")) else {
            return Err(ConnectorError::BadParameters(format!(
                "the statement's placeholders must be $1 to ${}, without gaps",
                found.len()
            )));
        };
        types.push(data_type.clone().unwrap_or(DataType::Utf8));
    }
    Ok(types)
}

/// The values of `row` (one row, one column per placeholder), each cast to
/// its placeholder's type.
fn parameter_values(planned: &Planned, row: &RecordBatch) -> Result<ParamValues, ConnectorError> {
    if row.num_columns() != planned.parameter_types.len() {
        return Err(ConnectorError::BadParameters(format!(
            "the statement takes {} parameters, {} were bound",
            planned.parameter_types.len(),
            row.num_columns()
        )));
    }
    let mut values = Vec::with_capacity(row.num_columns());
    for (i, (column, wanted)) in row.columns().iter().zip(&planned.parameter_types).enumerate() {
        let value = ScalarValue::try_from_array(column, 0)
            .and_then(|v| if &v.data_type() == wanted { Ok(v) } else { v.cast_to(wanted) })
            .map_err(|_: DataFusionError| {
                ConnectorError::BadParameters(format!(
                    "parameter ${} is {}, which does not convert to {wanted}",
                    i + 1,
                    column.data_type()
                ))
            })?;
        values.push(value);
    }
    Ok(ParamValues::from(values))
}
