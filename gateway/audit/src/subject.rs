//! Keyed hashes of subject keys, so the log never holds raw identifiers.
//!
//! The same [`SubjectHasher`] (same deployment secret) is used when writing
//! records and when a privacy officer searches by subject, so a search for a
//! raw credit code, resident ID or mobile number finds the records written
//! for it.

use ring::hmac;

use crate::error::AuditError;

/// Length of a subject hash in hex characters (128 bits of HMAC-SHA-256).
pub const SUBJECT_HASH_LEN: usize = 32;

/// Minimum length of the deployment secret, in bytes.
pub const MIN_SUBJECT_SECRET_LEN: usize = 16;

/// The kind of a [`SubjectKey`], as written before the colon of its text
/// form ([`SubjectKeyKind::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKeyKind {
    /// A unified social credit code (`credit_code`).
    CreditCode,
    /// A resident identity card number (`resident_id`).
    ResidentId,
    /// A mainland mobile number (`mobile`).
    Mobile,
}

impl SubjectKeyKind {
    /// Every kind, in the order [`SubjectKey::from_identifier`] tries them.
    pub const ALL: [SubjectKeyKind; 3] =
        [SubjectKeyKind::CreditCode, SubjectKeyKind::ResidentId, SubjectKeyKind::Mobile];

    /// The name used in the text form and in API answers: `credit_code`,
    /// `resident_id` or `mobile`.
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKeyKind::CreditCode => "credit_code",
            SubjectKeyKind::ResidentId => "resident_id",
            SubjectKeyKind::Mobile => "mobile",
        }
    }
}

impl std::fmt::Display for SubjectKeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subject (company or person) identified by its key.
///
/// `Debug` shows the kind only: a key holds personal data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum SubjectKey {
    /// Unified social credit code of an enterprise.
    CreditCode(String),
    /// Resident identity card number of a person (a 15-digit first-generation
    /// number is hashed in its 18-character form).
    ResidentId(String),
    /// Mainland mobile number of a person (11 digits).
    Mobile(String),
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SubjectKey::{}(<withheld>)", self.kind())
    }
}

impl SubjectKey {
    /// Parses `credit_code:<code>`, `resident_id:<id>` or `mobile:<digits>`.
    ///
    /// Credit codes and resident IDs are only normalised here (see
    /// [`SubjectKey::normalised`]); a mobile number must be 11 digits starting
    /// with `1` and 3–9 ([`creditgate_ident::Mobile`]).
    pub fn parse(s: &str) -> Result<Self, AuditError> {
        let (kind, value) = s.split_once(':').ok_or_else(|| AuditError::InvalidSubjectKey {
            reason: "expected `credit_code:<code>`, `resident_id:<id>` or `mobile:<digits>`".to_owned(),
        })?;
        let key = match kind.trim() {
            "credit_code" => SubjectKey::CreditCode(value.to_owned()),
            "resident_id" => SubjectKey::ResidentId(value.to_owned()),
            "mobile" => {
                let digits: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                if digits.is_empty() {
                    return Err(AuditError::InvalidSubjectKey { reason: "subject key value is empty".to_owned() });
                }
                let mobile = creditgate_ident::Mobile::parse(&digits)
                    .map_err(|e| AuditError::InvalidSubjectKey { reason: e.to_string() })?;
                SubjectKey::Mobile(mobile.as_str().to_owned())
            }
            _ => {
                return Err(AuditError::InvalidSubjectKey {
                    reason: "subject kind must be `credit_code`, `resident_id` or `mobile`".to_owned(),
                });
            }
        };
        if key.normalised_value().is_empty() {
            return Err(AuditError::InvalidSubjectKey { reason: "subject key value is empty".to_owned() });
        }
        Ok(key)
    }

    /// Recognises a raw identifier (no `kind:` prefix): a valid unified social
    /// credit code, else a valid resident ID (18 characters, or 15 digits
    /// upgraded to 18), else a valid mobile number. Surrounding whitespace is
    /// ignored. The error names the rule each kind failed, never the value.
    pub fn from_identifier(raw: &str) -> Result<Self, AuditError> {
        let raw = raw.trim();
        let code = match creditgate_ident::CreditCode::parse(raw) {
            Ok(code) => return Ok(SubjectKey::CreditCode(code.as_str().to_owned())),
            Err(e) => e,
        };
        let id = match creditgate_ident::ResidentId::parse(raw) {
            Ok(id) => return Ok(SubjectKey::ResidentId(id.as_str().to_owned())),
            Err(e) => e,
        };
        match creditgate_ident::Mobile::parse(raw) {
            Ok(m) => Ok(SubjectKey::Mobile(m.as_str().to_owned())),
            Err(mobile) => Err(AuditError::InvalidSubjectKey {
                reason: format!(
                    "not a valid unified social credit code ({code}), resident ID ({id}) nor mobile number ({mobile})"
                ),
            }),
        }
    }

    /// The kind of key.
    pub fn kind(&self) -> SubjectKeyKind {
        match self {
            SubjectKey::CreditCode(_) => SubjectKeyKind::CreditCode,
            SubjectKey::ResidentId(_) => SubjectKeyKind::ResidentId,
            SubjectKey::Mobile(_) => SubjectKeyKind::Mobile,
        }
    }

    /// The value with whitespace removed and ASCII letters upper-cased
    /// (credit codes and the resident-ID check character `X` are upper case);
    /// a valid 15-digit resident ID becomes its 18-character form, so both
    /// forms of one person's number hash alike.
    fn normalised_value(&self) -> String {
        let v = match self {
            SubjectKey::CreditCode(v) | SubjectKey::ResidentId(v) | SubjectKey::Mobile(v) => v,
        };
        let v: String = v.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
        if let SubjectKey::ResidentId(_) = self
            && v.len() == 15
            && let Ok(id) = creditgate_ident::ResidentId::parse(&v)
        {
            return id.as_str().to_owned();
        }
        v
    }

    /// The normalised form that is hashed: `credit_code:<CODE>`,
    /// `resident_id:<ID>` or `mobile:<DIGITS>`.
    pub fn normalised(&self) -> String {
        format!("{}:{}", self.kind().as_str(), self.normalised_value())
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

    /// Parses `credit_code:<code>` / `resident_id:<id>` / `mobile:<digits>`
    /// and hashes it.
    pub fn hash_str(&self, subject: &str) -> Result<String, AuditError> {
        Ok(self.hash(&SubjectKey::parse(subject)?))
    }

    /// A keyed digest of arbitrary bytes (for example a statement that is
    /// recorded only by size and digest): HMAC-SHA-256 under the same secret,
    /// domain-separated from subject hashes, shortened to
    /// [`SUBJECT_HASH_LEN`] hex characters. Keyed, so a short text (one
    /// identifier in a fixed query) cannot be found by trying candidates.
    pub fn digest(&self, bytes: &[u8]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DIGEST_CONTEXT);
        ctx.update(bytes);
        let mut h = hex::encode(ctx.sign().as_ref());
        h.truncate(SUBJECT_HASH_LEN);
        h
    }
}

/// Domain-separation prefix of [`SubjectHasher::digest`] (a subject key's
/// normalised form never starts with it).
const DIGEST_CONTEXT: &[u8] = b"creditgate-audit-text-digest-v1\n";

/// Whether `s` has the shape of a subject hash.
pub fn is_subject_hash(s: &str) -> bool {
    s.len() == SUBJECT_HASH_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
