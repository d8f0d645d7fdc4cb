//! Unit and property tests of the masks, through the same DataFusion
//! expressions the secure views use.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int32Array, Int64Array, LargeStringArray, StringArray,
    StringViewArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use datafusion::common::DFSchema;
use datafusion::logical_expr::col;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::execution_props::ExecutionProps;
use proptest::prelude::*;

use super::*;

const SECRET: &[u8] = b"test secret of the deployment, 32b";

fn udfs() -> MaskUdfs {
    MaskUdfs::new(SECRET).expect("secret long enough")
}

/// Evaluates `mask` over `array` exactly as a secure view would.
fn apply(masks: &MaskUdfs, mask: Mask, array: ArrayRef) -> ArrayRef {
    let schema = Arc::new(Schema::new(vec![Field::new("c", array.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![array]).expect("batch");
    let df_schema = DFSchema::try_from(schema.as_ref().clone()).expect("schema");
    let expr = masks.try_expr(&mask, col("c"), schema.field(0).data_type()).expect("mask applies");
    let physical = create_physical_expr(&expr, &df_schema, &ExecutionProps::new(), &PhysicalPlanningContext::default())
        .expect("plan");
    physical.evaluate(&batch).and_then(|v| v.into_array(batch.num_rows())).expect("evaluate")
}

fn strings(masks: &MaskUdfs, mask: Mask, values: &[Option<&str>]) -> Vec<Option<String>> {
    let out = apply(masks, mask, Arc::new(StringArray::from(values.to_vec())));
    let out = out.as_string::<i32>();
    out.iter().map(|v| v.map(str::to_owned)).collect()
}

fn one(masks: &MaskUdfs, mask: Mask, value: &str) -> String {
    strings(masks, mask, &[Some(value)]).pop().flatten().expect("non-null output")
}

#[test]
fn domain_examples() {
    let m = udfs();
    assert_eq!(one(&m, Mask::ResidentId, "37020219900101123X"), "370202********123X");
    assert_eq!(one(&m, Mask::ResidentId, "11010519491231002X"), "110105********002X");
    assert_eq!(one(&m, Mask::Mobile, "13812345678"), "138****5678");
    assert_eq!(one(&m, Mask::ChineseName, "张三"), "张*");
    assert_eq!(one(&m, Mask::ChineseName, "欧阳娜娜"), "欧***");
    assert_eq!(one(&m, Mask::ChineseName, "张"), "*");
    assert_eq!(
        one(&m, Mask::Partial { keep_first: 6, keep_last: 0 }, "青岛市市南区香港中路10号"),
        "青岛市市南区*******"
    );
    // Too short to hide anything: everything masked.
    assert_eq!(one(&m, Mask::Mobile, "1381234"), "*******");
}

#[test]
fn every_string_type_gives_the_same_result() {
    let m = udfs();
    let values = vec![Some("欧阳娜娜"), None, Some("13812345678"), Some("")];
    for mask in [Mask::Mobile, Mask::ChineseName, Mask::KeyedHash, Mask::Partial { keep_first: 2, keep_last: 1 }] {
        let utf8 = apply(&m, mask, Arc::new(StringArray::from(values.clone())));
        let view = apply(&m, mask, Arc::new(StringViewArray::from(values.clone())));
        let large = apply(&m, mask, Arc::new(LargeStringArray::from(values.clone())));
        assert_eq!(utf8.data_type(), &DataType::Utf8);
        assert_eq!(utf8.as_ref(), view.as_ref(), "{mask}");
        assert_eq!(utf8.as_ref(), large.as_ref(), "{mask}");
        assert!(utf8.is_null(1), "{mask}: NULL in, NULL out");
    }
}

#[test]
fn null_in_null_out_everywhere() {
    let m = udfs();
    let s: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, Some("x")]));
    for mask in [
        Mask::None,
        Mask::Null,
        Mask::ResidentId,
        Mask::Mobile,
        Mask::ChineseName,
        Mask::KeyedHash,
        Mask::Partial { keep_first: 0, keep_last: 0 },
    ] {
        assert!(apply(&m, mask, s.clone()).is_null(0), "{mask}");
    }
    let d: ArrayRef = Arc::new(Date32Array::from(vec![None, Some(0)]));
    assert!(apply(&m, Mask::YearOnly, d.clone()).is_null(0));
    assert!(apply(&m, Mask::KeyedHash, d).is_null(0));
    let f: ArrayRef = Arc::new(Float64Array::from(vec![None, Some(1.0), Some(f64::NAN)]));
    let b = apply(&m, Mask::RangeBucket { width: 10 }, f);
    assert!(b.is_null(0));
    assert!(b.is_null(2), "NaN has no bucket");
}

#[test]
fn null_mask_is_typed() {
    let m = udfs();
    let d: ArrayRef = Arc::new(Date32Array::from(vec![Some(1), Some(2)]));
    let out = apply(&m, Mask::Null, d);
    assert_eq!(out.data_type(), &DataType::Date32);
    assert_eq!(out.null_count(), 2);
}

#[test]
fn year_only_and_buckets() {
    let m = udfs();
    let day = NaiveDate::from_ymd_opt(2021, 12, 31).expect("date");
    let days = crate::predicate::date32(day);
    let out = apply(&m, Mask::YearOnly, Arc::new(Date32Array::from(vec![Some(days)])));
    assert_eq!(out.as_primitive::<Int32Type>().value(0), 2021);
    let ts = TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000_i64)]);
    let out = apply(&m, Mask::YearOnly, Arc::new(ts));
    assert_eq!(out.as_primitive::<Int32Type>().value(0), 2023);

    let amounts: ArrayRef = Arc::new(Float64Array::from(vec![Some(150_000.5), Some(-1.0), Some(0.0)]));
    let out = apply(&m, Mask::RangeBucket { width: 100_000 }, amounts);
    let out = out.as_string::<i32>();
    assert_eq!(out.value(0), "[100000, 200000)");
    assert_eq!(out.value(1), "[-100000, 0)");
    assert_eq!(out.value(2), "[0, 100000)");
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(99), Some(100)]));
    let out = apply(&m, Mask::RangeBucket { width: 100 }, ints);
    assert_eq!(out.as_string::<i32>().value(0), "[0, 100)");
    assert_eq!(out.as_string::<i32>().value(1), "[100, 200)");
}

#[test]
fn keyed_hash_of_non_strings_hashes_their_text() {
    let m = udfs();
    let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(42)]));
    let out = apply(&m, Mask::KeyedHash, ints);
    assert_eq!(out.as_string::<i32>().value(0), m.pseudonym("42"));
}

#[test]
fn masks_refuse_unfit_types() {
    let m = udfs();
    assert!(m.try_expr(&Mask::Mobile, col("c"), &DataType::Float64).is_none());
    assert!(m.try_expr(&Mask::YearOnly, col("c"), &DataType::Utf8).is_none());
    assert!(m.try_expr(&Mask::RangeBucket { width: 5 }, col("c"), &DataType::Utf8).is_none());
    // `expr` fails closed.
    assert_eq!(m.expr(&Mask::Mobile, col("c"), &DataType::Float64).to_string(), "Float64(NULL)");
}

#[test]
fn weak_secret_refused() {
    assert!(matches!(MaskUdfs::new(b"short"), Err(PolicyError::WeakSecret { .. })));
}

#[test]
fn spec_parse_and_display() {
    for spec in [
        "none",
        "partial(3,4)",
        "resident_id",
        "mobile",
        "chinese_name",
        "keyed_hash",
        "null",
        "year_only",
        "range_bucket(100000)",
    ] {
        let mask: Mask = spec.parse().expect(spec);
        assert_eq!(mask.to_string(), spec);
    }
    assert_eq!("partial( 1 , 2 )".parse::<Mask>(), Ok(Mask::Partial { keep_first: 1, keep_last: 2 }));
    let err = "hashh".parse::<Mask>().expect_err("unknown");
    assert_eq!(err.to_string(), format!("unknown mask \"hashh\" (expected one of {MASK_SPECS})"));
    assert!("partial(3)".parse::<Mask>().expect_err("arity").to_string().contains("two arguments"));
    assert!("range_bucket(0)".parse::<Mask>().expect_err("zero").to_string().contains("positive"));
    assert!("partial(-1,2)".parse::<Mask>().is_err());
}

/// Checks the partial-mask contract character by character.
fn check_partial(input: &str, output: &str, m: usize, n: usize) -> Result<(), TestCaseError> {
    let i: Vec<char> = input.chars().collect();
    let o: Vec<char> = output.chars().collect();
    prop_assert_eq!(i.len(), o.len(), "length in characters preserved");
    let hides_something = i.len() > m + n;
    for (pos, (a, b)) in i.iter().zip(&o).enumerate() {
        let kept = hides_something && (pos < m || pos >= i.len() - n);
        if kept {
            prop_assert_eq!(a, b, "kept position {} changed", pos);
        } else {
            prop_assert_eq!(*b, '*', "position {} not masked", pos);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn partial_keeps_exactly_what_it_should(
        values in proptest::collection::vec(any::<String>(), 1..20),
        m in 0u16..8,
        n in 0u16..8,
    ) {
        let masks = udfs();
        let refs: Vec<Option<&str>> = values.iter().map(|s| Some(s.as_str())).collect();
        let out = strings(&masks, Mask::Partial { keep_first: m, keep_last: n }, &refs);
        for (input, output) in values.iter().zip(&out) {
            let output = output.as_deref().unwrap_or("<null>");
            check_partial(input, output, usize::from(m), usize::from(n))?;
        }
    }

    #[test]
    fn resident_id_keeps_6_and_4(id in "[1-9][0-9]{16}[0-9X]") {
        let out = one(&udfs(), Mask::ResidentId, &id);
        check_partial(&id, &out, 6, 4)?;
        prop_assert_eq!(&out[6..14], "********");
    }

    #[test]
    fn mobile_keeps_3_and_4(mobile in "1[3-9][0-9]{9}") {
        let out = one(&udfs(), Mask::Mobile, &mobile);
        check_partial(&mobile, &out, 3, 4)?;
    }

    #[test]
    fn chinese_name_keeps_first_char_only(name in "[\u{4e00}-\u{9fa5}]{1,6}") {
        let out = one(&udfs(), Mask::ChineseName, &name);
        check_partial(&name, &out, 1, 0)?;
    }

    #[test]
    fn keyed_hash_is_stable_keyed_and_opaque(a in any::<String>(), b in any::<String>()) {
        let m1 = udfs();
        let m2 = udfs();
        let other = MaskUdfs::new(b"another deployment's secret!!").expect("secret");
        let h = one(&m1, Mask::KeyedHash, &a);
        prop_assert_eq!(h.len(), KEYED_HASH_HEX_LEN);
        prop_assert!(h.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        prop_assert_eq!(&h, &one(&m2, Mask::KeyedHash, &a), "same secret, same pseudonym");
        prop_assert_eq!(&h, &m1.pseudonym(&a));
        prop_assert_ne!(&h, &one(&other, Mask::KeyedHash, &a), "pseudonyms depend on the secret");
        if a != b {
            prop_assert_ne!(&h, &one(&m1, Mask::KeyedHash, &b));
        }
    }

    #[test]
    fn range_bucket_contains_the_value(v in -1.0e12f64..1.0e12, w in 1u64..1_000_000) {
        let out = apply(&udfs(), Mask::RangeBucket { width: w }, Arc::new(Float64Array::from(vec![v])));
        let s = out.as_string::<i32>().value(0).to_owned();
        let inner = s.strip_prefix('[').and_then(|s| s.strip_suffix(')')).expect("bucket shape");
        let (lo, hi) = inner.split_once(", ").expect("two bounds");
        let lo: f64 = lo.parse().expect("lo");
        let hi: f64 = hi.parse().expect("hi");
        prop_assert!(lo <= v && v < hi, "{} not in {}", v, s);
        prop_assert_eq!(lo % (w as f64), 0.0);
    }

    #[test]
    fn year_only_is_the_year(days in -100_000i32..100_000) {
        let out = apply(&udfs(), Mask::YearOnly, Arc::new(Date32Array::from(vec![days])));
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        let date = epoch + chrono::Duration::days(i64::from(days));
        prop_assert_eq!(out.as_primitive::<Int32Type>().value(0), date.year());
    }
}

#[test]
fn stricter_conventions() {
    let m = udfs();
    assert_eq!(one(&m, Mask::ResidentIdStrict, "37020219900101123X"), "3***************3X");
    assert_eq!(one(&m, Mask::MobilePrefix, "13812345678"), "138********");
    assert_eq!(one(&m, Mask::NameHidden, "张三"), "*");
    assert_eq!(one(&m, Mask::NameHidden, "欧阳娜娜"), "*");
    assert_eq!(strings(&m, Mask::NameHidden, &[None]), vec![None]);
    for (spec, mask) in [
        ("resident_id_strict", Mask::ResidentIdStrict),
        ("mobile_prefix", Mask::MobilePrefix),
        ("name_hidden", Mask::NameHidden),
    ] {
        assert_eq!(spec.parse::<Mask>(), Ok(mask));
        assert_eq!(mask.to_string(), spec);
        assert!(MASK_SPECS.contains(spec), "{spec} missing from MASK_SPECS");
        assert!(mask.applies_to(&DataType::Utf8) && !mask.applies_to(&DataType::Int64));
    }
}

fn principal(name: &str, organization: &str) -> crate::Principal {
    crate::Principal {
        name: name.to_owned(),
        identity: format!("spiffe://test/{name}"),
        organization: organization.to_owned(),
        role: crate::Role::Agency,
        purposes: vec!["p".to_owned()],
        duty_codes: vec!["p".to_owned()],
        licence: None,
        rate_limit: None,
        daily_quota: None,
    }
}

#[test]
fn keyed_hash_keys_are_per_organisation_or_per_principal() {
    let base = udfs();
    let a1 = principal("a1", "Org A");
    let a2 = principal("a2", "Org A");
    let b = principal("b", "Org B");
    let value = "37020219900101123X";
    let org = |p: &crate::Principal| one(&base.scoped(KeyedHashScope::Organization, p), Mask::KeyedHash, value);
    let own = |p: &crate::Principal| one(&base.scoped(KeyedHashScope::Principal, p), Mask::KeyedHash, value);
    // Stable: the same caller gets the same pseudonym every time (and from a
    // new `MaskUdfs` of the same secret, as after a restart).
    assert_eq!(org(&a1), org(&a1));
    assert_eq!(org(&a1), one(&udfs().scoped(KeyedHashScope::Organization, &a1), Mask::KeyedHash, value));
    // Per organisation: the principals of one organisation share pseudonyms,
    // another organisation's never match; none is the deployment-wide one.
    assert_eq!(org(&a1), org(&a2));
    assert_ne!(org(&a1), org(&b));
    assert_ne!(org(&a1), base.pseudonym(value));
    // Per principal: every principal its own.
    assert_eq!(own(&a1), own(&a1));
    assert_ne!(own(&a1), own(&a2));
    assert_ne!(own(&a1), org(&a1));
    // The other masks do not depend on the scope.
    assert_eq!(
        one(&base.scoped(KeyedHashScope::Organization, &b), Mask::ResidentId, value),
        one(&base, Mask::ResidentId, value)
    );
    assert_eq!(base.scoped(KeyedHashScope::Principal, &a1).pseudonym(value), own(&a1));
}

proptest! {
    #[test]
    fn stricter_masks_keep_what_they_say(id in "[1-9][0-9]{16}[0-9X]", mobile in "1[3-9][0-9]{9}", name in "[\u{4e00}-\u{9fa5}]{1,6}") {
        let m = udfs();
        check_partial(&id, &one(&m, Mask::ResidentIdStrict, &id), 1, 2)?;
        check_partial(&mobile, &one(&m, Mask::MobilePrefix, &mobile), 3, 0)?;
        prop_assert_eq!(one(&m, Mask::NameHidden, &name), "*");
    }

    #[test]
    fn scoped_pseudonyms_never_match_across_organisations(value in any::<String>(), a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
        prop_assume!(a != b);
        let base = udfs();
        let pa = base.scoped(KeyedHashScope::Organization, &principal("x", &a)).pseudonym(&value);
        let pb = base.scoped(KeyedHashScope::Organization, &principal("y", &b)).pseudonym(&value);
        prop_assert_ne!(pa, pb);
    }
}
