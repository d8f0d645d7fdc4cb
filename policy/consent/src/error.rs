//! The crate's error type.

use std::path::PathBuf;

use creditgate_ident::IdentError;

use crate::verify::ConsentRefusal;

/// Everything that can go wrong in this crate.
///
/// Only [`ConsentError::Refused`] (and [`ConsentError::InvalidInput`]) carry a
/// message meant for the remote caller; the other variants name files and
/// operating-system errors and belong in the gateway's log, with a generic
/// "consent store unavailable" (or similar) answer to the client.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The consent does not allow the request (see [`ConsentRefusal`]).
    #[error(transparent)]
    Refused(#[from] ConsentRefusal),
    /// A value given to an API or the CLI is not acceptable (a consent id
    /// from a URL, a draft field, a command-line option).
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field or option at fault.
        field: String,
        /// What is wrong with it and what is expected.
        reason: String,
    },
    /// A subject identifier failed validation.
    #[error("{field}: {source}")]
    Ident {
        /// The field or option at fault.
        field: &'static str,
        /// The rule that failed (never contains the whole identifier).
        source: IdentError,
    },
    /// A file-system operation failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done (`read`, `write`, `rename`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An issuer key file cannot be used.
    #[error("issuer key {}: {reason}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// Why it cannot be used and what to do.
        reason: String,
    },
    /// Key generation or another cryptographic primitive failed.
    #[error("cryptography failure: {0}")]
    Crypto(&'static str),
    /// The trusted-issuer configuration is unusable; every problem is listed
    /// with its key (`consent_issuers[1].public_key: …`).
    #[error("consent issuer configuration: {}", .issues.join("; "))]
    Config {
        /// One entry per problem, each starting with the configuration key.
        issues: Vec<String>,
    },
    /// JSON encoding or decoding failed.
    #[error("{what}: {source}")]
    Json {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Another process (or another [`crate::ConsentStore`] in this process)
    /// holds the store's lock.
    #[error("consent store {} is in use by another gateway process (lock file {})", .dir.display(), crate::store::LOCK_FILE)]
    StoreLocked {
        /// The store directory.
        dir: PathBuf,
    },
    /// A store file cannot be understood; the store refuses to open rather
    /// than forget revocations.
    #[error("consent store file {}{}: {reason}", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    StoreCorrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number in the journal, when known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

impl ConsentError {
    /// The refusal, if this error is one.
    pub fn refusal(&self) -> Option<&ConsentRefusal> {
        match self {
            ConsentError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// A closure mapping an I/O error on `path` during `op` to [`ConsentError::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ConsentError {
        let path = path.into();
        move |source| ConsentError::Io { op, path, source }
    }

    /// Shorthand for [`ConsentError::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConsentError {
        ConsentError::InvalidInput { field: field.into(), reason: reason.into() }
    }
}
