//! The consent store: persistence, atomic use counting, no personal data.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use creditgate_consent::*;
use creditgate_ident::SubjectKind;

/// The issuer of the consents in these tests.
const ISSUER: &str = "credit-platform";

fn open(dir: &std::path::Path) -> ConsentStore {
    ConsentStore::open(dir, HASH_KEY).expect("open store")
}

#[test]
fn revocation_and_uses_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let hash = store.hash_subject(&person());
    assert!(!store.is_revoked(ISSUER, "cns-1"));
    assert_eq!(store.try_use(ISSUER, "cns-1", 5, &person()).expect("use"), 1);
    assert_eq!(store.try_use(ISSUER, "cns-1", 5, &person()).expect("use"), 2);
    assert!(store.revoke(Some(ISSUER), "cns-2", "credit-platform", Some(&hash)).expect("revoke"));
    assert!(
        !store.revoke(Some(ISSUER), "cns-2", "credit-agency", Some(&hash)).expect("revoke again"),
        "already revoked"
    );
    drop(store);

    let store = open(dir.path());
    assert_eq!(store.uses(ISSUER, "cns-1"), 2);
    assert!(!store.is_revoked(ISSUER, "cns-1"));
    assert!(store.is_revoked(ISSUER, "cns-2"));
    let revocation = store.revocation(ISSUER, "cns-2").expect("revocation");
    assert_eq!(revocation.by, "credit-platform", "the first revocation is kept");
    assert!(matches!(
        store.try_use(ISSUER, "cns-2", 5, &person()),
        Err(ConsentError::Refused(ConsentRefusal::Revoked { .. }))
    ));
    // Revoke the used one, reopen again (this time from the snapshot only).
    store.revoke(Some(ISSUER), "cns-1", "credit-agency", Some(&hash)).expect("revoke");
    drop(store);
    let store = open(dir.path());
    assert!(store.is_revoked(ISSUER, "cns-1"));
    assert_eq!(store.uses(ISSUER, "cns-1"), 2);

    let list = store.list();
    assert_eq!(list.iter().map(|s| s.consent_id.as_str()).collect::<Vec<_>>(), ["cns-1", "cns-2"]);
    assert_eq!(list[0].uses, 2);
    assert_eq!(list[0].max_uses, Some(5));
    assert_eq!(list[0].issuer.as_deref(), Some(ISSUER));
    assert_eq!(list[0].subject_type, Some(SubjectKind::ResidentId));
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
    assert_eq!(store.try_use(ISSUER, "cns-a", 2, &person()).expect("use"), 1);
    // Revoked before any use, without naming the subject.
    assert!(store.revoke(Some(ISSUER), "cns-b", "samr", None).expect("revoke"));
    assert!(matches!(
        store.try_use(ISSUER, "cns-b", 2, &person()),
        Err(ConsentError::Refused(ConsentRefusal::Revoked { .. }))
    ));
    assert_eq!(store.status(ISSUER, "cns-b").expect("status").subject_hash, None);
    // Revoking a used consent by id keeps its subject hash.
    assert!(store.revoke(Some(ISSUER), "cns-a", "samr", None).expect("revoke"));
    drop(store);
    let store = open(dir.path());
    assert!(store.is_revoked(ISSUER, "cns-a") && store.is_revoked(ISSUER, "cns-b"));
    assert_eq!(store.status(ISSUER, "cns-a").expect("status").subject_hash.as_deref(), Some(hash.as_str()));
}

#[test]
fn concurrent_try_use_never_exceeds_max() {
    const THREADS: usize = 16;
    const ATTEMPTS: usize = 8;
    const MAX: u32 = 37;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut granted = Vec::new();
                for _ in 0..ATTEMPTS {
                    match store.try_use(ISSUER, "cns-concurrent", MAX, &person()) {
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
    assert_eq!(store.uses(ISSUER, "cns-concurrent"), MAX);
    drop(store);
    assert_eq!(open(dir.path()).uses(ISSUER, "cns-concurrent"), MAX);
}

#[test]
fn revocation_is_atomic_with_use_counting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(open(dir.path()));
    let hash = store.hash_subject(&person());
    let barrier = Arc::new(Barrier::new(5));
    let users: Vec<_> = (0..4)
        .map(|_| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..50 {
                    let _ = store.try_use(ISSUER, "cns-race", u32::MAX, &person());
                }
            })
        })
        .collect();
    barrier.wait();
    store.revoke(Some(ISSUER), "cns-race", "credit-platform", Some(&hash)).expect("revoke");
    let uses_at_revocation = store.uses(ISSUER, "cns-race");
    for h in users {
        h.join().expect("thread");
    }
    assert_eq!(store.uses(ISSUER, "cns-race"), uses_at_revocation, "no use is counted after the revocation returned");
}

#[test]
fn store_files_hold_no_personal_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let subject = person();
    let hash = store.hash_subject(&subject);
    assert_eq!(hash.len(), SUBJECT_HASH_LEN);
    assert!(is_subject_hash(&hash));
    store.try_use(ISSUER, "cns-pd", 2, &person()).expect("use");
    store.revoke(Some(ISSUER), "cns-pd", "credit-platform", Some(&hash)).expect("revoke");
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
        assert!(matches!(store.try_use(ISSUER, id, 1, &person()), Err(ConsentError::InvalidInput { .. })), "{id:?}");
        assert!(
            matches!(store.revoke(Some(ISSUER), id, "x", Some(&hash)), Err(ConsentError::InvalidInput { .. })),
            "{id:?}"
        );
    }
    assert!(matches!(store.try_use("a/b", "c", 1, &person()), Err(ConsentError::InvalidInput { .. })));
    assert!(matches!(store.revoke(Some(""), "c", "x", None), Err(ConsentError::InvalidInput { .. })));
    assert!(matches!(store.revoke(Some(ISSUER), "c", "x", Some(RESIDENT_ID)), Err(ConsentError::InvalidInput { .. })));
    assert!(matches!(store.try_use(ISSUER, "c", 0, &person()), Err(ConsentError::InvalidInput { .. })));
    assert!(matches!(store.revoke(Some(ISSUER), "c", "", Some(&hash)), Err(ConsentError::InvalidInput { .. })));
    // An id recorded for one subject is not counted for another.
    store.try_use(ISSUER, "c", 3, &person()).expect("use");
    let other = SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("x");
    assert!(matches!(store.try_use(ISSUER, "c", 3, &other), Err(ConsentError::Refused(ConsentRefusal::Malformed(_)))));
    assert_eq!(store.uses(ISSUER, "c"), 1);
}

#[cfg(unix)]
#[test]
fn store_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("state").join("consents");
    let store = open(&dir);
    let hash = store.hash_subject(&person());
    store.revoke(Some(ISSUER), "c", "x", Some(&hash)).expect("revoke");
    drop(store);
    let _ = open(&dir);
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for name in [SNAPSHOT_FILE, JOURNAL_FILE, LOCK_FILE] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
}

#[test]
fn two_issuers_with_the_same_consent_id_do_not_collide() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let other = SubjectRef::parse(SubjectKind::ResidentId, OTHER_RESIDENT_ID).expect("x");
    // Each issuer's "cns-1" is its own consent: its own subject, count and revocation.
    assert_eq!(store.try_use(ISSUER, "cns-1", 2, &person()).expect("use"), 1);
    assert_eq!(store.try_use("other-issuer", "cns-1", 2, &other).expect("another subject, another issuer"), 1);
    assert_eq!(store.try_use(ISSUER, "cns-1", 2, &person()).expect("use"), 2);
    assert_eq!(store.uses("other-issuer", "cns-1"), 1);
    assert!(store.revoke(Some("other-issuer"), "cns-1", "other-issuer", None).expect("revoke"));
    drop(store);
    let store = open(dir.path());
    assert!(store.is_revoked("other-issuer", "cns-1"));
    assert!(!store.is_revoked(ISSUER, "cns-1"), "another issuer's revocation does not touch this one");
    assert_eq!(store.uses(ISSUER, "cns-1"), 2);
    let all = store.statuses("cns-1");
    let issuers: Vec<Option<&str>> = all.iter().map(|s| s.issuer.as_deref()).collect();
    assert_eq!(issuers, [Some(ISSUER), Some("other-issuer")]);
    assert!(store.statuses("cns-2").is_empty());
    // The ledger the verifier reads is scoped by issuer too.
    assert!(ConsentLedger::is_revoked_for(&store, "other-issuer", "cns-1"));
    assert!(!ConsentLedger::is_revoked_for(&store, ISSUER, "cns-1"));
    assert_eq!(ConsentLedger::uses_for(&store, ISSUER, "cns-1"), 2);
    let snapshot = std::fs::read_to_string(dir.path().join(SNAPSHOT_FILE)).expect("snapshot");
    assert!(snapshot.contains(STORE_FORMAT) && snapshot.contains("\"credit-platform/cns-1\""), "{snapshot}");
}

#[test]
fn a_store_written_before_issuers_were_recorded_still_refuses_and_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hash = subject_hash(HASH_KEY, &person());
    // A format-1 snapshot (bare ids) and an old journal line without issuer.
    let snapshot = serde_json::json!({
        "format": LEGACY_STORE_FORMAT,
        "consents": {
            "cns-used": {"subject_hash": hash, "uses": 2, "max_uses": 3, "first_use": "2026-05-02T08:00:00Z",
                         "last_use": "2026-05-03T09:30:00Z"},
            "cns-revoked": {"uses": 0, "revoked": {"at": "2026-05-04T10:00:00Z", "by": "samr"}},
        }
    });
    std::fs::write(dir.path().join(SNAPSHOT_FILE), snapshot.to_string()).expect("snapshot");
    let journal = format!(
        "{{\"op\":\"use\",\"consent_id\":\"cns-journal\",\"subject_hash\":\"{hash}\",\"uses\":1,\"max_uses\":1,\
         \"at\":\"2026-05-05T00:00:00Z\"}}\n"
    );
    std::fs::write(dir.path().join(JOURNAL_FILE), journal).expect("journal");
    let store = open(dir.path());
    // Old revocations and counts apply to the consent of whichever issuer uses the id.
    assert!(matches!(
        store.try_use(ISSUER, "cns-revoked", 3, &person()),
        Err(ConsentError::Refused(ConsentRefusal::Revoked { .. }))
    ));
    assert!(store.is_revoked("any-issuer", "cns-revoked"));
    assert!(matches!(
        store.try_use(ISSUER, "cns-journal", 1, &person()),
        Err(ConsentError::Refused(ConsentRefusal::UsesExhausted { max: 1 }))
    ));
    assert_eq!(store.uses(ISSUER, "cns-used"), 2);
    // The next use adopts the old entry for its issuer, and the count goes on.
    assert_eq!(store.try_use(ISSUER, "cns-used", 3, &person()).expect("third use"), 3);
    let status = store.status(ISSUER, "cns-used").expect("status");
    assert_eq!((status.issuer.as_deref(), status.uses), (Some(ISSUER), 3));
    assert_eq!(store.statuses("cns-used").len(), 1, "adopted, not copied");
    assert_eq!(store.uses("other-issuer", "cns-used"), 0, "adopted entries belong to their issuer");
    drop(store);
    // Rewritten in the current format on open; reopening keeps everything.
    let text = std::fs::read_to_string(dir.path().join(SNAPSHOT_FILE)).expect("snapshot");
    assert!(text.contains(STORE_FORMAT), "{text}");
    let store = open(dir.path());
    assert_eq!(store.uses(ISSUER, "cns-used"), 3);
    assert!(store.is_revoked(ISSUER, "cns-revoked"));
}

#[test]
fn malformed_snapshot_keys_refuse_to_open() {
    for (format, key) in
        [(STORE_FORMAT, "a/b/c"), (STORE_FORMAT, "/cns-1"), (LEGACY_STORE_FORMAT, "credit-platform/cns-1")]
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshot = serde_json::json!({"format": format, "consents": {key: {"uses": 1}}});
        std::fs::write(dir.path().join(SNAPSHOT_FILE), snapshot.to_string()).expect("snapshot");
        let err = ConsentStore::open(dir.path(), HASH_KEY).expect_err("corrupt");
        assert!(matches!(err, ConsentError::StoreCorrupt { .. }), "{format} {key}: {err}");
    }
    // Control: a well-formed current snapshot opens.
    let dir = tempfile::tempdir().expect("tempdir");
    let snapshot = serde_json::json!({"format": STORE_FORMAT, "consents": {"credit-platform/cns-1": {"uses": 1}}});
    std::fs::write(dir.path().join(SNAPSHOT_FILE), snapshot.to_string()).expect("snapshot");
    assert_eq!(open(dir.path()).uses(ISSUER, "cns-1"), 1);
}
