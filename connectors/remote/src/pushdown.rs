//! Which filters may be sent to a connector, and how they are written.
//!
//! A filter is pushed only when the SQL written here means exactly what the
//! gateway's DataFusion meant by it. The connector plans the text with the
//! same DataFusion SQL planner, so exactness comes down to two rules:
//!
//! * **Only plain shapes over bare columns**: `col op lit` (`=`, `<>`, `<`,
//!   `<=`, `>`, `>=`), `col [NOT] IN (lits)`, `col [NOT] BETWEEN lit AND lit`,
//!   `col IS [NOT] NULL`, `col IS [NOT] TRUE|FALSE|UNKNOWN`, a bare boolean
//!   column, `col [NOT] LIKE|ILIKE 'pattern'` with the default (backslash)
//!   escape, combined with `AND`/`OR`/`NOT`. Anything containing a function
//!   call, a cast of a column, arithmetic or a column-to-column comparison
//!   stays in the gateway: a translator that drops or rewrites a function is
//!   exactly how a masked value turns into a raw predicate at the source.
//!   `LIKE … ESCAPE 'c'` with any other escape character stays too (the
//!   gateway's engine refuses it, and must refuse it the same way whether or
//!   not the column could be pushed).
//! * **Every literal is written so that it parses back to the same Arrow
//!   value and type** ([`literal_to_sql`]): `CAST('NaN' AS DOUBLE)`,
//!   `CAST('-0.0' AS DOUBLE)`, `CAST('-Infinity' AS DOUBLE)`,
//!   `CAST('12345.67' AS DECIMAL(12,2))`, `CAST('2024-02-29' AS DATE)`,
//!   `arrow_cast(CAST('…' AS BIGINT), 'Timestamp(µs, "UTC")')` for
//!   timestamps, strings single-quoted with `'` doubled (DataFusion's SQL
//!   dialect has no backslash escapes). A value with no exact spelling
//!   (a NaN with a payload or sign other than the canonical one, a decimal
//!   outside its precision, a nested or binary value) makes its filter stay
//!   in the gateway.
//!
//! With the table's schema known ([`pushable_sql`]) a pushed comparison must
//! also compare a column with a literal of the column's own type, so the
//! connector has no coercion of its own to make (and no cast that could fail
//! there with the connector's text).

use std::collections::HashSet;
use std::fmt::Write;

use arrow::datatypes::{DataType, Decimal128Type, DecimalType, Schema};
use datafusion::common::{Column, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::expr::{Between, InList, Like, Placeholder};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// The position of a placeholder id: `$1` is 1; anything but `$` and a
/// positive number without leading zeros is `None`.
pub fn placeholder_position(id: &str) -> Option<usize> {
    let digits = id.strip_prefix('$')?;
    if digits.starts_with('0') || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// Columns whose raw values may appear in a pushed predicate; `None` allows all.
pub type RawColumns = Option<HashSet<String>>;

/// Writes pushable predicates; `None` from any method means "not pushable".
struct Writer<'a> {
    raw: &'a RawColumns,
    /// The table's schema, when known: columns must exist in it and literals
    /// must have their column's type.
    schema: Option<&'a Schema>,
}

/// A column reference as written, with its type when the schema is known.
struct ColumnRef<'a> {
    sql: String,
    data_type: Option<&'a DataType>,
}

impl<'a> Writer<'a> {
    fn column(&self, expr: &Expr) -> Option<ColumnRef<'a>> {
        let Expr::Column(Column { name, .. }) = expr else { return None };
        if !self.raw.as_ref().is_none_or(|set| set.contains(name)) {
            return None;
        }
        let data_type = match self.schema {
            Some(schema) => Some(schema.field_with_name(name).ok()?.data_type()),
            None => None,
        };
        Some(ColumnRef { sql: quote_ident(name), data_type })
    }

    /// A literal compared with a column of type `column_type`.
    fn value(&self, expr: &Expr, column_type: Option<&DataType>) -> Option<String> {
        if let Expr::Placeholder(Placeholder { id, .. }) = expr {
            // Only in a row policy (written without the schema): its value is
            // bound per scan, as a prepared statement's parameter.
            return (self.schema.is_none() && placeholder_position(id).is_some()).then(|| id.clone());
        }
        let Expr::Literal(value, None) = expr else { return None };
        if value.is_null() {
            // A NULL of any type: the comparison is NULL whatever its type.
            return Some("NULL".to_string());
        }
        if let Some(column_type) = column_type
            && &value.data_type() != column_type
        {
            return None;
        }
        literal_to_sql(value)
    }

    /// A literal compared with a column, where `equality` says whether the
    /// comparison is a plain `=`/`IN` that must hold for a row to be kept
    /// (not under `NOT`). Floats are pushed only there, and only with finite
    /// non-zero values: a connector over Parquet prunes row groups with
    /// statistics that leave NaN out, so `f > x`, `f <> x`, `f < x` (a NaN
    /// with the sign bit) or `f = NaN` could lose rows DataFusion keeps, and
    /// `-0.0`/`0.0` are apart in DataFusion's order but not in the
    /// databases'. Every other float comparison stays in the gateway.
    fn compared(&self, expr: &Expr, column_type: Option<&DataType>, equality: bool) -> Option<String> {
        let float_column =
            column_type.is_some_and(|t| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64));
        if let Expr::Literal(value, None) = expr {
            let float_value = matches!(value.data_type(), DataType::Float16 | DataType::Float32 | DataType::Float64);
            if float_column || float_value {
                let ok = equality
                    && match value {
                        ScalarValue::Float64(Some(v)) => v.is_finite() && *v != 0.0,
                        ScalarValue::Float32(Some(v)) => v.is_finite() && *v != 0.0,
                        other => other.is_null(),
                    };
                if !ok {
                    return None;
                }
            }
        }
        self.value(expr, column_type)
    }

    /// `positive` is false under an odd number of `NOT`s.
    fn predicate(&self, expr: &Expr, positive: bool) -> Option<String> {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And | Operator::Or => {
                    let word = if *op == Operator::And { "AND" } else { "OR" };
                    Some(format!("({} {word} {})", self.predicate(left, positive)?, self.predicate(right, positive)?))
                }
                Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                    let symbol = comparison_symbol(*op)?;
                    let equality = positive && *op == Operator::Eq;
                    if let Some(column) = self.column(left) {
                        let value = self.compared(right, column.data_type, equality)?;
                        Some(format!("({} {symbol} {value})", column.sql))
                    } else {
                        let column = self.column(right)?;
                        let value = self.compared(left, column.data_type, equality)?;
                        Some(format!("({value} {symbol} {})", column.sql))
                    }
                }
                _ => None,
            },
            Expr::Not(inner) => Some(format!("(NOT {})", self.predicate(inner, !positive)?)),
            // What the optimizer leaves of `x IN (NULL, …)` and the like.
            Expr::Literal(ScalarValue::Boolean(value), None) => Some(
                match value {
                    Some(true) => "TRUE",
                    Some(false) => "FALSE",
                    None => "CAST(NULL AS BOOLEAN)",
                }
                .to_string(),
            ),
            Expr::IsNull(inner) => Some(format!("({} IS NULL)", self.column(inner)?.sql)),
            Expr::IsNotNull(inner) => Some(format!("({} IS NOT NULL)", self.column(inner)?.sql)),
            Expr::IsTrue(inner) => self.boolean_test(inner, "IS TRUE"),
            Expr::IsFalse(inner) => self.boolean_test(inner, "IS FALSE"),
            Expr::IsNotTrue(inner) => self.boolean_test(inner, "IS NOT TRUE"),
            Expr::IsNotFalse(inner) => self.boolean_test(inner, "IS NOT FALSE"),
            Expr::IsUnknown(inner) => self.boolean_test(inner, "IS UNKNOWN"),
            Expr::IsNotUnknown(inner) => self.boolean_test(inner, "IS NOT UNKNOWN"),
            Expr::Column(_) => {
                let column = self.boolean_column(expr)?;
                Some(column.sql)
            }
            Expr::InList(InList { expr, list, negated }) => {
                let column = self.column(expr)?;
                if list.is_empty() {
                    return None;
                }
                let equality = positive && !*negated;
                let values = list
                    .iter()
                    .map(|v| self.compared(v, column.data_type, equality))
                    .collect::<Option<Vec<_>>>()?
                    .join(", ");
                let not = if *negated { "NOT " } else { "" };
                Some(format!("({} {not}IN ({values}))", column.sql))
            }
            Expr::Between(Between { expr, negated, low, high }) => {
                let column = self.column(expr)?;
                let low = self.compared(low, column.data_type, false)?;
                let high = self.compared(high, column.data_type, false)?;
                let not = if *negated { "NOT " } else { "" };
                Some(format!("({} {not}BETWEEN {low} AND {high})", column.sql))
            }
            Expr::Like(Like { negated, expr, pattern, escape_char, case_insensitive }) => {
                let column = self.column(expr)?;
                if column.data_type.is_some_and(|t| !is_string(t)) {
                    return None;
                }
                // The pattern is a non-NULL string of the column's type.
                let Expr::Literal(value, None) = pattern.as_ref() else { return None };
                if value.is_null() || !is_string(&value.data_type()) {
                    return None;
                }
                let pattern = self.value(pattern, column.data_type)?;
                // DataFusion's own (and only supported) escape is the backslash.
                let escape = match escape_char {
                    None => "",
                    Some('\\') => " ESCAPE '\\'",
                    Some(_) => return None,
                };
                let not = if *negated { "NOT " } else { "" };
                let like = if *case_insensitive { "ILIKE" } else { "LIKE" };
                Some(format!("({} {not}{like} {pattern}{escape})", column.sql))
            }
            _ => None,
        }
    }

    fn boolean_column(&self, expr: &Expr) -> Option<ColumnRef<'a>> {
        let column = self.column(expr)?;
        match column.data_type {
            None | Some(DataType::Boolean) => Some(column),
            Some(_) => None,
        }
    }

    fn boolean_test(&self, inner: &Expr, test: &str) -> Option<String> {
        Some(format!("({} {test})", self.boolean_column(inner)?.sql))
    }
}

fn comparison_symbol(op: Operator) -> Option<&'static str> {
    Some(match op {
        Operator::Eq => "=",
        Operator::NotEq => "<>",
        Operator::Lt => "<",
        Operator::LtEq => "<=",
        Operator::Gt => ">",
        Operator::GtEq => ">=",
        _ => return None,
    })
}

fn is_string(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// Whether `expr` may be evaluated at the connector (see the module docs),
/// without knowing the table's schema: used for row policies, whose
/// literals the connector's engine coerces exactly as the gateway's would.
pub fn is_pushable(expr: &Expr, raw: &RawColumns) -> bool {
    Writer { raw, schema: None }.predicate(expr, true).is_some()
}

/// The SQL for `expr` if it may be evaluated at a connector whose table has
/// `schema`, with columns restricted to `raw`: every column must exist in
/// the schema and every literal must have its column's type. `None` means
/// the filter stays in the gateway.
pub fn pushable_sql(expr: &Expr, raw: &RawColumns, schema: &Schema) -> Option<String> {
    Writer { raw, schema: Some(schema) }.predicate(expr, true)
}

/// Writes a pushable filter as SQL for the connector, with columns unqualified
/// (the gateway's table names mean nothing at the source). Fails, naming no
/// value, for a filter that [`is_pushable`] refuses.
pub fn filter_to_sql(expr: &Expr) -> Result<String> {
    Writer { raw: &None, schema: None }.predicate(expr, true).ok_or_else(|| {
        DataFusionError::Plan("the filter has no exact form in the connector's SQL; it stays in the gateway".into())
    })
}

/// Quotes an identifier for the connector's SQL dialect.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal in DataFusion's SQL: single quotes, `'` doubled; every
/// other character (backslash, NUL, newline, any Unicode) stands for itself.
fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `value` written in the connector's SQL so that it parses back to exactly
/// `value`: the same Arrow type and the same bits. `None` when there is no
/// such spelling (the value's filter then stays in the gateway). A NULL of
/// any type is written `NULL`, which parses as an untyped NULL.
pub fn literal_to_sql(value: &ScalarValue) -> Option<String> {
    if value.is_null() {
        return Some("NULL".to_string());
    }
    let cast = |text: String, sql_type: &str| Some(format!("CAST({} AS {sql_type})", quote_string(&text)));
    let arrow_cast = |inner: String, data_type: &DataType| {
        Some(format!("arrow_cast({inner}, {})", quote_string(&data_type.to_string())))
    };
    match value {
        ScalarValue::Boolean(Some(b)) => Some(if *b { "TRUE" } else { "FALSE" }.to_string()),
        ScalarValue::Int8(Some(v)) => cast(v.to_string(), "TINYINT"),
        ScalarValue::Int16(Some(v)) => cast(v.to_string(), "SMALLINT"),
        ScalarValue::Int32(Some(v)) => cast(v.to_string(), "INT"),
        ScalarValue::Int64(Some(v)) => cast(v.to_string(), "BIGINT"),
        ScalarValue::UInt8(Some(v)) => arrow_cast(quote_string(&v.to_string()), &DataType::UInt8),
        ScalarValue::UInt16(Some(v)) => arrow_cast(quote_string(&v.to_string()), &DataType::UInt16),
        ScalarValue::UInt32(Some(v)) => arrow_cast(quote_string(&v.to_string()), &DataType::UInt32),
        ScalarValue::UInt64(Some(v)) => arrow_cast(quote_string(&v.to_string()), &DataType::UInt64),
        ScalarValue::Float32(Some(v)) => {
            let class = FloatClass {
                nan: v.is_nan(),
                canonical_nan: v.to_bits() == f32::NAN.to_bits(),
                infinite: v.is_infinite(),
                positive: v.is_sign_positive(),
            };
            cast(class.text(format!("{v:?}"))?, "REAL")
        }
        ScalarValue::Float64(Some(v)) => {
            let class = FloatClass {
                nan: v.is_nan(),
                canonical_nan: v.to_bits() == f64::NAN.to_bits(),
                infinite: v.is_infinite(),
                positive: v.is_sign_positive(),
            };
            cast(class.text(format!("{v:?}"))?, "DOUBLE")
        }
        ScalarValue::Decimal128(Some(v), precision, scale) => {
            let (p, s) = (*precision, *scale);
            if !(1..=38).contains(&p) || s < 0 || s.unsigned_abs() > p {
                return None;
            }
            Decimal128Type::validate_decimal_precision(*v, p, s).ok()?;
            cast(Decimal128Type::format_decimal(*v, p, s), &format!("DECIMAL({p},{s})"))
        }
        ScalarValue::Utf8(Some(s)) => Some(quote_string(s)),
        ScalarValue::LargeUtf8(Some(s)) => arrow_cast(quote_string(s), &DataType::LargeUtf8),
        ScalarValue::Utf8View(Some(s)) => arrow_cast(quote_string(s), &DataType::Utf8View),
        ScalarValue::Date32(Some(days)) => match civil_from_days(i64::from(*days)) {
            (year @ 1..=9999, month, day) => cast(format!("{year:04}-{month:02}-{day:02}"), "DATE"),
            _ => arrow_cast(format!("CAST({} AS INT)", quote_string(&days.to_string())), &DataType::Date32),
        },
        ScalarValue::TimestampSecond(Some(v), _)
        | ScalarValue::TimestampMillisecond(Some(v), _)
        | ScalarValue::TimestampMicrosecond(Some(v), _)
        | ScalarValue::TimestampNanosecond(Some(v), _) => {
            // The count of units since the epoch, reinterpreted as the
            // timestamp type (unit and zone): exact for every value.
            let mut inner = String::new();
            let _ = write!(inner, "CAST({} AS BIGINT)", quote_string(&v.to_string()));
            arrow_cast(inner, &value.data_type())
        }
        _ => None,
    }
}

/// What kind of float a value is, for [`FloatClass::text`].
struct FloatClass {
    nan: bool,
    /// The NaN that `CAST('NaN' AS …)` produces (positive, no payload).
    canonical_nan: bool,
    infinite: bool,
    positive: bool,
}

impl FloatClass {
    /// The text that Arrow's string-to-float cast reads back to the same
    /// bits: the shortest round-trip digits (`digits`, Rust's `{:?}`, where
    /// `-0.0` keeps its sign), the infinities by name, and NaN only when it
    /// is the canonical one.
    fn text(&self, digits: String) -> Option<String> {
        if self.nan {
            return self.canonical_nan.then(|| "NaN".to_string());
        }
        if self.infinite {
            return Some(if self.positive { "Infinity" } else { "-Infinity" }.to_string());
        }
        Some(digits)
    }
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // month and day are in range by construction.
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};
    use datafusion::prelude::{col, lit};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("credit_code", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, true),
            Field::new("capital", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
        ])
    }

    #[test]
    fn plain_comparisons_push() {
        let e = col("t.credit_code").eq(lit("91350100M000100Y43")).and(col("amount").gt(lit(10i64)));
        assert!(is_pushable(&e, &None));
        let sql = filter_to_sql(&e).expect("sql");
        assert_eq!(sql, "((\"credit_code\" = '91350100M000100Y43') AND (\"amount\" > CAST('10' AS BIGINT)))");
        assert_eq!(pushable_sql(&e, &None, &schema()).as_deref(), Some(sql.as_str()));
    }

    #[test]
    fn functions_and_column_pairs_stay() {
        let f = datafusion::functions::expr_fn::upper(col("name")).eq(lit("X"));
        assert!(!is_pushable(&f, &None));
        assert!(!is_pushable(&col("a").eq(col("b")), &None));
        assert!(!is_pushable(&(col("a") + lit(1)).gt(lit(3)), &None));
        assert!(filter_to_sql(&f).is_err());
    }

    #[test]
    fn restricted_columns_stay() {
        let raw: RawColumns = Some(["credit_code".to_string()].into_iter().collect());
        assert!(is_pushable(&col("credit_code").eq(lit("x")), &raw));
        assert!(!is_pushable(&col("legal_rep_id").eq(lit("x")), &raw));
        assert!(!is_pushable(&col("credit_code").eq(lit("x")).or(col("legal_rep_id").is_null()), &raw));
    }

    #[test]
    fn literals_of_another_type_stay_when_the_schema_is_known() {
        let s = schema();
        assert!(pushable_sql(&col("amount").gt(lit(10i32)), &None, &s).is_none());
        assert!(pushable_sql(&col("capital").gt(lit("10")), &None, &s).is_none());
        assert!(pushable_sql(&col("missing").gt(lit(10i64)), &None, &s).is_none());
        assert!(pushable_sql(&col("amount"), &None, &s).is_none(), "a bare non-boolean column");
        assert_eq!(pushable_sql(&col("ok"), &None, &s).as_deref(), Some("\"ok\""));
        assert!(pushable_sql(&col("amount").like(lit("1%")), &None, &s).is_none(), "LIKE on a number");
    }

    #[test]
    fn non_finite_and_signed_zero_floats_are_spelled_out() {
        let f = |v: f64| literal_to_sql(&ScalarValue::Float64(Some(v)));
        assert_eq!(f(f64::INFINITY).as_deref(), Some("CAST('Infinity' AS DOUBLE)"));
        assert_eq!(f(f64::NEG_INFINITY).as_deref(), Some("CAST('-Infinity' AS DOUBLE)"));
        assert_eq!(f(f64::NAN).as_deref(), Some("CAST('NaN' AS DOUBLE)"));
        assert_eq!(f(-0.0).as_deref(), Some("CAST('-0.0' AS DOUBLE)"));
        assert_eq!(f(-f64::NAN), None, "a NaN with the sign bit has no spelling");
        assert_eq!(f(f64::from_bits(0x7ff8_0000_0000_0001)), None, "nor a NaN with a payload");
    }

    #[test]
    fn like_with_another_escape_stays() {
        let like =
            |escape| Expr::Like(Like::new(false, Box::new(col("credit_code")), Box::new(lit("a!%")), escape, false));
        assert!(!is_pushable(&like(Some('!')), &None));
        assert_eq!(filter_to_sql(&like(None)).as_deref().ok(), Some("(\"credit_code\" LIKE 'a!%')"));
        assert_eq!(filter_to_sql(&like(Some('\\'))).as_deref().ok(), Some("(\"credit_code\" LIKE 'a!%' ESCAPE '\\')"));
    }

    #[test]
    fn strings_double_quotes_only() {
        let s = |v: &str| literal_to_sql(&ScalarValue::Utf8(Some(v.to_string())));
        assert_eq!(s("it's").as_deref(), Some("'it''s'"));
        assert_eq!(s("a\\b").as_deref(), Some("'a\\b'"));
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(literal_to_sql(&ScalarValue::Date32(Some(19_782))).as_deref(), Some("CAST('2024-02-29' AS DATE)"));
        let ts = ScalarValue::TimestampMicrosecond(Some(1_709_195_400_123_456), Some("UTC".into()));
        let sql = literal_to_sql(&ts).expect("timestamp");
        assert!(sql.starts_with("arrow_cast(CAST('1709195400123456' AS BIGINT), 'Timestamp("), "{sql}");
        let _ = TimeUnit::Microsecond;
    }
}
