//! Policy in the plan, end to end: an attack suite trying to recover masked or
//! withheld values over both front ends, the same results cell by cell over
//! Flight SQL and HTTP, row filters that no user predicate can see past,
//! retention and dispute flags against the generated data, no spilling,
//! policy reload, "explain my access" (`GET /v1/catalog` and Flight SQL
//! `GetTables` field metadata), licence scope and the purpose requirement.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::Schema;
use arrow_flight::IpcMessage;
use arrow_flight::sql::CommandGetTables;
use creditgate_engine::PURPOSE_HEADER;
use creditgate_policy::Policy;
use creditgate_tests::{HttpConn, reference_session, sorted_rows, start_lab, start_lab_with};
use creditgate_tooling::client::flight_error_text;
use creditgate_tooling::demo::{DEMO_POLICY, Lab};
use futures::TryStreamExt;

/// Raw values the callers must never recover.
struct Secrets {
    code: String,
    id: String,
    id_middle: String,
    birth_year: String,
    name: String,
    name_second: String,
    phone: String,
    phone_middle: String,
    individual_id: String,
}

impl Secrets {
    fn leaked_in(&self, text: &str) -> Option<&str> {
        [&self.id, &self.id_middle, &self.name, &self.phone, &self.phone_middle, &self.individual_id]
            .into_iter()
            .find(|s| !s.is_empty() && text.contains(s.as_str()))
            .map(String::as_str)
    }
}

fn cell(batches: &[RecordBatch], column: usize) -> String {
    let rows = sorted_rows(batches);
    rows.first().map(|r| r.split('|').nth(column).unwrap_or("").to_string()).unwrap_or_default()
}

async fn secrets(lab: &Lab) -> Secrets {
    let reference = reference_session(lab).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let batches = reference
        .sql(&format!(
            "SELECT legal_rep_id, legal_rep_name, phone FROM market.enterprises WHERE credit_code = '{code}'"
        ))
        .await
        .expect("plan")
        .collect()
        .await
        .expect("raw values");
    let id = cell(&batches, 0);
    let name = cell(&batches, 1);
    let phone = cell(&batches, 2);
    assert_eq!(id.len(), 18, "featured enterprise has a legal representative ID");
    assert!(name.chars().count() >= 2 && phone.len() >= 11);
    Secrets {
        id_middle: id[6..14].to_string(),
        birth_year: id[6..10].to_string(),
        name_second: name.chars().nth(1).map(String::from).unwrap_or_default(),
        phone_middle: phone[3..phone.len() - 4].to_string(),
        individual_id: lab.manifest.featured.individual_resident_id.clone(),
        code,
        id,
        name,
        phone,
    }
}

#[derive(Debug, Clone)]
enum Expect {
    /// Some rows, none leaking.
    Rows,
    /// No rows.
    Empty,
    /// A refusal or error whose text leaks nothing.
    Refused,
    /// The output (rows or error) does not contain this text.
    Lacks(&'static str),
    /// The first row contains this text.
    FirstHas(String),
}

struct Outcome {
    rows: Option<usize>,
    text: String,
}

async fn over_flight(lab: &Lab, caller: &str, sql: &str) -> Outcome {
    let mut client = lab.flight_client(caller).expect("client");
    match client.query(sql).await {
        Ok(batches) => {
            let rows = sorted_rows(&batches);
            Outcome { rows: Some(rows.len()), text: rows.join("\n") }
        }
        Err(e) => Outcome { rows: None, text: flight_error_text(&e) },
    }
}

async fn over_http(lab: &Lab, caller: &str, sql: &str) -> Outcome {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let response = lab.http(caller, "POST", "/v1/query", &[], Some(body)).await.expect("http");
    let text = String::from_utf8_lossy(&response.body).to_string();
    if response.status != 200 {
        return Outcome { rows: None, text };
    }
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    if value.get("error").is_some() {
        return Outcome { rows: None, text };
    }
    Outcome { rows: value["rows"].as_array().map(|a| a.len()), text }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_suite_recovers_nothing_masked_or_withheld_on_either_front_end() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The suite probes partial masks (hidden digits read as `*`, a birth year
    // inside the hidden part, …). The demo policy now withholds the legal
    // representative's ID from the credit agency and hides names entirely,
    // so the suite runs first, with every expectation, on the policy with the
    // conventional masks (`resident_id`, `chinese_name`, `mobile`, which the
    // mask kinds still offer), then again on the demo policy, where nothing
    // may leak either.
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(creditgate_tests::OLD_MASKS_POLICY.to_string())).await;
    let s = secrets(&lab).await;
    let c = &s.code;
    let id = &s.id;
    let base = format!("FROM market.enterprises WHERE credit_code = '{c}'");
    let six = &s.id[..6];
    let attacks: Vec<(&str, &str, String, Expect)> = vec![
        (
            "masked values only",
            "credit_agency",
            format!("SELECT legal_rep_id, legal_rep_name, phone {base}"),
            Expect::Rows,
        ),
        (
            "equality on the raw id",
            "credit_agency",
            format!("SELECT name FROM market.enterprises WHERE legal_rep_id = '{id}'"),
            Expect::Empty,
        ),
        (
            "IN list with the raw id",
            "credit_agency",
            format!("SELECT name FROM market.enterprises WHERE legal_rep_id IN ('{id}', 'x')"),
            Expect::Empty,
        ),
        (
            "BETWEEN the raw id",
            "credit_agency",
            format!("SELECT name FROM market.enterprises WHERE legal_rep_id BETWEEN '{id}' AND '{id}'"),
            Expect::Empty,
        ),
        (
            "LIKE on hidden birth year",
            "credit_agency",
            format!("SELECT name {base} AND legal_rep_id LIKE '______{}%'", s.birth_year),
            Expect::Empty,
        ),
        (
            "range probe sees '*' not digits (1)",
            "credit_agency",
            format!("SELECT name {base} AND legal_rep_id < '{six}0'"),
            Expect::Rows,
        ),
        (
            "range probe sees '*' not digits (2)",
            "credit_agency",
            format!("SELECT name {base} AND legal_rep_id > '{six}0'"),
            Expect::Empty,
        ),
        (
            "substr of the hidden part",
            "credit_agency",
            format!("SELECT substr(legal_rep_id, 7, 8) {base}"),
            Expect::FirstHas("********".into()),
        ),
        (
            "regexp on the hidden part",
            "credit_agency",
            format!("SELECT name {base} AND regexp_like(legal_rep_id, '^.{{6}}{}')", s.birth_year),
            Expect::Empty,
        ),
        (
            "ascii of a hidden character",
            "credit_agency",
            format!("SELECT ascii(substr(legal_rep_id, 8, 1)) {base}"),
            Expect::FirstHas("42".into()),
        ),
        (
            "GROUP BY the hidden part",
            "credit_agency",
            "SELECT substr(legal_rep_id, 7, 8) AS g, COUNT(*) FROM market.enterprises GROUP BY g".into(),
            // Grouping on a masked identifier relates rows: refused (CG-POL-002;
            // with relating allowed it would give one group, all stars).
            Expect::Refused,
        ),
        (
            "ORDER BY the masked column",
            "credit_agency",
            "SELECT legal_rep_id FROM market.enterprises ORDER BY legal_rep_id LIMIT 50".into(),
            Expect::Rows,
        ),
        (
            // Ranks over a masked value tell which rows hold equal values: relating, refused.
            "window rank over the masked column",
            "credit_agency",
            format!("SELECT rank() OVER (ORDER BY legal_rep_id) {base}"),
            Expect::Refused,
        ),
        (
            "join against guessed values",
            "credit_agency",
            format!("SELECT e.name FROM market.enterprises e JOIN (VALUES ('{id}')) AS g(id) ON e.legal_rep_id = g.id"),
            // A join key on a masked identifier: refused (CG-POL-002; with
            // relating allowed it would match nothing, the mask is compared).
            Expect::Refused,
        ),
        (
            "EXISTS with the raw id",
            "credit_agency",
            format!(
                "SELECT 1 FROM market.enterprises WHERE EXISTS (SELECT 1 FROM market.enterprises e2 WHERE e2.legal_rep_id = '{id}')"
            ),
            Expect::Empty,
        ),
        (
            "scalar subquery count",
            "credit_agency",
            format!("SELECT (SELECT COUNT(*) FROM market.enterprises WHERE legal_rep_id = '{id}') AS n"),
            Expect::FirstHas("0".into()),
        ),
        (
            "INTERSECT with a guess",
            "credit_agency",
            format!("SELECT legal_rep_id FROM market.enterprises INTERSECT SELECT '{id}'"),
            // A set operation over a masked identifier: refused (CG-POL-002).
            Expect::Refused,
        ),
        ("CAST error text", "credit_agency", format!("SELECT CAST(legal_rep_id AS BIGINT) {base}"), Expect::Refused),
        (
            "error only on a raw match",
            "credit_agency",
            format!(
                "SELECT CASE WHEN legal_rep_id = '{id}' THEN 1 / (length(name) - length(name)) ELSE 1 END AS v {base}"
            ),
            Expect::Rows,
        ),
        (
            "name equality",
            "credit_agency",
            format!("SELECT credit_code FROM market.enterprises WHERE legal_rep_name = '{}'", s.name),
            Expect::Empty,
        ),
        (
            "name LIKE on a hidden character",
            "credit_agency",
            format!("SELECT credit_code {base} AND legal_rep_name LIKE '_{}%'", s.name_second),
            Expect::Empty,
        ),
        (
            "phone middle digits",
            "credit_agency",
            format!("SELECT credit_code {base} AND phone LIKE '%{}%'", s.phone_middle),
            Expect::Empty,
        ),
        (
            "bucketed amount as a number",
            "credit_agency",
            "SELECT SUM(CAST(amount AS DOUBLE)) FROM court.dishonest_debtors".into(),
            Expect::Refused,
        ),
        (
            "dataset outside the licence",
            "credit_agency",
            "SELECT * FROM complaints.complaints LIMIT 1".into(),
            Expect::Refused,
        ),
        (
            "EXPLAIN",
            "credit_agency",
            format!("EXPLAIN SELECT name FROM market.enterprises WHERE legal_rep_id = '{id}'"),
            Expect::Refused,
        ),
        (
            "withheld column by name",
            "platform_a",
            "SELECT legal_rep_id FROM market.enterprises".into(),
            Expect::Refused,
        ),
        ("withheld column via SELECT *", "platform_a", format!("SELECT * {base}"), Expect::Lacks("legal_rep")),
        (
            "withheld column via DESCRIBE",
            "platform_a",
            "DESCRIBE market.enterprises".into(),
            Expect::Lacks("legal_rep"),
        ),
        (
            "withheld column via information_schema",
            "platform_a",
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'enterprises'".into(),
            Expect::Lacks("legal_rep"),
        ),
        (
            "ungranted dataset via information_schema",
            "platform_a",
            "SELECT table_schema, table_name FROM information_schema.tables".into(),
            Expect::Lacks("dishonest_debtors"),
        ),
        ("ungranted dataset", "platform_a", "SELECT * FROM court.dishonest_debtors LIMIT 1".into(), Expect::Refused),
        (
            "keyed-hash column against a raw id",
            "platform_a",
            format!("SELECT entry_id FROM credit_platform.black_list WHERE resident_id = '{}'", s.individual_id),
            Expect::Empty,
        ),
        (
            "statements other than queries",
            "platform_a",
            "CREATE VIEW v AS SELECT * FROM market.enterprises".into(),
            Expect::Refused,
        ),
    ];
    assert!(attacks.len() >= 30);

    for (policy, every_expectation) in [("conventional masks", true), ("demo policy", false)] {
        if !every_expectation {
            std::fs::write(lab.dir.join("policy.toml"), creditgate_tooling::demo::DEMO_POLICY).expect("write policy");
            lab.gateway_handle.reload_policy().expect("reload");
        }
        for (label, caller, sql, expect) in &attacks {
            for (front, outcome) in
                [("flight", over_flight(&lab, caller, sql).await), ("http", over_http(&lab, caller, sql).await)]
            {
                if let Some(secret) = s.leaked_in(&outcome.text) {
                    panic!("{label} over {front} with the {policy} leaked `{secret}`: {}", outcome.text);
                }
                if !every_expectation {
                    continue;
                }
                match expect {
                    Expect::Rows => {
                        assert!(outcome.rows.is_some_and(|n| n > 0), "{label} over {front}: {}", outcome.text)
                    }
                    Expect::Empty => assert_eq!(outcome.rows, Some(0), "{label} over {front}: {}", outcome.text),
                    Expect::Refused => {
                        assert!(outcome.rows.is_none(), "{label} over {front} was answered: {}", outcome.text)
                    }
                    Expect::Lacks(text) => {
                        assert!(outcome.rows.is_some_and(|n| n > 0), "{label} over {front}: {}", outcome.text);
                        assert!(!outcome.text.contains(text), "{label} over {front} shows `{text}`: {}", outcome.text);
                    }
                    Expect::FirstHas(text) => {
                        assert!(outcome.text.contains(text.as_str()), "{label} over {front}: {}", outcome.text)
                    }
                }
            }
        }
    }

    // No raw value of a masked column ever reached a source as a predicate.
    // The scan proves something only if the sources logged what they served:
    // the attacks on market.enterprises must be in the market connector's log.
    let market = creditgate_tests::served(&lab, "market");
    assert!(
        market.iter().any(|r| r.sql.contains("enterprises")),
        "the market connector's served log holds the attacks' queries ({} records)",
        market.len()
    );
    for source in lab.connector_configs.keys() {
        for record in creditgate_tests::served(&lab, source) {
            assert!(s.leaked_in(&record.sql).is_none(), "raw value sent to {source}: {}", record.sql);
        }
    }
    lab.stop().await.expect("stop");
}

fn batches_to_rows(batches: &[RecordBatch]) -> Vec<serde_json::Value> {
    creditgate_engine::encode::batches_to_json(batches).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_and_http_return_the_same_cells_for_every_principal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let c = lab.manifest.featured.enterprise_credit_code.clone();
    let queries = [
        format!("SELECT * FROM market.enterprises WHERE credit_code = '{c}'"),
        "SELECT * FROM credit_platform.black_list ORDER BY entry_id LIMIT 20".to_string(),
        "SELECT credit_code, name, status FROM market.enterprises ORDER BY credit_code LIMIT 25".to_string(),
        format!("SELECT * FROM court.dishonest_debtors WHERE credit_code = '{c}' ORDER BY case_no"),
    ];
    let mut compared = 0;
    for caller in ["samr", "credit_agency", "platform_a"] {
        for sql in &queries {
            let mut client = lab.flight_client(caller).expect("client");
            let flight = client.query(sql).await.map(|b| batches_to_rows(&b));
            let response = lab
                .http(caller, "POST", "/v1/query", &[], Some(serde_json::json!({ "sql": sql }).to_string()))
                .await
                .expect("http");
            match flight {
                Ok(rows) => {
                    assert_eq!(response.status, 200, "{caller}: {sql}");
                    let value: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
                    let http_rows = value["rows"].as_array().cloned().unwrap_or_default();
                    assert_eq!(rows, http_rows, "{caller}: {sql}");
                    compared += rows.len();
                }
                Err(e) => {
                    // Refused on one front end → refused on the other, same code.
                    assert_ne!(
                        response.status,
                        200,
                        "{caller}: {sql}: flight refused ({}) but http answered",
                        flight_error_text(&e)
                    );
                    let value: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
                    let code = value["error"]["code"].as_str().unwrap_or("").to_string();
                    assert!(flight_error_text(&e).contains(&code), "{caller}: {sql}");
                }
            }
        }
    }
    assert!(compared > 50, "enough cells were compared ({compared} rows)");
    lab.stop().await.expect("stop");
}

/// (dataset, record id column) of every negative-record dataset.
const NEGATIVE: &[(&str, &str)] = &[
    ("market.penalties", "penalty_id"),
    ("market.abnormal_operations", "record_id"),
    ("court.dishonest_debtors", "case_no"),
    ("tax.major_violations", "case_id"),
    ("courier.violations", "violation_id"),
    ("credit_platform.black_list", "entry_id"),
    ("payment.fraud_reports", "report_id"),
    ("platform_a.violations", "violation_id"),
    ("platform_b.violations", "violation_id"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_negative_records_never_leave_and_disputes_are_flagged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let reference = reference_session(&lab).await;
    let policy = Policy::parse(DEMO_POLICY, "demo-policy.toml").expect("demo policy");
    let expired = &lab.manifest.featured.expired_negative_record_ids;
    let disputed = &lab.manifest.featured.disputed_record_ids;
    assert!(!expired.is_empty() && !disputed.is_empty());
    let cutoff = chrono::Local::now()
        .date_naive()
        .checked_sub_months(chrono::Months::new(12 * creditgate_policy::DEFAULT_RETENTION_YEARS))
        .expect("cutoff");

    // Every expired record the manifest names is in a source, and ended
    // before the retention cut-off there: absence from results below is the
    // policy's doing, not the data's.
    let mut expired_in_sources = BTreeSet::new();
    for (dataset, id_column) in NEGATIVE {
        let raw_name = format!("raw.{}", dataset.replace('.', "_"));
        let raw = reference
            .sql(&format!("SELECT {id_column} FROM {raw_name} WHERE event_end_date < DATE '{cutoff}'"))
            .await
            .expect("raw")
            .collect()
            .await
            .expect("raw");
        expired_in_sources.extend(sorted_rows(&raw));
    }
    for id in expired {
        assert!(expired_in_sources.contains(id), "expired record {id} is not in any source as an expired record");
    }

    let mut disputed_seen = 0;
    let mut compared = 0;
    for caller in ["samr", "credit_agency", "platform_a"] {
        let principal = policy.principal(caller).expect("demo principal");
        let mut client = lab.flight_client(caller).expect("client");
        for (dataset, id_column) in NEGATIVE {
            let sql = format!("SELECT {id_column}, disputed FROM {dataset}");
            let result = client.query(&sql).await;
            if policy.grant_for(principal, dataset).is_none() {
                let error = result.expect_err("a dataset that is not granted is refused");
                assert!(flight_error_text(&error).contains("InvalidArgument"), "{}", flight_error_text(&error));
                continue;
            }
            let batches =
                result.unwrap_or_else(|e| panic!("{caller}: granted {sql} failed: {}", flight_error_text(&e)));
            let rows = sorted_rows(&batches);
            // Exactly the retained records, each with its own dispute flag.
            let expected = reference.sql(&sql).await.expect("plan").collect().await.expect("reference");
            assert_eq!(rows, sorted_rows(&expected), "{caller}: {dataset}");
            assert!(!rows.is_empty(), "{caller}: {dataset} has retained records");
            compared += 1;
            for row in &rows {
                let (rid, flag) = row.split_once('|').expect("two columns");
                assert!(!expired.iter().any(|e| e == rid), "{caller} saw expired record {rid} in {dataset}");
                if disputed.iter().any(|d| d == rid) {
                    assert_eq!(flag, "true", "{caller}: disputed record {rid} lost its flag");
                    disputed_seen += 1;
                }
            }
            // `SELECT *` always carries the flag, whatever the rule's columns.
            let info = client.inner_mut().execute(format!("SELECT * FROM {dataset}"), None).await.expect("plan");
            let schema = info.try_decode_schema().expect("schema");
            assert!(
                schema.field_with_name("disputed").is_ok(),
                "{caller}: SELECT * FROM {dataset} has no dispute flag"
            );
        }
    }
    assert!(compared >= NEGATIVE.len(), "every negative dataset was compared at least once ({compared})");
    assert!(disputed_seen > 0, "disputed records were returned with their flag");

    // A subject lookup returns every granted column, so the flag too.
    let code = &lab.manifest.featured.enterprise_credit_code;
    let body = serde_json::json!({"subject": {"type": "credit_code", "id": code}, "purpose": "supervision"});
    let reply = lab.http("samr", "POST", "/v1/lookup", &[], Some(body.to_string())).await.expect("lookup");
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let doc: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    let mut flagged_rows = 0;
    for (dataset, _) in NEGATIVE {
        for row in doc["datasets"][*dataset]["rows"].as_array().into_iter().flatten() {
            assert!(row["disputed"].is_boolean(), "lookup row of {dataset} without its dispute flag: {row}");
            flagged_rows += 1;
        }
    }
    assert!(flagged_rows > 0, "the featured enterprise has negative records: {doc}");

    // The public window applies retention and the public-only row filter too.
    let response = lab.public_get(&format!("/public/v1/enterprises/{code}")).await.expect("public");
    let value: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    let penalties = value["penalties"].as_array().expect("penalties");
    assert!(!penalties.is_empty(), "the featured enterprise has public penalties: {value}");
    for penalty in penalties {
        assert_eq!(penalty["is_public"], true);
        assert!(penalty["disputed"].is_boolean(), "public penalty without its dispute flag: {penalty}");
        let id = penalty["penalty_id"].as_str().unwrap_or("");
        assert!(!expired.iter().any(|e| e == id), "public saw expired {id}");
    }
    assert!(value["enterprise"].get("legal_rep_id").is_none(), "public sees public fields only");
    let bad = lab.public_get("/public/v1/enterprises/91350100M000100Y44").await.expect("public");
    assert_eq!(bad.status, 400);
    assert!(String::from_utf8_lossy(&bad.body).contains("credit_code"));
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_predicate_never_sees_a_row_hidden_by_a_row_filter() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "{DEMO_POLICY}\n[[rules]]\nprincipal = \"samr\"\ndataset = \"market.penalties\"\nrow_filters = [\"is_public = true\"]\n"
    );
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(policy)).await;
    let sql = "SELECT COUNT(*) FROM market.penalties WHERE 100 / CAST(is_public AS INT) > 0";
    // samr sees public penalties only: the division never meets a hidden row.
    let mut samr = lab.flight_client("samr").expect("client");
    let batches = samr.query(sql).await.expect("no error from hidden rows");
    let count: usize = cell(&batches, 0).parse().expect("count");
    // Exactly the retained public penalties of the generated data.
    let reference = reference_session(&lab).await;
    let expected = reference
        .sql("SELECT COUNT(*) FROM market.penalties WHERE is_public = true")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("reference");
    let expected: usize = cell(&expected, 0).parse().expect("count");
    assert!(expected > 0, "the generated data has public penalties");
    assert_eq!(count, expected, "samr counts exactly the retained public penalties");
    // Negative control: without the row filter the same predicate does meet those rows.
    let mut agency = lab.flight_client("credit_agency").expect("client");
    let error = agency.query(sql).await.expect_err("division by zero on non-public rows");
    assert!(flight_error_text(&error).contains("division by zero"), "{}", flight_error_text(&error));
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_operator_fails_instead_of_spilling() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab_with(tmp.path(), |o| o.memory_limit_bytes = 2 * 1024 * 1024).await;
    let mut samr = lab.flight_client("samr").expect("client");
    let sql = "SELECT e.name, e.address, p.violation, p.decision_no FROM market.enterprises e \
               CROSS JOIN market.penalties p ORDER BY e.address, p.violation";
    let error = samr.query(sql).await.expect_err("too big for 2 MiB");
    let text = flight_error_text(&error);
    assert!(text.contains("ResourceExhausted") && text.contains("more memory"), "{text}");
    // A small query still works.
    samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("small query");
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_policy_reload_keeps_the_old_policy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let policy_file = lab.dir.join("policy.toml");
    let mut samr = lab.flight_client("samr").expect("client");
    samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("served");

    std::fs::write(&policy_file, DEMO_POLICY.replace("role = \"agency\"\npurposes", "role = \"agencyy\"\npurposes"))
        .expect("write");
    let error = lab.gateway_handle.reload_policy().expect_err("invalid policy");
    assert!(error.to_string().contains("agencyy"), "{error}");
    samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect("old policy still in force");

    // A valid reload takes effect at once: samr loses the purpose it uses.
    std::fs::write(
        &policy_file,
        DEMO_POLICY.replace(
            "purposes = [\"licensing_review\", \"supervision\", \"joint_punishment\"]",
            "purposes = [\"supervision\", \"joint_punishment\"]",
        ),
    )
    .expect("write");
    lab.gateway_handle.reload_policy().expect("valid policy");
    let error = samr.query("SELECT name FROM market.enterprises LIMIT 1").await.expect_err("purpose withdrawn");
    assert!(flight_error_text(&error).contains("licensing_review"), "{}", flight_error_text(&error));
    lab.stop().await.expect("stop");
}

/// Flight SQL `GetTables` (with schemas) as `caller`: `schema.table` → the
/// table's schema as listed, decoded the way any Flight SQL client does.
async fn listed_tables(lab: &Lab, caller: &str) -> BTreeMap<String, Schema> {
    let mut client = lab.flight_client(caller).expect("client");
    let info = client
        .inner_mut()
        .get_tables(CommandGetTables { include_schema: true, ..Default::default() })
        .await
        .expect("GetTables");
    let mut out = BTreeMap::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let batches: Vec<RecordBatch> =
            client.inner_mut().do_get(ticket).await.expect("do_get").try_collect().await.expect("tables");
        for batch in &batches {
            let text = |name: &str| {
                batch
                    .column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .cloned()
                    .unwrap_or_else(|| panic!("GetTables result without {name}"))
            };
            let (schemas, tables) = (text("db_schema_name"), text("table_name"));
            let encoded = batch
                .column_by_name("table_schema")
                .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
                .expect("table_schema");
            for row in 0..batch.num_rows() {
                assert!(!encoded.is_null(row));
                let schema = Schema::try_from(IpcMessage(encoded.value(row).to_vec().into())).expect("IPC schema");
                out.insert(format!("{}.{}", schemas.value(row), tables.value(row)), schema);
            }
        }
    }
    out
}

/// `GET /v1/catalog` as `caller`.
async fn catalog_of(lab: &Lab, caller: &str) -> serde_json::Value {
    let reply = lab.http(caller, "GET", "/v1/catalog", &[], None).await.expect("catalog");
    assert_eq!(reply.status, 200, "{caller}: {}", String::from_utf8_lossy(&reply.body));
    serde_json::from_slice(&reply.body).expect("catalog JSON")
}

/// The value of field metadata `key` on `column` of `schema`.
fn field_meta<'a>(schema: &'a Schema, column: &str, key: &str) -> Option<&'a str> {
    let field = schema.field_with_name(column).unwrap_or_else(|_| panic!("no field {column}"));
    field.metadata().get(key).map(String::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tables_explains_each_mask_as_the_catalog_does_and_lists_nothing_ungranted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let policy = Policy::parse(DEMO_POLICY, "demo-policy.toml").expect("demo policy");

    for caller in ["platform_a", "credit_agency", "samr"] {
        let listed = listed_tables(&lab, caller).await;
        let catalog = catalog_of(&lab, caller).await;
        let principal = policy.principal(caller).expect("demo principal");
        let granted: Vec<String> = policy.grants_for(principal).into_iter().map(|g| g.dataset.to_string()).collect();
        assert_eq!(listed.keys().cloned().collect::<Vec<_>>(), granted, "{caller}: GetTables lists the grants");
        let datasets = catalog["datasets"].as_array().expect("datasets");
        assert_eq!(datasets.len(), granted.len(), "{caller}: {catalog}");
        for entry in datasets {
            let name = entry["name"].as_str().expect("name");
            assert_eq!(entry["available"], true, "{caller}: {name}");
            let schema =
                listed.get(name).unwrap_or_else(|| panic!("{caller}: {name} in the catalog, not in GetTables"));
            let columns = entry["columns"].as_array().expect("columns");
            // The same columns (GetTables keeps the source order, the catalog sorts by name) ...
            let mut fields: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            fields.sort_unstable();
            let names: Vec<&str> = columns.iter().map(|c| c["name"].as_str().expect("column name")).collect();
            assert_eq!(fields, names, "{caller}: {name}");
            // ... each explained the same way.
            for column in columns {
                let col = column["name"].as_str().expect("column name");
                let at = format!("{caller}: {name}.{col}");
                assert_eq!(field_meta(schema, col, "creditgate.mask"), column["mask"].as_str(), "{at}");
                assert_eq!(field_meta(schema, col, "creditgate.class"), column["class"].as_str(), "{at}");
                let is_flag = entry["dispute_column"].as_str() == Some(col);
                assert_eq!(field_meta(schema, col, "creditgate.dispute_flag"), is_flag.then_some("true"), "{at}");
            }
        }
    }

    // Against the demo policy as written.
    let pa = listed_tables(&lab, "platform_a").await;
    for ungranted in [
        "court.dishonest_debtors",
        "platform_b.shops",
        "courier.staff",
        "complaints.complaints",
        "payment.fraud_reports",
    ] {
        assert!(!pa.contains_key(ungranted), "platform_a is shown {ungranted}");
    }
    let enterprises = &pa["market.enterprises"];
    for withheld in ["legal_rep_name", "legal_rep_id", "address", "phone"] {
        assert!(enterprises.field_with_name(withheld).is_err(), "platform_a is shown market.enterprises.{withheld}");
    }
    assert_eq!(enterprises.fields().len(), 8);
    assert_eq!(field_meta(enterprises, "credit_code", "creditgate.mask"), Some("none"));
    assert_eq!(field_meta(enterprises, "credit_code", "creditgate.class"), Some("public"));
    let black = &pa["credit_platform.black_list"];
    assert_eq!(field_meta(black, "name", "creditgate.mask"), Some("name_hidden"));
    assert_eq!(field_meta(black, "name", "creditgate.class"), Some("personal"));
    assert_eq!(field_meta(black, "resident_id", "creditgate.mask"), Some("keyed_hash"));
    assert_eq!(field_meta(black, "resident_id", "creditgate.class"), Some("sensitive"));
    assert_eq!(field_meta(black, "disputed", "creditgate.mask"), Some("none"));
    assert_eq!(field_meta(black, "disputed", "creditgate.dispute_flag"), Some("true"));
    assert_eq!(field_meta(black, "entry_id", "creditgate.dispute_flag"), None);
    let shops = &pa["platform_a.shops"];
    assert_eq!(field_meta(shops, "owner_mobile", "creditgate.mask"), Some("none"), "principal rule: in clear");

    let ca = listed_tables(&lab, "credit_agency").await;
    assert!(!ca.contains_key("complaints.complaints") && !ca.contains_key("courier.staff"));
    let enterprises = &ca["market.enterprises"];
    // The demo policy's measured masks (`creditgate policy linkage`): the ID
    // and address withheld, the name hidden, the phone by carrier prefix.
    assert_eq!(field_meta(enterprises, "legal_rep_id", "creditgate.mask"), Some("null"));
    assert_eq!(field_meta(enterprises, "legal_rep_id", "creditgate.class"), Some("sensitive"));
    assert_eq!(field_meta(enterprises, "legal_rep_name", "creditgate.mask"), Some("name_hidden"));
    assert_eq!(field_meta(enterprises, "address", "creditgate.mask"), Some("null"));
    assert_eq!(field_meta(enterprises, "phone", "creditgate.mask"), Some("mobile_prefix"));
    let debtors = &ca["court.dishonest_debtors"];
    assert_eq!(field_meta(debtors, "amount", "creditgate.mask"), Some("range_bucket(100000)"));
    assert_eq!(field_meta(debtors, "amount", "creditgate.class"), Some("restricted"));

    // The explanation stays in the listing: a query's schema has the same
    // columns and types, without it, so clients read results as before.
    let mut client = lab.flight_client("credit_agency").expect("client");
    let info = client.inner_mut().execute("SELECT * FROM market.enterprises".to_string(), None).await.expect("plan");
    let result = info.try_decode_schema().expect("result schema");
    assert_eq!(result.fields().len(), enterprises.fields().len());
    for (got, listed) in result.fields().iter().zip(enterprises.fields()) {
        assert_eq!((got.name(), got.data_type()), (listed.name(), listed.data_type()));
        assert!(got.metadata().keys().all(|k| !k.starts_with("creditgate.")), "{got:?}");
    }
    let rows = client.query("SELECT * FROM market.enterprises LIMIT 3").await.expect("rows");
    assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    lab.stop().await.expect("stop");
}

/// Demo policy additions: rules for a credit agency outside its licence
/// scope (which must change nothing), a platform row filter, and a rule whose
/// column list leaves out a dispute flag (which is granted anyway).
const CATALOG_POLICY_EXTRA: &str = r#"
[[rules]]
role = "credit_agency"
dataset = "courier.staff"

[[rules]]
principal = "credit_agency"
dataset = "complaints.complaints"

[[rules]]
principal = "platform_a"
dataset = "market.licences"
row_filters = ["licence_type = '食品经营许可证'"]

[[rules]]
principal = "platform_a"
dataset = "credit_platform.black_list"
columns = ["entry_id", "credit_code"]
"#;

/// The catalog entry of `dataset`.
fn catalog_entry<'a>(catalog: &'a serde_json::Value, dataset: &str) -> &'a serde_json::Value {
    catalog["datasets"]
        .as_array()
        .and_then(|d| d.iter().find(|e| e["name"] == dataset))
        .unwrap_or_else(|| panic!("{dataset} not in {catalog}"))
}

/// `(name, class, mask)` of every column of a catalog entry.
fn catalog_columns(entry: &serde_json::Value) -> Vec<(String, String, String)> {
    let text = |v: &serde_json::Value| v.as_str().expect("string").to_string();
    entry["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| (text(&c["name"]), text(&c["class"]), text(&c["mask"])))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_explains_access_exactly_and_the_licence_scope_binds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let text = format!("{DEMO_POLICY}\n{CATALOG_POLICY_EXTRA}");
    let policy = Policy::parse(&text, "policy.toml").expect("policy");
    let lab = start_lab_with(tmp.path(), |o| o.policy = Some(text.clone())).await;

    // Both principals: every grant of the policy, column by column.
    for caller in ["platform_a", "credit_agency"] {
        let catalog = catalog_of(&lab, caller).await;
        let principal = policy.principal(caller).expect("principal");
        assert_eq!(catalog["principal"], caller);
        assert_eq!(catalog["role"], principal.role.as_str());
        assert_eq!(catalog["organization"], principal.organization.as_str());
        assert_eq!(catalog["purposes"], serde_json::json!(principal.purposes));
        let grants = policy.grants_for(principal);
        let names: Vec<&str> =
            catalog["datasets"].as_array().expect("datasets").iter().filter_map(|d| d["name"].as_str()).collect();
        assert_eq!(names, grants.iter().map(|g| g.dataset.as_str()).collect::<Vec<_>>(), "{caller}");
        for grant in &grants {
            let entry = catalog_entry(&catalog, grant.dataset.as_str());
            let want: Vec<(String, String, String)> = grant
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.class.as_str().to_string(), c.mask.to_string()))
                .collect();
            assert_eq!(catalog_columns(entry), want, "{caller}: {}", grant.dataset);
            let filters: Vec<&str> = grant.row_filters.iter().map(|f| f.sql.as_str()).collect();
            assert_eq!(entry["row_filters"], serde_json::json!(filters), "{caller}: {}", grant.dataset);
            let retention = grant
                .negative
                .as_ref()
                .map(|n| serde_json::json!({"end_date_column": n.end_date, "years": n.retention_years}));
            assert_eq!(entry["retention"], serde_json::json!(retention), "{caller}: {}", grant.dataset);
            assert_eq!(entry["dispute_column"], serde_json::json!(grant.dispute_column), "{caller}: {}", grant.dataset);
        }
    }

    // The same facts, as the policy file says them.
    let pa = catalog_of(&lab, "platform_a").await;
    let s = |v: &str| v.to_string();
    let enterprises = catalog_entry(&pa, "market.enterprises");
    let mut want: Vec<(String, String, String)> = [
        "credit_code",
        "name",
        "registered_capital",
        "established_date",
        "district_code",
        "business_scope",
        "status",
        "is_individual",
    ]
    .iter()
    .map(|c| (s(c), s("public"), s("none")))
    .collect();
    want.sort();
    assert_eq!(catalog_columns(enterprises), want);
    assert_eq!(enterprises["row_filters"], serde_json::json!([]));
    assert_eq!(enterprises["retention"], serde_json::Value::Null);
    assert_eq!(enterprises["dispute_column"], serde_json::Value::Null);
    let licences = catalog_entry(&pa, "market.licences");
    assert_eq!(licences["row_filters"], serde_json::json!(["licence_type = '食品经营许可证'"]));
    let black = catalog_entry(&pa, "credit_platform.black_list");
    assert_eq!(
        catalog_columns(black),
        [
            (s("credit_code"), s("public"), s("none")),
            (s("disputed"), s("public"), s("none")),
            (s("entry_id"), s("public"), s("none")),
        ],
        "the dispute flag is granted although the rule's columns leave it out"
    );
    assert_eq!(black["retention"], serde_json::json!({"end_date_column": "event_end_date", "years": 5}));
    assert_eq!(black["dispute_column"], "disputed");

    let ca = catalog_of(&lab, "credit_agency").await;
    let names: Vec<&str> =
        ca["datasets"].as_array().expect("datasets").iter().filter_map(|d| d["name"].as_str()).collect();
    let scope = &policy.principal("credit_agency").and_then(|p| p.licence.as_ref()).expect("licence").scope;
    let mut scope_sorted: Vec<&str> = scope.iter().map(|d| d.as_str()).collect();
    scope_sorted.sort_unstable();
    assert_eq!(names, scope_sorted, "a credit agency is granted its licence scope and nothing else");
    let debtors = catalog_entry(&ca, "court.dishonest_debtors");
    let column = |name: &str| catalog_columns(debtors).into_iter().find(|c| c.0 == name).expect("column");
    // The demo policy's masks for listed individuals: the agency's own
    // pseudonym, the name hidden (see `creditgate policy linkage`).
    assert_eq!(column("resident_id"), (s("resident_id"), s("sensitive"), s("keyed_hash")));
    assert_eq!(column("name"), (s("name"), s("personal"), s("name_hidden")));
    assert_eq!(column("amount"), (s("amount"), s("restricted"), s("range_bucket(100000)")));
    assert_eq!(debtors["retention"], serde_json::json!({"end_date_column": "event_end_date", "years": 5}));

    // A privacy officer sees no credit data at all.
    let officer = catalog_of(&lab, "privacy_officer").await;
    assert_eq!(officer["datasets"], serde_json::json!([]));

    // Licence scope, end to end: rules outside it give the agency nothing on
    // either front end; samr (no licence) reads the same dataset.
    let listed = listed_tables(&lab, "credit_agency").await;
    for outside in ["courier.staff", "complaints.complaints"] {
        assert!(!listed.contains_key(outside), "GetTables shows {outside}");
        let sql = format!("SELECT * FROM {outside} LIMIT 1");
        for (front, outcome) in [
            ("flight", over_flight(&lab, "credit_agency", &sql).await),
            ("http", over_http(&lab, "credit_agency", &sql).await),
        ] {
            assert!(outcome.rows.is_none(), "{outside} over {front} was answered: {}", outcome.text);
            assert!(outcome.text.contains("not found"), "{outside} over {front}: {}", outcome.text);
        }
    }
    let control = over_flight(&lab, "samr", "SELECT * FROM courier.staff LIMIT 1").await;
    assert_eq!(control.rows, Some(1), "{}", control.text);

    // The row filter the catalog reports is the one applied.
    let reference = reference_session(&lab).await;
    let count = |batches: Vec<RecordBatch>| -> usize { cell(&batches, 0).parse().expect("count") };
    let total_sql = "SELECT COUNT(*) FROM market.licences";
    let filtered_sql = "SELECT COUNT(*) FROM market.licences WHERE licence_type = '食品经营许可证'";
    let total = count(reference.sql(total_sql).await.expect("plan").collect().await.expect("reference"));
    let filtered = count(reference.sql(filtered_sql).await.expect("plan").collect().await.expect("reference"));
    assert!(0 < filtered && filtered < total, "the filter keeps some licences ({filtered} of {total})");
    let mut platform = lab.flight_client("platform_a").expect("client");
    assert_eq!(count(platform.query(total_sql).await.expect("platform_a")), filtered);
    let mut agency = lab.flight_client("credit_agency").expect("client");
    assert_eq!(count(agency.query(total_sql).await.expect("credit_agency")), total);
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_queries_need_a_purpose_from_the_header_or_the_body() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let mut http = HttpConn::open(&lab, "samr").await.expect("connect").without_default_purpose();
    let sql = "SELECT name FROM market.enterprises LIMIT 2";
    let query = |purpose: Option<&str>| {
        let mut body = serde_json::json!({ "sql": sql });
        if let Some(p) = purpose {
            body["purpose"] = p.into();
        }
        Some(body.to_string())
    };
    let rows = |reply: &creditgate_tests::HttpReply| reply.json()["rows"].as_array().map(Vec::len);

    // Neither header nor body field: refused, naming the requirement and the allowed codes.
    let reply = http.request("POST", "/v1/query", &[], query(None)).await.expect("request");
    assert_eq!(reply.status, 403, "{}", reply.text());
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "CG-POL-001", "{}", reply.text());
    let message = error["message"].as_str().unwrap_or("");
    assert!(message.contains("a purpose is required"), "{message}");
    assert!(message.contains("licensing_review, supervision, joint_punishment"), "{message}");

    // The body field alone is enough.
    let reply = http.request("POST", "/v1/query", &[], query(Some("supervision"))).await.expect("request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(rows(&reply), Some(2));

    // ... and is checked like the header: one the principal may not use is refused.
    let reply = http.request("POST", "/v1/query", &[], query(Some("marketing"))).await.expect("request");
    assert_eq!(reply.status, 403, "{}", reply.text());
    let message = reply.json()["error"]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains("purpose \"marketing\" is not allowed for samr"), "{message}");

    // The header alone is enough too (the same connection: nothing is remembered).
    let reply =
        http.request("POST", "/v1/query", &[(PURPOSE_HEADER, "supervision")], query(None)).await.expect("request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(rows(&reply), Some(2));
    let reply = http.request("POST", "/v1/query", &[], query(None)).await.expect("request");
    assert_eq!(reply.status, 403, "{}", reply.text());

    // A subject lookup needs one the same way.
    let code = &lab.manifest.featured.enterprise_credit_code;
    let lookup = serde_json::json!({"subject": {"type": "credit_code", "id": code}});
    let reply = http.request("POST", "/v1/lookup", &[], Some(lookup.to_string())).await.expect("request");
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.text().contains("a purpose is required"), "{}", reply.text());
    lab.stop().await.expect("stop");
}
