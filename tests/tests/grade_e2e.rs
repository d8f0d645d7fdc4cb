//! Graded supervision end to end: grades of demo enterprises checked
//! against a computation over the raw files (SQL over the Parquet files,
//! not the gateway's rule engine), two callers with different policies
//! (differences only where the policy hides a dataset), an individual
//! business (legal basis, human review), a failed source (incomplete, never
//! better), batches (NDJSON, warnings first, trailer, all-or-nothing quota)
//! and the Flight action.

use std::collections::{BTreeMap, BTreeSet};

use creditgate_grade::{Literal, Op, Rule, Template};
use creditgate_tests::{HttpConn, audit_records, reference_session, start_lab, start_lab_with};
use creditgate_tooling::demo::{DEMO_POLICY, Lab};
use datafusion::prelude::SessionContext;
use serde_json::{Value, json};

fn body_text(reply: &creditgate_tooling::client::HttpResponse) -> String {
    String::from_utf8_lossy(&reply.body[..reply.body.len().min(600)]).into_owned()
}

fn body_json(reply: &creditgate_tooling::client::HttpResponse) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

fn template() -> Template {
    Template::parse(creditgate_grade::DEMO_TEMPLATE, "demo-grading.toml").expect("demo template")
}

async fn grade(lab: &Lab, caller: &str, code: &str) -> (u16, Value) {
    let reply = lab.http(caller, "GET", &format!("/v1/grades/{code}"), &[], None).await.expect("http");
    (reply.status, serde_json::from_slice(&reply.body).unwrap_or(Value::Null))
}

fn sql_literal(literal: &Literal) -> String {
    match literal {
        Literal::Bool(b) => b.to_string(),
        Literal::Int(n) => n.to_string(),
        Literal::Float(f) => f.to_string(),
        Literal::Text(t) => format!("'{}'", t.replace('\'', "''")),
        Literal::List(items) => format!("({})", items.iter().map(sql_literal).collect::<Vec<_>>().join(", ")),
    }
}

/// The record keys a rule matches for `code`, computed with SQL over the raw files.
async fn expected_keys(ctx: &SessionContext, rule: &Rule, code: &str, today: chrono::NaiveDate) -> Vec<String> {
    let policy = creditgate_policy::Policy::parse(DEMO_POLICY, "demo-policy.toml").expect("policy");
    let key = policy.dataset(&rule.dataset).and_then(|d| d.subject_keys.credit_code.clone()).expect("credit code key");
    let mut predicates = vec![format!("{key} = '{code}'")];
    for c in &rule.when {
        let value = c.value.as_ref().map(sql_literal).unwrap_or_default();
        predicates.push(match c.op {
            Op::IsNull => format!("{} IS NULL", c.column),
            Op::IsNotNull => format!("{} IS NOT NULL", c.column),
            Op::In => format!("{} IN {value}", c.column),
            Op::NotIn => format!("{} NOT IN {value}", c.column),
            op => format!("{} {} {value}", c.column, if op == Op::Ne { "<>" } else { op.as_str() }),
        });
    }
    if let Some(w) = &rule.within {
        let start = match (w.days, w.months, w.years) {
            (Some(d), _, _) => today - chrono::Days::new(u64::from(d)),
            (_, Some(m), _) => today.checked_sub_months(chrono::Months::new(m)).expect("date"),
            (_, _, Some(y)) => today.checked_sub_months(chrono::Months::new(12 * y)).expect("date"),
            _ => today,
        };
        predicates.push(format!("CAST({} AS DATE) >= DATE '{start}'", w.column));
    }
    let sql = format!(
        "SELECT CAST({} AS VARCHAR) AS k FROM {} WHERE {}",
        rule.record_key,
        rule.dataset,
        predicates.join(" AND ")
    );
    let batches = ctx.sql(&sql).await.expect(&sql).collect().await.expect("collect");
    let mut keys = Vec::new();
    for batch in &batches {
        let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
        let strings = column.as_any().downcast_ref::<arrow::array::StringArray>().expect("strings");
        keys.extend(strings.iter().map(|s| s.unwrap_or("").to_string()));
    }
    keys.sort();
    keys
}

fn text_of(value: &Value) -> String {
    value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string())
}

/// The expected grade of `code` from the raw files: (grade, score, rule id → matched keys).
async fn expected_grade(
    ctx: &SessionContext,
    t: &Template,
    code: &str,
) -> (String, i64, BTreeMap<String, Vec<String>>) {
    let today = chrono::Local::now().date_naive();
    let mut score = t.template.start;
    let mut worst = 0usize;
    let mut matched = BTreeMap::new();
    for rule in &t.rules {
        let keys = expected_keys(ctx, rule, code, today).await;
        let times = if rule.each { rule.max_times.unwrap_or(1) as usize } else { 1 };
        score += rule.points * keys.len().min(times) as i64;
        if !keys.is_empty()
            && let Some(direct) = &rule.grade
        {
            worst = worst.max(t.bands.iter().position(|b| &b.grade == direct).expect("band"));
        }
        matched.insert(rule.id.clone(), keys);
    }
    let score = score.clamp(t.template.floor, t.template.ceiling());
    let band = t.bands.iter().position(|b| score >= b.min).unwrap_or(t.bands.len() - 1);
    (t.bands[band.max(worst)].grade.clone(), score, matched)
}

/// Demo enterprises with records in the datasets the rules read.
async fn sample(ctx: &SessionContext, lab: &Lab) -> Vec<String> {
    let queries = [
        "SELECT credit_code AS c FROM market.penalties GROUP BY credit_code ORDER BY count(*) DESC, credit_code LIMIT 3",
        "SELECT credit_code AS c FROM court.dishonest_debtors WHERE credit_code IS NOT NULL ORDER BY c LIMIT 2",
        "SELECT credit_code AS c FROM tax.major_violations ORDER BY c LIMIT 2",
        "SELECT credit_code AS c FROM tax.credit_ratings WHERE rating IN ('A', 'C', 'D') ORDER BY rating, c LIMIT 3",
        "SELECT merchant_credit_code AS c FROM payment.fraud_reports WHERE merchant_credit_code IS NOT NULL ORDER BY reported_date DESC LIMIT 2",
        "SELECT merchant_credit_code AS c FROM payment.merchant_risk WHERE risk_level = 'high' AND merchant_credit_code IS NOT NULL ORDER BY c LIMIT 1",
        "SELECT credit_code AS c FROM courier.violations WHERE credit_code IS NOT NULL ORDER BY c LIMIT 2",
        "SELECT owner_credit_code AS c FROM platform_a.violations WHERE owner_credit_code IS NOT NULL ORDER BY c LIMIT 2",
        "SELECT merchant_credit_code AS c FROM complaints.complaints WHERE merchant_credit_code IS NOT NULL GROUP BY merchant_credit_code ORDER BY count(*) DESC, c LIMIT 2",
        "SELECT credit_code AS c FROM credit_platform.black_list WHERE credit_code IS NOT NULL ORDER BY c LIMIT 2",
        "SELECT credit_code AS c FROM credit_platform.red_list WHERE credit_code IS NOT NULL ORDER BY c LIMIT 2",
        "SELECT credit_code AS c FROM market.abnormal_operations ORDER BY c LIMIT 1",
        "SELECT credit_code AS c FROM market.enterprises ORDER BY c LIMIT 2",
    ];
    let mut codes = vec![lab.manifest.featured.enterprise_credit_code.clone()];
    for sql in queries {
        for batch in ctx.sql(sql).await.expect(sql).collect().await.expect("collect") {
            let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
            let strings = column.as_any().downcast_ref::<arrow::array::StringArray>().expect("strings");
            codes.extend(strings.iter().flatten().map(str::to_string));
        }
    }
    let mut seen = BTreeSet::new();
    codes.retain(|c| seen.insert(c.clone()));
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grades_equal_a_computation_over_the_raw_files_and_hidden_datasets_are_not_evaluated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let ctx = reference_session(&lab).await;
    let t = template();
    let codes = sample(&ctx, &lab).await;
    assert!(codes.len() >= 15, "{codes:?}");
    let policy = creditgate_policy::Policy::parse(DEMO_POLICY, "demo-policy.toml").expect("policy");
    let agency = policy.principal("credit_agency").expect("credit agency");
    let agency_sees: BTreeSet<String> = policy.grants_for(agency).into_iter().map(|g| g.dataset.to_string()).collect();
    let mut grades_seen = BTreeSet::new();
    let mut fired_seen = BTreeSet::new();
    for code in &codes {
        let (want_grade, want_score, want) = expected_grade(&ctx, &t, code).await;
        let (status, doc) = grade(&lab, "samr", code).await;
        assert_eq!(status, 200, "{code}: {doc}");
        assert_eq!(doc["official"], false);
        assert_eq!(doc["complete"], true, "{code}: samr sees every dataset: {doc}");
        assert_eq!(doc["grade"], json!(want_grade), "{code}: {doc}");
        assert_eq!(doc["score"], json!(want_score), "{code}");
        assert_eq!(doc["template"]["version"], json!(t.template.version));
        grades_seen.insert(want_grade.clone());
        for (rule, outcome) in t.rules.iter().zip(doc["rules"].as_array().expect("rules")) {
            let keys = &want[&rule.id];
            assert_eq!(outcome["id"], json!(rule.id));
            assert_eq!(outcome["matched"], json!(keys.len()), "{code} {}: {outcome}", rule.id);
            assert_eq!(
                outcome["status"],
                json!(if keys.is_empty() { "not_fired" } else { "fired" }),
                "{code} {}",
                rule.id
            );
            let evidence: Vec<String> =
                outcome["evidence"].as_array().expect("evidence").iter().map(|e| text_of(&e["record"])).collect();
            assert_eq!(evidence.len(), keys.len().min(creditgate_grade::eval::MAX_EVIDENCE));
            for key in &evidence {
                assert!(keys.contains(key), "{code} {}: evidence {key} is not a matching record {keys:?}", rule.id);
            }
            if !keys.is_empty() {
                fired_seen.insert(rule.id.clone());
                let fields = outcome["evidence"][0]["fields"].as_object().expect("fields");
                let read: BTreeSet<&str> = rule.columns_read();
                assert_eq!(
                    fields.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                    read,
                    "the fields the predicate read"
                );
            }
        }

        // The credit agency: the same where it sees the dataset, not evaluated where it does not.
        if code.starts_with("92") {
            continue;
        }
        let (status, theirs) = grade(&lab, "credit_agency", code).await;
        assert_eq!(status, 200, "{code}: {theirs}");
        assert_eq!(theirs["complete"], false, "the credit agency sees only some datasets");
        assert_eq!(theirs["grade"], Value::Null, "an incomplete grade is never stated");
        for (mine, other) in
            doc["rules"].as_array().expect("rules").iter().zip(theirs["rules"].as_array().expect("rules"))
        {
            let dataset = mine["dataset"].as_str().expect("dataset");
            if agency_sees.contains(dataset) {
                for field in ["status", "points", "matched"] {
                    assert_eq!(
                        mine[field], other[field],
                        "{code} {}: {field} differs where both see {dataset}",
                        mine["id"]
                    );
                }
            } else {
                assert_eq!(other["status"], "not_evaluated", "{code}: {dataset} is hidden from the credit agency");
                assert!(other["reason"].as_str().is_some_and(|r| r.contains("not granted")), "{other}");
                assert_eq!(other["evidence"], json!([]));
            }
        }
        let rank = |g: &Value| t.bands.iter().position(|b| Some(b.grade.as_str()) == g.as_str()).expect("band");
        assert!(rank(&theirs["range"]["best"]) <= rank(&doc["grade"]), "{code}: {theirs}");
        assert!(
            rank(&theirs["range"]["worst"]) >= rank(&doc["grade"]),
            "{code}: the hidden data never improves the grade"
        );
    }
    assert!(grades_seen.len() >= 3, "the sample covers several grades: {grades_seen:?}");
    assert!(fired_seen.len() >= 10, "the sample fires most rules: {fired_seen:?}");

    // Each grade is audited with the grade and the rules that fired, never the identifier.
    let records = audit_records(&lab);
    let graded: Vec<_> = records
        .iter()
        .filter_map(|r| match &r.query {
            creditgate_audit::RecordedQuery::Lookup(v) if v.get("grade").is_some() => Some((r, v)),
            _ => None,
        })
        .collect();
    assert!(graded.len() >= codes.len(), "{} grade records", graded.len());
    let (record, what) = graded.first().expect("a grade record");
    assert!(what["grade"]["fired"].is_array() && what["grade"]["template"] == json!(t.template.id), "{what}");
    assert_eq!(record.subject_hashes.len(), 1);
    let text = serde_json::to_string(&records).expect("json");
    assert!(!text.contains(&codes[1]), "a credit code reached the audit log in clear");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn individual_businesses_need_a_legal_basis_and_get_a_human_review_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let ctx = reference_session(&lab).await;
    let batches = ctx
        .sql("SELECT credit_code FROM market.enterprises WHERE is_individual ORDER BY credit_code LIMIT 1")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
    let code = column.as_any().downcast_ref::<arrow::array::StringArray>().expect("strings").value(0).to_string();
    assert!(code.starts_with("92"), "individual businesses carry entity type 2: {code}");

    // The credit agency's licence covers enterprises, not natural persons.
    let (status, doc) = grade(&lab, "credit_agency", &code).await;
    assert_eq!(status, 403, "{doc}");
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("consent"), "{doc}");

    // With the subject's consent the credit agency may; datasets the consent does not cover are not evaluated.
    let now = chrono::Utc::now();
    let draft = creditgate_consent::ConsentDraft {
        consent_id: None,
        issuer: creditgate_tooling::demo::CONSENT_ISSUER.to_string(),
        subject: creditgate_consent::SubjectRef::parse(creditgate_ident::SubjectKind::CreditCode, &code)
            .expect("subject"),
        grantee: "credit-agency".to_string(),
        purposes: vec!["credit_assessment".to_string()],
        datasets: vec!["market.penalties".to_string(), "court.dishonest_debtors".to_string()],
        columns: None,
        data_from: None,
        data_to: None,
        valid_from: now - chrono::Duration::minutes(5),
        valid_until: now + chrono::Duration::days(1),
        max_uses: 3,
    };
    let consent =
        serde_json::to_value(creditgate_consent::issue(&lab.consent_key, draft).expect("issue")).expect("json");
    let body = json!({"purpose": "credit_assessment", "consent": consent}).to_string();
    let reply = lab.http("credit_agency", "POST", &format!("/v1/grades/{code}"), &[], Some(body)).await.expect("http");
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    let doc = body_json(&reply);
    assert!(doc["legal_basis"].as_str().is_some_and(|b| b.starts_with("consent:")), "{doc}");
    assert_eq!(doc["consent"]["uses"], 1);
    for rule in doc["rules"].as_array().expect("rules") {
        let covered = ["market.penalties", "court.dishonest_debtors"].contains(&rule["dataset"].as_str().unwrap_or(""));
        if !covered {
            assert_eq!(rule["status"], "not_evaluated", "{rule}");
        } else {
            assert_ne!(rule["status"], "not_evaluated", "{rule}");
        }
    }
    assert_eq!(doc["complete"], false);

    // An agency under its duty may; the answer says how to ask for human review.
    let (status, doc) = grade(&lab, "samr", &code).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["subject"]["natural_person"], true);
    let path = doc["review"]["path"].as_str().expect("review path").to_string();
    let id = doc["request_id"].as_str().expect("request id").to_string();
    assert_eq!(path, format!("/v1/grades/{id}/review"));

    let body = json!({"credit_code": code, "reason": "该处罚已撤销，请人工复核"}).to_string();
    let reply = lab.http("samr", "POST", &path, &[], Some(body.clone())).await.expect("http");
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    assert_eq!(body_json(&reply)["status"], "recorded");
    let reviews: Vec<_> = audit_records(&lab)
        .into_iter()
        .filter(|r| matches!(&r.query, creditgate_audit::RecordedQuery::Lookup(v) if v["grade_review"]["grade_request_id"] == json!(id)))
        .collect();
    assert_eq!(reviews.len(), 1, "the review request is recorded for the officer");
    assert_eq!(reviews[0].outcome, creditgate_audit::Outcome::Allowed);

    // The privacy officer finds the grade and the review request among the subject's records.
    let found = lab
        .http("privacy_officer", "GET", &format!("/v1/audit/records?subject={code}&limit=100"), &[], None)
        .await
        .expect("http");
    assert_eq!(found.status, 200, "{}", body_text(&found));
    let records = body_json(&found)["items"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<&str> = records
        .iter()
        .filter_map(|r| {
            let q = &r["query"]["lookup"];
            if q.get("grade_review").is_some() {
                Some("review")
            } else if q["grade"].get("fired").is_some() {
                Some("grade")
            } else {
                None
            }
        })
        .collect();
    assert!(kinds.contains(&"grade") && kinds.contains(&"review"), "{kinds:?} in {}", body_text(&found));

    // Negative controls: a grade id that is not this caller's, or not of this subject.
    let reply = lab.http("platform_a", "POST", &path, &[], Some(body.clone())).await.expect("http");
    assert_eq!(reply.status, 404, "another caller's grade: {}", body_text(&reply));
    let other = json!({"credit_code": lab.manifest.featured.enterprise_credit_code, "reason": "x"}).to_string();
    let reply = lab.http("samr", "POST", &path, &[], Some(other)).await.expect("http");
    assert_eq!(reply.status, 404, "another subject: {}", body_text(&reply));
    let reply = lab.http("samr", "POST", "/v1/grades/not-an-id/review", &[], Some(body)).await.expect("http");
    assert_eq!(reply.status, 400, "{}", body_text(&reply));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_source_makes_the_grade_incomplete_never_better() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let full_dir = tmp.path().join("full");
    let lab = start_lab(&full_dir).await;
    let ctx = reference_session(&lab).await;
    let t = template();
    let debtor = {
        let sql = "SELECT credit_code FROM court.dishonest_debtors WHERE credit_code IS NOT NULL AND event_end_date IS NULL ORDER BY credit_code LIMIT 1";
        let batches = ctx.sql(sql).await.expect("sql").collect().await.expect("collect");
        let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
        column.as_any().downcast_ref::<arrow::array::StringArray>().expect("strings").value(0).to_string()
    };
    let (status, full) = grade(&lab, "samr", &debtor).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(full["grade"], "D", "an undischarged dishonest debtor is graded D: {full}");
    drop(lab);

    let down = start_lab_with(&tmp.path().join("down"), |o| o.down_at_start = vec!["court".to_string()]).await;
    let (status, doc) = grade(&down, "samr", &debtor).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["complete"], false, "{doc}");
    assert_eq!(doc["grade"], Value::Null, "no grade is stated with a source missing");
    assert_eq!(doc["datasets"]["court.dishonest_debtors"], "unavailable");
    let court = doc["rules"].as_array().expect("rules").iter().find(|r| r["id"] == "COURT-DEBTOR").expect("rule");
    assert_eq!(court["status"], "not_evaluated");
    assert_eq!(doc["range"]["worst"], "D", "the missing source may hide a direct D: {doc}");
    let rank = |g: &Value| t.bands.iter().position(|b| Some(b.grade.as_str()) == g.as_str()).expect("band");
    assert!(rank(&doc["range"]["worst"]) >= rank(&full["grade"]), "a failed source never improves the grade");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stream_warnings_first_with_a_trailer_and_spend_the_quota_all_or_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = DEMO_POLICY.replacen("daily_quota = 200000", "daily_quota = 40", 1);
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(policy)).await;
    let ctx = reference_session(&lab).await;
    let mut codes = sample(&ctx, &lab).await;
    codes.truncate(20);
    let n = codes.len();
    assert!(n >= 15);
    codes.push(codes[0].clone()); // a duplicate is graded once
    let pool: Vec<String> = {
        let sql = "SELECT credit_code FROM market.enterprises ORDER BY credit_code LIMIT 60";
        let batches = ctx.sql(sql).await.expect("sql").collect().await.expect("collect");
        let column = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
        column
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("strings")
            .iter()
            .flatten()
            .map(str::to_string)
            .collect()
    };
    assert!(pool.len() >= 41);
    let batch = |codes: &[String]| json!({"credit_codes": codes}).to_string();

    // Over the quota (40): refused whole, nothing spent.
    let reply = lab.http("samr", "POST", "/v1/grades", &[], Some(batch(&pool[..41]))).await.expect("http");
    assert_eq!(reply.status, 429, "{}", body_text(&reply));
    assert!(
        body_json(&reply)["error"]["message"].as_str().unwrap_or("").contains("this batch needs 41"),
        "{}",
        body_text(&reply)
    );

    // A bad code refuses the batch, naming it.
    let mut bad = codes.clone();
    bad.insert(3, "91370200MA3XXXXXX".to_string());
    let reply = lab
        .http("samr", "POST", "/v1/grades", &[], Some(json!({"credit_codes": bad}).to_string()))
        .await
        .expect("http");
    assert_eq!(reply.status, 400, "{}", body_text(&reply));
    assert!(
        body_json(&reply)["error"]["message"].as_str().unwrap_or("").contains("credit_codes[3]"),
        "{}",
        body_text(&reply)
    );

    let mut conn = HttpConn::open(&lab, "samr").await.expect("connect");
    let response = conn
        .send("POST", "/v1/grades", &[("te", "trailers")], Some(json!({"credit_codes": codes}).to_string()))
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/x-ndjson"));
    use http_body_util::BodyExt;
    let collected = response.into_body().collect().await.expect("body");
    let trailer = collected
        .trailers()
        .and_then(|t| t.get("creditgate-progress"))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = String::from_utf8(collected.to_bytes().to_vec()).expect("utf8");
    let all: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("ndjson line")).collect();
    // Progress lines tell how far the batch is while lines without warnings are held back.
    let progress: Vec<u64> = all.iter().filter_map(|l| l["progress"]["done"].as_u64()).collect();
    assert!(!progress.is_empty() && progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");
    assert!(all.iter().filter(|l| l.get("progress").is_some()).all(|l| l["progress"]["total"] == json!(n)));
    let lines: Vec<Value> = all.into_iter().filter(|l| l.get("progress").is_none()).collect();
    let (summary, grades) = lines.split_last().expect("lines");
    assert_eq!(summary["summary"]["total"], json!(n), "{summary}");
    assert_eq!(summary["summary"]["done"], json!(n));
    assert_eq!(grades.len(), n, "one line per distinct code");
    assert_eq!(
        trailer.as_deref(),
        Some(format!("done={n}; total={n}; complete={n}; incomplete=0; refused=0").as_str())
    );
    let warned: Vec<bool> = grades.iter().map(|g| g["warnings"].as_array().is_some_and(|w| !w.is_empty())).collect();
    assert!(warned.iter().any(|w| *w), "the sample has subjects with warnings");
    let first_plain = warned.iter().position(|w| !w).unwrap_or(warned.len());
    assert!(warned[first_plain..].iter().all(|w| !w), "warnings come first: {warned:?}");
    // Each line equals the single grade of that subject.
    for line in grades.iter().take(5) {
        let code = line["subject"]["id"].as_str().expect("code");
        let (_, single) = grade(&lab, "samr", code).await;
        assert_eq!(line["grade"], single["grade"], "{code}");
        assert_eq!(line["score"], single["score"], "{code}");
    }
    // Spent: n (the batch) + 5 (the singles); the rest is spent whole or not at all.
    let remaining = 40 - n - 5;
    let reply = lab.http("samr", "POST", "/v1/grades", &[], Some(batch(&pool[..remaining + 1]))).await.expect("http");
    assert_eq!(reply.status, 429, "one over what remains: {}", body_text(&reply));
    let reply = lab.http("samr", "POST", "/v1/grades", &[], Some(batch(&pool[..remaining]))).await.expect("http");
    assert_eq!(reply.status, 200, "exactly what remains: {}", body_text(&reply));
    let (status, _) = grade(&lab, "samr", &codes[0]).await;
    assert_eq!(status, 429, "the quota is spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flight_action_gives_the_same_grade_as_http() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let (status, http) = grade(&lab, "samr", &code).await;
    assert_eq!(status, 200, "{http}");
    let mut client = lab.flight_client("samr").expect("flight");
    let flight =
        client.grade(&json!({"credit_code": code, "purpose": "licensing_review"})).await.expect("grade action");
    for field in ["grade", "score", "complete", "range", "warnings"] {
        assert_eq!(flight[field], http[field], "{field}");
    }
    let error =
        client.grade(&json!({"credit_code": "123", "purpose": "licensing_review"})).await.expect_err("a bad code");
    assert!(creditgate_tooling::client::flight_error_text(&error).contains("credit_code"), "{error}");
    let unknown = client.grade(&json!({"credit_code": code, "colour": 1})).await.expect_err("an unknown key");
    assert!(creditgate_tooling::client::flight_error_text(&unknown).contains("colour"), "{unknown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_batch_grades_every_enterprise_registered_there() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let ctx = reference_session(&lab).await;
    let sql = "SELECT district_code, count(*) AS n FROM market.enterprises GROUP BY district_code ORDER BY n, district_code LIMIT 1";
    let batches = ctx.sql(sql).await.expect("sql").collect().await.expect("collect");
    let district = arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
    let district = district.as_any().downcast_ref::<arrow::array::StringArray>().expect("strings").value(0).to_string();
    let n = arrow::compute::cast(batches[0].column(1), &arrow::datatypes::DataType::Int64).expect("cast");
    let n = n.as_any().downcast_ref::<arrow::array::Int64Array>().expect("ints").value(0);
    let reply = lab
        .http("samr", "POST", "/v1/grades", &[], Some(json!({"district": district}).to_string()))
        .await
        .expect("http");
    assert_eq!(reply.status, 200, "{}", body_text(&reply));
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    let summary: Value = serde_json::from_str(text.lines().last().expect("summary")).expect("json");
    assert_eq!(summary["summary"]["total"], json!(n), "{summary}");
    assert_eq!(summary["summary"]["done"], json!(n));

    // Negative controls: a malformed district, both codes and a district, a district with nobody.
    for (body, status, words) in [
        (json!({"district": "37A202"}), 400, "6-digit"),
        (
            json!({"district": district, "credit_codes": [lab.manifest.featured.enterprise_credit_code]}),
            400,
            "not both",
        ),
        (json!({"district": "999999"}), 404, "no enterprise"),
    ] {
        let reply = lab.http("samr", "POST", "/v1/grades", &[], Some(body.to_string())).await.expect("http");
        assert_eq!(reply.status, status, "{body}: {}", body_text(&reply));
        assert!(body_json(&reply)["error"]["message"].as_str().unwrap_or("").contains(words), "{}", body_text(&reply));
    }
}
