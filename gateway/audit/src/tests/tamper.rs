//! One test per tamper class, plus the untouched controls.

use super::{Env, lines, populated, write_lines};
use crate::cli::{run_export_checkpoint, run_verify};
use crate::{AuditRecord, Checkpoint, FindingKind, SigningKey, verify};

fn only_segment(env: &Env) -> std::path::PathBuf {
    let segs = env.segments();
    assert_eq!(segs.len(), 1, "expected one segment");
    segs[0].clone()
}

fn seg_name(env: &Env) -> String {
    only_segment(env).file_name().and_then(|n| n.to_str()).expect("name").to_owned()
}

#[test]
fn untouched_log_verifies() {
    let env = populated(10);
    let report = verify(&env.dir(), None);
    assert!(report.is_ok(), "{}", report.message());
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.records, 10);
    assert_eq!((report.first_seq, report.head_seq), (Some(1), Some(10)));
    assert!(report.checkpoints_verified >= 1, "close writes a checkpoint");
    assert!(report.message().starts_with("audit log OK: 10 records (seq 1..10)"), "{}", report.message());
    let (code, msg) = run_verify(&env.dir(), None, false);
    assert_eq!(code, 0, "{msg}");
}

#[test]
fn changed_byte_is_a_hash_mismatch_at_that_seq() {
    let env = populated(10);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l[4] = l[4].replace("id = 5", "id = 6");
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::RecordModified, "{}", report.message());
    assert_eq!((f.seq, f.line), (Some(5), Some(5)));
    assert_eq!(f.file.as_deref(), Some(seg_name(&env).as_str()));
    assert_eq!(report.exit_code(), 11);
    assert_eq!(report.findings.len(), 1, "one changed byte, one finding: {}", report.message());
    assert!(
        report.message().contains(&format!("record modified at {} line 5 (seq 5)", seg_name(&env))),
        "{}",
        report.message()
    );
}

#[test]
fn changed_byte_in_the_hash_field_is_detected() {
    let env = populated(4);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    let mut bytes = l[1].clone().into_bytes();
    let pos = bytes.len() - 3; // inside the hash value
    bytes[pos] = if bytes[pos] == b'0' { b'1' } else { b'0' };
    l[1] = String::from_utf8(bytes).expect("utf8");
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::RecordModified);
    assert_eq!(report.findings[0].seq, Some(2));
}

#[test]
fn whitespace_change_is_detected_as_modification() {
    let env = populated(3);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l[0] = l[0].replacen("{\"seq\":1,", "{\"seq\": 1,", 1);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::RecordModified, "{}", report.message());
}

#[test]
fn unparsable_line_is_malformed() {
    let env = populated(3);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l[1] = l[1].replacen('{', "[", 1);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::MalformedRecord);
    assert_eq!(report.findings[0].line, Some(2));
    assert_eq!(report.exit_code(), 10);
}

#[test]
fn deleted_record_is_a_gap() {
    let env = populated(10);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l.remove(4);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::MissingRecords, "{}", report.message());
    assert_eq!((f.seq, f.line), (Some(6), Some(5)));
    assert!(f.message.contains("seq 5 is missing"), "{}", f.message);
    assert_eq!(report.exit_code(), 13);
}

#[test]
fn deleted_first_record_is_detected() {
    let env = populated(5);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l.remove(0);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::MissingRecords, "{}", report.message());
    assert!(report.findings[0].message.contains("starts at seq 2"));
}

#[test]
fn reordered_records_are_detected() {
    let env = populated(10);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l.swap(3, 4);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::ReorderedRecords, "{}", report.message());
    assert_eq!((f.seq, f.line), (Some(5), Some(4)));
    assert_eq!(report.exit_code(), 14);
    assert!(report.findings.iter().all(|f| f.kind == FindingKind::ReorderedRecords), "{}", report.message());
}

#[test]
fn duplicated_record_is_detected() {
    let env = populated(10);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    let dup = l[4].clone();
    l.insert(5, dup);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::DuplicateRecord, "{}", report.message());
    assert_eq!((f.seq, f.line), (Some(5), Some(6)));
    assert!(f.message.contains("identical copy") && f.message.contains("line 5"), "{}", f.message);
    assert_eq!(report.exit_code(), 15);
}

#[test]
fn truncated_tail_is_detected_by_local_checkpoints() {
    let env = populated(10);
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l.truncate(7);
    write_lines(&seg, &l);
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::TruncatedTail, "{}", report.message());
    assert_eq!(report.exit_code(), 30);
}

#[test]
fn truncated_tail_against_exported_checkpoint() {
    let env = populated(10);
    let out = env.tmp.path().join("witness.json");
    let (code, msg) = run_export_checkpoint(&env.dir(), &out);
    assert_eq!(code, 0, "{msg}");
    assert!(verify(&env.dir(), Some(&out)).is_ok());

    // The attacker removes the tail and the local checkpoints that would betray it.
    let seg = only_segment(&env);
    let mut l = lines(&seg);
    l.truncate(7);
    write_lines(&seg, &l);
    std::fs::write(env.checkpoints(), "").expect("clear checkpoints");
    assert!(verify(&env.dir(), None).is_ok(), "without a witness the shortened log looks fine");

    let report = verify(&env.dir(), Some(&out));
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::TruncatedTail, "{}", report.message());
    assert_eq!(f.seq, Some(10));
    assert!(f.message.contains("ends at seq 7"), "{}", f.message);
    assert_eq!(report.exit_code(), 30);
    let (code, msg) = run_verify(&env.dir(), Some(&out), false);
    assert_eq!(code, 30);
    assert!(msg.contains("witness.json") && msg.contains("truncated tail"), "{msg}");
}

/// Changes record `seq` and recomputes the hashes of it and all later records.
fn rewrite_from(seg: &std::path::Path, index: usize) {
    let mut recs: Vec<AuditRecord> =
        lines(seg).iter().map(|l| AuditRecord::from_line(l.as_bytes()).expect("parse")).collect();
    recs[index].purpose = Some("innocent".to_owned());
    for i in index..recs.len() {
        if i > 0 {
            recs[i].prev_hash = recs[i - 1].hash.clone();
        }
        recs[i].hash = recs[i].compute_hash().expect("hash");
    }
    let out: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.to_line().expect("line")).expect("utf8").trim_end().to_owned())
        .collect();
    write_lines(seg, &out);
}

#[test]
fn rewritten_log_against_exported_checkpoint() {
    let env = populated(10);
    let out = env.tmp.path().join("witness.json");
    crate::export_checkpoint(&env.dir(), &out).expect("export");
    let seg = only_segment(&env);
    rewrite_from(&seg, 4);

    // Local checkpoints (signed over the old head) catch it too.
    let local = verify(&env.dir(), None);
    assert_eq!(local.findings[0].kind, FindingKind::CheckpointMismatch, "{}", local.message());
    assert_eq!(local.exit_code(), 23);

    std::fs::write(env.checkpoints(), "").expect("clear checkpoints");
    assert!(verify(&env.dir(), None).is_ok(), "a consistent rewrite passes without a witness");
    let report = verify(&env.dir(), Some(&out));
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::RewrittenLog, "{}", report.message());
    assert_eq!(f.seq, Some(10));
    assert_eq!(report.exit_code(), 31);
}

#[test]
fn bad_checkpoint_signature_is_detected() {
    let env = populated(5);
    let mut l = lines(&env.checkpoints());
    let mut cp: Checkpoint = serde_json::from_str(&l[0]).expect("parse");
    cp.head_seq = 4;
    cp.record_count = 4;
    l[0] = serde_json::to_string(&cp).expect("json");
    write_lines(&env.checkpoints(), &l);
    let report = verify(&env.dir(), None);
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::BadCheckpointSignature, "{}", report.message());
    assert_eq!((f.file.as_deref(), f.line), (Some(crate::CHECKPOINTS_FILE), Some(1)));
    assert_eq!(report.exit_code(), 21);
}

#[test]
fn checkpoint_signed_by_an_unknown_key_is_detected() {
    let env = populated(3);
    let (key, _) = SigningKey::generate().expect("key");
    let cp =
        Checkpoint::sign(&key, crate::CheckpointKind::Manual, 3, crate::GENESIS_HASH, chrono::Utc::now(), None, None)
            .expect("sign");
    let mut l = lines(&env.checkpoints());
    l.push(String::from_utf8(cp.to_line().expect("line")).expect("utf8").trim_end().to_owned());
    write_lines(&env.checkpoints(), &l);
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::UnknownCheckpointKey, "{}", report.message());
    assert_eq!(report.exit_code(), 22);
}

#[test]
fn forged_exported_checkpoint_is_rejected() {
    let env = populated(3);
    let out = env.tmp.path().join("witness.json");
    crate::export_checkpoint(&env.dir(), &out).expect("export");
    let text = std::fs::read_to_string(&out).expect("read").replace("\"head_seq\": 3", "\"head_seq\": 2");
    std::fs::write(&out, text).expect("write");
    let report = verify(&env.dir(), Some(&out));
    assert_eq!(report.findings[0].kind, FindingKind::BadExportedCheckpoint, "{}", report.message());
    assert_eq!(report.exit_code(), 32);
}

// ---------------------------------------------------------------------------
// No log at all: a wrong path or a log deleted whole must not verify.

/// Asserts a `no audit log` failure naming the directory and what was expected.
fn assert_no_log(dir: &std::path::Path, allow_empty: bool) -> String {
    let (code, msg) = run_verify(dir, None, allow_empty);
    assert_eq!(code, crate::cli::EXIT_NO_LOG, "{msg}");
    assert_eq!(code, 3);
    assert!(msg.starts_with("audit log verification FAILED"), "{msg}");
    assert!(msg.contains(&format!("no audit log in {}", dir.display())), "{msg}");
    assert!(msg.contains("audit-<20-digit seq>-<YYYYMMDD>.jsonl"), "{msg}");
    assert!(!msg.contains("audit log OK"), "{msg}");
    msg
}

#[test]
fn missing_directory_is_no_log() {
    let env = super::Env::new();
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::NoLog, "{}", report.message());
    let msg = assert_no_log(&env.dir(), false);
    assert!(msg.contains("does not exist"), "{msg}");
    // --allow-empty does not make a wrong path acceptable.
    assert_no_log(&env.dir(), true);
}

#[test]
fn a_file_instead_of_a_directory_is_no_log() {
    let env = super::Env::new();
    std::fs::write(env.tmp.path().join("log"), b"not a log").expect("write");
    let msg = assert_no_log(&env.dir(), true);
    assert!(msg.contains("not a directory"), "{msg}");
}

#[test]
fn empty_directory_is_no_log_unless_allowed() {
    let env = super::Env::new();
    std::fs::create_dir_all(env.dir()).expect("mkdir");
    let msg = assert_no_log(&env.dir(), false);
    assert!(msg.contains("found 0 segment file(s) and no records"), "{msg}");
    assert!(msg.contains("--allow-empty"), "the message names the way out: {msg}");
    let (code, msg) = run_verify(&env.dir(), None, true);
    assert_eq!(code, 0, "{msg}");
    assert!(msg.starts_with("audit log OK: no records"), "{msg}");
    assert!(msg.contains("accepted as an empty log (--allow-empty)"), "{msg}");
}

#[test]
fn a_new_log_without_records_needs_allow_empty() {
    let env = super::Env::new();
    let log = env.open();
    assert!(log.verify().is_ok(), "the live log of a new directory verifies: {}", log.verify().message());
    log.close().expect("close");
    drop(log);
    let msg = assert_no_log(&env.dir(), false);
    assert!(msg.contains("found 1 segment file(s) and no records; checkpoints.jsonl present"), "{msg}");
    assert_eq!(run_verify(&env.dir(), None, true).0, 0);
}

#[test]
fn a_log_deleted_whole_is_no_log() {
    // Every file removed, the directory kept.
    let env = populated(5);
    assert_eq!(run_verify(&env.dir(), None, false).0, 0, "control: the real log verifies");
    for entry in std::fs::read_dir(env.dir()).expect("dir") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    assert_no_log(&env.dir(), false);
    // The directory removed too.
    std::fs::remove_dir(env.dir()).expect("rmdir");
    assert_no_log(&env.dir(), false);
}

#[test]
fn deleted_segments_with_checkpoints_left_fail_even_with_allow_empty() {
    let env = populated(5);
    for seg in env.segments() {
        std::fs::remove_file(seg).expect("remove");
    }
    let report = verify(&env.dir(), None);
    assert_eq!(report.findings[0].kind, FindingKind::NoLog, "{}", report.message());
    assert!(report.findings.iter().any(|f| f.kind == FindingKind::TruncatedTail), "{}", report.message());
    // An empty log is allowed, a signed checkpoint of 5 records that are gone is not.
    let report = crate::verify_with(&env.dir(), None, crate::VerifyOptions { allow_empty: true });
    assert_eq!(report.findings[0].kind, FindingKind::TruncatedTail, "{}", report.message());
    assert_eq!(report.exit_code(), 30);
}
