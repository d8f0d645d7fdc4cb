//! `creditgate policy linkage --config gateway.toml [--json]` as an operator
//! runs it (the built binary) next to a running gateway: exit status 1 and
//! the failing columns on the old demo masks, 0 on the committed demo
//! policy; the JSON document's shape; the table's bilingual headings; a
//! config it cannot use is an error, not a pass.

use std::path::Path;
use std::process::{Command, Output};

use creditgate_tooling::demo::{Lab, LabOptions};

/// The demo policy with the masks of before issue 14.
const OLD_MASKS: &str = include_str!("../../tests/fixtures/demo-policy-old-masks.toml");

fn linkage(config: &Path, json: bool) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_creditgate"));
    command.args(["policy", "linkage", "--config"]).arg(config).env("RUST_LOG", "warn");
    if json {
        command.arg("--json");
    }
    command.output().expect("run creditgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn use_policy(lab: &Lab, policy: &str) {
    std::fs::write(lab.dir.join("policy.toml"), policy).expect("write policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_linkage_command_fails_on_the_old_masks_and_passes_on_the_demo_policy() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let lab = Lab::start(LabOptions::new(tmp.path())).await.expect("lab");
    let config = lab.dir.join("gateway.toml");
    let audit_before = std::fs::read_dir(lab.dir.join("state").join("audit")).expect("audit dir").count();

    // The committed demo policy (what the lab runs): exit 0, a table.
    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || linkage(&config, false)
    })
    .await
    .expect("task");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    for heading in [
        "可链接性报告 Linkability report",
        "主体 principal: samr",
        "数据集.字段 dataset.column",
        "掩码 mask",
        "组合 k combined",
        "通过 passed",
    ] {
        assert!(stdout.contains(heading), "`{heading}` missing:\n{stdout}");
    }
    assert!(
        stdout.contains("complaints.complaints.complainant_mobile") && stdout.contains("mobile_prefix"),
        "{stdout}"
    );
    assert!(!stdout.lines().any(|l| l.starts_with('!')), "no column below min_k:\n{stdout}");

    // The old masks: exit 1, the failing columns named, as JSON too.
    use_policy(&lab, OLD_MASKS);
    let (table, json) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || (linkage(&config, false), linkage(&config, true))
    })
    .await
    .expect("task");
    let stdout = text(&table.stdout);
    assert_eq!(table.status.code(), Some(1), "stdout: {stdout}\nstderr: {}", text(&table.stderr));
    assert!(stdout.contains("未通过 FAILED"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("! complaints.complaints.complainant_mobile")), "{stdout}");
    assert_eq!(json.status.code(), Some(1), "{}", text(&json.stderr));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).expect("the output is one JSON document");
    assert_eq!(report["passed"], false);
    assert_eq!(report["min_k"], 5);
    assert_eq!(report["keyed_hash_scope"], "organization");
    let failures: Vec<&str> =
        report["failures"].as_array().expect("failures").iter().filter_map(|v| v.as_str()).collect();
    for column in [
        "samr:complaints.complaints.complainant_mobile",
        "credit_agency:market.enterprises.legal_rep_id",
        "credit_agency:court.dishonest_debtors.resident_id",
    ] {
        assert!(failures.contains(&column), "{column} not among the failures: {failures:?}");
    }
    let samr =
        report["principals"].as_array().expect("principals").iter().find(|p| p["principal"] == "samr").expect("samr");
    let mobile = samr["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["column"] == "complainant_mobile")
        .expect("complainant_mobile");
    assert_eq!(mobile["mask"], "mobile");
    assert_eq!(mobile["k"], 1);
    assert_eq!(mobile["below_min_k"], true);
    assert_eq!(mobile["may_link"], false);
    assert!(mobile["unique_share"].as_f64().is_some_and(|s| s > 0.9), "{mobile}");
    assert!(
        mobile["combination"]["with"].as_array().is_some_and(|w| w.iter().any(|c| c == "complainant_name")),
        "{mobile}"
    );
    let matches = mobile["matches"].as_array().expect("matches");
    assert!(
        matches.iter().any(|m| m["dataset"] == "market.enterprises"
            && m["column"] == "phone"
            && m["kind"] == "same_mask"
            && m["matching_values"].as_u64().is_some_and(|n| n > 0)),
        "{mobile}"
    );

    // With relating allowed every mask may link: nothing fails on k.
    use_policy(&lab, &format!("{OLD_MASKS}\n[masking]\nrelate_masked_values = true\n"));
    let relaxed = tokio::task::spawn_blocking({
        let config = config.clone();
        move || linkage(&config, true)
    })
    .await
    .expect("task");
    assert_eq!(relaxed.status.code(), Some(0), "{}", text(&relaxed.stderr));

    // Nothing written: the audit log has no new file, the gateway still runs.
    assert_eq!(std::fs::read_dir(lab.dir.join("state").join("audit")).expect("audit dir").count(), audit_before);

    // A config it cannot use is an error (exit ≠ 0), never a pass.
    let missing = linkage(&lab.dir.join("no-such.toml"), false);
    assert_ne!(missing.status.code(), Some(0));
    assert!(text(&missing.stderr).contains("no-such.toml"), "{}", text(&missing.stderr));
    lab.stop().await.expect("stop");
}
