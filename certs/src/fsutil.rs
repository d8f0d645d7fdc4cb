//! Atomic file writes with explicit permissions.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::CertError;

/// File mode for private keys.
pub(crate) const KEY_MODE: u32 = 0o600;
/// File mode for certificates, CRLs and other public files.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// How [`write_atomic`] treats an existing target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// Replace it atomically.
    Replace,
    /// Fail with `AlreadyExists` and leave it alone.
    Keep,
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, created with `mode` (so a key is never readable by others, not
/// even briefly), synced, then renamed (or hard-linked when `existing` is
/// [`Existing::Keep`], which fails if the target exists).
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32, existing: Existing) -> Result<(), CertError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| CertError::input("output path", path.display().to_string(), "has no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", random_suffix()));
    let result = write_tmp(&tmp, contents, mode).and_then(|()| match existing {
        Existing::Replace => fs::rename(&tmp, path).map_err(|e| CertError::write(path, e)),
        Existing::Keep => {
            let linked = fs::hard_link(&tmp, path).map_err(|e| CertError::write(path, e));
            let _ = fs::remove_file(&tmp);
            linked
        }
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Ok(d) = fs::File::open(&dir) {
        // Make the rename durable; failure here is not worth an error.
        let _ = d.sync_all();
    }
    result
}

fn write_tmp(tmp: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let mut f =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(tmp).map_err(|e| CertError::write(tmp, e))?;
    f.write_all(contents).map_err(|e| CertError::write(tmp, e))?;
    f.sync_all().map_err(|e| CertError::write(tmp, e))?;
    Ok(())
}

fn random_suffix() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Uniqueness is still guaranteed by create_new; this only lowers the
        // odds of a collision with a concurrent writer.
        b = std::process::id().to_le_bytes().repeat(2).try_into().unwrap_or([0; 8]);
    }
    hex::encode(b)
}

/// Creates `dir` (and parents) if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|e| CertError::write(dir, e))
}

/// Reads a whole file as UTF-8 text.
pub(crate) fn read_to_string(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|e| CertError::read(path, e))
}
