//! The consent artefact, its shape rules, its canonical encoding and issuing.

pub(crate) use creditgate_ident::{is_dataset_name as is_dataset, is_identifier};
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, NaiveDate, Utc};
use ring::rand::SecureRandom as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConsentError;
use crate::keys::{IssuerKey, KEY_ID_LEN};
use crate::subject::SubjectRef;
use crate::verify::ConsentRefusal;

/// Domain-separation prefix of the signed message: the signature covers
/// `CANONICAL_PREFIX || canonical JSON` (see [`ConsentArtefact::signing_bytes`]).
pub const CANONICAL_PREFIX: &[u8] = b"creditgate-consent-v1\n";

/// Longest consent id, issuer id or grantee id, in characters.
pub const MAX_NAME_LEN: usize = 128;

/// Longest purpose code, in characters (as in the policy file).
pub const MAX_PURPOSE_LEN: usize = 64;

/// Most entries in `purposes`, `datasets`, or one dataset's `columns`.
pub const MAX_LIST_LEN: usize = 256;

/// Largest artefact accepted by [`ConsentArtefact::from_json`], in bytes.
pub const MAX_ARTEFACT_BYTES: usize = 64 * 1024;

/// Length of an Ed25519 signature in bytes.
const SIGNATURE_LEN: usize = 64;

/// A signed consent: the data subject's consent, issued by a consent issuer
/// (e.g. the public credit platform), for one grantee organisation to look
/// up the subject's data for the listed purposes and datasets, within a
/// validity window and a maximum number of uses.
///
/// JSON (field names as below; optional fields are omitted when absent,
/// never `null`; unknown fields are refused):
///
/// ```json
/// {
///   "consent_id": "cns-2f1c0b9e8d7a6b5c4d3e2f10",
///   "issuer": "credit-platform",
///   "subject": { "type": "resident_id", "id": "11010519491231002X" },
///   "grantee": "credit-agency",
///   "purposes": ["credit_report"],
///   "datasets": ["court.dishonest_debtors", "market.enterprises"],
///   "columns": { "market.enterprises": ["name", "status"] },
///   "data_from": "2020-01-01",
///   "data_to": "2025-12-31",
///   "valid_from": "2026-05-01T00:00:00Z",
///   "valid_until": "2026-05-31T00:00:00Z",
///   "max_uses": 3,
///   "key_id": "0123456789abcdef",
///   "signature": "<base64 Ed25519 signature, 64 bytes>"
/// }
/// ```
///
/// The signature covers every other field through
/// [`ConsentArtefact::signing_bytes`]. Values are held in parsed form: the
/// subject id normalised, timestamps in UTC. Build one with [`issue`]; read
/// one from a request with [`ConsentArtefact::from_json`] or
/// [`ConsentArtefact::from_value`], then check it with [`crate::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentArtefact {
    /// Issuer-assigned id, unique per issuer: `[A-Za-z0-9][A-Za-z0-9._-]*`,
    /// at most [`MAX_NAME_LEN`] characters. Revocations and use counts are
    /// keyed by it.
    pub consent_id: String,
    /// Id of the consent issuer (a key of the trusted-issuer configuration),
    /// e.g. `credit-platform`.
    pub issuer: String,
    /// The data subject.
    pub subject: SubjectRef,
    /// Organisation id of the grantee: the caller's organisation, the `org`
    /// segment of its SPIFFE URI (e.g. `credit-agency`). Compared exactly.
    pub grantee: String,
    /// Purpose codes the subject agreed to (lower-case letters, digits, `_`).
    pub purposes: Vec<String>,
    /// Datasets covered, as `<source>.<table>`.
    pub datasets: Vec<String>,
    /// Optional column restriction per dataset: a dataset listed here may be
    /// read only in the named columns; a dataset not listed is not
    /// restricted by the consent (the policy still applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<BTreeMap<String, Vec<String>>>,
    /// First day of the data the consent covers (inclusive), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_from: Option<NaiveDate>,
    /// Last day of the data the consent covers (inclusive), if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_to: Option<NaiveDate>,
    /// Start of the validity window (inclusive), RFC 3339.
    #[serde(with = "rfc3339")]
    pub valid_from: DateTime<Utc>,
    /// End of the validity window (exclusive), RFC 3339.
    #[serde(with = "rfc3339")]
    pub valid_until: DateTime<Utc>,
    /// How many lookups the consent allows in total (at least 1).
    pub max_uses: u32,
    /// Id of the issuer key that signed ([`IssuerKey::key_id`]): 16 hex digits.
    pub key_id: String,
    /// Base64 (standard alphabet, padded) Ed25519 signature over
    /// [`ConsentArtefact::signing_bytes`].
    pub signature: String,
}

/// Everything an issuer decides about a consent; [`issue`] adds the key id
/// and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDraft {
    /// Consent id; `None` generates `cns-` followed by 24 random hex digits.
    pub consent_id: Option<String>,
    /// Issuer id.
    pub issuer: String,
    /// The data subject.
    pub subject: SubjectRef,
    /// Grantee organisation id.
    pub grantee: String,
    /// Purpose codes.
    pub purposes: Vec<String>,
    /// Datasets.
    pub datasets: Vec<String>,
    /// Optional column restriction per dataset.
    pub columns: Option<BTreeMap<String, Vec<String>>>,
    /// First day of covered data, if limited.
    pub data_from: Option<NaiveDate>,
    /// Last day of covered data, if limited.
    pub data_to: Option<NaiveDate>,
    /// Start of the validity window.
    pub valid_from: DateTime<Utc>,
    /// End of the validity window (exclusive).
    pub valid_until: DateTime<Utc>,
    /// Maximum number of uses.
    pub max_uses: u32,
}

/// Signs a draft with `key`: fills in the consent id (if absent), the key id
/// and the signature. The draft must satisfy the same shape rules the
/// verifier applies; otherwise [`ConsentError::InvalidInput`] names the field.
pub fn issue(key: &IssuerKey, draft: ConsentDraft) -> Result<ConsentArtefact, ConsentError> {
    let consent_id = match draft.consent_id {
        Some(id) => id,
        None => new_consent_id()?,
    };
    let mut artefact = ConsentArtefact {
        consent_id,
        issuer: draft.issuer,
        subject: draft.subject,
        grantee: draft.grantee,
        purposes: draft.purposes,
        datasets: draft.datasets,
        columns: draft.columns,
        data_from: draft.data_from,
        data_to: draft.data_to,
        valid_from: draft.valid_from,
        valid_until: draft.valid_until,
        max_uses: draft.max_uses,
        key_id: key.key_id().to_owned(),
        signature: String::new(),
    };
    artefact.check_unsigned_shape().map_err(|e| ConsentError::invalid(e.field, e.reason))?;
    let msg = artefact.signing_bytes()?;
    artefact.signature = B64.encode(key.sign(&msg));
    Ok(artefact)
}

/// A fresh random consent id: `cns-` and 24 hex digits (96 bits).
fn new_consent_id() -> Result<String, ConsentError> {
    let mut bytes = [0u8; 12];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|_| ConsentError::Crypto("random number generator"))?;
    Ok(format!("cns-{}", hex::encode(bytes)))
}

/// A failed shape rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShapeError {
    pub(crate) field: String,
    pub(crate) reason: String,
}

impl ShapeError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ShapeError { field: field.into(), reason: reason.into() }
    }
}

impl From<ShapeError> for ConsentRefusal {
    fn from(e: ShapeError) -> Self {
        ConsentRefusal::Malformed(format!("{}: {}", e.field, e.reason))
    }
}

impl ConsentArtefact {
    /// Parses an artefact from JSON text. Any problem (syntax, a missing or
    /// unknown field, a bad subject identifier, more than
    /// [`MAX_ARTEFACT_BYTES`]) is a [`ConsentRefusal::Malformed`] whose
    /// reason names the problem; long digit runs are blanked out of the
    /// reason so an identifier is never echoed.
    pub fn from_json(text: &str) -> Result<ConsentArtefact, ConsentRefusal> {
        if text.len() > MAX_ARTEFACT_BYTES {
            return Err(ConsentRefusal::Malformed(format!(
                "the consent is {} bytes; at most {MAX_ARTEFACT_BYTES} are accepted",
                text.len()
            )));
        }
        serde_json::from_str(text).map_err(|e| malformed_json(&e))
    }

    /// Like [`ConsentArtefact::from_json`], for an artefact embedded in a
    /// request body that was already parsed.
    pub fn from_value(value: Value) -> Result<ConsentArtefact, ConsentRefusal> {
        serde_json::from_value(value).map_err(|e| malformed_json(&e))
    }

    /// Pretty-printed JSON (as written by the CLI).
    pub fn to_json_pretty(&self) -> Result<String, ConsentError> {
        serde_json::to_string_pretty(self).map_err(|source| ConsentError::Json { what: "consent artefact", source })
    }

    /// The canonical JSON of every field except `signature`:
    ///
    /// * the artefact's fields as in its JSON form, `signature` removed,
    ///   optional fields that are absent omitted (never `null`);
    /// * object keys (including `subject` and `columns`) sorted by their
    ///   UTF-8 bytes; arrays in the order given;
    /// * no whitespace anywhere; strings escaped as `serde_json` does
    ///   (`\"`, `\\`, `\b \f \n \r \t`, other control characters as
    ///   `\u00xx`; everything else literal UTF-8); integers in decimal;
    /// * values in their parsed form: the subject id normalised (18-character
    ///   resident ID with upper-case `X`, upper-case credit code), dates as
    ///   `YYYY-MM-DD`, timestamps in UTC as `YYYY-MM-DDTHH:MM:SS[.f]Z` with 0,
    ///   3, 6 or 9 fraction digits (none when the fraction is zero).
    ///
    /// For an artefact that passes the shape rules (ASCII-only strings,
    /// integer-only numbers) this is exactly RFC 8785 (JCS) applied to the
    /// JSON form without `signature`.
    pub fn canonical_json(&self) -> Result<String, ConsentError> {
        let mut value =
            serde_json::to_value(self).map_err(|source| ConsentError::Json { what: "consent artefact", source })?;
        if let Value::Object(map) = &mut value {
            map.remove("signature");
        }
        let mut out = String::new();
        write_canonical(&value, &mut out)?;
        Ok(out)
    }

    /// The exact bytes the signature covers: [`CANONICAL_PREFIX`] followed
    /// by [`ConsentArtefact::canonical_json`].
    pub fn signing_bytes(&self) -> Result<Vec<u8>, ConsentError> {
        let json = self.canonical_json()?;
        let mut msg = Vec::with_capacity(CANONICAL_PREFIX.len() + json.len());
        msg.extend_from_slice(CANONICAL_PREFIX);
        msg.extend_from_slice(json.as_bytes());
        Ok(msg)
    }

    /// The decoded signature, if it is base64 of 64 bytes.
    pub(crate) fn signature_bytes(&self) -> Option<Vec<u8>> {
        B64.decode(&self.signature).ok().filter(|s| s.len() == SIGNATURE_LEN)
    }

    /// The shape rules, including the key id and signature encodings.
    pub(crate) fn check_shape(&self) -> Result<(), ShapeError> {
        self.check_unsigned_shape()?;
        if self.signature_bytes().is_none() {
            return Err(ShapeError::new("signature", "must be the base64 encoding of a 64-byte Ed25519 signature"));
        }
        Ok(())
    }

    /// The shape rules for every field but `signature`.
    fn check_unsigned_shape(&self) -> Result<(), ShapeError> {
        check_name("consent_id", &self.consent_id)?;
        check_name("issuer", &self.issuer)?;
        check_name("grantee", &self.grantee)?;
        check_list("purposes", &self.purposes, |p| {
            (is_code(p)).then_some(()).ok_or("purpose codes are 1-64 lower-case letters, digits and _")
        })?;
        check_list("datasets", &self.datasets, |d| {
            is_dataset(d).then_some(()).ok_or("dataset names are <source>.<table> (lower-case letters, digits, _)")
        })?;
        if let Some(columns) = &self.columns {
            if columns.is_empty() {
                return Err(ShapeError::new("columns", "must not be empty when present; omit it for no restriction"));
            }
            for (dataset, cols) in columns {
                let field = format!("columns.{}", printable(dataset));
                if !self.datasets.contains(dataset) {
                    return Err(ShapeError::new(field, "names a dataset that is not in datasets"));
                }
                check_list(&field, cols, |c| {
                    is_identifier(c).then_some(()).ok_or("column names are lower-case letters, digits and _")
                })?;
            }
        }
        if let (Some(from), Some(to)) = (self.data_from, self.data_to)
            && from > to
        {
            return Err(ShapeError::new("data_to", "is before data_from"));
        }
        if self.valid_until <= self.valid_from {
            return Err(ShapeError::new("valid_until", "must be later than valid_from"));
        }
        if self.max_uses == 0 {
            return Err(ShapeError::new("max_uses", "must be at least 1"));
        }
        if self.key_id.len() != KEY_ID_LEN
            || !self.key_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ShapeError::new("key_id", format!("must be {KEY_ID_LEN} lower-case hex digits")));
        }
        Ok(())
    }
}

/// Checks an id: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most [`MAX_NAME_LEN`].
fn check_name(field: &str, value: &str) -> Result<(), ShapeError> {
    if is_name(value) {
        Ok(())
    } else {
        Err(ShapeError::new(
            field,
            format!("must be 1-{MAX_NAME_LEN} characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"),
        ))
    }
}

/// Checks a list: not empty, not too long, no duplicates, every item valid.
fn check_list(
    field: &str,
    items: &[String],
    item_ok: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<(), ShapeError> {
    if items.is_empty() {
        return Err(ShapeError::new(field, "must not be empty"));
    }
    if items.len() > MAX_LIST_LEN {
        return Err(ShapeError::new(field, format!("has {} entries; at most {MAX_LIST_LEN} are allowed", items.len())));
    }
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        item_ok(item).map_err(|reason| ShapeError::new(format!("{field}[{i}]"), reason))?;
        if !seen.insert(item.as_str()) {
            return Err(ShapeError::new(format!("{field}[{i}]"), format!("\"{item}\" is listed twice")));
        }
    }
    Ok(())
}

/// An id as used for consent ids, issuers and grantees.
/// Whether `s` is acceptable as a consent id (or issuer id):
/// `[A-Za-z0-9][A-Za-z0-9._-]*`, at most [`MAX_NAME_LEN`] characters.
pub fn is_consent_id(s: &str) -> bool {
    is_name(s)
}

pub(crate) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= MAX_NAME_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A purpose code (same rule as the policy file).
pub(crate) fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_PURPOSE_LEN
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A value safe to echo in a message: control characters dropped, capped.
pub(crate) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_NAME_LEN).collect()
}

/// A JSON error as a refusal, with digit runs of 6 or more blanked so an
/// identifier echoed by the parser does not leak into the message.
fn malformed_json(e: &serde_json::Error) -> ConsentRefusal {
    ConsentRefusal::Malformed(format!("not a valid consent artefact: {}", redact_digit_runs(&e.to_string())))
}

/// Replaces runs of 6 or more digits (or `X`/`x` after 14 digits) with `…`.
fn redact_digit_runs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 6 {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() || ((c == 'X' || c == 'x') && run.len() >= 14) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Writes `value` in canonical form (see [`ConsentArtefact::canonical_json`]).
fn write_canonical(value: &Value, out: &mut String) -> Result<(), ConsentError> {
    let json_err = |source| ConsentError::Json { what: "canonical encoding", source };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&serde_json::to_string(s).map_err(json_err)?),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map may keep insertion order
            // when another crate enables its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).map_err(json_err)?);
                out.push(':');
                write_canonical(v, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// RFC 3339 timestamps in UTC (`Z`), fraction digits only when needed.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    /// Formats a timestamp the way artefacts and the store write it.
    pub(crate) fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("not an RFC 3339 timestamp ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_are_redacted() {
        assert_eq!(redact_digit_runs("invalid type: integer `110105194912310021`"), "invalid type: integer `…`");
        assert_eq!(redact_digit_runs("11010519491231002X at line 1 column 12"), "… at line 1 column 12");
        assert_eq!(redact_digit_runs("missing field `grantee` at line 3"), "missing field `grantee` at line 3");
    }

    #[test]
    fn canonical_sorts_keys_regardless_of_map_order() {
        let v: Value = serde_json::from_str(r#"{"b":[2,1],"a":{"d":"x\n","c":null}}"#).expect("json");
        let mut out = String::new();
        write_canonical(&v, &mut out).expect("canonical");
        assert_eq!(out, r#"{"a":{"c":null,"d":"x\n"},"b":[2,1]}"#);
    }

    #[test]
    fn names() {
        assert!(is_name("credit-agency"));
        assert!(is_name("cns-0a1b.v2_x"));
        assert!(!is_name(""));
        assert!(!is_name(".."));
        assert!(!is_name("a/b"));
        assert!(!is_name(&"a".repeat(MAX_NAME_LEN + 1)));
        assert!(is_dataset("market.enterprises"));
        assert!(!is_dataset("market"));
        assert!(!is_dataset("Market.x"));
    }
}
