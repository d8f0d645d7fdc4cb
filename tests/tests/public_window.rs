//! The public credit window end to end: publication periods checked against
//! a computation over the raw files (boundary days planted by the data
//! generator), the name search, CSV, sections added in config only, a
//! config naming a column the public may not see, the per-address rate
//! limit, the audit, and no identifier of a natural person in any answer.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Months, NaiveDate};
use creditgate_audit::SubjectKey;
use creditgate_engine::config::{DisclosureSection, SectionShape, SectionTitle};
use creditgate_tests::{audit_records, reference_session, restart_gateway, served, start_lab};
use creditgate_tooling::demo::Lab;
use serde_json::Value;

/// Every body the tests received, for the scan for personal identifiers.
#[derive(Default)]
struct Seen {
    bodies: Vec<String>,
}

impl Seen {
    async fn get(&mut self, lab: &Lab, path: &str) -> creditgate_tooling::client::HttpResponse {
        let response = lab.public_get(path).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.bodies.push(String::from_utf8_lossy(&response.body).into_owned());
        response
    }

    async fn json(&mut self, lab: &Lab, path: &str) -> Value {
        let response = self.get(lab, path).await;
        assert_eq!(response.status, 200, "GET {path}: {}", String::from_utf8_lossy(&response.body));
        serde_json::from_slice(&response.body).expect("json")
    }
}

async fn raw_rows(lab: &Lab, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    let ctx = reference_session(lab).await;
    let batches = ctx.sql(sql).await.expect("reference sql").collect().await.expect("collect");
    creditgate_engine::encode::batches_to_json(&batches)
        .expect("json")
        .into_iter()
        .filter_map(|v| v.as_object().cloned())
        .collect()
}

fn text(row: &serde_json::Map<String, Value>, key: &str) -> String {
    row.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn day(row: &serde_json::Map<String, Value>, key: &str) -> Option<NaiveDate> {
    row.get(key).and_then(Value::as_str).and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
}

fn plus_months(start: NaiveDate, months: u32) -> NaiveDate {
    start.checked_add_months(Months::new(months)).expect("date")
}

/// SAMR Order 45, computed here from the raw record: the last day shown
/// and the rule, or `None` (warnings: Art. 2; annulled: Art. 11).
fn order_45(row: &serde_json::Map<String, Value>, today: NaiveDate) -> Option<(NaiveDate, &'static str)> {
    if row.get("annulled") == Some(&Value::Bool(true)) {
        return None;
    }
    let kind = text(row, "penalty_kind");
    let amount = row.get("amount").and_then(Value::as_f64)?;
    let decided = day(row, "decision_date")?;
    let (months, rule) = match kind.as_str() {
        "warning" => return None,
        "criticism" => (3, "samr_order_45.art13_3m"),
        "fine" if amount <= creditgate_datagen::LOW_FINE_MAX as f64 => (3, "samr_order_45.art13_3m"),
        _ => (36, "samr_order_45.art13_3y"),
    };
    let until = plus_months(decided, months);
    (decided <= today && today <= until).then_some((until, rule))
}

/// The list rule of the demo (serious 6 months–3 years, general 3 months–1
/// year), computed here: shown until the cause ended, within the periods.
fn list_period(row: &serde_json::Map<String, Value>, today: NaiveDate) -> Option<(NaiveDate, String)> {
    let severity = text(row, "severity");
    let (min, max) = match severity.as_str() {
        "serious" => (6, 36),
        "general" => (3, 12),
        _ => return None,
    };
    let listed = day(row, "listed_date")?;
    let until = match day(row, "event_end_date") {
        None => plus_months(listed, max),
        Some(ended) => ended.max(plus_months(listed, min)).min(plus_months(listed, max)),
    };
    (listed <= today && today <= until).then(|| (until, format!("list_periods.{severity}")))
}

fn quoted(codes: &BTreeSet<String>) -> String {
    codes.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_periods_match_the_raw_data_on_boundary_days() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let today = chrono::Local::now().date_naive();
    let mut seen = Seen::default();
    let featured = lab.manifest.featured.enterprise_credit_code.clone();

    // The subjects: the featured enterprise (the planted penalties), the
    // owners of the planted black-list entries, and enterprises with
    // criticisms and warnings.
    let planted_entries: Vec<String> = (3..=17).step_by(2).map(|n| format!("XY-HMD-{n:08}")).collect();
    let mut codes: BTreeSet<String> = BTreeSet::from([featured.clone()]);
    let owners = raw_rows(
        &lab,
        &format!(
            "SELECT credit_code FROM raw.credit_platform_black_list WHERE entry_id IN ({})",
            quoted(&planted_entries.iter().cloned().collect())
        ),
    )
    .await;
    assert_eq!(owners.len(), planted_entries.len(), "every planted entry exists");
    codes.extend(owners.iter().map(|r| text(r, "credit_code")));
    let others = raw_rows(
        &lab,
        "SELECT DISTINCT p.credit_code FROM market.penalties p JOIN market.enterprises e ON e.credit_code = p.credit_code \
         WHERE p.penalty_kind IN ('criticism', 'warning') AND p.is_public ORDER BY p.credit_code LIMIT 6",
    )
    .await;
    codes.extend(others.iter().map(|r| text(r, "credit_code")));

    // The shown set, computed over the raw files (retention applied as the policy says).
    let penalties = raw_rows(
        &lab,
        &format!(
            "SELECT penalty_id, credit_code, penalty_kind, amount, decision_date, annulled FROM market.penalties \
             WHERE is_public = true AND credit_code IN ({})",
            quoted(&codes)
        ),
    )
    .await;
    let entries = raw_rows(
        &lab,
        &format!(
            "SELECT entry_id, credit_code, severity, listed_date, event_end_date FROM credit_platform.black_list \
             WHERE subject_type = 'enterprise' AND credit_code IN ({})",
            quoted(&codes)
        ),
    )
    .await;
    let mut expected_penalties: BTreeMap<String, BTreeMap<String, (NaiveDate, String)>> = BTreeMap::new();
    for row in &penalties {
        if let Some((until, rule)) = order_45(row, today) {
            expected_penalties
                .entry(text(row, "credit_code"))
                .or_default()
                .insert(text(row, "penalty_id"), (until, rule.to_string()));
        }
    }
    let mut expected_entries: BTreeMap<String, BTreeMap<String, (NaiveDate, String)>> = BTreeMap::new();
    for row in &entries {
        if let Some(shown) = list_period(row, today) {
            expected_entries.entry(text(row, "credit_code")).or_default().insert(text(row, "entry_id"), shown);
        }
    }
    assert!(penalties.len() > expected_penalties.values().map(BTreeMap::len).sum::<usize>(), "some are hidden");

    let mut shown_penalties: BTreeMap<String, (NaiveDate, String)> = BTreeMap::new();
    let mut shown_entries: BTreeMap<String, (NaiveDate, String)> = BTreeMap::new();
    for code in &codes {
        let page = seen.json(&lab, &format!("/public/v1/enterprises/{code}")).await;
        let shown = |name: &str| -> BTreeMap<String, (NaiveDate, String)> {
            page[name]
                .as_array()
                .unwrap_or_else(|| panic!("{name} of {code}: {page}"))
                .iter()
                .filter_map(Value::as_object)
                .map(|r| {
                    let id = if name == "penalties" { text(r, "penalty_id") } else { text(r, "entry_id") };
                    let until = day(r, "shown_until").unwrap_or_else(|| panic!("{name} without shown_until: {r:?}"));
                    (id, (until, text(r, "publication_rule")))
                })
                .collect()
        };
        let got = shown("penalties");
        assert_eq!(got, expected_penalties.get(code).cloned().unwrap_or_default(), "penalties of {code}");
        for record in page["penalties"].as_array().into_iter().flatten() {
            assert!(record.get("annulled").is_none(), "a rule-only column is not shown: {record}");
        }
        shown_penalties.extend(got);
        let got = shown("black_list");
        assert_eq!(got, expected_entries.get(code).cloned().unwrap_or_default(), "black list of {code}");
        assert_eq!(page["on_black_list"], Value::Bool(!got.is_empty()), "{code}");
        shown_entries.extend(got);
    }

    // The planted boundary pairs: one day inside, one day outside each rule.
    let penalty = |n: u32| format!("SCJG-CF-{n:08}");
    let decided: BTreeMap<String, NaiveDate> =
        penalties.iter().filter_map(|r| Some((text(r, "penalty_id"), day(r, "decision_date")?))).collect();
    for (inside, outside, rule) in [
        (4, 5, "samr_order_45.art13_3m"), // notice of criticism, 3 months
        (6, 7, "samr_order_45.art13_3m"), // a low fine (at the standard, inclusive), 3 months
        (8, 9, "samr_order_45.art13_3y"), // any other penalty, 3 years
    ] {
        let (inside, outside) = (penalty(inside), penalty(outside));
        assert_eq!(shown_penalties.get(&inside).map(|s| s.1.as_str()), Some(rule), "{inside} is shown");
        assert!(shown_penalties[&inside].0 >= today);
        assert!(!shown_penalties.contains_key(&outside), "{outside} is past its period");
        assert_eq!(decided[&outside].succ_opt(), Some(decided[&inside]), "{outside} is one day before {inside}");
    }
    assert!(!shown_penalties.contains_key(&penalty(10)), "a warning is never published");
    assert!(!shown_penalties.contains_key(&penalty(11)), "an annulled penalty is withdrawn");
    let warnings = penalties.iter().filter(|r| text(r, "penalty_kind") == "warning").count();
    assert!(warnings > 1, "the subjects have warnings ({warnings})");
    for id in shown_penalties.keys() {
        let raw = penalties.iter().find(|r| &text(r, "penalty_id") == id).expect("raw");
        assert_ne!(text(raw, "penalty_kind"), "warning", "{id}");
    }
    let listed: BTreeMap<String, NaiveDate> =
        entries.iter().filter_map(|r| Some((text(r, "entry_id"), day(r, "listed_date")?))).collect();
    for pair in planted_entries.chunks(2) {
        let (inside, outside) = (&pair[0], &pair[1]);
        assert!(shown_entries.contains_key(inside), "{inside} is shown: {shown_entries:?}");
        assert!(!shown_entries.contains_key(outside), "{outside} is past its period");
        assert_eq!(listed[outside].succ_opt(), Some(listed[inside]), "{outside} is one day before {inside}");
    }

    // Filtered at the source: the connector received the rule and sent only shown records.
    let market = served(&lab, "market");
    let query = market
        .iter()
        .rev()
        .find(|r| r.sql.contains("penalties") && r.sql.contains(&featured))
        .expect("the featured enterprise's penalties query");
    let sql = query.sql.replace('"', "");
    assert!(sql.contains("annulled IS NOT TRUE") && sql.contains("penalty_kind NOT IN ('warning')"), "{sql}");
    let featured_shown = expected_penalties.get(&featured).map(BTreeMap::len).unwrap_or(0) as u64;
    assert_eq!(query.rows, featured_shown, "the source sent only the shown penalties");

    // CSV: the same page, one line per field.
    let csv = seen.get(&lab, &format!("/public/v1/enterprises/{featured}?format=csv")).await;
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.as_deref().unwrap_or("").starts_with("text/csv"));
    let csv = String::from_utf8_lossy(&csv.body).into_owned();
    assert!(csv.starts_with("section,record,field,value\r\n"), "{csv}");
    assert!(csv.contains(&format!("penalties,1,{},", "shown_until")), "{csv}");

    scan_for_personal_identifiers(&lab, &seen).await;
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_code_and_name_prefix_paginated_and_audited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    let mut seen = Seen::default();
    let featured = lab.manifest.featured.enterprise_credit_code.clone();
    let name = lab.manifest.featured.enterprise_name.clone();

    let by_code = seen.json(&lab, &format!("/public/v1/search?q={featured}")).await;
    assert_eq!(by_code["by"], "credit_code");
    assert_eq!(by_code["results"].as_array().map(Vec::len), Some(1), "{by_code}");
    assert_eq!(by_code["results"][0]["name"], name.as_str());
    let keys: BTreeSet<&str> = by_code["results"][0].as_object().expect("row").keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["credit_code", "name", "district_code", "status"]), "public fields only");

    let prefix: String = name.chars().take(4).collect();
    let encoded: String = prefix.bytes().map(|b| format!("%{b:02X}")).collect();
    let by_name = seen.json(&lab, &format!("/public/v1/search?q={encoded}")).await;
    assert_eq!(by_name["by"], "name_prefix");
    let names: Vec<&str> =
        by_name["results"].as_array().expect("results").iter().filter_map(|r| r["name"].as_str()).collect();
    assert!(names.contains(&name.as_str()), "{by_name}");
    assert!(names.iter().all(|n| n.starts_with(&prefix)), "{names:?}");

    // Pages over a common prefix equal the raw data's order.
    let common = "青岛";
    let encoded: String = common.bytes().map(|b| format!("%{b:02X}")).collect();
    let expected = raw_rows(
        &lab,
        "SELECT credit_code FROM market.enterprises WHERE name LIKE '青岛%' ORDER BY name, credit_code LIMIT 10",
    )
    .await;
    let expected: Vec<String> = expected.iter().map(|r| text(r, "credit_code")).collect();
    let first = seen.json(&lab, &format!("/public/v1/search?q={encoded}&per_page=5")).await;
    let second = seen.json(&lab, &format!("/public/v1/search?q={encoded}&per_page=5&page=2")).await;
    let codes = |v: &Value| -> Vec<String> {
        v["results"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["credit_code"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!([codes(&first), codes(&second)].concat(), expected);
    assert_eq!(first["has_more"], true);

    // Wildcards are literal; too short, a wrong check character, a bad page: refused by name.
    let wild = seen.json(&lab, "/public/v1/search?q=%25%25").await;
    assert_eq!(wild["results"].as_array().map(Vec::len), Some(0), "{wild}");
    for (query, field) in [
        ("q=%E9%9D%92", "q:"),
        ("q=91350100M000100Y44", "q: looks like a credit code"),
        ("q=%E9%9D%92%E5%B2%9B&page=0", "page:"),
        ("q=%E9%9D%92%E5%B2%9B&format=xml", "format:"),
    ] {
        let refused = seen.get(&lab, &format!("/public/v1/search?{query}")).await;
        assert_eq!(refused.status, 400, "{query}");
        assert!(String::from_utf8_lossy(&refused.body).contains(field), "{query}");
    }
    let csv = seen.get(&lab, &format!("/public/v1/search?q={featured}&format=csv")).await;
    assert_eq!(String::from_utf8_lossy(&csv.body).lines().count(), 2, "a header and one result");

    // Audited: the code as a keyed hash, the name prefix not at all.
    let hash = lab.gateway.engine().auditor().hasher().hash(&SubjectKey::CreditCode(featured.clone()));
    let records = audit_records(&lab);
    let public: Vec<_> =
        records.iter().filter(|r| serde_json::to_string(&r.frontend).unwrap_or_default().contains("public")).collect();
    assert!(public.len() >= 8, "every public request is recorded ({})", public.len());
    assert!(public.iter().any(|r| r.subject_hashes.contains(&hash)), "the code search names its subject's hash");
    let log = serde_json::to_string(&records).expect("records");
    assert!(!log.contains(&featured), "no raw credit code in the audit log");
    assert!(!log.contains(&prefix), "no name prefix in the audit log");

    // The page, the widget and their assets come from the gateway, nothing from elsewhere.
    for (path, kind) in [
        ("/", "text/html"),
        ("/embed", "text/html"),
        ("/assets/window.js", "text/javascript"),
        ("/assets/window.css", "text/css"),
    ] {
        let response = seen.get(&lab, path).await;
        assert_eq!(response.status, 200, "{path}");
        assert!(response.content_type.as_deref().unwrap_or("").starts_with(kind), "{path}");
        let body = String::from_utf8_lossy(&response.body).into_owned();
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{path} refers elsewhere"
        );
    }
    let page = seen.get(&lab, "/").await;
    let csp = page.header("content-security-policy").unwrap_or_default().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let embed = seen.get(&lab, "/embed").await;
    assert!(embed.header("content-security-policy").unwrap_or_default().contains("frame-ancestors *"));

    scan_for_personal_identifiers(&lab, &seen).await;
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_section_added_in_config_only_is_shown_and_a_non_public_column_is_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut lab = start_lab(tmp.path()).await;
    let mut seen = Seen::default();
    let featured = lab.manifest.featured.enterprise_credit_code.clone();

    // A column the public may not see: refused at start, with the file and the key.
    let file = lab.dir.join("gateway.toml");
    let text = std::fs::read_to_string(&file).expect("gateway.toml");
    assert!(text.contains("\"registered_capital\""), "the demo window shows the capital");
    let bad = lab.dir.join("gateway-bad.toml");
    std::fs::write(&bad, text.replacen("\"registered_capital\"", "\"legal_rep_id\", \"registered_capital\"", 1))
        .expect("write");
    let error = creditgate_engine::Engine::load(&bad).await.err().expect("refused").to_string();
    assert!(error.contains("gateway-bad.toml"), "{error}");
    assert!(error.contains("public.sections[0]: column `legal_rep_id`"), "{error}");
    assert!(error.contains("not granted to the public role"), "{error}");

    // A new section in config only (the policy already grants the dataset),
    // and a tight per-address limit.
    lab.gateway_config.public.sections.push(DisclosureSection {
        name: "licence_numbers".into(),
        dataset: "market.licences".into(),
        key: "credit_code".into(),
        columns: Some(vec!["licence_no".into(), "licence_type".into()]),
        order_by: Some("licence_no".into()),
        shape: SectionShape::Records,
        title: Some(SectionTitle { zh: "许可证编号".into(), en: "Licence numbers".into() }),
        publication: None,
    });
    lab.gateway_config.public.rate_limit_per_address =
        Some(creditgate_engine::config::AddressRateLimit { per_second: 1, burst: 3 });
    let lab = restart_gateway(lab).await;
    let page = seen.json(&lab, &format!("/public/v1/enterprises/{featured}")).await;
    let rows = page["licence_numbers"].as_array().unwrap_or_else(|| panic!("{page}"));
    assert!(!rows.is_empty(), "the featured enterprise has licences");
    for row in rows {
        let keys: BTreeSet<&str> = row.as_object().expect("row").keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["licence_no", "licence_type"]));
    }
    let section =
        page["sections"].as_array().expect("sections").iter().find(|s| s["name"] == "licence_numbers").cloned();
    let section = section.expect("described");
    assert_eq!(section["title"]["zh"], "许可证编号");
    assert_eq!(section["title"]["en"], "Licence numbers");
    assert_eq!(section["shape"], "records");

    // A policy reload that takes a shown column from the public is refused;
    // the current policy stays.
    let policy_file = lab.gateway_config.policy.clone();
    let policy = std::fs::read_to_string(&policy_file).expect("policy");
    let public_rule = "role = \"public\"\ndataset = \"market.enterprises\"\ncolumns = [\"credit_code\", \"name\", \"registered_capital\", ";
    assert!(policy.contains(public_rule), "the demo policy's public rule");
    let narrowed = policy.replace(
        public_rule,
        "role = \"public\"\ndataset = \"market.enterprises\"\ncolumns = [\"credit_code\", \"name\", ",
    );
    std::fs::write(&policy_file, narrowed).expect("write policy");
    let error = lab.gateway.engine().reload_policy().expect_err("refused").to_string();
    assert!(error.contains("column `registered_capital`"), "{error}");
    std::fs::write(&policy_file, policy).expect("restore policy");

    // The limit per client address: 429 with Retry-After, recorded as a refusal.
    // A concurrent burst well over the bucket (burst 40, 10/s), so a loaded
    // machine's slower requests cannot refill it in time.
    let path = format!("/public/v1/enterprises/{featured}");
    let burst = futures::future::join_all((0..80).map(|_| lab.public_get(&path))).await;
    let limited = burst.into_iter().filter_map(Result::ok).find(|r| r.status == 429);
    let limited = limited.expect("the per-address limit refuses a burst");
    assert!(limited.header("retry-after").is_some());
    assert!(String::from_utf8_lossy(&limited.body).contains("per client address"));
    let refused = audit_records(&lab)
        .into_iter()
        .any(|r| r.refusal_reason.as_deref().is_some_and(|reason| reason.contains("per client address")));
    assert!(refused, "the refusal is audited");

    scan_for_personal_identifiers(&lab, &seen).await;
    lab.stop().await.expect("stop");
}

/// No resident ID, mobile number or name of a natural person in any answer:
/// ID and mobile shapes checked with the validators, names against the raw
/// data's individuals (sellers, black-listed people, legal representatives).
async fn scan_for_personal_identifiers(lab: &Lab, seen: &Seen) {
    let people = raw_rows(
        lab,
        "SELECT name FROM credit_platform.black_list WHERE subject_type = 'individual' \
         UNION SELECT owner_name AS name FROM platform_a.shops WHERE owner_type = 'individual' \
         UNION SELECT owner_name AS name FROM platform_b.shops WHERE owner_type = 'individual' \
         UNION SELECT legal_rep_name AS name FROM market.enterprises",
    )
    .await;
    // Two-character names also occur inside trade names; longer ones are checked.
    let mut names: BTreeSet<String> =
        people.iter().map(|r| text(r, "name")).filter(|n| n.chars().count() >= 3).collect();
    names.insert(lab.manifest.featured.individual_name.clone());
    assert!(names.len() > 100, "the data has people ({})", names.len());
    let today = chrono::Local::now().date_naive();
    assert!(!seen.bodies.is_empty());
    for body in &seen.bodies {
        let chars: Vec<char> = body.chars().collect();
        for window in chars.windows(18) {
            let candidate: String = window.iter().collect();
            if creditgate_ident::CreditCode::parse(&candidate).is_err() {
                assert!(
                    creditgate_ident::ResidentId::parse_at(&candidate, today).is_err(),
                    "a resident ID in a public answer: {candidate}"
                );
            }
        }
        let mut digits = String::new();
        for c in body.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if digits.len() == 11 {
                assert!(
                    creditgate_ident::Mobile::parse(&digits).is_err(),
                    "a mobile number in a public answer: {digits}"
                );
            }
            digits.clear();
        }
        for name in &names {
            assert!(!body.contains(name.as_str()), "the name of a person in a public answer: {name}");
        }
    }
    assert!(!seen.bodies.iter().any(|b| b.contains(&lab.manifest.featured.individual_resident_id)));
}
