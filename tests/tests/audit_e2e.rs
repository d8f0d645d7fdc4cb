//! The audit log end to end: every request recorded (allowed or refused, every
//! listener) before release, subjects only as keyed hashes, the
//! privacy-officer API, concurrency, and failing closed.

use creditgate_audit::{Outcome, RecordedQuery};
use creditgate_audit::{SubjectHasher, SubjectKey};
use creditgate_tests::{audit_records, request_records as records, start_lab, stream_end_record};
use creditgate_tooling::demo::Lab;

fn raw_log(lab: &Lab) -> String {
    let dir = lab.dir.join("state").join("audit");
    std::fs::read_dir(&dir)
        .expect("audit dir")
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn get(lab: &Lab, caller: &str, path: &str) -> (u16, serde_json::Value) {
    let response = lab.http(caller, "GET", path, &[], None).await.expect("http");
    let value = serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null);
    (response.status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_recorded_with_subjects_hashed_and_the_officer_can_search() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let person = lab.manifest.featured.individual_resident_id.clone();
    let before = records(&lab).len();

    let mut samr = lab.flight_client("samr").expect("client");
    samr.query(&format!("SELECT name FROM market.enterprises WHERE credit_code = '{code}'")).await.expect("allowed");
    samr.query(&format!("SELECT shop_id FROM platform_a.shops WHERE owner_resident_id = '{person}'"))
        .await
        .expect("allowed");
    let refused = lab
        .http(
            "credit_agency",
            "POST",
            "/v1/query",
            &[("x-creditgate-purpose", "marketing")],
            Some(
                serde_json::json!({"sql": format!("SELECT name FROM market.enterprises WHERE credit_code = '{code}'")})
                    .to_string(),
            ),
        )
        .await
        .expect("http");
    assert_eq!(refused.status, 403);
    let mut stranger = lab.flight_client("stranger").expect("client");
    stranger.query("SELECT 1").await.expect_err("unknown caller");
    let public = lab.public_get(&format!("/public/v1/enterprises/{code}")).await.expect("public");
    assert_eq!(public.status, 200);

    let all = records(&lab);
    let new = &all[before..];
    assert_eq!(new.len(), 5, "one record per request: {new:#?}");
    let outcomes: Vec<String> = new.iter().map(|r| format!("{:?}", r.outcome)).collect();
    assert_eq!(outcomes, ["Allowed", "Allowed", "Refused", "Refused", "Allowed"]);
    assert_eq!(new[0].caller.name, "samr");
    assert_eq!(new[0].purpose.as_deref(), Some("licensing_review"));
    assert_eq!(new[0].legal_basis.as_deref(), Some("duty:licensing_review"));
    assert_eq!(new[0].datasets, ["market.enterprises"]);
    assert!(new[0].columns.iter().any(|c| c.column == "name" && c.mask == "none"));
    assert!(new[2].refusal_reason.as_deref().unwrap_or("").contains("marketing"));
    assert_eq!(new[3].caller.role, "unknown");
    assert!(!new[3].caller.fingerprint.is_empty());
    assert_eq!(format!("{:?}", new[4].frontend), "Public");

    // Subjects are keyed hashes; no raw identifier is in the log at all.
    let raw = raw_log(&lab);
    assert!(!raw.contains(&code), "raw credit code in the audit log");
    assert!(!raw.contains(&person), "raw resident ID in the audit log");
    assert_eq!(new[0].subject_hashes.len(), 1);
    assert_eq!(new[1].subject_hashes.len(), 1);
    assert_eq!(new[4].subject_hashes, new[0].subject_hashes, "same subject, same hash, across front ends");
    assert_ne!(new[0].subject_hashes, new[1].subject_hashes);
    let other_key = SubjectHasher::new(b"a different deployment secret").expect("hasher");
    assert_ne!(other_key.hash(&SubjectKey::CreditCode(code.clone())), new[0].subject_hashes[0]);

    // The privacy officer finds samr's access by the raw identifier.
    let (status, page) = get(&lab, "privacy_officer", &format!("/v1/audit/records?subject={code}")).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().expect("items");
    assert!(items.iter().any(|r| r["caller"]["name"] == "samr"), "{page}");
    assert!(items.iter().any(|r| r["caller"]["name"] == "credit_agency" && r["outcome"] == "refused"), "{page}");
    let (_, page) = get(&lab, "privacy_officer", "/v1/audit/records?outcome=refused&caller=credit_agency").await;
    assert_eq!(page["total"], 1, "{page}");
    let (status, report) = get(&lab, "privacy_officer", &format!("/v1/audit/subjects/{person}/report")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["subject"]["type"], "resident_id");
    assert_eq!(report["accesses"].as_array().map(|a| a.len()), Some(1), "{report}");
    let (status, verify) = get(&lab, "privacy_officer", "/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert!(verify["findings"].as_array().is_some_and(|f| f.is_empty()), "{verify}");
    let (status, stats) = get(&lab, "privacy_officer", "/v1/audit/stats").await;
    assert_eq!(status, 200);
    assert!(stats["daily"].as_array().is_some_and(|d| !d.is_empty()), "{stats}");
    let (status, bad) = get(&lab, "privacy_officer", "/v1/audit/records?subject=91350100M000100Y44").await;
    assert_eq!(status, 400);
    assert!(bad["error"]["message"].as_str().unwrap_or("").contains("subject"), "{bad}");

    // Other roles are refused (and that is audited too).
    for caller in ["samr", "credit_agency", "platform_a"] {
        let (status, body) = get(&lab, caller, "/v1/audit/records").await;
        assert_eq!(status, 403, "{caller}: {body}");
        assert_eq!(body["error"]["code"], "CG-POL-001");
    }
    let (status, _) = get(&lab, "samr", "/console").await;
    assert_eq!(status, 403);
    let console = lab.http("privacy_officer", "GET", "/console", &[], None).await.expect("console");
    assert_eq!(console.status, 200);
    assert!(console.content_type.unwrap_or_default().starts_with("text/html"));
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_make_exactly_one_record_each_and_the_chain_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let before = records(&lab).len();
    let n = 24;
    let mut tasks = Vec::new();
    for i in 0..n {
        let caller = ["samr", "credit_agency", "platform_a"][i % 3];
        let mut client = lab.flight_client(caller).expect("client");
        tasks.push(tokio::spawn(async move {
            client.query(&format!("SELECT name FROM market.enterprises LIMIT {}", i + 1)).await.map(|_| ())
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("query");
    }
    assert_eq!(records(&lab).len() - before, n, "one request record each");
    let all = audit_records(&lab);
    for (i, pair) in all.windows(2).enumerate() {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "seq gap at {i}");
        assert_eq!(pair[1].prev_hash, pair[0].hash, "chain broken at {i}");
    }
    let report = lab.gateway_handle.auditor().log().verify();
    assert!(report.is_ok(), "{}", report.message());
    lab.stop().await.expect("stop");
    // Shutdown wrote a final checkpoint; the offline verifier agrees.
    let report = creditgate_audit::verify(&lab_dir_audit(tmp.path()), None);
    assert!(report.is_ok(), "{}", report.message());
}

fn lab_dir_audit(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("state").join("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_audit_log_cannot_be_written_nothing_is_released() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let mut samr = lab.flight_client("samr").expect("client");
    samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("positive control");
    // Its stream-end record lands after the response; let it, so the failure hits the next request.
    let control = records(&lab).pop().expect("the control's record");
    stream_end_record(&lab, &control.request_id).await;
    lab.gateway_handle.auditor().local_log().expect("the lab keeps its audit log in files").inject_write_failures(1);
    let error = samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect_err("fail closed");
    let text = creditgate_tooling::client::flight_error_text(&error);
    assert!(text.contains("CG-AUD-001") && text.contains("audit log is unavailable"), "{text}");
    lab.gateway_handle.auditor().local_log().expect("the lab keeps its audit log in files").inject_write_failures(1);
    let response = lab
        .http(
            "samr",
            "POST",
            "/v1/query",
            &[],
            Some(serde_json::json!({"sql": "SELECT name FROM market.enterprises LIMIT 1"}).to_string()),
        )
        .await
        .expect("http");
    assert_eq!(response.status, 503, "{}", String::from_utf8_lossy(&response.body));
    // Once the log works again, so does the gateway, and the chain is intact.
    samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("recovered");
    let report = lab.gateway_handle.auditor().log().verify();
    assert!(report.is_ok(), "{}", report.message());
    lab.stop().await.expect("stop");
}

/// The request text a record keeps for a request that is neither SQL nor a lookup.
fn request_text(record: &creditgate_audit::AuditRecord) -> &str {
    match &record.query {
        RecordedQuery::Request(text) => text,
        other => panic!("expected a request record, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_any_record_still_leave_one_and_streams_record_their_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let person = lab.manifest.featured.individual_resident_id.clone();
    // A well-formed code with a wrong check character: refused before any source is asked.
    let last = code.chars().last().expect("code");
    let bad_code = format!("{}{}", &code[..17], if last == '0' { '1' } else { '0' });
    let before = records(&lab).len();

    let json = |body: serde_json::Value| Some(body.to_string());
    // (caller, method, path, headers, body, expected status)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<(&'a str, &'a str)>, Option<String>, u16);
    let cases: Vec<Case> = vec![
        ("samr", "POST", "/v1/query", vec![], Some("not json".to_string()), 400),
        ("samr", "POST", "/v1/query", vec![("accept", "image/png")], json(serde_json::json!({"sql": "SELECT 1"})), 406),
        (
            "samr",
            "POST",
            "/v1/lookup",
            vec![],
            json(serde_json::json!({"subject": {"type": "credit_code", "id": bad_code}})),
            400,
        ),
        ("samr", "GET", "/v1/no-such-route", vec![], None, 404),
        ("samr", "DELETE", "/v1/query", vec![], None, 405),
        ("privacy_officer", "GET", "/v1/audit/records?offset=many", vec![], None, 400),
    ];
    for (caller, method, path, headers, body, status) in &cases {
        let response = lab.http(caller, method, path, headers, body.clone()).await.expect("http");
        assert_eq!(response.status, *status, "{method} {path}: {}", String::from_utf8_lossy(&response.body));
    }
    let public = lab.public_get(&format!("/public/v1/enterprises/{bad_code}")).await.expect("public");
    assert_eq!(public.status, 400);
    let mut flight = lab.flight_client("samr").expect("client");
    let action = arrow_flight::Action { r#type: "creditgate.lookup".into(), body: b"{\"subject\": 1}".to_vec().into() };
    flight.inner_mut().inner_mut().do_action(action).await.expect_err("a malformed action body is refused");
    let catalog = lab.http("platform_a", "GET", "/v1/catalog", &[], None).await.expect("catalog");
    assert_eq!(catalog.status, 200);
    let report = lab.http("privacy_officer", "GET", &format!("/v1/audit/subjects/{person}/report"), &[], None).await;
    assert_eq!(report.expect("report").status, 200);

    let new: Vec<_> = records(&lab).split_off(before);
    assert_eq!(new.len(), cases.len() + 4, "one record per request: {new:#?}");
    for (record, (caller, method, path, _, _, _)) in new.iter().zip(&cases) {
        assert_eq!(record.caller.name, *caller);
        assert_eq!(record.outcome, Outcome::Refused, "{method} {path}: {record:?}");
        assert!(record.refusal_reason.as_deref().is_some_and(|r| r.starts_with("CG-")), "{record:?}");
    }
    assert_eq!(request_text(&new[0]), "POST /v1/query");
    assert!(new[0].refusal_reason.as_deref().unwrap_or("").contains("JSON"), "{:?}", new[0]);
    assert!(new[1].refusal_reason.as_deref().unwrap_or("").contains("image/png"), "{:?}", new[1]);
    // The invalid lookup keeps its shape but not the identifier.
    let RecordedQuery::Lookup(lookup) = &new[2].query else { panic!("lookup record: {:?}", new[2]) };
    assert_eq!(lookup["subject"]["invalid"], true, "{lookup}");
    assert!(new[2].subject_hashes.is_empty());
    assert_eq!(request_text(&new[3]), "GET /v1/no-such-route");
    assert_eq!(request_text(&new[4]), "DELETE /v1/query");
    assert!(request_text(&new[5]).starts_with("GET /v1/audit/records"), "{:?}", new[5]);
    let public_record = &new[cases.len()];
    assert_eq!(format!("{:?}", public_record.frontend), "Public");
    assert_eq!(public_record.outcome, Outcome::Refused);
    let action_record = &new[cases.len() + 1];
    assert_eq!(format!("{:?}", action_record.frontend), "Flight");
    assert_eq!(request_text(action_record), "DoAction creditgate.lookup");
    let catalog_record = &new[cases.len() + 2];
    assert_eq!((catalog_record.caller.name.as_str(), catalog_record.outcome), ("platform_a", Outcome::Allowed));
    assert_eq!(request_text(catalog_record), "GET /v1/catalog");
    // The officer's report read names the subject only by its hash, with a real duration.
    let report_record = &new[cases.len() + 3];
    assert_eq!(report_record.subject_hashes.len(), 1);
    let RecordedQuery::Lookup(api) = &report_record.query else { panic!("{report_record:?}") };
    let api_path = api["audit_api"].as_str().unwrap_or_default();
    assert!(api_path.contains(&report_record.subject_hashes[0]), "{api}");
    let raw = raw_log(&lab);
    assert!(!raw.contains(&person), "raw resident ID in the audit log");
    assert!(!raw.contains(&bad_code), "the refused identifier is not kept either");

    // A streamed SQL result: released by one record, completed by its stream-end record.
    let sql = "SELECT name FROM market.enterprises ORDER BY name LIMIT 3";
    let response = lab.http("samr", "POST", "/v1/query", &[], json(serde_json::json!({"sql": sql}))).await;
    let value: serde_json::Value = serde_json::from_slice(&response.expect("query").body).expect("json");
    assert_eq!(value["rows"].as_array().map(Vec::len), Some(3), "{value}");
    let opening = records(&lab)
        .into_iter()
        .rev()
        // Recorded as the statement, with its literals numbered.
        .find(|r| r.query == RecordedQuery::Sql("SELECT name FROM market.enterprises ORDER BY name LIMIT :p1".into()))
        .expect("the query's record");
    assert_eq!((opening.outcome, opening.row_count), (Outcome::Allowed, None));
    let end = stream_end_record(&lab, &opening.request_id).await;
    assert_eq!(end.query, RecordedQuery::StreamEnd(opening.seq));
    assert!(end.seq > opening.seq);
    assert_eq!((end.outcome, end.row_count), (Outcome::Allowed, Some(3)));
    assert_eq!(end.sources.len(), 1, "{end:?}");
    assert_eq!((end.sources[0].source.as_str(), end.sources[0].status.as_str()), ("market", "ok"));
    assert_eq!(end.caller, opening.caller);
    // Stream ends are not requests: the per-day statistics count the query once.
    let report = lab.gateway_handle.auditor().log().verify();
    assert!(report.is_ok(), "{}", report.message());
    lab.stop().await.expect("stop");
}
