//! creditgate's tamper-evident audit log.
//!
//! Every request the gateway handles — allowed, refused or failed, on every
//! listener — becomes one [`AuditRecord`] appended to an [`AuditLog`] before
//! any result byte is released. The log is plain `std` (a writer thread, no
//! async runtime): [`AuditLog::append`] blocks until the record is fsync'ed,
//! so async code calls it inside `tokio::task::spawn_blocking`. Concurrent
//! appenders share one fsync (group commit). If the record cannot be made
//! durable, `append` fails and the gateway refuses the request.
//!
//! # Files in the state directory
//!
//! - `audit-<first seq, 20 digits>-<YYYYMMDD>.jsonl`: segments, one record per
//!   line (canonical JSON, see [`record`]); each record carries the hash of the
//!   previous one. Segments roll daily (UTC) and every
//!   [`AuditOptions::segment_max_records`].
//! - `checkpoints.jsonl`: Ed25519-signed [`Checkpoint`]s (record count, head
//!   seq, head hash, time, key id) every N records or T seconds, on close, on
//!   key rotation, and as the anchor of the new start after pruning.
//! - `keys.json`: every public key that signed a checkpoint ([`KeyRing`]).
//! - `audit.lock`: keeps a second writer out.
//!
//! # Verification
//!
//! [`verify()`] (and `creditgate audit verify`, see [`cli`]) detects a changed
//! byte, deleted, reordered or duplicated records, bad or mismatching
//! checkpoints, and — against a checkpoint exported with
//! [`export_checkpoint`] — a truncated tail or a rewritten log. Each class has
//! its own exit code ([`FindingKind::exit_code`]).
//!
//! # Privacy
//!
//! The log stores statements, not values, and subject keys only as keyed
//! hashes ([`SubjectHasher`]); the same hasher turns an officer's raw
//! identifier into the search key for [`AuditLog::search`] and
//! [`AuditLog::subject_report`]. What the gateway records goes through:
//!
//! - [`normalize_sql`] for SQL text: the parsed statement with every literal
//!   replaced by `:p1`, `:p2`, … and every unusual identifier by `":i1"`, …,
//!   plus the keyed hashes (with kinds) of every unified social credit code,
//!   resident ID and mobile number found in it ([`normalize`]); a statement
//!   that does not parse is recorded by size and keyed digest only;
//! - [`redact_text`] for free text (refusal reasons, request paths): each
//!   identifier becomes `subject:<hash>`, each near miss
//!   `<identifier withheld>` ([`scan`]);
//! - [`SubjectKey::from_identifier`] / [`SubjectKey::parse`] for a raw or
//!   `kind:value` identifier (`credit_code`, `resident_id`, `mobile`) an
//!   officer searches for; [`subject_keys_in`] for any other text that may
//!   hold identifiers (for example literals of a planned query).

pub mod checkpoint;
pub mod cli;
pub mod error;
pub mod keys;
pub mod log;
pub mod normalize;
pub mod record;
pub mod scan;
pub mod search;
mod segment;
pub mod store;
pub mod subject;
pub mod verify;

#[cfg(test)]
mod tests;

pub use checkpoint::{Anchor, CHECKPOINTS_FILE, Checkpoint, CheckpointKind, ExportedCheckpoint};
pub use error::AuditError;
pub use keys::{KEYS_FILE, KeyRing, PublicKeyEntry, SigningKey, key_id_of};
pub use log::{
    AuditLog, AuditOptions, AuditReceipt, DEFAULT_CHECKPOINT_EVERY, DEFAULT_CHECKPOINT_EVERY_RECORDS,
    DEFAULT_GROUP_COMMIT_WINDOW, DEFAULT_RETENTION_DAYS, DEFAULT_SEGMENT_MAX_RECORDS, MIN_RETENTION_DAYS, PruneReport,
};
pub use normalize::{
    IDENTIFIER_PLACEHOLDER_PREFIX, LITERAL_PLACEHOLDER_PREFIX, MAX_NORMALIZE_BYTES, MAX_NORMALIZE_DEPTH, NormalizedSql,
    SubjectHash, normalize_parsed_sql, normalize_sql,
};
pub use record::{
    AuditRecord, Caller, ColumnAccess, Frontend, GENESIS_HASH, NewRecord, Outcome, RecordedQuery, SourceStatus,
};
pub use scan::{redact_text, subject_keys_in};
pub use search::{
    AccessEntry, AuditQuery, DailyCount, FlagRule, FlaggedCaller, OwnReads, Page, ReportSummary, Stats, StatsQuery,
    Tally, access_entry, compute_stats, search_records, stats_earliest_day, summarize,
};
pub use segment::{SEGMENT_PREFIX, SEGMENT_SUFFIX};
pub use store::AuditStore;
pub use subject::{SubjectHasher, SubjectKey, SubjectKeyKind};
pub use verify::{Finding, FindingKind, VerifyOptions, VerifyReport, export_checkpoint, verify, verify_with};
