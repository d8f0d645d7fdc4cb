//! Durable file writes.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use crate::error::ConsentError;

/// fsyncs a directory so created, renamed or removed entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ConsentError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(ConsentError::io("sync directory", dir))
}

/// Writes `path` atomically with mode 0600: a temporary file next to it
/// (`.<name>.tmp`), fsync, rename over `path`, fsync the directory. On error
/// the temporary file is removed and `path` is untouched.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConsentError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        // A temporary file left by a crash is stale: replace it.
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ConsentError::io("remove", &tmp)(e)),
        }
        let mut f = crate::keys::create_private(&tmp)?;
        f.write_all(bytes).map_err(ConsentError::io("write", &tmp))?;
        f.sync_all().map_err(ConsentError::io("sync", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(ConsentError::io("rename", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
