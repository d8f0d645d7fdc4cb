//! Keyed hashes of subject keys, so the log never holds raw identifiers.
//!
//! The same [`SubjectHasher`] (same deployment secret) is used when writing
//! records and when a privacy officer searches by subject, so a search for a
//! raw credit code or resident ID finds the records written for it.

use ring::hmac;

use crate::error::AuditError;

/// Length of a subject hash in hex characters (128 bits of HMAC-SHA-256).
pub const SUBJECT_HASH_LEN: usize = 32;

/// Minimum length of the deployment secret, in bytes.
pub const MIN_SUBJECT_SECRET_LEN: usize = 16;

/// A subject (company or person) identified by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectKey {
    /// Unified social credit code of an enterprise.
    CreditCode(String),
    /// Resident identity card number of a person.
    ResidentId(String),
}

impl SubjectKey {
    /// Parses `credit_code:<code>` or `resident_id:<id>`.
    pub fn parse(s: &str) -> Result<Self, AuditError> {
        let (kind, value) = s.split_once(':').ok_or_else(|| AuditError::InvalidSubjectKey {
            reason: "expected `credit_code:<code>` or `resident_id:<id>`".to_owned(),
        })?;
        let key = match kind.trim() {
            "credit_code" => SubjectKey::CreditCode(value.to_owned()),
            "resident_id" => SubjectKey::ResidentId(value.to_owned()),
            _ => {
                return Err(AuditError::InvalidSubjectKey {
                    reason: "subject kind must be `credit_code` or `resident_id`".to_owned(),
                });
            }
        };
        if key.normalised_value().is_empty() {
            return Err(AuditError::InvalidSubjectKey { reason: "subject key value is empty".to_owned() });
        }
        Ok(key)
    }

    /// The value with whitespace removed and ASCII letters upper-cased
    /// (credit codes and the resident-ID check character `X` are upper case).
    fn normalised_value(&self) -> String {
        let v = match self {
            SubjectKey::CreditCode(v) | SubjectKey::ResidentId(v) => v,
        };
        v.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
    }

    /// The normalised form that is hashed: `credit_code:<CODE>` / `resident_id:<ID>`.
    pub fn normalised(&self) -> String {
        let kind = match self {
            SubjectKey::CreditCode(_) => "credit_code",
            SubjectKey::ResidentId(_) => "resident_id",
        };
        format!("{kind}:{}", self.normalised_value())
    }
}

/// HMAC-SHA-256 of a normalised subject key under a deployment secret,
/// hex-encoded and shortened to [`SUBJECT_HASH_LEN`] characters.
#[derive(Clone)]
pub struct SubjectHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for SubjectHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectHasher(<secret>)")
    }
}

impl SubjectHasher {
    /// Creates a hasher from the deployment secret (at least
    /// [`MIN_SUBJECT_SECRET_LEN`] bytes; keep it out of the audit directory).
    pub fn new(secret: &[u8]) -> Result<Self, AuditError> {
        if secret.len() < MIN_SUBJECT_SECRET_LEN {
            return Err(AuditError::InvalidSubjectKey {
                reason: format!("the subject-hash secret must be at least {MIN_SUBJECT_SECRET_LEN} bytes"),
            });
        }
        Ok(SubjectHasher { key: hmac::Key::new(hmac::HMAC_SHA256, secret) })
    }

    /// The keyed hash of a subject.
    pub fn hash(&self, subject: &SubjectKey) -> String {
        let tag = hmac::sign(&self.key, subject.normalised().as_bytes());
        let mut h = hex::encode(tag.as_ref());
        h.truncate(SUBJECT_HASH_LEN);
        h
    }

    /// Parses `credit_code:<code>` / `resident_id:<id>` and hashes it.
    pub fn hash_str(&self, subject: &str) -> Result<String, AuditError> {
        Ok(self.hash(&SubjectKey::parse(subject)?))
    }
}

/// Whether `s` has the shape of a subject hash.
pub fn is_subject_hash(s: &str) -> bool {
    s.len() == SUBJECT_HASH_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
