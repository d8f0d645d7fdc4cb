//! [`AuditStore`]: what the gateway needs of an audit log, whatever holds
//! it — the files of one state directory ([`AuditLog`]) or a database
//! shared by several gateway replicas (the `creditgate-state` crate).
//!
//! Every method blocks (a log makes records durable before it returns), so
//! async code calls them inside `tokio::task::spawn_blocking`.

use chrono::{DateTime, Utc};

use crate::error::AuditError;
use crate::log::{AuditLog, AuditReceipt, PruneReport};
use crate::record::{AuditRecord, NewRecord};
use crate::search::{AccessEntry, AuditQuery, Page, Stats, StatsQuery};
use crate::verify::VerifyReport;

/// An audit log: durable appends, search, verification.
pub trait AuditStore: Send + Sync + 'static {
    /// Appends records with consecutive sequence numbers, all or none, and
    /// returns once they are durable. An error means none was stored: the
    /// caller must refuse the request.
    fn append_many(&self, records: Vec<NewRecord>) -> Result<Vec<AuditReceipt>, AuditError>;
    /// Durable records matching `query`, newest first.
    fn search(&self, query: &AuditQuery) -> Result<Page<AuditRecord>, AuditError>;
    /// Every access to the subject with this keyed hash, newest first.
    fn subject_report(&self, subject_hash: &str) -> Result<Vec<AccessEntry>, AuditError>;
    /// Requests and refusals per day, organisation and purpose, plus flagged callers.
    fn stats(&self, query: &StatsQuery) -> Result<Stats, AuditError>;
    /// Verifies every durable record and checkpoint.
    fn verify(&self) -> VerifyReport;
    /// Removes records past retention, anchoring the new start with a
    /// signed checkpoint.
    fn prune(&self, now: DateTime<Utc>) -> Result<PruneReport, AuditError>;
    /// Stops accepting records and writes a final checkpoint. Idempotent.
    fn close(&self) -> Result<(), AuditError>;
}

impl AuditStore for AuditLog {
    fn append_many(&self, records: Vec<NewRecord>) -> Result<Vec<AuditReceipt>, AuditError> {
        AuditLog::append_many(self, records)
    }
    fn search(&self, query: &AuditQuery) -> Result<Page<AuditRecord>, AuditError> {
        AuditLog::search(self, query)
    }
    fn subject_report(&self, subject_hash: &str) -> Result<Vec<AccessEntry>, AuditError> {
        AuditLog::subject_report(self, subject_hash)
    }
    fn stats(&self, query: &StatsQuery) -> Result<Stats, AuditError> {
        AuditLog::stats(self, query)
    }
    fn verify(&self) -> VerifyReport {
        AuditLog::verify(self)
    }
    fn prune(&self, now: DateTime<Utc>) -> Result<PruneReport, AuditError> {
        AuditLog::prune(self, now)
    }
    fn close(&self) -> Result<(), AuditError> {
        AuditLog::close(self)
    }
}
