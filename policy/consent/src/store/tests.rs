//! Store tests that need the fault-injection hook.

use super::*;

const KEY: &[u8] = b"0123456789abcdef-test-key";
const HASH: &str = "00112233445566778899aabbccddeeff";
const ISSUER: &str = "credit-platform";

fn subject() -> SubjectRef {
    SubjectRef::parse(creditgate_ident::SubjectKind::ResidentId, "11010519491231002X").expect("subject")
}

#[test]
fn failed_append_counts_nothing_and_leaves_files_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ConsentStore::open(dir.path(), KEY).expect("open");
    assert_eq!(store.try_use(ISSUER, "c-1", 3, &subject()).expect("use 1"), 1);

    store.inject_append_failures(1);
    let err = store.try_use(ISSUER, "c-1", 3, &subject()).expect_err("injected failure");
    assert!(matches!(err, ConsentError::Io { .. }), "{err:?}");
    assert_eq!(store.uses(ISSUER, "c-1"), 1, "a failed write counts nothing");

    // The half-written record is cut off before the next append.
    assert_eq!(store.try_use(ISSUER, "c-1", 3, &subject()).expect("use 2"), 2);

    store.inject_append_failures(1);
    assert!(store.revoke(Some(ISSUER), "c-1", "credit-platform", Some(HASH)).is_err());
    assert!(!store.is_revoked(ISSUER, "c-1"), "a failed revocation changes nothing");
    drop(store);

    let store = ConsentStore::open(dir.path(), KEY).expect("reopen");
    assert_eq!(store.uses(ISSUER, "c-1"), 2);
    assert!(!store.is_revoked(ISSUER, "c-1"));
}

#[test]
fn failed_append_then_crash_drops_the_torn_record_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ConsentStore::open(dir.path(), KEY).expect("open");
    store.try_use(ISSUER, "c-1", 5, &subject()).expect("use");
    store.inject_append_failures(1);
    assert!(store.try_use(ISSUER, "c-1", 5, &subject()).is_err());
    drop(store); // "crash": the torn half record stays in the journal

    let journal = fs::read(dir.path().join(JOURNAL_FILE)).expect("journal");
    assert!(!journal.ends_with(b"\n"), "the journal ends with a torn record");

    let store = ConsentStore::open(dir.path(), KEY).expect("reopen");
    assert_eq!(store.uses(ISSUER, "c-1"), 1);
    assert_eq!(fs::read(dir.path().join(JOURNAL_FILE)).expect("journal").len(), 0, "compacted on open");
    assert_eq!(store.try_use(ISSUER, "c-1", 5, &subject()).expect("use"), 2);
}

#[test]
fn journal_replay_is_idempotent_over_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ConsentStore::open(dir.path(), KEY).expect("open");
    store.try_use(ISSUER, "c-1", 5, &subject()).expect("use");
    store.try_use(ISSUER, "c-1", 5, &subject()).expect("use");
    store.revoke(Some(ISSUER), "c-2", "credit-platform", Some(HASH)).expect("revoke");
    let journal = fs::read(dir.path().join(JOURNAL_FILE)).expect("journal");
    {
        let mut inner = store.lock();
        store.compact(&mut inner).expect("compact");
    }
    drop(store);
    // Simulate a crash between writing the snapshot and truncating the journal.
    fs::write(dir.path().join(JOURNAL_FILE), &journal).expect("restore journal");
    let store = ConsentStore::open(dir.path(), KEY).expect("reopen");
    assert_eq!(store.uses(ISSUER, "c-1"), 2);
    assert!(store.is_revoked(ISSUER, "c-2"));
}

#[test]
fn corrupt_middle_line_refuses_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = r#"{"op":"revoke","consent_id":"c-1","issuer":"credit-platform","subject_hash":"00112233445566778899aabbccddeeff","by":"x","at":"2026-01-01T00:00:00Z"}"#;
    fs::write(dir.path().join(JOURNAL_FILE), format!("{good}\nnot json\n{good}\n")).expect("write");
    let err = ConsentStore::open(dir.path(), KEY).expect_err("corrupt");
    assert!(matches!(err, ConsentError::StoreCorrupt { line: Some(2), .. }), "{err}");
}

#[test]
fn compaction_after_many_records_keeps_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ConsentStore::open(dir.path(), KEY).expect("open");
    for i in 0..COMPACT_AFTER_RECORDS + 3 {
        store.try_use(ISSUER, &format!("c-{}", i % 7), u32::MAX, &subject()).expect("use");
    }
    let inner_records = store.lock().records;
    assert_eq!(inner_records, 3, "compacted once at the threshold");
    let total: u32 = store.list().iter().map(|s| s.uses).sum();
    assert_eq!(total as usize, COMPACT_AFTER_RECORDS + 3);
    drop(store);
    let store = ConsentStore::open(dir.path(), KEY).expect("reopen");
    let total: u32 = store.list().iter().map(|s| s.uses).sum();
    assert_eq!(total as usize, COMPACT_AFTER_RECORDS + 3);
}
