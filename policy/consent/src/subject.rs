//! The data subject a consent is about, and its keyed hash.

use std::fmt;

use creditgate_ident::{IdentError, Subject, SubjectKind};
use ring::hmac;
use serde::{Deserialize, Serialize};

/// Length of a subject hash in hex characters (128 bits of HMAC-SHA-256).
pub const SUBJECT_HASH_LEN: usize = 32;

/// A validated subject reference: identifier kind and identifier, in the
/// normalised form produced by `creditgate_ident` (credit codes upper-case;
/// resident IDs 18 characters with an upper-case `X`, 15-digit numbers
/// upgraded).
///
/// JSON form: `{"type": "credit_code" | "resident_id", "id": "…"}`.
/// Deserialising validates and normalises, so a value of this type always
/// holds a valid identifier. `Debug` masks a resident ID.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSubject", into = "RawSubject")]
pub struct SubjectRef(Subject);

/// The JSON shape of a [`SubjectRef`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubject {
    #[serde(rename = "type")]
    kind: SubjectKind,
    id: String,
}

impl TryFrom<RawSubject> for SubjectRef {
    type Error = IdentError;
    fn try_from(raw: RawSubject) -> Result<Self, Self::Error> {
        SubjectRef::parse(raw.kind, &raw.id)
    }
}

impl From<SubjectRef> for RawSubject {
    fn from(s: SubjectRef) -> Self {
        RawSubject { kind: s.kind(), id: s.id().to_owned() }
    }
}

impl SubjectRef {
    /// Validates `id` as an identifier of kind `kind` (GB 32100-2015 check
    /// character, GB 11643-1999 check digit and birth date) and normalises it.
    pub fn parse(kind: SubjectKind, id: &str) -> Result<SubjectRef, IdentError> {
        Subject::parse(kind, id).map(SubjectRef)
    }

    /// The identifier kind.
    pub fn kind(&self) -> SubjectKind {
        self.0.kind()
    }

    /// The normalised identifier.
    pub fn id(&self) -> &str {
        self.0.as_str()
    }

    /// The validated subject.
    pub fn subject(&self) -> &Subject {
        &self.0
    }
}

impl From<Subject> for SubjectRef {
    fn from(s: Subject) -> Self {
        SubjectRef(s)
    }
}

impl fmt::Debug for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Subject::Enterprise(code) => write!(f, "SubjectRef(credit_code {})", code.as_str()),
            Subject::Individual(id) => write!(f, "SubjectRef(resident_id {id:?})"),
        }
    }
}

/// The keyed hash of a subject that the consent store keeps instead of the
/// identifier: HMAC-SHA-256 with the deployment's subject-hash key over
/// `"<type>:<normalised id>"` (e.g. `resident_id:11010519491231002X`), hex,
/// first [`SUBJECT_HASH_LEN`] characters.
pub fn subject_hash(key: &[u8], subject: &SubjectRef) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let msg = format!("{}:{}", subject.kind().field_name(), subject.id());
    let mut out = hex::encode(hmac::sign(&key, msg.as_bytes()).as_ref());
    out.truncate(SUBJECT_HASH_LEN);
    out
}

/// Whether `s` has the shape of a [`subject_hash`] (32 lower-case hex digits).
pub fn is_subject_hash(s: &str) -> bool {
    s.len() == SUBJECT_HASH_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
