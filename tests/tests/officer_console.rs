//! The privacy-officer API as the console uses it, end to end: the meta
//! endpoint (time zone, purpose and organisation names), CSV answers and 406
//! for the rest, unknown parameters refused by name, the officer's own reads
//! flagged and filtered, the subject report's pages, summary and CSV, the
//! files a browser fetches on its own left out of the log, and the HTML
//! refusal page a browser gets.

use creditgate_tests::{add_caller, request_records as records, restart_gateway, start_lab_with};
use creditgate_tooling::demo::{DEMO_POLICY, Lab};

/// A second privacy officer, to tell one officer's reads from another's.
const SECOND_OFFICER: &str = r#"
[[principals]]
name = "officer_two"
identity = "spiffe://credit.example/org/officer-two"
organization = "Qingdao Public Credit Information Centre"
role = "privacy_officer"
purposes = ["audit"]
"#;

async fn lab(dir: &std::path::Path) -> Lab {
    // The principal goes before the registries and datasets of the demo policy.
    let at = DEMO_POLICY.find("# Names shown to people").expect("the demo policy names purposes");
    let policy = format!("{}{SECOND_OFFICER}\n{}", &DEMO_POLICY[..at], &DEMO_POLICY[at..]);
    let mut lab = start_lab_with(dir, |o| o.policy = Some(policy)).await;
    add_caller(&mut lab, "officer_two", "officer-two", "privacy_officer", &["audit"]);
    lab
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

async fn get(lab: &Lab, caller: &str, path: &str, accept: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    let r = lab.http(caller, "GET", path, &headers, None).await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    Reply {
        status: r.status,
        content_type: r.content_type.unwrap_or_default(),
        body: String::from_utf8_lossy(&r.body).into_owned(),
    }
}

async fn samr_looks_up(lab: &Lab, code: &str, times: usize) {
    let mut samr = lab.flight_client("samr").expect("client");
    for _ in 0..times {
        samr.query(&format!("SELECT name FROM market.enterprises WHERE credit_code = '{code}'"))
            .await
            .expect("allowed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_csv_406_and_unknown_parameters() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    samr_looks_up(&lab, &code, 2).await;

    // The meta endpoint: time zone, names from the policy, who asks.
    let meta = get(&lab, "privacy_officer", "/v1/audit/meta", None).await;
    assert_eq!(meta.status, 200, "{}", meta.body);
    let meta = meta.json();
    assert_eq!(meta["time_zone"], "Asia/Shanghai");
    assert_eq!(meta["purposes"]["supervision"]["zh"], "监督管理");
    assert_eq!(meta["purposes"]["supervision"]["en"], "Supervision");
    assert_eq!(meta["organizations"]["Qingdao Administration for Market Regulation"]["zh"], "青岛市市场监督管理局");
    assert_eq!(meta["officer"]["name"], "privacy_officer");
    // ... for officers only, and it takes no parameters.
    let refused = get(&lab, "samr", "/v1/audit/meta", None).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.json()["error"]["code"], "CG-POL-001");
    let extra = get(&lab, "privacy_officer", "/v1/audit/meta?lang=zh", None).await;
    assert_eq!(extra.status, 400, "{}", extra.body);
    assert!(extra.json()["error"]["message"].as_str().unwrap_or("").contains("`lang`"), "{}", extra.body);

    // Records as CSV: the same page as the JSON one, a header line first.
    let json = get(&lab, "privacy_officer", "/v1/audit/records?caller=samr&limit=5", None).await.json();
    let total = json["total"].as_u64().expect("total");
    assert!(total >= 2, "{json}");
    let csv = get(&lab, "privacy_officer", "/v1/audit/records?caller=samr&limit=5", Some("text/csv")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.content_type.starts_with("text/csv"), "{}", csv.content_type);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert!(lines[0].starts_with("seq,time_utc,caller,caller_fingerprint,organization,"), "{}", lines[0]);
    assert_eq!(lines.len() as u64, 1 + total.min(5), "{}", csv.body);
    let first_seq = json["items"][0]["seq"].as_u64().expect("seq");
    assert!(lines[1].starts_with(&format!("{first_seq},")), "{}", lines[1]);
    assert!(lines[1..].iter().all(|l| l.contains(",samr,")), "{}", csv.body);
    assert!(!csv.body.contains(&code), "CSV holds no raw credit code");
    // A browser-style Accept with a wildcard still gets JSON.
    let wildcard = get(&lab, "privacy_officer", "/v1/audit/records?limit=1", Some("text/html, */*;q=0.8")).await;
    assert_eq!(wildcard.status, 200);
    assert!(wildcard.content_type.starts_with("application/json"), "{}", wildcard.content_type);

    // 406 for what a route cannot produce, saying what it can.
    let xml = get(&lab, "privacy_officer", "/v1/audit/records", Some("application/xml")).await;
    assert_eq!(xml.status, 406, "{}", xml.body);
    assert_eq!(xml.json()["error"]["code"], "CG-REQ-005");
    assert!(
        xml.json()["error"]["message"].as_str().unwrap_or("").contains("application/json or text/csv"),
        "{}",
        xml.body
    );
    let stats_csv = get(&lab, "privacy_officer", "/v1/audit/stats", Some("text/csv")).await;
    assert_eq!(stats_csv.status, 406, "{}", stats_csv.body);
    assert!(
        stats_csv.json()["error"]["message"].as_str().unwrap_or("").ends_with("use application/json"),
        "{}",
        stats_csv.body
    );
    let stats_json = get(&lab, "privacy_officer", "/v1/audit/stats", Some("application/json")).await;
    assert_eq!(stats_json.status, 200, "{}", stats_json.body);

    // Unknown parameters are refused by name, on every route.
    for (path, name) in [
        ("/v1/audit/records?subjet=91350100M000100Y43", "`subjet`"),
        ("/v1/audit/records?caller=samr&own_read=only", "`own_read`"),
        ("/v1/audit/stats?form=2026-01-01", "`form`"),
        (&*format!("/v1/audit/subjects/{code}/report?curser=3"), "`curser`"),
    ] {
        let r = get(&lab, "privacy_officer", path, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let message = r.json()["error"]["message"].as_str().unwrap_or("").to_owned();
        assert!(message.contains(name), "{path}: {message}");
        assert!(!message.contains("91350100M000100Y43"), "{message}");
    }
    let bad_value = get(&lab, "privacy_officer", "/v1/audit/records?own_reads=mine", None).await;
    assert_eq!(bad_value.status, 400);
    assert!(bad_value.body.contains("own_reads: one of include, exclude, only"), "{}", bad_value.body);

    // The refusals are audited as the officer's own (refused) reads.
    let refusals =
        get(&lab, "privacy_officer", "/v1/audit/records?outcome=refused&own_reads=only&limit=50", None).await;
    let items = refusals.json()["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() >= 8, "406s and 400s are recorded: {}", refusals.body);

    // The configured time zone is what the console is told.
    let mut lab = lab;
    lab.gateway_config.audit.time_zone = "Europe/Berlin".to_string();
    let lab = restart_gateway(lab).await;
    let meta = get(&lab, "privacy_officer", "/v1/audit/meta", None).await.json();
    assert_eq!(meta["time_zone"], "Europe/Berlin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_reads_are_flagged_and_filtered_and_the_subject_report_pages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = lab(tmp.path()).await;
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    samr_looks_up(&lab, &code, 5).await;
    // Both officers read the log; officer_two searches for the subject too.
    for who in ["privacy_officer", "officer_two"] {
        assert_eq!(get(&lab, who, "/console", None).await.status, 200);
        assert_eq!(get(&lab, who, "/v1/audit/verify", None).await.status, 200);
    }
    assert_eq!(get(&lab, "officer_two", &format!("/v1/audit/records?subject={code}"), None).await.status, 200);

    let page = |filter: &'static str| {
        let lab = &lab;
        async move {
            let r = get(lab, "privacy_officer", &format!("/v1/audit/records?limit=1000{filter}"), None).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["items"].as_array().cloned().unwrap_or_default()
        }
    };
    let all = page("").await;
    let only = page("&own_reads=only").await;
    let exclude = page("&own_reads=exclude").await;
    // A read is recorded once it is answered: each search sees the earlier ones.
    assert!(all.iter().all(|r| r["own_read"].is_boolean()), "every record says whether it is an own read");
    let own_in_all: Vec<&serde_json::Value> = all.iter().filter(|r| r["own_read"] == true).collect();
    assert!(own_in_all.len() >= 2, "the console load and verify: {own_in_all:?}");
    assert!(own_in_all.iter().all(|r| r["caller"]["name"] == "privacy_officer"), "{own_in_all:?}");
    // officer_two's reads are audit reads, but not privacy_officer's own.
    assert!(all.iter().any(|r| r["caller"]["name"] == "officer_two" && r["own_read"] == false));
    assert!(only.iter().all(|r| r["own_read"] == true && r["caller"]["name"] == "privacy_officer"), "{only:?}");
    assert!(exclude.iter().all(|r| r["own_read"] == false), "{exclude:?}");
    assert!(exclude.iter().any(|r| r["caller"]["name"] == "samr"));
    assert!(!only.iter().any(|r| r["caller"]["name"] == "samr"));
    // `only` saw the two earlier searches as well; `exclude` the same others as `all`.
    assert_eq!(only.len(), own_in_all.len() + 1, "{only:?}");
    assert_eq!(exclude.len(), all.len() - own_in_all.len(), "others' records are the same in both");

    // The subject report, page by page, following the cursor.
    let base = format!("/v1/audit/subjects/{code}/report");
    // Reading the report is itself an access to the subject (an audit read
    // naming it); leaving the officer's own reads out keeps the pages still.
    let whole = get(&lab, "privacy_officer", &format!("{base}?limit=1000&own_reads=exclude"), None).await.json();
    let every: Vec<u64> =
        whole["accesses"].as_array().expect("accesses").iter().filter_map(|a| a["seq"].as_u64()).collect();
    assert!(every.len() >= 6, "samr's five look-ups and officer_two's search: {whole}");
    assert_eq!(whole["next_cursor"], serde_json::Value::Null);
    let summary = &whole["summary"];
    assert_eq!(summary["accesses"].as_u64(), Some(every.len() as u64), "{summary}");
    let samr_org = summary["organizations"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["key"] == "Qingdao Administration for Market Regulation"))
        .cloned()
        .unwrap_or_default();
    assert!(samr_org["accesses"].as_u64().unwrap_or(0) >= 5, "{summary}");
    let licensing =
        summary["purposes"].as_array().and_then(|p| p.iter().find(|t| t["key"] == "licensing_review")).cloned();
    assert!(licensing.is_some_and(|t| t["allowed"].as_u64().unwrap_or(0) >= 5), "{summary}");
    let samr = summary["callers"].as_array().and_then(|c| c.iter().find(|t| t["key"] == "samr")).cloned();
    assert!(samr.is_some_and(|t| t["organization"] == "Qingdao Administration for Market Regulation"), "{summary}");
    // officer_two's search is an audit read in the report, not privacy_officer's own.
    let two = whole["accesses"].as_array().and_then(|a| a.iter().find(|e| e["caller_name"] == "officer_two")).cloned();
    assert!(two.is_some_and(|e| e["audit_read"] == true && e["own_read"] == false), "{whole}");

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{base}?limit=2&own_reads=exclude&cursor={c}"),
            None => format!("{base}?limit=2&own_reads=exclude"),
        };
        let r = get(&lab, "privacy_officer", &path, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let doc = r.json();
        let accesses = doc["accesses"].as_array().cloned().unwrap_or_default();
        assert!(accesses.len() <= 2);
        assert_eq!(doc["summary"]["accesses"], summary["accesses"], "every page carries the whole report's summary");
        seen.extend(accesses.iter().filter_map(|a| a["seq"].as_u64()));
        pages += 1;
        match doc["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 100, "the cursor must end");
    }
    assert_eq!(seen, every, "the pages together are the whole report, newest first, no gap, no repeat");
    assert_eq!(pages, every.len().div_ceil(2));
    // With its own reads included, each read of the report is one more
    // access, flagged as the officer's own.
    let one = format!("{base}?limit=1");
    let first = get(&lab, "privacy_officer", &one, None).await.json();
    let second = get(&lab, "privacy_officer", &one, None).await.json();
    assert_eq!(second["summary"]["accesses"].as_u64(), first["summary"]["accesses"].as_u64().map(|n| n + 1));
    assert_eq!(second["accesses"][0]["own_read"], true, "{second}");
    assert_eq!(second["accesses"][0]["caller_name"], "privacy_officer");
    assert!(first["summary"]["accesses"].as_u64() > Some(every.len() as u64), "the pages read above are counted");
    let bad = get(&lab, "privacy_officer", &format!("{base}?cursor=next"), None).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("cursor: expected the next_cursor"), "{}", bad.body);

    // The report as CSV, and without the officers' reads.
    let csv = get(&lab, "privacy_officer", &format!("{base}?limit=1000&own_reads=exclude"), Some("text/csv")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.content_type.starts_with("text/csv"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "seq,time_utc,caller,organization,role,frontend,purpose,legal_basis,datasets,fields,outcome,refusal_reason,own_read"
    );
    assert!(lines[1..].iter().filter(|l| l.contains(",samr,")).count() >= 5, "{}", csv.body);
    assert!(lines[1..].iter().all(|l| l.ends_with(",false")), "{}", csv.body);
    assert!(lines.iter().any(|l| l.contains("market.enterprises.name:none")), "{}", csv.body);
    assert!(!csv.body.contains(&code));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_assets_are_not_audited_and_browsers_get_an_html_refusal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = lab(tmp.path()).await;
    let before = records(&lab).len();
    for who in ["privacy_officer", "samr"] {
        let favicon = get(&lab, who, "/favicon.ico", None).await;
        assert_eq!(favicon.status, 204);
        let robots = get(&lab, who, "/robots.txt", None).await;
        assert_eq!(robots.status, 200);
        assert_eq!(robots.body, "User-agent: *\nDisallow: /\n");
        for icon in ["/apple-touch-icon.png", "/apple-touch-icon-precomposed.png", "/apple-touch-icon-120x120.png"] {
            assert_eq!(get(&lab, who, icon, None).await.status, 404, "{icon}");
        }
    }
    assert_eq!(records(&lab).len(), before, "no record for a browser's own fetches: {:#?}", &records(&lab)[before..]);
    // Negative control: an unknown path is a refusal, and recorded.
    assert_eq!(get(&lab, "samr", "/favicon.png", None).await.status, 404);
    assert_eq!(records(&lab).len(), before + 1);

    // A data user's browser opening the console gets a page, not JSON.
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = get(&lab, "samr", "/console", Some(html)).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.content_type.starts_with("text/html"), "{}", page.content_type);
    assert!(page.body.starts_with("<!doctype html>"), "{}", page.body);
    assert!(page.body.contains("无权访问") && page.body.contains("Access refused"), "{}", page.body);
    assert!(page.body.contains("CG-POL-001"), "{}", page.body);
    assert!(page.body.contains("privacy officers"), "{}", page.body);
    assert!(!page.body.contains("<script") && !page.body.contains("id=\"chain-status\""), "not the console");
    // The same refusal for an API client is JSON, and both are recorded.
    let json = get(&lab, "samr", "/console", Some("application/json")).await;
    assert_eq!(json.status, 403);
    assert_eq!(json.json()["error"]["code"], "CG-POL-001");
    let refused: Vec<_> = records(&lab)[before + 1..].to_vec();
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(refused.iter().all(|r| r.outcome == creditgate_audit::Outcome::Refused && r.caller.name == "samr"));
    // Markup in what the caller sent (its purpose) stays text in the page.
    let odd = lab
        .http("samr", "GET", "/console", &[("accept", html), ("x-creditgate-purpose", "<b>x</b>")], None)
        .await
        .expect("http");
    let body = String::from_utf8_lossy(&odd.body).into_owned();
    assert_eq!(odd.status, 403, "{body}");
    assert!(odd.content_type.as_deref().is_some_and(|t| t.starts_with("text/html")));
    assert!(body.contains("&lt;b&gt;x&lt;/b&gt;") && !body.contains("<b>x</b>"), "{body}");
    // The officer still gets the console itself.
    let console = get(&lab, "privacy_officer", "/console", Some(html)).await;
    assert_eq!(console.status, 200);
    assert!(console.body.contains("id=\"chain-status\""));
}
