//! Subject lookups end to end: identifiers checked first, legal bases,
//! every consent failure with its positive control, partial results from a
//! dead or stalled source, rate limits and quotas, and the Flight action.

use std::time::Duration;

use creditgate_consent::{ConsentDraft, IssuerKey, SubjectRef};
use creditgate_gateway::demo::{CONSENT_ISSUER, DEMO_POLICY, Lab};
use creditgate_ident::SubjectKind;
use creditgate_tests::{served, stall_server, start_lab, start_lab_with};
use futures::TryStreamExt;

const CONSENTED: [&str; 2] = ["court.dishonest_debtors", "credit_platform.black_list"];

async fn lookup(lab: &Lab, caller: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = lab.http(caller, "POST", "/v1/lookup", &[], Some(body.to_string())).await.expect("http");
    (response.status, serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null))
}

fn person_request(lab: &Lab, consent: Option<serde_json::Value>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "subject": {"type": "resident_id", "id": lab.manifest.featured.individual_resident_id},
        "purpose": "credit_report",
        "datasets": CONSENTED,
    });
    if let Some(c) = consent {
        body["consent"] = c;
    }
    body
}

fn draft(lab: &Lab) -> ConsentDraft {
    let now = chrono::Utc::now();
    ConsentDraft {
        consent_id: None,
        issuer: CONSENT_ISSUER.to_string(),
        subject: SubjectRef::parse(SubjectKind::ResidentId, &lab.manifest.featured.individual_resident_id)
            .expect("subject"),
        grantee: "credit-agency".to_string(),
        purposes: vec!["credit_report".to_string()],
        datasets: CONSENTED.iter().map(|d| d.to_string()).collect(),
        columns: None,
        data_from: None,
        data_to: None,
        valid_from: now - chrono::Duration::minutes(5),
        valid_until: now + chrono::Duration::days(1),
        max_uses: 10,
    }
}

fn sign(lab: &Lab, draft: ConsentDraft) -> serde_json::Value {
    serde_json::to_value(creditgate_consent::issue(&lab.consent_key, draft).expect("issue")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_consent_check_refuses_with_its_reason_and_a_valid_consent_passes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;

    // Positive control: a valid consent gives masked data and counts a use.
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(sign(&lab, draft(&lab))))).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["legal_basis"].as_str().map(|b| b.starts_with("consent:")), Some(true));
    assert_eq!(doc["consent"]["uses"], 1);
    let rows = doc["datasets"]["court.dishonest_debtors"]["rows"].as_array().expect("rows");
    assert!(!rows.is_empty());
    let id = &lab.manifest.featured.individual_resident_id;
    assert!(!doc.to_string().contains(id.as_str()), "the raw resident ID came back to a credit agency");
    assert_eq!(doc["datasets"]["court.dishonest_debtors"]["masks"]["resident_id"], "resident_id");

    // No consent at all.
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, None)).await;
    assert_eq!(status, 403);
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("consent"), "{doc}");

    let other_key = IssuerKey::generate().expect("key").0;
    let mut cases: Vec<(&str, serde_json::Value)> = Vec::new();
    let mut d = draft(&lab);
    d.valid_from = chrono::Utc::now() - chrono::Duration::days(10);
    d.valid_until = chrono::Utc::now() - chrono::Duration::days(1);
    cases.push(("consent.expired", sign(&lab, d)));
    let mut d = draft(&lab);
    d.grantee = "platform-a".to_string();
    cases.push(("consent.wrong_grantee", sign(&lab, d)));
    let mut d = draft(&lab);
    d.purposes = vec!["credit_assessment".to_string()];
    cases.push(("consent.purpose_not_covered", sign(&lab, d)));
    let mut d = draft(&lab);
    d.datasets = vec!["court.dishonest_debtors".to_string()];
    cases.push(("consent.dataset_not_covered", sign(&lab, d)));
    let mut d = draft(&lab);
    d.subject = SubjectRef::parse(SubjectKind::ResidentId, "11010519491231002X").expect("subject");
    cases.push(("consent.wrong_subject", sign(&lab, d)));
    let mut tampered = sign(&lab, draft(&lab));
    tampered["max_uses"] = serde_json::json!(1000);
    cases.push(("consent.bad_signature", tampered));
    let mut d = draft(&lab);
    d.issuer = "unknown-issuer".to_string();
    cases.push((
        "consent.unknown_issuer",
        serde_json::to_value(creditgate_consent::issue(&other_key, d).expect("issue")).expect("json"),
    ));
    for (code, consent) in cases {
        let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(consent))).await;
        assert_eq!(status, 403, "{code}: {doc}");
        assert_eq!(doc["error"]["code"], "CG-CON-001", "{code}: {doc}");
        assert!(doc["error"]["message"].as_str().unwrap_or("").contains(code), "{code}: {doc}");
    }

    // Uses exhausted.
    let mut d = draft(&lab);
    d.max_uses = 1;
    let once = sign(&lab, d);
    let (status, _) = lookup(&lab, "credit_agency", person_request(&lab, Some(once.clone()))).await;
    assert_eq!(status, 200);
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(once))).await;
    assert_eq!(status, 403);
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("consent.uses_exhausted"), "{doc}");

    // Revoked: by an agency, takes effect at once, and the use count is visible.
    let consent = sign(&lab, draft(&lab));
    let cid = consent["consent_id"].as_str().expect("id").to_string();
    let (status, _) = lookup(&lab, "credit_agency", person_request(&lab, Some(consent.clone()))).await;
    assert_eq!(status, 200);
    let response = lab
        .http("credit_agency", "POST", &format!("/v1/consents/{cid}/revoke"), &[], Some("{}".into()))
        .await
        .expect("http");
    assert_eq!(response.status, 403, "the grantee may not revoke on the subject's behalf");
    let response =
        lab.http("samr", "POST", &format!("/v1/consents/{cid}/revoke"), &[], Some("{}".into())).await.expect("http");
    assert_eq!(response.status, 200);
    let status_doc = lab.http("samr", "GET", &format!("/v1/consents/{cid}"), &[], None).await.expect("http");
    let value: serde_json::Value = serde_json::from_slice(&status_doc.body).expect("json");
    assert_eq!(value["uses"], 1);
    assert_eq!(value["revoked"], true);
    // Reading a consent's state is audited like any other access.
    let status_reads = creditgate_tests::audit_records(&lab)
        .iter()
        .filter(|r| serde_json::to_string(&r.query).is_ok_and(|q| q.contains("consent_status") && q.contains(&cid)))
        .count();
    assert_eq!(status_reads, 1, "one audit record for the consent status read");
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(consent))).await;
    assert_eq!(status, 403);
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("consent.revoked"), "{doc}");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_are_checked_before_anything_is_sent() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let before: usize = lab.connector_configs.keys().map(|s| served(&lab, s).len()).sum();
    let bad_date = format!(
        "11010519491331002{}",
        creditgate_ident::resident_id_check_digit("11010519491331002").expect("check digit")
    );
    for (kind, id, rule) in [
        ("credit_code", "91350100M000100Y44", "GB 32100-2015"),
        ("credit_code", "91350100M00010", "18 characters"),
        ("resident_id", "110105194912310021", "GB 11643-1999"),
        ("resident_id", bad_date.as_str(), "not a real date"),
    ] {
        let body = serde_json::json!({"subject": {"type": kind, "id": id}, "purpose": "supervision"});
        let (status, doc) = lookup(&lab, "samr", body).await;
        assert_eq!(status, 400, "{id}: {doc}");
        let message = doc["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("subject.id") && message.contains(rule), "{id}: {message}");
        assert!(!message.contains(id), "the identifier is not echoed: {message}");
    }
    let after: usize = lab.connector_configs.keys().map(|s| served(&lab, s).len()).sum();
    assert_eq!(before, after, "nothing reached any source");

    // Positive control: the key equality is the only raw predicate the source
    // saw, and only one subject's rows came back.
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let (status, doc) = lookup(
        &lab,
        "samr",
        serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"}),
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["incomplete"], false);
    assert_eq!(doc["legal_basis"], "duty:supervision");
    let market = served(&lab, "market");
    let penalties = market.iter().rev().find(|r| r.sql.contains("penalties")).expect("penalties query");
    assert!(penalties.sql.contains(&format!("credit_code = '{code}'")), "{}", penalties.sql);
    let returned = doc["datasets"]["market.penalties"]["rows"].as_array().map(|r| r.len()).unwrap_or(0) as u64;
    assert_eq!(penalties.rows, returned, "the source sent only the subject's rows");

    // A purpose outside the agency's duties is refused.
    let (status, doc) = lookup(
        &lab,
        "samr",
        serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "marketing"}),
    )
    .await;
    assert_eq!(status, 403, "{doc}");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_stalled_source_makes_the_lookup_incomplete_not_stuck() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    let (status, doc) = lookup(&lab, "samr", body.clone()).await;
    assert_eq!((status, doc["incomplete"].clone()), (200, serde_json::json!(false)));

    let court = lab.connectors.remove("court").expect("court");
    let addr = court.addr;
    court.stop().await.expect("stop court");
    let (status, doc) = lookup(&lab, "samr", body.clone()).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["incomplete"], true);
    assert_eq!(doc["datasets"]["court.dishonest_debtors"]["status"], "error", "{doc}");
    assert_eq!(doc["datasets"]["market.enterprises"]["status"], "ok");
    assert_eq!(doc["datasets"]["market.enterprises"]["rows"].as_array().map(|r| r.len()), Some(1));

    let listener = creditgate_tests::rebind(addr).await;
    let config = lab.connector_configs.get("court").expect("court config");
    let _stall = stall_server(listener, &config.cert, &config.key).await;
    let (status, doc) = tokio::time::timeout(Duration::from_secs(60), lookup(&lab, "samr", body))
        .await
        .expect("the lookup returns within its deadline");
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["incomplete"], true);
    assert_eq!(doc["datasets"]["court.dishonest_debtors"]["status"], "timeout", "{doc}");
    assert_eq!(doc["datasets"]["tax.credit_ratings"]["status"], "ok");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_quotas_refuse_with_retry_after_and_spare_other_principals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = DEMO_POLICY
        .replace(
            "rate_limit = { per_second = 50, burst = 100 }\ndaily_quota = 200000",
            "rate_limit = { per_second = 1, burst = 2 }",
        )
        .replace(
            "purposes = [\"merchant_onboarding\"]\nrate_limit = { per_second = 20, burst = 40 }\ndaily_quota = 50000",
            "purposes = [\"merchant_onboarding\"]\ndaily_quota = 2",
        );
    assert_ne!(policy, DEMO_POLICY);
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(policy)).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    // Six lookups at once against a burst of 2 (plus at most a token or two
    // refilled while they run on a slow machine): some pass, the rest are refused.
    let answers =
        futures::future::join_all((0..6).map(|_| lab.http("samr", "POST", "/v1/lookup", &[], Some(body.to_string()))))
            .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().expect("http").status).collect();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((2..=4).contains(&passed), "burst 2 at 1/s: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    let refused = answers.iter().flatten().find(|a| a.status == 429).expect("a refusal");
    let value: serde_json::Value = serde_json::from_slice(&refused.body).expect("json");
    assert_eq!(value["error"]["code"], "CG-RATE-001");
    // Flight says the same with ResourceExhausted.
    // (Tokens refill at 1/s while the machine is busy, so allow a few to pass
    // before the refusal; with no limit all ten would.)
    let mut client = lab.flight_client("samr").expect("client");
    let mut refusal = None;
    for _ in 0..10 {
        if let Err(error) = client.query("SELECT 1").await {
            refusal = Some(creditgate_gateway::client::flight_error_text(&error));
            break;
        }
    }
    let refusal = refusal.expect("rate limited on Flight too");
    assert!(refusal.contains("ResourceExhausted"), "{refusal}");
    // Another principal is unaffected.
    let credit = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "credit_report"});
    assert_eq!(lookup(&lab, "credit_agency", credit).await.0, 200);

    // Daily quota: platform_a gets two requests today.
    let platform =
        serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "merchant_onboarding"});
    assert_eq!(lookup(&lab, "platform_a", platform.clone()).await.0, 200);
    assert_eq!(lookup(&lab, "platform_a", platform.clone()).await.0, 200);
    let (status, doc) = lookup(&lab, "platform_a", platform).await;
    assert_eq!(status, 429);
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("daily quota of 2"), "{doc}");
    // After two seconds samr's bucket (burst 2) is full again: a Flight query
    // (GetFlightInfo + DoGet) counts once, so a lookup still fits after it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.query("SELECT 1").await.expect("one Flight query, one token");
    assert_eq!(lookup(&lab, "samr", body).await.0, 200);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flight_action_answers_like_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    let mut client = lab.flight_client("samr").expect("client");
    let action =
        arrow_flight::Action { r#type: "creditgate.lookup".into(), body: body.to_string().into_bytes().into() };
    let results: Vec<arrow_flight::Result> = client
        .inner_mut()
        .inner_mut()
        .do_action(action)
        .await
        .expect("do_action")
        .into_inner()
        .try_collect()
        .await
        .expect("results");
    let flight: serde_json::Value = serde_json::from_slice(&results[0].body).expect("json");
    let (status, http) = lookup(&lab, "samr", body).await;
    assert_eq!(status, 200);
    assert_eq!(flight["datasets"], http["datasets"]);
    assert_eq!(flight["legal_basis"], "duty:supervision");
    let bad = arrow_flight::Action { r#type: "creditgate.lookup".into(), body: b"{\"subject\": 1}".to_vec().into() };
    let status = client.inner_mut().inner_mut().do_action(bad).await.expect_err("bad body");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    lab.stop().await.expect("stop");
}
