//! Append path: group commit, crash repair, fail-closed, rotation, pruning.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{Env, lines, populated, sample, write_lines};
use crate::{AuditError, AuditLog, FindingKind, SigningKey, verify};

#[test]
fn receipts_are_sequential_and_chained() {
    let env = Env::new();
    let log = env.open();
    let a = log.append(sample(1)).expect("append");
    let b = log.append(sample(2)).expect("append");
    assert_eq!((a.seq, b.seq), (1, 2));
    let many = log.append_many(vec![sample(3), sample(4)]).expect("append_many");
    assert_eq!(many.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(log.head(), (4, many[1].hash.clone()));
    let recs: Vec<crate::AuditRecord> =
        lines(&env.segments()[0]).iter().map(|l| crate::AuditRecord::from_line(l.as_bytes()).expect("parse")).collect();
    assert_eq!(recs[0].prev_hash, crate::GENESIS_HASH);
    assert_eq!(recs[1].prev_hash, a.hash);
    assert_eq!(recs[1].hash, b.hash);
    assert!(recs.windows(2).all(|w| w[0].time <= w[1].time));
    let live = log.verify();
    assert!(live.is_ok(), "{}", live.message());
    assert_eq!(live.records, 4);
}

#[test]
fn concurrent_appends_share_fsyncs_and_keep_the_chain() {
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 25;
    let env = Env::new();
    let log = Arc::new(env.open_with(|o| o.group_commit_window = Duration::from_millis(2)));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                (0..PER_THREAD).map(|i| log.append(sample(t * 1000 + i)).expect("append").seq).collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles.into_iter().flat_map(|h| h.join().expect("join")).collect();
    seqs.sort_unstable();
    let n = THREADS * PER_THREAD;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "every append got a distinct seq");
    let fsyncs = log.fsync_count();
    assert!(fsyncs < n, "group commit: {fsyncs} fsyncs for {n} records");
    log.close().expect("close");
    let report = verify(&env.dir(), None);
    assert!(report.is_ok(), "{}", report.message());
    assert_eq!(report.records, n);
}

#[test]
fn checkpoints_every_n_records_and_on_close() {
    let env = Env::new();
    let log = env.open_with(|o| o.checkpoint_every_records = 5);
    for i in 1..=12 {
        log.append(sample(i)).expect("append");
    }
    // Give the writer a moment to write the count-triggered checkpoint after the last batch.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lines(&env.checkpoints()).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lines(&env.checkpoints()).len() >= 2);
    log.close().expect("close");
    let cps = lines(&env.checkpoints());
    assert!(cps.last().is_some_and(|l| l.contains("\"kind\":\"close\"") && l.contains("\"head_seq\":12")), "{cps:?}");
    assert!(verify(&env.dir(), None).is_ok());
}

#[test]
fn checkpoints_on_a_timer() {
    let env = Env::new();
    let log = env.open_with(|o| o.checkpoint_every = Duration::from_millis(50));
    log.append(sample(1)).expect("append");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while lines(&env.checkpoints()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let cps = lines(&env.checkpoints());
    assert!(cps.first().is_some_and(|l| l.contains("\"kind\":\"periodic\"")), "{cps:?}");
}

#[test]
fn torn_last_line_is_repaired_on_open() {
    let env = populated(10);
    let seg = env.segments()[0].clone();
    let full = std::fs::read(&seg).expect("read");
    // Simulate a crash in the middle of writing record 11: half a line, no newline.
    let last = lines(&seg).pop().expect("line").replace("\"seq\":10", "\"seq\":11");
    let mut torn = full.clone();
    torn.extend_from_slice(&last.as_bytes()[..last.len() / 2]);
    std::fs::write(&seg, &torn).expect("write");
    let before = verify(&env.dir(), None);
    assert_eq!(before.findings[0].kind, FindingKind::MalformedRecord, "{}", before.message());
    assert_eq!(before.findings[0].line, Some(11));

    let log = env.open();
    assert_eq!(log.head().0, 10, "all complete records kept");
    assert_eq!(std::fs::read(&seg).expect("read"), full, "exactly the torn bytes removed");
    assert_eq!(log.append(sample(11)).expect("append").seq, 11);
    log.close().expect("close");
    let report = verify(&env.dir(), None);
    assert!(report.is_ok(), "{}", report.message());
    assert_eq!(report.records, 11);
}

#[test]
fn complete_but_bad_last_line_is_repaired_when_not_checkpointed() {
    let env = Env::new();
    let log = env.open_with(|o| o.checkpoint_every_records = 1000);
    for i in 1..=3 {
        log.append(sample(i)).expect("append");
    }
    // Crash without close: no checkpoint covers records 1..3.
    std::mem::forget(log);
    let seg = env.segments()[0].clone();
    let mut l = lines(&seg);
    l.push("{\"seq\":4,\"time\":\"garbage".to_owned() + "\u{0}\u{0}");
    write_lines(&seg, &l);
    // The forgotten log still holds the lock in this process; release it by closing the fd is not
    // possible, so take the lock file away (a new process after kill -9 would not see it).
    std::fs::remove_file(env.dir().join(crate::log::LOCK_FILE)).expect("remove lock");
    let log = env.open();
    assert_eq!(log.head().0, 3);
    log.close().expect("close");
    assert!(verify(&env.dir(), None).is_ok());
}

#[test]
fn damage_before_the_tail_is_not_silently_repaired() {
    let env = populated(6);
    let seg = env.segments()[0].clone();
    let mut l = lines(&seg);
    l[2] = l[2].replace("id = 3", "id = 9");
    write_lines(&seg, &l);
    match AuditLog::open(env.dir(), env.options()) {
        Err(AuditError::Corrupt { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(lines(&seg).len(), 6, "nothing truncated");
}

#[test]
fn missing_acknowledged_tail_refuses_to_open() {
    let env = populated(6);
    let seg = env.segments()[0].clone();
    let mut l = lines(&seg);
    l.truncate(4);
    write_lines(&seg, &l);
    assert!(matches!(AuditLog::open(env.dir(), env.options()), Err(AuditError::Corrupt { .. })));
}

#[test]
fn write_failure_fails_closed_and_the_log_stays_consistent() {
    let env = Env::new();
    let log = env.open();
    log.append(sample(1)).expect("append");
    log.inject_write_failures(1);
    let err = log.append_many(vec![sample(2), sample(3)]).expect_err("must fail closed");
    assert!(matches!(err, AuditError::WriteFailed { .. }), "{err:?}");
    assert_eq!(log.head().0, 1);
    assert_eq!(lines(&env.segments()[0]).len(), 1, "partial bytes rolled back");
    assert_eq!(log.append(sample(2)).expect("append after failure").seq, 2);
    log.close().expect("close");
    let report = verify(&env.dir(), None);
    assert!(report.is_ok(), "{}", report.message());
}

#[test]
fn real_io_failure_on_segment_roll_fails_closed() {
    let env = Env::new();
    let log = env.open_with(|o| o.segment_max_records = 1);
    log.append(sample(1)).expect("append");
    // Occupy the next segment's name with a directory: the roll cannot create it.
    let blocker = env.dir().join(crate::segment::segment_name(2, Utc::now().date_naive()));
    std::fs::create_dir(&blocker).expect("mkdir");
    let err = log.append(sample(2)).expect_err("must fail closed");
    assert!(matches!(err, AuditError::WriteFailed { .. }), "{err:?}");
    std::fs::remove_dir(&blocker).expect("rmdir");
    assert_eq!(log.append(sample(2)).expect("append").seq, 2);
    log.close().expect("close");
    assert!(verify(&env.dir(), None).is_ok());
}

#[test]
fn raw_identifier_in_subject_hashes_is_refused() {
    let env = Env::new();
    let log = env.open();
    let mut r = sample(1);
    r.subject_hashes = vec!["11010519491231002X".to_owned()];
    assert!(matches!(log.append(r), Err(AuditError::InvalidRecord { .. })));
    assert_eq!(log.head().0, 0);
}

#[test]
fn append_after_close_is_refused() {
    let env = Env::new();
    let log = env.open();
    log.close().expect("close");
    assert!(matches!(log.append(sample(1)), Err(AuditError::Closed)));
}

#[test]
fn second_writer_is_locked_out() {
    let env = Env::new();
    let _log = env.open();
    assert!(matches!(AuditLog::open(env.dir(), env.options()), Err(AuditError::Locked { .. })));
}

#[test]
fn insecure_key_file_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new();
    drop(env.open());
    std::fs::set_permissions(env.key(), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(AuditLog::open(env.dir(), env.options()), Err(AuditError::SigningKey { .. })));
    let mode = std::fs::metadata(env.key()).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn created_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new();
    drop(env.open());
    let mode = std::fs::metadata(env.key()).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn key_rotation_keeps_old_checkpoints_verifiable() {
    let env = Env::new();
    let log = env.open();
    for i in 1..=3 {
        log.append(sample(i)).expect("append");
    }
    let old_id = log.key_id();
    let new_path = env.tmp.path().join("keys").join("signing-2.pk8");
    let new_key = SigningKey::load_or_create(&new_path).expect("new key");
    let new_id = new_key.key_id().to_owned();
    log.rotate_key(new_key).expect("rotate");
    assert_eq!(log.key_id(), new_id);
    for i in 4..=6 {
        log.append(sample(i)).expect("append");
    }
    log.close().expect("close");
    drop(log);

    let ring = crate::KeyRing::load(&env.dir()).expect("keys.json");
    assert_eq!(ring.keys.iter().map(|k| k.key_id.clone()).collect::<Vec<_>>(), vec![old_id.clone(), new_id.clone()]);
    let cps = lines(&env.checkpoints());
    assert!(cps.iter().any(|l| l.contains("\"kind\":\"rotation\"") && l.contains(&old_id) && l.contains(&new_id)));
    let report = verify(&env.dir(), None);
    assert!(report.is_ok(), "{}", report.message());
    assert!(report.checkpoints_verified >= 3);

    // Restart with the new key file and export: the witness gets the new key.
    let log = env.open_with(|o| o.signing_key_file = new_path.clone());
    let out = env.tmp.path().join("witness.json");
    let x = log.export_checkpoint(&out).expect("export");
    assert_eq!(x.checkpoint.key_id, new_id);
    drop(log);
    assert!(verify(&env.dir(), Some(&out)).is_ok());
}

#[test]
fn pruning_keeps_the_remaining_chain_verifiable() {
    let env = Env::new();
    let log = env.open_with(|o| o.segment_max_records = 5);
    for i in 1..=23 {
        log.append(sample(i)).expect("append");
    }
    let out = env.tmp.path().join("old-witness.json");
    log.export_checkpoint(&out).expect("export");
    assert_eq!(env.segments().len(), 5);

    // Nothing is old enough yet.
    assert_eq!(log.prune(Utc::now()).expect("prune"), crate::PruneReport::default());

    let later = Utc::now() + chrono::Duration::days(i64::from(crate::DEFAULT_RETENTION_DAYS) + 1);
    let report = log.prune(later).expect("prune");
    assert_eq!(report.removed_segments.len(), 4, "{report:?}");
    assert_eq!(report.removed_records, 20);
    assert_eq!(report.first_seq, Some(21));
    assert_eq!(env.segments().len(), 1);
    for i in 24..=26 {
        log.append(sample(i)).expect("append");
    }
    log.close().expect("close");
    drop(log);

    let v = verify(&env.dir(), None);
    assert!(v.is_ok(), "{}", v.message());
    assert_eq!((v.first_seq, v.head_seq), (Some(21), Some(26)));
    assert!(v.checkpoints_pruned >= 1 || v.checkpoints_verified >= 2, "{v:?}");
    // The witness's checkpoint (seq 23) is still in the log and matches.
    assert!(verify(&env.dir(), Some(&out)).is_ok());

    // Reopen works and continues the chain.
    let log = env.open();
    assert_eq!(log.append(sample(27)).expect("append").seq, 27);
    drop(log);
    assert!(verify(&env.dir(), None).is_ok());
}

#[test]
fn deleting_segments_beyond_an_anchor_is_detected() {
    let env = Env::new();
    let log = env.open_with(|o| o.segment_max_records = 5);
    for i in 1..=12 {
        log.append(sample(i)).expect("append");
    }
    log.close().expect("close");
    drop(log);
    std::fs::remove_file(&env.segments()[0]).expect("remove");
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::MissingRecords, "{}", report.message());
    assert!(report.findings[0].message.contains("starts at seq 6"));
}

#[test]
fn retention_below_six_months_is_refused() {
    let env = Env::new();
    let mut o = env.options();
    o.retention_days = 30;
    assert!(matches!(AuditLog::open(env.dir(), o), Err(AuditError::InvalidOptions { .. })));
}

#[test]
fn cli_command_parses() {
    use clap::Parser as _;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: crate::cli::AuditCommand,
    }
    let cli = Cli::try_parse_from(["audit", "verify", "--dir", "/x", "--checkpoint", "/c.json"]).expect("parse");
    assert_eq!(
        cli.cmd,
        crate::cli::AuditCommand::Verify {
            dir: Some("/x".into()),
            postgres: None,
            schema: "creditgate".into(),
            password_file: None,
            checkpoint: Some("/c.json".into()),
            allow_empty: false
        }
    );
    let cli = Cli::try_parse_from(["audit", "verify", "--dir", "/x", "--allow-empty"]).expect("parse");
    assert_eq!(
        cli.cmd,
        crate::cli::AuditCommand::Verify {
            dir: Some("/x".into()),
            postgres: None,
            schema: "creditgate".into(),
            password_file: None,
            checkpoint: None,
            allow_empty: true
        }
    );
    let cli =
        Cli::try_parse_from(["audit", "verify", "--postgres", "postgres://u@h/db", "--schema", "s1"]).expect("parse");
    assert!(
        matches!(&cli.cmd, crate::cli::AuditCommand::Verify { dir: None, postgres: Some(u), schema, .. } if u == "postgres://u@h/db" && schema == "s1")
    );
    assert!(Cli::try_parse_from(["audit", "verify"]).is_err(), "--dir or --postgres is required");
    assert!(Cli::try_parse_from(["audit", "verify", "--dir", "/x", "--postgres", "postgres://u@h/db"]).is_err());
    let env = populated(2);
    let out = env.tmp.path().join("w.json");
    let (code, msg) = crate::cli::run(&crate::cli::AuditCommand::ExportCheckpoint { dir: env.dir(), out: out.clone() });
    assert_eq!(code, 0, "{msg}");
    let (code, msg) = crate::cli::run(&crate::cli::AuditCommand::Verify {
        dir: Some(env.dir()),
        postgres: None,
        schema: "creditgate".into(),
        password_file: None,
        checkpoint: Some(out),
        allow_empty: false,
    });
    assert_eq!(code, 0, "{msg}");
}

#[test]
fn rotate_key_command_switches_the_key_file_and_keeps_the_chain_verifiable() {
    let env = Env::new();
    let log = env.open();
    for i in 1..=3 {
        log.append(sample(i)).expect("append");
    }
    let old_id = log.key_id();
    // While the gateway (here: this log) holds the directory, rotation is refused.
    let (code, message) = crate::cli::run_rotate_key(&env.dir(), &env.key());
    assert_eq!(code, crate::cli::EXIT_ERROR, "{message}");
    assert!(message.contains("in use"), "{message}");
    log.close().expect("close");
    drop(log);
    let old_bytes = std::fs::read(env.key()).expect("key");

    let (code, message) = crate::cli::run_rotate_key(&env.dir(), &env.key());
    assert_eq!(code, 0, "{message}");
    let new_bytes = std::fs::read(env.key()).expect("key");
    assert_ne!(new_bytes, old_bytes, "the key file holds the new key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.key()).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the new key is private");
    }
    let new_id = SigningKey::load_or_create(&env.key()).expect("new key").key_id().to_owned();
    assert_ne!(new_id, old_id);
    assert!(message.contains(&old_id) && message.contains(&new_id), "{message}");
    let cps = lines(&env.checkpoints());
    assert!(cps.iter().any(|l| l.contains("\"kind\":\"rotation\"") && l.contains(&old_id) && l.contains(&new_id)));

    // The next start signs with the new key; everything still verifies.
    let log = env.open();
    assert_eq!(log.key_id(), new_id);
    log.append(sample(4)).expect("append");
    log.close().expect("close");
    let report = verify(&env.dir(), None);
    assert!(report.is_ok(), "{}", report.message());

    // A missing key file is refused by name, and nothing changes.
    let missing = env.tmp.path().join("nope.pk8");
    let (code, message) = crate::cli::run_rotate_key(&env.dir(), &missing);
    assert_eq!(code, crate::cli::EXIT_ERROR);
    assert!(message.contains("nope.pk8"), "{message}");
}
