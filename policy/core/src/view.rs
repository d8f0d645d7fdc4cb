//! Secure views: the only shape in which a dataset reaches a caller's session.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::common::{Column, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};

use crate::PolicyError;
use crate::grant::DatasetGrant;
use crate::masks::MaskUdfs;

/// Wraps `provider` in a view that shows only the granted columns, each
/// replaced by its masked expression and aliased to its own name:
/// `TableScan(provider) → Projection(mask(c) AS c, …)`.
///
/// Columns appear in the provider's order; columns the grant does not list
/// do not exist in the view. The view has no filter: row policies are the
/// connector's mandatory predicate ([`DatasetGrant::row_predicate`]), so the
/// optimizer cannot evaluate a user predicate on a hidden row. Because the
/// SQL planner inlines the view, every filter, join, sort, group, function
/// or cast the caller writes applies to the masked values, and a filter
/// pushed down to the scan carries the mask function with it.
///
/// Errors: a granted column missing from the provider
/// ([`PolicyError::SourceMismatch`]), a mask that does not fit the column's
/// type ([`PolicyError::MaskType`]), or a DataFusion planning error.
pub fn secure_view(
    provider: Arc<dyn TableProvider>,
    grant: &DatasetGrant,
    masks: &MaskUdfs,
) -> Result<Arc<dyn TableProvider>, PolicyError> {
    let schema = provider.schema();
    for granted in &grant.columns {
        if schema.field_with_name(&granted.name).is_err() {
            return Err(PolicyError::SourceMismatch { dataset: grant.dataset.clone(), column: granted.name.clone() });
        }
    }
    let mut projection: Vec<Expr> = Vec::with_capacity(grant.columns.len());
    for field in schema.fields() {
        let Some(granted) = grant.column(field.name()) else {
            continue;
        };
        let column = Expr::Column(Column::from_name(field.name().clone()));
        let masked = masks.try_expr(&granted.mask, column, field.data_type()).ok_or_else(|| PolicyError::MaskType {
            dataset: grant.dataset.clone(),
            column: granted.name.clone(),
            mask: granted.mask.to_string(),
            data_type: field.data_type().to_string(),
        })?;
        projection.push(masked.alias(field.name().clone()));
    }
    let plan_err = |e| PolicyError::Plan { dataset: grant.dataset.clone(), source: Box::new(e) };
    let table = TableReference::partial(grant.dataset.source(), grant.dataset.table());
    let plan = LogicalPlanBuilder::scan(table, provider_as_source(provider), None)
        .and_then(|b| b.project(projection))
        .and_then(LogicalPlanBuilder::build)
        .map_err(plan_err)?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}
