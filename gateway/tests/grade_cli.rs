//! `creditgate grade` and `creditgate policy check --grading` as a user
//! runs them: the binary against a running demo gateway.

use std::process::Command;

use creditgate_tooling::demo::{DEMO_POLICY, Lab, LabOptions};

fn creditgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_creditgate")).args(args).output().expect("run creditgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn policy_check_checks_a_grading_template_against_the_policy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, DEMO_POLICY).expect("policy");
    let template = tmp.path().join("grading.toml");
    std::fs::write(&template, creditgate_grade_template()).expect("template");
    let ok =
        creditgate(&["policy", "check", policy.to_str().expect("utf8"), "--grading", template.to_str().expect("utf8")]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", text(&ok.stdout), text(&ok.stderr));
    assert!(text(&ok.stdout).contains("template qingdao-ecommerce-credit"), "{}", text(&ok.stdout));

    // A column no dataset has and an unknown key: both reported, non-zero.
    let broken = creditgate_grade_template()
        .replacen("column = \"penalty_kind\"", "column = \"penalty_type\"", 1)
        .replacen("points = -40\nwarning = true", "points = -40\nwarning = true\nseverity = 1", 1);
    std::fs::write(&template, broken).expect("template");
    let bad =
        creditgate(&["policy", "check", policy.to_str().expect("utf8"), "--grading", template.to_str().expect("utf8")]);
    assert_ne!(bad.status.code(), Some(0));
    let err = text(&bad.stderr);
    assert!(err.contains("severity") && err.contains("unknown key"), "{err}");
    let fixed_key = text(&std::fs::read(&template).expect("read")).replacen("\nseverity = 1", "", 1);
    std::fs::write(&template, fixed_key).expect("template");
    let bad =
        creditgate(&["policy", "check", policy.to_str().expect("utf8"), "--grading", template.to_str().expect("utf8")]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(text(&bad.stderr).contains("no column `penalty_type`"), "{}", text(&bad.stderr));
}

fn creditgate_grade_template() -> String {
    include_str!("../../policy/grade/examples/demo-grading.toml").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grade_cli_writes_the_batch_with_warnings_first() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions::new(tmp.path())).await.expect("lab");
    let samr = lab.caller("samr").expect("samr").clone();
    let codes = tmp.path().join("codes.txt");
    let featured = lab.manifest.featured.enterprise_credit_code.clone();
    std::fs::write(&codes, format!("# codes to grade\n{featured}\n\n{featured}\n")).expect("codes");
    let out = tmp.path().join("grades.ndjson");
    let http = lab.gateway.http_addr.to_string();
    let args: Vec<String> = [
        "grade",
        "--codes",
        codes.to_str().expect("utf8"),
        "--gateway",
        http.as_str(),
        "--ca",
        lab.ca_file.to_str().expect("utf8"),
        "--cert",
        samr.cert.to_str().expect("utf8"),
        "--key",
        samr.key.to_str().expect("utf8"),
        "--purpose",
        "supervision",
        "--out",
        out.to_str().expect("utf8"),
    ]
    .map(str::to_string)
    .to_vec();
    let first = args.clone();
    let run = tokio::task::spawn_blocking(move || creditgate(&first.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("join");
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(text(&run.stderr).contains("graded 1 of 1"), "{}", text(&run.stderr));
    let lines: Vec<serde_json::Value> =
        text(&std::fs::read(&out).expect("out")).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 2, "one grade (the duplicate graded once) and the summary");
    assert_eq!(lines[0]["subject"]["id"], serde_json::json!(featured));
    assert!(lines[0]["grade"].is_string(), "{}", lines[0]);
    assert_eq!(lines[1]["summary"]["complete"], 1);

    // A purpose the caller does not have: refused, the reason printed, nothing written.
    std::fs::remove_file(&out).expect("remove");
    let mut refused = args.clone();
    refused[12] = "credit_report".to_string();
    let run = tokio::task::spawn_blocking(move || creditgate(&refused.iter().map(String::as_str).collect::<Vec<_>>()))
        .await
        .expect("join");
    assert_ne!(run.status.code(), Some(0));
    assert!(text(&run.stderr).contains("credit_report"), "{}", text(&run.stderr));
    assert!(!out.exists(), "a refused batch writes nothing");
}
