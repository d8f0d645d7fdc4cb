//! Policy in the plan, end to end: an attack suite trying to recover masked or
//! withheld values over both front ends, the same results cell by cell over
//! Flight SQL and HTTP, row filters that no user predicate can see past,
//! retention and dispute flags against the generated data, no spilling, and
//! policy reload.

use arrow::array::RecordBatch;
use creditgate_gateway::client::flight_error_text;
use creditgate_gateway::demo::{DEMO_POLICY, Lab};
use creditgate_tests::{reference_session, sorted_rows, start_lab, start_lab_with};

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
    /// Exactly n rows.
    Count(usize),
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
    let lab = start_lab(tmp.path()).await;
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
            Expect::Count(1),
        ),
        (
            "ORDER BY the masked column",
            "credit_agency",
            "SELECT legal_rep_id FROM market.enterprises ORDER BY legal_rep_id LIMIT 50".into(),
            Expect::Rows,
        ),
        (
            "window rank over the masked column",
            "credit_agency",
            format!("SELECT rank() OVER (ORDER BY legal_rep_id) {base}"),
            Expect::Rows,
        ),
        (
            "join against guessed values",
            "credit_agency",
            format!("SELECT e.name FROM market.enterprises e JOIN (VALUES ('{id}')) AS g(id) ON e.legal_rep_id = g.id"),
            Expect::Empty,
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
            Expect::Empty,
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

    for (label, caller, sql, expect) in &attacks {
        for (front, outcome) in
            [("flight", over_flight(&lab, caller, sql).await), ("http", over_http(&lab, caller, sql).await)]
        {
            if let Some(secret) = s.leaked_in(&outcome.text) {
                panic!("{label} over {front} leaked `{secret}`: {}", outcome.text);
            }
            match expect {
                Expect::Rows => assert!(outcome.rows.is_some_and(|n| n > 0), "{label} over {front}: {}", outcome.text),
                Expect::Empty => assert_eq!(outcome.rows, Some(0), "{label} over {front}: {}", outcome.text),
                Expect::Count(n) => assert_eq!(outcome.rows, Some(*n), "{label} over {front}: {}", outcome.text),
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

    // No raw value of a masked column ever reached a source as a predicate.
    for source in lab.connector_configs.keys() {
        for record in creditgate_tests::served(&lab, source) {
            assert!(s.leaked_in(&record.sql).is_none(), "raw value sent to {source}: {}", record.sql);
        }
    }
    lab.stop().await.expect("stop");
}

fn batches_to_rows(batches: &[RecordBatch]) -> Vec<serde_json::Value> {
    creditgate_gateway::encode::batches_to_json(batches).expect("json")
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
    let expired = &lab.manifest.featured.expired_negative_record_ids;
    let disputed = &lab.manifest.featured.disputed_record_ids;
    assert!(!expired.is_empty() && !disputed.is_empty());
    let mut found_in_source = 0;
    let mut disputed_seen = 0;
    for (dataset, id_column) in NEGATIVE {
        let raw_name = format!("raw.{}", dataset.replace('.', "_"));
        let raw = reference
            .sql(&format!("SELECT {id_column} FROM {raw_name}"))
            .await
            .expect("raw")
            .collect()
            .await
            .expect("raw");
        let raw_ids = sorted_rows(&raw);
        found_in_source += expired.iter().filter(|id| raw_ids.contains(id)).count();
        for caller in ["samr", "credit_agency", "platform_a"] {
            let mut client = lab.flight_client(caller).expect("client");
            let Ok(batches) = client.query(&format!("SELECT {id_column}, disputed FROM {dataset}")).await else {
                continue; // not granted to this caller
            };
            let rows = sorted_rows(&batches);
            for row in &rows {
                let (rid, flag) = row.split_once('|').expect("two columns");
                assert!(!expired.iter().any(|e| e == rid), "{caller} saw expired record {rid} in {dataset}");
                if disputed.iter().any(|d| d == rid) {
                    assert_eq!(flag, "true", "{caller}: disputed record {rid} lost its flag");
                    disputed_seen += 1;
                }
            }
        }
    }
    assert!(found_in_source >= expired.len() / 2, "the expired records are in the sources ({found_in_source})");
    assert!(disputed_seen > 0, "disputed records were returned with their flag");

    // The public window applies retention and the public-only row filter too.
    let code = &lab.manifest.featured.enterprise_credit_code;
    let response = lab.public_get(&format!("/public/v1/enterprises/{code}")).await.expect("public");
    let value: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    for penalty in value["penalties"].as_array().expect("penalties") {
        assert_eq!(penalty["is_public"], true);
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
    assert!(count > 0);
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
