//! Fuzz harnesses for the parsers that read untrusted input: subject
//! identifiers, consent artefacts, policy files and the HTTP request bodies
//! (including the SQL gate).
//!
//! Each harness is a plain function taking arbitrary bytes. It must return
//! normally for every input; it panics only when a parser panics or when a
//! property the rest of creditgate relies on is broken (a value that parsed
//! does not parse again to itself, a refused statement kind that got through,
//! an untrusted consent that verified). The same functions are driven by
//! libFuzzer (`fuzz_targets/`, `cargo fuzz run <target>`) and, on the stable
//! toolchain, by the deterministic smoke test in `tests/smoke.rs`.

#![forbid(unsafe_code)]

pub mod smoke;

use chrono::{DateTime, NaiveDate, Utc};
use creditgate_consent::{CheckContext, ConsentArtefact, ConsentLedger, SubjectRef, TrustedIssuers};
use creditgate_engine::sql_gate::{MAX_SQL_BYTES, parse_query};
use creditgate_ident::{CreditCode, ResidentId, Subject, SubjectKind};
use creditgate_ops::lookup::LookupRequest;
use creditgate_policy::Policy;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast;
use serde::Deserialize;

/// The fixed "today" of the identifier checks, so a run is reproducible.
pub const FUZZ_TODAY: (i32, u32, u32) = (2025, 6, 30);

/// The fuzz targets, by name (also the folder names under `corpus/`).
pub const TARGETS: [&str; 4] = ["identifiers", "consent_artefact", "policy_file", "http_bodies"];

/// Runs the harness called `target` on `data`.
pub fn check(target: &str, data: &[u8]) {
    match target {
        "identifiers" => check_identifiers(data),
        "consent_artefact" => check_consent_artefact(data),
        "policy_file" => check_policy_file(data),
        "http_bodies" => check_http_bodies(data),
        other => panic!("no fuzz target `{other}`"),
    }
}

/// The input as text: valid UTF-8 as is, anything else decoded lossily (so
/// the text parsers still see the replacement characters).
fn text_of(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

fn today() -> NaiveDate {
    let (y, m, d) = FUZZ_TODAY;
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// Identifier validators: `CreditCode::parse`, `CreditCode::parse_lenient`,
/// `ResidentId::parse`/`parse_at`, `Subject::parse`, the check-character
/// helpers and `complete`. Never panic; whatever parses round-trips through
/// `as_str`.
pub fn check_identifiers(data: &[u8]) {
    let text = text_of(data);
    let s = text.as_str();

    if let Ok(code) = CreditCode::parse(s) {
        assert_eq!(code.as_str().chars().count(), 18, "a credit code is 18 characters: {code:?}");
        assert!(code.as_str().is_ascii(), "a credit code is ASCII: {code:?}");
        let again = CreditCode::parse(code.as_str()).expect("a parsed credit code parses again");
        assert_eq!(again, code, "credit code round trip");
        assert_eq!(code.to_string(), code.as_str());
        let _ = code.division_code();
        assert!(CreditCode::parse_lenient(s).expect("strict implies lenient").1.is_none());
    }
    match CreditCode::parse_lenient(s) {
        Ok((code, warning)) => {
            let (again, warning_again) = CreditCode::parse_lenient(code.as_str()).expect("lenient round trip");
            assert_eq!(again, code, "lenient credit code round trip");
            assert_eq!(warning.is_some(), warning_again.is_some(), "the check-character warning is stable");
            assert_eq!(CreditCode::parse(code.as_str()).is_ok(), warning.is_none(), "strict = lenient without warning");
            let _ = code.division_code();
        }
        Err(e) => {
            assert!(CreditCode::parse(s).is_err(), "lenient refused but strict accepted: {e}");
            let _ = e.to_string();
        }
    }

    let day = today();
    match ResidentId::parse_at(s, day) {
        Ok(id) => {
            assert_eq!(id.as_str().len(), 18, "a resident ID is 18 characters");
            let again = ResidentId::parse_at(id.as_str(), day).expect("a parsed resident ID parses again");
            assert!(again == id, "resident ID round trip");
            assert!(id.birth_date() <= day, "birth date not in the future");
            assert!(id.age_on(day) >= 0);
            assert_eq!(id.address_code().len(), 6);
            let _ = id.is_male();
            let _ = format!("{id:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    // Today's date: must not panic either (the gateway uses this one).
    let _ = ResidentId::parse(s);

    for kind in [SubjectKind::CreditCode, SubjectKind::ResidentId] {
        if let Ok(subject) = Subject::parse(kind, s) {
            assert_eq!(subject.kind(), kind);
            let again = Subject::parse(kind, subject.as_str()).expect("a parsed subject parses again");
            assert_eq!(again.as_str(), subject.as_str(), "subject round trip");
        }
        if let Ok(subject) = SubjectRef::parse(kind, s) {
            let json = serde_json::to_string(&subject).expect("a subject serialises");
            let back: SubjectRef = serde_json::from_str(&json).expect("a serialised subject deserialises");
            assert!(back == subject, "subject JSON round trip");
        }
    }

    let _ = creditgate_ident::credit_code_check_char(s);
    let _ = creditgate_ident::resident_id_check_digit(s);
    if let Ok(code) = CreditCode::complete(s) {
        CreditCode::parse(code.as_str()).expect("a completed credit code is valid");
    }
    if let Ok(id) = ResidentId::complete_at(s, day) {
        ResidentId::parse_at(id.as_str(), day).expect("a completed resident ID is valid");
    }
    let _ = creditgate_ident::is_valid_mobile(s);
}

/// A ledger that has never seen any consent.
struct EmptyLedger;

impl ConsentLedger for EmptyLedger {
    fn is_revoked(&self, _consent_id: &str) -> bool {
        false
    }
    fn uses(&self, _consent_id: &str) -> u32 {
        0
    }
}

/// Consent artefact parser: `ConsentArtefact::from_json` on the input as
/// UTF-8 never panics; an accepted artefact serialises and parses back to
/// itself, its canonical form and signing bytes can be computed, and it never
/// verifies against an empty list of trusted issuers.
pub fn check_consent_artefact(data: &[u8]) {
    let text = text_of(data);
    let artefact = match ConsentArtefact::from_json(&text) {
        Ok(artefact) => artefact,
        Err(refusal) => {
            let _ = refusal.to_string();
            let _ = refusal.code();
            // The gateway also parses artefacts embedded in a request body.
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
                let _ = ConsentArtefact::from_value(value);
            }
            return;
        }
    };
    let pretty = artefact.to_json_pretty().expect("an accepted artefact serialises");
    let back = ConsentArtefact::from_json(&pretty).expect("a serialised artefact parses again");
    assert_eq!(back, artefact, "artefact JSON round trip");
    let canonical = artefact.canonical_json().expect("canonical JSON");
    assert_eq!(back.canonical_json().expect("canonical JSON"), canonical, "canonical form is stable");
    let _ = artefact.signing_bytes();

    let issuers = TrustedIssuers::default();
    let now: DateTime<Utc> = artefact.valid_from;
    let context = CheckContext {
        issuers: &issuers,
        ledger: &EmptyLedger,
        caller_org: &artefact.grantee,
        subject: &artefact.subject,
        purpose: artefact.purposes.first().map(String::as_str).unwrap_or(""),
        datasets: &artefact.datasets,
        now,
    };
    if let Ok(verified) = creditgate_consent::verify(&artefact, &context) {
        panic!("a consent verified without any trusted issuer: {verified:?}");
    }
}

/// Policy file parser: `Policy::parse(text, "fuzz")` never panics; for an
/// accepted policy, every principal's grants and purpose checks can be
/// computed.
pub fn check_policy_file(data: &[u8]) {
    let text = text_of(data);
    let policy = match Policy::parse(&text, "fuzz") {
        Ok(policy) => policy,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for principal in policy.principals() {
        for grant in policy.grants_for(principal) {
            let _ = policy.grant_for(principal, grant.dataset.as_str());
        }
        let _ = policy.check_purpose(principal, None);
        let _ = policy.check_purpose(principal, Some("supervision"));
        let _ = policy.check_licence(principal, today());
    }
    let _ = policy.public_principal();
    for name in policy.datasets().keys() {
        let _ = policy.dataset(name.as_str());
    }
}

/// The body of `POST /v1/query` (same shape as the gateway's private
/// `QueryRequest`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// The SQL text.
    pub sql: String,
    /// The purpose code.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// HTTP request bodies: `serde_json::from_slice` into `LookupRequest` and
/// into the `/v1/query` body, then what the gateway does next with them
/// (subject identifier, embedded consent, the SQL gate), and
/// `sql_gate::parse_query` on the input as text. Never panics; the SQL gate
/// lets through only a single read-only statement of at most
/// `MAX_SQL_BYTES`.
pub fn check_http_bodies(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<LookupRequest>(data) {
        let _ = SubjectRef::parse(request.subject.kind, &request.subject.id);
        if let Some(consent) = request.consent {
            let _ = ConsentArtefact::from_value(consent);
        }
    }
    if let Ok(body) = serde_json::from_slice::<QueryBody>(data) {
        check_sql(&body.sql);
    }
    check_sql(&text_of(data));
}

fn check_sql(sql: &str) {
    match parse_query(sql) {
        Ok(parsed) => {
            assert!(sql.len() <= MAX_SQL_BYTES, "SQL over the size limit was accepted");
            let statement = parsed.statement;
            assert!(is_read_only(&statement), "the SQL gate let through `{statement}`");
        }
        Err(e) => {
            let _ = e.to_string();
            let _ = e.code();
        }
    }
}

/// A single query, or `DESCRIBE <table>`: what the SQL gate promises to let through.
fn is_read_only(statement: &Statement) -> bool {
    match statement {
        Statement::Statement(inner) => matches!(
            inner.as_ref(),
            ast::Statement::Query(_)
                | ast::Statement::ExplainTable {
                    describe_alias: ast::DescribeAlias::Describe | ast::DescribeAlias::Desc,
                    ..
                }
        ),
        _ => false,
    }
}
