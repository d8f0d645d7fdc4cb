//! Three gateway replicas — separate `creditgate gateway` processes — on one
//! PostgreSQL state (the machine's server, a schema of this run, dropped
//! afterwards): a revocation on one replica holds on the others, a one-use
//! consent presented to all three at once is used once, a daily quota is
//! exact across them, the officer on one replica sees accesses made through
//! the others, `audit verify --postgres` passes and then names the replica
//! and sequence number of a record changed with SQL; a replica killed with
//! `kill -9` mid-burst loses no released record; with PostgreSQL cut off
//! every data request is refused as retryable and served again once it is
//! back.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use creditgate_consent::SubjectRef;
use creditgate_ident::SubjectKind;
use creditgate_tooling::client::{ClientIdentity, HttpResponse, http_request};
use creditgate_tooling::demo::{DEMO_POLICY, Lab, LabOptions, SERVER_NAME};

const PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

/// Runs a scenario with a bound, so a stuck call fails its test instead of
/// the CI run (its replica processes are killed when it is dropped).
async fn bounded(scenario: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(300), scenario).await.expect("the scenario finished within 5 minutes");
}

async fn pg() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(PG, tokio_postgres::NoTls).await.expect("PostgreSQL on 5432");
    tokio::spawn(connection);
    client
}

/// A schema no other run uses; dropped when this goes out of scope.
struct Scratch(String);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Scratch(format!("cg_{tag}_{}_{nanos:x}", std::process::id()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let name = self.0.clone();
        let outcome = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                pg().await
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(outcome, Ok(Ok(()))) {
            eprintln!("cannot drop the scratch schema: {outcome:?}");
        }
    }
}

/// One replica process.
struct Replica {
    name: String,
    child: std::sync::Mutex<Child>,
    http: String,
}

impl Replica {
    /// Starts `creditgate gateway` on a copy of the lab's config with the
    /// shared state in `schema` reached at `url` (the lab's deployment
    /// secret, so subject hashes and pseudonyms agree; its own state
    /// directory and checkpoint key).
    fn start(lab: &Lab, dir: &Path, name: &str, url: &str, schema: &str) -> Replica {
        let mut config = lab.gateway_config.clone();
        config.state.secret_file = Some(lab.gateway_config.state.secret_path());
        config.state.dir = dir.join(format!("state-{name}"));
        config.state.backend = creditgate_engine::config::StateBackend::Postgres;
        config.state.url = Some(url.to_string());
        config.state.schema = Some(schema.to_string());
        config.state.replica_id = Some(name.to_string());
        config.server.public_listen = None;
        let path = dir.join(format!("gateway-{name}.toml"));
        std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_creditgate"))
            .args(["gateway", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gateway");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut http = None;
        for line in lines.by_ref() {
            let line = line.expect("line");
            if let Some(addr) = line.strip_prefix("http:") {
                http = Some(addr.trim().to_string());
                break;
            }
        }
        // Keep reading, so the replica never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Replica {
            name: name.to_string(),
            child: std::sync::Mutex::new(child),
            http: http.unwrap_or_else(|| panic!("replica {name} did not start")),
        }
    }

    async fn request(&self, lab: &Lab, caller: &str, method: &str, path: &str, body: Option<String>) -> HttpResponse {
        let c = lab.caller(caller).expect("caller");
        let who = ClientIdentity { ca: &lab.ca_file, cert: Some((&c.cert, &c.key)) };
        let purpose = c.purposes.first().cloned().unwrap_or_default();
        http_request(&self.http, SERVER_NAME, &who, method, path, &[("x-creditgate-purpose", &purpose)], body)
            .await
            .unwrap_or_else(|e| HttpResponse {
                status: 0,
                content_type: None,
                request_id: None,
                body: e.into_bytes().into(),
                headers: Vec::new(),
            })
    }
}

impl Replica {
    /// `kill -9`.
    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn json(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null)
}

/// `creditgate audit verify --postgres` on `schema`: exit code and output.
fn verify(schema: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["audit", "verify", "--postgres", "postgres://postgres@127.0.0.1:5432/test", "--schema", schema])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run audit verify");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The demo policy's line for platform_a's limits.
const PLATFORM_A_LIMITS: &str =
    "purposes = [\"merchant_onboarding\"]\nrate_limit = { per_second = 20, burst = 40 }\ndaily_quota = 50000";
const QUOTA: usize = 24;
/// What the consents in these tests cover.
const CONSENTED: [&str; 2] = ["court.dishonest_debtors", "credit_platform.black_list"];

fn enterprise_lookup(lab: &Lab) -> String {
    serde_json::json!({
        "subject": {"type": "credit_code", "id": lab.manifest.featured.enterprise_credit_code},
        "purpose": "merchant_onboarding",
    })
    .to_string()
}

fn person_lookup(lab: &Lab, consent: serde_json::Value) -> String {
    serde_json::json!({
        "subject": {"type": "resident_id", "id": lab.manifest.featured.individual_resident_id},
        "purpose": "credit_report",
        "datasets": CONSENTED,
        "consent": consent,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_consents_quotas_and_one_audit() {
    bounded(three_replicas_share_consents_quotas_and_one_audit_scenario()).await;
}

async fn three_replicas_share_consents_quotas_and_one_audit_scenario() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = DEMO_POLICY.replacen(
        PLATFORM_A_LIMITS,
        &format!("purposes = [\"merchant_onboarding\"]\nrate_limit = {{ per_second = 20, burst = 40 }}\ndaily_quota = {QUOTA}"),
        1,
    );
    assert_ne!(policy, DEMO_POLICY, "the demo policy still has platform_a's limits line");
    let mut options = LabOptions::new(tmp.path());
    options.policy = Some(policy);
    let lab = Lab::start(options).await.expect("lab");
    let schema = Scratch::new("replicas");
    let replicas: Vec<Arc<Replica>> = ["gw-a", "gw-b", "gw-c"]
        .iter()
        .map(|n| Arc::new(Replica::start(&lab, tmp.path(), n, URL, &schema.0)))
        .collect();
    let lab = Arc::new(lab);

    // A daily quota of QUOTA under concurrent load spread over the replicas.
    let mut tasks = Vec::new();
    for i in 0..(QUOTA * 2 + 6) {
        let (lab, replica) = (Arc::clone(&lab), Arc::clone(&replicas[i % 3]));
        tasks.push(tokio::spawn(async move {
            replica.request(&lab, "platform_a", "POST", "/v1/lookup", Some(enterprise_lookup(&lab))).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(served, QUOTA, "exactly the quota is served across replicas: {statuses:?}");
    assert_eq!(served + limited, statuses.len(), "every other request is over the quota: {statuses:?}");

    // A one-use consent presented to A, B and C at once: one success.
    let subject =
        SubjectRef::parse(SubjectKind::ResidentId, &lab.manifest.featured.individual_resident_id).expect("subject");
    let once = lab.consent(subject.clone(), "credit-agency", &["credit_report"], &CONSENTED, 1).expect("consent");
    let mut tasks = Vec::new();
    for i in 0..9 {
        let (lab, replica, body) = (Arc::clone(&lab), Arc::clone(&replicas[i % 3]), person_lookup(&lab, once.clone()));
        tasks.push(tokio::spawn(async move {
            let r = replica.request(&lab, "credit_agency", "POST", "/v1/lookup", Some(body)).await;
            (r.status, json(&r))
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 1, "a one-use consent is used exactly once across replicas: {outcomes:?}");
    for (status, doc) in outcomes.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 403, "{doc}");
        assert_eq!(doc["error"]["code"], "CG-CON-001", "{doc}");
        assert!(
            doc["error"]["message"].as_str().unwrap_or("").contains("consent.uses_exhausted"),
            "refused because it is used up: {doc}"
        );
    }

    // Revoked on B (by the oversight agency), used on C: refused; used on A before: allowed.
    let many = lab.consent(subject, "credit-agency", &["credit_report"], &CONSENTED, 10).expect("consent");
    let cid = many["consent_id"].as_str().expect("consent id").to_string();
    let first =
        replicas[0].request(&lab, "credit_agency", "POST", "/v1/lookup", Some(person_lookup(&lab, many.clone()))).await;
    assert_eq!(first.status, 200, "{}", json(&first));
    let revoked =
        replicas[1].request(&lab, "samr", "POST", &format!("/v1/consents/{cid}/revoke"), Some("{}".into())).await;
    assert_eq!(revoked.status, 200, "the oversight agency revokes on B: {}", json(&revoked));
    assert_eq!(json(&revoked)["newly_revoked"], true);
    let after = replicas[2].request(&lab, "credit_agency", "POST", "/v1/lookup", Some(person_lookup(&lab, many))).await;
    assert_eq!(after.status, 403, "{}", json(&after));
    assert!(json(&after)["error"]["message"].as_str().unwrap_or("").contains("consent.revoked"), "{}", json(&after));
    // The status on A shows the revocation made on B and the use made on A.
    let status = replicas[0].request(&lab, "credit_agency", "GET", &format!("/v1/consents/{cid}"), None).await;
    assert_eq!(status.status, 200, "{}", json(&status));
    assert!(json(&status).to_string().contains("\"revoked\":true"), "{}", json(&status));

    // The officer on C sees the accesses to the person made through A and B.
    let person = &lab.manifest.featured.individual_resident_id;
    let report = replicas[2]
        .request(&lab, "privacy_officer", "GET", &format!("/v1/audit/subjects/{person}/report?limit=500"), None)
        .await;
    assert_eq!(report.status, 200, "{}", json(&report));
    let doc = json(&report);
    let seen: std::collections::BTreeSet<String> = doc["accesses"]
        .as_array()
        .expect("accesses")
        .iter()
        .filter_map(|a| a["replica"].as_str().map(str::to_string))
        .collect();
    for name in ["gw-a", "gw-b", "gw-c"] {
        assert!(seen.contains(name), "the report on gw-c lists accesses through {name}: {seen:?}");
    }
    // Paging across replicas: the next page starts after the cursor.
    let page1 = json(
        &replicas[2]
            .request(
                &lab,
                "privacy_officer",
                "GET",
                &format!("/v1/audit/subjects/{person}/report?limit=3&own_reads=exclude"),
                None,
            )
            .await,
    );
    let cursor = page1["next_cursor"].as_str().expect("a next page").to_string();
    assert!(cursor.contains('@'), "a shared log's cursor names the replica: {cursor}");
    let page2 = json(
        &replicas[2]
            .request(
                &lab,
                "privacy_officer",
                "GET",
                &format!("/v1/audit/subjects/{person}/report?limit=3&own_reads=exclude&cursor={cursor}"),
                None,
            )
            .await,
    );
    // (The officer's own reads, which each page adds, are left out.)
    let all: Vec<&serde_json::Value> =
        doc["accesses"].as_array().expect("accesses").iter().filter(|a| a["own_read"] != true).collect();
    let paged: Vec<&serde_json::Value> = page1["accesses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(page2["accesses"].as_array().into_iter().flatten())
        .collect();
    let key = |a: &serde_json::Value| (a["replica"].clone(), a["seq"].clone());
    assert_eq!(
        paged.iter().map(|a| key(a)).collect::<Vec<_>>(),
        all.iter().take(paged.len()).map(|a| key(a)).collect::<Vec<_>>(),
        "two pages are the report's first entries, in order"
    );

    // Every chain verifies (the replicas keep running: verification reads
    // committed records); a record changed with SQL is found by replica and seq.
    let (code, text) = verify(&schema.0);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 replica chain(s)"), "{text}");
    let client = pg().await;
    let row = client
        .query_one(
            &format!(
                "SELECT seq FROM {}.audit_records WHERE replica = 'gw-b' AND line LIKE '%\"outcome\":\"allowed\"%' \
                 ORDER BY seq LIMIT 1 OFFSET 2",
                schema.0
            ),
            &[],
        )
        .await
        .expect("an allowed request's record on gw-b");
    let seq: i64 = row.get(0);
    client
        .execute(
            &format!(
                "UPDATE {}.audit_records SET line = replace(line, '\"outcome\":\"allowed\"', '\"outcome\":\"refused\"') \
                 WHERE replica = 'gw-b' AND seq = $1",
                schema.0
            ),
            &[&seq],
        )
        .await
        .expect("tamper");
    let (code, text) = verify(&schema.0);
    assert_eq!(code, 11, "a changed record is 'record modified': {text}");
    assert!(text.contains("replica gw-b") && text.contains(&format!("seq {seq}")), "{text}");
    // A deleted record is found too.
    client
        .execute(&format!("DELETE FROM {}.audit_records WHERE replica = 'gw-c' AND seq = 2", schema.0), &[])
        .await
        .expect("delete");
    let (_, text) = verify(&schema.0);
    assert!(text.contains("records deleted in replica gw-c"), "{text}");
    drop(replicas);
}

/// A TCP relay to PostgreSQL that the test can cut (every connection
/// closed, new ones refused) and restore: PostgreSQL "stopped" for the
/// replicas that reach it through the relay only.
struct Relay {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("addr");
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // dropped at once: connection refused, in effect
                }
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:5432").await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Relay { addr, up }
    }

    fn set(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_no_released_record_and_an_outage_is_refused_then_served() {
    bounded(a_killed_replica_loses_no_released_record_and_an_outage_is_refused_then_served_scenario()).await;
}

async fn a_killed_replica_loses_no_released_record_and_an_outage_is_refused_then_served_scenario() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Arc::new(Lab::start(LabOptions::new(tmp.path())).await.expect("lab"));
    let schema = Scratch::new("replicas_kill");
    let relay = Relay::start().await;
    let url = format!("postgres://postgres@{}/test", relay.addr);
    let replicas: Vec<Arc<Replica>> = ["gw-a", "gw-b", "gw-c"]
        .iter()
        .map(|n| Arc::new(Replica::start(&lab, tmp.path(), n, &url, &schema.0)))
        .collect();

    // A burst over the three; gw-b is killed with kill -9 in the middle.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Option<String>)>();
    for i in 0..90u32 {
        let (tx, lab, replica) = (tx.clone(), Arc::clone(&lab), Arc::clone(&replicas[i as usize % 3]));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(u64::from(i) * 15)).await;
            let body = serde_json::json!({"sql": format!("SELECT name FROM market.enterprises LIMIT {}", i + 1)});
            let r = replica.request(&lab, "samr", "POST", "/v1/query", Some(body.to_string())).await;
            let id = (r.status == 200).then_some(r.request_id).flatten();
            let _ = tx.send((replica.name.clone(), id));
        });
    }
    drop(tx);
    let mut released: Vec<(String, String)> = Vec::new();
    let mut answered = 0;
    while answered < 30 {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some((name, id))) => {
                answered += 1;
                released.extend(id.map(|id| (name, id)));
            }
            _ => break,
        }
    }
    replicas[1].kill();
    while let Some((name, id)) = rx.recv().await {
        released.extend(id.map(|id| (name, id)));
    }
    let survivors: Vec<&(String, String)> = released.iter().filter(|(n, _)| n != "gw-b").collect();
    assert!(survivors.len() >= 50, "gw-a and gw-c kept serving: {} released", survivors.len());
    let client = pg().await;
    let ids: std::collections::HashSet<String> = client
        .query(&format!("SELECT request_id FROM {}.audit_records", schema.0), &[])
        .await
        .expect("records")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (name, id) in &released {
        assert!(ids.contains(id), "request {id} answered by {name} has no audit record in PostgreSQL");
    }
    let (code, text) = verify(&schema.0);
    assert_eq!(code, 0, "{text}");

    // PostgreSQL cut off: refusals that say so and may be retried.
    relay.set(false);
    let r = replicas[0]
        .request(
            &lab,
            "samr",
            "POST",
            "/v1/query",
            Some(r#"{"sql":"SELECT name FROM market.enterprises LIMIT 1"}"#.into()),
        )
        .await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    let doc = json(&r);
    assert_eq!(doc["error"]["code"], "CG-STATE-001", "{doc}");
    assert_eq!(doc["error"]["retryable"], true, "{doc}");
    assert!(r.headers.iter().any(|(k, v)| k == "retry-after" && v == "2"), "{:?}", r.headers);
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("PostgreSQL"), "{doc}");
    let lookup = replicas[2].request(&lab, "platform_a", "POST", "/v1/lookup", Some(enterprise_lookup(&lab))).await;
    assert_eq!(lookup.status, 503, "{}", String::from_utf8_lossy(&lookup.body));

    // Back: served again within a few seconds.
    relay.set(true);
    let mut back = None;
    for _ in 0..40 {
        let r = replicas[0]
            .request(
                &lab,
                "samr",
                "POST",
                "/v1/query",
                Some(r#"{"sql":"SELECT name FROM market.enterprises LIMIT 1"}"#.into()),
            )
            .await;
        if r.status == 200 {
            back = r.request_id;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let back = back.expect("served again once PostgreSQL is back");
    // Once: the release record, not counting the stream-end record that
    // completes it (appended after the stream, so it may or may not be
    // there yet).
    let lines: Vec<String> = client
        .query(&format!("SELECT line FROM {}.audit_records WHERE request_id = $1", schema.0), &[&back])
        .await
        .expect("records")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let releases = lines
        .iter()
        .filter(|line| !creditgate_audit::AuditRecord::from_line(line.as_bytes()).expect("record").is_stream_end())
        .count();
    assert_eq!(releases, 1, "the request served after the outage is recorded once: {lines:?}");
    let (code, text) = verify(&schema.0);
    assert_eq!(code, 0, "the chains still verify after the outage: {text}");
    drop(replicas);
}

/// A second gateway with a replica id already running is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_id_in_use_and_a_newer_schema_are_refused_at_start() {
    bounded(a_replica_id_in_use_and_a_newer_schema_are_refused_at_start_scenario()).await;
}

async fn a_replica_id_in_use_and_a_newer_schema_are_refused_at_start_scenario() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions::new(tmp.path())).await.expect("lab");
    let schema = Scratch::new("replicas_start");
    let first = Replica::start(&lab, tmp.path(), "gw-a", URL, &schema.0);
    let mut config = lab.gateway_config.clone();
    config.state.secret_file = Some(lab.gateway_config.state.secret_path());
    config.state.dir = tmp.path().join("state-dup");
    config.state.backend = creditgate_engine::config::StateBackend::Postgres;
    config.state.url = Some(URL.to_string());
    config.state.schema = Some(schema.0.clone());
    config.state.replica_id = Some("gw-a".to_string());
    config.server.public_listen = None;
    let path: PathBuf = tmp.path().join("dup.toml");
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["gateway", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second gw-a must not start");
    assert!(stderr.contains("replica id `gw-a` is in use"), "{stderr}");
    drop(first);

    // A database migrated by a newer gateway is refused, naming both versions.
    pg().await
        .execute(
            &format!(
                "INSERT INTO {}.schema_version (version, description, applied_by) VALUES (99, 'future', 'test')",
                schema.0
            ),
            &[],
        )
        .await
        .expect("insert version");
    config.state.replica_id = Some("gw-z".to_string());
    std::fs::write(&path, toml::to_string(&config).expect("toml")).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["gateway", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("version 99") && stderr.contains("up to 1"), "{stderr}");
}
