//! The red team's audit-log findings, through the real gateway: an
//! identifier in any literal form of a statement — dollar-quoted, escape
//! string, in a block or line comment, as a number, as a quoted alias, a
//! mobile number, in a statement that does not parse — never appears in the
//! audit files (every byte scanned), and the subject's access report finds
//! each of those accesses.

use creditgate_tests::{request_records, start_lab};
use creditgate_tooling::demo::Lab;

fn raw_audit_bytes(lab: &Lab) -> Vec<u8> {
    let dir = lab.dir.join("state").join("audit");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("audit dir").flatten() {
        if entry.path().is_file() {
            all.extend(std::fs::read(entry.path()).unwrap_or_default());
            all.push(b'\n');
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn query(lab: &Lab, sql: &str) -> u16 {
    let body = serde_json::json!({ "sql": sql }).to_string();
    lab.http("samr", "POST", "/v1/query", &[], Some(body)).await.expect("http").status
}

async fn report_count(lab: &Lab, id: &str) -> usize {
    let response = lab
        .http("privacy_officer", "GET", &format!("/v1/audit/subjects/{id}/report"), &[], None)
        .await
        .expect("report");
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let doc: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    doc["total"].as_u64().map(|n| n as usize).or_else(|| doc["accesses"].as_array().map(Vec::len)).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identifiers_in_any_literal_form_stay_out_of_the_log_and_in_the_subject_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(tmp.path()).await;
    // A resident ID of digits only, so its numeric form is the same ID.
    let person = [&lab.manifest.featured.courier_staff_resident_id, &lab.manifest.featured.individual_resident_id]
        .into_iter()
        .find(|id| id.bytes().all(|b| b.is_ascii_digit()))
        .cloned();
    let person = person.unwrap_or_else(|| lab.manifest.featured.individual_resident_id.clone());
    let code = lab.manifest.featured.enterprise_credit_code.clone();
    let mobile = "13912345678";
    assert!(creditgate_ident::Mobile::parse(mobile).is_ok(), "a valid mobile number");

    let mut person_forms = vec![
        format!("SELECT shop_id FROM platform_a.shops WHERE owner_resident_id = $${person}$$"),
        format!("SELECT shop_id FROM platform_a.shops WHERE owner_resident_id = $tag${person}$tag$"),
        format!("SELECT shop_id FROM platform_a.shops WHERE owner_resident_id = E'{person}'"),
        format!("SELECT shop_id FROM platform_a.shops /* {person} */ LIMIT 1"),
        format!("SELECT shop_id FROM platform_a.shops -- {person}\nLIMIT 1"),
        format!("SELECT shop_id AS \"{person}\" FROM platform_a.shops LIMIT 1"),
        format!("SELEC shop_id FROM platform_a.shops WHERE owner_resident_id = '{person}"),
    ];
    if person.bytes().all(|b| b.is_ascii_digit()) {
        person_forms.push(format!("SELECT CAST({person} AS VARCHAR) AS v"));
        person_forms
            .push(format!("SELECT shop_id FROM platform_a.shops WHERE owner_resident_id = CAST({person} AS VARCHAR)"));
    }
    let before_person = report_count(&lab, &person).await;
    let before_records = request_records(&lab).len();
    for sql in &person_forms {
        query(&lab, sql).await;
    }
    query(&lab, &format!("SELECT name FROM market.enterprises WHERE credit_code = $${code}$$ /* {code} */")).await;
    query(&lab, &format!("SELECT shop_id FROM platform_a.shops WHERE owner_mobile = '{mobile}'")).await;
    query(&lab, &format!("SELECT shop_id FROM platform_a.shops WHERE owner_mobile = {mobile}")).await;
    let written = request_records(&lab).len() - before_records;
    assert_eq!(written, person_forms.len() + 3, "one record per request");

    // Every byte of the audit directory: no raw identifier.
    let bytes = raw_audit_bytes(&lab);
    assert!(!contains(&bytes, &person), "a raw resident ID in the audit files");
    assert!(!contains(&bytes, &code), "a raw credit code in the audit files");
    assert!(!contains(&bytes, mobile), "a raw mobile number in the audit files");
    // Negative control: the scan finds what is there (the caller's name).
    assert!(contains(&bytes, "samr"));

    // Each access is in the subject's report.
    // (+1: the officer's own first read of this report is an access to the subject too.)
    assert_eq!(report_count(&lab, &person).await - before_person, person_forms.len() + 1, "every form of the ID");
    assert!(report_count(&lab, &code).await >= 1, "the credit code's access");
    assert_eq!(report_count(&lab, mobile).await, 2, "the mobile number, quoted and as a number");
    lab.stop().await.expect("stop");
}
