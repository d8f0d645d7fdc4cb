//! The linkability report (`ops::linkage`, `GET /v1/audit/linkage`) against
//! a computation in the test over the raw generated files: every column a
//! principal sees masked is listed, and its values, groups, unique count, k,
//! combination and every reported match agree with the masks re-implemented
//! here and applied to the Parquet files. On the old demo masks the report
//! fails (k = 1 where the issue re-identified people), on the new demo policy
//! it passes. The officer API serves it to the privacy officer only, and
//! keyed-hash pseudonyms are per organisation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{Array, RecordBatch, StringArray};
use creditgate_engine::PURPOSE_HEADER;
use creditgate_policy::linkage::{ColumnLinkage, LinkageReport};
use creditgate_policy::{ColumnClass, Mask, Policy};
use creditgate_tests::{OLD_MASKS_POLICY, reference_session, start_lab};
use creditgate_tooling::demo::{DEMO_POLICY, Lab};
use datafusion::prelude::SessionContext;

fn strings(batches: &[RecordBatch]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let array = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).expect("cast");
        let array = array.as_any().downcast_ref::<StringArray>().expect("strings");
        out.extend((0..array.len()).map(|i| (!array.is_null(i)).then(|| array.value(i).to_string())));
    }
    out
}

/// The masks, written again from their definitions (not the gateway's code).
/// A keyed hash is injective, so its group sizes are those of the raw values.
fn mask(spec: &str, raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let keep = |m: usize, n: usize| -> String {
        if chars.len() <= m + n {
            return "*".repeat(chars.len());
        }
        let mut out: String = chars[..m].iter().collect();
        out.push_str(&"*".repeat(chars.len() - m - n));
        out.extend(&chars[chars.len() - n..]);
        out
    };
    match spec {
        "resident_id" => keep(6, 4),
        "resident_id_strict" => keep(1, 2),
        "mobile" => keep(3, 4),
        "mobile_prefix" => keep(3, 0),
        "chinese_name" => keep(1, 0),
        "name_hidden" => "*".to_string(),
        "keyed_hash" => format!("#{raw}"),
        // A date as text is YYYY-MM-DD.
        "year_only" => raw.chars().take(4).collect(),
        other => {
            let args = other.strip_prefix("partial(").and_then(|r| r.strip_suffix(')')).expect("a partial mask");
            let (m, n) = args.split_once(',').expect("two counts");
            keep(m.trim().parse().expect("m"), n.trim().parse().expect("n"))
        }
    }
}

/// Raw values of one column of the reference federation (retention applied).
struct Raw<'a> {
    reference: &'a SessionContext,
    cache: HashMap<(String, String), Vec<Option<String>>>,
}

impl Raw<'_> {
    async fn column(&mut self, dataset: &str, column: &str) -> Vec<Option<String>> {
        let key = (dataset.to_string(), column.to_string());
        if let Some(values) = self.cache.get(&key) {
            return values.clone();
        }
        let sql = format!("SELECT CAST(\"{column}\" AS VARCHAR) FROM {dataset}");
        let batches = self.reference.sql(&sql).await.expect("plan").collect().await.expect("raw column");
        let values = strings(&batches);
        self.cache.insert(key, values.clone());
        values
    }
}

/// (values, groups, unique, k) over distinct raw keys.
fn groups<R: Ord + Clone, M: Ord + Clone>(pairs: impl Iterator<Item = (R, M)>) -> (usize, usize, usize, usize) {
    let mut members: BTreeMap<M, BTreeSet<R>> = BTreeMap::new();
    for (r, m) in pairs {
        members.entry(m).or_default().insert(r);
    }
    let values = members.values().map(BTreeSet::len).sum();
    let unique = members.values().filter(|s| s.len() == 1).count();
    let k = members.values().map(BTreeSet::len).min().unwrap_or(0);
    (values, members.len(), unique, k)
}

/// Checks every figure of `report` against the raw files under `policy_text`.
async fn check_report(lab: &Lab, policy_text: &str, report: &LinkageReport) {
    let policy = Policy::parse(policy_text, "policy.toml").expect("policy");
    let reference = reference_session(lab).await;
    let mut raw = Raw { reference: &reference, cache: HashMap::new() };
    assert_eq!(report.min_k, policy.masking().min_k);
    assert!(report.unavailable.is_empty(), "{:?}", report.unavailable);

    // Exactly the columns each principal sees masked or pseudonymized.
    let mut expected = BTreeSet::new();
    for principal in policy.principals() {
        for grant in policy.grants_for(principal) {
            for c in &grant.columns {
                if matches!(c.class, ColumnClass::Personal | ColumnClass::Sensitive)
                    && !matches!(c.mask, Mask::None | Mask::Null)
                {
                    expected.insert((
                        principal.name.clone(),
                        grant.dataset.to_string(),
                        c.name.clone(),
                        c.mask.to_string(),
                    ));
                }
            }
        }
    }
    let listed: BTreeSet<(String, String, String, String)> = report
        .principals
        .iter()
        .flat_map(|p| {
            p.columns.iter().map(|c| (p.principal.clone(), c.dataset.clone(), c.column.clone(), c.mask.clone()))
        })
        .collect();
    assert_eq!(listed, expected);

    let mut failures = Vec::new();
    let mut checked_matches = 0;
    for principal in &report.principals {
        for c in &principal.columns {
            let values = raw.column(&c.dataset, &c.column).await;
            assert_eq!(c.rows, values.len(), "{}: {}.{} rows", principal.principal, c.dataset, c.column);
            let (n, g, unique, k) = groups(values.iter().flatten().map(|r| (r.clone(), mask(&c.mask, r))));
            let what = format!("{}: {}.{} ({})", principal.principal, c.dataset, c.column, c.mask);
            assert_eq!((c.stats.values, c.stats.groups, c.stats.unique, c.stats.k), (n, g, unique, k), "{what}");
            assert!((c.unique_share - unique as f64 / n.max(1) as f64).abs() < 1e-9, "{what}");
            let may_link = policy.masking().relate_masked_values || c.mask == "keyed_hash";
            assert_eq!(c.may_link, may_link, "{what}");
            let below = !may_link && n > 0 && k < policy.masking().min_k as usize;
            assert_eq!(c.below_min_k, below, "{what}");
            if below {
                failures.push(format!("{}:{}.{}", principal.principal, c.dataset, c.column));
            }
            check_combination(&mut raw, principal.columns.as_slice(), c, &values, &what).await;
            for m in &c.matches {
                // Same mask or raw values through this column's mask: either
                // way the other column's raw values masked as this one is.
                let theirs: HashSet<String> =
                    raw.column(&m.dataset, &m.column).await.iter().flatten().map(|r| mask(&c.mask, r)).collect();
                let mine: HashSet<String> = values.iter().flatten().map(|r| mask(&c.mask, r)).collect();
                assert_eq!(
                    m.matching_values,
                    mine.intersection(&theirs).count(),
                    "{what} vs {}.{}",
                    m.dataset,
                    m.column
                );
                assert!(m.matching_values > 0);
                checked_matches += 1;
            }
        }
    }
    assert_eq!(report.failures, failures);
    assert_eq!(report.passed, failures.is_empty());
    println!("checked {} columns and {checked_matches} matches against the raw files", listed.len());
}

async fn check_combination(
    raw: &mut Raw<'_>,
    all: &[ColumnLinkage],
    c: &ColumnLinkage,
    values: &[Option<String>],
    what: &str,
) {
    let others: Vec<&ColumnLinkage> =
        all.iter().filter(|o| o.dataset == c.dataset && o.column != c.column && o.mask != "keyed_hash").collect();
    let Some(comb) = &c.combination else {
        assert!(others.is_empty() || c.mask == "keyed_hash", "{what}: no combination reported");
        return;
    };
    let with: Vec<&str> = others.iter().map(|o| o.column.as_str()).collect();
    assert_eq!(comb.with, with, "{what}");
    let mut columns = Vec::new();
    for o in &others {
        columns.push((raw.column(&o.dataset, &o.column).await, o.mask.clone()));
    }
    let tuples = values.iter().enumerate().filter_map(|(row, v)| {
        let v = v.as_ref()?;
        let mut raw_tuple = vec![Some(v.clone())];
        let mut masked_tuple = vec![Some(mask(&c.mask, v))];
        for (column, spec) in &columns {
            let r = column.get(row).cloned().flatten();
            masked_tuple.push(r.as_deref().map(|r| mask(spec, r)));
            raw_tuple.push(r);
        }
        Some((raw_tuple, masked_tuple))
    });
    let (n, g, unique, k) = groups(tuples);
    assert_eq!(
        (comb.stats.values, comb.stats.groups, comb.stats.unique, comb.stats.k),
        (n, g, unique, k),
        "{what} combined"
    );
}

fn column<'a>(report: &'a LinkageReport, principal: &str, dataset: &str, name: &str) -> &'a ColumnLinkage {
    report
        .principals
        .iter()
        .find(|p| p.principal == principal)
        .and_then(|p| p.columns.iter().find(|c| c.dataset == dataset && c.column == name))
        .unwrap_or_else(|| panic!("{principal}: {dataset}.{name} not in the report"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_report_agrees_with_the_raw_files_fails_on_the_old_masks_and_passes_on_the_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(dir.path()).await;

    // The new demo policy: passes, every figure as computed here.
    let report = creditgate_ops::linkage::for_engine(&lab.gateway_handle).await.expect("report");
    check_report(&lab, DEMO_POLICY, &report).await;
    assert!(report.passed && report.failures.is_empty(), "{}", report.table());
    let mobile = column(&report, "samr", "complaints.complaints", "complainant_mobile");
    assert_eq!(mobile.mask, "mobile_prefix");
    assert!(mobile.stats.k >= 5 && mobile.stats.unique == 0, "{mobile:?}");
    println!("new masks: samr complainant_mobile k = {}", mobile.stats.k);

    // The old masks: fails, on the columns the issue re-identified with.
    std::fs::write(lab.dir.join("policy.toml"), OLD_MASKS_POLICY).expect("write policy");
    lab.gateway_handle.reload_policy().expect("reload");
    let old = creditgate_ops::linkage::for_engine(&lab.gateway_handle).await.expect("report");
    check_report(&lab, OLD_MASKS_POLICY, &old).await;
    assert!(!old.passed);
    let mobile = column(&old, "samr", "complaints.complaints", "complainant_mobile");
    assert!(mobile.below_min_k && mobile.stats.k == 1 && mobile.unique_share > 0.9, "{mobile:?}");
    // The complainant's masked name against the raw names samr reads.
    let name = column(&old, "samr", "complaints.complaints", "complainant_name");
    assert!(name.matches.iter().any(|m| m.dataset == "market.enterprises" && m.column == "legal_rep_name"), "{name:?}");
    // The debtors' masked IDs against the legal representatives' masked IDs.
    let ids = column(&old, "credit_agency", "court.dishonest_debtors", "resident_id");
    let link = ids
        .matches
        .iter()
        .find(|m| m.dataset == "market.enterprises" && m.column == "legal_rep_id")
        .unwrap_or_else(|| panic!("{ids:?}"));
    println!(
        "old masks: {} failures; samr complainant_mobile k = 1 ({:.1}% unique); \
         {} debtor IDs match legal representatives' masked IDs",
        old.failures.len(),
        100.0 * mobile.unique_share,
        link.matching_values
    );
    assert!(link.matching_values > 0);
    // The table names every failing column.
    let table = old.table();
    assert!(
        table.contains("未通过 FAILED") && table.contains("credit_agency:market.enterprises.legal_rep_id"),
        "{table}"
    );
    lab.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_officer_api_serves_the_report_to_the_privacy_officer_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(dir.path()).await;
    let response = lab.http("privacy_officer", "GET", "/v1/audit/linkage", &[], None).await.expect("http");
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("json");
    let direct = creditgate_ops::linkage::for_engine(&lab.gateway_handle).await.expect("report");
    assert_eq!(body, serde_json::to_value(&direct).expect("json"), "the API serves the report as computed");
    // The JSON shape the console and scripts read.
    for key in [
        "min_k",
        "relate_masked_values",
        "keyed_hash_scope",
        "as_of",
        "principals",
        "unavailable",
        "failures",
        "passed",
    ] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    let first = &body["principals"][0]["columns"][0];
    for key in [
        "dataset",
        "column",
        "class",
        "mask",
        "may_link",
        "rows",
        "values",
        "groups",
        "unique",
        "unique_share",
        "k",
        "combination",
        "matches",
        "below_min_k",
    ] {
        assert!(first.get(key).is_some(), "{key} missing: {first}");
    }
    assert_eq!(body["passed"], true);

    // Negative controls: a data user, and a refused record of it.
    for caller in ["samr", "credit_agency"] {
        let refused = lab.http(caller, "GET", "/v1/audit/linkage", &[], None).await.expect("http");
        assert_eq!(refused.status, 403, "{caller}: {}", String::from_utf8_lossy(&refused.body));
    }
    let unknown =
        lab.http("privacy_officer", "GET", "/v1/audit/linkage?principal=samr", &[], None).await.expect("http");
    assert_eq!(unknown.status, 400, "an unknown parameter is refused by name");

    // Audited: the officer's read, and the refusals.
    let records = creditgate_tests::request_records(&lab);
    let on_linkage: Vec<_> = records
        .iter()
        .filter(|r| serde_json::to_string(&r.query).is_ok_and(|q| q.contains("/v1/audit/linkage")))
        .collect();
    assert!(
        on_linkage
            .iter()
            .any(|r| r.caller.name == "privacy_officer" && r.outcome == creditgate_audit::Outcome::Allowed)
    );
    assert!(on_linkage.iter().any(|r| r.caller.name == "samr" && r.outcome == creditgate_audit::Outcome::Refused));
    lab.stop().await.expect("stop");
}

async fn pseudonyms(lab: &Lab, caller: &str, purpose: &str, sql: &str) -> Vec<String> {
    let mut client = lab.flight_client(caller).expect("client");
    client.set_header(PURPOSE_HEADER, purpose);
    let batches = client.query(sql).await.expect("query");
    strings(&batches).into_iter().map(|v| v.unwrap_or_default()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keyed_hash_pseudonyms_are_per_organisation_and_stable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lab = start_lab(dir.path()).await;
    // The same listed people, as the credit agency and as platform A (two
    // organisations) see them: both keyed hashes.
    let sql = "SELECT resident_id FROM credit_platform.black_list WHERE subject_type = 'individual' ORDER BY entry_id";
    let agency = pseudonyms(&lab, "credit_agency", "credit_report", sql).await;
    let platform = pseudonyms(&lab, "platform_a", "merchant_onboarding", sql).await;
    assert_eq!(agency.len(), platform.len());
    assert!(agency.len() > 50, "{} listed individuals", agency.len());
    assert!(agency.iter().all(|p| p.len() == 32 && p.bytes().all(|b| b.is_ascii_hexdigit())), "{agency:?}");
    // Never the same pseudonym for the same person across organisations …
    assert!(agency.iter().zip(&platform).all(|(a, b)| a != b), "an organisation's pseudonym matched another's");
    let platform_set: HashSet<&String> = platform.iter().collect();
    assert!(agency.iter().all(|a| !platform_set.contains(a)), "a pseudonym of one organisation occurs in the other's");
    // … nor the deployment-wide one.
    let reference = reference_session(&lab).await;
    let raw = strings(&reference.sql(sql).await.expect("plan").collect().await.expect("raw"));
    let deployment: HashSet<String> = raw.iter().flatten().map(|r| lab.gateway_handle.masks().pseudonym(r)).collect();
    assert!(agency.iter().all(|a| !deployment.contains(a)));
    // Stable: the same caller gets the same pseudonyms again, and after a
    // policy reload.
    assert_eq!(agency, pseudonyms(&lab, "credit_agency", "credit_report", sql).await);
    lab.gateway_handle.reload_policy().expect("reload");
    assert_eq!(agency, pseudonyms(&lab, "credit_agency", "credit_report", sql).await);
    // Within one organisation they relate its records, as designed: the
    // agency's debtor and black-list pseudonyms of the same people join.
    let joined = pseudonyms(
        &lab,
        "credit_agency",
        "credit_report",
        "SELECT d.case_no FROM court.dishonest_debtors d \
         JOIN credit_platform.black_list b ON d.resident_id = b.resident_id",
    )
    .await;
    assert!(!joined.is_empty(), "the agency's own pseudonyms relate its records");
    // Per principal, by policy: the agency's pseudonyms change.
    std::fs::write(
        lab.dir.join("policy.toml"),
        format!("{DEMO_POLICY}\n[masking]\nkeyed_hash_scope = \"principal\"\n"),
    )
    .expect("write policy");
    lab.gateway_handle.reload_policy().expect("reload");
    let own = pseudonyms(&lab, "credit_agency", "credit_report", sql).await;
    assert_eq!(own.len(), agency.len());
    assert!(own.iter().zip(&agency).all(|(a, b)| a != b));
    assert_eq!(own, pseudonyms(&lab, "credit_agency", "credit_report", sql).await);
    lab.stop().await.expect("stop");
}
