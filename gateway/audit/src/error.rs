//! The one error type of the audit crate.

use std::path::PathBuf;

/// Everything that can go wrong while writing, opening or reading the audit log.
///
/// Messages are meant for operators (they may name files in the state
/// directory); the gateway converts this error to a client-facing status in
/// one place and must not forward the text to callers.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file-system operation failed.
    #[error("audit log I/O error ({action} {path}): {source}")]
    Io {
        /// What was being done (`"open"`, `"write"`, …).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The record was not made durable (write or fsync failed, or the log is
    /// in a failed state). The gateway must refuse the request (fail closed).
    #[error("audit record was not made durable: {reason}")]
    WriteFailed {
        /// Why, for the operator.
        reason: String,
    },
    /// The log was closed; no more records are accepted.
    #[error("the audit log is closed")]
    Closed,
    /// Another process (or another `AuditLog` in this process) holds the directory.
    #[error("audit directory {dir} is in use by another process")]
    Locked {
        /// The state directory.
        dir: PathBuf,
    },
    /// `open` found damage that is not a torn tail left by a crash (it would
    /// have to drop acknowledged records to repair it). Run the verifier.
    #[error("audit log is damaged at {file} line {line}: {reason}; run `creditgate audit verify`")]
    Corrupt {
        /// File name inside the state directory.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The signing key file is missing, malformed or insecure.
    #[error("audit signing key {path}: {reason}")]
    SigningKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The record handed to `append` is not acceptable (for example a subject
    /// hash that is not a keyed hash, which could be a raw identifier).
    #[error("invalid audit record: {reason}")]
    InvalidRecord {
        /// What is wrong.
        reason: String,
    },
    /// An [`AuditOptions`](crate::AuditOptions) value is out of range.
    #[error("invalid audit options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// A subject key or subject-hash secret is malformed.
    #[error("invalid subject key: {reason}")]
    InvalidSubjectKey {
        /// What is wrong.
        reason: String,
    },
    /// JSON encoding or decoding failed.
    #[error("cannot encode or decode {what}: {source}")]
    Json {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The database holding a shared log cannot be reached; nothing was
    /// stored. Retrying once it is back succeeds.
    #[error("the audit database is unreachable: {reason}")]
    StoreUnavailable {
        /// What failed (connection refused, lost, timed out).
        reason: String,
    },
    /// There is no valid signed checkpoint to export.
    #[error("no valid signed checkpoint in {dir} to export")]
    NoCheckpoint {
        /// The state directory.
        dir: PathBuf,
    },
}

impl AuditError {
    /// Builds a closure that wraps an `io::Error` with context.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> AuditError {
        let path = path.into();
        move |source| AuditError::Io { action, path, source }
    }
}
