//! Lookups, SQL and `/healthz` tell the truth about every configured source:
//! one down since the gateway started, one that goes down later, and one
//! that comes back — over HTTP and Flight. And a refused query's audit
//! record names the datasets it referenced, granted, ungranted or unknown.

use std::time::Duration;

use creditgate_audit::Outcome;
use creditgate_tests::{reference_session, restart_connector, sorted_rows, start_lab_with};
use creditgate_tooling::client::flight_error_text;
use creditgate_tooling::demo::Lab;

async fn health(lab: &Lab) -> serde_json::Value {
    let reply = lab.http("samr", "GET", "/healthz", &[], None).await.expect("healthz");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap_or_default()
}

async fn http_lookup(lab: &Lab, code: &str) -> serde_json::Value {
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    let reply = lab.http("samr", "POST", "/v1/lookup", &[], Some(body.to_string())).await.expect("lookup");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap_or_default()
}

async fn flight_lookup(lab: &Lab, code: &str) -> serde_json::Value {
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    let mut client = lab.flight_client("samr").expect("flight");
    client.lookup(&body).await.expect("Flight lookup")
}

/// The statuses of `source`'s datasets in a lookup document (at least one).
fn statuses_of(doc: &serde_json::Value, source: &str) -> Vec<String> {
    let datasets = doc["datasets"].as_object().expect("datasets");
    let statuses: Vec<String> = datasets
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{source}.")))
        .map(|(_, d)| d["status"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!statuses.is_empty(), "no dataset of `{source}` listed: {doc}");
    statuses
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_sql_and_health_tell_the_truth_about_sources_down_from_the_start_gone_later_and_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab_with(tmp.path(), |o| o.down_at_start = vec!["court".to_string()]).await;
    let reference = reference_session(&lab).await;
    let code = reference
        .sql("SELECT credit_code FROM market.enterprises ORDER BY credit_code LIMIT 1")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("reference");
    let code = sorted_rows(&code).pop().expect("a company");

    // Down since the start: health is degraded and names the source.
    let doc = health(&lab).await;
    assert_eq!(doc["status"], "degraded", "{doc}");
    assert_eq!(doc["sources"]["court"], "unreachable", "{doc}");
    assert_eq!(doc["sources"]["market"], "reachable", "{doc}");
    assert!(doc["sources_unreachable"].as_array().is_some_and(|a| a == &[serde_json::json!("court")]), "{doc}");
    assert!(doc["datasets_unavailable"].to_string().contains("court.dishonest_debtors"), "{doc}");

    // A lookup lists the court's datasets as unavailable and is incomplete, on both front ends.
    for (front, doc) in [("HTTP", http_lookup(&lab, &code).await), ("Flight", flight_lookup(&lab, &code).await)] {
        assert!(statuses_of(&doc, "court").iter().all(|s| s == "unavailable"), "{front}: {doc}");
        assert!(statuses_of(&doc, "market").iter().all(|s| s == "ok"), "{front}: {doc}");
        assert_eq!(doc["incomplete"], true, "{front}: {doc}");
    }

    // SQL on the court's dataset names the source, not "table not found".
    let sql = "SELECT count(*) FROM court.dishonest_debtors";
    let reply = lab
        .http("samr", "POST", "/v1/query", &[], Some(serde_json::json!({"sql": sql}).to_string()))
        .await
        .expect("query");
    let body = serde_json::from_slice::<serde_json::Value>(&reply.body).unwrap_or_default();
    assert_eq!((reply.status, body["error"]["code"].clone()), (502, "CG-SRC-002".into()), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("source `court`") && !message.contains("not found"), "{message}");
    let mut flight = lab.flight_client("samr").expect("flight");
    let text = flight_error_text(&flight.query(sql).await.expect_err("court is down"));
    assert!(text.contains("source `court`") && text.contains("CG-SRC-002"), "{text}");
    // Negative control: a source that is up answers the same query.
    flight.query("SELECT count(*) FROM market.enterprises").await.expect("market is up");

    // The court comes back: noticed without any query, health is ok again.
    let config = lab.connector_configs.get("court").expect("court config").clone();
    lab.connectors.insert("court".to_string(), restart_connector(&config).await);
    let doc = eventually("health sees the court again", async || {
        Some(health(&lab).await).filter(|doc| doc["status"] == "ok")
    })
    .await;
    assert_eq!(doc["sources"]["court"], "reachable", "{doc}");
    assert_eq!(doc["sources_unreachable"], serde_json::json!([]), "{doc}");
    for (front, doc) in [("HTTP", http_lookup(&lab, &code).await), ("Flight", flight_lookup(&lab, &code).await)] {
        assert!(statuses_of(&doc, "court").iter().all(|s| s == "ok"), "{front}: {doc}");
        assert_eq!(doc["incomplete"], false, "{front}: {doc}");
    }
    flight.query(sql).await.expect("the court answers again");

    // Tax goes away later: its datasets show as errors, health turns degraded.
    lab.connectors.remove("tax").expect("tax").stop().await.expect("stop tax");
    for (front, doc) in [("HTTP", http_lookup(&lab, &code).await), ("Flight", flight_lookup(&lab, &code).await)] {
        assert!(statuses_of(&doc, "tax").iter().all(|s| s == "error"), "{front}: {doc}");
        assert_eq!(doc["incomplete"], true, "{front}: {doc}");
    }
    let doc = health(&lab).await;
    assert_eq!((doc["status"].clone(), doc["sources"]["tax"].clone()), ("degraded".into(), "unreachable".into()));
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_query_is_recorded_with_the_datasets_it_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |_| {}).await;
    let mut flight = lab.flight_client("platform_a").expect("flight");
    // Not granted to the platform, unknown, and an identifier-shaped name.
    let probes = [
        ("SELECT * FROM court.dishonest_debtors", vec!["court.dishonest_debtors"]),
        (
            "SELECT * FROM secret.salaries s JOIN market.enterprises e ON true",
            vec!["market.enterprises", "secret.salaries"],
        ),
        ("SELECT * FROM market.m13800138000", vec![]),
    ];
    for (sql, _) in &probes {
        assert!(flight.query(sql).await.is_err(), "{sql} must be refused");
    }
    let records: Vec<_> = creditgate_tests::request_records(&lab)
        .into_iter()
        .filter(|r| r.caller.name == "platform_a" && r.outcome == Outcome::Refused)
        .collect();
    assert_eq!(records.len(), probes.len(), "one record per probe: {records:?}");
    for ((sql, named), record) in probes.iter().zip(&records) {
        assert_eq!(&record.datasets, named, "{sql}");
    }
    let bytes = std::fs::read_dir(lab.dir.join("state").join("audit"))
        .expect("audit dir")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path()).ok())
        .flatten()
        .collect::<Vec<u8>>();
    assert!(!String::from_utf8_lossy(&bytes).contains("13800138000"), "an identifier-shaped name was recorded raw");
    lab.stop().await.expect("stop");
}
