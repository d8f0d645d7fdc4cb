//! Warnings about a valid policy: things that parse and mean something, but
//! are probably not what the author meant. `creditgate policy check` prints
//! them and fails; the gateway loads such a policy (it is valid).

use std::collections::BTreeMap;

use crate::policy::Policy;

/// Purpose and duty codes of `policy` that look like a typo of another code
/// used more often in the same policy (`supervison` next to `supervision`):
/// a caller would be refused a purpose it was meant to have, or an agency
/// would lack the duty that gives it a legal basis. Each is `key: reason`.
pub fn near_miss_purposes(policy: &Policy) -> Vec<String> {
    // Every use of a code, with the key that holds it.
    let mut uses: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (i, principal) in policy.principals().iter().enumerate() {
        for (j, code) in principal.purposes.iter().enumerate() {
            uses.entry(code).or_default().push(format!("principals[{i}].purposes[{j}]"));
        }
        for (j, code) in principal.duty_codes.iter().enumerate() {
            uses.entry(code).or_default().push(format!("principals[{i}].duty_codes[{j}]"));
        }
    }
    let mut warnings = Vec::new();
    for (code, keys) in &uses {
        for (other, other_keys) in &uses {
            if other == code || !is_near(code, other) {
                continue;
            }
            if other_keys.len() > keys.len() {
                // The rarer code is the likely typo: flag each of its uses.
                for key in keys {
                    warnings.push(format!(
                        "{key}: `{code}` looks like a typo of `{other}` (used {} time{} in this policy)",
                        other_keys.len(),
                        if other_keys.len() == 1 { "" } else { "s" }
                    ));
                }
            } else if other_keys.len() == keys.len() && code < other {
                // As often as each other: one of them is probably wrong; say so once.
                warnings.push(format!(
                    "{}: `{code}` and `{other}` ({}) differ by a letter or two; if one is a typo, a caller \
                     will be refused the purpose it was meant to have",
                    keys[0], other_keys[0]
                ));
            }
        }
    }
    warnings.sort();
    warnings
}

/// Two codes one or two edits apart (a letter missing, extra, changed or two
/// swapped), where that is small next to their length.
pub(crate) fn is_near(a: &str, b: &str) -> bool {
    let distance = strsim::damerau_levenshtein(a, b);
    let shorter = a.len().min(b.len());
    distance > 0 && (distance == 1 && shorter >= 4 || distance == 2 && shorter >= 8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[principals]]
name = "samr"
identity = "spiffe://credit.example/org/samr"
organization = "market regulation"
role = "agency"
purposes = ["supervision", "licensing_review"]
duty_codes = ["supervision", "licensing_review"]

[[principals]]
name = "tax"
identity = "spiffe://credit.example/org/tax"
organization = "tax"
role = "agency"
purposes = ["supervison", "audit"]
duty_codes = ["supervision"]

[[principals]]
name = "officer"
identity = "spiffe://credit.example/org/officer"
organization = "officer"
role = "privacy_officer"
purposes = ["oversight"]
"#;

    #[test]
    fn a_misspelt_purpose_is_flagged_with_its_key_and_the_likely_code() {
        let policy = Policy::parse(POLICY, "p.toml").expect("valid policy");
        let warnings = near_miss_purposes(&policy);
        assert_eq!(
            warnings,
            vec![
                "principals[1].purposes[0]: `supervison` looks like a typo of `supervision` (used 3 times in this policy)"
            ],
        );
    }

    #[test]
    fn distinct_codes_are_not_flagged() {
        let policy = Policy::parse(&POLICY.replace("supervison", "inspection"), "p.toml").expect("valid policy");
        assert!(near_miss_purposes(&policy).is_empty());
        let demo = include_str!("../examples/demo-policy.toml");
        let demo = Policy::parse(demo, "demo-policy.toml").expect("demo policy");
        assert!(near_miss_purposes(&demo).is_empty(), "{:?}", near_miss_purposes(&demo));
    }

    #[test]
    fn two_near_codes_used_as_often_are_flagged_once() {
        let policy = Policy::parse(&POLICY.replace("oversight", "audits"), "p.toml").expect("valid policy");
        assert_eq!(
            near_miss_purposes(&policy),
            vec![
                "principals[1].purposes[0]: `supervison` looks like a typo of `supervision` (used 3 times in this policy)",
                "principals[1].purposes[1]: `audit` and `audits` (principals[2].purposes[0]) differ by a letter or two; \
                 if one is a typo, a caller will be refused the purpose it was meant to have",
            ],
        );
    }

    #[test]
    fn nearness_needs_length() {
        assert!(is_near("supervison", "supervision"));
        assert!(is_near("credit_reprot", "credit_report"));
        assert!(!is_near("tax", "fax"));
        assert!(!is_near("audit", "audit"));
        assert!(!is_near("credit_report", "credit_assessment"));
    }
}
