//! One permit for every request: the same purpose parse on every front end,
//! refusals that spend no quota, exactly one audit record per request on
//! every endpoint, and an error boundary that shows internal failures as a
//! reference id only.

use creditgate_audit::Outcome;
use creditgate_engine::PURPOSE_HEADER;
use creditgate_tests::{request_records, start_lab_with};
use creditgate_tooling::client::flight_error_text;
use creditgate_tooling::demo::DEMO_POLICY;

/// The demo policy with the credit agency's daily quota set to `quota`.
fn policy_with_agency_quota(quota: u64) -> String {
    let line = "rate_limit = { per_second = 20, burst = 40 }\ndaily_quota = 50000";
    assert!(DEMO_POLICY.contains(line), "the demo policy's credit agency limits changed; update this test");
    DEMO_POLICY.replacen(line, &format!("rate_limit = {{ per_second = 1000, burst = 1000 }}\ndaily_quota = {quota}"), 1)
}

fn error_code(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).expect("json error body");
    value["error"]["code"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_purpose_spends_no_quota_on_sql_or_lookup() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(policy_with_agency_quota(2))).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let sql = serde_json::json!({"sql": "SELECT name FROM market.enterprises LIMIT 1"}).to_string();
    let lookup = serde_json::json!({"subject": {"type": "credit_code", "id": code}}).to_string();
    // Many refusals (a purpose the agency does not hold): none may count.
    for _ in 0..5 {
        for (path, body) in [("/v1/query", &sql), ("/v1/lookup", &lookup)] {
            let refused = lab
                .http("credit_agency", "POST", path, &[(PURPOSE_HEADER, "marketing")], Some(body.clone()))
                .await
                .expect("http");
            assert_eq!(refused.status, 403, "{path}");
            assert_eq!(error_code(&refused.body), "CG-POL-001");
        }
    }
    // The quota of 2 is still whole: two allowed requests, then the third is over it.
    let ok = lab.http("credit_agency", "POST", "/v1/query", &[], Some(sql.clone())).await.expect("http");
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let ok = lab.http("credit_agency", "POST", "/v1/lookup", &[], Some(lookup.clone())).await.expect("http");
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    // Negative control: the quota does bite.
    let over = lab.http("credit_agency", "POST", "/v1/query", &[], Some(sql)).await.expect("http");
    assert_eq!(over.status, 429);
    assert_eq!(error_code(&over.body), "CG-RATE-001");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_purpose_is_refused_alike_on_every_front_end_and_recorded_as_received() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |_| {}).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let sql = "SELECT name FROM market.enterprises LIMIT 1";
    // HTTP strips surrounding whitespace from header values before anyone
    // sees them, so only the body, the lookup and Flight metadata carry it.
    for bad in [" supervision", "supervision ", "Supervision", "SUPERVISION", "super\tvision"] {
        let before = request_records(&lab).len();
        let header_value = if bad.trim() == bad { bad } else { "Supervision" };
        // HTTP header.
        let header = lab
            .http(
                "samr",
                "POST",
                "/v1/query",
                &[(PURPOSE_HEADER, header_value)],
                Some(serde_json::json!({"sql": sql}).to_string()),
            )
            .await
            .expect("http");
        // HTTP body field.
        let body = lab
            .http("samr", "POST", "/v1/query", &[], Some(serde_json::json!({"sql": sql, "purpose": bad}).to_string()))
            .await
            .expect("http");
        // Lookup body.
        let lookup = lab
            .http(
                "samr",
                "POST",
                "/v1/lookup",
                &[],
                Some(serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": bad}).to_string()),
            )
            .await
            .expect("http");
        let mut messages = Vec::new();
        for (what, response) in [("header", &header), ("body", &body), ("lookup", &lookup)] {
            assert_eq!(response.status, 403, "{what} {bad:?}: {}", String::from_utf8_lossy(&response.body));
            let value: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
            assert_eq!(value["error"]["code"], "CG-POL-001", "{what} {bad:?}");
            let message = value["error"]["message"].as_str().unwrap_or_default().to_string();
            assert!(message.contains("is not a purpose code"), "{what} {bad:?}: {message}");
            messages.push(message);
        }
        assert!(messages[1..].windows(2).all(|w| w[0] == w[1]), "the same refusal everywhere: {messages:?}");
        // Flight: the call header.
        let mut client = lab.flight_client("samr").expect("client");
        client.set_header(PURPOSE_HEADER, bad);
        let error = client.query(sql).await.expect_err("refused");
        let text = flight_error_text(&error);
        assert!(text.contains("CG-POL-001") && text.contains("is not a purpose code"), "flight {bad:?}: {text}");
        // Every refusal recorded once, with the purpose exactly as received.
        let records = request_records(&lab);
        let new = &records[before..];
        assert_eq!(new.len(), 4, "one record per request: {new:?}");
        let received = [header_value, bad, bad, bad];
        for (record, received) in new.iter().zip(received) {
            assert_eq!(record.outcome, Outcome::Refused);
            assert_eq!(record.purpose.as_deref(), Some(received), "{record:?}");
        }
    }
    // Negative control: the exact code is accepted on each front end.
    let ok = lab
        .http(
            "samr",
            "POST",
            "/v1/query",
            &[(PURPOSE_HEADER, "supervision")],
            Some(serde_json::json!({"sql": sql}).to_string()),
        )
        .await
        .expect("http");
    assert_eq!(ok.status, 200);
    let mut client = lab.flight_client("samr").expect("client");
    client.set_header(PURPOSE_HEADER, "supervision");
    client.query(sql).await.expect("allowed");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_leaves_exactly_one_record_per_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |_| {}).await;
    let requests: Vec<(&str, &str, String)> = vec![
        ("samr", "GET", "/v1/catalog".to_string()),
        ("samr", "GET", "/v1/consents/no-such-consent".to_string()),
        ("platform_a", "GET", "/v1/audit/records".to_string()),
        ("privacy_officer", "GET", "/v1/audit/records?limit=1".to_string()),
        ("privacy_officer", "GET", "/v1/audit/stats".to_string()),
        ("privacy_officer", "GET", "/v1/audit/records?subjet=x".to_string()),
        ("samr", "GET", "/v1/no-such-route".to_string()),
    ];
    for (caller, method, path) in &requests {
        let before = request_records(&lab).len();
        let response = lab.http(caller, method, path, &[], None).await.expect("http");
        let after = request_records(&lab);
        assert_eq!(after.len(), before + 1, "{caller} {method} {path} ({}): {:?}", response.status, &after[before..]);
    }
    // A misspelt filter is refused by name, not ignored.
    let misspelt = lab.http("privacy_officer", "GET", "/v1/audit/records?subjet=x", &[], None).await.expect("http");
    assert_eq!(misspelt.status, 400);
    assert!(String::from_utf8_lossy(&misspelt.body).contains("`subjet`"));
    // Flight metadata calls are recorded like the catalog.
    let before = request_records(&lab).len();
    let mut client = lab.flight_client("samr").expect("client");
    let info = client
        .inner_mut()
        .get_tables(arrow_flight::sql::CommandGetTables { include_schema: true, ..Default::default() })
        .await
        .expect("GetTables");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = client.inner_mut().do_get(ticket).await.expect("DoGet");
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        batch.expect("tables");
    }
    let after = request_records(&lab);
    assert_eq!(after.len(), before + 1, "GetTables: {:?}", &after[before..]);
    assert!(matches!(&after[before].query, creditgate_audit::RecordedQuery::Request(r) if r.contains("metadata")));
    // The favicon is not a request to audit.
    let before = request_records(&lab).len();
    let favicon = lab.http("samr", "GET", "/favicon.ico", &[], None).await.expect("http");
    assert_eq!(favicon.status, 204);
    assert_eq!(request_records(&lab).len(), before);
    lab.stop().await.expect("stop");
}

#[test]
fn an_internal_failure_shows_only_a_reference_and_a_source_failure_only_its_name() {
    use creditgate_engine::GatewayError;
    use creditgate_remote::{SourceError, SourceErrorKind};
    let internal = GatewayError::internal("secret path /srv/state/secret.key and plan Filter: id = '110105'");
    let message = internal.client_message();
    assert!(message.contains("reference"), "{message}");
    assert!(!message.contains("/srv") && !message.contains("110105") && !message.contains("Filter"), "{message}");
    assert_eq!(internal.code().code, "CG-INT-001");
    let connector_text = "Schema error: No field named inf. Valid fields are a.secret_column, a.hidden_id";
    {
        let kind = SourceErrorKind::Failed(connector_text.into());
        let error = GatewayError::Source(SourceError { source_name: "market".parse().expect("source name"), kind });
        let message = error.client_message();
        assert!(message.contains("source `market`"), "{message}");
        assert!(!message.contains("secret_column") && !message.contains("Valid fields"), "{message}");
    }
    // Start-up errors carry paths for the operator, never for a caller.
    let config = GatewayError::Config("/etc/creditgate/policy.toml: cannot read".into());
    assert!(!config.client_message().contains("/etc"), "{}", config.client_message());
}
