//! Tests of the audit crate: tamper classes, concurrency, crash repair,
//! fail-closed behaviour, rotation, pruning, search and statistics.

mod log;
mod normalize;
mod search;
mod tamper;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{AuditLog, AuditOptions, Caller, ColumnAccess, Frontend, NewRecord, Outcome, RecordedQuery, SourceStatus};

/// A temporary state: `log/` is the audit directory, the key lives outside it.
pub(crate) struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env { tmp: tempfile::tempdir().expect("tempdir") }
    }
    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("log")
    }
    pub fn key(&self) -> PathBuf {
        self.tmp.path().join("keys").join("signing.pk8")
    }
    pub fn options(&self) -> AuditOptions {
        let mut o = AuditOptions::new(self.key());
        o.group_commit_window = Duration::ZERO;
        o
    }
    pub fn open(&self) -> AuditLog {
        AuditLog::open(self.dir(), self.options()).expect("open audit log")
    }
    pub fn open_with(&self, f: impl FnOnce(&mut AuditOptions)) -> AuditLog {
        let mut o = self.options();
        f(&mut o);
        AuditLog::open(self.dir(), o).expect("open audit log")
    }
    /// Segment files, oldest first.
    pub fn segments(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir())
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
            })
            .collect();
        v.sort();
        v
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.dir().join(crate::CHECKPOINTS_FILE)
    }
}

/// Lines of a file (without newlines).
pub(crate) fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).expect("read").lines().map(str::to_owned).collect()
}

/// Writes lines, each followed by a newline.
pub(crate) fn write_lines(path: &Path, lines: &[String]) {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    fs::write(path, s).expect("write");
}

pub(crate) fn caller(name: &str, org: &str) -> Caller {
    Caller {
        fingerprint: format!("fp-{name}"),
        name: name.to_owned(),
        organization: org.to_owned(),
        role: "analyst".to_owned(),
    }
}

/// A record for request `i`.
pub(crate) fn sample(i: u64) -> NewRecord {
    NewRecord {
        request_id: format!("req-{i}"),
        caller: caller("alice", "bank-a"),
        frontend: Frontend::Flight,
        purpose: Some("credit_check".to_owned()),
        legal_basis: Some(format!("consent:c-{i}")),
        query: RecordedQuery::Sql(format!("SELECT name FROM enterprises WHERE id = {i}")),
        datasets: vec!["enterprises".to_owned()],
        columns: vec![ColumnAccess {
            dataset: "enterprises".to_owned(),
            column: "name".to_owned(),
            mask: "none".to_owned(),
        }],
        subject_hashes: vec![],
        row_count: Some(1),
        sources: vec![SourceStatus { source: "market".to_owned(), status: "ok".to_owned() }],
        outcome: Outcome::Allowed,
        refusal_reason: None,
        duration_ms: 3,
    }
}

/// Opens a log, appends `n` sample records, closes it.
pub(crate) fn populated(n: u64) -> Env {
    let env = Env::new();
    let log = env.open();
    for i in 1..=n {
        log.append(sample(i)).expect("append");
    }
    log.close().expect("close");
    drop(log);
    env
}
