//! Shared fixtures.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone as _, Utc};
use creditgate_consent::*;
use creditgate_ident::SubjectKind;

/// The GB 11643-1999 example number.
pub const RESIDENT_ID: &str = "11010519491231002X";
/// The same person's 15-digit first-generation number.
pub const RESIDENT_ID_15: &str = "110105491231002";
/// Another valid resident ID.
pub const OTHER_RESIDENT_ID: &str = "440524188001010014";

/// PKCS#8 v1 DER prefix of an Ed25519 private key (RFC 8410).
const PKCS8_V1_PREFIX: &str = "302e020100300506032b657004220420";

/// A deterministic issuer key from a 32-byte seed.
pub fn key_from_seed(seed: u8) -> IssuerKey {
    let der = hex::decode(format!("{PKCS8_V1_PREFIX}{}", hex::encode([seed; 32]))).expect("hex");
    IssuerKey::from_pkcs8(&der).expect("key")
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("timestamp").with_timezone(&Utc)
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 10, 12, 0, 0).single().expect("time")
}

pub fn person() -> SubjectRef {
    SubjectRef::parse(SubjectKind::ResidentId, RESIDENT_ID).expect("subject")
}

pub fn draft() -> ConsentDraft {
    ConsentDraft {
        consent_id: Some("cns-test-0001".to_owned()),
        issuer: "credit-platform".to_owned(),
        subject: person(),
        grantee: "credit-agency".to_owned(),
        purposes: vec!["credit_report".to_owned(), "loan_review".to_owned()],
        datasets: vec!["court.dishonest_debtors".to_owned(), "market.enterprises".to_owned()],
        columns: Some(BTreeMap::from([(
            "market.enterprises".to_owned(),
            vec!["name".to_owned(), "status".to_owned()],
        )])),
        data_from: Some(chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("date")),
        data_to: Some(chrono::NaiveDate::from_ymd_opt(2025, 12, 31).expect("date")),
        valid_from: t("2026-05-01T00:00:00Z"),
        valid_until: t("2026-05-31T00:00:00Z"),
        max_uses: 3,
    }
}

pub fn trusted(key: &IssuerKey) -> TrustedIssuers {
    let mut issuers = TrustedIssuers::default();
    issuers.add("credit-platform", key.public_key()).expect("add");
    issuers
}

/// A ledger with nothing revoked or used.
pub struct EmptyLedger;

impl ConsentLedger for EmptyLedger {
    fn is_revoked(&self, _: &str) -> bool {
        false
    }
    fn uses(&self, _: &str) -> u32 {
        0
    }
}

/// A subject-hash key for tests.
pub const HASH_KEY: &[u8] = b"test-subject-hash-key-0123456789";
