//! End-to-end: real connectors and a real gateway on loopback, certificates
//! made at test time.

use std::time::Duration;

use arrow_flight::sql::CommandGetTables;
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_tests::{
    TEST_DEADLINES_MS, assert_transport_refusal, first_batches_then_stall_server, reference_session, served,
    sorted_rows, stall_server, start_lab, start_lab_with, tls_refusal,
};
use creditgate_tooling::client::{ClientIdentity, FlightClient, flight_error_text, http_request};
use creditgate_tooling::demo::SERVER_NAME;
use futures::TryStreamExt;

const JOIN_SQL: &str = "\
    SELECT s.shop_id, s.shop_name, b.entry_id, b.listing_department \
    FROM platform_a.shops s JOIN credit_platform.black_list b ON s.owner_credit_code = b.credit_code \
    UNION ALL \
    SELECT s.shop_id, s.shop_name, d.case_no, d.court \
    FROM platform_b.shops s JOIN court.dishonest_debtors d ON s.owner_resident_id = d.resident_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_source_joins_and_aggregates_match_the_sources() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let reference = reference_session(&lab).await;
    let mut client = lab.flight_client("samr").expect("client");

    let got = client.query(JOIN_SQL).await.expect("join over the gateway");
    let expected = reference.sql(JOIN_SQL).await.expect("plan").collect().await.expect("reference");
    let got_rows = sorted_rows(&got);
    assert!(!got_rows.is_empty(), "the join must find shops on the lists");
    assert_eq!(got_rows, sorted_rows(&expected));

    let aggregate = "SELECT e.district_code, COUNT(*) AS penalties, SUM(p.amount) AS total \
        FROM market.enterprises e JOIN market.penalties p ON e.credit_code = p.credit_code \
        JOIN tax.credit_ratings r ON r.credit_code = e.credit_code AND r.rating = 'D' \
        GROUP BY e.district_code";
    let got = client.query(aggregate).await.expect("aggregate over the gateway");
    let expected = reference.sql(aggregate).await.expect("plan").collect().await.expect("reference");
    assert_eq!(sorted_rows(&got), sorted_rows(&expected));
    assert!(!sorted_rows(&got).is_empty());
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_projection_and_limit_reach_the_connector() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let mut client = lab.flight_client("samr").expect("client");

    let batches = client
        .query(&format!("SELECT name, status FROM market.enterprises WHERE credit_code = '{code}' LIMIT 1"))
        .await
        .expect("query");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let log = served(&lab, "market");
    let record = log.iter().rev().find(|r| r.sql.contains(&code)).expect("the connector saw the filter");
    assert!(record.sql.contains("LIMIT 1"), "limit pushed: {}", record.sql);
    assert!(record.sql.contains("\"name\", \"status\""), "projection pushed: {}", record.sql);
    assert!(!record.sql.contains("legal_rep_id"), "unrequested columns stay home: {}", record.sql);
    assert_eq!(record.rows, 1, "only the matching row left the source");
    assert_eq!(
        record.caller,
        creditgate_certs::ca::spiffe_uri("credit.example", creditgate_tooling::demo::GATEWAY_ORG)
    );

    // Negative control: a predicate with a function is evaluated in the gateway.
    let before = served(&lab, "market").len();
    let batches = client
        .query(&format!("SELECT name FROM market.enterprises WHERE lower(credit_code) = lower('{code}')"))
        .await
        .expect("query");
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let log = served(&lab, "market");
    let new: Vec<_> = log[before..].iter().filter(|r| r.sql.contains("enterprises")).collect();
    assert_eq!(new.len(), 1);
    assert!(!new[0].sql.contains("WHERE"), "function predicates must not be pushed: {}", new[0].sql);
    assert!(new[0].rows > 1, "the source sent every row for the gateway to filter");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_stalled_source_is_named_promptly_on_both_front_ends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let mut client = lab.flight_client("samr").expect("client");
    // Healthy first (so the gateway has a live channel to the court connector).
    client.query("SELECT COUNT(*) FROM court.dishonest_debtors").await.expect("healthy query");

    // Dead: stop the court connector.
    let court = lab.connectors.remove("court").expect("court connector");
    let addr = court.addr;
    court.stop().await.expect("stop court");
    let error =
        tokio::time::timeout(Duration::from_secs(30), client.query("SELECT COUNT(*) FROM court.dishonest_debtors"))
            .await
            .expect("the gateway answers")
            .expect_err("a dead source fails the query");
    let text = creditgate_tooling::client::flight_error_text(&error);
    assert!(text.contains("source `court`"), "{text}");
    assert!(text.contains("Unavailable"), "{text}");
    // Other sources still work.
    client.query("SELECT COUNT(*) FROM tax.credit_ratings").await.expect("other sources unaffected");

    let response = lab
        .http(
            "samr",
            "POST",
            "/v1/query",
            &[],
            Some(serde_json::json!({"sql": "SELECT * FROM court.dishonest_debtors"}).to_string()),
        )
        .await
        .expect("http");
    assert_eq!(response.status, 502, "{}", String::from_utf8_lossy(&response.body));
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(body["error"]["code"], "CG-SRC-002");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("source `court`"));

    // Stalled: something accepts TLS on the court port and never answers.
    let listener = creditgate_tests::rebind(addr).await;
    let config = lab.connector_configs.get("court").expect("court config");
    let _stall = stall_server(listener, &config.cert, &config.key).await;
    let error =
        tokio::time::timeout(Duration::from_secs(30), client.query("SELECT COUNT(*) FROM court.dishonest_debtors"))
            .await
            .expect("the gateway answers within its own deadline")
            .expect_err("a stalled source fails the query");
    let text = creditgate_tooling::client::flight_error_text(&error);
    assert!(text.contains("source `court`") && text.contains("timed out"), "{text}");
    assert!(text.contains("DeadlineExceeded"), "{text}");
    // …and over HTTP: 504 with the source-timeout code, naming the source.
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        lab.http(
            "samr",
            "POST",
            "/v1/query",
            &[],
            Some(serde_json::json!({"sql": "SELECT COUNT(*) FROM court.dishonest_debtors"}).to_string()),
        ),
    )
    .await
    .expect("the gateway answers within its own deadline")
    .expect("http");
    assert_eq!(response.status, 504, "{}", String::from_utf8_lossy(&response.body));
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(body["error"]["code"], "CG-SRC-001", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("source `court`") && message.contains("timed out waiting for the first batch"), "{body}");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_stalls_after_its_first_batch_is_named_when_the_total_deadline_passes() {
    // Total deadline well under the test's own patience; first batch and
    // connect as in the other tests.
    const TOTAL_MS: u64 = 8_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab_with(tmp.path(), |options| {
        options.deadlines_ms = (TEST_DEADLINES_MS.0, TEST_DEADLINES_MS.1, TOTAL_MS);
    })
    .await;
    let sql = "SELECT case_no, court FROM court.dishonest_debtors";
    let mut client = lab.flight_client("samr").expect("client");
    let healthy = client.query(sql).await.expect("healthy query");
    let rows: usize = healthy.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 1, "the court has cases");

    // What the court connector sends the gateway for this query, recorded from
    // the real connector: the statement it received, run again as the gateway.
    let pushed = served(&lab, "court").last().expect("the court served the query").sql.clone();
    let config = lab.connector_configs.get("court").expect("court config").clone();
    let upstream = ClientIdentity {
        ca: &lab.ca_file,
        cert: Some((&lab.gateway_config.upstream.client_cert, &lab.gateway_config.upstream.client_key)),
    };
    let mut direct = FlightClient::connect(&config.listen.to_string(), SERVER_NAME, &upstream).expect("client");
    let recorded = direct.query_direct(&pushed).await.expect("the connector answers the gateway's statement");
    let first = recorded.first().expect("a first batch").clone();
    let first_rows = first.num_rows();
    assert!(first_rows > 0 && first_rows <= rows);

    // The court now sends that first batch at once and then nothing more.
    let court = lab.connectors.remove("court").expect("court connector");
    court.stop().await.expect("stop court");
    let listener = creditgate_tests::rebind(config.listen).await;
    let _stall = first_batches_then_stall_server(listener, &config.cert, &config.key, &first.schema(), vec![first]);

    // Flight: the first batch comes through, then the total deadline ends the
    // stream with an error naming the source.
    let error = tokio::time::timeout(Duration::from_secs(60), client.query(sql))
        .await
        .expect("the gateway ends the stream at its total deadline")
        .expect_err("a source stalled after its first batch fails the query");
    let text = creditgate_tooling::client::flight_error_text(&error);
    assert!(text.contains("DeadlineExceeded"), "{text}");
    assert!(
        text.contains(&format!("source `court` timed out waiting for the end of the result after {TOTAL_MS} ms")),
        "the total deadline, not the first-batch one: {text}"
    );

    // HTTP: the first batch's rows are out (status 200), the document ends as
    // incomplete with the source-timeout error naming the source.
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        lab.http("samr", "POST", "/v1/query", &[], Some(serde_json::json!({ "sql": sql }).to_string())),
    )
    .await
    .expect("the gateway ends the document at its total deadline")
    .expect("http");
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let doc: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    assert_eq!(doc["rows"].as_array().map(Vec::len), Some(first_rows), "the first batch's rows: {doc}");
    assert_eq!(doc["incomplete"], true, "{doc}");
    assert_eq!(doc["error"]["code"], "CG-SRC-001", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("source `court`") && message.contains("end of the result"), "{doc}");

    // Negative control: other sources are unaffected.
    client.query("SELECT COUNT(*) FROM tax.credit_ratings").await.expect("other sources unaffected");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_a_valid_known_certificate_are_refused_on_both_front_ends() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let flight = lab.gateway.flight_addr.to_string();
    let http = lab.gateway.http_addr.to_string();
    let sql = "SELECT name FROM market.enterprises LIMIT 1";
    let body = || Some(serde_json::json!({ "sql": sql }).to_string());

    // Positive control.
    let samr = lab.caller("samr").expect("samr");
    let mut ok = FlightClient::connect(&flight, SERVER_NAME, &lab.identity_of(samr)).expect("client");
    // A known caller without a purpose is refused, saying which purposes it may use.
    let text = creditgate_tooling::client::flight_error_text(&ok.query(sql).await.expect_err("no purpose"));
    assert!(
        text.contains("PermissionDenied") && text.contains("a purpose is required") && text.contains("supervision"),
        "{text}"
    );
    ok.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    assert_eq!(ok.query(sql).await.expect("served").iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let response = lab.http("samr", "POST", "/v1/query", &[], body()).await.expect("http");
    assert_eq!(response.status, 200);

    // No certificate, and a certificate from another CA: refused at the TLS
    // handshake on both front ends. The Flight client sends a valid purpose, so
    // only the missing/unknown certificate can be the reason; the refusal is a
    // broken connection with the alert that names it (a bare TLS probe reads
    // it), never a policy answer; and no source is queried for them.
    let served_before = served(&lab, "market").len();
    let other = DevCa::generate("another CA").expect("ca");
    let issued = other.issue(&IssueRequest::client("samr", "impostor", "samr")).expect("issue");
    let (cert, key) = issued.write(tmp.path(), "impostor").expect("write");
    for (case, who, alert) in [
        ("no certificate", ClientIdentity { ca: &lab.ca_file, cert: None }, "CertificateRequired"),
        ("another CA", ClientIdentity { ca: &lab.ca_file, cert: Some((&cert, &key)) }, "UnknownCA"),
    ] {
        let mut client = FlightClient::connect(&flight, SERVER_NAME, &who).expect("client");
        client.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
        let error = client.query(sql).await.expect_err(case);
        assert_transport_refusal(&error, alert, &format!("{case} over Flight"));
        let probe = tls_refusal(lab.gateway.flight_addr, &lab.ca_file, who.cert, b"h2").await;
        assert!(
            probe.as_deref().is_some_and(|p| p.contains(&format!("received fatal alert: {alert}"))),
            "{case}: {probe:?}"
        );

        let headers = [(creditgate_engine::PURPOSE_HEADER, "supervision")];
        let error = http_request(&http, SERVER_NAME, &who, "POST", "/v1/query", &headers, body()).await;
        let error = error.map(|r| r.status).expect_err(&format!("{case} over HTTP: no HTTP answer at all"));
        assert!(!error.contains("403") && !error.contains("purpose"), "{case} over HTTP: {error}");
        let probe = tls_refusal(lab.gateway.http_addr, &lab.ca_file, who.cert, b"http/1.1").await;
        assert!(
            probe.as_deref().is_some_and(|p| p.contains(&format!("received fatal alert: {alert}"))),
            "{case}: {probe:?}"
        );
    }
    assert_eq!(served(&lab, "market").len(), served_before, "nothing was queried for refused callers");
    // Positive control of the probe: a known caller's certificate passes the handshake.
    let probe = tls_refusal(lab.gateway.flight_addr, &lab.ca_file, Some((&samr.cert, &samr.key)), b"h2").await;
    assert_eq!(probe, None);

    // Right CA, identity not in the gateway config.
    let mut client = lab.flight_client("stranger").expect("client");
    let error = client.query(sql).await.expect_err("unknown identity refused");
    let text = creditgate_tooling::client::flight_error_text(&error);
    assert!(text.contains("PermissionDenied") && text.contains("not a known caller"), "{text}");
    let response = lab.http("stranger", "POST", "/v1/query", &[], body()).await.expect("http");
    assert_eq!(response.status, 403);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_front_end_formats_errors_and_documents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let post = |sql: &str| Some(serde_json::json!({ "sql": sql }).to_string());
    let sql = "SELECT credit_code, name FROM market.enterprises ORDER BY credit_code LIMIT 3";

    let json = lab.http("credit_agency", "POST", "/v1/query", &[], post(sql)).await.expect("json");
    assert_eq!(json.status, 200);
    let value: serde_json::Value = serde_json::from_slice(&json.body).expect("valid JSON");
    assert_eq!(value["row_count"], 3);
    assert_eq!(value["columns"][0]["name"], "credit_code");
    let first_code = value["rows"][0]["credit_code"].as_str().expect("code").to_string();
    creditgate_ident::CreditCode::parse(&first_code).expect("a real credit code came back");

    let csv = lab.http("credit_agency", "POST", "/v1/query", &[("accept", "text/csv")], post(sql)).await.expect("csv");
    let text = String::from_utf8(csv.body.to_vec()).expect("utf8");
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("credit_code,name\n"));
    assert!(text.contains(&first_code));

    let arrow = lab
        .http("credit_agency", "POST", "/v1/query", &[("accept", "application/vnd.apache.arrow.stream")], post(sql))
        .await
        .expect("arrow");
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.body.to_vec()), None).expect("ipc");
    assert_eq!(reader.map(|b| b.expect("batch").num_rows()).sum::<usize>(), 3);

    for (body, status, code) in [
        (Some("not json".to_string()), 400, "CG-REQ-001"),
        (post("SELECT nope FROM market.enterprises"), 400, "CG-REQ-002"),
        (post("CREATE TABLE t AS SELECT 1"), 400, "CG-REQ-002"),
        (post("DROP TABLE market.enterprises"), 400, "CG-REQ-002"),
        (post("SET datafusion.execution.batch_size = 1"), 400, "CG-REQ-002"),
    ] {
        let response = lab.http("credit_agency", "POST", "/v1/query", &[], body.clone()).await.expect("http");
        assert_eq!(response.status, status, "{body:?}: {}", String::from_utf8_lossy(&response.body));
        let value: serde_json::Value = serde_json::from_slice(&response.body).expect("json error");
        assert_eq!(value["error"]["code"], code, "{body:?}");
        assert!(!value["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    let response =
        lab.http("credit_agency", "POST", "/v1/query", &[("accept", "image/png")], post(sql)).await.expect("http");
    assert_eq!(response.status, 406);
    let response = lab.http("credit_agency", "GET", "/v1/query", &[], None).await.expect("http");
    assert_eq!(response.status, 405);
    let response = lab.http("credit_agency", "GET", "/nope", &[], None).await.expect("http");
    assert_eq!(response.status, 404);

    let health = lab.http("credit_agency", "GET", "/healthz", &[], None).await.expect("health");
    let value: serde_json::Value = serde_json::from_slice(&health.body).expect("json");
    assert_eq!(value["status"], "ok");
    let metrics = lab.http("credit_agency", "GET", "/metrics", &[], None).await.expect("metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("creditgate_requests_total{frontend=\"http\",outcome=\"ok\"}"), "{text}");
    assert!(text.contains("creditgate_source_queries_total{source=\"market\",status=\"ok\"}"), "{text}");
    let openapi = lab.http("credit_agency", "GET", "/openapi.json", &[], None).await.expect("openapi");
    let served: serde_json::Value = serde_json::from_slice(&openapi.body).expect("json");
    let committed: serde_json::Value = serde_json::from_str(creditgate_server::http::OPENAPI).expect("committed json");
    assert_eq!(served, committed);
    assert!(served["paths"]["/v1/query"]["post"].is_object());
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_metadata_prepared_statements_and_caller_bound_tickets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let mut samr = lab.flight_client("samr").expect("client");

    let info = samr
        .inner_mut()
        .get_tables(CommandGetTables { include_schema: true, ..Default::default() })
        .await
        .expect("GetTables");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let batches: Vec<_> = samr.inner_mut().do_get(ticket).await.expect("do_get").try_collect().await.expect("tables");
    let names = sorted_rows(&batches.iter().map(|b| b.project(&[1, 2]).expect("project")).collect::<Vec<_>>());
    assert!(names.contains(&"market|enterprises".to_string()), "{names:?}");
    assert!(names.contains(&"court|dishonest_debtors".to_string()), "{names:?}");
    let dataset_count: usize = lab.manifest.sources.iter().map(|s| s.tables.len()).sum();
    assert_eq!(names.len(), dataset_count);

    let info = samr.inner_mut().get_sql_info(vec![]).await.expect("GetSqlInfo");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let batches: Vec<_> = samr.inner_mut().do_get(ticket).await.expect("do_get").try_collect().await.expect("info");
    assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 3);

    let mut prepared = samr
        .inner_mut()
        .prepare("SELECT name FROM market.enterprises LIMIT 2".to_string(), None)
        .await
        .expect("prepare");
    assert_eq!(prepared.dataset_schema().expect("schema").field(0).name(), "name");
    let info = prepared.execute().await.expect("execute prepared");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let rows: usize = samr
        .inner_mut()
        .do_get(ticket.clone())
        .await
        .expect("do_get")
        .try_collect::<Vec<_>>()
        .await
        .expect("rows")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 2);
    prepared.close().await.expect("close");

    // A ticket issued to samr is useless to another certificate.
    let mut platform = lab.flight_client("platform_a").expect("client");
    let error = match platform.inner_mut().do_get(ticket).await {
        Ok(stream) => stream.try_collect::<Vec<_>>().await.expect_err("another caller's ticket must be refused"),
        Err(e) => e,
    };
    let text = creditgate_tooling::client::flight_error_text(&error);
    assert!(text.contains("PermissionDenied"), "{text}");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_stops_hammering_a_dead_source_and_the_gateway_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let mut client = lab.flight_client("samr").expect("client");
    let sql = "SELECT COUNT(*) FROM tax.credit_ratings";
    client.query(sql).await.expect("healthy");
    let tax = lab.connectors.remove("tax").expect("tax");
    tax.stop().await.expect("stop");
    let before = creditgate_tests::served(&lab, "tax").len();
    let mut last = String::new();
    for _ in 0..creditgate_remote::CIRCUIT_FAILURE_THRESHOLD + 1 {
        last = creditgate_tooling::client::flight_error_text(&client.query(sql).await.expect_err("dead"));
    }
    assert!(last.contains("source `tax`") && last.contains("times in a row"), "{last}");
    // The source comes back on the same address; after the open window the gateway uses it again.
    let config = lab.connector_configs.get("tax").expect("config").clone();
    // Its old listener is released in the background: retry the bind briefly.
    let mut revived = None;
    for _ in 0..100 {
        match creditgate_connector::Connector::open(config.clone()).await.expect("open").start().await {
            Ok(running) => {
                revived = Some(running);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let revived = revived.expect("the tax connector restarts on its address");
    tokio::time::sleep(creditgate_remote::CIRCUIT_OPEN_FOR + Duration::from_millis(200)).await;
    client.query(sql).await.expect("recovered");
    assert!(creditgate_tests::served(&lab, "tax").len() > before);
    revived.stop().await.expect("stop");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tour_covers_every_credit_code_dataset_and_its_joint_punishment_check_matches_the_sources() {
    use creditgate_tooling::demo::{COMPANY_VIEW, JOINT_PUNISHMENT_SQL};
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;

    // Step 1 looks the company up in every dataset that has a credit code column.
    for source in &lab.manifest.sources {
        for table in &source.tables {
            let dataset = format!("{}.{}", source.name, table.name);
            let keys: Vec<&String> = table.columns.iter().filter(|c| c.ends_with("credit_code")).collect();
            if keys.is_empty() {
                assert!(COMPANY_VIEW.iter().all(|(d, _, _)| *d != dataset), "{dataset} has no credit code");
                continue;
            }
            let entry = COMPANY_VIEW.iter().find(|(d, _, _)| *d == dataset);
            let (_, key, _) = entry.unwrap_or_else(|| panic!("the tour's company view misses {dataset}"));
            assert!(keys.iter().any(|k| k == key), "{dataset}: {key} is not one of its credit code columns {keys:?}");
        }
    }
    // …and every one of those queries runs for the agency.
    let company = &lab.manifest.featured.enterprise_credit_code;
    let mut samr = lab.flight_client("samr").expect("client");
    samr.set_header(creditgate_engine::PURPOSE_HEADER, "supervision");
    for (dataset, key, columns) in COMPANY_VIEW {
        let sql = format!("SELECT {columns} FROM {dataset} WHERE {key} = '{company}' LIMIT 5");
        let result = samr.query(&sql).await;
        assert!(result.is_ok(), "{dataset}: {}", result.err().map(|e| flight_error_text(&e)).unwrap_or_default());
    }

    // Step 2: the joint-punishment check flags the dishonest debtors among the
    // black-listed shop owners, exactly as the sources say.
    let mut joint = lab.flight_client("samr").expect("client");
    joint.set_header(creditgate_engine::PURPOSE_HEADER, "joint_punishment");
    let got = joint.query(JOINT_PUNISHMENT_SQL).await.expect("joint punishment over the gateway");
    let reference = reference_session(&lab).await;
    let expected = reference.sql(JOINT_PUNISHMENT_SQL).await.expect("plan").collect().await.expect("reference");
    let rows = sorted_rows(&got);
    assert_eq!(rows, sorted_rows(&expected));
    assert!(rows.iter().any(|r| r.contains("|true|")), "some black-listed owners are dishonest debtors: {rows:?}");
    assert!(rows.iter().any(|r| r.contains("|false|0")), "and some are not: {rows:?}");
    // The platform's policy does not grant it the court's list: the reason the agency runs this step.
    let mut platform = lab.flight_client("platform_a").expect("client");
    let error = platform.query(JOINT_PUNISHMENT_SQL).await.expect_err("the platform may not read the court's list");
    let text = flight_error_text(&error);
    assert!(text.contains("dishonest_debtors"), "{text}");
    lab.stop().await.expect("stop");
}
