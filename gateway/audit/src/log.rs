//! The append-only log: group-commit writer thread, checkpoints, crash
//! repair, key rotation and pruning.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound as _, Utc};
use tracing::{debug, error, info, warn};

use crate::checkpoint::{Anchor, CHECKPOINTS_FILE, Checkpoint, CheckpointKind, EXPORT_FORMAT, ExportedCheckpoint};
use crate::error::AuditError;
use crate::keys::{KeyRing, SigningKey};
use crate::record::{AuditRecord, GENESIS_HASH, LineCheck, NewRecord};
use crate::search::{self, AccessEntry, AuditQuery, Page, Stats, StatsQuery};
use crate::segment::{self, SegmentInfo, list_segments, read_lines, segment_name, sync_dir};

/// Default: a checkpoint every this many records.
pub const DEFAULT_CHECKPOINT_EVERY_RECORDS: u64 = 1000;
/// Default: a checkpoint at least this often while records arrive.
pub const DEFAULT_CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// Default retention: 3 years (PIPL §55–56 keep processing records at least 3 years).
pub const DEFAULT_RETENTION_DAYS: u32 = 1096;
/// Smallest accepted retention: 6 months (Cybersecurity Law Art. 21).
pub const MIN_RETENTION_DAYS: u32 = 183;
/// Default time the writer waits for more records before one fsync.
pub const DEFAULT_GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(2);
/// Default: roll to a new segment after this many records (segments also roll daily, UTC).
pub const DEFAULT_SEGMENT_MAX_RECORDS: u64 = 100_000;
/// Largest number of records written with one fsync. Crash repair never
/// drops more than this many trailing lines.
pub const MAX_BATCH_RECORDS: usize = 4096;
/// Lock file that keeps a second writer out of the directory.
pub const LOCK_FILE: &str = "audit.lock";

/// How the log behaves. Build with [`AuditOptions::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Ed25519 PKCS#8 private key file for checkpoints; created (mode 0600) if missing.
    pub signing_key_file: PathBuf,
    /// Write a checkpoint after this many records.
    pub checkpoint_every_records: u64,
    /// Write a checkpoint at least this often when records were appended since the last one.
    pub checkpoint_every: Duration,
    /// [`AuditLog::prune`] removes segments whose newest record is older than this.
    pub retention_days: u32,
    /// How long the writer waits for more records to share one fsync (zero: no wait).
    pub group_commit_window: Duration,
    /// Roll to a new segment after this many records.
    pub segment_max_records: u64,
}

impl AuditOptions {
    /// Default options with the given signing key file.
    pub fn new(signing_key_file: impl Into<PathBuf>) -> Self {
        AuditOptions {
            signing_key_file: signing_key_file.into(),
            checkpoint_every_records: DEFAULT_CHECKPOINT_EVERY_RECORDS,
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
            retention_days: DEFAULT_RETENTION_DAYS,
            group_commit_window: DEFAULT_GROUP_COMMIT_WINDOW,
            segment_max_records: DEFAULT_SEGMENT_MAX_RECORDS,
        }
    }

    fn validate(&self) -> Result<(), AuditError> {
        let bad = |reason: String| Err(AuditError::InvalidOptions { reason });
        if self.checkpoint_every_records == 0 {
            return bad("checkpoint_every_records must be at least 1".to_owned());
        }
        if self.checkpoint_every.is_zero() {
            return bad("checkpoint_every must be positive".to_owned());
        }
        if self.retention_days < MIN_RETENTION_DAYS {
            return bad(format!("retention_days must be at least {MIN_RETENTION_DAYS} (6 months)"));
        }
        if self.group_commit_window > Duration::from_secs(1) {
            return bad("group_commit_window must be at most 1 s".to_owned());
        }
        if self.segment_max_records == 0 {
            return bad("segment_max_records must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// Proof that a record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReceipt {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's hash.
    pub hash: String,
}

/// What [`AuditLog::prune`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PruneReport {
    /// Segment files removed.
    pub removed_segments: Vec<String>,
    /// Records (lines) removed.
    pub removed_records: u64,
    /// The anchored new first sequence number, if anything was removed.
    pub first_seq: Option<u64>,
}

/// The audit log of one state directory. Share it in an `Arc`; all methods
/// take `&self`. [`append`](Self::append) blocks until the record is durable,
/// so async code calls it inside `spawn_blocking`.
pub struct AuditLog {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    _lock: fs::File,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("dir", &self.shared.dir).finish_non_exhaustive()
    }
}

struct Shared {
    dir: PathBuf,
    options: AuditOptions,
    queue: Mutex<Queue>,
    queue_cv: Condvar,
    core: Mutex<Core>,
    durable_seq: AtomicU64,
    fsyncs: AtomicU64,
    #[cfg(any(test, feature = "test-util"))]
    fail_writes: std::sync::atomic::AtomicU32,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    pending_records: usize,
    shutdown: bool,
}

struct Job {
    records: Vec<NewRecord>,
    slot: Arc<Slot>,
}

type JobResult = Result<Vec<AuditReceipt>, AuditError>;

#[derive(Default)]
struct Slot {
    result: Mutex<Option<JobResult>>,
    cv: Condvar,
}

impl Slot {
    fn complete(&self, r: JobResult) {
        *lock(&self.result) = Some(r);
        self.cv.notify_all();
    }

    fn wait(&self) -> JobResult {
        let mut g = lock(&self.result);
        loop {
            if let Some(r) = g.take() {
                return r;
            }
            g = self.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// State owned by whoever holds the `core` lock (normally the writer thread).
struct Core {
    file: fs::File,
    segment: SegmentInfo,
    segment_records: u64,
    segment_len: u64,
    head_seq: u64,
    head_hash: String,
    last_time: DateTime<Utc>,
    key: SigningKey,
    keyring: KeyRing,
    checkpoints: fs::File,
    checkpoints_len: u64,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    failed: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_millis() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

fn open_append(path: &Path, create_new: bool) -> Result<fs::File, AuditError> {
    let mut o = fs::OpenOptions::new();
    o.append(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true);
    }
    o.open(path).map_err(AuditError::io("open", path))
}

impl AuditLog {
    /// Opens (creating if needed) the log in `dir`: takes the directory lock,
    /// loads or creates the signing key, repairs a torn tail left by a crash
    /// (logging a warning), and starts the writer thread.
    ///
    /// Fails with [`AuditError::Corrupt`] when the damage is not a torn tail
    /// (for example acknowledged records are missing), with
    /// [`AuditError::Locked`] when another process uses the directory.
    pub fn open(dir: impl AsRef<Path>, options: AuditOptions) -> Result<Self, AuditError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(AuditError::io("create directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(AuditError::io("open", &lock_path))?;
        match lock_file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(AuditError::Locked { dir }),
            Err(fs::TryLockError::Error(e)) => return Err(AuditError::io("lock", &lock_path)(e)),
        }

        let key = SigningKey::load_or_create(&options.signing_key_file)?;
        let now = now_millis();
        let mut keyring = KeyRing::load(&dir)?;
        if keyring.ensure(&key, now) {
            keyring.save(&dir)?;
            info!(audit.key_id = %key.key_id(), "audit signing key added to keys.json");
        }
        let (checkpoints, checkpoints_len, checkpoint_head) = open_checkpoints(&dir, &keyring)?;
        let active = recover(&dir, checkpoint_head, now)?;
        let head_seq = active.head_seq;
        let core = Core {
            file: active.file,
            segment: active.segment,
            segment_records: active.segment_records,
            segment_len: active.segment_len,
            head_seq,
            head_hash: active.head_hash,
            last_time: active.last_time,
            key,
            keyring,
            checkpoints,
            checkpoints_len,
            since_checkpoint: head_seq.saturating_sub(checkpoint_head),
            last_checkpoint: Instant::now(),
            failed: None,
        };
        let shared = Arc::new(Shared {
            dir,
            options,
            queue: Mutex::new(Queue::default()),
            queue_cv: Condvar::new(),
            core: Mutex::new(core),
            durable_seq: AtomicU64::new(head_seq),
            fsyncs: AtomicU64::new(0),
            #[cfg(any(test, feature = "test-util"))]
            fail_writes: std::sync::atomic::AtomicU32::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("audit-writer".to_owned())
            .spawn(move || writer_loop(&thread_shared))
            .map_err(AuditError::io("spawn writer thread", &shared.dir))?;
        debug!(audit.head_seq = head_seq, "audit log opened");
        Ok(AuditLog { shared, writer: Mutex::new(Some(handle)), _lock: lock_file })
    }

    /// Appends one record and returns once it is fsync'ed. On any write or
    /// fsync failure the record is not stored and an error is returned: the
    /// caller must refuse the request.
    pub fn append(&self, record: NewRecord) -> Result<AuditReceipt, AuditError> {
        self.append_many(vec![record])?
            .pop()
            .ok_or_else(|| AuditError::WriteFailed { reason: "the writer returned no receipt".to_owned() })
    }

    /// Appends several records with consecutive sequence numbers, all or
    /// none, and returns once they are fsync'ed.
    pub fn append_many(&self, records: Vec<NewRecord>) -> Result<Vec<AuditReceipt>, AuditError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        for r in &records {
            r.validate()?;
        }
        let slot = Arc::new(Slot::default());
        {
            let mut q = lock(&self.shared.queue);
            if q.shutdown {
                return Err(AuditError::Closed);
            }
            q.pending_records += records.len();
            q.jobs.push(Job { records, slot: Arc::clone(&slot) });
        }
        self.shared.queue_cv.notify_all();
        slot.wait()
    }

    /// Writes a signed checkpoint of the current head now.
    pub fn checkpoint_now(&self) -> Result<Checkpoint, AuditError> {
        lock(&self.shared.core).write_checkpoint(CheckpointKind::Manual, None, None)
    }

    /// Writes a fresh checkpoint and exports it, with the public key, to `out`
    /// for a witness to keep.
    pub fn export_checkpoint(&self, out: &Path) -> Result<ExportedCheckpoint, AuditError> {
        let mut core = lock(&self.shared.core);
        let checkpoint = core.write_checkpoint(CheckpointKind::Manual, None, None)?;
        let exported = ExportedCheckpoint {
            format: EXPORT_FORMAT.to_owned(),
            checkpoint,
            public_key: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, core.key.public_key()),
        };
        drop(core);
        crate::verify::write_export(out, &exported)?;
        Ok(exported)
    }

    /// Switches checkpoint signing to `new_key`. The old key signs a
    /// `rotation` checkpoint naming the new key id, the new public key is added
    /// to `keys.json` (old ones stay, so old checkpoints still verify), and
    /// the new key signs a checkpoint at once. Point
    /// [`AuditOptions::signing_key_file`] at the new key for the next start.
    pub fn rotate_key(&self, new_key: SigningKey) -> Result<(), AuditError> {
        let mut core = lock(&self.shared.core);
        if new_key.key_id() == core.key.key_id() {
            return Ok(());
        }
        core.write_checkpoint(CheckpointKind::Rotation, None, Some(new_key.key_id().to_owned()))?;
        let mut ring = core.keyring.clone();
        ring.ensure(&new_key, now_millis());
        ring.save(&self.shared.dir)?;
        core.keyring = ring;
        info!(audit.old_key_id = %core.key.key_id(), audit.key_id = %new_key.key_id(), "audit signing key rotated");
        core.key = new_key;
        core.write_checkpoint(CheckpointKind::Manual, None, None)?;
        Ok(())
    }

    /// Removes whole segments whose newest record is older than
    /// `now - retention_days`, oldest first. Before removing anything it
    /// writes a signed `anchor` checkpoint naming the first remaining record
    /// and its `prev_hash`, so the remaining chain still verifies. The
    /// segment holding the head record is never removed.
    pub fn prune(&self, now: DateTime<Utc>) -> Result<PruneReport, AuditError> {
        let cutoff = now - chrono::Duration::days(i64::from(self.shared.options.retention_days));
        let mut core = lock(&self.shared.core);
        let dir = &self.shared.dir;
        let (segments, _) = list_segments(dir)?;
        let mut removable: Vec<&SegmentInfo> = Vec::new();
        let mut removed_records = 0u64;
        for (i, seg) in segments.iter().enumerate() {
            if seg.path == core.segment.path {
                break;
            }
            // Keep the segment that holds the head record.
            if segments.get(i + 1).is_none_or(|next| next.first_seq > core.head_seq) {
                break;
            }
            let lines = read_lines(&seg.path)?;
            let newest = lines.iter().rev().find_map(|l| AuditRecord::from_line(&l.bytes).ok());
            match newest {
                Some(r) if r.time < cutoff => {}
                None if lines.is_empty() => {}
                _ => break,
            }
            removed_records += lines.len() as u64;
            removable.push(seg);
        }
        if removable.is_empty() {
            return Ok(PruneReport::default());
        }
        let mut anchor = None;
        for seg in &segments[removable.len()..] {
            if let Some(first) = read_lines(&seg.path)?.first() {
                let r = AuditRecord::from_line(&first.bytes).map_err(|e| AuditError::Corrupt {
                    file: seg.name.clone(),
                    line: first.number,
                    reason: format!("first record is unreadable ({e}); cannot anchor the pruned log"),
                })?;
                anchor = Some(Anchor { first_seq: r.seq, prev_hash: r.prev_hash });
                break;
            }
        }
        let Some(anchor) = anchor else {
            return Ok(PruneReport::default());
        };
        let first_seq = anchor.first_seq;
        core.write_checkpoint(CheckpointKind::Anchor, Some(anchor), None)?;
        let mut removed_segments = Vec::new();
        for seg in removable {
            fs::remove_file(&seg.path).map_err(AuditError::io("remove", &seg.path))?;
            removed_segments.push(seg.name.clone());
        }
        sync_dir(dir)?;
        info!(
            audit.removed_segments = removed_segments.len(),
            audit.removed_records = removed_records,
            audit.first_seq = first_seq,
            "audit log pruned"
        );
        Ok(PruneReport { removed_segments, removed_records, first_seq: Some(first_seq) })
    }

    /// Stops accepting records, lets the writer finish what is queued, and
    /// writes a final `close` checkpoint. Idempotent; also done on drop.
    pub fn close(&self) -> Result<(), AuditError> {
        lock(&self.shared.queue).shutdown = true;
        self.shared.queue_cv.notify_all();
        let Some(handle) = lock(&self.writer).take() else {
            return Ok(());
        };
        if handle.join().is_err() {
            error!("audit writer thread panicked");
        }
        let mut core = lock(&self.shared.core);
        if core.failed.is_none() && core.since_checkpoint > 0 {
            core.write_checkpoint(CheckpointKind::Close, None, None)?;
        }
        Ok(())
    }

    /// Sequence number and hash of the last durable record (0 and
    /// [`GENESIS_HASH`] for an empty log).
    pub fn head(&self) -> (u64, String) {
        let core = lock(&self.shared.core);
        (core.head_seq, core.head_hash.clone())
    }

    /// How many fsyncs of segment data the writer has done since `open`
    /// (with group commit, fewer than the records appended under load).
    pub fn fsync_count(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Id of the key that currently signs checkpoints.
    pub fn key_id(&self) -> String {
        lock(&self.shared.core).key.key_id().to_owned()
    }

    /// Verifies the live log (durable records only), for the chain-status endpoint.
    pub fn verify(&self) -> crate::verify::VerifyReport {
        // An open log is certainly this directory's log; a new one may hold no record yet.
        crate::verify::verify_live(
            &self.shared.dir,
            None,
            Some(self.shared.durable_seq.load(Ordering::Acquire)),
            crate::verify::VerifyOptions { allow_empty: true },
        )
    }

    /// Searches durable records, newest first. O(records).
    pub fn search(&self, query: &AuditQuery) -> Result<Page<AuditRecord>, AuditError> {
        search::search_dir(&self.shared.dir, query, Some(self.shared.durable_seq.load(Ordering::Acquire)))
    }

    /// Every access to the subject with this keyed hash, newest first.
    pub fn subject_report(&self, subject_hash: &str) -> Result<Vec<AccessEntry>, AuditError> {
        search::subject_report_dir(
            &self.shared.dir,
            subject_hash,
            Some(self.shared.durable_seq.load(Ordering::Acquire)),
        )
    }

    /// Requests and refusals per day, organisation and purpose, plus flagged callers.
    pub fn stats(&self, query: &StatsQuery) -> Result<Stats, AuditError> {
        search::stats_dir(&self.shared.dir, query, Some(self.shared.durable_seq.load(Ordering::Acquire)))
    }

    /// Test hook: the next `count` batch writes fail after writing part of
    /// their bytes, as a full disk or I/O error would.
    #[cfg(any(test, feature = "test-util"))]
    pub fn inject_write_failures(&self, count: u32) {
        self.shared.fail_writes.store(count, Ordering::SeqCst);
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            error!(error = %e, "closing the audit log failed");
        }
    }
}

impl Shared {
    #[cfg(any(test, feature = "test-util"))]
    fn take_injected_failure(&self) -> bool {
        self.fail_writes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    #[cfg(not(any(test, feature = "test-util")))]
    fn take_injected_failure(&self) -> bool {
        false
    }
}

impl Core {
    /// Signs and appends a checkpoint of the current head (fsync'ed).
    fn write_checkpoint(
        &mut self,
        kind: CheckpointKind,
        anchor: Option<Anchor>,
        next_key_id: Option<String>,
    ) -> Result<Checkpoint, AuditError> {
        let cp = Checkpoint::sign(&self.key, kind, self.head_seq, &self.head_hash, now_millis(), anchor, next_key_id)?;
        let line = cp.to_line()?;
        let res = self.checkpoints.write_all(&line).and_then(|()| self.checkpoints.sync_data());
        if let Err(e) = res {
            // Remove a partial line so later checkpoints stay parseable.
            let _ = self.checkpoints.set_len(self.checkpoints_len);
            return Err(AuditError::Io {
                action: "append checkpoint to",
                path: PathBuf::from(CHECKPOINTS_FILE),
                source: e,
            });
        }
        self.checkpoints_len += line.len() as u64;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        debug!(audit.head_seq = cp.head_seq, audit.kind = ?cp.kind, "audit checkpoint written");
        Ok(cp)
    }

    /// Starts a new segment when the current one is full or from another day.
    fn roll_if_needed(&mut self, dir: &Path, options: &AuditOptions, now: DateTime<Utc>) -> Result<(), AuditError> {
        let day = now.date_naive();
        if self.segment_records == 0 || (self.segment_records < options.segment_max_records && self.segment.day == day)
        {
            return Ok(());
        }
        let first_seq = self.head_seq + 1;
        let name = segment_name(first_seq, day);
        let path = dir.join(&name);
        let file = open_append(&path, true)?;
        sync_dir(dir)?;
        self.file = file;
        self.segment = SegmentInfo { path, name, first_seq, day };
        self.segment_records = 0;
        self.segment_len = 0;
        Ok(())
    }
}

/// Marks the queue shut and fails whatever is still queued when the writer
/// thread ends (normally or by panic), so no appender waits forever.
struct WriterGuard<'a>(&'a Shared);

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        let jobs = {
            let mut q = lock(&self.0.queue);
            q.shutdown = true;
            q.pending_records = 0;
            std::mem::take(&mut q.jobs)
        };
        for job in jobs {
            job.slot.complete(Err(AuditError::Closed));
        }
    }
}

fn writer_loop(shared: &Shared) {
    let _guard = WriterGuard(shared);
    loop {
        let (jobs, shutdown) = next_jobs(shared);
        if !jobs.is_empty() {
            write_batch(shared, jobs);
        }
        if shutdown {
            // `next_jobs` returned everything queued; appenders see `shutdown`.
            let more = !lock(&shared.queue).jobs.is_empty();
            if !more {
                break;
            }
            continue;
        }
        let mut core = lock(&shared.core);
        if core.failed.is_none()
            && core.since_checkpoint > 0
            && (core.since_checkpoint >= shared.options.checkpoint_every_records
                || core.last_checkpoint.elapsed() >= shared.options.checkpoint_every)
            && let Err(e) = core.write_checkpoint(CheckpointKind::Periodic, None, None)
        {
            error!(error = %e, "writing an audit checkpoint failed");
        }
    }
}

/// Waits for work (or the checkpoint timer), then gathers records for up to
/// the group-commit window.
fn next_jobs(shared: &Shared) -> (Vec<Job>, bool) {
    let wait = {
        let core = lock(&shared.core);
        if core.since_checkpoint > 0 {
            shared.options.checkpoint_every.saturating_sub(core.last_checkpoint.elapsed()).max(Duration::from_millis(1))
        } else {
            shared.options.checkpoint_every
        }
    };
    let mut q = lock(&shared.queue);
    let deadline = Instant::now() + wait;
    while q.jobs.is_empty() && !q.shutdown {
        let now = Instant::now();
        if now >= deadline {
            return (Vec::new(), false);
        }
        q = shared.queue_cv.wait_timeout(q, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
    }
    let window = shared.options.group_commit_window;
    if !q.shutdown && !window.is_zero() {
        let deadline = Instant::now() + window;
        while q.pending_records < MAX_BATCH_RECORDS && !q.shutdown {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            q = shared.queue_cv.wait_timeout(q, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
    }
    q.pending_records = 0;
    (std::mem::take(&mut q.jobs), q.shutdown)
}

/// Writes all records of `jobs` with one fsync and completes every job.
fn write_batch(shared: &Shared, jobs: Vec<Job>) {
    let mut core = lock(&shared.core);
    let fail_all = |jobs: Vec<Job>, reason: &str| {
        for job in jobs {
            job.slot.complete(Err(AuditError::WriteFailed { reason: reason.to_owned() }));
        }
    };
    if let Some(reason) = core.failed.clone() {
        fail_all(jobs, &reason);
        return;
    }
    let now = now_millis().max(core.last_time);
    if let Err(e) = core.roll_if_needed(&shared.dir, &shared.options, now) {
        error!(error = %e, "audit segment roll failed; requests fail closed");
        fail_all(jobs, &e.to_string());
        return;
    }

    let mut buf = Vec::new();
    let mut seq = core.head_seq;
    let mut prev = core.head_hash.clone();
    let mut slots: Vec<(Arc<Slot>, Vec<AuditReceipt>)> = Vec::with_capacity(jobs.len());
    let mut count = 0u64;
    for job in jobs {
        let mut receipts = Vec::with_capacity(job.records.len());
        for new in job.records {
            seq += 1;
            let sealed = AuditRecord::seal(new, seq, now, prev.clone()).and_then(|r| Ok((r.to_line()?, r.hash)));
            match sealed {
                Ok((line, hash)) => {
                    buf.extend_from_slice(&line);
                    prev.clone_from(&hash);
                    receipts.push(AuditReceipt { seq, hash });
                    count += 1;
                }
                Err(e) => {
                    // Cannot happen for well-formed Rust values; fail the batch closed.
                    let reason = format!("cannot encode audit record: {e}");
                    job.slot.complete(Err(AuditError::WriteFailed { reason: reason.clone() }));
                    for (slot, _) in slots {
                        slot.complete(Err(AuditError::WriteFailed { reason: reason.clone() }));
                    }
                    return;
                }
            }
        }
        slots.push((job.slot, receipts));
    }

    let result = if shared.take_injected_failure() {
        let half = buf.len() / 2;
        core.file.write_all(&buf[..half]).and_then(|()| Err(std::io::Error::other("injected write failure")))
    } else {
        core.file.write_all(&buf).and_then(|()| core.file.sync_data())
    };
    match result {
        Ok(()) => {
            shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            core.head_seq = seq;
            core.head_hash = prev;
            core.last_time = now;
            core.segment_len += buf.len() as u64;
            core.segment_records += count;
            core.since_checkpoint += count;
            shared.durable_seq.store(seq, Ordering::Release);
            drop(core);
            for (slot, receipts) in slots {
                slot.complete(Ok(receipts));
            }
        }
        Err(e) => {
            let reason = format!("writing {} failed: {e}", core.segment.name);
            error!(error = %e, audit.file = %core.segment.name, "audit write failed; requests fail closed");
            // Take the unacknowledged bytes back out so the chain stays consistent.
            let len = core.segment_len;
            if let Err(e2) = core.file.set_len(len).and_then(|()| core.file.sync_data()) {
                error!(error = %e2, "cannot roll back a failed audit write; the log refuses records until reopened");
                core.failed = Some(format!("{reason}; rollback failed: {e2}; reopen the audit log"));
            }
            drop(core);
            for (slot, _) in slots {
                slot.complete(Err(AuditError::WriteFailed { reason: reason.clone() }));
            }
        }
    }
}

/// Opens `checkpoints.jsonl`, drops a torn last line, and returns the file,
/// its length and the head seq of the latest checkpoint that verifies.
fn open_checkpoints(dir: &Path, keyring: &KeyRing) -> Result<(fs::File, u64, u64), AuditError> {
    let path = dir.join(CHECKPOINTS_FILE);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(AuditError::io("read", &path)(e)),
    };
    let mut lines = segment::split_lines(&data);
    let mut len = data.len() as u64;
    if let Some(last) = lines.last()
        && (!last.terminated || serde_json::from_slice::<Checkpoint>(&last.bytes).is_err())
    {
        warn!(
            audit.file = CHECKPOINTS_FILE,
            audit.line = last.number,
            audit.bytes_removed = len - last.offset,
            "audit: removed a torn checkpoint line left by a crash"
        );
        len = last.offset;
        let f = fs::OpenOptions::new().write(true).open(&path).map_err(AuditError::io("open", &path))?;
        f.set_len(len).and_then(|()| f.sync_all()).map_err(AuditError::io("truncate", &path))?;
        lines.pop();
    }
    let head = lines
        .iter()
        .rev()
        .filter_map(|l| serde_json::from_slice::<Checkpoint>(&l.bytes).ok())
        .find(|cp| keyring.public_key(&cp.key_id).is_some_and(|pk| cp.verify(&pk)))
        .map_or(0, |cp| cp.head_seq);
    let file = open_append(&path, false)?;
    Ok((file, len, head))
}

struct Active {
    file: fs::File,
    segment: SegmentInfo,
    segment_records: u64,
    segment_len: u64,
    head_seq: u64,
    head_hash: String,
    last_time: DateTime<Utc>,
}

fn line_problem(
    record: &Result<AuditRecord, serde_json::Error>,
    bytes: &[u8],
    terminated: bool,
    prev: Option<&(u64, String)>,
) -> Option<String> {
    if !terminated {
        return Some("the last line has no newline (torn write)".to_owned());
    }
    let r = match record {
        Ok(r) => r,
        Err(e) => return Some(format!("the line is not a record ({e})")),
    };
    match r.check_line(bytes) {
        LineCheck::Ok => {}
        LineCheck::HashMismatch { .. } => return Some("the record's hash does not match its content".to_owned()),
        LineCheck::NotCanonical | LineCheck::Unencodable => {
            return Some("the record is not canonically encoded".to_owned());
        }
    }
    if let Some((seq, hash)) = prev {
        if r.seq != seq + 1 {
            return Some(format!("seq {} does not follow seq {seq}", r.seq));
        }
        if &r.prev_hash != hash {
            return Some("prev_hash does not link to the previous record".to_owned());
        }
    }
    None
}

/// Finds the head and repairs a torn tail of the active (last) segment.
fn recover(dir: &Path, checkpoint_head: u64, now: DateTime<Utc>) -> Result<Active, AuditError> {
    let (segments, _) = list_segments(dir)?;
    let Some(active) = segments.last().cloned() else {
        if checkpoint_head > 0 {
            return Err(AuditError::Corrupt {
                file: CHECKPOINTS_FILE.to_owned(),
                line: 0,
                reason: format!("there are no segment files but a signed checkpoint records {checkpoint_head} records"),
            });
        }
        let name = segment_name(1, now.date_naive());
        let path = dir.join(&name);
        let file = open_append(&path, true)?;
        sync_dir(dir)?;
        return Ok(Active {
            file,
            segment: SegmentInfo { path, name, first_seq: 1, day: now.date_naive() },
            segment_records: 0,
            segment_len: 0,
            head_seq: 0,
            head_hash: GENESIS_HASH.to_owned(),
            last_time: DateTime::UNIX_EPOCH,
        });
    };

    let lines = read_lines(&active.path)?;
    let mut prev: Option<(u64, String)> = None;
    let mut last_time = DateTime::UNIX_EPOCH;
    let mut good = 0usize;
    let mut problem = None;
    for line in &lines {
        let parsed = AuditRecord::from_line(&line.bytes);
        if let Some(p) = line_problem(&parsed, &line.bytes, line.terminated, prev.as_ref()) {
            problem = Some(p);
            break;
        }
        if let Ok(r) = parsed {
            last_time = r.time;
            prev = Some((r.seq, r.hash));
        }
        good += 1;
    }
    if let Some(reason) = problem {
        let tail = &lines[good..];
        let first = &tail[0];
        let acknowledged = tail
            .iter()
            .filter_map(|l| AuditRecord::from_line(&l.bytes).ok().filter(|r| r.check_line(&l.bytes) == LineCheck::Ok))
            .any(|r| r.seq <= checkpoint_head);
        if tail.len() > MAX_BATCH_RECORDS || acknowledged {
            return Err(AuditError::Corrupt {
                file: active.name.clone(),
                line: first.number,
                reason: format!("{reason}; repairing would drop acknowledged records"),
            });
        }
        let f = fs::OpenOptions::new().write(true).open(&active.path).map_err(AuditError::io("open", &active.path))?;
        f.set_len(first.offset).and_then(|()| f.sync_all()).map_err(AuditError::io("truncate", &active.path))?;
        let bytes: usize = tail.iter().map(|l| l.bytes.len() + usize::from(l.terminated)).sum();
        warn!(
            audit.file = %active.name,
            audit.line = first.number,
            audit.lines_removed = tail.len(),
            audit.bytes_removed = bytes,
            audit.reason = %reason,
            "audit: repaired a torn tail left by a crash (never acknowledged, no acknowledged record lost)"
        );
    }
    let segment_len = lines.get(good).map_or_else(
        || lines.last().map_or(0, |l| l.offset + l.bytes.len() as u64 + u64::from(l.terminated)),
        |l| l.offset,
    );

    let (head_seq, head_hash) = match prev {
        Some(p) => p,
        None => {
            // The active segment is empty: the head is the last record of an earlier segment.
            let mut found = None;
            for seg in segments.iter().rev().skip(1) {
                let lines = read_lines(&seg.path)?;
                if let Some(last) = lines.last() {
                    let parsed = AuditRecord::from_line(&last.bytes);
                    if let Some(reason) = line_problem(&parsed, &last.bytes, last.terminated, None) {
                        return Err(AuditError::Corrupt { file: seg.name.clone(), line: last.number, reason });
                    }
                    if let Ok(r) = parsed {
                        last_time = r.time;
                        found = Some((r.seq, r.hash));
                    }
                    break;
                }
            }
            match found {
                Some(f) => f,
                None if active.first_seq == 1 => (0, GENESIS_HASH.to_owned()),
                None => {
                    return Err(AuditError::Corrupt {
                        file: active.name.clone(),
                        line: 0,
                        reason: format!("no records, but the segment starts at seq {}", active.first_seq),
                    });
                }
            }
        }
    };
    if head_seq < checkpoint_head {
        return Err(AuditError::Corrupt {
            file: active.name.clone(),
            line: good as u64,
            reason: format!(
                "the log ends at seq {head_seq} but a signed checkpoint records {checkpoint_head} records; acknowledged records are missing"
            ),
        });
    }
    let file = open_append(&active.path, false)?;
    Ok(Active { file, segment_records: good as u64, segment_len, segment: active, head_seq, head_hash, last_time })
}
