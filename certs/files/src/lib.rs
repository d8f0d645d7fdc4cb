//! The workspace's one way to write a file that must never be seen half
//! written or readable by others: keys, secrets, CRLs, state snapshots,
//! exported checkpoints, generated configs; and its one way to read a
//! config file, with every problem reported together ([`config`]).
//!
//! [`write_atomic`] writes a temporary file in the target's directory,
//! created with its final permissions (so a private key is never readable
//! by others, not even for an instant), fsyncs it, renames it over the
//! target (or hard-links it when the target must not be replaced), then
//! fsyncs the directory so the new name survives a crash. On any error the
//! temporary file is removed and the target is untouched.

pub mod config;

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Who may read the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Its owner only (mode 0600): keys, secrets, state.
    Private,
    /// Everyone may read it (mode 0644): certificates, CRLs, configs.
    Public,
}

impl Access {
    /// The Unix file mode.
    pub fn mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// What to do when the target exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it atomically.
    Replace,
    /// Leave it alone and fail with [`std::io::ErrorKind::AlreadyExists`]
    /// (two writers racing to create one key: exactly one wins).
    Keep,
}

/// A write that failed: which step, on which path, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step} {}: {source}", path.display())]
pub struct WriteError {
    /// The step that failed (`create`, `write`, `sync`, `rename`, …).
    pub step: &'static str,
    /// The file or directory it failed on.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    /// Whether the target existed and [`Existing::Keep`] left it alone.
    pub fn already_exists(&self) -> bool {
        self.source.kind() == std::io::ErrorKind::AlreadyExists
    }
}

fn fail(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WriteError {
    let path = path.to_path_buf();
    move |source| WriteError { step, path, source }
}

/// Writes `bytes` to `path` atomically and durably, readable as `access`
/// says, creating the parent directories if needed (see the crate docs).
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access, existing: Existing) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| WriteError {
        step: "write",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path has no file name"),
    })?;
    fs::create_dir_all(&dir).map_err(fail("create directory", &dir))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), unique_suffix()));
    let result = write_new(&tmp, bytes, access).and_then(|()| match existing {
        Existing::Replace => fs::rename(&tmp, path).map_err(fail("rename", path)),
        Existing::Keep => {
            let linked = fs::hard_link(&tmp, path).map_err(fail("create", path));
            let _ = fs::remove_file(&tmp);
            linked
        }
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    sync_dir(&dir)
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), WriteError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail("sync directory", dir))
}

/// Creates `tmp` (which must not exist) with `access`, writes and fsyncs it.
fn write_new(tmp: &Path, bytes: &[u8], access: Access) -> Result<(), WriteError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, access.mode());
    let mut file = options.open(tmp).map_err(fail("create", tmp))?;
    file.write_all(bytes).map_err(fail("write", tmp))?;
    file.sync_all().map_err(fail("sync", tmp))
}

/// A suffix no other writer on this host uses at the same time: the
/// process id and a per-process counter (`create_new` guarantees the rest).
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.contains(".tmp-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn replaces_with_the_requested_mode_and_leaves_no_temporary_file() -> Result<(), WriteError> {
        let dir = tempfile::tempdir().map_err(fail("create", Path::new("tempdir")))?;
        let path = dir.path().join("sub/key.pem");
        write_atomic(&path, b"one", Access::Private, Existing::Replace)?;
        write_atomic(&path, b"two", Access::Private, Existing::Replace)?;
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"two"[..]));
        #[cfg(unix)]
        assert_eq!(mode_of(&path), 0o600);
        let public = dir.path().join("crl.pem");
        write_atomic(&public, b"crl", Access::Public, Existing::Replace)?;
        #[cfg(unix)]
        assert_eq!(mode_of(&public), 0o644);
        assert!(leftovers(dir.path()).is_empty() && leftovers(&dir.path().join("sub")).is_empty());
        Ok(())
    }

    #[test]
    fn keep_refuses_an_existing_target_and_leaves_it_untouched() -> Result<(), WriteError> {
        let dir = tempfile::tempdir().map_err(fail("create", Path::new("tempdir")))?;
        let path = dir.path().join("key");
        write_atomic(&path, b"first", Access::Private, Existing::Keep)?;
        let second = write_atomic(&path, b"second", Access::Private, Existing::Keep);
        assert!(second.as_ref().is_err_and(WriteError::already_exists), "{second:?}");
        assert_eq!(fs::read(&path).ok().as_deref(), Some(&b"first"[..]));
        assert!(leftovers(dir.path()).is_empty());
        Ok(())
    }

    #[test]
    fn a_failed_write_names_the_step_and_path_and_writes_nothing() -> Result<(), WriteError> {
        let dir = tempfile::tempdir().map_err(fail("create", Path::new("tempdir")))?;
        // The target is a non-empty directory: the rename must fail.
        let path = dir.path().join("busy");
        fs::create_dir_all(path.join("inside")).map_err(fail("create", &path))?;
        let err = write_atomic(&path, b"x", Access::Public, Existing::Replace).err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(message.starts_with("cannot rename ") && message.contains("busy"), "{message}");
        assert!(path.join("inside").is_dir());
        assert!(leftovers(dir.path()).is_empty());
        Ok(())
    }
}
