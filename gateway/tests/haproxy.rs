//! HAProxy in TCP passthrough mode in front of three gateway replicas —
//! separate `creditgate gateway` processes on one PostgreSQL state (a
//! schema of this run, dropped afterwards), started with the same code as
//! `creditgate demo --serve --replicas N` (`creditgate_tooling::replicas`):
//! for several callers, the same SQL through HAProxy and straight to each
//! replica gives cell-by-cell the same answer, over Flight SQL and over
//! HTTP, masked columns and keyed-hash pseudonyms included; the audit record
//! of a request made through HAProxy names the caller's own certificate
//! (identity survives the balancer), and the requests spread over the
//! replicas. Negative controls: masks differ per identity through the
//! balancer too, and a client without a certificate or with an unknown one
//! is refused through it.
//!
//! Without `haproxy` installed the test prints a notice and passes; with
//! `CI` set it fails, saying to run `scripts/haproxy.sh`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use creditgate_tooling::client::{ClientIdentity, FlightClient, HttpResponse, flight_error_text, http_request};
use creditgate_tooling::demo::{Lab, LabOptions, SERVER_NAME};
use creditgate_tooling::replicas::{Deployment, DeploymentOptions, SharedState, cells, find_haproxy};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const PG: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

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

/// `CI` set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The `haproxy` binary; `None` (after a notice) when it is missing outside CI.
fn haproxy_or_skip() -> Option<PathBuf> {
    match find_haproxy() {
        Ok(path) => Some(path),
        Err(e) if in_ci() => panic!("{e}. With CI set this test needs HAProxy: run scripts/haproxy.sh first"),
        Err(e) => {
            eprintln!("NOTICE: the HAProxy test did not run: {e} (scripts/haproxy.sh installs it)");
            None
        }
    }
}

/// One query a caller makes: over Flight SQL with its first purpose, over
/// HTTP with the same purpose.
struct Case {
    caller: &'static str,
    sql: &'static str,
}

/// Queries whose answers have masked columns, keyed-hash pseudonyms and
/// columns in clear, for an agency, a credit agency and a platform.
const CASES: &[Case] = &[
    // phone: mobile_prefix
    Case {
        caller: "samr",
        sql: "SELECT credit_code, name, legal_rep_name, phone FROM market.enterprises ORDER BY credit_code LIMIT 25",
    },
    // complainant_name hidden, complainant_id the agency's pseudonym (keyed hash), mobile prefix
    Case {
        caller: "samr",
        sql: "SELECT complaint_id, complainant_name, complainant_id, complainant_mobile FROM complaints.complaints \
              ORDER BY complaint_id LIMIT 25",
    },
    // owner_mobile: mobile_prefix; hired_date year only
    Case {
        caller: "samr",
        sql: "SELECT shop_id, owner_name, owner_mobile FROM platform_a.shops ORDER BY shop_id LIMIT 25",
    },
    Case {
        caller: "samr",
        sql: "SELECT staff_id, name, mobile, hired_date FROM courier.staff ORDER BY staff_id LIMIT 25",
    },
    // legal_rep_name hidden, legal_rep_id withheld (null), phone prefix
    Case {
        caller: "credit_agency",
        sql: "SELECT credit_code, legal_rep_name, legal_rep_id, phone FROM market.enterprises ORDER BY credit_code LIMIT 25",
    },
    // owner columns in clear for the platform itself
    Case {
        caller: "platform_a",
        sql: "SELECT shop_id, owner_name, owner_mobile FROM platform_a.shops ORDER BY shop_id LIMIT 25",
    },
    // the listed person's name hidden, the resident ID the platform's own pseudonym
    Case {
        caller: "platform_a",
        sql: "SELECT entry_id, name, resident_id FROM credit_platform.black_list ORDER BY entry_id LIMIT 25",
    },
];

type Cells = (Vec<String>, Vec<Vec<String>>);

async fn flight(lab: &Lab, addr: std::net::SocketAddr, case: &Case) -> Cells {
    let mut client = lab.flight_client_at(addr, case.caller).expect("flight client");
    let batches = client.query(case.sql).await.unwrap_or_else(|e| {
        panic!("{} over Flight SQL at {addr}: {}: {}", case.caller, flight_error_text(&e), case.sql)
    });
    cells(&batches)
}

async fn http(lab: &Lab, addr: std::net::SocketAddr, case: &Case) -> (serde_json::Value, HttpResponse) {
    let body = serde_json::json!({ "sql": case.sql }).to_string();
    let response = lab
        .http_at(addr, case.caller, "POST", "/v1/query", &[("accept", "application/json")], Some(body))
        .await
        .unwrap_or_else(|e| panic!("{} over HTTP at {addr}: {e}", case.caller));
    let doc: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
    assert_eq!(response.status, 200, "{} over HTTP at {addr}: {doc}: {}", case.caller, case.sql);
    (serde_json::json!({ "columns": doc["columns"], "rows": doc["rows"] }), response)
}

/// The certificate identity of a demo caller, from its certificate file.
fn identity(lab: &Lab, caller: &str) -> creditgate_certs::identity::Identity {
    let c = lab.caller(caller).expect("caller");
    let chain = creditgate_certs::load::certs_from_pem_file(&c.cert).expect("certificate");
    creditgate_certs::identity::Identity::from_der(chain.first().expect("a certificate").as_ref()).expect("identity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_in_front_of_three_replicas_changes_nothing_a_caller_sees() {
    let Some(haproxy) = haproxy_or_skip() else { return };
    // A bound, so a stuck call fails the test instead of the CI run (the
    // replicas and HAProxy are killed when the scenario is dropped).
    tokio::time::timeout(Duration::from_secs(240), through_haproxy_scenario(haproxy))
        .await
        .expect("the HAProxy scenario finished within 4 minutes");
}

async fn through_haproxy_scenario(haproxy: PathBuf) {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions::new(tmp.path())).await.expect("lab");
    let schema = Scratch::new("haproxy");
    let mut state = SharedState::new(URL, schema.0.clone());
    state.pool_size = Some(4);
    let options = DeploymentOptions {
        exe: PathBuf::from(env!("CARGO_BIN_EXE_creditgate")),
        haproxy,
        replicas: 3,
        state,
        dir: tmp.path().join("replicas"),
        haproxy_config: tmp.path().join("haproxy.cfg"),
        logs: Some(tmp.path().join("logs")),
        public_on_first: true,
        rust_log: Some("warn".to_string()),
    };
    let deployment = Deployment::start(&lab.gateway_config, &options).await.expect("three replicas and HAProxy");
    let config = std::fs::read_to_string(&options.haproxy_config).expect("haproxy.cfg");
    assert!(config.contains("mode tcp") && config.contains("balance roundrobin"), "{config}");
    let front = (deployment.haproxy.flight_addr, deployment.haproxy.http_addr);
    assert!(front.0.ip().is_loopback() && front.1.ip().is_loopback(), "HAProxy binds loopback only: {front:?}");
    assert!(deployment.replicas[0].public_addr.is_some() && deployment.replicas[1].public_addr.is_none());

    // A ticket from one replica is redeemed on another (the ticket key comes
    // from the shared deployment secret), by its caller only.
    {
        let case = &CASES[0];
        let mut a = lab.flight_client_at(deployment.replicas[0].flight_addr, case.caller).expect("client");
        let info = a.inner_mut().execute(case.sql.to_string(), None).await.expect("GetFlightInfo on gw-1");
        let ticket = info.endpoint[0].ticket.clone().expect("ticket");
        let mut b = lab.flight_client_at(deployment.replicas[1].flight_addr, case.caller).expect("client");
        let stream = b.inner_mut().do_get(ticket.clone()).await.expect("DoGet on gw-2");
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.expect("stream");
        assert_eq!(cells(&batches), flight(&lab, deployment.replicas[0].flight_addr, case).await);
        let other = if case.caller == "samr" { "platform_a" } else { "samr" };
        let mut c = lab.flight_client_at(deployment.replicas[2].flight_addr, other).expect("client");
        let refused = match c.inner_mut().do_get(ticket).await {
            Ok(stream) => futures::TryStreamExt::try_collect::<Vec<_>>(stream).await.err(),
            Err(e) => Some(e),
        };
        let refused = refused.expect("another caller cannot redeem the ticket");
        assert!(flight_error_text(&refused).contains("CG-PREP-003"), "{}", flight_error_text(&refused));
    }

    // The same answer through HAProxy (as often as there are replicas, so
    // round robin reaches each) and straight from every replica.
    let mut through_haproxy: Vec<(String, &'static str)> = Vec::new();
    for case in CASES {
        let direct = flight(&lab, deployment.replicas[0].flight_addr, case).await;
        assert!(!direct.1.is_empty(), "{} sees rows of {}", case.caller, case.sql);
        for replica in &deployment.replicas[1..] {
            assert_eq!(
                flight(&lab, replica.flight_addr, case).await,
                direct,
                "{} on {}: {}",
                case.caller,
                replica.id,
                case.sql
            );
        }
        for _ in 0..deployment.replicas.len() {
            assert_eq!(
                flight(&lab, front.0, case).await,
                direct,
                "{} through HAProxy (Flight SQL): {}",
                case.caller,
                case.sql
            );
        }
        let (direct, _) = http(&lab, deployment.replicas[0].http_addr, case).await;
        assert!(direct["rows"].as_array().is_some_and(|rows| !rows.is_empty()), "{direct}");
        for replica in &deployment.replicas[1..] {
            assert_eq!(
                http(&lab, replica.http_addr, case).await.0,
                direct,
                "{} on {}: {}",
                case.caller,
                replica.id,
                case.sql
            );
        }
        for _ in 0..deployment.replicas.len() {
            let (answer, response) = http(&lab, front.1, case).await;
            assert_eq!(answer, direct, "{} through HAProxy (HTTP): {}", case.caller, case.sql);
            let id = response.request_id.expect("x-request-id");
            through_haproxy.push((id, case.caller));
        }
    }

    // The masks are per identity through the balancer too: market regulation
    // reads Platform A's shop owners' mobiles as a carrier prefix, the
    // platform reads its own in clear.
    let shops = |caller| CASES.iter().find(|c| c.caller == caller && c.sql.contains("platform_a.shops")).expect("case");
    let samr = flight(&lab, front.0, shops("samr")).await;
    let platform = flight(&lab, front.0, shops("platform_a")).await;
    assert_eq!(samr.1.len(), platform.1.len());
    let mobile = 2;
    assert!(
        samr.1.iter().zip(&platform.1).all(|(s, p)| s[0] == p[0] && p[mobile].len() == 11 && s[mobile] != p[mobile]),
        "the agency's mobiles are masked, the platform's are not: {:?} vs {:?}",
        &samr.1[..3],
        &platform.1[..3]
    );

    // Every request made through HAProxy is recorded with the caller's own
    // certificate identity, and they went to every replica.
    let client = pg().await;
    let mut replicas_seen = std::collections::BTreeSet::new();
    for (request_id, caller) in &through_haproxy {
        let rows = client
            .query(
                &format!(
                    "SELECT replica, caller_fingerprint, line FROM {}.audit_records WHERE request_id = $1",
                    schema.0
                ),
                &[request_id],
            )
            .await
            .expect("audit records");
        assert!(!rows.is_empty(), "no audit record for request {request_id} of {caller} made through HAProxy");
        let expected = identity(&lab, caller);
        for row in rows {
            let (replica, fingerprint, line): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            let record: serde_json::Value = serde_json::from_str(&line).expect("an audit line is JSON");
            assert_eq!(fingerprint, expected.fingerprint, "request {request_id} of {caller}: {record}");
            assert_eq!(record["caller"]["fingerprint"], expected.fingerprint.as_str(), "{record}");
            // The policy principal the certificate maps to (the demo names them alike).
            assert_eq!(record["caller"]["name"], *caller, "{record}");
            assert_eq!(record["frontend"], "http", "{record}");
            replicas_seen.insert(replica);
        }
    }
    let ids: std::collections::BTreeSet<String> = deployment.replicas.iter().map(|r| r.id.clone()).collect();
    assert_eq!(replicas_seen, ids, "round robin spread the requests made through HAProxy over every replica");

    // Refused through HAProxy: no client certificate (over HTTP and Flight
    // SQL), and a certificate of an organisation the gateway does not know.
    let anonymous = ClientIdentity { ca: &lab.ca_file, cert: None };
    let body = Some(serde_json::json!({"sql": "SELECT name FROM market.enterprises LIMIT 1"}).to_string());
    match http_request(&front.1.to_string(), SERVER_NAME, &anonymous, "POST", "/v1/query", &[], body.clone()).await {
        Ok(r) => assert!(r.status == 401 || r.status == 403, "no certificate, served {}: {:?}", r.status, r.body),
        Err(e) => assert!(!e.is_empty()),
    }
    let mut no_cert = FlightClient::connect(&front.0.to_string(), SERVER_NAME, &anonymous).expect("client");
    assert!(
        no_cert.query("SELECT name FROM market.enterprises LIMIT 1").await.is_err(),
        "no certificate over Flight SQL"
    );
    let stranger =
        lab.http_at(front.1, "stranger", "POST", "/v1/query", &[], body).await.expect("a refusal is an answer");
    assert_eq!(stranger.status, 403, "{}", String::from_utf8_lossy(&stranger.body));

    // Every replica's chain verifies.
    let out = Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(["audit", "verify", "--postgres", URL, "--schema", &schema.0])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run audit verify");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("3 replica chain(s)"), "{text}");

    deployment.stop().await.expect("HAProxy and the replicas stop cleanly");
    lab.stop().await.expect("lab stops");
}

/// `creditgate demo --replicas` is refused, saying what is missing, before it builds anything.
#[test]
fn demo_replica_options_are_checked_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("demo");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_creditgate"))
            .arg("demo")
            .arg("--dir")
            .arg(&dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run demo");
        assert!(!out.status.success(), "demo {args:?} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&["--serve", "--replicas", "1", "--state", URL]);
    assert!(e.contains("N ≥ 2"), "{e}");
    let e = run(&["--replicas", "3", "--state", URL]);
    assert!(e.contains("--replicas needs --serve"), "{e}");
    let e = run(&["--serve", "--replicas", "3"]);
    assert!(e.contains("--replicas needs --state"), "{e}");
    let e = run(&["--serve", "--state", URL]);
    assert!(e.contains("use it with --replicas"), "{e}");
    assert!(!dir.join("data").exists(), "nothing built for a refused command line");
}
