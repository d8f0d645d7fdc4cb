//! Verification of every replica's chain in the database.
//!
//! For each replica: every row's line must parse, be canonical and hash to
//! its `hash`; it must name the row's replica and sequence number; the
//! indexed columns must agree with it (so a changed `subject_hashes` cannot
//! hide a record from the subject report); sequence numbers must run
//! without gaps from 1 (or from a signed anchor after pruning) and every
//! `prev_hash` must link. Every checkpoint must be signed by a key recorded
//! for its replica and match the chain at its head, and no checkpoint may
//! name a record that is gone.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use creditgate_audit::{AuditRecord, Checkpoint, CheckpointKind, FindingKind, GENESIS_HASH, VerifyReport};

use crate::{PgSettings, PgState, Pool, StateError};

/// Verifies every chain in the schema of `settings` (read-only).
pub async fn verify_url(settings: PgSettings) -> Result<VerifyReport, StateError> {
    let state = PgState::connect_reader(settings).await?;
    state.run(|pool| async move { Ok(verify_pool(&pool).await) }).await
}

/// Verifies every chain reachable through `pool`.
pub async fn verify_database(state: &PgState) -> Result<VerifyReport, StateError> {
    state.run(|pool| async move { Ok(verify_pool(&pool).await) }).await
}

/// A report with one "unreadable" finding.
pub(crate) fn unreadable(message: &str) -> VerifyReport {
    let mut report = VerifyReport::default();
    report.push_in_replica(FindingKind::Unreadable, "*", None, message.to_owned());
    report
}

struct Row {
    seq: i64,
    time: DateTime<Utc>,
    request_id: String,
    fingerprint: String,
    subjects: Vec<String>,
    line: String,
}

pub(crate) async fn verify_pool(pool: &Pool) -> VerifyReport {
    match load(pool).await {
        Ok((records, checkpoints, keys)) => check(records, checkpoints, &keys),
        Err(e) => unreadable(&e.to_string()),
    }
}

type Loaded = (BTreeMap<String, Vec<Row>>, BTreeMap<String, Vec<String>>, HashMap<String, (Vec<u8>, String)>);

async fn load(pool: &Pool) -> Result<Loaded, StateError> {
    let conn = pool.get().await?;
    let mut records: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for row in conn
        .query(
            "SELECT replica, seq, time, request_id, caller_fingerprint, subject_hashes, line FROM audit_records \
             ORDER BY replica, seq",
            &[],
        )
        .await?
    {
        records.entry(row.try_get(0)?).or_default().push(Row {
            seq: row.try_get(1)?,
            time: row.try_get(2)?,
            request_id: row.try_get(3)?,
            fingerprint: row.try_get(4)?,
            subjects: row.try_get(5)?,
            line: row.try_get(6)?,
        });
    }
    let mut checkpoints: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in conn.query("SELECT replica, line FROM audit_checkpoints ORDER BY replica, id", &[]).await? {
        checkpoints.entry(row.try_get(0)?).or_default().push(row.try_get(1)?);
    }
    let mut keys = HashMap::new();
    for row in conn.query("SELECT key_id, public_key, replica FROM audit_keys", &[]).await? {
        use base64::Engine as _;
        let public: String = row.try_get(1)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(public.as_bytes()).unwrap_or_default();
        keys.insert(row.try_get::<_, String>(0)?, (bytes, row.try_get::<_, String>(2)?));
    }
    Ok((records, checkpoints, keys))
}

fn check(
    records: BTreeMap<String, Vec<Row>>,
    checkpoints: BTreeMap<String, Vec<String>>,
    keys: &HashMap<String, (Vec<u8>, String)>,
) -> VerifyReport {
    let mut report = VerifyReport::default();
    let mut replicas: Vec<&String> = records.keys().chain(checkpoints.keys()).collect();
    replicas.sort();
    replicas.dedup();
    report.replicas = replicas.len();
    for replica in replicas {
        let rows = records.get(replica).map(Vec::as_slice).unwrap_or_default();
        let signed: Vec<Checkpoint> = checkpoints
            .get(replica)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|line| match serde_json::from_str::<Checkpoint>(line) {
                Ok(c) => Some(c),
                Err(e) => {
                    report.push_in_replica(
                        FindingKind::MalformedCheckpoint,
                        replica,
                        None,
                        format!("a checkpoint row is not a checkpoint ({e})"),
                    );
                    None
                }
            })
            .collect();
        let mut valid = Vec::new();
        for c in signed {
            match keys.get(&c.key_id) {
                None => report.push_in_replica(
                    FindingKind::UnknownCheckpointKey,
                    replica,
                    Some(c.head_seq),
                    format!("checkpoint signed by key {} that audit_keys does not hold", c.key_id),
                ),
                Some((_, owner)) if owner != replica => report.push_in_replica(
                    FindingKind::BadCheckpointSignature,
                    replica,
                    Some(c.head_seq),
                    format!("checkpoint signed by the key of replica {owner}"),
                ),
                Some((public, _)) if !c.verify(public) => report.push_in_replica(
                    FindingKind::BadCheckpointSignature,
                    replica,
                    Some(c.head_seq),
                    "checkpoint signature does not verify".to_owned(),
                ),
                Some(_) => valid.push(c),
            }
        }
        report.checkpoints_verified += valid.len();
        let hashes = check_chain(&mut report, replica, rows, &valid);
        let head = rows.last().map_or(0, |r| u64::try_from(r.seq).unwrap_or(0));
        let first = rows.first().map_or(head + 1, |r| u64::try_from(r.seq).unwrap_or(0));
        for c in &valid {
            if c.head_seq == 0 {
                continue;
            }
            if c.head_seq > head {
                report.push_in_replica(
                    FindingKind::TruncatedTail,
                    replica,
                    Some(c.head_seq),
                    format!("a signed checkpoint names record {} but the chain ends at {head}", c.head_seq),
                );
            } else if c.head_seq < first {
                report.checkpoints_pruned += 1;
            } else if hashes.get(&c.head_seq).is_some_and(|h| h != &c.head_hash) {
                report.push_in_replica(
                    FindingKind::CheckpointMismatch,
                    replica,
                    Some(c.head_seq),
                    "the record's hash differs from the hash its signed checkpoint holds".to_owned(),
                );
            }
        }
        let covered = valid.iter().map(|c| c.head_seq).max().unwrap_or(0);
        if head > covered {
            report.notes.push(format!(
                "replica {replica}: records {}..{head} are after its last signed checkpoint (a running replica \
                 signs every few records or seconds)",
                covered + 1
            ));
        }
        report.records += rows.len() as u64;
    }
    report
}

/// Checks one replica's rows; returns the hash of every record by seq.
fn check_chain(
    report: &mut VerifyReport,
    replica: &str,
    rows: &[Row],
    checkpoints: &[Checkpoint],
) -> HashMap<u64, String> {
    let mut hashes = HashMap::new();
    let mut prev: Option<(u64, String)> = None;
    for row in rows {
        let seq = u64::try_from(row.seq).unwrap_or(0);
        let at = Some(seq);
        let record = match AuditRecord::from_line(row.line.as_bytes()) {
            Ok(r) => r,
            Err(e) => {
                report.push_in_replica(FindingKind::MalformedRecord, replica, at, format!("not a record ({e})"));
                prev = None;
                continue;
            }
        };
        let computed = record.compute_hash().unwrap_or_default();
        let canonical = record.to_line().ok().is_some_and(|l| l.strip_suffix(b"\n") == Some(row.line.as_bytes()));
        if computed != record.hash || !canonical {
            report.push_in_replica(
                FindingKind::RecordModified,
                replica,
                at,
                "the record's content does not match its hash".to_owned(),
            );
        } else if record.replica.as_deref() != Some(replica) || record.seq != seq {
            report.push_in_replica(
                FindingKind::ReorderedRecords,
                replica,
                at,
                format!(
                    "the row holds record {} of replica {}",
                    record.seq,
                    record.replica.as_deref().unwrap_or("(none)")
                ),
            );
        } else if row.time != record.time
            || row.request_id != record.request_id
            || row.fingerprint != record.caller.fingerprint
            || row.subjects != record.subject_hashes
        {
            report.push_in_replica(
                FindingKind::RecordModified,
                replica,
                at,
                "the row's indexed columns (time, request, caller or subjects) differ from its record".to_owned(),
            );
        }
        match &prev {
            None if seq == 1 => {
                if record.prev_hash != GENESIS_HASH {
                    report.push_in_replica(
                        FindingKind::ChainBroken,
                        replica,
                        at,
                        "the first record does not start the chain".to_owned(),
                    );
                }
            }
            None => {
                let anchored = checkpoints.iter().any(|c| {
                    c.kind == CheckpointKind::Anchor
                        && c.anchor.as_ref().is_some_and(|a| a.first_seq == seq && a.prev_hash == record.prev_hash)
                });
                if !anchored && hashes.is_empty() {
                    report.push_in_replica(
                        FindingKind::MissingRecords,
                        replica,
                        at,
                        format!(
                            "the chain starts at record {seq} and no signed anchor says records before it were pruned"
                        ),
                    );
                }
            }
            Some((p, hash)) => {
                if seq != p + 1 {
                    report.push_in_replica(
                        FindingKind::MissingRecords,
                        replica,
                        at,
                        format!("records {}..{} are missing", p + 1, seq.saturating_sub(1)),
                    );
                } else if &record.prev_hash != hash {
                    report.push_in_replica(
                        FindingKind::ChainBroken,
                        replica,
                        at,
                        "prev_hash does not link to the previous record".to_owned(),
                    );
                }
            }
        }
        if report.head_seq.is_none_or(|h| h < seq) {
            report.head_seq = Some(seq);
        }
        report.first_seq = Some(report.first_seq.map_or(seq, |f| f.min(seq)));
        hashes.insert(seq, record.hash.clone());
        prev = Some((seq, record.hash));
    }
    hashes
}
