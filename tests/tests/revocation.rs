//! Revocation while the gateway runs, over the real listeners: a caller's
//! certificate revoked by the CA (`creditgate certs revoke`, which rewrites
//! the CRL file) is refused on its open HTTP connection, its open Flight
//! channel, its open result stream and any new connection, within the CRL
//! check interval, while other callers go on; a CRL file that does not parse
//! keeps the CRLs in force and is counted; connections are closed at their
//! maximum age. Every reload and every refused handshake is in the audit log.
//!
//! Waiting is bounded by polling (never a timed assertion): how long the
//! revocation took to bite is a benchmark figure.

use std::time::Duration;

use creditgate_audit::{AuditRecord, Outcome, RecordedQuery};
use creditgate_certs::cli::{CertsCommand, RevokeArgs};
use creditgate_tests::{HttpConn, audit_records, start_lab_with};
use creditgate_tooling::demo::Lab;
use futures::StreamExt;

/// The Prometheus sample `name_and_labels` (0 when absent), read as `caller`.
async fn sample(lab: &Lab, caller: &str, name_and_labels: &str) -> f64 {
    let response = lab.http(caller, "GET", "/metrics", &[], None).await.expect("metrics");
    assert_eq!(response.status, 200);
    String::from_utf8_lossy(&response.body)
        .lines()
        .find_map(|line| line.strip_prefix(name_and_labels).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .unwrap_or(0.0)
}

/// Polls `f` every 100 ms until it returns `Some`, for at most 30 s.
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(value) = f().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 30 s: {what}");
}

fn revoke(lab: &Lab, caller: &str) {
    let cert = lab.caller(caller).expect("caller").cert.clone();
    creditgate_certs::cli::run(CertsCommand::Revoke(RevokeArgs {
        dir: lab.dir.join("certs"),
        serial: Vec::new(),
        cert: vec![cert],
        crl_days: 30,
    }))
    .expect("certs revoke");
}

fn events(lab: &Lab, name: &str) -> Vec<(AuditRecord, serde_json::Value)> {
    audit_records(lab)
        .into_iter()
        .filter_map(|r| match &r.query {
            RecordedQuery::Event(event) if event["event"] == name => {
                let event = event.clone();
                Some((r, event))
            }
            _ => None,
        })
        .collect()
}

const BIG: &str = "SELECT a.name, b.name FROM market.enterprises a CROSS JOIN market.enterprises b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_caller_loses_its_open_connections_and_cannot_make_new_ones() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |o| o.crl_check_interval_seconds = 1).await;

    // samr holds a kept-alive HTTP connection, a Flight channel and an open
    // result stream; platform_a a Flight channel.
    let mut http = HttpConn::open(&lab, "samr").await.expect("http connection");
    let reply = http.request("GET", "/v1/catalog", &[], None).await.expect("catalog");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut flight = lab.flight_client("samr").expect("flight");
    flight.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("query before the revocation");
    let mut streaming = lab.flight_client("samr").expect("flight");
    let info = streaming.inner_mut().execute(BIG.to_string(), None).await.expect("plan");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = streaming.inner_mut().do_get(ticket).await.expect("do_get");
    let first = stream.next().await.expect("a first batch").expect("first batch");
    assert!(first.num_rows() > 0);
    let mut other = lab.flight_client("platform_a").expect("flight");
    other.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("the other caller");
    let samr_fingerprint = audit_records(&lab)
        .into_iter()
        .find(|r| r.caller.name == "samr")
        .map(|r| r.caller.fingerprint)
        .expect("a record of samr");

    revoke(&lab, "samr");

    // The watcher notices the rewritten CRL and cuts samr's connections.
    let report = eventually("the CRL reload is recorded", async || {
        events(&lab, "crl_reload").into_iter().find(|(_, e)| e["connections_closed"].as_u64().unwrap_or(0) > 0)
    })
    .await;
    let (record, event) = report;
    assert_eq!(record.outcome, Outcome::Allowed);
    assert_eq!(event["trigger"], "file_changed", "{event}");
    assert_eq!(event["revoked_serials"], 1, "{event}");
    assert!(event["files"][0]["crls"][0]["crl_number"].is_string(), "the CRL's number is recorded: {event}");
    assert!(event["connections_closed"].as_u64().unwrap_or(0) >= 3, "HTTP, Flight and the stream's: {event}");

    // The open stream ends with a status that names the revocation, not
    // as a complete result and not with a bare transport error.
    let mut rows = first.num_rows();
    let mut ended_with = None;
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(batch) => rows += batch.num_rows(),
            Err(error) => {
                ended_with = Some(error);
                break;
            }
        }
    }
    match ended_with {
        Some(arrow_flight::error::FlightError::Tonic(status)) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
            assert!(status.message().contains("CG-AUTH-003"), "{status:?}");
            assert!(status.message().contains("revoked"), "{status:?}");
        }
        other => panic!("the stream ended after {rows} rows with {other:?}, not the revocation's status"),
    }
    // The old HTTP connection and the old Flight channel are refused.
    assert!(http.request("GET", "/v1/catalog", &[], None).await.is_err(), "the kept-alive connection is cut");
    assert!(flight.query("SELECT name FROM market.enterprises LIMIT 1").await.is_err(), "the Flight channel is cut");
    // New connections are refused at the handshake, on both listeners.
    assert!(lab.http("samr", "GET", "/v1/catalog", &[], None).await.is_err(), "a new HTTP connection");
    let mut fresh = lab.flight_client("samr").expect("client");
    assert!(fresh.query("SELECT 1").await.is_err(), "a new Flight connection");
    // The refused handshakes are recorded with the certificate's fingerprint.
    let refused = eventually("the refused handshake is recorded", async || {
        events(&lab, "handshake_refused").into_iter().find(|(r, _)| r.caller.fingerprint == samr_fingerprint)
    })
    .await;
    assert_eq!(refused.0.outcome, Outcome::Refused);
    assert_eq!(refused.1["reason"], "revoked");

    // Negative control: the other caller goes on, on its old channel and a new one.
    other.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("the other caller's old channel");
    let mut other_new = lab.flight_client("platform_a").expect("flight");
    other_new.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("the other caller's new channel");
    assert!(sample(&lab, "platform_a", "creditgate_handshakes_refused_total{reason=\"revoked\"}").await >= 1.0);
    assert!(sample(&lab, "platform_a", "creditgate_connections_closed_total{reason=\"revoked\"}").await >= 3.0);
    assert_eq!(sample(&lab, "platform_a", "creditgate_crl_generation").await, 2.0);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_crl_file_keeps_the_crls_in_force_and_is_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |o| o.crl_check_interval_seconds = 3600).await;
    let crl = lab.dir.join("certs").join("crl.pem");
    let good = std::fs::read(&crl).expect("crl");
    std::fs::write(&crl, b"-----BEGIN X509 CRL-----\nnot a CRL\n-----END X509 CRL-----\n").expect("write");

    let report = lab.gateway.reload_crls().await;
    assert!(!report.accepted(), "{report}");
    assert_eq!(report.generation, 1, "the CRLs in force did not change");
    // Callers are served as before (never "no revocations", never "refuse all").
    let reply = lab.http("samr", "GET", "/v1/catalog", &[], None).await.expect("served");
    assert_eq!(reply.status, 200);
    assert_eq!(sample(&lab, "samr", "creditgate_crl_reloads_total{result=\"rejected\"}").await, 1.0);
    let rejected = eventually("the rejected reload is recorded", async || {
        events(&lab, "crl_reload").into_iter().find(|(r, _)| r.outcome == Outcome::Failed)
    })
    .await;
    assert_eq!(rejected.1["files"][0]["outcome"], "rejected", "{}", rejected.1);

    // Negative control: the good file back, and a revocation in it, is accepted.
    std::fs::write(&crl, good).expect("restore");
    revoke(&lab, "platform_a");
    let report = lab.gateway.reload_crls().await;
    assert!(report.accepted(), "{report}");
    assert_eq!(report.revoked_serials(), 1, "{report}");
    assert!(lab.http("platform_a", "GET", "/v1/catalog", &[], None).await.is_err(), "revoked");
    assert_eq!(lab.http("samr", "GET", "/v1/catalog", &[], None).await.expect("served").status, 200);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_closed_at_their_maximum_age() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |o| o.max_connection_age_seconds = 1).await;
    let mut http = HttpConn::open(&lab, "samr").await.expect("http connection");
    assert_eq!(http.request("GET", "/v1/catalog", &[], None).await.expect("catalog").status, 200);
    // Idle past its age, the connection is closed by the gateway.
    eventually("the idle connection is closed", async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        http.request("GET", "/healthz", &[], None).await.is_err().then_some(())
    })
    .await;
    // The certificate is still good: a new connection is served.
    let mut again = HttpConn::open(&lab, "samr").await.expect("a new connection");
    assert_eq!(again.request("GET", "/v1/catalog", &[], None).await.expect("catalog").status, 200);
    assert!(sample(&lab, "samr", "creditgate_connections_closed_total{reason=\"max_age\"}").await >= 1.0);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_crls_and_a_principal_removed_from_the_policy_loses_its_open_connection() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // An interval the test never reaches: only the signal can reload.
    let lab = start_lab_with(tmp.path(), |o| o.crl_check_interval_seconds = 3600).await;
    let reloader = creditgate_server::reload_on_sighup(&lab.gateway).expect("SIGHUP handler");
    let mut samr = HttpConn::open(&lab, "samr").await.expect("http connection");
    assert_eq!(samr.request("GET", "/v1/catalog", &[], None).await.expect("catalog").status, 200);
    let mut agency = HttpConn::open(&lab, "credit_agency").await.expect("http connection");
    assert_eq!(agency.request("GET", "/v1/catalog", &[], None).await.expect("catalog").status, 200);

    // The policy loses samr; the CA revokes platform_a; one SIGHUP.
    let policy_file = lab.gateway_config.policy.clone();
    let policy = std::fs::read_to_string(&policy_file).expect("policy");
    let start = policy.find("[[principals]]\nname = \"samr\"").expect("samr's principal entry");
    let end = policy[start + 1..].find("[[").map_or(policy.len(), |i| start + 1 + i);
    std::fs::write(&policy_file, format!("{}{}", &policy[..start], &policy[end..])).expect("write policy");
    revoke(&lab, "platform_a");
    let status =
        std::process::Command::new("kill").args(["-HUP", &std::process::id().to_string()]).status().expect("kill");
    assert!(status.success());

    // samr's open connection is refused at its next request, by name.
    let reply = eventually("samr is refused on its open connection", async || {
        let reply = samr.request("GET", "/v1/catalog", &[], None).await.ok()?;
        (reply.status != 200).then_some(reply)
    })
    .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.text().contains("CG-AUTH-002") || reply.text().contains("unknown"), "{}", reply.text());
    // platform_a's certificate is refused at the handshake.
    eventually("platform_a is refused", async || {
        lab.http("platform_a", "GET", "/v1/catalog", &[], None).await.is_err().then_some(())
    })
    .await;
    assert_eq!(events(&lab, "crl_reload").first().map(|(_, e)| e["trigger"].clone()), Some("on_demand".into()));
    // Negative control: a principal still in the policy keeps its connection.
    assert_eq!(agency.request("GET", "/v1/catalog", &[], None).await.expect("catalog").status, 200);
    reloader.abort();
    lab.stop().await.expect("stop");
}
