//! Row-filter predicates: a small SQL subset that every connector can
//! evaluate exactly, compiled to DataFusion expressions over raw columns.
//!
//! Accepted: `column op literal` (or `literal op column`) with `=`, `<>`,
//! `!=`, `<`, `<=`, `>`, `>=`; `column [NOT] IN (literal, …)`;
//! `column [NOT] BETWEEN literal AND literal`; `column IS [NOT] NULL`;
//! `column [NOT] LIKE 'pattern'`; combined with `AND`, `OR`, `NOT` and
//! parentheses. Literals are strings, numbers (optionally negative),
//! `true`/`false` and `DATE 'YYYY-MM-DD'`. Everything else — function calls,
//! arithmetic, casts, subqueries, column-to-column comparisons, qualified
//! names — is refused, because a connector could not be trusted to evaluate
//! it identically (see PITFALLS.md, "Privacy in the plan").

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::{Between, InList, Like};
use datafusion::logical_expr::{Expr, Operator, binary_expr};
use datafusion::sql::sqlparser::ast::{BinaryOperator, DataType as SqlType, Expr as SqlExpr, UnaryOperator, Value};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::model::ColumnClass;

/// Maximum length of a row-filter predicate, in bytes.
pub const MAX_ROW_FILTER_LEN: usize = 4096;

/// Parses and checks a row filter against the dataset's columns.
pub(crate) fn compile(sql: &str, columns: &BTreeMap<String, ColumnClass>) -> Result<Expr, String> {
    if sql.len() > MAX_ROW_FILTER_LEN {
        return Err(format!("row filter longer than {MAX_ROW_FILTER_LEN} bytes"));
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).try_with_sql(sql).map_err(|e| format!("row filter does not parse: {e}"))?;
    let ast = parser.parse_expr().map_err(|e| format!("row filter does not parse: {e}"))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(format!("row filter does not parse: unexpected `{}` after the predicate", next.token));
    }
    Compiler { columns }.predicate(&ast)
}

struct Compiler<'a> {
    columns: &'a BTreeMap<String, ColumnClass>,
}

fn not_plain(what: &SqlExpr) -> String {
    format!(
        "not a plain comparison: `{what}` (row filters allow only `column op literal`, IN, \
         BETWEEN, IS [NOT] NULL and LIKE with literals, combined with AND/OR/NOT; no functions, \
         arithmetic, casts or subqueries)"
    )
}

impl Compiler<'_> {
    fn predicate(&self, e: &SqlExpr) -> Result<Expr, String> {
        match e {
            SqlExpr::Nested(inner) => self.predicate(inner),
            SqlExpr::UnaryOp { op: UnaryOperator::Not, expr } => Ok(Expr::Not(Box::new(self.predicate(expr)?))),
            SqlExpr::BinaryOp { left, op: BinaryOperator::And, right } => {
                Ok(self.predicate(left)?.and(self.predicate(right)?))
            }
            SqlExpr::BinaryOp { left, op: BinaryOperator::Or, right } => {
                Ok(self.predicate(left)?.or(self.predicate(right)?))
            }
            SqlExpr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Eq => Operator::Eq,
                    BinaryOperator::NotEq => Operator::NotEq,
                    BinaryOperator::Lt => Operator::Lt,
                    BinaryOperator::LtEq => Operator::LtEq,
                    BinaryOperator::Gt => Operator::Gt,
                    BinaryOperator::GtEq => Operator::GtEq,
                    _ => return Err(not_plain(e)),
                };
                match (self.column(left), self.column(right)) {
                    (Ok(Some(c)), Ok(None)) => Ok(binary_expr(c, op, self.literal(right, e)?)),
                    (Ok(None), Ok(Some(c))) => {
                        let swapped = op.swap().ok_or_else(|| not_plain(e))?;
                        Ok(binary_expr(c, swapped, self.literal(left, e)?))
                    }
                    (Err(msg), _) | (_, Err(msg)) => Err(msg),
                    _ => Err(not_plain(e)),
                }
            }
            SqlExpr::IsNull(inner) => Ok(self.require_column(inner, e)?.is_null()),
            SqlExpr::IsNotNull(inner) => Ok(self.require_column(inner, e)?.is_not_null()),
            SqlExpr::InList { expr, list, negated } => {
                let column = self.require_column(expr, e)?;
                if list.is_empty() {
                    return Err(not_plain(e));
                }
                let list = list.iter().map(|v| self.literal(v, e)).collect::<Result<Vec<_>, _>>()?;
                Ok(Expr::InList(InList::new(Box::new(column), list, *negated)))
            }
            SqlExpr::Between { expr, negated, low, high } => {
                let column = self.require_column(expr, e)?;
                Ok(Expr::Between(Between::new(
                    Box::new(column),
                    *negated,
                    Box::new(self.literal(low, e)?),
                    Box::new(self.literal(high, e)?),
                )))
            }
            SqlExpr::Like { negated, any: false, expr, pattern, escape_char: None } => {
                let column = self.require_column(expr, e)?;
                let pattern = match self.literal(pattern, e)? {
                    p @ Expr::Literal(ScalarValue::Utf8(Some(_)), _) => p,
                    _ => return Err(format!("LIKE needs a string pattern in `{e}`")),
                };
                Ok(Expr::Like(Like::new(*negated, Box::new(column), Box::new(pattern), None, false)))
            }
            _ => Err(not_plain(e)),
        }
    }

    /// `Ok(Some(col))` for a known column, `Ok(None)` for something that is
    /// not an identifier, `Err` for an unknown or qualified column.
    fn column(&self, e: &SqlExpr) -> Result<Option<Expr>, String> {
        match e {
            SqlExpr::Nested(inner) => self.column(inner),
            SqlExpr::Identifier(ident) => {
                if self.columns.contains_key(&ident.value) {
                    Ok(Some(Expr::Column(Column::from_name(ident.value.clone()))))
                } else {
                    Err(format!(
                        "unknown column `{}` in row filter (columns: {})",
                        ident.value,
                        self.columns.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                    ))
                }
            }
            SqlExpr::CompoundIdentifier(_) => {
                Err(format!("qualified column name `{e}` in row filter: use the bare column name"))
            }
            _ => Ok(None),
        }
    }

    fn require_column(&self, e: &SqlExpr, whole: &SqlExpr) -> Result<Expr, String> {
        self.column(e)?.ok_or_else(|| not_plain(whole))
    }

    fn literal(&self, e: &SqlExpr, whole: &SqlExpr) -> Result<Expr, String> {
        let scalar = match e {
            SqlExpr::Nested(inner) => return self.literal(inner, whole),
            SqlExpr::Value(v) => match &v.value {
                Value::Number(n, _) => number(&n.to_string(), false).ok_or_else(|| not_plain(whole))?,
                Value::SingleQuotedString(s) => ScalarValue::Utf8(Some(s.clone())),
                Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
                Value::Null => {
                    return Err(format!("comparison with NULL in `{whole}` is never true: use IS NULL / IS NOT NULL"));
                }
                _ => return Err(not_plain(whole)),
            },
            SqlExpr::UnaryOp { op: UnaryOperator::Minus, expr } => match expr.as_ref() {
                SqlExpr::Value(v) => match &v.value {
                    Value::Number(n, _) => number(&n.to_string(), true).ok_or_else(|| not_plain(whole))?,
                    _ => return Err(not_plain(whole)),
                },
                _ => return Err(not_plain(whole)),
            },
            SqlExpr::TypedString(ts) if matches!(ts.data_type, SqlType::Date) => {
                let text = match &ts.value.value {
                    Value::SingleQuotedString(s) => s.as_str(),
                    _ => return Err(not_plain(whole)),
                };
                let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
                    .map_err(|_| format!("bad DATE literal '{text}' in `{whole}` (expected YYYY-MM-DD)"))?;
                ScalarValue::Date32(Some(date32(date)))
            }
            SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_) => {
                // column op column
                return Err(not_plain(whole));
            }
            _ => return Err(not_plain(whole)),
        };
        Ok(Expr::Literal(scalar, None))
    }
}

fn number(text: &str, negative: bool) -> Option<ScalarValue> {
    let text = if negative { format!("-{text}") } else { text.to_owned() };
    if let Ok(i) = text.parse::<i64>() {
        return Some(ScalarValue::Int64(Some(i)));
    }
    text.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| ScalarValue::Float64(Some(f)))
}

/// Days since 1970-01-01 (the Arrow `Date32` representation).
pub(crate) fn date32(date: NaiveDate) -> i32 {
    // Dates representable by NaiveDate are within ±262,143 years: the day
    // count always fits in i32.
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let days = date.signed_duration_since(epoch).num_days();
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> BTreeMap<String, ColumnClass> {
        ["is_public", "amount", "status", "decision_date", "name"]
            .into_iter()
            .map(|c| (c.to_owned(), ColumnClass::Public))
            .collect()
    }

    #[test]
    fn accepts_the_subset() {
        for sql in [
            "is_public = true",
            "amount >= 1000 AND status IN ('open', 'closed')",
            "NOT (status = 'x') OR name LIKE '青岛%'",
            "decision_date BETWEEN DATE '2020-01-01' AND DATE '2021-01-01'",
            "name IS NOT NULL AND amount <> -5.5",
            "100 < amount",
        ] {
            let expr = compile(sql, &cols()).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert!(!expr.to_string().is_empty());
        }
        let e = compile("100 < amount", &cols()).expect("ok");
        assert_eq!(e.to_string(), "amount > Int64(100)");
    }

    #[test]
    fn refuses_everything_else() {
        for (sql, want) in [
            ("upper(name) = 'X'", "not a plain comparison"),
            ("amount + 1 > 5", "not a plain comparison"),
            ("100/(amount-50) > 0", "not a plain comparison"),
            ("amount = name", "not a plain comparison"),
            ("CAST(amount AS INT) = 1", "not a plain comparison"),
            ("amount IN (SELECT 1)", "not a plain comparison"),
            ("t.amount = 1", "qualified column name"),
            ("secret = 1", "unknown column `secret`"),
            ("amount = NULL", "use IS NULL"),
            ("is_public", "not a plain comparison"),
            ("is_public = true garbage", "does not parse"),
            ("is_public = ", "does not parse"),
            ("name LIKE 'a' ESCAPE '!'", "not a plain comparison"),
            ("decision_date > DATE '2020-13-01'", "bad DATE literal"),
        ] {
            let err = compile(sql, &cols()).expect_err(sql);
            assert!(err.contains(want), "{sql}: {err}");
        }
    }
}
