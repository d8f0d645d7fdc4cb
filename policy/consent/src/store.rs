//! The gateway's consent store: revocations and use counts.
//!
//! A consent is identified by its **issuer and consent id** together: the
//! id is unique per issuer only, so two issuers using the same id never share
//! a use count or a revocation.
//!
//! # Files (in the directory given to [`ConsentStore::open`])
//!
//! * `consents.json` — the snapshot, replaced atomically (temporary file,
//!   fsync, rename, fsync directory), mode 0600:
//!
//!   ```json
//!   {
//!     "format": "creditgate-consent-store/2",
//!     "consents": {
//!       "credit-platform/cns-2f1c0b9e8d7a6b5c4d3e2f10": {
//!         "subject_hash": "9f0c3d1e2b4a59687766554433221100",
//!         "subject_type": "resident_id",
//!         "uses": 2,
//!         "max_uses": 3,
//!         "first_use": "2026-05-02T08:00:00Z",
//!         "last_use": "2026-05-03T09:30:00Z",
//!         "revoked": { "at": "2026-05-04T10:00:00Z", "by": "credit_platform" }
//!       }
//!     }
//!   }
//!   ```
//!
//!   Keys are `<issuer>/<consent id>` (neither may contain `/`).
//!   `subject_hash`, `subject_type`, `max_uses`, `first_use`, `last_use` and
//!   `revoked` are omitted when unknown or not applicable (a consent revoked
//!   by id before any use has no `first_use`, and no subject unless the
//!   revoker named it).
//!
//! * `consents.journal` — append-only JSON lines, one per change, each
//!   written and `fdatasync`ed before the change is acknowledged:
//!
//!   ```text
//!   {"op":"use","consent_id":"cns-…","issuer":"credit-platform","subject_hash":"…","subject_type":"resident_id","uses":3,"max_uses":3,"at":"2026-05-03T09:30:00Z"}
//!   {"op":"revoke","consent_id":"cns-…","issuer":"credit-platform","by":"samr","at":"2026-05-04T10:00:00Z"}
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
//! # Stores written before issuers were recorded
//!
//! A snapshot of format `creditgate-consent-store/1` (keys are bare consent
//! ids) and journal records without `issuer` are still read. Such an entry
//! has no known issuer: it applies to a consent of *any* issuer with that id
//! that has no entry of its own (so an old revocation keeps refusing), and
//! the first use or revocation that names an issuer adopts it, recording
//! that issuer. The next compaction writes format 2; a gateway built before
//! this change refuses to open it (format mismatch) rather than misread it.
//!
//! Nothing about the subject is stored except a keyed hash
//! ([`crate::subject_hash`]) and the kind of identifier (enterprise or
//! individual: who may oversee the consent depends on it); the consent id,
//! the issuer id, the revoker's id and timestamps are the only other values.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use creditgate_ident::SubjectKind;
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
/// Value of the snapshot's `format` field (entries keyed by issuer and id).
pub const STORE_FORMAT: &str = "creditgate-consent-store/2";
/// The snapshot format before issuers were recorded (keys are bare consent
/// ids); still read, never written.
pub const LEGACY_STORE_FORMAT: &str = "creditgate-consent-store/1";
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
    /// The issuer, once a use or revocation has named it; `None` for an
    /// entry written before issuers were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Keyed hash of the subject ([`crate::subject_hash`]); absent for a
    /// consent revoked by id before any use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_hash: Option<String>,
    /// The kind of subject (enterprise or individual), once used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<SubjectKind>,
    /// The grantee organisation that used it, once used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grantee: Option<String>,
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

/// Where one consent lives in the store: its id, then its issuer (`None`
/// for an entry from before issuers were recorded). Ordered by id first, so
/// every issuer's entry for one id is a contiguous range.
type Key = (String, Option<String>);

/// One consent in the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grantee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_type: Option<SubjectKind>,
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
    /// `<issuer>/<consent id>` (or a bare consent id for a legacy entry) → entry.
    consents: BTreeMap<String, Entry>,
}

/// The snapshot key of an entry.
fn snapshot_key((id, issuer): &Key) -> String {
    match issuer {
        Some(issuer) => format!("{issuer}/{id}"),
        None => id.clone(),
    }
}

/// Parses a snapshot key; `None` if malformed.
fn parse_snapshot_key(key: &str) -> Option<Key> {
    match key.split_once('/') {
        Some((issuer, id)) if is_name(issuer) && is_name(id) => Some((id.to_owned(), Some(issuer.to_owned()))),
        Some(_) => None,
        None if is_name(key) => Some((key.to_owned(), None)),
        None => None,
    }
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    Use {
        consent_id: String,
        /// Absent in records written before issuers were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        subject_hash: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_type: Option<SubjectKind>,
        /// The grantee organisation that used it; absent in older records.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        grantee: Option<String>,
        uses: u32,
        max_uses: u32,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
    Revoke {
        consent_id: String,
        /// Absent in records written before issuers were recorded, and when
        /// an entry of unknown issuer is revoked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        issuer: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject_hash: Option<String>,
        by: String,
        #[serde(with = "rfc3339")]
        at: DateTime<Utc>,
    },
}

/// The entry that answers for `issuer`'s consent `id`: its own, else an
/// entry of unknown issuer for the id (written before issuers were recorded).
fn find<'a>(entries: &'a BTreeMap<Key, Entry>, issuer: &str, id: &str) -> Option<&'a Entry> {
    entries.get(&(id.to_owned(), Some(issuer.to_owned()))).or_else(|| entries.get(&(id.to_owned(), None)))
}

impl Record {
    /// Applies the record; idempotent (absolute counts, first revocation
    /// wins). A record naming an issuer adopts the id's entry of unknown
    /// issuer if that issuer has no entry of its own yet.
    fn apply(&self, entries: &mut BTreeMap<Key, Entry>) {
        let (id, issuer, hash, kind) = match self {
            Record::Use { consent_id, issuer, subject_hash, subject_type, .. } => {
                (consent_id, issuer, Some(subject_hash), *subject_type)
            }
            Record::Revoke { consent_id, issuer, subject_hash, .. } => {
                (consent_id, issuer, subject_hash.as_ref(), None)
            }
        };
        let key: Key = (id.clone(), issuer.clone());
        if issuer.is_some()
            && !entries.contains_key(&key)
            && let Some(legacy) = entries.remove(&(id.clone(), None))
        {
            entries.insert(key.clone(), legacy);
        }
        let entry = entries.entry(key).or_default();
        if entry.subject_hash.is_none() {
            entry.subject_hash = hash.cloned();
        }
        if entry.subject_type.is_none() {
            entry.subject_type = kind;
        }
        match self {
            Record::Use { uses, max_uses, at, grantee, .. } => {
                if entry.grantee.is_none() {
                    entry.grantee = grantee.clone();
                }
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
    entries: BTreeMap<Key, Entry>,
    journal: File,
    /// Length of the journal up to the last acknowledged record.
    good_len: u64,
    /// A failed append may have left bytes after `good_len`.
    dirty: bool,
    /// Records in the journal.
    records: usize,
}

impl Inner {
    /// Every entry for consent id `id`, whatever its issuer.
    fn all_for<'a>(&'a self, id: &'a str) -> impl Iterator<Item = (&'a Key, &'a Entry)> + 'a {
        self.entries.range((id.to_owned(), None)..).take_while(move |((i, _), _)| i == id)
    }
}

/// Revocations and use counts, persisted in the gateway's state directory,
/// keyed by issuer and consent id.
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

        let (mut entries, legacy) = load_snapshot(&dir.join(SNAPSHOT_FILE))?;

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
            if inner.records > 0 || inner.dirty || legacy {
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

    /// Counts one use of `issuer`'s consent `consent_id` about `subject` if
    /// it is not revoked and fewer than `max_uses` uses are recorded; returns
    /// the number of uses including this one. Atomic: concurrent callers
    /// never push the count past `max_uses`. The first use records the
    /// issuer, the keyed hash of the subject and its kind.
    ///
    /// Errors: [`ConsentRefusal::Revoked`], [`ConsentRefusal::UsesExhausted`],
    /// [`ConsentRefusal::Malformed`] if the issuer already used the id for
    /// another subject (an issuer's consent ids must be unique), all as
    /// [`ConsentError::Refused`]; [`ConsentError::InvalidInput`] for a bad
    /// argument; [`ConsentError::Io`] if the use could not be made durable
    /// (nothing is counted then — refuse the request).
    pub fn try_use(
        &self,
        issuer: &str,
        consent_id: &str,
        max_uses: u32,
        subject: &SubjectRef,
    ) -> Result<u32, ConsentError> {
        self.try_use_by(issuer, consent_id, max_uses, subject, None)
    }

    /// [`ConsentStore::try_use`], recording the grantee organisation that
    /// used the consent (so its state is shown to that grantee only).
    pub fn try_use_by(
        &self,
        issuer: &str,
        consent_id: &str,
        max_uses: u32,
        subject: &SubjectRef,
        grantee: Option<&str>,
    ) -> Result<u32, ConsentError> {
        check_issuer(issuer)?;
        check_consent_id(consent_id)?;
        if max_uses == 0 {
            return Err(ConsentError::invalid("max_uses", "must be at least 1"));
        }
        let subject_hash = self.hash_subject(subject);
        let mut inner = self.lock();
        let uses = match find(&inner.entries, issuer, consent_id) {
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
            issuer: Some(issuer.to_owned()),
            subject_hash,
            subject_type: Some(subject.kind()),
            grantee: grantee.map(str::to_owned),
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
        self.try_use_by(
            consent.issuer(),
            consent.consent_id(),
            consent.max_uses(),
            consent.subject(),
            Some(consent.grantee()),
        )
    }

    /// Revokes consent `consent_id` of `issuer` (it need not have been used).
    /// `issuer` is `None` only to revoke an entry of unknown issuer (see the
    /// module documentation), which then refuses that id from every issuer
    /// without an entry of its own. `by` is the revoker's id (issuer id or
    /// principal name, same character rules as a consent id). `subject_hash`
    /// is recorded if given and not yet known (a revocation by id alone
    /// works). Returns `true` if this call revoked it, `false` if it was
    /// already revoked. Durable before it returns; an error means nothing
    /// changed.
    pub fn revoke(
        &self,
        issuer: Option<&str>,
        consent_id: &str,
        by: &str,
        subject_hash: Option<&str>,
    ) -> Result<bool, ConsentError> {
        if let Some(issuer) = issuer {
            check_issuer(issuer)?;
        }
        check_consent_id(consent_id)?;
        if let Some(hash) = subject_hash {
            check_hash(hash)?;
        }
        if !is_name(by) {
            return Err(ConsentError::invalid("by", "must be 1-128 characters from A-Z a-z 0-9 . _ -"));
        }
        let mut inner = self.lock();
        let current = match issuer {
            Some(issuer) => find(&inner.entries, issuer, consent_id),
            None => inner.entries.get(&(consent_id.to_owned(), None)),
        };
        if current.is_some_and(|e| e.revoked.is_some()) {
            return Ok(false);
        }
        let record = Record::Revoke {
            consent_id: consent_id.to_owned(),
            issuer: issuer.map(str::to_owned),
            subject_hash: subject_hash.map(str::to_owned),
            by: by.to_owned(),
            at: Utc::now(),
        };
        self.append(&mut inner, &record)?;
        record.apply(&mut inner.entries);
        self.maybe_compact(&mut inner);
        Ok(true)
    }

    /// Whether `issuer`'s consent `consent_id` is revoked.
    pub fn is_revoked(&self, issuer: &str, consent_id: &str) -> bool {
        find(&self.lock().entries, issuer, consent_id).is_some_and(|e| e.revoked.is_some())
    }

    /// The revocation of `issuer`'s consent `consent_id`, if revoked.
    pub fn revocation(&self, issuer: &str, consent_id: &str) -> Option<Revocation> {
        find(&self.lock().entries, issuer, consent_id).and_then(|e| e.revoked.clone())
    }

    /// Uses recorded for `issuer`'s consent `consent_id` (0 if unknown).
    pub fn uses(&self, issuer: &str, consent_id: &str) -> u32 {
        find(&self.lock().entries, issuer, consent_id).map_or(0, |e| e.uses)
    }

    /// What the store knows about `issuer`'s consent `consent_id`.
    pub fn status(&self, issuer: &str, consent_id: &str) -> Option<ConsentStatus> {
        let inner = self.lock();
        let own = (consent_id.to_owned(), Some(issuer.to_owned()));
        let legacy = (consent_id.to_owned(), None);
        [own, legacy].into_iter().find_map(|k| inner.entries.get(&k).map(|e| status_of(&k, e)))
    }

    /// What the store knows about consent id `consent_id` from every issuer
    /// (several entries only if several issuers used the same id), by issuer.
    pub fn statuses(&self, consent_id: &str) -> Vec<ConsentStatus> {
        let inner = self.lock();
        inner.all_for(consent_id).map(|(k, e)| status_of(k, e)).collect()
    }

    /// Every consent the store knows, by consent id, then issuer.
    pub fn list(&self) -> Vec<ConsentStatus> {
        self.lock().entries.iter().map(|(k, e)| status_of(k, e)).collect()
    }

    /// The consents recorded for one subject (by its hash), by consent id.
    pub fn list_for_subject(&self, subject_hash: &str) -> Vec<ConsentStatus> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .filter(|(_, e)| e.subject_hash.as_deref() == Some(subject_hash))
            .map(|(k, e)| status_of(k, e))
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
        let consents = inner.entries.iter().map(|(k, e)| (snapshot_key(k), e.clone())).collect();
        let snapshot = Snapshot { format: STORE_FORMAT.to_owned(), consents };
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
    /// Whether the id is revoked under any issuer (the issuer-scoped
    /// [`ConsentLedger::is_revoked_for`] is what [`crate::verify`] asks).
    fn is_revoked(&self, consent_id: &str) -> bool {
        self.lock().all_for(consent_id).any(|(_, e)| e.revoked.is_some())
    }
    /// The most uses recorded for the id under any issuer.
    fn uses(&self, consent_id: &str) -> u32 {
        self.lock().all_for(consent_id).map(|(_, e)| e.uses).max().unwrap_or(0)
    }
    fn is_revoked_for(&self, issuer: &str, consent_id: &str) -> bool {
        ConsentStore::is_revoked(self, issuer, consent_id)
    }
    fn uses_for(&self, issuer: &str, consent_id: &str) -> u32 {
        ConsentStore::uses(self, issuer, consent_id)
    }
}

fn status_of((id, issuer): &Key, e: &Entry) -> ConsentStatus {
    ConsentStatus {
        consent_id: id.clone(),
        issuer: issuer.clone(),
        subject_hash: e.subject_hash.clone(),
        subject_type: e.subject_type,
        grantee: e.grantee.clone(),
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

fn check_issuer(issuer: &str) -> Result<(), ConsentError> {
    if is_name(issuer) {
        Ok(())
    } else {
        Err(ConsentError::invalid("issuer", "must be 1-128 characters from A-Z a-z 0-9 . _ -"))
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

/// Reads the snapshot: its entries, and whether it is of the legacy format
/// (opening then rewrites it in the current one).
fn load_snapshot(path: &Path) -> Result<(BTreeMap<Key, Entry>, bool), ConsentError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((BTreeMap::new(), false)),
        Err(e) => return Err(ConsentError::io("read", path)(e)),
    };
    let corrupt = |reason: String| ConsentError::StoreCorrupt { path: path.to_path_buf(), line: None, reason };
    let snapshot: Snapshot = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let legacy = match snapshot.format.as_str() {
        STORE_FORMAT => false,
        LEGACY_STORE_FORMAT => true,
        other => return Err(corrupt(format!("format is {other:?}, expected {STORE_FORMAT:?}"))),
    };
    let mut entries = BTreeMap::new();
    for (key, e) in snapshot.consents {
        let parsed = parse_snapshot_key(&key).filter(|(_, issuer)| !legacy || issuer.is_none());
        let Some(key) = parsed else {
            return Err(corrupt("an entry has a malformed consent id or issuer".to_owned()));
        };
        if e.subject_hash.as_deref().is_some_and(|h| !is_subject_hash(h)) {
            return Err(corrupt("an entry has a malformed subject hash".to_owned()));
        }
        entries.insert(key, e);
    }
    Ok((entries, legacy))
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
                    reason: "malformed consent id, issuer, subject hash or revoker".to_owned(),
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
        Record::Use { consent_id, issuer, subject_hash, grantee, .. } => {
            is_name(consent_id)
                && issuer.as_deref().is_none_or(is_name)
                && grantee.as_deref().is_none_or(is_name)
                && is_subject_hash(subject_hash)
        }
        Record::Revoke { consent_id, issuer, subject_hash, by, .. } => {
            is_name(consent_id)
                && issuer.as_deref().is_none_or(is_name)
                && subject_hash.as_deref().is_none_or(is_subject_hash)
                && is_name(by)
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
