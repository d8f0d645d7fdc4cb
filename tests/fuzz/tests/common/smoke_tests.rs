// The smoke tests of every fuzz harness, included by `tests/fuzz/tests/smoke.rs`
// (the fuzz crate) and by `tests/tests/fuzz_smoke.rs` (the main workspace,
// so the README's test command and CI run them). `fuzz` names the harness
// crate, or the same file compiled as a module.

use fuzz::TARGETS;
use fuzz::smoke::{dictionary, run_one, seeds, smoke};

#[test]
fn every_target_has_a_seed_corpus_and_a_dictionary() {
    for target in TARGETS {
        assert!(!seeds(target).is_empty());
        assert!(!dictionary(target).is_empty());
    }
}

#[test]
fn identifiers_never_panic_and_round_trip() {
    smoke("identifiers");
}

#[test]
fn consent_artefacts_never_panic() {
    smoke("consent_artefact");
}

#[test]
fn policy_files_never_panic() {
    smoke("policy_file");
}

#[test]
fn http_bodies_never_panic() {
    smoke("http_bodies");
}

/// Inputs built to hit limits rather than found by chance.
#[test]
fn hand_made_hostile_inputs() {
    let deep_json = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
    let deep_sql = |n: usize| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("identifiers", vec![]),
        ("identifiers", "\u{3000}".repeat(18).into_bytes()),
        ("identifiers", "é".repeat(18).into_bytes()),
        ("identifiers", "1".repeat(15).into_bytes()),
        ("identifiers", "9".repeat(17).into_bytes()),
        ("consent_artefact", deep_json(10_000)),
        ("consent_artefact", vec![b'"'; 70_000]),
        ("policy_file", "[[a]]\n".repeat(5_000).into_bytes()),
        ("policy_file", format!("a = {}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes()),
        ("http_bodies", deep_json(10_000)),
        ("http_bodies", deep_sql(5_000).into_bytes()),
        ("http_bodies", serde_json::json!({"sql": deep_sql(5_000)}).to_string().into_bytes()),
        ("http_bodies", format!("SELECT 1 {}", "UNION ALL SELECT 1 ".repeat(3_000)).into_bytes()),
        ("http_bodies", format!("SELECT '{}'", "x".repeat(70_000)).into_bytes()),
    ];
    for (i, (target, data)) in cases.iter().enumerate() {
        run_one(target, &format!("hand-made case #{i}"), data);
    }
}

/// Found by libFuzzer (`policy_file`): a principal identity with a multi-byte
/// character across byte 7 panicked in `normalize_identity` (it sliced the
/// text at the length of `sha256:`); fixed, kept as a regression test.
#[test]
fn policy_identity_with_a_multibyte_character_at_byte_7() {
    let policy = "[[principals]]\nname = \"x\"\nidentity = \"abcdef\u{e9}\"\nrole = \"agency\"\n\
                  organization = \"o\"\npurposes = []\n";
    run_one("policy_file", "the multi-byte identity", policy.as_bytes());
}
