//! Offline and live verification of a log directory, and checkpoint export.
//!
//! [`verify`] recomputes every record hash and the chain links, checks that
//! sequence numbers run without gaps, duplicates or reordering, verifies
//! every checkpoint signature against `keys.json`, compares each checkpoint
//! with the chain, and — given a checkpoint exported earlier for a witness —
//! detects a truncated tail or a rewritten log.
//!
//! Exit codes ([`VerifyReport::exit_code`]; the first finding decides):
//!
//! | code | kind |
//! |---|---|
//! | 0 | the log verifies |
//! | 2 | [`FindingKind::Unreadable`] |
//! | 3 | [`FindingKind::NoLog`] (missing directory, or no records without [`VerifyOptions::allow_empty`]) |
//! | 10 | [`FindingKind::MalformedRecord`] |
//! | 11 | [`FindingKind::RecordModified`] |
//! | 12 | [`FindingKind::ChainBroken`] |
//! | 13 | [`FindingKind::MissingRecords`] |
//! | 14 | [`FindingKind::ReorderedRecords`] |
//! | 15 | [`FindingKind::DuplicateRecord`] |
//! | 16 | [`FindingKind::UnexpectedFile`] |
//! | 20 | [`FindingKind::MalformedCheckpoint`] |
//! | 21 | [`FindingKind::BadCheckpointSignature`] |
//! | 22 | [`FindingKind::UnknownCheckpointKey`] |
//! | 23 | [`FindingKind::CheckpointMismatch`] |
//! | 30 | [`FindingKind::TruncatedTail`] |
//! | 31 | [`FindingKind::RewrittenLog`] |
//! | 32 | [`FindingKind::BadExportedCheckpoint`] |

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use crate::checkpoint::{CHECKPOINTS_FILE, Checkpoint, EXPORT_FORMAT, ExportedCheckpoint};
use crate::error::AuditError;
use crate::keys::KeyRing;
use crate::record::{AuditRecord, GENESIS_HASH, LineCheck};
use crate::segment::{list_segments, read_lines, split_lines};

/// Maximum number of findings listed in [`VerifyReport::message`].
pub const MAX_LISTED_FINDINGS: usize = 50;

/// The class of a verification failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A file or the directory cannot be read.
    Unreadable,
    /// There is no audit log to verify: the directory does not exist or is
    /// not a directory, or it holds no records (no segment files, or only
    /// empty ones) and [`VerifyOptions::allow_empty`] is not set. A wrong
    /// path or a log deleted whole must not verify as "OK".
    NoLog,
    /// A line is not a record (bad JSON, torn line).
    MalformedRecord,
    /// A record's content does not match its hash (a changed byte).
    RecordModified,
    /// A record's `prev_hash` does not match the previous record's hash.
    ChainBroken,
    /// Sequence numbers are missing (records deleted).
    MissingRecords,
    /// Records appear out of sequence order.
    ReorderedRecords,
    /// A sequence number appears more than once.
    DuplicateRecord,
    /// An `audit-*.jsonl` file whose name does not follow the segment scheme.
    UnexpectedFile,
    /// A checkpoint line cannot be parsed.
    MalformedCheckpoint,
    /// A checkpoint signature does not verify.
    BadCheckpointSignature,
    /// A checkpoint is signed by a key that is not in `keys.json`.
    UnknownCheckpointKey,
    /// A checkpoint does not match the chain (hash or anchor differs).
    CheckpointMismatch,
    /// The log is shorter than a checkpoint says.
    TruncatedTail,
    /// The log differs from an exported checkpoint at the same seq.
    RewrittenLog,
    /// The exported checkpoint file is unreadable or its signature fails.
    BadExportedCheckpoint,
}

impl FindingKind {
    /// The process exit code for this class.
    pub fn exit_code(self) -> i32 {
        match self {
            FindingKind::Unreadable => 2,
            FindingKind::NoLog => crate::cli::EXIT_NO_LOG,
            FindingKind::MalformedRecord => 10,
            FindingKind::RecordModified => 11,
            FindingKind::ChainBroken => 12,
            FindingKind::MissingRecords => 13,
            FindingKind::ReorderedRecords => 14,
            FindingKind::DuplicateRecord => 15,
            FindingKind::UnexpectedFile => 16,
            FindingKind::MalformedCheckpoint => 20,
            FindingKind::BadCheckpointSignature => 21,
            FindingKind::UnknownCheckpointKey => 22,
            FindingKind::CheckpointMismatch => 23,
            FindingKind::TruncatedTail => 30,
            FindingKind::RewrittenLog => 31,
            FindingKind::BadExportedCheckpoint => 32,
        }
    }

    /// A short human name.
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::Unreadable => "unreadable",
            FindingKind::NoLog => "no audit log",
            FindingKind::MalformedRecord => "malformed record",
            FindingKind::RecordModified => "record modified",
            FindingKind::ChainBroken => "chain broken",
            FindingKind::MissingRecords => "records deleted",
            FindingKind::ReorderedRecords => "records reordered",
            FindingKind::DuplicateRecord => "duplicated record",
            FindingKind::UnexpectedFile => "unexpected file",
            FindingKind::MalformedCheckpoint => "malformed checkpoint",
            FindingKind::BadCheckpointSignature => "bad checkpoint signature",
            FindingKind::UnknownCheckpointKey => "unknown checkpoint key",
            FindingKind::CheckpointMismatch => "checkpoint does not match the log",
            FindingKind::TruncatedTail => "truncated tail",
            FindingKind::RewrittenLog => "rewritten log",
            FindingKind::BadExportedCheckpoint => "bad exported checkpoint",
        }
    }
}

/// One problem found, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The class.
    pub kind: FindingKind,
    /// The replica whose chain it is in (a log shared by replicas in PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// File name inside the state directory (or the exported checkpoint path).
    pub file: Option<String>,
    /// 1-based line number in `file`.
    pub line: Option<u64>,
    /// The sequence number concerned.
    pub seq: Option<u64>,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.title())?;
        if let Some(replica) = &self.replica {
            write!(f, " in replica {replica}")?;
        }
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, " at {file} line {line}")?,
            (Some(file), None) => write!(f, " in {file}")?,
            _ => {}
        }
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Problems, in the order found (records, then checkpoints, then the
    /// exported checkpoint). Empty when the log verifies.
    pub findings: Vec<Finding>,
    /// Segment files read.
    pub segments: usize,
    /// Replica chains read (a log shared by replicas in PostgreSQL; 0 for a directory).
    pub replicas: usize,
    /// Records read.
    pub records: u64,
    /// Lowest sequence number present.
    pub first_seq: Option<u64>,
    /// Highest sequence number present.
    pub head_seq: Option<u64>,
    /// Hash of the head record.
    pub head_hash: Option<String>,
    /// Checkpoints whose signature verified.
    pub checkpoints_verified: usize,
    /// Verified checkpoints older than the pruned start (not comparable).
    pub checkpoints_pruned: usize,
    /// Whether an exported checkpoint was compared.
    pub exported_checked: bool,
    /// Remarks that are not failures.
    pub notes: Vec<String>,
}

impl VerifyReport {
    /// Whether the log verified without findings.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// 0 when the log verifies, else the code of the first finding's class
    /// (see the module docs for the table).
    pub fn exit_code(&self) -> i32 {
        self.findings.first().map_or(0, |f| f.kind.exit_code())
    }

    /// A human summary naming files, lines and sequence numbers.
    pub fn message(&self) -> String {
        if self.is_ok() {
            let mut m = match (self.first_seq, self.head_seq) {
                _ if self.replicas > 0 => format!(
                    "audit log OK: {} records in {} replica chain(s), every chain linked from its start",
                    self.records, self.replicas
                ),
                (Some(a), Some(b)) => format!(
                    "audit log OK: {} records (seq {a}..{b}) in {} segment file(s), head hash {}",
                    self.records,
                    self.segments,
                    self.head_hash.as_deref().unwrap_or(GENESIS_HASH)
                ),
                _ => format!("audit log OK: no records in {} segment file(s)", self.segments),
            };
            m.push_str(&format!("; {} checkpoint signature(s) verified", self.checkpoints_verified));
            if self.checkpoints_pruned > 0 {
                m.push_str(&format!(" ({} predate the pruned start)", self.checkpoints_pruned));
            }
            if self.exported_checked {
                m.push_str("; the exported checkpoint matches");
            }
            for n in &self.notes {
                m.push_str(&format!("\nnote: {n}"));
            }
            return m;
        }
        let mut m =
            format!("audit log verification FAILED: {} problem(s); first: {}", self.findings.len(), self.findings[0]);
        for f in self.findings.iter().take(MAX_LISTED_FINDINGS) {
            m.push_str(&format!("\n  - {f}"));
        }
        if self.findings.len() > MAX_LISTED_FINDINGS {
            m.push_str(&format!("\n  … and {} more", self.findings.len() - MAX_LISTED_FINDINGS));
        }
        for n in &self.notes {
            m.push_str(&format!("\nnote: {n}"));
        }
        m
    }

    fn push(&mut self, kind: FindingKind, file: Option<&str>, line: Option<u64>, seq: Option<u64>, message: String) {
        self.findings.push(Finding { kind, replica: None, file: file.map(str::to_owned), line, seq, message });
    }

    /// Adds a finding in `replica`'s chain at `seq` (a log in PostgreSQL).
    pub fn push_in_replica(&mut self, kind: FindingKind, replica: &str, seq: Option<u64>, message: String) {
        self.findings.push(Finding { kind, replica: Some(replica.to_owned()), file: None, line: None, seq, message });
    }
}

/// How [`verify_with`] treats a directory without records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Accept an existing directory that holds no records (a new log that
    /// never recorded a request). Without it such a directory is a
    /// [`FindingKind::NoLog`] failure. A missing directory always fails.
    pub allow_empty: bool,
}

/// Verifies the log in `dir`, optionally against a checkpoint exported
/// earlier. A missing directory, or one without records, is a
/// [`FindingKind::NoLog`] failure (see [`verify_with`] to accept an empty log).
pub fn verify(dir: &Path, exported_checkpoint: Option<&Path>) -> VerifyReport {
    verify_with(dir, exported_checkpoint, VerifyOptions::default())
}

/// [`verify`] with options.
pub fn verify_with(dir: &Path, exported_checkpoint: Option<&Path>, options: VerifyOptions) -> VerifyReport {
    verify_live(dir, exported_checkpoint, None, options)
}

/// What `creditgate audit verify` expects to find, for messages.
const EXPECTED_FILES: &str =
    "segment files `audit-<20-digit seq>-<YYYYMMDD>.jsonl`, with `checkpoints.jsonl` and `keys.json` beside them";

struct Entry {
    seq: u64,
    hash: String,
    prev_hash: String,
    file: String,
    line: u64,
    modified: bool,
}

/// Where a checkpoint's head lies relative to the chain.
enum Against {
    Match,
    Mismatch(String),
    Beyond(u64),
    Pruned,
    Absent,
}

/// `durable`: in a live log, ignore records above this seq and a torn last line.
pub(crate) fn verify_live(
    dir: &Path,
    exported: Option<&Path>,
    durable: Option<u64>,
    options: VerifyOptions,
) -> VerifyReport {
    let mut rep = VerifyReport::default();
    let live = durable.is_some();
    let shown_dir = dir.display().to_string();
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            rep.push(
                FindingKind::NoLog,
                Some(&shown_dir),
                None,
                None,
                format!("this is not a directory; an audit directory holds {EXPECTED_FILES}"),
            );
            return rep;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            rep.push(
                FindingKind::NoLog,
                Some(&shown_dir),
                None,
                None,
                format!(
                    "the directory does not exist (a wrong --dir, or the log was deleted whole); expected {EXPECTED_FILES}"
                ),
            );
            return rep;
        }
        Err(e) => {
            rep.push(
                FindingKind::Unreadable,
                Some(&shown_dir),
                None,
                None,
                format!("cannot open the audit directory: {e}"),
            );
            return rep;
        }
    }
    let (segments, unknown) = match list_segments(dir) {
        Ok(s) => s,
        Err(e) => {
            rep.push(FindingKind::Unreadable, None, None, None, format!("cannot list the audit directory: {e}"));
            return rep;
        }
    };
    for name in unknown {
        rep.push(
            FindingKind::UnexpectedFile,
            Some(&name),
            None,
            None,
            "the file name does not follow the segment scheme `audit-<20-digit seq>-<YYYYMMDD>.jsonl`; its records are not checked".to_owned(),
        );
    }

    // 1. Records.
    let mut entries: Vec<Entry> = Vec::new();
    let nseg = segments.len();
    for (si, seg) in segments.iter().enumerate() {
        let lines = match read_lines(&seg.path) {
            Ok(l) => l,
            Err(_) if live && !seg.path.exists() => continue, // pruned meanwhile
            Err(e) => {
                rep.push(FindingKind::Unreadable, Some(&seg.name), None, None, e.to_string());
                continue;
            }
        };
        rep.segments += 1;
        let nlines = lines.len();
        for (li, line) in lines.iter().enumerate() {
            let at_end = si + 1 == nseg && li + 1 == nlines;
            if !line.terminated {
                if !(live && at_end) {
                    rep.push(
                        FindingKind::MalformedRecord,
                        Some(&seg.name),
                        Some(line.number),
                        None,
                        "the line has no trailing newline (a torn write; opening the log repairs a torn last line)"
                            .to_owned(),
                    );
                }
                continue;
            }
            let r = match AuditRecord::from_line(&line.bytes) {
                Ok(r) => r,
                Err(e) => {
                    if !(live && at_end) {
                        rep.push(
                            FindingKind::MalformedRecord,
                            Some(&seg.name),
                            Some(line.number),
                            None,
                            format!("the line is not a valid audit record ({e})"),
                        );
                    }
                    continue;
                }
            };
            if durable.is_some_and(|d| r.seq > d) {
                continue;
            }
            let modified = match r.check_line(&line.bytes) {
                LineCheck::Ok => false,
                LineCheck::HashMismatch { computed } => {
                    rep.push(
                        FindingKind::RecordModified,
                        Some(&seg.name),
                        Some(line.number),
                        Some(r.seq),
                        format!(
                            "the content hashes to {computed} but the stored hash is {}: the record was changed",
                            r.hash
                        ),
                    );
                    true
                }
                LineCheck::NotCanonical | LineCheck::Unencodable => {
                    rep.push(
                        FindingKind::RecordModified,
                        Some(&seg.name),
                        Some(line.number),
                        Some(r.seq),
                        "the bytes differ from the record's canonical encoding: the record was changed".to_owned(),
                    );
                    true
                }
            };
            entries.push(Entry {
                seq: r.seq,
                hash: r.hash,
                prev_hash: r.prev_hash,
                file: seg.name.clone(),
                line: line.number,
                modified,
            });
        }
    }
    rep.records = entries.len() as u64;
    if entries.is_empty() {
        let present = |name: &str| if dir.join(name).exists() { "present" } else { "absent" };
        let found = format!(
            "found {} segment file(s) and no records; checkpoints.jsonl {}, keys.json {}",
            rep.segments,
            present(CHECKPOINTS_FILE),
            present(crate::keys::KEYS_FILE)
        );
        if options.allow_empty {
            rep.notes.push(format!("{found}; accepted as an empty log (--allow-empty)"));
        } else {
            let finding = Finding {
                replica: None,
                kind: FindingKind::NoLog,
                file: Some(shown_dir.clone()),
                line: None,
                seq: None,
                message: format!(
                    "no audit records: expected {EXPECTED_FILES}; {found}. A wrong --dir, or a log deleted whole? \
                     Pass --allow-empty only for a new log that has never recorded a request"
                ),
            };
            rep.findings.insert(0, finding);
        }
    }

    let mut first_pos: HashMap<u64, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        first_pos.entry(e.seq).or_insert(i);
    }
    let min_seq = entries.iter().map(|e| e.seq).min();
    let max_seq = entries.iter().map(|e| e.seq).max();
    rep.first_seq = min_seq;
    rep.head_seq = max_seq;
    rep.head_hash = max_seq.and_then(|m| first_pos.get(&m)).map(|&i| entries[i].hash.clone());

    // 2. Sequence order: gaps, reordering, duplicates.
    let mut max_seen: Option<u64> = None;
    for (i, e) in entries.iter().enumerate() {
        if let Some(m) = max_seen {
            if e.seq <= m {
                match first_pos.get(&e.seq) {
                    Some(&p) if p < i => {
                        let first = &entries[p];
                        let same = if first.hash == e.hash {
                            "an identical copy"
                        } else {
                            "a different record with the same seq"
                        };
                        rep.push(
                            FindingKind::DuplicateRecord,
                            Some(&e.file),
                            Some(e.line),
                            Some(e.seq),
                            format!("{same}; seq {} first appears at {} line {}", e.seq, first.file, first.line),
                        );
                    }
                    _ => rep.push(
                        FindingKind::ReorderedRecords,
                        Some(&e.file),
                        Some(e.line),
                        Some(e.seq),
                        format!("seq {} appears after seq {m}: records are out of order", e.seq),
                    ),
                }
            } else if e.seq > m + 1 {
                let expected = m + 1;
                if first_pos.get(&expected).is_some_and(|&p| p > i) {
                    rep.push(
                        FindingKind::ReorderedRecords,
                        Some(&e.file),
                        Some(e.line),
                        Some(e.seq),
                        format!("seq {} appears before seq {expected}: records are out of order", e.seq),
                    );
                } else {
                    let missing_to =
                        (expected..e.seq).take_while(|s| !first_pos.contains_key(s)).last().unwrap_or(expected);
                    rep.push(
                        FindingKind::MissingRecords,
                        Some(&e.file),
                        Some(e.line),
                        Some(e.seq),
                        if missing_to == expected {
                            format!("seq {expected} is missing before seq {}: a record was deleted", e.seq)
                        } else {
                            format!(
                                "seqs {expected}..={missing_to} are missing before seq {}: records were deleted",
                                e.seq
                            )
                        },
                    );
                }
            }
        }
        max_seen = Some(max_seen.map_or(e.seq, |m| m.max(e.seq)));
    }

    // 3. Checkpoints (parsed before the start check, which needs anchors).
    let keyring = match KeyRing::load(dir) {
        Ok(k) => k,
        Err(e) => {
            rep.push(FindingKind::Unreadable, Some(crate::keys::KEYS_FILE), None, None, e.to_string());
            KeyRing::default()
        }
    };
    let mut valid: Vec<(u64, Checkpoint)> = Vec::new();
    let mut cp_findings = VerifyReport::default();
    match fs::read(dir.join(CHECKPOINTS_FILE)) {
        Ok(data) => {
            let lines = split_lines(&data);
            let n = lines.len();
            for (li, line) in lines.iter().enumerate() {
                let f = Some(CHECKPOINTS_FILE);
                let cp = match (line.terminated, serde_json::from_slice::<Checkpoint>(&line.bytes)) {
                    (true, Ok(cp)) => cp,
                    (_, res) => {
                        if !(live && li + 1 == n) {
                            let why = match res {
                                Err(e) => format!("not a valid checkpoint ({e})"),
                                Ok(_) => "no trailing newline (torn write)".to_owned(),
                            };
                            cp_findings.push(FindingKind::MalformedCheckpoint, f, Some(line.number), None, why);
                        }
                        continue;
                    }
                };
                if durable.is_some_and(|d| cp.head_seq > d) {
                    continue;
                }
                let Some(pk) = keyring.public_key(&cp.key_id) else {
                    cp_findings.push(
                        FindingKind::UnknownCheckpointKey,
                        f,
                        Some(line.number),
                        Some(cp.head_seq),
                        format!("signed by key {} which is not in keys.json", cp.key_id),
                    );
                    continue;
                };
                if !cp.verify(&pk) {
                    cp_findings.push(
                        FindingKind::BadCheckpointSignature,
                        f,
                        Some(line.number),
                        Some(cp.head_seq),
                        format!(
                            "the signature does not verify under key {}: the checkpoint was altered or forged",
                            cp.key_id
                        ),
                    );
                    continue;
                }
                valid.push((line.number, cp));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => cp_findings.push(FindingKind::Unreadable, Some(CHECKPOINTS_FILE), None, None, e.to_string()),
    }
    rep.checkpoints_verified = valid.len();

    // 4. The start of the chain: genesis, or a signed anchor.
    if let Some(min) = min_seq
        && let Some(&p) = first_pos.get(&min)
    {
        let first = &entries[p];
        let anchored = valid.iter().any(|(_, cp)| {
            cp.anchor.as_ref().is_some_and(|a| a.first_seq == first.seq && a.prev_hash == first.prev_hash)
        });
        if first.seq == 1 {
            if first.prev_hash != GENESIS_HASH && !first.modified {
                rep.push(
                    FindingKind::ChainBroken,
                    Some(&first.file),
                    Some(first.line),
                    Some(1),
                    "the first record's prev_hash is not the genesis hash".to_owned(),
                );
            }
        } else if !anchored {
            rep.push(
                FindingKind::MissingRecords,
                Some(&first.file),
                Some(first.line),
                Some(first.seq),
                format!(
                    "the log starts at seq {}, and no signed anchor checkpoint covers seqs 1..={}: records were deleted from the start",
                    first.seq,
                    first.seq - 1
                ),
            );
        }
    }

    // 5. Links.
    for (i, e) in entries.iter().enumerate() {
        if first_pos.get(&e.seq) != Some(&i) || e.seq == 0 || e.modified {
            continue;
        }
        if let Some(&p) = first_pos.get(&(e.seq - 1)) {
            let prev = &entries[p];
            if !prev.modified && prev.hash != e.prev_hash {
                rep.push(
                    FindingKind::ChainBroken,
                    Some(&e.file),
                    Some(e.line),
                    Some(e.seq),
                    format!("prev_hash does not match the hash of seq {} ({} line {})", prev.seq, prev.file, prev.line),
                );
            }
        }
    }

    // 6. Checkpoints against the chain.
    rep.findings.append(&mut cp_findings.findings);
    let against = |seq: u64, hash: &str| -> Against {
        if seq == 0 {
            return if hash == GENESIS_HASH { Against::Match } else { Against::Mismatch(GENESIS_HASH.to_owned()) };
        }
        let max = max_seq.unwrap_or(0);
        if seq > max {
            return Against::Beyond(max);
        }
        if let Some(&p) = first_pos.get(&seq) {
            return if entries[p].hash == hash { Against::Match } else { Against::Mismatch(entries[p].hash.clone()) };
        }
        if let Some(min) = min_seq
            && seq < min
        {
            if seq + 1 == min
                && let Some(&p) = first_pos.get(&min)
            {
                return if entries[p].prev_hash == hash {
                    Against::Match
                } else {
                    Against::Mismatch(entries[p].prev_hash.clone())
                };
            }
            return Against::Pruned;
        }
        Against::Absent
    };
    for (line, cp) in &valid {
        let f = Some(CHECKPOINTS_FILE);
        if cp.record_count != cp.head_seq {
            rep.push(
                FindingKind::CheckpointMismatch,
                f,
                Some(*line),
                Some(cp.head_seq),
                format!("record_count {} differs from head_seq {}", cp.record_count, cp.head_seq),
            );
        }
        match against(cp.head_seq, &cp.head_hash) {
            Against::Match => {}
            Against::Pruned => rep.checkpoints_pruned += 1,
            Against::Beyond(max) => rep.push(
                FindingKind::TruncatedTail,
                f,
                Some(*line),
                Some(cp.head_seq),
                format!(
                    "the checkpoint signed {} records {} records but the log ends at seq {max}: records were removed from the end",
                    crate::record::rfc3339_millis::format(&cp.time),
                    cp.record_count
                ),
            ),
            Against::Mismatch(actual) => rep.push(
                FindingKind::CheckpointMismatch,
                f,
                Some(*line),
                Some(cp.head_seq),
                format!("the checkpoint says seq {} has hash {} but the log has {actual}", cp.head_seq, cp.head_hash),
            ),
            Against::Absent => rep.push(
                FindingKind::CheckpointMismatch,
                f,
                Some(*line),
                Some(cp.head_seq),
                format!("the checkpoint's head seq {} is not in the log", cp.head_seq),
            ),
        }
        if let Some(a) = &cp.anchor
            && let Some(&p) = first_pos.get(&a.first_seq)
            && entries[p].prev_hash != a.prev_hash
        {
            rep.push(
                FindingKind::CheckpointMismatch,
                f,
                Some(*line),
                Some(a.first_seq),
                format!(
                    "the anchor says seq {} follows hash {} but the record has prev_hash {}",
                    a.first_seq, a.prev_hash, entries[p].prev_hash
                ),
            );
        }
    }

    // 7. The exported checkpoint.
    if let Some(path) = exported {
        let shown = path.display().to_string();
        let f = Some(shown.as_str());
        match ExportedCheckpoint::read(path) {
            Err(e) => rep.push(FindingKind::BadExportedCheckpoint, f, None, None, format!("cannot read it: {e}")),
            Ok(x) if !x.is_valid() => rep.push(
                FindingKind::BadExportedCheckpoint,
                f,
                None,
                Some(x.checkpoint.head_seq),
                "its signature does not verify under the public key it carries".to_owned(),
            ),
            Ok(x) => {
                rep.exported_checked = true;
                let cp = &x.checkpoint;
                if keyring.public_key(&cp.key_id).is_none() {
                    rep.notes
                        .push(format!("the exported checkpoint's key {} is not in the log's keys.json", cp.key_id));
                }
                match against(cp.head_seq, &cp.head_hash) {
                    Against::Match => {}
                    Against::Pruned => {
                        rep.exported_checked = false;
                        rep.notes.push(format!(
                            "the exported checkpoint (seq {}) predates the pruned start; it cannot be compared",
                            cp.head_seq
                        ));
                    }
                    Against::Beyond(max) => rep.push(
                        FindingKind::TruncatedTail,
                        f,
                        None,
                        Some(cp.head_seq),
                        format!(
                            "the exported checkpoint signed {} records {} records but the log ends at seq {max}: records were removed from the end",
                            crate::record::rfc3339_millis::format(&cp.time),
                            cp.record_count
                        ),
                    ),
                    Against::Mismatch(actual) => rep.push(
                        FindingKind::RewrittenLog,
                        f,
                        None,
                        Some(cp.head_seq),
                        format!(
                            "the exported checkpoint says seq {} has hash {} but the log has {actual}: the log was rewritten",
                            cp.head_seq, cp.head_hash
                        ),
                    ),
                    Against::Absent => rep.push(
                        FindingKind::RewrittenLog,
                        f,
                        None,
                        Some(cp.head_seq),
                        format!("seq {} of the exported checkpoint is not in the log", cp.head_seq),
                    ),
                }
            }
        }
    }
    rep
}

/// Writes the latest checkpoint in `dir` whose signature verifies, with its
/// public key, to `out` (for a witness). Works on a closed or running log;
/// a running log can export a fresh one with
/// [`AuditLog::export_checkpoint`](crate::AuditLog::export_checkpoint).
pub fn export_checkpoint(dir: &Path, out: &Path) -> Result<ExportedCheckpoint, AuditError> {
    let keyring = KeyRing::load(dir)?;
    let path = dir.join(CHECKPOINTS_FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AuditError::io("read", path)(e)),
    };
    let found = split_lines(&data)
        .iter()
        .rev()
        .filter(|l| l.terminated)
        .filter_map(|l| serde_json::from_slice::<Checkpoint>(&l.bytes).ok())
        .find_map(|cp| keyring.public_key(&cp.key_id).filter(|pk| cp.verify(pk)).map(|pk| (cp, pk)));
    let Some((checkpoint, pk)) = found else {
        return Err(AuditError::NoCheckpoint { dir: dir.to_path_buf() });
    };
    let exported = ExportedCheckpoint { format: EXPORT_FORMAT.to_owned(), checkpoint, public_key: B64.encode(pk) };
    write_export(out, &exported)?;
    Ok(exported)
}

/// Writes an exported checkpoint file atomically.
pub(crate) fn write_export(out: &Path, exported: &ExportedCheckpoint) -> Result<(), AuditError> {
    let mut bytes = serde_json::to_vec_pretty(exported)
        .map_err(|source| AuditError::Json { what: "exported checkpoint", source })?;
    bytes.push(b'\n');
    use creditgate_files::{Access, Existing};
    creditgate_files::write_atomic(out, &bytes, Access::Public, Existing::Replace).map_err(crate::segment::write_error)
}
