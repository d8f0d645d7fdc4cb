//! Policy validation as an operator meets it: `creditgate policy check F`
//! (the built binary) on the committed demo policy and on broken copies of
//! it, and a gateway that refuses to start on an invalid policy, both
//! in-process and as the `creditgate gateway` process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use creditgate_engine::{Engine as Gateway, GatewayConfig};

/// The committed demo policy.
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/core/examples/demo-policy.toml");
/// The committed example gateway config.
const EXAMPLE_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/gateway.toml");

fn creditgate(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_creditgate"))
        .args(args)
        .arg(file)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run creditgate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn demo_text() -> String {
    std::fs::read_to_string(DEMO).expect("read the demo policy")
}

/// The 0-based index of the `[[table]]` entry in which `needle` occurs, counted
/// from the text itself (what an operator does when reading an error key).
fn entry_index(text: &str, table: &str, needle: &str) -> usize {
    let at = text.find(needle).unwrap_or_else(|| panic!("`{needle}` is not in the demo policy"));
    let header = format!("[[{table}]]");
    let count = text[..at].matches(header.as_str()).count();
    assert!(count > 0, "`{needle}` is not inside a [[{table}]] entry");
    count - 1
}

/// `text` with the first `from` replaced by `to` (which must occur).
fn break_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` is not in the demo policy");
    text.replacen(from, to, 1)
}

#[test]
fn policy_check_accepts_the_committed_demo_policy() {
    let out = creditgate(&["policy", "check"], Path::new(DEMO));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    // The summary matches the policy as the gateway loads it.
    let policy = creditgate_policy::Policy::load(DEMO).expect("the demo policy loads");
    let first = stdout.lines().next().unwrap_or("");
    let summary = format!(
        "demo-policy.toml: valid — {} principals, {} datasets, {} rules",
        policy.principals().len(),
        policy.datasets().len(),
        policy.rules().len()
    );
    assert!(first.ends_with(&summary), "{stdout}");
    assert_eq!(stdout.lines().count(), 1 + policy.principals().len(), "{stdout}");
    for principal in policy.principals() {
        let line = format!(
            "  {} ({}, {}): {} datasets, purposes {}",
            principal.name,
            principal.role,
            principal.identity,
            policy.grants_for(principal).len(),
            principal.purposes.join(", ")
        );
        assert!(stdout.lines().any(|l| l == line), "no `{line}` in:\n{stdout}");
    }
    // Every demo caller is in it, and the privacy officer sees no credit data.
    for name in ["samr", "credit_agency", "platform_a", "privacy_officer", "public"] {
        assert!(policy.principal(name).is_some(), "{name} is a demo caller");
    }
    assert!(
        stdout.contains("privacy_officer (privacy_officer, spiffe://credit.example/org/privacy-officer): 0 datasets")
    );
}

#[test]
fn policy_check_names_file_key_and_reason_for_each_mistake() {
    let demo = demo_text();
    let tmp = tempfile::tempdir().expect("tempdir");
    // (what, broken copy, expected "key: reason" lines)
    let samr = entry_index(&demo, "principals", "name = \"samr\"");
    let staff_rule = entry_index(&demo, "rules", "hired_date = \"year_only\"");
    let violations_rule = entry_index(&demo, "rules", "dataset = \"courier.violations\"");
    let public_rule = entry_index(&demo, "rules", "row_filters = [\"is_public = true\"]");
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown role",
            break_once(&demo, "role = \"agency\"\npurposes", "role = \"agencyy\"\npurposes"),
            vec![format!(
                "principals[{samr}].role: unknown role \"agencyy\" (expected one of agency, credit_agency, platform, privacy_officer, public)"
            )],
        ),
        (
            "unknown mask",
            break_once(&demo, "hired_date = \"year_only\"", "hired_date = \"year_onl\""),
            vec![format!("rules[{staff_rule}].masks.hired_date: unknown mask \"year_onl\"")],
        ),
        (
            "unknown dataset",
            break_once(&demo, "dataset = \"courier.violations\"", "dataset = \"courier.violation\""),
            vec![format!("rules[{violations_rule}].dataset: unknown dataset \"courier.violation\"")],
        ),
        (
            "unknown key",
            break_once(&demo, "daily_quota = 200000", "daily_quotas = 200000"),
            vec![format!("principals[{samr}]: unknown field `daily_quotas`")],
        ),
        (
            "bad row filter and bad mask together",
            break_once(
                &break_once(
                    &demo,
                    "row_filters = [\"is_public = true\"]",
                    "row_filters = [\"upper(is_public) = 'x'\"]",
                ),
                "hired_date = \"year_only\"",
                "hired_date = \"partial(1)\"",
            ),
            vec![
                format!("rules[{staff_rule}].masks.hired_date: bad mask \"partial(1)\""),
                format!("rules[{public_rule}].row_filters[0]: not a plain comparison"),
            ],
        ),
        ("not TOML", format!("{demo}\n[[rules]\n"), vec!["not valid TOML".to_string()]),
    ];
    for (what, broken, expected) in cases {
        let file = tmp.path().join("broken-policy.toml");
        std::fs::write(&file, &broken).expect("write");
        let out = creditgate(&["policy", "check"], &file);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{what}: stdout: {stdout}\nstderr: {stderr}");
        assert!(!stdout.contains("valid"), "{what}: a broken policy is not summarised as valid: {stdout}");
        let n = expected.len();
        let count = format!("{n} error{} in policy", if n == 1 { "" } else { "s" });
        assert!(stderr.starts_with("error: ") && stderr.contains(&count), "{what}: {stderr}");
        for want in &expected {
            let line = format!("broken-policy.toml: {want}");
            assert!(stderr.lines().any(|l| l.trim_start().starts_with(&line)), "{what}: no `{line}` in:\n{stderr}");
        }
    }

    // A file that is not there: named, with the reason.
    let missing = tmp.path().join("missing-policy.toml");
    let out = creditgate(&["policy", "check"], &missing);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot read policy file") && stderr.contains("missing-policy.toml"), "{stderr}");
}

/// A purpose misspelt in one principal is valid TOML and a valid code, but
/// `policy check` fails on it, naming the key and the code it resembles: as
/// a code missing from the `[purposes]` registry (the demo policy has one),
/// and, in a policy without a registry, as a near-miss of another code.
#[test]
fn policy_check_flags_a_purpose_that_looks_like_a_typo() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let demo = demo_text();
    let typo_at = entry_index(&demo, "principals", "purposes = [\"licensing_review\", \"supervision\"");
    let broken = break_once(
        &demo,
        "purposes = [\"licensing_review\", \"supervision\"",
        "purposes = [\"licensing_review\", \"supervison\"",
    );
    let file = tmp.path().join("typo-policy.toml");
    let check = |text: &str| {
        std::fs::write(&file, text).expect("write");
        let out = creditgate(&["policy", "check"], &file);
        (out.status.code(), text_of(&out.stderr))
    };
    let (code, stderr) = check(&broken);
    assert_eq!(code, Some(1), "{stderr}");
    let want = format!(
        "principals[{typo_at}].purposes[1]: purpose \"supervison\" has no [purposes.supervison] entry (did you mean `supervision`?"
    );
    assert!(stderr.contains(&want), "no `{want}` in:\n{stderr}");

    // Without the registry: the near-miss check of `policy check` itself.
    let without_registry = |text: &str| -> String {
        let mut out = Vec::new();
        let mut skipping = false;
        for line in text.lines() {
            if line.starts_with('[') {
                skipping = line.starts_with("[purposes.") || line.starts_with("[organizations.");
            }
            if !skipping {
                out.push(line);
            }
        }
        out.join("\n")
    };
    let (code, stderr) = check(&without_registry(&broken));
    assert_eq!(code, Some(1), "{stderr}");
    // Its duty code is still spelt right: used as often as the typo, both are named.
    let want = format!(
        "principals[{typo_at}].duty_codes[1]: `supervision` and `supervison` (principals[{typo_at}].purposes[1]) differ"
    );
    assert!(stderr.contains("1 likely mistake") && stderr.contains(&want), "no `{want}` in:\n{stderr}");
    // The same files without the typo pass.
    assert_eq!(check(&without_registry(&demo)).0, Some(0));
    assert_eq!(check(&demo).0, Some(0));
}

fn text_of(bytes: &[u8]) -> String {
    text(bytes)
}

/// The committed example gateway config, its relative paths resolved in `dir`.
fn example_config(dir: &Path) -> GatewayConfig {
    let text = std::fs::read_to_string(EXAMPLE_CONFIG).expect("example config");
    let mut config: GatewayConfig = toml::from_str(&text).expect("example config parses");
    config.resolve_paths(dir);
    config
}

/// The demo policy with samr's role misspelt, and the key and reason it is refused with.
fn broken_policy() -> (String, String) {
    let demo = demo_text();
    let samr = entry_index(&demo, "principals", "name = \"samr\"");
    let broken = break_once(&demo, "role = \"agency\"\npurposes", "role = \"agencyy\"\npurposes");
    (broken, format!("policy.toml: principals[{samr}].role: unknown role \"agencyy\""))
}

#[tokio::test]
async fn the_gateway_refuses_to_start_on_an_invalid_policy() {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = example_config(tmp.path());
    assert_eq!(config.policy, tmp.path().join("policy.toml"));
    let (broken, reason) = broken_policy();
    std::fs::write(&config.policy, broken).expect("write policy");

    let error = match Gateway::new(config.clone()).await {
        Ok(_) => panic!("a gateway started on an invalid policy"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("1 error in policy") && error.contains(&reason), "{error}");
    // Refused before anything else: no state was created.
    assert!(!tmp.path().join("state").exists(), "state written before the policy was checked");

    // Control: with the committed policy it gets past the policy (and stops
    // later, at the example's certificates, which are not there).
    std::fs::write(&config.policy, demo_text()).expect("write policy");
    let template = include_str!("../../policy/grade/examples/demo-grading.toml");
    std::fs::write(tmp.path().join("grading.toml"), template).expect("write grading template");
    let error = match Gateway::new(config).await {
        Ok(_) => panic!("the example's certificates do not exist here"),
        Err(e) => e.to_string(),
    };
    assert!(!error.contains("policy"), "the committed policy is accepted: {error}");
}

#[test]
fn the_gateway_process_exits_with_the_policy_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config_path: PathBuf = tmp.path().join("gateway.toml");
    std::fs::copy(EXAMPLE_CONFIG, &config_path).expect("copy the example config");
    let (broken, reason) = broken_policy();
    std::fs::write(tmp.path().join("policy.toml"), broken).expect("write policy");

    let out = creditgate(&["gateway", "--config"], &config_path);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "no listener was announced: {stdout}");
    assert!(stderr.starts_with("error: gateway config: 1 error in policy"), "{stderr}");
    assert!(stderr.contains(&reason), "{stderr}");
    assert!(!tmp.path().join("state").exists(), "state written before the policy was checked");
}
