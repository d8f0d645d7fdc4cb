//! File access for the PKI: writes go through the workspace's one atomic write.

use std::fs;
use std::path::Path;

pub(crate) use creditgate_files::Existing;
use creditgate_files::{Access, WriteError};

use crate::CertError;

/// Access for private keys.
pub(crate) const KEY_MODE: Access = Access::Private;
/// Access for certificates, CRLs and other public files.
pub(crate) const PUBLIC_MODE: Access = Access::Public;

/// Writes `contents` to `path` with the workspace's one atomic write
/// ([`creditgate_files::write_atomic`]).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], access: Access, existing: Existing) -> Result<(), CertError> {
    creditgate_files::write_atomic(path, contents, access, existing)
        .map_err(|WriteError { path, source, .. }| CertError::write(path, source))
}

/// Creates `dir` (and parents) if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|e| CertError::write(dir, e))
}

/// Reads a whole file as UTF-8 text.
pub(crate) fn read_to_string(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|e| CertError::read(path, e))
}
