//! The consent store: persistence, atomic use counting, no personal data.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use creditgate_consent::*;
use creditgate_ident::SubjectKind;

fn open(dir: &std::path::Path) -> ConsentStore {
    ConsentStore::open(dir, HASH_KEY).expect("open store")
}

#[test]
fn revocation_and_uses_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let hash = store.hash_subject(&person());
    assert!(!store.is_revoked("cns-1"));
    assert_eq!(store.try_use("cns-1", 5, &hash).expect("use"), 1);
    assert_eq!(store.try_use("cns-1", 5, &hash).expect("use"), 2);
    assert!(store.revoke("cns-2", "credit-platform", Some(&hash)).expect("revoke"));
    assert!(!store.revoke("cns-2", "credit-agency", Some(&hash)).expect("revoke again"), "already revoked");
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.uses("cns-1"), 2);
    assert!(!store.is_revoked("cns-1"));
    assert!(store.is_revoked("cns-2"));
    let revocation = store.revocation("cns-2").expect("revocation");
    assert_eq!(revocation.by, "credit-platform", "the first revocation is kept");
    assert!(matches!(store.try_use("cns-2", 5, &hash), Err(ConsentError::Refused(ConsentRefusal::Revoked { .. }))));
    // Revoke the used one, reopen again (this time from the snapshot only).
    store.revoke("cns-1", "credit-agency", Some(&hash)).expect("revoke");
    drop(store);
    let store = open(dir.path());
    assert!(store.is_revoked("cns-1"));
    assert_eq!(store.uses("cns-1"), 2);

    let list = store.list();
    assert_eq!(list.iter().map(|s| s.consent_id.as_str()).collect::<Vec<_>>(), ["cns-1", "cns-2"]);
    assert_eq!(list[0].uses, 2);
    assert_eq!(list[0].max_uses, Some(5));
    assert!(list[0].first_use.is_some() && list[0].revoked.is_some());
    assert_eq!(list[1].uses, 0);
    assert_eq!(list[1].first_use, None);
    assert_eq!(store.list_for_subject(&hash).len(), 2);
    assert_eq!(store.list_for_subject("ffffffffffffffffffffffffffffffff").len(), 0);
    let json = serde_json::to_value(&list[1]).expect("status json");
    assert!(json.get("first_use").is_none(), "absent fields are omitted: {json}");
}

#[test]
fn revocation_by_id_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let hash = store.hash_subject(&person());
    // Control: an unrevoked consent can be used.
    assert_eq!(store.try_use("cns-a", 2, &hash).expect("use"), 1);
    // Revoked before any use, without naming the subject.
    assert!(store.revoke("cns-b", "samr", None).expect("revoke"));
    assert!(matches!(store.try_use("cns-b", 2, &hash), Err(ConsentError::Refused(ConsentRefusal::Revoked { .. }))));
    assert_eq!(store.status("cns-b").expect("status").subject_hash, None);
    // Revoking a used consent by id keeps its subject hash.
    assert!(store.revoke("cns-a", "samr", None).expect("revoke"));
    drop(store);
    let store = open(dir.path());
    assert!(store.is_revoked("cns-a") && store.is_revoked("cns-b"));
    assert_eq!(store.status("cns-a").expect("status").subject_hash.as_deref(), Some(hash.as_str()));
}

#[test]
fn concurrent_try_use_never_exceeds_max() {
    const THREADS: usize = 16;
    const ATTEMPTS: usize = 8;
    const MAX: u32 = 37;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let hash = store.hash_subject(&person());
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, hash, barrier) = (Arc::clone(&store), hash.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut granted = Vec::new();
                for _ in 0..ATTEMPTS {
                    match store.try_use("cns-concurrent", MAX, &hash) {
                        Ok(n) => granted.push(n),
                        Err(ConsentError::Refused(ConsentRefusal::UsesExhausted { max: MAX })) => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                granted
            })
        })
        .collect();
    let mut granted: Vec<u32> = handles.into_iter().flat_map(|h| h.join().expect("thread")).collect();
    granted.sort_unstable();
    assert_eq!(granted, (1..=MAX).collect::<Vec<_>>(), "each use number handed out exactly once, none above max");
    assert_eq!(store.uses("cns-concurrent"), MAX);
    drop(store);
    assert_eq!(open(dir.path()).uses("cns-concurrent"), MAX);
}

#[test]
fn revocation_is_atomic_with_use_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let hash = store.hash_subject(&person());
    let barrier = Arc::new(Barrier::new(5));
    let users: Vec<_> = (0..4)
        .map(|_| {
            let (store, hash, barrier) = (Arc::clone(&store), hash.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..50 {
                    let _ = store.try_use("cns-race", u32::MAX, &hash);
                }
            })
        })
        .collect();
    barrier.wait();
    store.revoke("cns-race", "credit-platform", Some(&hash)).expect("revoke");
    let uses_at_revocation = store.uses("cns-race");
    for h in users {
        h.join().expect("thread");
    }
    assert_eq!(store.uses("cns-race"), uses_at_revocation, "no use is counted after the revocation returned");
}

#[test]
fn store_files_hold_no_personal_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let subject = person();
    let hash = store.hash_subject(&subject);
    assert_eq!(hash.len(), SUBJECT_HASH_LEN);
    assert!(is_subject_hash(&hash));
    store.try_use("cns-pd", 2, &hash).expect("use");
    store.revoke("cns-pd", "credit-platform", Some(&hash)).expect("revoke");
    // Look at the journal before and the snapshot after compaction.
    let mut contents = String::new();
    for name in [JOURNAL_FILE, SNAPSHOT_FILE] {
        if let Ok(text) = std::fs::read_to_string(dir.path().join(name)) {
            contents.push_str(&text);
        }
    }
    drop(store);
    let _ = open(dir.path());
    contents.push_str(&std::fs::read_to_string(dir.path().join(SNAPSHOT_FILE)).expect("snapshot"));
    assert!(contents.contains(&hash) && contents.contains("cns-pd"));
    for needle in [RESIDENT_ID, RESIDENT_ID_15, &RESIDENT_ID[..6], &RESIDENT_ID[6..14], "19491231"] {
        assert!(!contents.contains(needle), "store files contain {needle:?}");
    }
}

#[test]
fn subject_hash_is_keyed_and_normalised() {
    let a = subject_hash(HASH_KEY, &person());
    let b = subject_hash(HASH_KEY, &SubjectRef::parse(SubjectKind::ResidentId, RESIDENT_ID_15).expect("15"));
    assert_eq!(a, b, "15- and 18-digit forms hash alike");
    assert_ne!(a, subject_hash(b"another-key-0123456789", &person()));
    assert_ne!(a, subject_hash(HASH_KEY, &SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("x")));
}

#[test]
fn one_store_per_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let err = ConsentStore::open(dir.path(), HASH_KEY).expect_err("second open");
    assert!(matches!(err, ConsentError::StoreLocked { .. }), "{err}");
    drop(store);
    let _ = open(dir.path());
}

#[test]
fn bad_arguments_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(ConsentStore::open(dir.path(), b"short"), Err(ConsentError::InvalidInput { .. })));
    let store = open(dir.path());
    let hash = store.hash_subject(&person());
    for id in ["", "../etc", "a/b", "x y"] {
        assert!(matches!(store.try_use(id, 1, &hash), Err(ConsentError::InvalidInput { .. })), "{id:?}");
        assert!(matches!(store.revoke(id, "x", Some(&hash)), Err(ConsentError::InvalidInput { .. })), "{id:?}");
    }
    assert!(matches!(store.try_use("c", 1, RESIDENT_ID), Err(ConsentError::InvalidInput { .. })));
    assert!(matches!(store.try_use("c", 0, &hash), Err(ConsentError::InvalidInput { .. })));
    assert!(matches!(store.revoke("c", "", Some(&hash)), Err(ConsentError::InvalidInput { .. })));
    // An id recorded for one subject is not counted for another.
    store.try_use("c", 3, &hash).expect("use");
    let other = store.hash_subject(&SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("x"));
    assert!(matches!(store.try_use("c", 3, &other), Err(ConsentError::Refused(ConsentRefusal::Malformed(_)))));
    assert_eq!(store.uses("c"), 1);
}

#[cfg(unix)]
#[test]
fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("state").join("consents");
    let store = open(&dir);
    let hash = store.hash_subject(&person());
    store.revoke("c", "x", Some(&hash)).expect("revoke");
    drop(store);
    let _ = open(&dir);
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for name in [SNAPSHOT_FILE, JOURNAL_FILE, LOCK_FILE] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}
