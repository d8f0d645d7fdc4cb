//! The audit log in PostgreSQL: one hash chain per replica, group commit,
//! signed checkpoints beside the records, reads across every replica.
//!
//! Each replica appends to its own chain (`replica`, `seq`) so replicas
//! never contend for a head; a record names its replica inside its hashed
//! bytes, so a row moved to another chain does not verify. Records are
//! committed before [`AuditStore::append_many`] returns: the gateway
//! releases nothing whose record is not in the database. Appends queued
//! while a commit is in flight share the next transaction (group commit).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound as _, Utc};
use creditgate_audit::{
    AccessEntry, Anchor, AuditError, AuditQuery, AuditReceipt, AuditRecord, AuditStore, Checkpoint, CheckpointKind,
    GENESIS_HASH, NewRecord, Page, PruneReport, SigningKey, Stats, StatsQuery, VerifyReport,
};
use tokio::sync::mpsc;

use crate::{PgState, Pool, StateError};

/// Largest number of records committed in one transaction.
pub const MAX_BATCH_RECORDS: usize = 2048;

/// How the log behaves.
#[derive(Debug, Clone)]
pub struct PgAuditOptions {
    /// This replica's Ed25519 PKCS#8 checkpoint key (created if missing).
    pub signing_key_file: std::path::PathBuf,
    /// A checkpoint after this many records.
    pub checkpoint_every_records: u64,
    /// A checkpoint at least this often while records arrive.
    pub checkpoint_every: Duration,
    /// [`AuditStore::prune`] removes this replica's records older than this.
    pub retention_days: u32,
}

type Reply<T> = std::sync::mpsc::Sender<Result<T, AuditError>>;

enum Command {
    Append(Vec<NewRecord>, Reply<Vec<AuditReceipt>>),
    Checkpoint(CheckpointKind, Option<Anchor>, Reply<Checkpoint>),
}

/// The audit log of one replica in the shared state.
pub struct PgAuditLog {
    state: PgState,
    options: PgAuditOptions,
    commits: Arc<AtomicU64>,
    queue: Mutex<Option<mpsc::UnboundedSender<Command>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for PgAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAuditLog").field("replica", &self.state.replica()).finish_non_exhaustive()
    }
}

fn unavailable(e: StateError) -> AuditError {
    match e {
        StateError::Unavailable(reason) => AuditError::StoreUnavailable { reason },
        other => AuditError::WriteFailed { reason: other.to_string() },
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PgAuditLog {
    /// Opens this replica's log: loads or creates its signing key, records
    /// the public key in `audit_keys`, and starts the writer. The chain's
    /// head is read from the database before the first append.
    pub async fn open(state: PgState, options: PgAuditOptions) -> Result<PgAuditLog, StateError> {
        let key = SigningKey::load_or_create(&options.signing_key_file)
            .map_err(|e| StateError::Settings(format!("audit signing key: {e}")))?;
        let (key_id, public) = (key.key_id().to_owned(), b64(key.public_key()));
        let replica = state.replica().to_owned();
        state
            .run(move |pool| async move {
                let conn = pool.get().await?;
                let row = conn
                    .query_opt(
                        "INSERT INTO audit_keys (key_id, public_key, replica, added) VALUES ($1, $2, $3, now()) \
                         ON CONFLICT (key_id) DO NOTHING RETURNING 1",
                        &[&key_id, &public, &replica],
                    )
                    .await?;
                if row.is_none() {
                    let owner: String =
                        conn.query_one("SELECT replica FROM audit_keys WHERE key_id = $1", &[&key_id]).await?.get(0);
                    if owner != replica {
                        return Err(StateError::Settings(format!(
                            "the audit signing key {key_id} is already the key of replica `{owner}`; every replica \
                             needs its own state directory and key"
                        )));
                    }
                }
                Ok(())
            })
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            commits: Arc::clone(&commits),
            pool: state.inner.pool.clone(),
            replica: state.replica().to_owned(),
            key,
            head: None,
            last_time: DateTime::UNIX_EPOCH,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            every_records: options.checkpoint_every_records.max(1),
            every: options.checkpoint_every.max(Duration::from_millis(10)),
        };
        let handle = state.handle().spawn(writer.run(rx));
        Ok(PgAuditLog { state, options, commits, queue: Mutex::new(Some(tx)), writer: Mutex::new(Some(handle)) })
    }

    /// This log's replica id.
    pub fn replica(&self) -> &str {
        self.state.replica()
    }

    /// Transactions that committed records since `open` (with group commit,
    /// fewer than the records appended under load).
    pub fn commit_count(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn send<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, AuditError> {
        let (reply, wait) = std::sync::mpsc::channel();
        {
            let queue = lock(&self.queue);
            let Some(queue) = queue.as_ref() else { return Err(AuditError::Closed) };
            queue.send(make(reply)).map_err(|_| AuditError::Closed)?;
        }
        wait.recv().unwrap_or(Err(AuditError::Closed))
    }

    /// Signs a checkpoint of this replica's head now.
    pub fn checkpoint_now(&self) -> Result<Checkpoint, AuditError> {
        self.send(|reply| Command::Checkpoint(CheckpointKind::Manual, None, reply))
    }

    fn read_lines(&self, sql: &'static str, params: Filter) -> Result<Vec<AuditRecord>, AuditError> {
        self.state
            .block(move |pool| async move {
                let conn = pool.get().await?;
                let rows = match params {
                    Filter::None => conn.query(sql, &[]).await?,
                    Filter::Subject(hash) => conn.query(sql, &[&hash]).await?,
                    Filter::Since(time) => conn.query(sql, &[&time]).await?,
                };
                Ok(rows
                    .iter()
                    .filter_map(|row| AuditRecord::from_line(row.get::<_, &str>(0).as_bytes()).ok())
                    .collect())
            })
            .map_err(unavailable)
    }
}

enum Filter {
    None,
    Subject(String),
    Since(DateTime<Utc>),
}

// Reads are newest first across replicas: time, then replica and sequence
// (a replica's records are in time order within its chain).
impl AuditStore for PgAuditLog {
    fn append_many(&self, records: Vec<NewRecord>) -> Result<Vec<AuditReceipt>, AuditError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        self.send(|reply| Command::Append(records, reply))
    }

    fn search(&self, query: &AuditQuery) -> Result<Page<AuditRecord>, AuditError> {
        let records = match (&query.subject_hash, query.from) {
            (Some(hash), _) => self.read_lines(
                "SELECT line FROM audit_records WHERE $1 = ANY(subject_hashes) ORDER BY time DESC, replica DESC, seq DESC",
                Filter::Subject(hash.clone()),
            )?,
            (None, Some(from)) => self.read_lines(
                "SELECT line FROM audit_records WHERE time >= $1 ORDER BY time DESC, replica DESC, seq DESC",
                Filter::Since(from),
            )?,
            (None, None) => self.read_lines(
                "SELECT line FROM audit_records ORDER BY time DESC, replica DESC, seq DESC",
                Filter::None,
            )?,
        };
        Ok(creditgate_audit::search_records(records, query))
    }

    fn subject_report(&self, subject_hash: &str) -> Result<Vec<AccessEntry>, AuditError> {
        let records = self.read_lines(
            "SELECT line FROM audit_records WHERE $1 = ANY(subject_hashes) ORDER BY time DESC, replica DESC, seq DESC",
            Filter::Subject(subject_hash.to_owned()),
        )?;
        Ok(records.into_iter().filter_map(|r| creditgate_audit::access_entry(r, subject_hash)).collect())
    }

    fn stats(&self, query: &StatsQuery) -> Result<Stats, AuditError> {
        let earliest = creditgate_audit::stats_earliest_day(query);
        let since = earliest.and_hms_opt(0, 0, 0).map_or(DateTime::UNIX_EPOCH, |t| t.and_utc());
        let records = self.read_lines(
            "SELECT line FROM audit_records WHERE time >= $1 ORDER BY time DESC, replica DESC, seq DESC",
            Filter::Since(since),
        )?;
        let records: Vec<AuditRecord> = records.into_iter().filter(|r| r.time.date_naive() <= query.to).collect();
        Ok(creditgate_audit::compute_stats(&records, query))
    }

    fn verify(&self) -> VerifyReport {
        let state = self.state.clone();
        match state.block(|pool| async move { Ok(crate::verify::verify_pool(&pool).await) }) {
            Ok(report) => report,
            Err(e) => crate::verify::unreadable(&e.to_string()),
        }
    }

    fn prune(&self, now: DateTime<Utc>) -> Result<PruneReport, AuditError> {
        let cutoff = now - chrono::Duration::days(i64::from(self.options.retention_days));
        let replica = self.state.replica().to_owned();
        // The newest record past retention, short of the head (the head is kept).
        let last_old = {
            let replica = replica.clone();
            self.state
                .block(move |pool| async move {
                    let row = pool
                        .get()
                        .await?
                        .query_opt(
                            "SELECT max(seq) FROM audit_records WHERE replica = $1 AND time < $2 \
                             AND seq < (SELECT max(seq) FROM audit_records WHERE replica = $1)",
                            &[&replica, &cutoff],
                        )
                        .await?;
                    Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)))
                })
                .map_err(unavailable)?
        };
        let Some(last_old) = last_old else { return Ok(PruneReport::default()) };
        let first = {
            let replica = replica.clone();
            self.state
                .block(move |pool| async move {
                    let row = pool
                        .get()
                        .await?
                        .query_opt(
                            "SELECT line FROM audit_records WHERE replica = $1 AND seq = $2",
                            &[&replica, &(last_old + 1)],
                        )
                        .await?;
                    Ok(row.map(|r| r.get::<_, String>(0)))
                })
                .map_err(unavailable)?
        };
        let Some(first) = first.and_then(|line| AuditRecord::from_line(line.as_bytes()).ok()) else {
            return Err(AuditError::WriteFailed {
                reason: format!(
                    "record {} of replica {replica} is unreadable; cannot anchor the pruned chain",
                    last_old + 1
                ),
            });
        };
        let anchor = Anchor { first_seq: first.seq, prev_hash: first.prev_hash };
        self.send(|reply| Command::Checkpoint(CheckpointKind::Anchor, Some(anchor), reply))?;
        let removed = self
            .state
            .block(move |pool| async move {
                let n = pool
                    .get()
                    .await?
                    .execute("DELETE FROM audit_records WHERE replica = $1 AND seq <= $2", &[&replica, &last_old])
                    .await?;
                Ok(n)
            })
            .map_err(unavailable)?;
        Ok(PruneReport { removed_segments: Vec::new(), removed_records: removed, first_seq: Some(first.seq) })
    }

    fn close(&self) -> Result<(), AuditError> {
        let Some(queue) = lock(&self.queue).take() else { return Ok(()) };
        let (reply, wait) = std::sync::mpsc::channel();
        let closing = queue.send(Command::Checkpoint(CheckpointKind::Close, None, reply));
        drop(queue);
        let result = match closing {
            Ok(()) => wait.recv().unwrap_or(Err(AuditError::Closed)).map(|_| ()),
            Err(_) => Err(AuditError::Closed),
        };
        // The writer ends once the queue is dropped and drained.
        lock(&self.writer).take();
        result
    }
}

impl Drop for PgAuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing the PostgreSQL audit log");
        }
    }
}

/// The writer task: owns the replica's head.
struct Writer {
    commits: Arc<AtomicU64>,
    pool: Pool,
    replica: String,
    key: SigningKey,
    /// (seq, hash) of the head; `None` until read, and after a failed
    /// commit (whose outcome is unknown: it may have been stored).
    head: Option<(u64, String)>,
    last_time: DateTime<Utc>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    every_records: u64,
    every: Duration,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        loop {
            let command = tokio::select! {
                command = rx.recv() => command,
                () = tokio::time::sleep(self.every) => {
                    if self.since_checkpoint > 0 {
                        self.checkpoint_logged(CheckpointKind::Periodic).await;
                    }
                    continue;
                }
            };
            let Some(command) = command else { break };
            match command {
                Command::Append(records, reply) => {
                    let mut jobs = vec![(records, reply)];
                    let mut count = jobs[0].0.len();
                    let mut others = Vec::new();
                    while count < MAX_BATCH_RECORDS {
                        match rx.try_recv() {
                            Ok(Command::Append(records, reply)) => {
                                count += records.len();
                                jobs.push((records, reply));
                            }
                            Ok(other) => {
                                others.push(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(jobs).await;
                    if self.since_checkpoint >= self.every_records || self.last_checkpoint.elapsed() >= self.every {
                        self.checkpoint_logged(CheckpointKind::Periodic).await;
                    }
                    for other in others {
                        self.other(other).await;
                    }
                }
                other => self.other(other).await,
            }
        }
    }

    async fn other(&mut self, command: Command) {
        match command {
            Command::Append(records, reply) => self.commit(vec![(records, reply)]).await,
            Command::Checkpoint(kind, anchor, reply) => {
                let _ = reply.send(self.checkpoint(kind, anchor).await);
            }
        }
    }

    async fn checkpoint_logged(&mut self, kind: CheckpointKind) {
        if let Err(e) = self.checkpoint(kind, None).await {
            tracing::warn!(error = %e, "audit checkpoint not written; retried with the next records");
        }
    }

    async fn head(&mut self) -> Result<(u64, String), StateError> {
        if let Some(head) = &self.head {
            return Ok(head.clone());
        }
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT seq, line FROM audit_records WHERE replica = $1 ORDER BY seq DESC LIMIT 1",
                &[&self.replica],
            )
            .await?;
        let head = match row {
            None => (0, GENESIS_HASH.to_owned()),
            Some(row) => {
                let line: String = row.get(1);
                let record = AuditRecord::from_line(line.as_bytes()).map_err(|e| {
                    StateError::Database(format!(
                        "the head record of replica {} is unreadable ({e}); run `creditgate audit verify --postgres`",
                        self.replica
                    ))
                })?;
                self.last_time = self.last_time.max(record.time);
                (record.seq, record.hash)
            }
        };
        self.head = Some(head.clone());
        Ok(head)
    }

    async fn commit(&mut self, jobs: Vec<(Vec<NewRecord>, Reply<Vec<AuditReceipt>>)>) {
        let result = self.write(&jobs).await;
        match result {
            Ok(receipts) => {
                let mut receipts = receipts.into_iter();
                for (records, reply) in jobs {
                    let mine: Vec<AuditReceipt> = receipts.by_ref().take(records.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                self.head = None;
                tracing::error!(error = %e, "audit records not committed to PostgreSQL; their requests are refused");
                for (_, reply) in jobs {
                    let _ = reply.send(Err(match &e {
                        AuditError::StoreUnavailable { reason } => {
                            AuditError::StoreUnavailable { reason: reason.clone() }
                        }
                        other => AuditError::WriteFailed { reason: other.to_string() },
                    }));
                }
            }
        }
    }

    async fn write(
        &mut self,
        jobs: &[(Vec<NewRecord>, Reply<Vec<AuditReceipt>>)],
    ) -> Result<Vec<AuditReceipt>, AuditError> {
        let (mut seq, mut hash) = self.head().await.map_err(unavailable)?;
        let time = Utc::now().trunc_subsecs(3).max(self.last_time);
        let mut sealed = Vec::new();
        for (records, _) in jobs {
            for record in records {
                seq += 1;
                let r = AuditRecord::seal_in_chain(record.clone(), Some(self.replica.clone()), seq, time, hash)?;
                hash = r.hash.clone();
                sealed.push(r);
            }
        }
        let mut columns = Columns::default();
        for r in &sealed {
            let line = r.to_line()?;
            columns.replica.push(self.replica.clone());
            columns.seq.push(i64::try_from(r.seq).unwrap_or(i64::MAX));
            columns.time.push(r.time);
            columns.request_id.push(r.request_id.clone());
            columns.fingerprint.push(r.caller.fingerprint.clone());
            columns.subjects.push(r.subject_hashes.join(" "));
            columns.line.push(String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned());
        }
        let mut conn = self.pool.get().await.map_err(|e| unavailable(e.into()))?;
        let stored = async {
            let tx = conn.transaction().await?;
            tx.execute(
                "INSERT INTO audit_records (replica, seq, time, request_id, caller_fingerprint, subject_hashes, line) \
                 SELECT r, s, t, q, f, CASE WHEN h = '' THEN '{}'::text[] ELSE string_to_array(h, ' ') END, l \
                 FROM UNNEST($1::text[], $2::int8[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[]) \
                 AS u(r, s, t, q, f, h, l)",
                &[
                    &columns.replica,
                    &columns.seq,
                    &columns.time,
                    &columns.request_id,
                    &columns.fingerprint,
                    &columns.subjects,
                    &columns.line,
                ],
            )
            .await?;
            tx.commit().await
        }
        .await;
        stored.map_err(|e| unavailable(e.into()))?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.last_time = time;
        self.since_checkpoint += sealed.len() as u64;
        self.head = Some((seq, hash));
        Ok(sealed.into_iter().map(|r| AuditReceipt { seq: r.seq, hash: r.hash }).collect())
    }

    async fn checkpoint(&mut self, kind: CheckpointKind, anchor: Option<Anchor>) -> Result<Checkpoint, AuditError> {
        let (seq, hash) = self.head().await.map_err(unavailable)?;
        let time = Utc::now().trunc_subsecs(3);
        let checkpoint = Checkpoint::sign(&self.key, kind, seq, &hash, time, anchor, None)?;
        let line =
            serde_json::to_string(&checkpoint).map_err(|source| AuditError::Json { what: "checkpoint", source })?;
        let conn = self.pool.get().await.map_err(|e| unavailable(e.into()))?;
        conn.execute(
            "INSERT INTO audit_checkpoints (replica, head_seq, line) VALUES ($1, $2, $3)",
            &[&self.replica, &i64::try_from(seq).unwrap_or(i64::MAX), &line],
        )
        .await
        .map_err(|e| unavailable(e.into()))?;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(checkpoint)
    }
}

#[derive(Default)]
struct Columns {
    replica: Vec<String>,
    seq: Vec<i64>,
    time: Vec<DateTime<Utc>>,
    request_id: Vec<String>,
    fingerprint: Vec<String>,
    subjects: Vec<String>,
    line: Vec<String>,
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
