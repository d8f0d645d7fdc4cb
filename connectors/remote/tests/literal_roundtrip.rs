//! Every literal the gateway pushes parses back, in a connector's engine, to
//! the very same Arrow value and type: `literal_to_sql` is checked against
//! the SQL planner of the session a connector runs (creditgate-flight's
//! `session`), for generated values of every type the pushdown writes,
//! edge values first (NaN, ±inf, -0.0, extreme integers and decimals,
//! quotes, backslashes, NUL, any Unicode, dates and timestamps far from now).

use std::sync::Arc;

use arrow::datatypes::DataType;
use creditgate_flight::engine::{locked_down_runtime, session};
use creditgate_remote::literal_to_sql;
use datafusion::common::ScalarValue;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn connector_session() -> SessionContext {
    let runtime = locked_down_runtime(64 * 1024 * 1024).expect("runtime");
    session(runtime, "creditgate", "test", false)
}

fn text() -> impl Strategy<Value = String> {
    let special = prop_oneof![
        Just('\''),
        Just('\\'),
        Just('"'),
        Just('%'),
        Just('_'),
        Just('\0'),
        Just('\n'),
        Just(' '),
        Just('é'),
        Just('青'),
        Just('😀'),
        any::<char>(),
    ];
    proptest::collection::vec(special, 0..8).prop_map(String::from_iter)
}

fn float64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(-f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(0.1),
        Just(1e308 * 10.0),
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
    ]
}

fn float32() -> impl Strategy<Value = f32> {
    prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(-0.0f32),
        Just(f32::MAX),
        Just(1e-45f32),
        any::<u32>().prop_map(f32::from_bits),
    ]
}

fn decimal() -> impl Strategy<Value = ScalarValue> {
    (1u8..=38).prop_flat_map(|p| (Just(p), 0i8..=(p as i8), any::<i128>(), any::<bool>())).prop_map(
        |(p, s, raw, extreme)| {
            let max = 10i128.pow(u32::from(p)) - 1;
            let v = if extreme { if raw < 0 { -max } else { max } } else { raw % (max + 1) };
            ScalarValue::Decimal128(Some(v), p, s)
        },
    )
}

fn timezone() -> impl Strategy<Value = Option<Arc<str>>> {
    prop_oneof![Just(None), Just(Some("UTC".into())), Just(Some("+08:00".into())), Just(Some("-05:30".into()))]
}

fn scalar() -> impl Strategy<Value = ScalarValue> {
    prop_oneof![
        any::<bool>().prop_map(|v| ScalarValue::Boolean(Some(v))),
        any::<i8>().prop_map(|v| ScalarValue::Int8(Some(v))),
        any::<i16>().prop_map(|v| ScalarValue::Int16(Some(v))),
        prop_oneof![Just(i32::MIN), Just(i32::MAX), any::<i32>()].prop_map(|v| ScalarValue::Int32(Some(v))),
        prop_oneof![Just(i64::MIN), Just(i64::MAX), any::<i64>()].prop_map(|v| ScalarValue::Int64(Some(v))),
        any::<u8>().prop_map(|v| ScalarValue::UInt8(Some(v))),
        any::<u16>().prop_map(|v| ScalarValue::UInt16(Some(v))),
        any::<u32>().prop_map(|v| ScalarValue::UInt32(Some(v))),
        prop_oneof![Just(u64::MAX), any::<u64>()].prop_map(|v| ScalarValue::UInt64(Some(v))),
        float32().prop_map(|v| ScalarValue::Float32(Some(v))),
        float64().prop_map(|v| ScalarValue::Float64(Some(v))),
        float64().prop_map(|v| ScalarValue::Float64(Some(v))),
        decimal(),
        decimal(),
        text().prop_map(|v| ScalarValue::Utf8(Some(v))),
        text().prop_map(|v| ScalarValue::Utf8(Some(v))),
        text().prop_map(|v| ScalarValue::LargeUtf8(Some(v))),
        text().prop_map(|v| ScalarValue::Utf8View(Some(v))),
        prop_oneof![Just(0), Just(19_782), Just(-719_162), Just(2_932_896), Just(2_932_897), any::<i32>()]
            .prop_map(|v| ScalarValue::Date32(Some(v))),
        (any::<i64>(), timezone()).prop_map(|(v, tz)| ScalarValue::TimestampMicrosecond(Some(v), tz)),
        (any::<i64>(), timezone()).prop_map(|(v, tz)| ScalarValue::TimestampMicrosecond(Some(v), tz)),
        (any::<i64>(), timezone()).prop_map(|(v, tz)| ScalarValue::TimestampNanosecond(Some(v), tz)),
        (any::<i64>(), timezone()).prop_map(|(v, tz)| ScalarValue::TimestampMillisecond(Some(v), tz)),
        (any::<i64>(), timezone()).prop_map(|(v, tz)| ScalarValue::TimestampSecond(Some(v), tz)),
    ]
}

/// Same type and same bits (floats compared bit for bit: NaN and -0.0).
fn identical(a: &ScalarValue, b: &ScalarValue) -> bool {
    if a.data_type() != b.data_type() {
        return false;
    }
    match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => x.to_bits() == y.to_bits(),
        (ScalarValue::Float32(Some(x)), ScalarValue::Float32(Some(y))) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Only NaNs other than the canonical one, and nothing else, have no spelling.
fn may_be_unwritable(v: &ScalarValue) -> bool {
    match v {
        ScalarValue::Float64(Some(f)) => f.is_nan() && f.to_bits() != f64::NAN.to_bits(),
        ScalarValue::Float32(Some(f)) => f.is_nan() && f.to_bits() != f32::NAN.to_bits(),
        _ => false,
    }
}

#[test]
fn every_pushed_literal_parses_back_to_the_same_value_and_type() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let ctx = connector_session();
    let mut runner = TestRunner::new(Config { cases: 300, failure_persistence: None, ..Config::default() });
    let checked = std::cell::Cell::new(0usize);
    let result = runner.run(&proptest::collection::vec(scalar(), 1..24), |values| {
        let mut written = Vec::new();
        for v in &values {
            match literal_to_sql(v) {
                Some(sql) => written.push((v.clone(), sql)),
                None if may_be_unwritable(v) => {}
                None => return Err(TestCaseError::fail(format!("no spelling for {v:?}"))),
            }
        }
        if written.is_empty() {
            return Ok(());
        }
        let select = written.iter().enumerate().map(|(i, (_, sql))| format!("{sql} AS c{i}")).collect::<Vec<_>>();
        let sql = format!("SELECT {}", select.join(", "));
        let batches = runtime
            .block_on(async { ctx.sql(&sql).await?.collect().await })
            .map_err(|e| TestCaseError::fail(format!("{sql}: {e}")))?;
        let batch = batches.first().ok_or_else(|| TestCaseError::fail("no batch"))?;
        for (i, (value, literal)) in written.iter().enumerate() {
            let back = ScalarValue::try_from_array(batch.column(i), 0)
                .map_err(|e| TestCaseError::fail(format!("{literal}: {e}")))?;
            prop_assert!(identical(value, &back), "{value:?} written as {literal} reads back as {back:?}");
        }
        checked.set(checked.get() + written.len());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let checked = checked.get();
    eprintln!("{checked} literals read back identically");
    assert!(checked > 1_000, "only {checked} literals checked");
}

#[test]
fn spellings_are_readable_where_they_can_be() {
    let cases: Vec<(ScalarValue, &str)> = vec![
        (ScalarValue::Float64(Some(f64::INFINITY)), "CAST('Infinity' AS DOUBLE)"),
        (ScalarValue::Float64(Some(-0.0)), "CAST('-0.0' AS DOUBLE)"),
        (ScalarValue::Decimal128(Some(1_234_567), 12, 2), "CAST('12345.67' AS DECIMAL(12,2))"),
        (ScalarValue::Date32(Some(19_782)), "CAST('2024-02-29' AS DATE)"),
        (ScalarValue::Utf8(Some("O'Brien \\ 100%".into())), "'O''Brien \\ 100%'"),
        (ScalarValue::Boolean(Some(true)), "TRUE"),
    ];
    for (value, want) in cases {
        assert_eq!(literal_to_sql(&value).as_deref(), Some(want), "{value:?}");
    }
    assert_eq!(DataType::Utf8.to_string(), "Utf8");
}
