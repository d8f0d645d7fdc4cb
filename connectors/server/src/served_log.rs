//! The served-query log: one JSON line per query that left the source.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;

/// One served query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedRecord {
    /// RFC 3339 time the query started.
    pub time: String,
    /// The caller's identity name (SPIFFE URI or `o=/cn=`).
    pub caller: String,
    /// Caller certificate fingerprint (SHA-256, hex).
    pub fingerprint: String,
    /// The SQL as received (a prepared statement's text, with `$1`, `$2`, … placeholders).
    pub sql: String,
    /// The values bound to a prepared statement's placeholders, `$1` first
    /// (empty for a statement sent as text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<String>,
    /// Rows sent.
    pub rows: u64,
    /// Bytes sent (Arrow in-memory size of the batches).
    pub bytes: u64,
    /// Milliseconds from start to end of the stream.
    pub duration_ms: u64,
    /// `ok`, `error` or `cancelled`.
    pub outcome: String,
}

/// Appends [`ServedRecord`]s to a file.
#[derive(Debug)]
pub struct ServedLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl ServedLog {
    /// Opens (creating if needed) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, ConnectorError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| ConnectorError::Config(format!("served_log: cannot create {}: {e}", parent.display())))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| ConnectorError::Config(format!("served_log: cannot open {}: {e}", path.display())))?;
        Ok(Self { path: path.to_path_buf(), file: Mutex::new(file) })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as a single write (lines never interleave).
    pub fn append(&self, record: &ServedRecord) {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(error) => {
                tracing::error!(%error, "cannot encode a served-query record");
                return;
            }
        };
        line.push(b'\n');
        let mut file = match self.file.lock() {
            Ok(file) => file,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(error) = file.write_all(&line) {
            tracing::error!(%error, path = %self.path.display(), "cannot append to the served-query log");
        }
    }

    /// Reads every record of a log file (for tests and tools).
    pub fn read_all(path: &Path) -> std::io::Result<Vec<ServedRecord>> {
        let text = std::fs::read_to_string(path)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
            .collect()
    }
}
