#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
}

// ---------------------------------------------------------------------------
// Independent reference implementations, written the plain way.

/// Credit-code check character: weights computed as 3^(i-1) mod 31 by loop.
fn ref_credit_check(first17: &str) -> char {
    let charset: Vec<char> = "0123456789ABCDEFGHJKLMNPQRTUWXY".chars().collect();
    let mut sum = 0u64;
    let mut weight = 1u64;
    for c in first17.chars() {
        let value = charset.iter().position(|&x| x == c).unwrap() as u64;
        sum += value * weight;
        weight = (weight * 3) % 31;
    }
    charset[((31 - sum % 31) % 31) as usize]
}

/// Resident-ID check digit: weight of position i is 2^(18-i) mod 11, and the
/// check value c satisfies (sum + c) ≡ 1 (mod 11).
fn ref_resident_check(first17: &str) -> char {
    let mut sum = 0u64;
    for (idx, c) in first17.chars().enumerate() {
        let i = idx as u32 + 1;
        let weight = 2u64.pow(18 - i) % 11;
        sum += u64::from(c.to_digit(10).unwrap()) * weight;
    }
    let c = (12 - sum % 11) % 11;
    if c == 10 { 'X' } else { char::from_digit(c as u32, 10).unwrap() }
}

const CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

fn credit_prefix() -> impl Strategy<Value = String> {
    proptest::collection::vec(0usize..31, 17)
        .prop_map(|v| v.into_iter().map(|i| CHARSET.as_bytes()[i] as char).collect())
}

/// 17 digits: address code, a real past birth date, sequence.
fn resident_prefix() -> impl Strategy<Value = String> {
    (100_000u32..=999_999, 1900i32..=2020, 1u32..=12, 1u32..=28, 0u32..=999)
        .prop_map(|(addr, y, m, d, seq)| format!("{addr:06}{y:04}{m:02}{d:02}{seq:03}"))
}

/// Any printable ASCII character plus a few non-ASCII ones.
fn replacement_char() -> impl Strategy<Value = char> {
    prop_oneof![(0x21u8..0x7f).prop_map(char::from), Just('中'), Just('Ｘ'), Just(' '),]
}

fn replace_at(s: &str, pos: usize, c: char) -> String {
    s.chars().enumerate().map(|(i, x)| if i == pos { c } else { x }).collect()
}

proptest! {
    #[test]
    fn prop_completed_credit_codes_are_accepted(prefix in credit_prefix()) {
        let code = CreditCode::complete(&prefix).unwrap();
        let parsed = CreditCode::parse(code.as_str()).unwrap();
        prop_assert_eq!(&parsed, &code);
        prop_assert_eq!(CreditCode::parse(&code.as_str().to_lowercase()).unwrap(), code.clone());
        prop_assert_eq!(CreditCode::parse(&format!("  {code}\n")).unwrap(), code);
    }

    #[test]
    fn prop_credit_check_matches_reference(prefix in credit_prefix()) {
        prop_assert_eq!(credit_code_check_char(&prefix).unwrap(), ref_credit_check(&prefix));
    }

    #[test]
    fn prop_credit_single_change_rejected(prefix in credit_prefix(), pos in 0usize..18, c in replacement_char()) {
        let code = CreditCode::complete(&prefix).unwrap();
        let original = code.as_str().chars().nth(pos).unwrap();
        prop_assume!(c.to_ascii_uppercase() != original);
        let changed = replace_at(code.as_str(), pos, c);
        prop_assert!(CreditCode::parse(&changed).is_err(), "accepted {changed}");
    }

    #[test]
    fn prop_credit_single_change_to_valid_symbol_is_a_check_error(
        prefix in credit_prefix(), pos in 0usize..18, v in 0usize..31,
    ) {
        let code = CreditCode::complete(&prefix).unwrap();
        let c = CHARSET.as_bytes()[v] as char;
        prop_assume!(code.as_str().chars().nth(pos) != Some(c));
        let changed = replace_at(code.as_str(), pos, c);
        prop_assert_eq!(
            CreditCode::parse(&changed).unwrap_err(),
            IdentError::CheckCharacter { kind: SubjectKind::CreditCode }
        );
        // Lenient mode keeps the code and reports the same problem as a warning.
        let (kept, warning) = CreditCode::parse_lenient(&changed).unwrap();
        prop_assert_eq!(kept.as_str(), changed.as_str());
        prop_assert!(warning.is_some());
    }

    #[test]
    fn prop_completed_resident_ids_are_accepted(prefix in resident_prefix()) {
        let id = ResidentId::complete_at(&prefix, today()).unwrap();
        prop_assert_eq!(ResidentId::parse_at(id.as_str(), today()).unwrap(), id.clone());
        prop_assert_eq!(ResidentId::parse_at(&id.as_str().to_lowercase(), today()).unwrap(), id);
    }

    #[test]
    fn prop_resident_check_matches_reference(prefix in "[0-9]{17}") {
        prop_assert_eq!(resident_id_check_digit(&prefix).unwrap(), ref_resident_check(&prefix));
    }

    #[test]
    fn prop_resident_single_change_rejected(prefix in resident_prefix(), pos in 0usize..18, c in replacement_char()) {
        let id = ResidentId::complete_at(&prefix, today()).unwrap();
        let original = id.as_str().chars().nth(pos).unwrap();
        prop_assume!(c.to_ascii_uppercase() != original);
        let changed = replace_at(id.as_str(), pos, c);
        prop_assert!(ResidentId::parse_at(&changed, today()).is_err(), "accepted {changed}");
    }

    #[test]
    fn prop_fifteen_digit_round_trip(
        addr in 100_000u32..=999_999, yy in 0u32..=99, m in 1u32..=12, d in 1u32..=28, seq in 0u32..=999,
    ) {
        let old = format!("{addr:06}{yy:02}{m:02}{d:02}{seq:03}");
        let id = ResidentId::parse_at(&old, today()).unwrap();
        let s = id.as_str();
        prop_assert_eq!(s.len(), 18);
        prop_assert_eq!(&s[6..8], "19");
        // Dropping the inserted century and the check digit gives the old number back.
        prop_assert_eq!(format!("{}{}", &s[..6], &s[8..17]), old.clone());
        prop_assert_eq!(s.chars().last().unwrap(), ref_resident_check(&s[..17]));
        prop_assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1900 + yy as i32, m, d).unwrap());
        prop_assert_eq!(id.address_code(), &old[..6]);
        prop_assert_eq!(id.is_male(), seq % 2 == 1);
        // The upgraded number parses as an 18-character ID to the same value.
        prop_assert_eq!(ResidentId::parse_at(s, today()).unwrap(), id);
    }
}

// ---------------------------------------------------------------------------
// Examples and accessors.

#[test]
fn credit_code_example_passes() {
    let code = CreditCode::parse("91350100M000100Y43").unwrap();
    assert_eq!(code.as_str(), "91350100M000100Y43");
    assert_eq!(code.division_code(), "350100");
    assert_eq!(code.to_string(), "91350100M000100Y43");
    assert_eq!(credit_code_check_char("91350100M000100Y4").unwrap(), '3');
    assert_eq!(CreditCode::complete("91350100m000100y4").unwrap().as_str(), "91350100M000100Y43");
    let (lenient, warning) = CreditCode::parse_lenient("91350100M000100Y43").unwrap();
    assert_eq!(lenient, code);
    assert!(warning.is_none());
}

#[test]
fn credit_code_weights_are_powers_of_three() {
    let mut w = 1;
    for expected in CREDIT_CODE_WEIGHTS {
        assert_eq!(expected, w);
        w = w * 3 % 31;
    }
}

#[test]
fn resident_id_example_passes() {
    let id = ResidentId::parse_at("11010519491231002X", today()).unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
    assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1949, 12, 31).unwrap());
    assert!(!id.is_male());
    assert_eq!(id.address_code(), "110105");
    assert_eq!(id.age_on(today()), 76);
    assert_eq!(resident_id_check_digit("11010519491231002").unwrap(), 'X');
    // Lowercase x is normalised.
    assert_eq!(ResidentId::parse_at("11010519491231002x", today()).unwrap().as_str(), "11010519491231002X");
    // `parse` uses today's date; 1949 is in the past.
    assert_eq!(ResidentId::parse("11010519491231002X").unwrap(), id);
    assert_eq!(ResidentId::complete("11010519491231002").unwrap(), id);
}

#[test]
fn resident_id_debug_is_masked() {
    let id = ResidentId::parse_at("11010519491231002X", today()).unwrap();
    let dbg = format!("{id:?}");
    assert_eq!(dbg, "ResidentId(\"110105********002X\")");
    assert!(!dbg.contains("19491231"));
}

#[test]
fn resident_id_weights_are_powers_of_two() {
    for (i, w) in RESIDENT_ID_WEIGHTS.iter().enumerate() {
        assert_eq!(*w, 2u32.pow(17 - i as u32) % 11);
    }
}

#[test]
fn fifteen_digit_example() {
    // 110105491231002 -> 110105 19 491231002 + check digit.
    let id = ResidentId::parse_at("110105491231002", today()).unwrap();
    assert_eq!(id.as_str(), "11010519491231002X");
}

#[test]
fn mobile_numbers() {
    assert!(is_valid_mobile("13812345678"));
    assert!(is_valid_mobile("19912345678"));
    assert!(!is_valid_mobile("12812345678"), "second digit 2");
    assert!(!is_valid_mobile("10812345678"), "second digit 0");
    assert!(!is_valid_mobile("23812345678"), "must start with 1");
    assert!(!is_valid_mobile("1381234567"), "10 digits");
    assert!(!is_valid_mobile("138123456789"), "12 digits");
    assert!(!is_valid_mobile("1381234567a"));
    assert!(!is_valid_mobile(" 13812345678"));
    assert!(!is_valid_mobile("1３812345678"));
}

#[test]
fn subject_kind_names_and_serde() {
    assert_eq!(SubjectKind::CreditCode.field_name(), "credit_code");
    assert_eq!(SubjectKind::ResidentId.field_name(), "resident_id");
    assert_eq!(serde_json_like(SubjectKind::CreditCode), "credit_code");
    assert_eq!(serde_json_like(SubjectKind::ResidentId), "resident_id");
}

/// Serialises a unit variant through serde's string serialiser without
/// pulling in a JSON crate.
fn serde_json_like(kind: SubjectKind) -> String {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};
    let name = match kind {
        SubjectKind::CreditCode => "credit_code",
        SubjectKind::ResidentId => "resident_id",
    };
    let de: StrDeserializer<'_, Error> = name.into_deserializer();
    let back = SubjectKind::deserialize(de).unwrap();
    assert_eq!(back, kind);
    name.to_owned()
}

#[test]
fn subject_parse() {
    let s = Subject::parse(SubjectKind::CreditCode, "91350100M000100Y43").unwrap();
    assert!(matches!(s, Subject::Enterprise(_)));
    assert_eq!(s.kind(), SubjectKind::CreditCode);
    assert_eq!(s.as_str(), "91350100M000100Y43");
    let p = Subject::parse(SubjectKind::ResidentId, "11010519491231002X").unwrap();
    assert!(matches!(p, Subject::Individual(_)));
    assert_eq!(p.kind(), SubjectKind::ResidentId);
    // Negative controls: each kind refuses the other's identifier.
    assert!(Subject::parse(SubjectKind::CreditCode, "11010519491231002X").is_err());
    assert!(Subject::parse(SubjectKind::ResidentId, "91350100M000100Y43").is_err());
}

// ---------------------------------------------------------------------------
// Error messages, one per rule.

fn credit_err(s: &str) -> String {
    CreditCode::parse(s).unwrap_err().to_string()
}

fn resident_err(s: &str) -> String {
    ResidentId::parse_at(s, today()).unwrap_err().to_string()
}

#[test]
fn message_credit_code_length() {
    assert_eq!(credit_err("91350100M000100Y4"), "unified social credit code: must be 18 characters, got 17");
    assert_eq!(credit_err("   "), "unified social credit code: must be 18 characters, got 0");
}

#[test]
fn message_credit_code_character() {
    assert_eq!(
        credit_err("9135I100M000100Y43"),
        "unified social credit code: character 'I' at position 5 is not allowed \
         (GB 32100-2015 uses 0-9 and A-Y without I, O, Z, S, V)"
    );
    assert!(credit_err("9135010OM000100Y43").contains("character 'O' at position 8"));
    assert!(credit_err("91350100M000100Y4中").contains("character '中' at position 18"));
}

#[test]
fn message_credit_code_check() {
    let msg = credit_err("91350100M000100Y44");
    assert_eq!(msg, "unified social credit code: check character is wrong (GB 32100-2015, MOD 31)");
    assert!(!msg.contains("91350100M000100Y4"));
}

#[test]
fn message_credit_code_prefix_length() {
    assert_eq!(
        credit_code_check_char("9135").unwrap_err().to_string(),
        "unified social credit code: must be 17 characters before the check character, got 4"
    );
}

#[test]
fn lenient_credit_code() {
    let (code, warning) = CreditCode::parse_lenient("91350100M000100Y44").unwrap();
    assert_eq!(code.as_str(), "91350100M000100Y44");
    assert_eq!(warning, Some(IdentError::CheckCharacter { kind: SubjectKind::CreditCode }));
    // Shape errors still fail in lenient mode.
    assert!(matches!(CreditCode::parse_lenient("91350100M000100Y4"), Err(IdentError::Length { .. })));
    assert!(matches!(CreditCode::parse_lenient("9135I100M000100Y43"), Err(IdentError::Character { .. })));
}

#[test]
fn message_resident_id_check() {
    let msg = resident_err("110105194912310021");
    assert_eq!(msg, "resident ID: check digit is wrong (GB 11643-1999, ISO 7064 MOD 11-2)");
    assert!(!msg.contains("11010519491231"));
}

#[test]
fn message_resident_id_length() {
    assert_eq!(
        resident_err("1101051949123100"),
        "resident ID: must be 18 characters (or 15 digits for a first-generation number), got 16"
    );
}

#[test]
fn message_resident_id_character() {
    assert_eq!(
        resident_err("1101051949123100X2"),
        "resident ID: character 'X' at position 17 is not allowed \
         (GB 11643-1999 uses digits 0-9, with X allowed only as the last (check) character)"
    );
    assert_eq!(
        resident_err("11010549123100A"),
        "resident ID: character 'A' at position 15 is not allowed \
         (a 15-digit first-generation number has digits only)"
    );
}

#[test]
fn message_resident_id_birth_date_invalid() {
    let first17 = "11010519491331002";
    let id = format!("{first17}{}", resident_id_check_digit(first17).unwrap());
    assert_eq!(resident_err(&id), "resident ID: birth date 19491331 is not a real date");
    // 29 February only in leap years.
    let first17 = "11010519490229002";
    let id = format!("{first17}{}", resident_id_check_digit(first17).unwrap());
    assert_eq!(resident_err(&id), "resident ID: birth date 19490229 is not a real date");
    let first17 = "11010520000229002";
    let id = format!("{first17}{}", resident_id_check_digit(first17).unwrap());
    assert!(ResidentId::parse_at(&id, today()).is_ok());
}

#[test]
fn message_resident_id_birth_date_future() {
    let first17 = "11010520261129002";
    let id = format!("{first17}{}", resident_id_check_digit(first17).unwrap());
    assert_eq!(resident_err(&id), "resident ID: birth date 20261129 is in the future");
    // The day itself is allowed.
    let first17 = "11010520261128002";
    assert!(ResidentId::complete_at(first17, today()).is_ok());
}

#[test]
fn message_resident_prefix() {
    assert_eq!(
        resident_id_check_digit("1101051949123100").unwrap_err().to_string(),
        "resident ID: must be 17 digits before the check digit, got 16"
    );
    assert!(
        resident_id_check_digit("1101051949123100X").unwrap_err().to_string().contains("character 'X' at position 17")
    );
}

// ---------------------------------------------------------------------------
// Mobile numbers.

/// Reference rule, written the plain way: 11 characters, all digits, `1`
/// first, second in 3..=9.
fn ref_mobile(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    chars.len() == 11
        && chars.iter().all(char::is_ascii_digit)
        && chars[0] == '1'
        && ['3', '4', '5', '6', '7', '8', '9'].contains(&chars[1])
}

proptest! {
    #[test]
    fn prop_valid_mobiles_are_accepted(second in 3u8..=9, rest in "[0-9]{9}") {
        let number = format!("1{second}{rest}");
        let m = Mobile::parse(&number).unwrap();
        prop_assert_eq!(m.as_str(), number.as_str());
        prop_assert_eq!(m.to_string(), number.clone());
        prop_assert!(is_valid_mobile(&number));
        // Surrounding whitespace: trimmed by parse, refused by is_valid_mobile.
        prop_assert_eq!(Mobile::parse(&format!(" {number}\n")).unwrap(), m);
        let padded = format!(" {number}");
        prop_assert!(!is_valid_mobile(&padded));
    }

    #[test]
    fn prop_mobile_matches_reference(s in "[0-9a-z中]{0,13}") {
        prop_assert_eq!(Mobile::parse(&s).is_ok(), ref_mobile(&s), "{}", s);
        prop_assert_eq!(is_valid_mobile(&s), ref_mobile(&s), "{}", s);
    }

    #[test]
    fn prop_mobile_wrong_prefix_rejected(first in 0u8..=9, second in 0u8..=9, rest in "[0-9]{9}") {
        prop_assume!(first != 1 || second < 3);
        let number = format!("{first}{second}{rest}");
        prop_assert_eq!(Mobile::parse(&number).unwrap_err(), IdentError::MobilePrefix);
    }

    #[test]
    fn prop_mobile_single_change_to_non_digit_rejected(
        second in 3u8..=9, rest in "[0-9]{9}", pos in 0usize..11, c in replacement_char(),
    ) {
        prop_assume!(!c.is_ascii_digit());
        let number = format!("1{second}{rest}");
        let changed = replace_at(&number, pos, c);
        prop_assert!(Mobile::parse(&changed).is_err(), "accepted {}", changed);
    }
}

#[test]
fn mobile_parse_and_messages() {
    let m = Mobile::parse("13812345678").unwrap();
    assert_eq!(m.as_str(), "13812345678");
    assert_eq!("13812345678".parse::<Mobile>().unwrap(), m);
    assert_eq!(
        Mobile::parse("1381234567").unwrap_err().to_string(),
        "mobile number: must be 11 digits, got 10 characters"
    );
    assert_eq!(
        Mobile::parse("1381234567a").unwrap_err().to_string(),
        "mobile number: character 'a' at position 11 is not allowed (digits 0-9 only)"
    );
    assert_eq!(
        Mobile::parse("12812345678").unwrap_err().to_string(),
        "mobile number: must start with 1 followed by a digit 3-9 (mainland numbering plan)"
    );
    assert!(Mobile::parse("1３812345678").is_err(), "full-width digit");
    // No message repeats the number.
    for bad in ["1381234567", "1381234567a", "12812345678", "138123456789"] {
        let msg = Mobile::parse(bad).unwrap_err().to_string();
        assert!(!msg.contains("1381234"), "{msg}");
        assert!(!msg.contains("1281234"), "{msg}");
    }
}

#[test]
fn mobile_debug_is_masked_and_serde_validates() {
    let m = Mobile::parse("13812345678").unwrap();
    assert_eq!(format!("{m:?}"), "Mobile(\"138****5678\")");
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StringDeserializer};
    let de: StringDeserializer<Error> = "13812345678".to_owned().into_deserializer();
    assert_eq!(Mobile::deserialize(de).unwrap(), m);
    let bad: StringDeserializer<Error> = "12812345678".to_owned().into_deserializer();
    assert!(Mobile::deserialize(bad).is_err());
    assert_eq!(String::from(m), "13812345678");
}
