//! The `consent` CLI: keygen, issue → verify round trip, show.

mod common;

use clap::Parser;
use common::*;
use creditgate_consent::cli::{public_key_path, read_artefact, run_with};
use creditgate_consent::*;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: ConsentCommand,
}

fn run_args(args: &[&str]) -> Result<String, ConsentError> {
    let cli = Cli::try_parse_from(std::iter::once("consent").chain(args.iter().copied())).expect("arguments parse");
    let mut out = Vec::new();
    run_with(cli.cmd, &mut out, now())?;
    Ok(String::from_utf8(out).expect("utf-8"))
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn keygen_creates_a_private_key_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("keys").join("issuer.key");
    let key_s = key.to_str().expect("path");
    let out = run_args(&["keygen", "--out", key_s]).expect("keygen");
    assert!(out.starts_with("created issuer key"), "{out}");
    assert!(out.contains("[[consent_issuers]]"), "{out}");
    #[cfg(unix)]
    assert_eq!(mode(&key), 0o600);
    assert!(std::fs::read_to_string(&key).expect("pem").starts_with("-----BEGIN PRIVATE KEY-----"));
    let loaded = IssuerKey::load(&key).expect("load");
    let public = std::fs::read_to_string(public_key_path(&key)).expect("pub");
    assert_eq!(public.trim(), loaded.public_key_b64());
    assert!(out.contains(loaded.key_id()) && out.contains(&loaded.public_key_b64()));

    // Second run keeps the key.
    let out = run_args(&["keygen", "--out", key_s]).expect("keygen again");
    assert!(out.starts_with("loaded existing issuer key"), "{out}");
    assert_eq!(IssuerKey::load(&key).expect("load").key_id(), loaded.key_id());

    // load_or_create directly, too.
    let (k2, created) = IssuerKey::load_or_create(&dir.path().join("k2")).expect("create");
    assert!(created);
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join("k2")), 0o600);
    let (k2b, created) = IssuerKey::load_or_create(&dir.path().join("k2")).expect("load");
    assert!(!created);
    assert_eq!(k2.key_id(), k2b.key_id());
}

#[cfg(unix)]
#[test]
fn a_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("issuer.key");
    IssuerKey::load_or_create(&key).expect("create");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = IssuerKey::load(&key).expect_err("world-readable");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn issue_then_verify_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("issuer.key");
    let key_s = key.to_str().expect("path");
    run_args(&["keygen", "--out", key_s]).expect("keygen");
    let consent = dir.path().join("consent.json");
    let out = run_args(&[
        "issue",
        "--key",
        key_s,
        "--issuer",
        "credit-platform",
        "--subject-type",
        "resident_id",
        "--subject",
        RESIDENT_ID_15,
        "--grantee",
        "credit-agency",
        "--purpose",
        "credit_report",
        "--dataset",
        "court.dishonest_debtors",
        "--dataset",
        "market.enterprises",
        "--column",
        "market.enterprises=name,status",
        "--data-from",
        "2020-01-01",
        "--days",
        "7",
        "--max-uses",
        "2",
        "--out",
        consent.to_str().expect("path"),
    ])
    .expect("issue");
    assert!(out.starts_with("wrote consent cns-"), "{out}");
    assert!(!out.contains(RESIDENT_ID), "the confirmation does not print the subject: {out}");
    #[cfg(unix)]
    assert_eq!(mode(&consent), 0o600, "the artefact holds personal data");

    let artefact = read_artefact(&consent).expect("read");
    assert_eq!(artefact.subject.id(), RESIDENT_ID, "15-digit number normalised");
    assert_eq!(artefact.valid_from, now());
    assert_eq!(artefact.valid_until, now() + chrono::Duration::days(7));
    assert_eq!(artefact.max_uses, 2);
    assert_eq!(artefact.data_from, chrono::NaiveDate::from_ymd_opt(2020, 1, 1));
    assert_eq!(artefact.data_to, None);

    // The gateway side: trust the issuer from its .pub file.
    let issuers = TrustedIssuers::from_config(
        &[IssuerConfig {
            id: "credit-platform".to_owned(),
            public_key: None,
            public_key_file: Some(public_key_path(&key)),
        }],
        None,
    )
    .expect("issuers");
    let store = ConsentStore::open(&dir.path().join("state"), HASH_KEY).expect("store");
    let datasets = vec!["market.enterprises".to_owned()];
    let subject = person();
    let ctx = CheckContext {
        issuers: &issuers,
        ledger: &store,
        caller_org: "credit-agency",
        subject: &subject,
        purpose: "credit_report",
        datasets: &datasets,
        now: now() + chrono::Duration::hours(1),
    };
    let permit = verify(&artefact, &ctx).expect("verifies");
    assert_eq!(permit.columns("market.enterprises"), Some(&["name".to_owned(), "status".to_owned()][..]));
    assert_eq!(store.try_use_verified(&permit).expect("use 1"), 1);
    assert_eq!(store.try_use_verified(&verify(&artefact, &ctx).expect("verifies")).expect("use 2"), 2);
    assert_eq!(verify(&artefact, &ctx).expect_err("used up"), ConsentRefusal::UsesExhausted { max: 2 });

    // show prints the same artefact.
    let shown = run_args(&["show", consent.to_str().expect("path")]).expect("show");
    assert_eq!(ConsentArtefact::from_json(&shown).expect("parse"), artefact);

    // Printed to stdout when no --out.
    let printed = run_args(&[
        "issue",
        "--key",
        key_s,
        "--issuer",
        "credit-platform",
        "--subject-type",
        "credit_code",
        "--subject",
        creditgate_ident::CreditCode::complete("91350100M000100Y4").expect("code").as_str(),
        "--grantee",
        "credit-agency",
        "--purpose",
        "credit_report",
        "--dataset",
        "market.enterprises",
        "--consent-id",
        "cns-fixed",
    ])
    .expect("issue to stdout");
    let a = ConsentArtefact::from_json(&printed).expect("parse");
    assert_eq!(a.consent_id, "cns-fixed");
    assert_eq!(a.max_uses, cli::DEFAULT_MAX_USES);
    assert_eq!(a.valid_until - a.valid_from, chrono::Duration::days(i64::from(cli::DEFAULT_VALID_DAYS)));
}

#[test]
fn issue_refuses_bad_input_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("issuer.key");
    let key_s = key.to_str().expect("path");
    run_args(&["keygen", "--out", key_s]).expect("keygen");
    let consent = dir.path().join("consent.json");
    let base = |subject: &'static str, dataset: &'static str| {
        vec![
            "issue",
            "--key",
            key_s,
            "--issuer",
            "credit-platform",
            "--subject-type",
            "resident_id",
            "--subject",
            subject,
            "--grantee",
            "credit-agency",
            "--purpose",
            "credit_report",
            "--dataset",
            dataset,
            "--out",
            consent.to_str().expect("path"),
        ]
    };
    let err = run_args(&base("110105194912310021", "market.enterprises")).expect_err("bad check digit");
    let msg = err.to_string();
    assert!(msg.starts_with("--subject: resident ID") && msg.contains("check digit"), "{msg}");
    assert!(!msg.contains("110105194912310021"));
    let err = run_args(&base(RESIDENT_ID, "enterprises")).expect_err("bad dataset");
    assert!(err.to_string().starts_with("datasets[0]"), "{err}");
    assert!(!consent.exists());

    // Show refuses a malformed artefact.
    std::fs::write(&consent, "{}").expect("write");
    let err = run_args(&["show", consent.to_str().expect("path")]).expect_err("malformed");
    assert!(matches!(err, ConsentError::Refused(ConsentRefusal::Malformed(_))), "{err}");
}
