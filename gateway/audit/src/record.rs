//! The audit record model and its canonical encoding.
//!
//! A record is stored as one line of JSON. The line is exactly
//! `serde_json::to_vec(&record)` followed by `\n`; fields appear in the
//! declaration order of [`AuditRecord`] and `hash` is last. The hash is the
//! hex SHA-256 of the *canonical bytes*: the same JSON object without the
//! `hash` field. `prev_hash` is the previous record's `hash` (64 zeros for
//! the first record ever written), so the records form a chain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AuditError;

/// `prev_hash` of the very first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made the request, from the client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// Hex SHA-256 fingerprint of the client certificate.
    pub fingerprint: String,
    /// Caller name (certificate subject).
    pub name: String,
    /// Caller organisation.
    pub organization: String,
    /// Role granted by policy.
    pub role: String,
}

/// The listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frontend {
    /// Flight SQL (mTLS).
    Flight,
    /// HTTP API (mTLS).
    Http,
    /// Public, unauthenticated listener.
    Public,
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Results were released.
    Allowed,
    /// Policy refused the request.
    Refused,
    /// The request was allowed but failed (source error, bad SQL, …).
    Failed,
    /// The caller went away before the end of a released stream (only on a
    /// [`RecordedQuery::StreamEnd`] record).
    Cancelled,
}

impl Outcome {
    /// The wire name (`allowed`, `refused`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The query as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RecordedQuery {
    /// SQL text as received.
    Sql(String),
    /// One execution of a prepared (parameterized) statement: the statement
    /// normalized as for [`RecordedQuery::Sql`] (its `$1`, `$2`, … kept),
    /// and each bound parameter row as keyed digests
    /// ([`SubjectHasher::digest`](crate::SubjectHasher::digest) of the
    /// value's text; `null` for a NULL), never the values. Subject
    /// identifiers among the values are in the record's subject hashes, as
    /// for literals.
    Prepared {
        /// The normalized statement.
        statement: String,
        /// Per bound row, per parameter: the keyed digest of the value.
        parameters: Vec<Vec<Option<String>>>,
    },
    /// A structured lookup request, with the subject key replaced by its
    /// keyed hash (see [`SubjectHasher`](crate::SubjectHasher)).
    Lookup(serde_json::Value),
    /// A request that is neither SQL nor a lookup, as `METHOD /path` (no
    /// query string: it may carry identifiers), e.g. a refused malformed body
    /// or an unknown route.
    Request(String),
    /// The end of a streamed result released by the record with this `seq`
    /// (same request id): the rows actually delivered, the final status of
    /// each source and how the stream ended. Audit-before-release means the
    /// opening record cannot know these; this one completes it.
    StreamEnd(u64),
    /// Something the gateway itself did that an officer must be able to
    /// trace, not a request: e.g. a reload of the certificate revocation
    /// lists (`{"event": "crl_reload", …}`).
    Event(serde_json::Value),
}

/// One column returned, with the mask applied to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnAccess {
    /// Dataset (table) name.
    pub dataset: String,
    /// Column name.
    pub column: String,
    /// Mask applied (`none`, `partial`, `hash`, …; policy's vocabulary).
    pub mask: String,
}

/// Per-source status of a federated request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceStatus {
    /// Source name.
    pub source: String,
    /// Status (`ok`, `error`, `timeout`, `skipped`, …).
    pub status: String,
}

/// What the gateway fills in for each request; the log adds `seq`, `time`,
/// `prev_hash` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// Request id (also sent to the client).
    pub request_id: String,
    /// Caller identity.
    pub caller: Caller,
    /// Listener.
    pub frontend: Frontend,
    /// Declared purpose, if any.
    pub purpose: Option<String>,
    /// Legal basis: `duty:<code>`, `consent:<id>` or `licence:<no>`.
    pub legal_basis: Option<String>,
    /// The query.
    pub query: RecordedQuery,
    /// Datasets touched.
    pub datasets: Vec<String>,
    /// Columns returned with their masks.
    pub columns: Vec<ColumnAccess>,
    /// Keyed hashes of the subjects looked up (32 lowercase hex characters each).
    pub subject_hashes: Vec<String>,
    /// Rows returned, when known.
    pub row_count: Option<u64>,
    /// Per-source status.
    pub sources: Vec<SourceStatus>,
    /// Outcome.
    pub outcome: Outcome,
    /// Why the request was refused or failed, in words for the caller.
    pub refusal_reason: Option<String>,
    /// Time from request arrival to release, in milliseconds.
    pub duration_ms: u64,
}

impl NewRecord {
    /// Checks what can be checked without context: subject hashes must look
    /// like keyed hashes, never like raw identifiers.
    pub(crate) fn validate(&self) -> Result<(), AuditError> {
        for h in &self.subject_hashes {
            if !crate::subject::is_subject_hash(h) {
                return Err(AuditError::InvalidRecord {
                    reason: "subject_hashes must contain keyed hashes (32 lowercase hex characters) from SubjectHasher"
                        .to_owned(),
                });
            }
        }
        if self.request_id.is_empty() {
            return Err(AuditError::InvalidRecord { reason: "request_id is empty".to_owned() });
        }
        Ok(())
    }
}

/// One stored audit record (one line of an `audit-*.jsonl` segment).
///
/// Every request has exactly one record that is not a
/// [`RecordedQuery::StreamEnd`]; a streamed SQL result also gets a stream-end
/// record with the same `request_id` once the stream finishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The gateway replica whose chain holds this record, when the log is
    /// shared by several replicas (PostgreSQL state); absent in a log of
    /// one gateway (a state directory), so such records hash as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Sequence number in its chain, starting at 1, without gaps.
    pub seq: u64,
    /// When the record was appended (RFC 3339, UTC, millisecond precision).
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    /// See [`NewRecord::request_id`].
    pub request_id: String,
    /// See [`NewRecord::caller`].
    pub caller: Caller,
    /// See [`NewRecord::frontend`].
    pub frontend: Frontend,
    /// See [`NewRecord::purpose`].
    pub purpose: Option<String>,
    /// See [`NewRecord::legal_basis`].
    pub legal_basis: Option<String>,
    /// See [`NewRecord::query`].
    pub query: RecordedQuery,
    /// See [`NewRecord::datasets`].
    pub datasets: Vec<String>,
    /// See [`NewRecord::columns`].
    pub columns: Vec<ColumnAccess>,
    /// See [`NewRecord::subject_hashes`].
    pub subject_hashes: Vec<String>,
    /// See [`NewRecord::row_count`].
    pub row_count: Option<u64>,
    /// See [`NewRecord::sources`].
    pub sources: Vec<SourceStatus>,
    /// See [`NewRecord::outcome`].
    pub outcome: Outcome,
    /// See [`NewRecord::refusal_reason`].
    pub refusal_reason: Option<String>,
    /// See [`NewRecord::duration_ms`].
    pub duration_ms: u64,
    /// Hex SHA-256 of the previous record's canonical bytes (its `hash`).
    pub prev_hash: String,
    /// Hex SHA-256 of this record's canonical bytes.
    pub hash: String,
}

/// The canonical bytes: every field of [`AuditRecord`] except `hash`, same order.
#[derive(Serialize)]
struct CanonicalRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    replica: &'a Option<String>,
    seq: u64,
    time: String,
    request_id: &'a str,
    caller: &'a Caller,
    frontend: Frontend,
    purpose: &'a Option<String>,
    legal_basis: &'a Option<String>,
    query: &'a RecordedQuery,
    datasets: &'a [String],
    columns: &'a [ColumnAccess],
    subject_hashes: &'a [String],
    row_count: Option<u64>,
    sources: &'a [SourceStatus],
    outcome: Outcome,
    refusal_reason: &'a Option<String>,
    duration_ms: u64,
    prev_hash: &'a str,
}

impl AuditRecord {
    /// Whether this record completes a streamed result rather than recording a request.
    pub fn is_stream_end(&self) -> bool {
        matches!(self.query, RecordedQuery::StreamEnd(_))
    }

    /// Whether this record is a request (not a stream end nor an event of
    /// the gateway itself): what the per-day statistics count.
    pub fn is_request(&self) -> bool {
        !matches!(self.query, RecordedQuery::StreamEnd(_) | RecordedQuery::Event(_))
    }

    /// Whether this record is a read of the audit log itself: the officer
    /// API (`/v1/audit/…`) or the console page, allowed or refused.
    pub fn is_audit_read(&self) -> bool {
        match &self.query {
            RecordedQuery::Lookup(what) => what.get("audit_api").is_some(),
            RecordedQuery::Request(text) => {
                let path = text.strip_prefix("GET ").unwrap_or(text);
                path.starts_with("/v1/audit/") || path == "/console"
            }
            _ => false,
        }
    }

    /// Whether this record is `fingerprint`'s own read of the audit log
    /// (see [`AuditRecord::is_audit_read`]): what the officer's own console
    /// activity looks like, told apart from everyone else's records.
    pub fn is_own_read(&self, fingerprint: &str) -> bool {
        !fingerprint.is_empty() && self.caller.fingerprint == fingerprint && self.is_audit_read()
    }

    /// Builds a record (hash filled in) from a [`NewRecord`].
    pub(crate) fn seal(new: NewRecord, seq: u64, time: DateTime<Utc>, prev_hash: String) -> Result<Self, AuditError> {
        Self::seal_in_chain(new, None, seq, time, prev_hash)
    }

    /// Seals `new` as record `seq` of `replica`'s chain (after the record
    /// whose hash is `prev_hash`), computing its hash. Checks the record
    /// as [`AuditLog::append`](crate::AuditLog::append) does.
    pub fn seal_in_chain(
        new: NewRecord,
        replica: Option<String>,
        seq: u64,
        time: DateTime<Utc>,
        prev_hash: String,
    ) -> Result<Self, AuditError> {
        new.validate()?;
        let mut record = AuditRecord {
            replica,
            seq,
            time,
            request_id: new.request_id,
            caller: new.caller,
            frontend: new.frontend,
            purpose: new.purpose,
            legal_basis: new.legal_basis,
            query: new.query,
            datasets: new.datasets,
            columns: new.columns,
            subject_hashes: new.subject_hashes,
            row_count: new.row_count,
            sources: new.sources,
            outcome: new.outcome,
            refusal_reason: new.refusal_reason,
            duration_ms: new.duration_ms,
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash()?;
        Ok(record)
    }

    /// The canonical bytes that are hashed (the record's JSON without `hash`).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let c = CanonicalRecord {
            replica: &self.replica,
            seq: self.seq,
            time: rfc3339_millis::format(&self.time),
            request_id: &self.request_id,
            caller: &self.caller,
            frontend: self.frontend,
            purpose: &self.purpose,
            legal_basis: &self.legal_basis,
            query: &self.query,
            datasets: &self.datasets,
            columns: &self.columns,
            subject_hashes: &self.subject_hashes,
            row_count: self.row_count,
            sources: &self.sources,
            outcome: self.outcome,
            refusal_reason: &self.refusal_reason,
            duration_ms: self.duration_ms,
            prev_hash: &self.prev_hash,
        };
        serde_json::to_vec(&c).map_err(|source| AuditError::Json { what: "audit record", source })
    }

    /// Recomputes the hash from the canonical bytes (does not look at `self.hash`).
    pub fn compute_hash(&self) -> Result<String, AuditError> {
        Ok(sha256_hex(&self.canonical_bytes()?))
    }

    /// The stored line, including the trailing newline.
    pub fn to_line(&self) -> Result<Vec<u8>, AuditError> {
        let mut line = serde_json::to_vec(self).map_err(|source| AuditError::Json { what: "audit record", source })?;
        line.push(b'\n');
        Ok(line)
    }

    /// Parses one stored line (without its newline).
    pub fn from_line(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Checks that `bytes` (a stored line without newline) is exactly the
    /// canonical encoding of `self` and that `self.hash` is right.
    pub(crate) fn check_line(&self, bytes: &[u8]) -> LineCheck {
        let Ok(computed) = self.compute_hash() else {
            return LineCheck::Unencodable;
        };
        if computed != self.hash {
            return LineCheck::HashMismatch { computed };
        }
        match self.to_line() {
            Ok(line) if line.get(..line.len().saturating_sub(1)) == Some(bytes) => LineCheck::Ok,
            Ok(_) => LineCheck::NotCanonical,
            Err(_) => LineCheck::Unencodable,
        }
    }
}

/// Result of [`AuditRecord::check_line`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineCheck {
    /// Hash right and bytes canonical.
    Ok,
    /// The content does not hash to the stored `hash`.
    HashMismatch {
        /// What the content hashes to.
        computed: String,
    },
    /// Same content, but the bytes differ from the canonical encoding.
    NotCanonical,
    /// Cannot be re-encoded.
    Unencodable,
}

/// Hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Serde helpers: RFC 3339 UTC with millisecond precision (`2025-01-02T03:04:05.678Z`).
pub(crate) mod rfc3339_millis {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Formats a time the way it is stored.
    pub(crate) fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// Serializes as RFC 3339.
    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Deserializes any RFC 3339 time and converts it to UTC.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).map_err(serde::de::Error::custom)
    }
}
