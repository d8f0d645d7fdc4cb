//! Subject lookups end to end: identifiers checked first (15-digit resident
//! IDs upgraded), legal bases (an expired licence refused), every consent
//! failure with its positive control, what a consent limits (columns, data
//! date range), who may revoke and that revocations survive a restart,
//! partial results from a dead or stalled source, rate limits and quotas
//! with Retry-After, and the Flight action.

use std::time::Duration;

use creditgate_consent::{ConsentDraft, IssuerKey, SubjectRef};
use creditgate_ident::SubjectKind;
use creditgate_tests::{
    HttpConn, add_caller, reference_session, restart_gateway, served, sorted_rows, stall_server, start_lab,
    start_lab_with,
};
use creditgate_tooling::demo::{CONSENT_ISSUER, DEMO_POLICY, Lab};
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
    // The debtor's ID as the credit agency's own pseudonym (keyed hash under
    // its organisation's key), in every row.
    assert_eq!(doc["datasets"]["court.dishonest_debtors"]["masks"]["resident_id"], "keyed_hash");
    let policy = lab.gateway_handle.policy();
    let agency = policy.principal("credit_agency").expect("credit_agency");
    let pseudonym = lab.gateway_handle.masks_for(agency).pseudonym(id);
    assert!(rows.iter().all(|r| r["resident_id"] == pseudonym.as_str()), "{rows:?}");

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
    // Identifiers are quoted on the wire; compare without the quotes. The
    // key goes as the prepared statement's one parameter, never in the SQL.
    assert!(penalties.sql.replace('"', "").contains("credit_code = $1"), "{}", penalties.sql);
    assert_eq!(penalties.parameters, vec![code.clone()], "{}", penalties.sql);
    assert!(!penalties.sql.contains(&code), "the key is not in the SQL text: {}", penalties.sql);
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
    let mut conns = Vec::new();
    for _ in 0..6 {
        conns.push(HttpConn::open(&lab, "samr").await.expect("connect"));
    }
    let answers = futures::future::join_all(
        conns.iter_mut().map(|c| c.request("POST", "/v1/lookup", &[], Some(body.to_string()))),
    )
    .await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("http")).collect();
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert!((2..=4).contains(&passed), "burst 2 at 1/s: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s, 200 | 429)), "{statuses:?}");
    let refused = answers.iter().find(|a| a.status == 429).expect("a refusal");
    assert_eq!(refused.json()["error"]["code"], "CG-RATE-001");
    // Every refusal says when to retry: `Retry-After` in whole seconds, at
    // least 1 and at most what one token takes at 1/s (rounded up); an
    // answer that passed carries none.
    for answer in &answers {
        match answer.status {
            429 => {
                let secs: u64 = answer
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("a 429 carries Retry-After in seconds: {:?}", answer.headers));
                assert!((1..=2).contains(&secs), "Retry-After {secs}");
            }
            _ => assert_eq!(answer.header("retry-after"), None, "only a refusal says when to retry"),
        }
    }
    drop(conns);
    // Flight says the same with ResourceExhausted and `retry-after` metadata.
    // (Tokens refill at 1/s while the machine is busy, so allow a few to pass
    // before the refusal; with no limit all ten would.)
    let mut client = lab.flight_client("samr").expect("client");
    let mut refusal = None;
    for _ in 0..10 {
        match client.query("SELECT 1").await {
            Ok(_) => {}
            Err(arrow_flight::error::FlightError::Tonic(status)) => {
                refusal = Some(status);
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    let refusal = refusal.expect("rate limited on Flight too");
    assert_eq!(refusal.code(), tonic::Code::ResourceExhausted, "{refusal}");
    let secs: u64 = refusal
        .metadata()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("retry-after metadata in seconds: {:?}", refusal.metadata()));
    assert!((1..=2).contains(&secs), "retry-after {secs}");
    // Another principal is unaffected.
    let credit = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "credit_report"});
    assert_eq!(lookup(&lab, "credit_agency", credit).await.0, 200);

    // Daily quota: platform_a gets two requests today.
    let platform =
        serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "merchant_onboarding"});
    assert_eq!(lookup(&lab, "platform_a", platform.clone()).await.0, 200);
    assert_eq!(lookup(&lab, "platform_a", platform.clone()).await.0, 200);
    let mut conn = HttpConn::open(&lab, "platform_a").await.expect("connect");
    let reply = conn.request("POST", "/v1/lookup", &[], Some(platform.to_string())).await.expect("http");
    assert_eq!(reply.status, 429);
    assert!(reply.json()["error"]["message"].as_str().unwrap_or("").contains("daily quota of 2"), "{}", reply.text());
    // The quota renews at midnight: the wait is positive and under a day.
    let secs: u64 = reply.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After in seconds");
    assert!((1..=86_400).contains(&secs), "Retry-After {secs}");
    drop(conn);
    // After two seconds samr's bucket (burst 2) is full again: a Flight query
    // (GetFlightInfo + DoGet) counts once, so a lookup still fits after it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    client.query("SELECT 1").await.expect("one Flight query, one token");
    assert_eq!(lookup(&lab, "samr", body).await.0, 200);
    drop(client);
    // A restart does not reset the day's quota (the counts are saved in the state directory).
    let lab = creditgate_tests::restart_gateway(lab).await;
    let (status, reply) = lookup(&lab, "platform_a", platform).await;
    assert_eq!(status, 429, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap_or("").contains("daily quota of 2"), "{reply}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_licence_is_refused_naming_the_licence_and_nothing_reaches_a_source() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let expired = DEMO_POLICY.replace("expiry = 2029-12-31", "expiry = 2020-06-30");
    assert_ne!(expired, DEMO_POLICY, "the demo licence's expiry changed; adjust the test");
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(expired)).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "credit_report"});
    let before: usize = lab.connector_configs.keys().map(|s| served(&lab, s).len()).sum();
    let (status, doc) = lookup(&lab, "credit_agency", body.clone()).await;
    assert_eq!(status, 403, "{doc}");
    assert_eq!(doc["error"]["code"], "CG-POL-001", "{doc}");
    let message = doc["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("licence ZX-3702-2024-0017") && message.contains("expired on 2020-06-30"), "{message}");
    let after: usize = lab.connector_configs.keys().map(|s| served(&lab, s).len()).sum();
    assert_eq!(before, after, "nothing reached any source");

    // Positive control: the same lookup under the valid licence.
    std::fs::write(lab.dir.join("policy.toml"), DEMO_POLICY).expect("write policy");
    lab.gateway_handle.reload_policy().expect("reload");
    let (status, doc) = lookup(&lab, "credit_agency", body).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["legal_basis"], "licence:ZX-3702-2024-0017");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_15_digit_resident_id_is_looked_up_in_its_18_digit_form() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    // A courier born in the 1900s (the only century a 15-digit number can name).
    let reference = reference_session(&lab).await;
    let found = reference
        .sql(
            "SELECT resident_id FROM courier.staff WHERE substr(resident_id, 7, 2) = '19' ORDER BY resident_id LIMIT 1",
        )
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let id18 = sorted_rows(&found).into_iter().next().expect("a courier born in the 1900s");
    let id15 = format!("{}{}", &id18[..6], &id18[8..17]);
    assert_eq!(id15.len(), 15);
    let ask = |id: &str| {
        serde_json::json!({"subject": {"type": "resident_id", "id": id}, "purpose": "supervision",
                           "datasets": ["courier.staff"]})
    };

    let (status, doc15) = lookup(&lab, "samr", ask(&id15)).await;
    assert_eq!(status, 200, "{doc15}");
    let rows = doc15["datasets"]["courier.staff"]["rows"].as_array().expect("rows");
    assert!(!rows.is_empty(), "{doc15}");
    assert!(rows.iter().all(|r| r["resident_id"] == id18.as_str()), "{doc15}");
    assert_eq!(doc15["subject"]["id_masked"].as_str().map(str::len), Some(18));
    // The source saw the 18-digit form only.
    let staff = served(&lab, "courier").into_iter().rev().find(|r| r.sql.contains("staff")).expect("staff query");
    assert_eq!(staff.parameters, vec![id18.clone()], "{}", staff.sql);
    assert!(!staff.sql.contains(&id15) && !staff.sql.contains(&id18), "{}", staff.sql);
    assert_eq!(staff.rows, rows.len() as u64);
    // The same answer as the 18-digit lookup.
    let (status, doc18) = lookup(&lab, "samr", ask(&id18)).await;
    assert_eq!(status, 200);
    assert_eq!(doc15["datasets"], doc18["datasets"]);

    // Negative control: a 15-digit number with no real birth date (month 13)
    // is refused and reaches no source.
    let bad = format!("{}{}13{}", &id15[..6], &id15[6..8], &id15[10..]);
    let before = served(&lab, "courier").len();
    let (status, doc) = lookup(&lab, "samr", ask(&bad)).await;
    assert_eq!(status, 400, "{doc}");
    assert_eq!(served(&lab, "courier").len(), before);
    lab.stop().await.expect("stop");
}

/// The demo policy plus two agencies without oversight of individuals'
/// consents: one with no consent oversight at all, one overseeing
/// enterprises' consents only.
fn policy_with_other_agencies() -> String {
    format!(
        "{DEMO_POLICY}\n\
         [[principals]]\nname = \"tax_bureau\"\nidentity = \"spiffe://credit.example/org/tax-bureau\"\n\
         organization = \"Qingdao Tax Bureau\"\nrole = \"agency\"\npurposes = [\"supervision\"]\n\
         duty_codes = [\"supervision\"]\n\n\
         [[principals]]\nname = \"post_bureau\"\nidentity = \"spiffe://credit.example/org/post-bureau\"\n\
         organization = \"Qingdao Postal Administration\"\nrole = \"agency\"\npurposes = [\"supervision\"]\n\
         duty_codes = [\"supervision\"]\nconsent_oversight = [\"credit_code\"]\n\n\
         [organizations.\"Qingdao Tax Bureau\"]\nzh = \"青岛市税务局\"\nen = \"Qingdao Tax Bureau\"\n\n\
         [organizations.\"Qingdao Postal Administration\"]\nzh = \"青岛市邮政管理局\"\nen = \"Qingdao Postal Administration\"\n"
    )
}

async fn revoke(lab: &Lab, caller: &str, consent: &serde_json::Value) -> (u16, serde_json::Value) {
    let id = consent["consent_id"].as_str().expect("id");
    let response =
        lab.http(caller, "POST", &format!("/v1/consents/{id}/revoke"), &[], Some("{}".into())).await.expect("http");
    (response.status, serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null))
}

/// Revokes `consent` as `caller`, presenting `artefact` in the body.
async fn revoke_presenting(
    lab: &Lab,
    caller: &str,
    consent: &serde_json::Value,
    artefact: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let id = consent["consent_id"].as_str().expect("id");
    let body = serde_json::json!({ "consent": artefact }).to_string();
    let response = lab.http(caller, "POST", &format!("/v1/consents/{id}/revoke"), &[], Some(body)).await.expect("http");
    (response.status, serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null))
}

fn refusal_code(doc: &serde_json::Value) -> String {
    let message = doc["error"]["message"].as_str().unwrap_or("");
    message.split(['(', ')']).nth(1).unwrap_or(message).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_issuer_and_the_subjects_oversight_agency_may_revoke_and_revocation_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab_with(tmp.path(), |o| o.policy = Some(policy_with_other_agencies())).await;
    add_caller(&mut lab, "credit_platform", "credit-platform", "platform", &["consent_administration"]);
    add_caller(&mut lab, "tax_bureau", "tax-bureau", "agency", &["supervision"]);
    add_caller(&mut lab, "post_bureau", "post-bureau", "agency", &["supervision"]);
    let use_it =
        |consent: &serde_json::Value| lookup(&lab, "credit_agency", person_request(&lab, Some(consent.clone())));

    // A consent about an individual, used once here (so the gateway knows its
    // issuer and kind of subject).
    let used = sign(&lab, draft(&lab));
    assert_eq!(use_it(&used).await.0, 200);

    // Neither the issuer nor an agency overseeing individuals' consents: refused,
    // each told who may revoke, and nothing changes.
    for caller in ["credit_agency", "platform_a", "tax_bureau", "post_bureau"] {
        let (status, doc) = revoke(&lab, caller, &used).await;
        assert_eq!(status, 403, "{caller}: {doc}");
        assert_eq!(doc["error"]["code"], "CG-POL-001", "{caller}: {doc}");
        let message = doc["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("only by its issuer (organisation credit-platform)")
                && message.contains("for resident_id subjects: samr"),
            "{caller}: {message}"
        );
    }
    let (_, doc) = revoke(&lab, "post_bureau", &used).await;
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("credit_code subjects only"), "{doc}");
    let (status, doc) = use_it(&used).await;
    assert_eq!((status, doc["consent"]["uses"].clone()), (200, serde_json::json!(2)), "{doc}");

    // The subject's oversight agency may.
    let (status, doc) = revoke(&lab, "samr", &used).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!((doc["revoked_as"].as_str(), doc["issuer"].as_str()), (Some("oversight"), Some(CONSENT_ISSUER)));
    let (status, doc) = use_it(&used).await;
    assert_eq!((status, refusal_code(&doc)), (403, "consent.revoked".to_string()), "{doc}");

    // A consent never used here: its subject is unknown, so the agency cannot
    // revoke it yet; its issuer can.
    let unused = sign(&lab, draft(&lab));
    let (status, doc) = revoke(&lab, "samr", &unused).await;
    assert_eq!(status, 403, "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("has not been used at this gateway"), "{doc}");
    // …unless it presents the signed consent: then its issuer and subject are known.
    let presented = sign(&lab, draft(&lab));
    let mut forged = presented.clone();
    forged["purposes"] = serde_json::json!(["credit_report", "marketing"]);
    let (status, doc) = revoke_presenting(&lab, "samr", &presented, &forged).await;
    assert_eq!((status, refusal_code(&doc)), (403, "consent.bad_signature".to_string()), "a forged artefact: {doc}");
    let (status, doc) = revoke_presenting(&lab, "samr", &unused, &presented).await;
    assert_eq!(status, 400, "an artefact of another consent: {doc}");
    let (status, doc) = revoke_presenting(&lab, "post_bureau", &presented, &presented).await;
    assert_eq!(status, 403, "an agency overseeing enterprise consents only: {doc}");
    assert_eq!(use_it(&presented).await.0, 200, "nothing was revoked by the refusals");
    let fresh = sign(&lab, draft(&lab));
    let (status, doc) = revoke_presenting(&lab, "samr", &fresh, &fresh).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!((doc["revoked_as"].as_str(), doc["issuer"].as_str()), (Some("oversight"), Some(CONSENT_ISSUER)));
    let (status, doc) = use_it(&fresh).await;
    assert_eq!((status, refusal_code(&doc)), (403, "consent.revoked".to_string()), "{doc}");
    let (status, doc) = revoke(&lab, "credit_platform", &unused).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!((doc["revoked_as"].as_str(), doc["newly_revoked"].as_bool()), (Some("issuer"), Some(true)));
    let (status, doc) = use_it(&unused).await;
    assert_eq!((status, refusal_code(&doc)), (403, "consent.revoked".to_string()), "{doc}");

    // The issuer revokes a used consent too.
    let by_issuer = sign(&lab, draft(&lab));
    assert_eq!(use_it(&by_issuer).await.0, 200);
    assert_eq!(revoke(&lab, "credit_platform", &by_issuer).await.0, 200);
    assert_eq!(revoke(&lab, "credit_platform", &by_issuer).await.1["newly_revoked"], false);

    // Positive control for the restart: a consent nobody revoked, used once.
    let kept = sign(&lab, draft(&lab));
    assert_eq!(use_it(&kept).await.0, 200);

    // Revocations (and use counts) survive a restart on the same state directory.
    let lab = restart_gateway(lab).await;
    for consent in [&used, &unused, &by_issuer] {
        let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(consent.clone()))).await;
        assert_eq!((status, refusal_code(&doc)), (403, "consent.revoked".to_string()), "{doc}");
    }
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(kept.clone()))).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["consent"]["uses"], 2, "the use before the restart is remembered");
    let id = used["consent_id"].as_str().expect("id");
    let status_doc = lab.http("samr", "GET", &format!("/v1/consents/{id}"), &[], None).await.expect("http");
    let value: serde_json::Value = serde_json::from_slice(&status_doc.body).expect("json");
    assert_eq!(
        (value["revoked"].as_bool(), value["issuer"].as_str(), value["uses"].as_u64()),
        (Some(true), Some(CONSENT_ISSUER), Some(2))
    );
    lab.stop().await.expect("stop");
}

fn dates(doc: &serde_json::Value, dataset: &str, column: &str) -> Vec<String> {
    doc["datasets"][dataset]["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{dataset} rows: {doc}"))
        .iter()
        .map(|r| r[column].as_str().unwrap_or_else(|| panic!("{dataset}.{column}: {r}")).to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_limits_the_columns_and_the_data_date_range_at_the_source() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    const DEBTORS: &str = "court.dishonest_debtors";
    const BLACK: &str = "credit_platform.black_list";

    // Control: a consent without limits shows every granted column and record.
    let (status, all) = lookup(&lab, "credit_agency", person_request(&lab, Some(sign(&lab, draft(&lab))))).await;
    assert_eq!(status, 200, "{all}");
    let first = &all["datasets"][DEBTORS]["rows"][0];
    assert!(first.get("name").is_some() && first.get("resident_id").is_some(), "{all}");
    assert!(all["datasets"][DEBTORS].get("data_range").is_none());
    let mut every: Vec<String> = dates(&all, DEBTORS, "filing_date");
    every.extend(dates(&all, BLACK, "listed_date"));
    every.sort();
    every.dedup();
    assert!(every.len() >= 2, "the featured individual's records need two dates to split: {every:?}");

    // Columns: only those the consent lists (and the dispute flag).
    let mut d = draft(&lab);
    d.columns = Some(std::collections::BTreeMap::from([(
        DEBTORS.to_string(),
        vec!["case_no".to_string(), "court".to_string(), "amount".to_string(), "filing_date".to_string()],
    )]));
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(sign(&lab, d)))).await;
    assert_eq!(status, 200, "{doc}");
    let rows = doc["datasets"][DEBTORS]["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), all["datasets"][DEBTORS]["rows"].as_array().map(Vec::len).unwrap_or(0));
    for row in rows {
        let mut keys: Vec<&str> = row.as_object().expect("row").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["amount", "case_no", "court", "disputed", "filing_date"], "{row}");
    }
    let masks = &doc["datasets"][DEBTORS]["masks"];
    assert_eq!((masks["name"].as_str(), masks["resident_id"].as_str()), (Some("withheld"), Some("withheld")));
    assert_eq!(masks["amount"], "range_bucket(100000)", "a listed column keeps its mask");
    // Withheld columns are not even read from the source; the key is still applied there.
    let court = served(&lab, "court").into_iter().rev().find(|r| r.sql.contains("dishonest_debtors")).expect("query");
    let (select, filter) = court.sql.split_once(" FROM ").expect("SELECT … FROM");
    assert!(!select.contains("\"name\"") && !select.contains("resident_id"), "{}", court.sql);
    assert!(filter.contains("resident_id"), "{}", court.sql);
    // A dataset the column list does not mention is not restricted.
    assert!(doc["datasets"][BLACK]["rows"][0].get("name").is_some(), "{doc}");

    // Dates: only records dated within the range leave the source.
    let (from, to) = (every[every.len() - 1].clone(), every[every.len() - 1].clone());
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    let mut d = draft(&lab);
    (d.data_from, d.data_to) = (Some(day(&from)), Some(day(&to)));
    let (status, doc) = lookup(&lab, "credit_agency", person_request(&lab, Some(sign(&lab, d)))).await;
    assert_eq!(status, 200, "{doc}");
    let mut kept = 0;
    for (dataset, column) in [(DEBTORS, "filing_date"), (BLACK, "listed_date")] {
        let got = dates(&doc, dataset, column);
        let want: Vec<String> = dates(&all, dataset, column).into_iter().filter(|d| *d >= from && *d <= to).collect();
        assert_eq!(got.len(), want.len(), "{dataset}: {got:?} vs {want:?}");
        assert!(got.iter().all(|d| *d >= from && *d <= to), "{dataset}: {got:?}");
        kept += got.len();
        let range = &doc["datasets"][dataset]["data_range"];
        assert_eq!((range["column"].as_str(), range["from"].as_str()), (Some(column), Some(from.as_str())));
    }
    assert!(kept > 0, "the range keeps the latest record");
    let dropped: usize = [(DEBTORS, "filing_date"), (BLACK, "listed_date")]
        .iter()
        .map(|(ds, c)| dates(&all, ds, c).len())
        .sum::<usize>()
        - kept;
    assert!(dropped > 0, "negative control: the unlimited consent saw records outside the range");
    // The range is part of the source's mandatory predicate, with the key:
    // the source sent exactly the rows in range.
    let court = served(&lab, "court").into_iter().rev().find(|r| r.sql.contains("dishonest_debtors")).expect("query");
    let unquoted = court.sql.replace('"', "");
    assert!(unquoted.contains("filing_date >=") && unquoted.contains("filing_date <="), "{}", court.sql);
    assert!(court.sql.contains(&from), "{}", court.sql);
    assert_eq!(court.rows as usize, dates(&doc, DEBTORS, "filing_date").len(), "{}", court.sql);

    // A dataset without a record date cannot be read under a date-limited
    // consent (here an enterprise's consent); the others still can.
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let ratings = ["tax.credit_ratings", "market.penalties"];
    let enterprise = |limited: bool| {
        let mut d = draft(&lab);
        d.subject = SubjectRef::parse(SubjectKind::CreditCode, &code).expect("code");
        d.datasets = ratings.iter().map(|s| s.to_string()).collect();
        if limited {
            d.data_from = Some(day("2000-01-01"));
        }
        serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "credit_report",
                           "datasets": ratings, "consent": sign(&lab, d)})
    };
    let (status, doc) = lookup(&lab, "credit_agency", enterprise(true)).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["datasets"]["tax.credit_ratings"]["status"], "denied", "{doc}");
    let why = doc["datasets"]["tax.credit_ratings"]["error"].as_str().unwrap_or("");
    assert!(why.contains("has no record date"), "{why}");
    assert_eq!(doc["datasets"]["market.penalties"]["status"], "ok", "{doc}");
    assert_eq!(doc["incomplete"], false);
    let (status, doc) = lookup(&lab, "credit_agency", enterprise(false)).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["datasets"]["tax.credit_ratings"]["status"], "ok", "control: {doc}");
    lab.stop().await.expect("stop");
}

/// Consent status is the consent's business only: its grantee, its issuer's
/// side and the subject's oversight agency read it; anyone else gets exactly
/// the answer an unknown or malformed id gets, and every read is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_status_is_readable_only_by_those_concerned_and_looks_unknown_to_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = creditgate_tests::start_lab(tmp.path()).await;
    let consent = sign(&lab, draft(&lab));
    let cid = consent["consent_id"].as_str().expect("id").to_string();
    let (status, _) = lookup(&lab, "credit_agency", person_request(&lab, Some(consent))).await;
    assert_eq!(status, 200, "the consent is used once");
    let read = async |caller: &str, id: &str| {
        let response = lab.http(caller, "GET", &format!("/v1/consents/{id}"), &[], None).await.expect("http");
        (response.status, serde_json::from_slice::<serde_json::Value>(&response.body).unwrap_or_default())
    };
    // The grantee and the oversight agency of the subject's kind read it.
    let (status, doc) = read("credit_agency", &cid).await;
    assert_eq!((status, doc["uses"].as_u64()), (200, Some(1)), "{doc}");
    let (status, _) = read("samr", &cid).await;
    assert_eq!(status, 200);
    // A platform is none of those: the same 404 as for an unknown id and a malformed one.
    let (other, other_doc) = read("platform_a", &cid).await;
    let unknown_id = format!("{}0", &cid[..cid.len() - 1]);
    let unknown_id = if unknown_id == cid { format!("{}1", &cid[..cid.len() - 1]) } else { unknown_id };
    let (unknown, unknown_doc) = read("platform_a", &unknown_id).await;
    let (malformed, malformed_doc) = read("platform_a", "not-a-consent").await;
    assert_eq!((other, unknown, malformed), (404, 404, 404));
    let message = |doc: &serde_json::Value| doc["error"].clone();
    assert_eq!(message(&other_doc), message(&unknown_doc), "indistinguishable from an unknown id");
    assert_eq!(message(&other_doc), message(&malformed_doc), "indistinguishable from a malformed id");
    assert!(!other_doc.to_string().contains("uses"), "{other_doc}");
    // Every read, allowed or not, is one audit record.
    let reads = creditgate_tests::audit_records(&lab)
        .iter()
        .filter(|r| serde_json::to_string(&r.query).is_ok_and(|q| q.contains("consent")) && r.datasets.is_empty())
        .filter(|r| r.caller.name == "platform_a")
        .count();
    assert_eq!(reads, 3, "three reads by the platform, three records");
    lab.stop().await.expect("stop");
}
