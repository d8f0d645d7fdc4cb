//! Durable file writes, through the workspace's one atomic write
//! ([`creditgate_files`]).

use std::path::Path;

use creditgate_files::{Access, Existing, WriteError};

use crate::error::ConsentError;

fn to_consent(WriteError { step, path, source }: WriteError) -> ConsentError {
    ConsentError::io(step, path)(source)
}

/// fsyncs a directory so created, renamed or removed entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ConsentError> {
    creditgate_files::sync_dir(dir).map_err(to_consent)
}

/// Writes `path` atomically with mode 0600, replacing it. On error `path`
/// is untouched.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConsentError> {
    creditgate_files::write_atomic(path, bytes, Access::Private, Existing::Replace).map_err(to_consent)
}

/// Creates `path` atomically with mode 0600; fails (with `AlreadyExists`
/// as the source) if it exists, leaving it alone.
pub(crate) fn create_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConsentError> {
    creditgate_files::write_atomic(path, bytes, Access::Private, Existing::Keep).map_err(to_consent)
}
