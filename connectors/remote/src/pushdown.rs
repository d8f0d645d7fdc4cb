//! Which filters may be sent to a connector, and how they are written.
//!
//! Only plain comparisons of a bare column with literals are pushed:
//! `col op lit`, `col IN (lits)`, `col BETWEEN lit AND lit`, `col IS [NOT] NULL`,
//! `col LIKE lit`, combined with AND/OR/NOT. Anything containing a function
//! call, a cast of a column or a column-to-column comparison stays in the
//! gateway: a translator that drops or rewrites a function is exactly how a
//! masked value turns into a raw predicate at the source.

use std::collections::HashSet;

use datafusion::common::Column;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::Result;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::sql::unparser::Unparser;

/// Columns whose raw values may appear in a pushed predicate; `None` allows all.
pub type RawColumns = Option<HashSet<String>>;

fn is_literal(expr: &Expr) -> bool {
    match expr {
        Expr::Literal(..) => true,
        Expr::Cast(cast) => is_literal(&cast.expr),
        _ => false,
    }
}

fn column_allowed(column: &Column, raw: &RawColumns) -> bool {
    raw.as_ref().is_none_or(|set| set.contains(&column.name))
}

fn is_column(expr: &Expr, raw: &RawColumns) -> bool {
    matches!(expr, Expr::Column(c) if column_allowed(c, raw))
}

/// Whether `expr` may be evaluated at the connector.
pub fn is_pushable(expr: &Expr, raw: &RawColumns) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And | Operator::Or => is_pushable(left, raw) && is_pushable(right, raw),
            Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                (is_column(left, raw) && is_literal(right)) || (is_literal(left) && is_column(right, raw))
            }
            _ => false,
        },
        Expr::Not(inner) => is_pushable(inner, raw),
        Expr::IsNull(inner) | Expr::IsNotNull(inner) => is_column(inner, raw),
        Expr::InList(list) => is_column(&list.expr, raw) && list.list.iter().all(is_literal),
        Expr::Between(between) => {
            is_column(&between.expr, raw) && is_literal(&between.low) && is_literal(&between.high)
        }
        Expr::Like(like) => !like.case_insensitive && is_column(&like.expr, raw) && is_literal(&like.pattern),
        _ => false,
    }
}

/// Writes a pushable filter as SQL for the connector, with columns unqualified
/// (the gateway's table names mean nothing at the source).
pub fn filter_to_sql(expr: &Expr) -> Result<String> {
    let unqualified = expr
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) if c.relation.is_some() => {
                    Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
                }
                other => Transformed::no(other),
            })
        })?
        .data;
    Ok(Unparser::default().expr_to_sql(&unqualified)?.to_string())
}

/// Quotes an identifier for the connector's SQL dialect.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn plain_comparisons_push() {
        let e = col("t.credit_code").eq(lit("91350100M000100Y43")).and(col("amount").gt(lit(10)));
        assert!(is_pushable(&e, &None));
        let sql = filter_to_sql(&e).expect("sql");
        assert_eq!(sql, "((credit_code = '91350100M000100Y43') AND (amount > 10))");
    }

    #[test]
    fn functions_and_column_pairs_stay() {
        let f = datafusion::functions::expr_fn::upper(col("name")).eq(lit("X"));
        assert!(!is_pushable(&f, &None));
        assert!(!is_pushable(&col("a").eq(col("b")), &None));
        assert!(!is_pushable(&(col("a") + lit(1)).gt(lit(3)), &None));
    }

    #[test]
    fn restricted_columns_stay() {
        let raw: RawColumns = Some(["credit_code".to_string()].into_iter().collect());
        assert!(is_pushable(&col("credit_code").eq(lit("x")), &raw));
        assert!(!is_pushable(&col("legal_rep_id").eq(lit("x")), &raw));
        assert!(!is_pushable(&col("credit_code").eq(lit("x")).or(col("legal_rep_id").is_null()), &raw));
    }
}
