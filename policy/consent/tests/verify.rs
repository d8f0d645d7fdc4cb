//! Verification: every refusal with its positive control, check order,
//! canonical encoding, tampering, identifier normalisation.

mod common;

use common::*;
use creditgate_consent::*;
use creditgate_ident::SubjectKind;

struct Req {
    caller_org: String,
    subject: SubjectRef,
    purpose: String,
    datasets: Vec<String>,
    now: chrono::DateTime<chrono::Utc>,
}

fn req() -> Req {
    Req {
        caller_org: "credit-agency".to_owned(),
        subject: person(),
        purpose: "credit_report".to_owned(),
        datasets: vec!["market.enterprises".to_owned()],
        now: now(),
    }
}

fn check(
    a: &ConsentArtefact,
    issuers: &TrustedIssuers,
    ledger: &dyn ConsentLedger,
    r: &Req,
) -> Result<VerifiedConsent, ConsentRefusal> {
    verify(
        a,
        &CheckContext {
            issuers,
            ledger,
            caller_org: &r.caller_org,
            subject: &r.subject,
            purpose: &r.purpose,
            datasets: &r.datasets,
            now: r.now,
        },
    )
}

fn fixture() -> (IssuerKey, TrustedIssuers, ConsentArtefact) {
    let key = key_from_seed(7);
    let issuers = trusted(&key);
    let a = issue(&key, draft()).expect("issue");
    (key, issuers, a)
}

#[test]
fn valid_consent_passes_and_exposes_its_scope() {
    let (_, issuers, a) = fixture();
    let v = check(&a, &issuers, &EmptyLedger, &req()).expect("valid consent");
    assert_eq!(v.consent_id(), "cns-test-0001");
    assert_eq!(v.issuer(), "credit-platform");
    assert_eq!(v.grantee(), "credit-agency");
    assert_eq!(v.purpose(), "credit_report");
    assert_eq!(v.datasets(), ["market.enterprises"]);
    assert_eq!(v.consented_datasets(), ["court.dishonest_debtors", "market.enterprises"]);
    assert_eq!(v.columns("market.enterprises"), Some(&["name".to_owned(), "status".to_owned()][..]));
    assert_eq!(v.columns("court.dishonest_debtors"), None);
    assert!(v.names_column("market.enterprises", "name"));
    assert!(!v.names_column("market.enterprises", "legal_rep_id"));
    assert_eq!(
        v.data_range(),
        (chrono::NaiveDate::from_ymd_opt(2020, 1, 1), chrono::NaiveDate::from_ymd_opt(2025, 12, 31))
    );
    assert_eq!(v.max_uses(), 3);
    assert_eq!(v.uses_before(), 0);
    assert_eq!(v.legal_basis(), "consent:cns-test-0001");
}

#[test]
fn empty_request_datasets_means_what_the_consent_covers() {
    let (_, issuers, a) = fixture();
    let mut r = req();
    r.datasets.clear();
    let v = check(&a, &issuers, &EmptyLedger, &r).expect("valid");
    assert_eq!(v.datasets(), v.consented_datasets());
}

#[test]
fn malformed() {
    let (key, issuers, a) = fixture();
    // Positive control.
    assert!(check(&a, &issuers, &EmptyLedger, &req()).is_ok());

    // A field outside its rule (changed after signing: shape runs before the signature check).
    let mut bad = a.clone();
    bad.max_uses = 0;
    assert_eq!(
        check(&bad, &issuers, &EmptyLedger, &req()).expect_err("max_uses 0"),
        ConsentRefusal::Malformed("max_uses: must be at least 1".to_owned())
    );
    let mut bad = a.clone();
    bad.purposes.clear();
    assert!(
        matches!(check(&bad, &issuers, &EmptyLedger, &req()), Err(ConsentRefusal::Malformed(m)) if m.starts_with("purposes"))
    );
    let mut bad = a.clone();
    bad.signature = "not base64!".to_owned();
    assert!(
        matches!(check(&bad, &issuers, &EmptyLedger, &req()), Err(ConsentRefusal::Malformed(m)) if m.starts_with("signature"))
    );

    // issue() applies the same rules.
    let mut d = draft();
    d.datasets.push("market.enterprises".to_owned());
    let err = issue(&key, d).expect_err("duplicate dataset");
    assert!(err.to_string().contains("listed twice"), "{err}");

    // JSON level: unknown field, missing field, bad identifier.
    let json = a.to_json_pretty().expect("json");
    let extra = json.replacen("{", "{\n  \"note\": \"x\",", 1);
    assert!(
        matches!(ConsentArtefact::from_json(&extra), Err(ConsentRefusal::Malformed(m)) if m.contains("unknown field"))
    );
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("value");
    v.as_object_mut().expect("object").remove("grantee");
    assert!(matches!(ConsentArtefact::from_value(v), Err(ConsentRefusal::Malformed(m)) if m.contains("grantee")));
    let bad_id = json.replace(RESIDENT_ID, "110105194912310021");
    let err = ConsentArtefact::from_json(&bad_id).expect_err("bad check digit");
    let msg = err.to_string();
    assert!(msg.contains("check digit"), "{msg}");
    assert!(!msg.contains("110105194912310021"), "the identifier is not echoed: {msg}");
    let numeric_id = json.replace(&format!("\"{RESIDENT_ID}\""), "110105194912310021");
    let msg = ConsentArtefact::from_json(&numeric_id).expect_err("numeric id").to_string();
    assert!(!msg.contains("110105194912310021"), "the identifier is not echoed: {msg}");
    assert_eq!(ConsentArtefact::from_json(&json).expect("round trip"), a);
}

#[test]
fn unknown_issuer() {
    let (key, issuers, a) = fixture();
    assert!(check(&a, &issuers, &EmptyLedger, &req()).is_ok());

    let other = TrustedIssuers::default();
    assert_eq!(
        check(&a, &other, &EmptyLedger, &req()).expect_err("unknown issuer"),
        ConsentRefusal::UnknownIssuer { issuer: "credit-platform".to_owned(), key_id: None }
    );
    // Known issuer, unknown key (e.g. the issuer rotated keys).
    let mut rotated = TrustedIssuers::default();
    rotated.add("credit-platform", key_from_seed(8).public_key()).expect("add");
    let err = check(&a, &rotated, &EmptyLedger, &req()).expect_err("unknown key");
    assert_eq!(
        err,
        ConsentRefusal::UnknownIssuer { issuer: "credit-platform".to_owned(), key_id: Some(key.key_id().to_owned()) }
    );
    // Both keys trusted: passes.
    rotated.add("credit-platform", key.public_key()).expect("add");
    assert!(check(&a, &rotated, &EmptyLedger, &req()).is_ok());
}

#[test]
fn bad_signature_on_any_change() {
    let (_, issuers, a) = fixture();
    assert!(check(&a, &issuers, &EmptyLedger, &req()).is_ok());

    type Tamper = (&'static str, fn(&mut ConsentArtefact));
    let tampers: Vec<Tamper> = vec![
        ("consent_id", |a| a.consent_id = "cns-test-0002".to_owned()),
        ("subject", |a| a.subject = SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("subject")),
        ("grantee", |a| a.grantee = "other-agency".to_owned()),
        ("purposes", |a| a.purposes.push("marketing".to_owned())),
        ("purposes order", |a| a.purposes.reverse()),
        ("datasets", |a| a.datasets.push("tax.violations".to_owned())),
        ("columns", |a| {
            a.columns.as_mut().expect("columns").insert("court.dishonest_debtors".to_owned(), vec!["name".to_owned()]);
        }),
        ("columns removed", |a| a.columns = None),
        ("data_from", |a| a.data_from = None),
        ("data_to", |a| a.data_to = chrono::NaiveDate::from_ymd_opt(2026, 12, 31)),
        ("valid_from", |a| a.valid_from -= chrono::Duration::seconds(1)),
        ("valid_until", |a| a.valid_until += chrono::Duration::days(365)),
        ("max_uses", |a| a.max_uses = 1000),
        ("signature", |a| {
            let mut sig = base64_decode(&a.signature);
            sig[10] ^= 1;
            a.signature = base64_encode(&sig);
        }),
    ];
    for (what, tamper) in tampers {
        let mut t = a.clone();
        tamper(&mut t);
        let err = check(&t, &issuers, &EmptyLedger, &req()).expect_err(what);
        assert!(matches!(err, ConsentRefusal::BadSignature { .. }), "{what}: {err:?}");
    }
    // Changing the issuer or key id makes it another issuer's or key's claim.
    let mut t = a.clone();
    t.issuer = "other-platform".to_owned();
    assert!(matches!(check(&t, &issuers, &EmptyLedger, &req()), Err(ConsentRefusal::UnknownIssuer { .. })));

    // A consent signed by another key under the same key id is refused too.
    let forger = key_from_seed(9);
    let mut forged = issue(&forger, draft()).expect("issue");
    forged.key_id = a.key_id.clone();
    assert!(matches!(check(&forged, &issuers, &EmptyLedger, &req()), Err(ConsentRefusal::BadSignature { .. })));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64")
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn validity_window() {
    let (_, issuers, a) = fixture();
    let mut r = req();
    for (now, ok) in [
        ("2026-04-30T23:58:59Z", false), // 61 s early
        ("2026-04-30T23:59:01Z", true),  // within the clock-skew allowance
        ("2026-05-01T00:00:00Z", true),
        ("2026-05-30T23:59:59Z", true),
        ("2026-05-31T00:00:00Z", false), // valid_until is exclusive
    ] {
        r.now = t(now);
        assert_eq!(check(&a, &issuers, &EmptyLedger, &r).is_ok(), ok, "{now}");
    }
    r.now = t("2026-04-01T00:00:00Z");
    let err = check(&a, &issuers, &EmptyLedger, &r).expect_err("early");
    assert_eq!(err, ConsentRefusal::NotYetValid { valid_from: t("2026-05-01T00:00:00Z") });
    assert!(err.to_string().contains("2026-05-01T00:00:00Z"), "{err}");
    r.now = t("2027-01-01T00:00:00Z");
    let err = check(&a, &issuers, &EmptyLedger, &r).expect_err("late");
    assert_eq!(err, ConsentRefusal::Expired { valid_until: t("2026-05-31T00:00:00Z") });
    assert_eq!(err.code(), "consent.expired");
}

#[test]
fn wrong_grantee() {
    let (_, issuers, a) = fixture();
    assert!(check(&a, &issuers, &EmptyLedger, &req()).is_ok());
    let mut r = req();
    r.caller_org = "payment-co".to_owned();
    let err = check(&a, &issuers, &EmptyLedger, &r).expect_err("other org");
    assert_eq!(
        err,
        ConsentRefusal::WrongGrantee { expected: "credit-agency".to_owned(), got: "payment-co".to_owned() }
    );
    assert!(err.to_string().contains("cannot be passed on"), "{err}");
    // Exact comparison.
    r.caller_org = "Credit-Agency".to_owned();
    assert!(matches!(check(&a, &issuers, &EmptyLedger, &r), Err(ConsentRefusal::WrongGrantee { .. })));
}

#[test]
fn wrong_subject_and_15_digit_normalisation() {
    let (key, issuers, a) = fixture();
    // The looked-up subject given in its 15-digit form is the same person.
    let mut r = req();
    r.subject = SubjectRef::parse(SubjectKind::ResidentId, RESIDENT_ID_15).expect("15-digit");
    assert_eq!(r.subject.id(), RESIDENT_ID);
    assert!(check(&a, &issuers, &EmptyLedger, &r).is_ok());
    // Lower-case x is the same person too.
    r.subject = SubjectRef::parse(SubjectKind::ResidentId, &RESIDENT_ID.to_lowercase()).expect("lower x");
    assert!(check(&a, &issuers, &EmptyLedger, &r).is_ok());

    // An artefact issued from the 15-digit number carries the 18-character one.
    let mut d = draft();
    d.subject = SubjectRef::parse(SubjectKind::ResidentId, RESIDENT_ID_15).expect("15-digit");
    let issued = issue(&key, d).expect("issue");
    assert_eq!(issued.subject.id(), RESIDENT_ID);
    assert_eq!(issued, a);
    // An artefact whose JSON carries the 15-digit form still verifies (canonical form is normalised).
    let json = a.to_json_pretty().expect("json").replace(RESIDENT_ID, RESIDENT_ID_15);
    let parsed = ConsentArtefact::from_json(&json).expect("parse");
    assert!(check(&parsed, &issuers, &EmptyLedger, &req()).is_ok());

    // Another person.
    r.subject = SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("other");
    let err = check(&a, &issuers, &EmptyLedger, &r).expect_err("other person");
    assert_eq!(err, ConsentRefusal::WrongSubject);
    assert!(!err.to_string().contains(OTHER_RESIDENT_ID) && !err.to_string().contains(RESIDENT_ID));
    // Another kind of subject.
    let code = creditgate_ident::CreditCode::complete("91350100M000100Y4").expect("credit code");
    r.subject = SubjectRef::parse(SubjectKind::CreditCode, code.as_str()).expect("credit code");
    assert_eq!(check(&a, &issuers, &EmptyLedger, &r).expect_err("enterprise"), ConsentRefusal::WrongSubject);
}

#[test]
fn purpose_not_covered() {
    let (_, issuers, a) = fixture();
    let mut r = req();
    r.purpose = "loan_review".to_owned();
    assert!(check(&a, &issuers, &EmptyLedger, &r).is_ok());
    r.purpose = "marketing".to_owned();
    let err = check(&a, &issuers, &EmptyLedger, &r).expect_err("purpose");
    assert_eq!(
        err,
        ConsentRefusal::PurposeNotCovered {
            purpose: "marketing".to_owned(),
            covered: vec!["credit_report".to_owned(), "loan_review".to_owned()]
        }
    );
    assert!(err.to_string().contains("credit_report, loan_review"), "{err}");
    // Control characters and length are not echoed.
    r.purpose = format!("x\n{}", "y".repeat(500));
    let ConsentRefusal::PurposeNotCovered { purpose, .. } = check(&a, &issuers, &EmptyLedger, &r).expect_err("p")
    else {
        panic!("wrong refusal")
    };
    assert!(!purpose.contains('\n') && purpose.len() <= MAX_PURPOSE_LEN);
}

#[test]
fn dataset_not_covered() {
    let (_, issuers, a) = fixture();
    let mut r = req();
    r.datasets = vec!["court.dishonest_debtors".to_owned(), "market.enterprises".to_owned()];
    assert!(check(&a, &issuers, &EmptyLedger, &r).is_ok());
    r.datasets.push("tax.violations".to_owned());
    r.datasets.push("payment.fraud_reports".to_owned());
    let err = check(&a, &issuers, &EmptyLedger, &r).expect_err("datasets");
    assert_eq!(
        err,
        ConsentRefusal::DatasetNotCovered {
            datasets: vec!["tax.violations".to_owned(), "payment.fraud_reports".to_owned()],
            covered: vec!["court.dishonest_debtors".to_owned(), "market.enterprises".to_owned()],
        }
    );
}

#[test]
fn revoked_and_uses_exhausted_with_the_store() {
    let (key, issuers, a) = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ConsentStore::open(dir.path(), HASH_KEY).expect("store");
    let hash = store.hash_subject(&a.subject);

    // Uses: max 3.
    for n in 1..=3 {
        let v = check(&a, &issuers, &store, &req()).expect("uses left");
        assert_eq!(v.uses_before(), n - 1);
        assert_eq!(store.try_use_verified(&v).expect("use"), n);
    }
    let err = check(&a, &issuers, &store, &req()).expect_err("used up");
    assert_eq!(err, ConsentRefusal::UsesExhausted { max: 3 });
    assert!(matches!(
        store.try_use(&a.issuer, &a.consent_id, 3, &a.subject),
        Err(ConsentError::Refused(ConsentRefusal::UsesExhausted { max: 3 }))
    ));

    // Revocation: a second consent, revoked before use; the first is unaffected by it.
    let mut d = draft();
    d.consent_id = Some("cns-test-0002".to_owned());
    let b = issue(&key, d).expect("issue");
    let v = check(&b, &issuers, &store, &req()).expect("not revoked yet");
    // Another issuer's revocation of the same id does not reach this consent.
    assert!(store.revoke(Some("other-issuer"), "cns-test-0002", "other-issuer", None).expect("revoke"));
    check(&b, &issuers, &store, &req()).expect("still not revoked: another issuer's id");
    assert!(store.revoke(Some("credit-platform"), "cns-test-0002", "credit-platform", Some(&hash)).expect("revoke"));
    let err = check(&b, &issuers, &store, &req()).expect_err("revoked");
    assert_eq!(err, ConsentRefusal::Revoked { consent_id: "cns-test-0002".to_owned() });
    // A permit obtained before the revocation can no longer be used.
    assert!(matches!(store.try_use_verified(&v), Err(ConsentError::Refused(ConsentRefusal::Revoked { .. }))));
    // Revoked takes precedence over exhausted (check order).
    store.revoke(Some(&a.issuer), &a.consent_id, "credit-platform", Some(&hash)).expect("revoke");
    assert!(matches!(check(&a, &issuers, &store, &req()), Err(ConsentRefusal::Revoked { .. })));
}

#[test]
fn checks_run_in_the_documented_order() {
    let (key, issuers, a) = fixture();
    // Everything about the request is wrong.
    let r = Req {
        caller_org: "payment-co".to_owned(),
        subject: SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("other"),
        purpose: "marketing".to_owned(),
        datasets: vec!["tax.violations".to_owned()],
        now: t("2027-01-01T00:00:00Z"),
    };
    let revoked_everything = RevokedLedger;
    let mut bad = a.clone();
    bad.max_uses = 0;
    bad.grantee = "x".to_owned();
    assert!(matches!(
        check(&bad, &TrustedIssuers::default(), &revoked_everything, &r),
        Err(ConsentRefusal::Malformed(_))
    ));
    assert!(matches!(
        check(&a, &TrustedIssuers::default(), &revoked_everything, &r),
        Err(ConsentRefusal::UnknownIssuer { .. })
    ));
    let mut tampered = a.clone();
    tampered.grantee = "payment-co".to_owned();
    assert!(matches!(check(&tampered, &issuers, &revoked_everything, &r), Err(ConsentRefusal::BadSignature { .. })));
    assert!(matches!(check(&a, &issuers, &revoked_everything, &r), Err(ConsentRefusal::Expired { .. })));
    let mut r = r;
    r.now = now();
    assert!(matches!(check(&a, &issuers, &revoked_everything, &r), Err(ConsentRefusal::WrongGrantee { .. })));
    r.caller_org = "credit-agency".to_owned();
    assert_eq!(check(&a, &issuers, &revoked_everything, &r), Err(ConsentRefusal::WrongSubject));
    r.subject = person();
    assert!(matches!(check(&a, &issuers, &revoked_everything, &r), Err(ConsentRefusal::PurposeNotCovered { .. })));
    r.purpose = "credit_report".to_owned();
    assert!(matches!(check(&a, &issuers, &revoked_everything, &r), Err(ConsentRefusal::DatasetNotCovered { .. })));
    r.datasets = vec!["market.enterprises".to_owned()];
    assert!(matches!(check(&a, &issuers, &revoked_everything, &r), Err(ConsentRefusal::Revoked { .. })));
    assert!(matches!(check(&a, &issuers, &UsedUp, &r), Err(ConsentRefusal::UsesExhausted { max: 3 })));
    assert!(check(&a, &issuers, &EmptyLedger, &r).is_ok());
    let _ = key;
}

struct RevokedLedger;
impl ConsentLedger for RevokedLedger {
    fn is_revoked(&self, _: &str) -> bool {
        true
    }
    fn uses(&self, _: &str) -> u32 {
        u32::MAX
    }
}

struct UsedUp;
impl ConsentLedger for UsedUp {
    fn is_revoked(&self, _: &str) -> bool {
        false
    }
    fn uses(&self, _: &str) -> u32 {
        3
    }
}

#[test]
fn refusal_codes_are_distinct() {
    let refusals = [
        ConsentRefusal::Malformed(String::new()),
        ConsentRefusal::UnknownIssuer { issuer: String::new(), key_id: None },
        ConsentRefusal::BadSignature { key_id: String::new() },
        ConsentRefusal::NotYetValid { valid_from: now() },
        ConsentRefusal::Expired { valid_until: now() },
        ConsentRefusal::WrongGrantee { expected: String::new(), got: String::new() },
        ConsentRefusal::WrongSubject,
        ConsentRefusal::PurposeNotCovered { purpose: String::new(), covered: vec![] },
        ConsentRefusal::DatasetNotCovered { datasets: vec![], covered: vec![] },
        ConsentRefusal::Revoked { consent_id: String::new() },
        ConsentRefusal::UsesExhausted { max: 1 },
    ];
    let codes: std::collections::BTreeSet<_> = refusals.iter().map(ConsentRefusal::code).collect();
    assert_eq!(codes.len(), refusals.len());
}

/// The documented canonical encoding, byte for byte, and a signature made
/// independently (Python `cryptography`, Ed25519, seed 0x07 × 32) over
/// `CANONICAL_PREFIX || canonical JSON`.
#[test]
fn canonical_encoding_known_vector() {
    let (key, issuers, a) = fixture();
    let expected = concat!(
        r#"{"columns":{"market.enterprises":["name","status"]},"consent_id":"cns-test-0001","#,
        r#""data_from":"2020-01-01","data_to":"2025-12-31","#,
        r#""datasets":["court.dishonest_debtors","market.enterprises"],"grantee":"credit-agency","#,
        r#""issuer":"credit-platform","key_id":"KEYID","max_uses":3,"#,
        r#""purposes":["credit_report","loan_review"],"#,
        r#""subject":{"id":"11010519491231002X","type":"resident_id"},"#,
        r#""valid_from":"2026-05-01T00:00:00Z","valid_until":"2026-05-31T00:00:00Z"}"#
    )
    .replace("KEYID", key.key_id());
    assert_eq!(a.canonical_json().expect("canonical"), expected);
    let mut msg = b"creditgate-consent-v1\n".to_vec();
    msg.extend_from_slice(expected.as_bytes());
    assert_eq!(a.signing_bytes().expect("bytes"), msg);
    assert_eq!(key.key_id(), GOLDEN_KEY_ID);
    assert_eq!(key.public_key_b64(), GOLDEN_PUBLIC_KEY);
    assert_eq!(a.signature, GOLDEN_SIGNATURE);
    assert!(check(&a, &issuers, &EmptyLedger, &req()).is_ok());
}

const GOLDEN_KEY_ID: &str = "fe812c12f3ab4ce6";
const GOLDEN_PUBLIC_KEY: &str = "6kpsY+KcUgq+9VB7Ey7F+ZVHdq6+vnuSQh7qaRRG0iw=";
const GOLDEN_SIGNATURE: &str =
    "xPYywS1W9WW0sgF+UtPu11GXk4RYFtJxCBAjSUg390HGQcyBK8Luu0YSfcLXARBTr3OT1vKdiDZo2Q7eGNXoCw==";

#[test]
fn canonical_encoding_is_stable_across_json_round_trips_and_offsets() {
    let (_, issuers, a) = fixture();
    let canonical = a.canonical_json().expect("canonical");
    // Pretty JSON → parse → same canonical form.
    let parsed = ConsentArtefact::from_json(&a.to_json_pretty().expect("json")).expect("parse");
    assert_eq!(parsed.canonical_json().expect("canonical"), canonical);
    // Compact JSON with keys in another order.
    let v: serde_json::Value = serde_json::to_value(&a).expect("value");
    let mut entries: Vec<(String, serde_json::Value)> = v.as_object().expect("object").clone().into_iter().collect();
    entries.reverse();
    let reordered = format!(
        "{{{}}}",
        entries
            .iter()
            .map(|(k, v)| format!("{}:{}", serde_json::Value::from(k.as_str()), v))
            .collect::<Vec<_>>()
            .join(",")
    );
    let parsed = ConsentArtefact::from_json(&reordered).expect("parse reordered");
    assert_eq!(parsed.canonical_json().expect("canonical"), canonical);
    // A timestamp written with an offset is the same instant.
    let json = a.to_json_pretty().expect("json").replace("2026-05-01T00:00:00Z", "2026-05-01T08:00:00+08:00");
    let parsed = ConsentArtefact::from_json(&json).expect("offset");
    assert_eq!(parsed.canonical_json().expect("canonical"), canonical);
    assert!(check(&parsed, &issuers, &EmptyLedger, &req()).is_ok());
    // Issuing twice gives the same bytes (Ed25519 is deterministic).
    let key = key_from_seed(7);
    assert_eq!(issue(&key, draft()).expect("issue"), a);
}

#[test]
fn trusted_issuers_from_config() {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        consent_issuers: Vec<IssuerConfig>,
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let k1 = key_from_seed(1);
    let k2 = key_from_seed(2);
    std::fs::write(dir.path().join("k2.pub"), format!("{}\n", k2.public_key_b64())).expect("write");
    let text = format!(
        "[[consent_issuers]]\nid = \"credit-platform\"\npublic_key = \"{}\"\n\n\
         [[consent_issuers]]\nid = \"credit-platform\"\npublic_key_file = \"k2.pub\"\n",
        k1.public_key_b64()
    );
    let config: Config = toml::from_str(&text).expect("toml");
    let issuers = TrustedIssuers::from_config(&config.consent_issuers, Some(dir.path())).expect("issuers");
    assert_eq!(issuers.issuer_ids().collect::<Vec<_>>(), ["credit-platform"]);
    assert_eq!(issuers.key_ids("credit-platform").expect("keys").count(), 2);

    // Every problem at once, each with its key.
    let text = "[[consent_issuers]]\nid = \"bad id\"\npublic_key = \"AAAA\"\n\n\
                [[consent_issuers]]\nid = \"x\"\n\n\
                [[consent_issuers]]\nid = \"y\"\npublic_key_file = \"missing.pub\"\n";
    let config: Config = toml::from_str(text).expect("toml");
    let Err(ConsentError::Config { issues }) = TrustedIssuers::from_config(&config.consent_issuers, Some(dir.path()))
    else {
        panic!("expected a config error")
    };
    assert_eq!(issues.len(), 4, "{issues:#?}");
    assert!(issues[0].starts_with("consent_issuers[0].id"));
    assert!(issues[1].starts_with("consent_issuers[0].public_key") && issues[1].contains("32"));
    assert!(issues[2].starts_with("consent_issuers[1].public_key"));
    assert!(issues[3].starts_with("consent_issuers[2].public_key_file"));

    // An empty trust list is refused.
    assert!(matches!(TrustedIssuers::from_config(&[], None), Err(ConsentError::Config { .. })));
    // Unknown keys are refused.
    assert!(toml::from_str::<Config>("[[consent_issuers]]\nid = \"x\"\npublic_keys = \"y\"\n").is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any issued consent survives a JSON round trip with the same canonical
    /// bytes and verifies; changing any one signed field breaks the signature.
    #[test]
    fn issued_consents_round_trip_and_resist_tampering(
        purposes in proptest::sample::subsequence(vec!["credit_report", "loan_review", "onboarding", "audit_2"], 1..=4),
        datasets in proptest::sample::subsequence(vec!["court.dishonest_debtors", "market.enterprises", "tax.ratings"], 1..=3),
        max_uses in 1u32..=1000,
        days in 1i64..=400,
        offset_secs in 0i64..86_400,
        id_suffix in "[a-z0-9]{1,20}",
        field in 0usize..8,
    ) {
        let key = key_from_seed(3);
        let mut d = draft();
        d.consent_id = Some(format!("cns-{id_suffix}"));
        d.purposes = purposes.iter().map(|p| p.to_string()).collect();
        d.datasets = datasets.iter().map(|p| p.to_string()).collect();
        d.columns = None;
        d.max_uses = max_uses;
        d.valid_from = now() - chrono::Duration::seconds(offset_secs);
        d.valid_until = d.valid_from + chrono::Duration::days(days);
        let a = issue(&key, d).expect("issue");
        let parsed = ConsentArtefact::from_json(&a.to_json_pretty().expect("json")).expect("parse");
        proptest::prop_assert_eq!(parsed.canonical_json().expect("c"), a.canonical_json().expect("c"));
        let mut r = req();
        r.purpose = a.purposes[0].clone();
        r.datasets = a.datasets.clone();
        proptest::prop_assert!(check(&parsed, &trusted(&key), &EmptyLedger, &r).is_ok());

        let mut t = parsed.clone();
        match field {
            0 => t.consent_id.push('x'),
            1 => t.grantee.push('x'),
            2 => t.purposes.push("extra".to_owned()),
            3 => t.datasets.push("extra.table".to_owned()),
            4 => t.max_uses = t.max_uses.wrapping_add(1).max(1),
            5 => t.valid_until += chrono::Duration::seconds(1),
            6 => t.data_to = None,
            _ => t.subject = SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("s"),
        }
        let result = check(&t, &trusted(&key), &EmptyLedger, &r);
        proptest::prop_assert!(matches!(result, Err(ConsentRefusal::BadSignature { .. })), "{:?}", result);
    }
}
