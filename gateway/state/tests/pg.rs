//! The shared state against the machine's PostgreSQL (127.0.0.1:5432), each
//! test in a schema of its own, dropped afterwards: migrations, quotas spent
//! from three replicas at once, the audit chains of three replicas read and
//! verified together, and every kind of tampering with SQL found by
//! replica and sequence number.

use std::sync::Arc;
use std::time::Duration;

use creditgate_audit::{
    AuditQuery, AuditStore, Caller, ColumnAccess, FindingKind, Frontend, NewRecord, Outcome, RecordedQuery,
};
use creditgate_state::{PgAuditLog, PgAuditOptions, PgQuotas, PgSettings, PgState, QuotaSpend, StateError};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A schema of this test, dropped when the value goes.
struct Scratch(String);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Scratch(format!("cg_state_{tag}_{}_{nanos:x}", std::process::id()))
    }

    fn settings(&self, replica: &str) -> PgSettings {
        let mut s = PgSettings::new(URL, replica);
        s.schema = self.0.clone();
        s
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(URL, tokio_postgres::NoTls).await.expect("connect");
                tokio::spawn(conn);
                client.batch_execute(&sql).await.expect("drop schema");
            });
        })
        .join();
    }
}

async fn sql(statement: &str) -> u64 {
    let (client, conn) = tokio_postgres::connect(URL, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client.execute(statement, &[]).await.expect(statement)
}

fn record(i: u64, subject: Option<&str>) -> NewRecord {
    NewRecord {
        request_id: format!("req-{i}"),
        caller: Caller {
            fingerprint: format!("{:064x}", i % 3),
            name: "samr".to_owned(),
            organization: "market regulation".to_owned(),
            role: "agency".to_owned(),
        },
        frontend: Frontend::Http,
        purpose: Some("supervision".to_owned()),
        legal_basis: Some("duty:supervision".to_owned()),
        query: RecordedQuery::Sql(format!("SELECT name FROM market.enterprises LIMIT {i}")),
        datasets: vec!["market.enterprises".to_owned()],
        columns: vec![ColumnAccess {
            dataset: "market.enterprises".to_owned(),
            column: "name".to_owned(),
            mask: "none".to_owned(),
        }],
        subject_hashes: subject.map(str::to_owned).into_iter().collect(),
        row_count: Some(i),
        sources: Vec::new(),
        outcome: Outcome::Allowed,
        refusal_reason: None,
        duration_ms: 1,
    }
}

async fn replica(scratch: &Scratch, name: &str, dir: &std::path::Path) -> (PgState, Arc<PgAuditLog>) {
    let state = PgState::connect(scratch.settings(name)).await.expect("connect");
    let options = PgAuditOptions {
        signing_key_file: dir.join(format!("{name}.key")),
        checkpoint_every_records: 5,
        checkpoint_every: Duration::from_secs(3600),
        retention_days: 1096,
    };
    let log = PgAuditLog::open(state.clone(), options).await.expect("audit log");
    (state, Arc::new(log))
}

/// Appends `n` records on a blocking thread, as the gateway does.
async fn append(log: &Arc<PgAuditLog>, from: u64, n: u64, subject: Option<&'static str>) {
    let log = Arc::clone(log);
    tokio::task::spawn_blocking(move || {
        for i in from..from + n {
            log.append_many(vec![record(i, subject)]).expect("append");
        }
    })
    .await
    .expect("join");
}

async fn verify(state: &PgState) -> creditgate_audit::VerifyReport {
    creditgate_state::verify_database(state).await.expect("verify")
}

const SUBJECT: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_once_and_a_newer_schema_is_refused() {
    let scratch = Scratch::new("migrate");
    // Three replicas starting at once migrate once.
    let starts = ["a", "b", "c"].map(|n| PgState::connect(scratch.settings(n)));
    let [a, b, c] = starts;
    let (a, b, c) = tokio::join!(a, b, c);
    let (_a, _b, _c) = (a.expect("a"), b.expect("b"), c.expect("c"));
    let (client, conn) = tokio_postgres::connect(URL, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    let rows = client.query(&format!("SELECT version FROM {}.schema_version", scratch.0), &[]).await.expect("versions");
    assert_eq!(rows.len(), 1, "version 1 recorded once");
    // The same replica id twice: refused.
    match PgState::connect(scratch.settings("a")).await {
        Err(StateError::ReplicaInUse(id)) => assert_eq!(id, "a"),
        other => panic!("a second replica `a` must be refused: {other:?}"),
    }
    sql(&format!("INSERT INTO {}.schema_version VALUES (7, 'future', now(), 'test')", scratch.0)).await;
    match PgState::connect(scratch.settings("d")).await {
        Err(e @ StateError::SchemaTooNew { found: 7, known: 1, .. }) => {
            assert!(e.to_string().contains("newer than this gateway knows"), "{e}");
        }
        other => panic!("a newer schema must be refused: {other:?}"),
    }
    // Settings problems are reported together, and a password in the URL is refused.
    let mut bad = PgSettings::new("postgres://u:secret@h/db", "no spaces allowed");
    bad.schema = "Bad-Schema".to_owned();
    let problems = bad.problems();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].contains("must not contain a password"), "{problems:?}");
    let mut good = scratch.settings("e");
    good.password = Some("hunter2-secret".to_owned());
    assert!(good.problems().is_empty());
    assert!(!format!("{good:?}").contains("hunter2"), "the password never reaches a log line: {good:?}");
    // Unreachable: a retryable error.
    let mut down = PgSettings::new("postgres://postgres@127.0.0.1:1/test", "x");
    down.connect_timeout = Duration::from_millis(500);
    let err = PgState::connect(down).await.expect_err("nothing listens on port 1");
    assert!(err.is_unavailable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_spent_from_three_replicas_at_once_is_exact() {
    let scratch = Scratch::new("quota");
    let states: Vec<PgState> = {
        let mut v = Vec::new();
        for n in ["a", "b", "c"] {
            v.push(PgState::connect(scratch.settings(n)).await.expect("connect"));
        }
        v
    };
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).expect("day");
    let mut tasks = Vec::new();
    for i in 0..90 {
        let quotas = PgQuotas::new(states[i % 3].clone());
        tasks.push(tokio::spawn(async move { quotas.spend("licence:L-1", day, 1, 40).await }));
    }
    let mut spent = 0;
    for t in tasks {
        if let QuotaSpend::Spent(_) = t.await.expect("join").expect("spend") {
            spent += 1;
        }
    }
    assert_eq!(spent, 40);
    let quotas = PgQuotas::new(states[0].clone());
    assert_eq!(quotas.used("licence:L-1", day).await.expect("used"), 40);
    // A batch is all or nothing; another key and another day are their own.
    assert_eq!(quotas.spend("licence:L-2", day, 5, 4).await.expect("spend"), QuotaSpend::Exceeded(0));
    assert_eq!(quotas.spend("licence:L-2", day, 4, 4).await.expect("spend"), QuotaSpend::Spent(4));
    assert_eq!(
        quotas.spend("licence:L-1", day.succ_opt().expect("next"), 3, 40).await.expect("s"),
        QuotaSpend::Spent(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_chains_are_read_together_and_every_kind_of_tampering_is_found() {
    let scratch = Scratch::new("audit");
    let dir = tempfile::tempdir().expect("tempdir");
    let (sa, a) = replica(&scratch, "gw-a", dir.path()).await;
    let (_sb, b) = replica(&scratch, "gw-b", dir.path()).await;
    let (_sc, c) = replica(&scratch, "gw-c", dir.path()).await;
    tokio::join!(append(&a, 0, 12, None), append(&b, 100, 12, Some(SUBJECT)), append(&c, 200, 12, Some(SUBJECT)));
    // Group commit: many appends at once share transactions.
    let log = Arc::clone(&a);
    let many = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let log = &log;
                s.spawn(move || {
                    for i in 0..10 {
                        log.append_many(vec![record(1000 + t * 100 + i, None)]).expect("append");
                    }
                });
            }
        })
    });
    many.await.expect("join");

    // Reads span every replica, newest first.
    let page = a.search(&AuditQuery { limit: 500, ..Default::default() }).expect("search");
    assert_eq!(page.total, 12 + 80 + 12 + 12);
    assert!(page.items.windows(2).all(|w| w[0].time >= w[1].time), "newest first");
    let report = a.subject_report(SUBJECT).expect("report");
    assert_eq!(report.len(), 24, "the subject's accesses through gw-b and gw-c, read on gw-a");
    assert!(report.iter().all(|e| matches!(e.replica.as_deref(), Some("gw-b" | "gw-c"))));

    let ok = verify(&sa).await;
    assert!(ok.is_ok(), "{}", ok.message());
    assert_eq!(ok.replicas, 3);
    assert!(ok.checkpoints_verified >= 3, "{}", ok.message());

    let t = &scratch.0;
    let cases: Vec<(String, FindingKind, &str, u64)> = vec![
        (
            format!(
                "UPDATE {t}.audit_records SET line = replace(line, '\"row_count\":104', '\"row_count\":5') WHERE replica = 'gw-b' AND seq = 5"
            ),
            FindingKind::RecordModified,
            "gw-b",
            5,
        ),
        (
            format!("UPDATE {t}.audit_records SET subject_hashes = '{{}}' WHERE replica = 'gw-c' AND seq = 3"),
            FindingKind::RecordModified,
            "gw-c",
            3,
        ),
        (
            format!("DELETE FROM {t}.audit_records WHERE replica = 'gw-a' AND seq = 7"),
            FindingKind::MissingRecords,
            "gw-a",
            8,
        ),
        (
            format!(
                "UPDATE {t}.audit_records r SET line = o.line FROM {t}.audit_records o \
                 WHERE r.replica = 'gw-c' AND o.replica = 'gw-c' AND ((r.seq = 9 AND o.seq = 10) OR (r.seq = 10 AND o.seq = 9))"
            ),
            FindingKind::ReorderedRecords,
            "gw-c",
            9,
        ),
        (
            format!(
                "INSERT INTO {t}.audit_records SELECT 'gw-b', 1000, time, request_id, caller_fingerprint, subject_hashes, line \
                 FROM {t}.audit_records WHERE replica = 'gw-b' AND seq = 2"
            ),
            FindingKind::MissingRecords,
            "gw-b",
            1000,
        ),
    ];
    for (statement, kind, replica, seq) in cases {
        assert_eq!(sql(&statement).await, if statement.contains("r SET line") { 2 } else { 1 }, "{statement}");
        let report = verify(&sa).await;
        let found = report
            .findings
            .iter()
            .any(|f| f.kind == kind && f.replica.as_deref() == Some(replica) && f.seq == Some(seq));
        assert!(found, "{statement}\nexpected {kind:?} in {replica} at {seq}:\n{}", report.message());
        assert!(report.message().contains(&format!("replica {replica}")), "{}", report.message());
    }

    // A deleted tail that a signed checkpoint covers is a truncated tail.
    sql(&format!("DELETE FROM {t}.audit_records WHERE replica = 'gw-a' AND seq > 80")).await;
    let report = verify(&sa).await;
    assert!(
        report.findings.iter().any(|f| f.kind == FindingKind::TruncatedTail && f.replica.as_deref() == Some("gw-a")),
        "{}",
        report.message()
    );
    // A forged checkpoint is found.
    sql(&format!("UPDATE {t}.audit_checkpoints SET line = replace(line, '\"head_seq\":5', '\"head_seq\":6') WHERE replica = 'gw-b'")).await;
    let report = verify(&sa).await;
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::BadCheckpointSignature && f.replica.as_deref() == Some("gw-b")),
        "{}",
        report.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_head_and_anchors_the_new_start() {
    let scratch = Scratch::new("prune");
    let dir = tempfile::tempdir().expect("tempdir");
    let (state, a) = replica(&scratch, "gw-a", dir.path()).await;
    let (_sb, b) = replica(&scratch, "gw-b", dir.path()).await;
    append(&a, 0, 9, None).await;
    append(&b, 100, 4, None).await;
    // Three and a half years on, everything but gw-a's head is past retention.
    let later = chrono::Utc::now() + chrono::Duration::days(1300);
    let log = Arc::clone(&a);
    let pruned = tokio::task::spawn_blocking(move || log.prune(later)).await.expect("join").expect("prune");
    assert_eq!(pruned.removed_records, 8, "gw-a's records but its head");
    assert_eq!(pruned.first_seq, Some(9));
    let report = verify(&state).await;
    assert!(report.is_ok(), "the pruned chain still verifies from its signed anchor: {}", report.message());
    let page = a.search(&AuditQuery { limit: 100, ..Default::default() }).expect("search");
    assert_eq!(page.total, 1 + 4, "gw-b prunes its own chain only");
    // Negative control: without the anchor checkpoint the start is unexplained.
    sql(&format!("DELETE FROM {}.audit_checkpoints WHERE line LIKE '%\"anchor\":{{%'", scratch.0)).await;
    let report = verify(&state).await;
    assert!(
        report.findings.iter().any(|f| f.kind == FindingKind::MissingRecords && f.replica.as_deref() == Some("gw-a")),
        "{}",
        report.message()
    );
    // Appending goes on after the head.
    append(&a, 50, 2, None).await;
    let page = a.search(&AuditQuery { limit: 100, ..Default::default() }).expect("search");
    assert_eq!(page.items.iter().filter(|r| r.replica.as_deref() == Some("gw-a")).map(|r| r.seq).max(), Some(11));
}
