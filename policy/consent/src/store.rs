//! The gateway's consent store: revocations and use counts.
//!
//! # Files (in the directory given to [`ConsentStore::open`])
//!
//! * `consents.json` — the snapshot, replaced atomically (temporary file,
//!   fsync, rename, fsync directory), mode 0600:
//!
//!   ```json
//!   {
//!     "format": "creditgate-consent-store/1",
//!     "consents": {
//!       "cns-2f1c0b9e8d7a6b5c4d3e2f10": {
//!         "subject_hash": "9f0c3d1e2b4a59687766554433221100",
//!         "uses": 2,
//!         "max_uses": 3,
//!         "first_use": "2026-05-02T08:00:00Z",
//!         "last_use": "2026-05-03T09:30:00Z",
//!         "revoked": { "at": "2026-05-04T10:00:00Z", "by": "credit-platform" }
//!       }
//!     }
//!   }
//!   ```
//!
//!   `subject_hash`, `max_uses`, `first_use`, `last_use` and `revoked` are
//!   omitted when unknown or not applicable (a consent revoked by id before
//!   any use has no `first_use`, and no `subject_hash` unless the revoker
//!   named the subject).
//!
//! * `consents.journal` — append-only JSON lines, one per change, each
//!   written and `fdatasync`ed before the change is acknowledged:
//!
//!   ```text
//!   {"op":"use","consent_id":"cns-…","subject_hash":"…","uses":3,"max_uses":3,"at":"2026-05-03T09:30:00Z"}
//!   {"op":"revoke","consent_id":"cns-…","subject_hash":"…","by":"credit-platform","at":"2026-05-04T10:00:00Z"}
//!   {"op":"revoke","consent_id":"cns-…","by":"samr","at":"2026-05-04T10:00:00Z"}     (subject not named)
//!   ```
//!
//!   Records carry absolute values (the new use count), so replaying a
//!   record already folded into the snapshot changes nothing. On open the
//!   journal is replayed over the snapshot and then compacted into it
//!   (snapshot first, then the journal truncated); compaction also runs
//!   after [`COMPACT_AFTER_RECORDS`] records. A last line cut short by a
//!   crash (no newline, or not JSON) is a write that was never acknowledged
//!   and is dropped; any other bad line makes [`ConsentStore::open`] fail
//!   rather than forget a revocation.
//!
//! * `consents.lock` — held with an exclusive file lock while the store is
//!   open, so two gateway processes cannot both count uses.
//!
//! Nothing about the subject is stored except a keyed hash
//! ([`crate::subject_hash`]); the consent id, the revoker's id and
//! timestamps are the only other values.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::artefact::{is_name, rfc3339};
use crate::error::ConsentError;
use crate::subject::{SubjectRef, is_subject_hash, subject_hash};
use crate::verify::{ConsentLedger, ConsentRefusal, VerifiedConsent};

/// Snapshot file name.
pub const SNAPSHOT_FILE: &str = "consents.json";
/// Journal file name.
pub const JOURNAL_FILE: &str = "consents.journal";
/// Lock file name.
pub const LOCK_FILE: &str = "consents.lock";
/// Value of the snapshot's `format` field.
pub const STORE_FORMAT: &str = "creditgate-consent-store/1";
/// Journal records after which the journal is folded into the snapshot.
pub const COMPACT_AFTER_RECORDS: usize = 4096;
/// Shortest subject-hash key accepted, in bytes.
pub const MIN_SUBJECT_HASH_KEY_LEN: usize = 16;

/// A revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// When it was recorded.
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// Who revoked (issuer id or principal name).
    pub by: String,
}

/// What the store knows about one consent (for a status endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentStatus {
    /// The consent id.
    pub consent_id: String,
    /// Keyed hash of the subject ([`crate::subject_hash`]); absent for a
    /// consent revoked by id before any use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_hash: Option<String>,
    /// Uses recorded.
    pub uses: u32,
    /// The consent's maximum, as given with the last use (absent before any use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// First recorded use.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub first_use: Option<DateTime<Utc>>,
    /// Last recorded use.
    #[serde(skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    pub last_use: Option<DateTime<Utc>>,
    /// The revocation, if revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

/// One consent in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_hash: Option<String>,
    uses: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_uses: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    first_use: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_rfc3339")]
    last_use: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked: Option<Revocation>,
}

/// The snapshot file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    format: String,
    consents: BTreeMap<String, Entry>,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    Use {
        consent_id: String,
        subject_hash: String,
        uses: u32,
        max_uses: u32,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    Revoke {
        consent_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_hash: Option<String>,
        by: String,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
}

impl Record {
    /// Applies the record; idempotent (absolute counts, first revocation wins).
    fn apply(&self, entries: &mut BTreeMap<String, Entry>) {
        let (id, hash) = match self {
            Record::Use { consent_id, subject_hash, .. } => (consent_id, Some(subject_hash)),
            Record::Revoke { consent_id, subject_hash, .. } => (consent_id, subject_hash.as_ref()),
        };
        let entry = entries.entry(id.clone()).or_insert_with(|| Entry {
            subject_hash: None,
            uses: 0,
            max_uses: None,
            first_use: None,
            last_use: None,
            revoked: None,
        });
        if entry.subject_hash.is_none() {
            entry.subject_hash = hash.cloned();
        }
        match self {
            Record::Use { uses, max_uses, at, .. } => {
                entry.uses = entry.uses.max(*uses);
                entry.max_uses = Some(*max_uses);
                entry.first_use = Some(entry.first_use.map_or(*at, |t| t.min(*at)));
                entry.last_use = Some(entry.last_use.map_or(*at, |t| t.max(*at)));
            }
            Record::Revoke { by, at, .. } => {
                if entry.revoked.is_none() {
                    entry.revoked = Some(Revocation { at: *at, by: by.clone() });
                }
            }
        }
    }
}

/// Mutable state behind the store's mutex.
struct Inner {
    entries: BTreeMap<String, Entry>,
    journal: File,
    /// Length of the journal up to the last acknowledged record.
    good_len: u64,
    /// A failed append may have left bytes after `good_len`.
    dirty: bool,
    /// Records in the journal.
    records: usize,
}

/// Revocations and use counts, persisted in the gateway's state directory.
///
/// Share it in an `Arc`; every method takes `&self`. Changes are serialised
/// by a mutex and durable before they are acknowledged; a failed write
/// returns an error and leaves both the in-memory state and the files as
/// they were before the call.
pub struct ConsentStore {
    dir: PathBuf,
    hash_key: Vec<u8>,
    inner: Mutex<Inner>,
    /// Held (locked) for the store's lifetime.
    _lock: File,
    #[cfg(test)]
    fail_appends: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for ConsentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl ConsentStore {
    /// Opens (creating if needed, mode 0700) the store in `dir` — use a
    /// subdirectory of the gateway's state directory, e.g.
    /// `<state_dir>/consents`. `subject_hash_key` is the deployment secret
    /// for [`crate::subject_hash`] (at least [`MIN_SUBJECT_HASH_KEY_LEN`]
    /// bytes; keep it stable, or old entries no longer match their
    /// subjects).
    ///
    /// Fails if another process holds the store, if a file is corrupt, or if
    /// the directory is not writable (the journal is compacted on open).
    pub fn open(dir: &Path, subject_hash_key: &[u8]) -> Result<ConsentStore, ConsentError> {
        if subject_hash_key.len() < MIN_SUBJECT_HASH_KEY_LEN {
            return Err(ConsentError::invalid(
                "subject_hash_key",
                format!("must be at least {MIN_SUBJECT_HASH_KEY_LEN} bytes"),
            ));
        }
        create_private_dir(dir)?;

        let lock_path = dir.join(LOCK_FILE);
        let lock = private_options().read(true).write(true).create(true).truncate(false).open(&lock_path);
        let lock = lock.map_err(ConsentError::io("open", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(ConsentError::StoreLocked { dir: dir.to_path_buf() }),
            Err(fs::TryLockError::Error(e)) => return Err(ConsentError::io("lock", &lock_path)(e)),
        }

        let mut entries = load_snapshot(&dir.join(SNAPSHOT_FILE))?;

        let journal_path = dir.join(JOURNAL_FILE);
        let journal = private_options().read(true).write(true).create(true).truncate(false).open(&journal_path);
        let mut journal = journal.map_err(ConsentError::io("open", &journal_path))?;
        let mut bytes = Vec::new();
        journal.read_to_end(&mut bytes).map_err(ConsentError::io("read", &journal_path))?;
        let (records, good_len) = parse_journal(&journal_path, &bytes)?;
        for r in &records {
            r.apply(&mut entries);
        }
        crate::fsutil::sync_dir(dir)?;

        let torn = good_len != bytes.len() as u64;
        let store = ConsentStore {
            dir: dir.to_path_buf(),
            hash_key: subject_hash_key.to_vec(),
            inner: Mutex::new(Inner { entries, journal, good_len, dirty: torn, records: records.len() }),
            _lock: lock,
            #[cfg(test)]
            fail_appends: std::sync::atomic::AtomicU32::new(0),
        };
        if torn {
            tracing::warn!(
                consent.store = %dir.display(),
                "dropping the journal's last record: it was only partly written and never acknowledged"
            );
        }
        {
            let mut inner = store.lock();
            if inner.records > 0 || inner.dirty {
                store.compact(&mut inner)?;
            }
        }
        Ok(store)
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The keyed hash of `subject` under this store's key.
    pub fn hash_subject(&self, subject: &SubjectRef) -> String {
        subject_hash(&self.hash_key, subject)
    }

    /// Counts one use of `consent_id` if it is not revoked and fewer than
    /// `max_uses` uses are recorded; returns the number of uses including
    /// this one. Atomic: concurrent callers never push the count past
    /// `max_uses`.
    ///
    /// Errors: [`ConsentRefusal::Revoked`], [`ConsentRefusal::UsesExhausted`],
    /// [`ConsentRefusal::Malformed`] if the id is already recorded for
    /// another subject (consent ids must be unique), all as
    /// [`ConsentError::Refused`]; [`ConsentError::InvalidInput`] for a bad
    /// argument; [`ConsentError::Io`] if the use could not be made durable
    /// (nothing is counted then — refuse the request).
    pub fn try_use(&self, consent_id: &str, max_uses: u32, subject_hash: &str) -> Result<u32, ConsentError> {
        check_consent_id(consent_id)?;
        check_hash(subject_hash)?;
        if max_uses == 0 {
            return Err(ConsentError::invalid("max_uses", "must be at least 1"));
        }
        let mut inner = self.lock();
        let uses = match inner.entries.get(consent_id) {
            Some(entry) => {
                if entry.revoked.is_some() {
                    return Err(ConsentRefusal::Revoked { consent_id: consent_id.to_owned() }.into());
                }
                if entry.subject_hash.as_deref().is_some_and(|h| h != subject_hash) {
                    return Err(ConsentRefusal::Malformed(format!(
                        "consent id {consent_id} is already recorded for a different subject; the issuer must give \
                         every consent its own id"
                    ))
                    .into());
                }
                entry.uses
            }
            None => 0,
        };
        if uses >= max_uses {
            return Err(ConsentRefusal::UsesExhausted { max: max_uses }.into());
        }
        let record = Record::Use {
            consent_id: consent_id.to_owned(),
            subject_hash: subject_hash.to_owned(),
            uses: uses + 1,
            max_uses,
            at: Utc::now(),
        };
        self.append(&mut inner, &record)?;
        record.apply(&mut inner.entries);
        self.maybe_compact(&mut inner);
        Ok(uses + 1)
    }

    /// [`ConsentStore::try_use`] for a consent that [`crate::verify`] accepted.
    pub fn try_use_verified(&self, consent: &VerifiedConsent) -> Result<u32, ConsentError> {
        self.try_use(consent.consent_id(), consent.max_uses(), &self.hash_subject(consent.subject()))
    }

    /// Revokes `consent_id` (it need not have been used). `by` is the
    /// revoker's id (issuer id or principal name, same character rules as a
    /// consent id). `subject_hash` is recorded if given and not yet known
    /// (a revocation by id alone works). Returns `true` if this call revoked
    /// it, `false` if it was already revoked. Durable before it returns; an
    /// error means nothing changed.
    pub fn revoke(&self, consent_id: &str, by: &str, subject_hash: Option<&str>) -> Result<bool, ConsentError> {
        check_consent_id(consent_id)?;
        if let Some(hash) = subject_hash {
            check_hash(hash)?;
        }
        if !is_name(by) {
            return Err(ConsentError::invalid("by", "must be 1-128 characters from A-Z a-z 0-9 . _ -"));
        }
        let mut inner = self.lock();
        if inner.entries.get(consent_id).is_some_and(|e| e.revoked.is_some()) {
            return Ok(false);
        }
        let record = Record::Revoke {
            consent_id: consent_id.to_owned(),
            subject_hash: subject_hash.map(str::to_owned),
            by: by.to_owned(),
            at: Utc::now(),
        };
        self.append(&mut inner, &record)?;
        record.apply(&mut inner.entries);
        self.maybe_compact(&mut inner);
        Ok(true)
    }

    /// Whether `consent_id` is revoked.
    pub fn is_revoked(&self, consent_id: &str) -> bool {
        self.lock().entries.get(consent_id).is_some_and(|e| e.revoked.is_some())
    }

    /// The revocation of `consent_id`, if revoked.
    pub fn revocation(&self, consent_id: &str) -> Option<Revocation> {
        self.lock().entries.get(consent_id).and_then(|e| e.revoked.clone())
    }

    /// Uses recorded for `consent_id` (0 if unknown).
    pub fn uses(&self, consent_id: &str) -> u32 {
        self.lock().entries.get(consent_id).map_or(0, |e| e.uses)
    }

    /// What the store knows about `consent_id`.
    pub fn status(&self, consent_id: &str) -> Option<ConsentStatus> {
        self.lock().entries.get(consent_id).map(|e| status_of(consent_id, e))
    }

    /// Every consent the store knows, by consent id.
    pub fn list(&self) -> Vec<ConsentStatus> {
        self.lock().entries.iter().map(|(id, e)| status_of(id, e)).collect()
    }

    /// The consents recorded for one subject (by its hash), by consent id.
    pub fn list_for_subject(&self, subject_hash: &str) -> Vec<ConsentStatus> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .filter(|(_, e)| e.subject_hash.as_deref() == Some(subject_hash))
            .map(|(id, e)| status_of(id, e))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // State is changed only after a successful write, in infallible
        // steps, so a panic elsewhere cannot leave it half-updated.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one record and fdatasyncs it. On failure, bytes written past
    /// the last good record are cut off before the next append.
    fn append(&self, inner: &mut Inner, record: &Record) -> Result<(), ConsentError> {
        let path = self.dir.join(JOURNAL_FILE);
        let mut line = serde_json::to_vec(record)
            .map_err(|source| ConsentError::Json { what: "consent journal record", source })?;
        line.push(b'\n');
        if inner.dirty {
            let good_len = inner.good_len;
            inner
                .journal
                .set_len(good_len)
                .and_then(|()| inner.journal.sync_data())
                .map_err(ConsentError::io("truncate", &path))?;
            inner.dirty = false;
        }
        let good_len = inner.good_len;
        let result = (|| {
            inner.journal.seek(SeekFrom::Start(good_len))?;
            #[cfg(test)]
            if self.take_injected_failure() {
                inner.journal.write_all(&line[..line.len() / 2])?;
                return Err(std::io::Error::other("injected write failure"));
            }
            inner.journal.write_all(&line)?;
            inner.journal.sync_data()
        })();
        match result {
            Ok(()) => {
                inner.good_len += line.len() as u64;
                inner.records += 1;
                Ok(())
            }
            Err(e) => {
                inner.dirty = true;
                Err(ConsentError::io("append to", path)(e))
            }
        }
    }

    /// Compacts when the journal is long; a failure is logged (the record
    /// itself is durable in the journal) and retried later.
    fn maybe_compact(&self, inner: &mut Inner) {
        if inner.records >= COMPACT_AFTER_RECORDS
            && let Err(e) = self.compact(inner)
        {
            tracing::warn!(consent.store = %self.dir.display(), error = %e, "consent store compaction failed");
        }
    }

    /// Writes the snapshot, then empties the journal. A crash in between is
    /// harmless: replaying the journal over the new snapshot changes nothing.
    fn compact(&self, inner: &mut Inner) -> Result<(), ConsentError> {
        let snapshot = Snapshot { format: STORE_FORMAT.to_owned(), consents: inner.entries.clone() };
        let bytes = serde_json::to_vec_pretty(&snapshot)
            .map_err(|source| ConsentError::Json { what: "consent store snapshot", source })?;
        crate::fsutil::write_atomic(&self.dir.join(SNAPSHOT_FILE), &bytes)?;
        let path = self.dir.join(JOURNAL_FILE);
        inner
            .journal
            .set_len(0)
            .and_then(|()| inner.journal.sync_data())
            .map_err(ConsentError::io("truncate", path))?;
        inner.good_len = 0;
        inner.dirty = false;
        inner.records = 0;
        Ok(())
    }

    #[cfg(test)]
    fn take_injected_failure(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.fail_appends.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }

    /// Makes the next `n` journal appends fail after writing half a record.
    #[cfg(test)]
    pub(crate) fn inject_append_failures(&self, n: u32) {
        self.fail_appends.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

impl ConsentLedger for ConsentStore {
    fn is_revoked(&self, consent_id: &str) -> bool {
        ConsentStore::is_revoked(self, consent_id)
    }
    fn uses(&self, consent_id: &str) -> u32 {
        ConsentStore::uses(self, consent_id)
    }
}

fn status_of(id: &str, e: &Entry) -> ConsentStatus {
    ConsentStatus {
        consent_id: id.to_owned(),
        subject_hash: e.subject_hash.clone(),
        uses: e.uses,
        max_uses: e.max_uses,
        first_use: e.first_use,
        last_use: e.last_use,
        revoked: e.revoked.clone(),
    }
}

fn check_consent_id(id: &str) -> Result<(), ConsentError> {
    if is_name(id) {
        Ok(())
    } else {
        Err(ConsentError::invalid("consent_id", "must be 1-128 characters from A-Z a-z 0-9 . _ -"))
    }
}

fn check_hash(hash: &str) -> Result<(), ConsentError> {
    if is_subject_hash(hash) {
        Ok(())
    } else {
        Err(ConsentError::invalid("subject_hash", "must be 32 lower-case hex digits (see subject_hash)"))
    }
}

fn private_options() -> fs::OpenOptions {
    let mut opts = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts
}

fn create_private_dir(dir: &Path) -> Result<(), ConsentError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(ConsentError::io("create directory", dir))
}

fn load_snapshot(path: &Path) -> Result<BTreeMap<String, Entry>, ConsentError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(ConsentError::io("read", path)(e)),
    };
    let corrupt = |reason: String| ConsentError::StoreCorrupt { path: path.to_path_buf(), line: None, reason };
    let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if snapshot.format != STORE_FORMAT {
        return Err(corrupt(format!("format is {:?}, expected {STORE_FORMAT:?}", snapshot.format)));
    }
    for (id, e) in &snapshot.consents {
        if !is_name(id) || e.subject_hash.as_deref().is_some_and(|h| !is_subject_hash(h)) {
            return Err(corrupt("an entry has a malformed consent id or subject hash".to_owned()));
        }
    }
    Ok(snapshot.consents)
}

/// Parses the journal: the records and the length of the acknowledged part.
/// A final line without a newline, or a final line that is not a record, is
/// an interrupted write and is left out; any other bad line is corruption.
fn parse_journal(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, u64), ConsentError> {
    let mut records = Vec::new();
    let mut offset = 0usize;
    let mut line_no = 0usize;
    while offset < bytes.len() {
        line_no += 1;
        let Some(nl) = bytes[offset..].iter().position(|&b| b == b'\n') else {
            break; // torn final line
        };
        let line = &bytes[offset..offset + nl];
        let end = offset + nl + 1;
        match serde_json::from_slice::<Record>(line) {
            Ok(r) if record_ok(&r) => records.push(r),
            Ok(_) | Err(_) if end == bytes.len() => break, // torn final record
            Ok(_) => {
                return Err(ConsentError::StoreCorrupt {
                    path: path.to_path_buf(),
                    line: Some(line_no),
                    reason: "malformed consent id, subject hash or revoker".to_owned(),
                });
            }
            Err(e) => {
                return Err(ConsentError::StoreCorrupt {
                    path: path.to_path_buf(),
                    line: Some(line_no),
                    reason: e.to_string(),
                });
            }
        }
        offset = end;
    }
    Ok((records, offset as u64))
}

fn record_ok(r: &Record) -> bool {
    match r {
        Record::Use { consent_id, subject_hash, .. } => is_name(consent_id) && is_subject_hash(subject_hash),
        Record::Revoke { consent_id, subject_hash, by, .. } => {
            is_name(consent_id) && subject_hash.as_deref().is_none_or(is_subject_hash) && is_name(by)
        }
    }
}

/// `Option<DateTime<Utc>>` as an RFC 3339 string.
mod opt_rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => crate::artefact::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| serde::de::Error::custom(format!("not an RFC 3339 timestamp ({e})"))),
        }
    }
}

#[cfg(test)]
mod tests;
