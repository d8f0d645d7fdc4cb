//! Masked values are for reading, not for relating.
//!
//! A deterministic mask that keeps part of a value (a resident ID's first 6
//! and last 4 characters, a mobile's first 3 and last 4, a name's first
//! character) works as a pseudonym: joined with another dataset's masked or
//! raw identities it re-identifies people. So a masked `personal` or
//! `sensitive` column may be selected, shown, sorted, counted and compared
//! with a literal or a parameter, but not used to relate rows: as a join key
//! or join condition, in `INTERSECT`/`EXCEPT`, in an `IN` subquery, in a
//! subquery correlated on it, in `GROUP BY`, `DISTINCT` (so `UNION` too) or a
//! window's `PARTITION BY` or `ORDER BY`, or compared with another column. The keyed-hash
//! mask is the designated way to relate records.
//!
//! [`check_relations`] checks the logical plan as planned from the SQL
//! (before optimization: views are still scans of the caller's datasets), so
//! every spelling of a construct — subqueries, CTEs, derived tables,
//! functions or casts around the column — is judged by what it does. Taint
//! flows from the scan of a dataset's masked column through every
//! expression that uses it (a boolean test of it excepted), through joins,
//! unions, aliases and subqueries.

use std::collections::{BTreeMap, HashMap};

use creditgate_ident::DatasetName;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable as _, LogicalPlan, Operator};

use crate::grant::DatasetGrant;
use crate::masks::Mask;
use crate::model::ColumnClass;

/// How a masked column was used to relate rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// `JOIN … ON`/`USING` key, or `INTERSECT`/`EXCEPT` (planned as joins on every column).
    JoinKey,
    /// A join condition other than an equality key.
    JoinCondition,
    /// Compared with another column (`a.masked = b.x`, in `WHERE`, `CASE`, …).
    Comparison,
    /// `x IN (SELECT …)` on it, or a subquery that selects it for `IN`.
    InSubquery,
    /// `GROUP BY` on it.
    GroupBy,
    /// `DISTINCT` (or `UNION`, which is `UNION ALL` + `DISTINCT`) over it.
    Distinct,
    /// A window's `PARTITION BY` on it.
    PartitionBy,
    /// A window's `ORDER BY` on it: ranks and neighbours (`dense_rank`,
    /// `lag`) tell which rows hold equal values, as a `GROUP BY` would.
    WindowOrder,
}

impl Relation {
    /// What the caller wrote, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Relation::JoinKey => "as a join key (JOIN … ON / USING, INTERSECT, EXCEPT)",
            Relation::JoinCondition => "in a join condition",
            Relation::Comparison => "compared with another column",
            Relation::InSubquery => "in an IN subquery",
            Relation::GroupBy => "in GROUP BY",
            Relation::Distinct => "under DISTINCT or UNION",
            Relation::PartitionBy => "in a window's PARTITION BY",
            Relation::WindowOrder => "in a window's ORDER BY (ranks and neighbours reveal equal values)",
        }
    }
}

/// A refused use: the dataset column (`market.enterprises.legal_rep_id`),
/// its mask, and how the query used it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationRefused {
    /// `dataset.column` of the masked column.
    pub column: String,
    /// Its mask as written in the policy.
    pub mask: String,
    /// What the query did with it.
    pub relation: Relation,
}

impl std::fmt::Display for RelationRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is masked ({}) and may be read but not used to relate records: it is used {}; \
             relate records on a keyed_hash column instead",
            self.column,
            self.mask,
            self.relation.describe()
        )
    }
}

/// Whether `mask` on a column of `class` makes it unrelatable: a mask that
/// keeps part of a personal or sensitive value. Raw values (the caller may
/// see them), keyed hashes (the way to relate) and NULLs are not.
pub fn is_unrelatable(class: ColumnClass, mask: &Mask) -> bool {
    matches!(class, ColumnClass::Personal | ColumnClass::Sensitive)
        && !matches!(mask, Mask::None | Mask::KeyedHash | Mask::Null)
}

/// Where a tainted value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    column: String,
    mask: String,
}

/// The taint of a plan's output columns, in schema order.
type Taint = Vec<Option<Origin>>;

/// Tainted columns in scope for an expression, by column.
#[derive(Default, Clone)]
struct Scope {
    columns: HashMap<Column, Origin>,
}

impl Scope {
    fn add(&mut self, plan: &LogicalPlan, taint: &Taint) {
        for (column, origin) in plan.schema().columns().into_iter().zip(taint) {
            if let Some(origin) = origin {
                self.columns.insert(column, origin.clone());
            }
        }
    }

    fn lookup(&self, column: &Column) -> Option<&Origin> {
        if let Some(origin) = self.columns.get(column) {
            return Some(origin);
        }
        // An unqualified reference: any tainted column of that name.
        if column.relation.is_none() {
            return self.columns.iter().find(|(c, _)| c.name == column.name).map(|(_, o)| o);
        }
        None
    }
}

/// Checks that `plan` uses no unrelatable column (per the caller's `grants`)
/// to relate rows; the first such use found is the error.
pub fn check_relations(
    plan: &LogicalPlan,
    grants: &BTreeMap<DatasetName, DatasetGrant>,
) -> Result<(), RelationRefused> {
    let protected: HashMap<(String, String), String> = grants
        .values()
        .flat_map(|grant| {
            grant
                .columns
                .iter()
                .filter(|c| is_unrelatable(c.class, &c.mask))
                .map(|c| ((grant.dataset.to_string(), c.name.clone()), c.mask.to_string()))
        })
        .collect();
    if protected.is_empty() {
        return Ok(());
    }
    Checker { protected }.plan(plan, &Scope::default()).map(|_| ())
}

struct Checker {
    /// (dataset, column) → mask.
    protected: HashMap<(String, String), String>,
}

impl Checker {
    /// The taint of `plan`'s output, checking every node on the way;
    /// `outer` holds the tainted columns of the enclosing query (for correlated subqueries).
    fn plan(&self, plan: &LogicalPlan, outer: &Scope) -> Result<Taint, RelationRefused> {
        let inputs: Vec<&LogicalPlan> = plan.inputs();
        let mut input_taints = Vec::with_capacity(inputs.len());
        for input in &inputs {
            input_taints.push(self.plan(input, outer)?);
        }
        // Everything an expression of this node can see: its inputs and the outer query.
        let mut scope = outer.clone();
        for (input, taint) in inputs.iter().zip(&input_taints) {
            scope.add(input, taint);
        }
        // Subqueries inside this node's expressions, with this node's inputs as their outer scope.
        for expr in plan.expressions() {
            self.subqueries(&expr, &scope)?;
        }

        let output_width = plan.schema().fields().len();
        let taint: Taint = match plan {
            LogicalPlan::TableScan(scan) => {
                let dataset = match scan.table_name.schema() {
                    Some(schema) => format!("{schema}.{}", scan.table_name.table()),
                    None => scan.table_name.table().to_string(),
                };
                scan.projected_schema
                    .fields()
                    .iter()
                    .map(|field| {
                        self.protected
                            .get(&(dataset.clone(), field.name().clone()))
                            .map(|mask| Origin { column: format!("{dataset}.{}", field.name()), mask: mask.clone() })
                    })
                    .collect()
            }
            LogicalPlan::Projection(projection) => {
                self.comparisons(&projection.expr, &scope, Relation::Comparison)?;
                projection.expr.iter().map(|e| value_taint(e, &scope, &projection.input)).collect()
            }
            LogicalPlan::Filter(filter) => {
                self.comparisons(std::slice::from_ref(&filter.predicate), &scope, Relation::Comparison)?;
                input_taints.into_iter().next().unwrap_or_default()
            }
            LogicalPlan::Join(join) => {
                for (left, right) in &join.on {
                    if let Some(origin) = first_taint(left, &scope).or_else(|| first_taint(right, &scope)) {
                        return Err(refused(origin, Relation::JoinKey));
                    }
                }
                if let Some(filter) = &join.filter {
                    self.comparisons(std::slice::from_ref(filter), &scope, Relation::JoinCondition)?;
                }
                carry(plan, &inputs, &input_taints)
            }
            LogicalPlan::Aggregate(aggregate) => {
                for expr in &aggregate.group_expr {
                    if let Some(origin) = first_taint(expr, &scope) {
                        return Err(refused(origin, Relation::GroupBy));
                    }
                }
                self.comparisons(&aggregate.aggr_expr, &scope, Relation::Comparison)?;
                let groups = aggregate.group_expr.len();
                let mut taint: Taint = vec![None; groups.min(output_width)];
                taint.extend(aggregate.aggr_expr.iter().map(|e| aggregate_taint(e, &scope)));
                taint.resize(output_width, None);
                taint
            }
            LogicalPlan::Distinct(distinct) => {
                use datafusion::logical_expr::Distinct;
                match distinct {
                    Distinct::All(_) => {
                        if let Some(origin) = input_taints.first().into_iter().flatten().flatten().next() {
                            return Err(refused(origin.clone(), Relation::Distinct));
                        }
                        input_taints.into_iter().next().unwrap_or_default()
                    }
                    Distinct::On(on) => {
                        for expr in &on.on_expr {
                            if let Some(origin) = first_taint(expr, &scope) {
                                return Err(refused(origin, Relation::Distinct));
                            }
                        }
                        on.select_expr.iter().map(|e| value_taint(e, &scope, &on.input)).collect()
                    }
                }
            }
            LogicalPlan::Window(window) => {
                for expr in &window.window_expr {
                    let mut window_taint = None;
                    expr.apply(|e| {
                        if let Expr::WindowFunction(function) = e {
                            let params = &function.params;
                            window_taint = params
                                .partition_by
                                .iter()
                                .find_map(|p| first_taint(p, &scope))
                                .map(|origin| (origin, Relation::PartitionBy))
                                .or_else(|| {
                                    params
                                        .order_by
                                        .iter()
                                        .find_map(|s| first_taint(&s.expr, &scope))
                                        .map(|origin| (origin, Relation::WindowOrder))
                                });
                            if window_taint.is_some() {
                                return Ok(TreeNodeRecursion::Stop);
                            }
                        }
                        Ok(TreeNodeRecursion::Continue)
                    })
                    .ok();
                    if let Some((origin, relation)) = window_taint {
                        return Err(refused(origin, relation));
                    }
                }
                self.comparisons(&window.window_expr, &scope, Relation::Comparison)?;
                let mut taint = input_taints.into_iter().next().unwrap_or_default();
                taint.extend(window.window_expr.iter().map(|e| value_taint(e, &scope, &window.input)));
                taint.resize(output_width, None);
                taint
            }
            LogicalPlan::Union(_) => {
                // Positional: a column of the union is tainted if it is in any branch.
                (0..output_width).map(|i| input_taints.iter().find_map(|t| t.get(i).cloned().flatten())).collect()
            }
            LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Subquery(_) => {
                self.comparisons(&plan.expressions(), &scope, Relation::Comparison)?;
                let mut taint = input_taints.into_iter().next().unwrap_or_default();
                taint.resize(output_width, None);
                taint
            }
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => {
                self.comparisons(&plan.expressions(), &scope, Relation::Comparison)?;
                vec![None; output_width]
            }
            _ => {
                // Any other node: checked like a projection, and every output
                // column tainted if any input column is (fail closed).
                self.comparisons(&plan.expressions(), &scope, Relation::Comparison)?;
                let any = input_taints.iter().flatten().flatten().next().cloned();
                vec![any; output_width]
            }
        };
        Ok(taint)
    }

    /// Checks the subqueries inside `expr` against `scope` (their outer query).
    fn subqueries(&self, expr: &Expr, scope: &Scope) -> Result<(), RelationRefused> {
        let mut result = Ok(());
        expr.apply(|e| {
            let outcome = match e {
                Expr::InSubquery(in_subquery) => {
                    let selected = self.plan(&in_subquery.subquery.subquery, scope);
                    match selected {
                        Err(error) => Err(error),
                        Ok(selected) => {
                            let tested = first_taint(&in_subquery.expr, scope);
                            let chosen = selected.into_iter().flatten().next();
                            match tested.or(chosen) {
                                Some(origin) => Err(refused(origin, Relation::InSubquery)),
                                None => Ok(()),
                            }
                        }
                    }
                }
                Expr::Exists(exists) => self.plan(&exists.subquery.subquery, scope).map(|_| ()),
                Expr::ScalarSubquery(subquery) => self.plan(&subquery.subquery, scope).map(|_| ()),
                _ => Ok(()),
            };
            match outcome {
                Ok(()) => Ok(TreeNodeRecursion::Continue),
                Err(error) => {
                    result = Err(error);
                    Ok(TreeNodeRecursion::Stop)
                }
            }
        })
        .ok();
        result
    }

    /// Refuses a comparison between a tainted expression and any other column
    /// inside `exprs` (comparisons with literals and parameters are reading).
    fn comparisons(&self, exprs: &[Expr], scope: &Scope, relation: Relation) -> Result<(), RelationRefused> {
        let mut found = None;
        for expr in exprs {
            expr.apply(|e| {
                // Every operator or function that combines two operands: a
                // tainted one with any other column relates them, whether the
                // result is compared at once (`a.m = b.x`) or later
                // (`levenshtein(a.m, b.x) = 0`, `nullif(a.m, b.x) IS NULL`).
                let pairs: Vec<(&Expr, &Expr)> = match e {
                    // AND / OR join two tests of one row; each test is checked on its own.
                    Expr::BinaryExpr(BinaryExpr { op: Operator::And | Operator::Or, .. }) => Vec::new(),
                    Expr::BinaryExpr(BinaryExpr { left, right, .. }) => vec![(left, right)],
                    Expr::Like(like) | Expr::SimilarTo(like) => vec![(&like.expr, &like.pattern)],
                    Expr::Between(between) => vec![(&between.expr, &between.low), (&between.expr, &between.high)],
                    Expr::InList(in_list) => in_list.list.iter().map(|item| (in_list.expr.as_ref(), item)).collect(),
                    Expr::Case(case) => match &case.expr {
                        Some(operand) => {
                            case.when_then_expr.iter().map(|(when, _)| (operand.as_ref(), when.as_ref())).collect()
                        }
                        None => Vec::new(),
                    },
                    Expr::ScalarFunction(function) => all_pairs(&function.args),
                    Expr::AggregateFunction(function) => all_pairs(&function.params.args),
                    Expr::WindowFunction(function) => all_pairs(&function.params.args),
                    _ => Vec::new(),
                };
                for (a, b) in pairs {
                    let hit = match (first_taint(a, scope), first_taint(b, scope)) {
                        (Some(origin), _) if has_columns(b) => Some(origin),
                        (_, Some(origin)) if has_columns(a) => Some(origin),
                        _ => None,
                    };
                    if let Some(origin) = hit {
                        found = Some(origin);
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .ok();
            if let Some(origin) = found.take() {
                return Err(refused(origin, relation));
            }
        }
        Ok(())
    }
}

/// Every ordered pair of distinct arguments.
fn all_pairs(args: &[Expr]) -> Vec<(&Expr, &Expr)> {
    let mut pairs = Vec::new();
    for (i, a) in args.iter().enumerate() {
        for (j, b) in args.iter().enumerate() {
            if i != j {
                pairs.push((a, b));
            }
        }
    }
    pairs
}

fn refused(origin: Origin, relation: Relation) -> RelationRefused {
    RelationRefused { column: origin.column, mask: origin.mask, relation }
}

/// The first tainted column `expr` reads (its own subqueries aside).
fn first_taint(expr: &Expr, scope: &Scope) -> Option<Origin> {
    let mut found = None;
    expr.apply(|e| {
        let column = match e {
            Expr::Column(column) | Expr::OuterReferenceColumn(_, column) => Some(column),
            _ => None,
        };
        if let Some(origin) = column.and_then(|c| scope.lookup(c)) {
            found = Some(origin.clone());
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok();
    found
}

/// Whether `expr` reads any column (of this query or an outer one).
fn has_columns(expr: &Expr) -> bool {
    let mut any = false;
    expr.apply(|e| {
        if matches!(e, Expr::Column(_) | Expr::OuterReferenceColumn(_, _)) {
            any = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok();
    any
}

/// The taint of a computed value: that of the columns it reads, unless it is
/// a boolean (a test of the value, not the value).
fn value_taint(expr: &Expr, scope: &Scope, input: &LogicalPlan) -> Option<Origin> {
    let origin = first_taint(expr, scope)?;
    match expr.get_type(input.schema()) {
        Ok(DataType::Boolean) => None,
        _ => Some(origin),
    }
}

/// The taint of an aggregate's result: aggregates that return one of their
/// input values (min, max, first/last, arrays and string concatenations of
/// them) carry it; counts, sums and averages do not.
fn aggregate_taint(expr: &Expr, scope: &Scope) -> Option<Origin> {
    let origin = first_taint(expr, scope)?;
    let mut carries = false;
    expr.apply(|e| {
        if let Expr::AggregateFunction(function) = e {
            let name = function.func.name().to_ascii_lowercase();
            carries |= matches!(
                name.as_str(),
                "min" | "max" | "first_value" | "last_value" | "nth_value" | "array_agg" | "string_agg"
            );
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .ok();
    carries.then_some(origin)
}

/// Output taint of a node whose output columns are input columns (joins):
/// matched by qualified column.
fn carry(plan: &LogicalPlan, inputs: &[&LogicalPlan], taints: &[Taint]) -> Taint {
    let mut by_column: HashMap<Column, Origin> = HashMap::new();
    for (input, taint) in inputs.iter().zip(taints) {
        for (column, origin) in input.schema().columns().into_iter().zip(taint) {
            if let Some(origin) = origin {
                by_column.insert(column, origin.clone());
            }
        }
    }
    plan.schema().columns().iter().map(|c| by_column.get(c).cloned()).collect()
}
