//! Loading the policy file: the committed demo policy, and one test per
//! class of mistake with the message checked.

use chrono::NaiveDate;
use creditgate_certs::identity::Identity;
use creditgate_policy::{ColumnClass, Mask, Policy, PolicyError, Role, default_mask};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-policy.toml");

/// Every dataset of the demo federation (`creditgate datagen`, manifest.json)
/// with its columns.
const DEMO_DATASETS: &[(&str, &[&str])] = &[
    (
        "market.enterprises",
        &[
            "credit_code",
            "name",
            "legal_rep_name",
            "legal_rep_id",
            "registered_capital",
            "established_date",
            "district_code",
            "address",
            "business_scope",
            "status",
            "is_individual",
            "phone",
        ],
    ),
    ("market.licences", &["licence_no", "credit_code", "licence_type", "issuer", "issued_date", "expiry_date"]),
    (
        "market.penalties",
        &[
            "penalty_id",
            "credit_code",
            "decision_no",
            "violation",
            "amount",
            "decision_date",
            "event_end_date",
            "is_public",
            "disputed",
            "department",
            "penalty_kind",
            "annulled",
        ],
    ),
    (
        "market.abnormal_operations",
        &["record_id", "credit_code", "reason", "listed_date", "removed_date", "event_end_date", "disputed"],
    ),
    (
        "court.dishonest_debtors",
        &[
            "case_no",
            "subject_type",
            "credit_code",
            "resident_id",
            "name",
            "court",
            "obligation",
            "amount",
            "filing_date",
            "published_date",
            "event_end_date",
            "disputed",
        ],
    ),
    ("tax.credit_ratings", &["credit_code", "year", "rating"]),
    (
        "tax.major_violations",
        &["case_id", "credit_code", "violation_type", "amount", "decision_date", "event_end_date", "disputed"],
    ),
    ("courier.companies", &["credit_code", "name", "licence_no", "brand", "district_code"]),
    (
        "courier.staff",
        &["staff_id", "resident_id", "name", "mobile", "company_credit_code", "hired_date", "credit_score"],
    ),
    (
        "courier.violations",
        &[
            "violation_id",
            "credit_code",
            "staff_resident_id",
            "violation",
            "decision_date",
            "event_end_date",
            "disputed",
        ],
    ),
    (
        "courier.complaints",
        &["complaint_id", "company_credit_code", "staff_id", "category", "received_date", "resolved"],
    ),
    (
        "complaints.complaints",
        &[
            "complaint_id",
            "merchant_credit_code",
            "merchant_resident_id",
            "shop_id",
            "complainant_name",
            "complainant_id",
            "complainant_mobile",
            "category",
            "description",
            "received_date",
            "status",
        ],
    ),
    (
        "credit_platform.red_list",
        &[
            "entry_id",
            "subject_type",
            "credit_code",
            "resident_id",
            "name",
            "basis",
            "listing_department",
            "listed_date",
            "expiry_date",
        ],
    ),
    (
        "credit_platform.black_list",
        &[
            "entry_id",
            "subject_type",
            "credit_code",
            "resident_id",
            "name",
            "basis",
            "listing_department",
            "listed_date",
            "event_end_date",
            "disputed",
            "severity",
        ],
    ),
    ("traceability.products", &["barcode", "batch_no", "product_name", "producer_credit_code", "produced_date"]),
    ("traceability.events", &["event_id", "barcode", "batch_no", "event_type", "event_time", "actor", "detail"]),
    (
        "payment.fraud_reports",
        &[
            "report_id",
            "merchant_credit_code",
            "merchant_resident_id",
            "category",
            "amount",
            "reported_date",
            "event_end_date",
            "disputed",
        ],
    ),
    (
        "payment.merchant_risk",
        &["merchant_credit_code", "merchant_resident_id", "risk_level", "flagged_date", "reason"],
    ),
    (
        "platform_a.shops",
        &[
            "shop_id",
            "shop_name",
            "owner_type",
            "owner_credit_code",
            "owner_resident_id",
            "owner_name",
            "owner_mobile",
            "opened_date",
            "rating",
            "status",
            "real_name_verified",
        ],
    ),
    (
        "platform_a.violations",
        &[
            "violation_id",
            "shop_id",
            "owner_credit_code",
            "owner_resident_id",
            "violation",
            "decision_date",
            "event_end_date",
            "disputed",
        ],
    ),
    ("platform_a.commitments", &["shop_id", "commitment", "signed_date", "owner_credit_code"]),
    (
        "platform_b.shops",
        &[
            "shop_id",
            "shop_name",
            "owner_type",
            "owner_credit_code",
            "owner_resident_id",
            "owner_name",
            "owner_mobile",
            "opened_date",
            "rating",
            "status",
            "real_name_verified",
        ],
    ),
    (
        "platform_b.violations",
        &[
            "violation_id",
            "shop_id",
            "owner_credit_code",
            "owner_resident_id",
            "violation",
            "decision_date",
            "event_end_date",
            "disputed",
        ],
    ),
    ("platform_b.commitments", &["shop_id", "commitment", "signed_date", "owner_credit_code"]),
];

fn demo() -> Policy {
    Policy::load(DEMO).unwrap_or_else(|e| panic!("demo policy must load: {e}"))
}

fn identity(uri: &str) -> Identity {
    Identity {
        uri: Some(uri.to_owned()),
        org_id: uri.rsplit('/').next().map(str::to_owned),
        organization: None,
        common_name: None,
        fingerprint: "ab".repeat(32),
        serial: "01".to_owned(),
    }
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

#[test]
fn demo_policy_classifies_every_demo_column() {
    let policy = demo();
    assert_eq!(policy.datasets().len(), DEMO_DATASETS.len());
    for (name, columns) in DEMO_DATASETS {
        let ds = policy.dataset(name).unwrap_or_else(|| panic!("{name} missing"));
        let mut want: Vec<&str> = columns.to_vec();
        want.sort_unstable();
        let got: Vec<&str> = ds.columns.keys().map(String::as_str).collect();
        assert_eq!(got, want, "{name}");
        // Every negative-record dataset carries a retention rule and a dispute flag.
        if columns.contains(&"event_end_date") {
            let neg = ds.negative.as_ref().unwrap_or_else(|| panic!("{name} retention"));
            assert_eq!(neg.retention_years, 5);
            assert_eq!(ds.dispute_column.as_deref(), Some("disputed"), "{name}");
        }
        // Identifiers and phone numbers are sensitive everywhere.
        for (col, class) in &ds.columns {
            if col.contains("resident_id") || col.contains("mobile") || col == "phone" || col == "complainant_id" {
                assert_eq!(*class, ColumnClass::Sensitive, "{name}.{col}");
            }
        }
    }
}

#[test]
fn demo_principals_resolve_from_certificates() {
    let policy = demo();
    let samr = policy.principal_for(&identity("spiffe://credit.example/org/samr")).expect("samr");
    assert_eq!(samr.name, "samr");
    assert_eq!(samr.role, Role::Agency);
    assert_eq!(samr.duty_codes.len(), 3);
    assert!(policy.principal_for(&identity("spiffe://credit.example/org/unknown")).is_none());
    // The public principal is never reached through a certificate.
    let mut public_cert = identity("spiffe://credit.example/org/x");
    public_cert.uri = None;
    public_cert.common_name = Some("public".to_owned());
    assert!(policy.principal_for(&public_cert).is_none());
    let public = policy.public_principal().expect("public principal");
    assert_eq!(public.role, Role::Public);
}

#[test]
fn demo_grants() {
    let policy = demo();
    let get = |name: &str| policy.principal(name).unwrap_or_else(|| panic!("{name}"));

    // Agency: everything, identifiers in clear.
    let samr = policy.grants_for(get("samr"));
    assert_eq!(samr.len(), DEMO_DATASETS.len());
    let ent = samr.iter().find(|g| g.dataset == "market.enterprises").expect("enterprises");
    assert_eq!(ent.column("legal_rep_id").map(|c| c.mask), Some(Mask::None));
    // Contact numbers: the carrier prefix only (first 3 + last 4 left k = 1).
    assert_eq!(ent.column("phone").map(|c| c.mask), Some(Mask::MobilePrefix));
    let complaints = samr.iter().find(|g| g.dataset == "complaints.complaints").expect("complaints");
    assert_eq!(complaints.column("complainant_name").map(|c| c.mask), Some(Mask::NameHidden));
    assert_eq!(complaints.column("complainant_mobile").map(|c| c.mask), Some(Mask::MobilePrefix));
    assert_eq!(complaints.column("complainant_id").map(|c| c.mask), Some(Mask::KeyedHash));
    let staff = samr.iter().find(|g| g.dataset == "courier.staff").expect("staff");
    assert_eq!(staff.column("hired_date").map(|c| c.mask), Some(Mask::YearOnly));

    // Credit agency: licence scope only, personal data masked.
    let ca = policy.grants_for(get("credit_agency"));
    let names: Vec<&str> = ca.iter().map(|g| g.dataset.as_str()).collect();
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(!names.contains(&"courier.staff") && !names.contains(&"platform_a.shops"));
    let ent = ca.iter().find(|g| g.dataset == "market.enterprises").expect("enterprises");
    // The legal representative's ID withheld, the name hidden (together they
    // linked individual debtors to enterprises); debtors' IDs the agency's own
    // pseudonyms.
    assert_eq!(ent.column("legal_rep_id").map(|c| c.mask), Some(Mask::Null));
    assert_eq!(ent.column("legal_rep_name").map(|c| c.mask), Some(Mask::NameHidden));
    assert_eq!(ent.column("phone").map(|c| c.mask), Some(Mask::MobilePrefix));
    let debtors = ca.iter().find(|g| g.dataset == "court.dishonest_debtors").expect("debtors");
    assert_eq!(debtors.column("resident_id").map(|c| c.mask), Some(Mask::KeyedHash));
    assert_eq!(debtors.column("name").map(|c| c.mask), Some(Mask::NameHidden));
    assert!(!ent.raw_columns().contains(&"legal_rep_id".to_owned()));
    assert!(ent.raw_columns().contains(&"credit_code".to_owned()));

    // Platform A: public enterprise data, its own shops, list status; not platform B.
    let pa = policy.grants_for(get("platform_a"));
    let names: Vec<&str> = pa.iter().map(|g| g.dataset.as_str()).collect();
    assert_eq!(
        names,
        [
            "credit_platform.black_list",
            "credit_platform.red_list",
            "market.enterprises",
            "market.licences",
            "platform_a.commitments",
            "platform_a.shops",
            "platform_a.violations",
        ]
    );
    let ent = pa.iter().find(|g| g.dataset == "market.enterprises").expect("enterprises");
    assert!(ent.column("legal_rep_id").is_none() && ent.column("phone").is_none());
    assert!(ent.columns.iter().all(|c| c.class == ColumnClass::Public));
    let black = pa.iter().find(|g| g.dataset == "credit_platform.black_list").expect("black list");
    // Subject key without an explicit mask: the keyed-hash default.
    assert_eq!(black.column("resident_id").map(|c| c.mask), Some(Mask::KeyedHash));
    assert_eq!(black.column("disputed").map(|c| c.mask), Some(Mask::None));

    // Privacy officer: no credit data at all.
    assert!(policy.grants_for(get("privacy_officer")).is_empty());

    // Public: public penalties only, with retention.
    let public = policy.grants_for(get("public"));
    let pen = public.iter().find(|g| g.dataset == "market.penalties").expect("penalties");
    let predicate = pen.row_predicate(date(2026, 11, 28)).expect("predicate").expect("some");
    assert_eq!(
        predicate.to_string(),
        "is_public = Boolean(true) AND (event_end_date IS NULL OR event_end_date >= Date32(\"2021-11-28\"))"
    );
    assert!(public.iter().all(|g| g.columns.iter().all(|c| c.class == ColumnClass::Public)));
}

#[test]
fn retention_and_dispute_flag() {
    let policy = demo();
    let samr = policy.principal("samr").expect("samr");
    let debtors = policy.grant_for(samr, "court.dishonest_debtors").expect("grant");
    let predicate = debtors.row_predicate(date(2024, 2, 29)).expect("ok").expect("retention");
    assert_eq!(predicate.to_string(), "event_end_date IS NULL OR event_end_date >= Date32(\"2019-02-28\")");
    // No negative records, no row filter: nothing to apply.
    let ratings = policy.grant_for(samr, "tax.credit_ratings").expect("grant");
    assert!(ratings.row_predicate(date(2024, 1, 1)).expect("ok").is_none());

    // The dispute column is granted even when a rule's column list omits it.
    let text = std::fs::read_to_string(DEMO).expect("read").replace(
        "columns = [\"penalty_id\", \"credit_code\", \"decision_no\", \"violation\", \"penalty_kind\", \"amount\", \"decision_date\", \"event_end_date\", \"is_public\", \"annulled\", \"disputed\", \"department\"]",
        "columns = [\"penalty_id\", \"credit_code\"]",
    );
    let policy = Policy::parse(&text, "p.toml").expect("valid");
    let public = policy.public_principal().expect("public");
    let pen = policy.grant_for(public, "market.penalties").expect("grant");
    let cols: Vec<&str> = pen.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["credit_code", "disputed", "penalty_id"]);
}

#[test]
fn purpose_and_licence_checks() {
    let policy = demo();
    let ca = policy.principal("credit_agency").expect("credit agency");
    assert!(policy.check_purpose(ca, Some("credit_report")).is_ok());
    let missing = policy.check_purpose(ca, None).expect_err("missing");
    assert_eq!(
        missing.to_string(),
        "a purpose is required: send one of the purpose codes allowed for credit_agency: credit_report, credit_assessment"
    );
    // Nothing is trimmed: a blank purpose is malformed, not missing.
    assert!(matches!(policy.check_purpose(ca, Some("  ")), Err(PolicyError::PurposeMalformed { .. })));
    let wrong = policy.check_purpose(ca, Some("marketing")).expect_err("not allowed");
    assert_eq!(
        wrong.to_string(),
        "purpose \"marketing\" is not allowed for credit_agency; allowed purposes: credit_report, credit_assessment"
    );
    let long = "x".repeat(500);
    let echoed = policy.check_purpose(ca, Some(&long)).expect_err("not allowed").to_string();
    assert!(echoed.len() < 200, "caller input is truncated in refusals");

    assert!(policy.check_licence(ca, date(2029, 12, 31)).is_ok());
    let expired = policy.check_licence(ca, date(2030, 1, 1)).expect_err("expired");
    assert_eq!(expired.to_string(), "licence ZX-3702-2024-0017 of credit_agency expired on 2029-12-31");
    let samr = policy.principal("samr").expect("samr");
    assert!(policy.check_licence(samr, date(2099, 1, 1)).is_ok());
}

#[test]
fn default_masks() {
    assert_eq!(default_mask(ColumnClass::Public, false), Mask::None);
    assert_eq!(default_mask(ColumnClass::Restricted, false), Mask::None);
    assert_eq!(default_mask(ColumnClass::Personal, false), Mask::Null);
    assert_eq!(default_mask(ColumnClass::Sensitive, true), Mask::KeyedHash);
    assert_eq!(default_mask(ColumnClass::Sensitive, false), Mask::Null);
}

// ---------------------------------------------------------------------------
// Mistakes: one test per class, message checked.

const BASE: &str = r#"
[[principals]]
name = "samr"
identity = "spiffe://credit.example/org/samr"
organization = "SAMR"
role = "agency"
purposes = ["supervision"]
duty_codes = ["supervision"]

[datasets."market.enterprises"]
columns = { credit_code = "public", legal_rep_id = "sensitive", disputed = "public", end = "public" }
subject_keys = { credit_code = "credit_code", resident_id = "legal_rep_id" }
negative = { end_date = "end" }
dispute_column = "disputed"
"#;

/// Parses BASE + `extra` and returns the error lines.
fn errors(extra: &str) -> Vec<String> {
    let text = format!("{BASE}\n{extra}");
    match Policy::parse(&text, "policy.toml") {
        Ok(_) => panic!("policy should be refused:\n{extra}"),
        Err(PolicyError::Invalid(issues)) => issues.0.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn assert_one(extra: &str, want: &str) {
    let errs = errors(extra);
    assert_eq!(errs, [want.to_owned()], "for:\n{extra}");
}

#[test]
fn base_is_valid() {
    let policy =
        Policy::parse(&format!("{BASE}\n[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\n"), "p")
            .expect("valid");
    let samr = policy.principal("samr").expect("samr");
    let grant = policy.grant_for(samr, "market.enterprises").expect("grant");
    assert_eq!(grant.column("legal_rep_id").map(|c| c.mask), Some(Mask::KeyedHash));
}

#[test]
fn unknown_dataset() {
    let errs = errors("[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprize\"\n");
    assert_eq!(
        errs,
        ["policy.toml: rules[0].dataset: unknown dataset \"market.enterprize\" (known: market.enterprises)"]
    );
    assert_one(
        "[[rules]]\nrole = \"agency\"\ndatasets = [\"market.enterprises\", \"nope.nope\"]\n",
        "policy.toml: rules[0].datasets[1]: unknown dataset \"nope.nope\" (known: market.enterprises)",
    );
}

#[test]
fn unknown_column() {
    assert_one(
        "[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\ncolumns = [\"credit_code\", \"secret\"]\n",
        "policy.toml: rules[0].columns[1]: unknown column \"secret\" in dataset \"market.enterprises\"",
    );
    assert_one(
        "[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nmasks = { secret = \"null\" }\n",
        "policy.toml: rules[0].masks.secret: unknown column \"secret\" in dataset \"market.enterprises\"",
    );
    assert_one(
        "[datasets.\"a.b\"]\ncolumns = { x = \"public\" }\ndispute_column = \"y\"\n",
        "policy.toml: datasets.\"a.b\".dispute_column: unknown column \"y\" in dataset \"a.b\"",
    );
}

#[test]
fn unknown_mask() {
    assert_one(
        "[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nmasks = { legal_rep_id = \"hashh\" }\n",
        "policy.toml: rules[0].masks.legal_rep_id: unknown mask \"hashh\" (expected one of none, partial(m,n), resident_id, resident_id_strict, mobile, mobile_prefix, chinese_name, name_hidden, keyed_hash, null, year_only, range_bucket(width))",
    );
}

#[test]
fn unknown_class() {
    assert_one(
        "[datasets.\"a.b\"]\ncolumns = { x = \"secret\" }\n",
        "policy.toml: datasets.\"a.b\".columns.x: unknown column class \"secret\" (expected one of public, restricted, personal, sensitive)",
    );
}

#[test]
fn duplicate_principal() {
    let dup_name = r#"
[[principals]]
name = "samr"
identity = "spiffe://credit.example/org/other"
organization = "X"
role = "platform"
purposes = ["merchant_onboarding"]
"#;
    assert_one(dup_name, "policy.toml: principals[1].name: duplicate principal name \"samr\" (also principals[0])");
    let dup_identity = r#"
[[principals]]
name = "samr2"
identity = "spiffe://credit.example/org/samr"
organization = "X"
role = "platform"
purposes = ["merchant_onboarding"]
"#;
    assert_one(
        dup_identity,
        "policy.toml: principals[1].identity: duplicate principal identity \"spiffe://credit.example/org/samr\" (also principals[0])",
    );
    // Fingerprints are compared normalised.
    let fp = "AB:".repeat(31) + "AB";
    let dup_fp = format!(
        "[[principals]]\nname = \"a\"\nidentity = \"sha256:{}\"\norganization = \"X\"\nrole = \"platform\"\npurposes = [\"p\"]\n\
         [[principals]]\nname = \"b\"\nidentity = \"SHA256:{}\"\norganization = \"X\"\nrole = \"platform\"\npurposes = [\"p\"]\n",
        "ab".repeat(32),
        fp
    );
    let errs = errors(&dup_fp);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("policy.toml: principals[2].identity: duplicate principal identity"), "{errs:?}");
}

#[test]
fn bad_identity_forms() {
    let bare_cn = "[[principals]]\nname = \"x\"\nidentity = \"samr\"\norganization = \"X\"\nrole = \"platform\"\npurposes = [\"p\"]\n";
    let errs = errors(bare_cn);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("policy.toml: principals[1].identity: unknown identity form \"samr\""), "{errs:?}");
}

#[test]
fn bad_predicate_sql() {
    let rule = |filter: &str| {
        format!("[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nrow_filters = [{filter:?}]\n")
    };
    let errs = errors(&rule("credit_code = "));
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("policy.toml: rules[0].row_filters[0]: row filter does not parse:"), "{errs:?}");

    let errs = errors(&rule("upper(credit_code) = 'X'"));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("policy.toml: rules[0].row_filters[0]: not a plain comparison: `upper(credit_code) = 'X'`"),
        "{errs:?}"
    );
    assert_one(
        &rule("nope = 1"),
        "policy.toml: rules[0].row_filters[0]: unknown column `nope` in row filter (columns: credit_code, disputed, end, legal_rep_id)",
    );
}

#[test]
fn unknown_role() {
    assert_one(
        "[[rules]]\nrole = \"admin\"\ndataset = \"market.enterprises\"\n",
        "policy.toml: rules[0].role: unknown role \"admin\" (expected one of agency, credit_agency, platform, privacy_officer, public)",
    );
    let principal = "[[principals]]\nname = \"x\"\nidentity = \"spiffe://a/b\"\norganization = \"X\"\nrole = \"root\"\npurposes = [\"p\"]\n";
    assert_one(
        principal,
        "policy.toml: principals[1].role: unknown role \"root\" (expected one of agency, credit_agency, platform, privacy_officer, public)",
    );
}

#[test]
fn rule_without_subject() {
    assert_one(
        "[[rules]]\ndataset = \"market.enterprises\"\n",
        "policy.toml: rules[0]: a rule needs `role` or `principal`",
    );
    assert_one(
        "[[rules]]\nrole = \"agency\"\nprincipal = \"samr\"\ndataset = \"market.enterprises\"\n",
        "policy.toml: rules[0]: a rule has either `role` or `principal`, not both",
    );
    assert_one(
        "[[rules]]\nprincipal = \"ghost\"\ndataset = \"market.enterprises\"\n",
        "policy.toml: rules[0].principal: unknown principal \"ghost\"",
    );
}

#[test]
fn empty_purposes() {
    assert_one(
        "[[principals]]\nname = \"x\"\nidentity = \"spiffe://a/b\"\norganization = \"X\"\nrole = \"platform\"\npurposes = []\n",
        "policy.toml: principals[1].purposes: purposes must not be empty: a principal without purposes could never query",
    );
}

#[test]
fn unknown_fields_are_refused() {
    let errs = errors("[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nalow = true\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("policy.toml: rules[0]: unknown field `alow`"), "{errs:?}");
    let errs = errors("[settings]\nx = 1\n");
    assert_eq!(
        errs,
        [
            "policy.toml: settings: unknown top-level key (expected principals, datasets, rules, purposes, organizations, masking)"
        ]
    );
}

#[test]
fn dispute_flag_cannot_be_masked() {
    assert_one(
        "[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nmasks = { disputed = \"null\" }\n",
        "policy.toml: rules[0].masks.disputed: \"disputed\" is the dispute flag of \"market.enterprises\": it is always shown unmasked",
    );
}

#[test]
fn role_limits() {
    let public = "[[principals]]\nname = \"pub\"\nidentity = \"public\"\norganization = \"X\"\nrole = \"public\"\npurposes = [\"public_disclosure\"]\n\
                  [[rules]]\nrole = \"public\"\ndataset = \"market.enterprises\"\n";
    assert_one(
        public,
        "policy.toml: rules[0].columns: the public role sees public columns only; \"legal_rep_id\" of \"market.enterprises\" is sensitive",
    );
    assert_one(
        "[[rules]]\nrole = \"privacy_officer\"\ndataset = \"market.enterprises\"\n",
        "policy.toml: rules[0]: privacy officers see the audit log, not credit data: a rule cannot allow them a dataset",
    );
    let ca = "[[principals]]\nname = \"ca\"\nidentity = \"spiffe://a/ca\"\norganization = \"X\"\nrole = \"credit_agency\"\npurposes = [\"credit_report\"]\n";
    assert_one(ca, "policy.toml: principals[1].licence: a credit agency needs a licence = { number, expiry, scope }");
    let agency = "[[principals]]\nname = \"ag\"\nidentity = \"spiffe://a/ag\"\norganization = \"X\"\nrole = \"agency\"\npurposes = [\"supervision\"]\n";
    assert_one(
        agency,
        "policy.toml: principals[1].duty_codes: an agency needs its statutory duty codes (its legal basis)",
    );
}

#[test]
fn duplicate_rules() {
    assert_one(
        "[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\n[[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nallow = false\n",
        "policy.toml: rules[1].dataset: second rule for role agency on \"market.enterprises\" (first: rules[0]); one rule per subject and dataset",
    );
}

#[test]
fn every_error_is_reported_together() {
    let many = r#"
[[principals]]
name = "samr"
identity = "spiffe://credit.example/org/samr"
organization = "X"
role = "wizard"
purposes = []

[[rules]]
dataset = "market.enterprises"

[[rules]]
role = "agency"
dataset = "market.enterprises"
masks = { legal_rep_id = "hashh", credit_code = "partial(1)" }
row_filters = ["sqrt(end) > 1"]
"#;
    let errs = errors(many);
    let want_prefixes = [
        "policy.toml: principals[1].name: duplicate principal name",
        "policy.toml: principals[1].identity: duplicate principal identity",
        "policy.toml: principals[1].role: unknown role \"wizard\"",
        "policy.toml: principals[1].purposes: purposes must not be empty",
        "policy.toml: rules[0]: a rule needs `role` or `principal`",
        "policy.toml: rules[1].masks.credit_code: bad mask \"partial(1)\"",
        "policy.toml: rules[1].masks.legal_rep_id: unknown mask \"hashh\"",
        "policy.toml: rules[1].row_filters[0]: not a plain comparison",
    ];
    assert_eq!(errs.len(), want_prefixes.len(), "{errs:#?}");
    for (got, want) in errs.iter().zip(want_prefixes) {
        assert!(got.starts_with(want), "{got} does not start with {want}");
    }
    // The Display of the whole error lists them all.
    let text = Policy::parse(&format!("{BASE}\n{many}"), "policy.toml").expect_err("bad").to_string();
    assert!(text.starts_with("8 errors in policy\n  policy.toml: "), "{text}");
}

#[test]
fn not_toml() {
    let err = Policy::parse("[[rules]\n", "policy.toml").expect_err("bad");
    assert!(err.to_string().contains("policy.toml: not valid TOML"), "{err}");
    let err = Policy::load("/nonexistent/policy.toml").expect_err("missing");
    assert!(matches!(err, PolicyError::Read { .. }));
}

#[test]
fn principal_rules_override_role_rules() {
    let text = format!(
        "{BASE}\n[[principals]]\nname = \"samr2\"\nidentity = \"spiffe://credit.example/org/samr2\"\norganization = \"X\"\nrole = \"agency\"\npurposes = [\"supervision\"]\nduty_codes = [\"supervision\"]\n\
         [[rules]]\nrole = \"agency\"\ndataset = \"market.enterprises\"\nmasks = {{ legal_rep_id = \"none\" }}\n\
         [[rules]]\nprincipal = \"samr2\"\ndataset = \"market.enterprises\"\ncolumns = [\"credit_code\"]\n\
         [[rules]]\nprincipal = \"samr\"\ndataset = \"market.enterprises\"\nallow = false\n"
    );
    let policy = Policy::parse(&text, "p").expect("valid");
    let samr = policy.principal("samr").expect("samr");
    let samr2 = policy.principal("samr2").expect("samr2");
    assert!(policy.grant_for(samr, "market.enterprises").is_none(), "principal deny wins");
    let g = policy.grant_for(samr2, "market.enterprises").expect("grant");
    let cols: Vec<&str> = g.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, ["credit_code", "disputed"]);
}

// ---------------------------------------------------------------------------
// Record dates (consent data date ranges) and consent oversight.

#[test]
fn demo_record_dates_and_the_consent_range_predicate() {
    let policy = demo();
    // Every dataset with a date of its own names it; the others cannot be
    // read under a consent that limits the data date range.
    for (name, columns) in DEMO_DATASETS {
        let ds = policy.dataset(name).expect("dataset");
        let dated = columns.iter().any(|c| c.ends_with("_date"));
        assert_eq!(ds.date_column.is_some(), dated, "{name}: {:?}", ds.date_column);
        if let Some(d) = &ds.date_column {
            assert!(ds.columns.contains_key(d) && !ds.subject_keys.contains(d), "{name}.{d}");
            assert_ne!(
                Some(d),
                ds.negative.as_ref().map(|n| &n.end_date),
                "{name}: the record date is not its end date"
            );
        }
    }
    let samr = policy.principal("samr").expect("samr");
    let debtors = policy.grant_for(samr, "court.dishonest_debtors").expect("grant");
    assert_eq!(debtors.date_column.as_deref(), Some("filing_date"));
    let both = debtors.date_range_predicate(Some(date(2020, 1, 1)), Some(date(2022, 12, 31))).expect("ok");
    assert_eq!(
        both.expect("some").to_string(),
        "filing_date >= Date32(\"2020-01-01\") AND filing_date <= Date32(\"2022-12-31\")"
    );
    let from = debtors.date_range_predicate(Some(date(2020, 1, 1)), None).expect("ok").expect("some");
    assert_eq!(from.to_string(), "filing_date >= Date32(\"2020-01-01\")");
    // Negative control: an open range restricts nothing; a dataset without a
    // record date refuses a range rather than ignore it.
    assert!(debtors.date_range_predicate(None, None).expect("ok").is_none());
    let ratings = policy.grant_for(samr, "tax.credit_ratings").expect("grant");
    assert!(ratings.date_range_predicate(None, None).expect("ok").is_none());
    let refused = ratings.date_range_predicate(None, Some(date(2022, 12, 31))).expect_err("no record date");
    assert!(matches!(refused, PolicyError::NoRecordDate { .. }));
    assert!(refused.to_string().contains("tax.credit_ratings has no record date"), "{refused}");
}

#[test]
fn demo_consent_oversight_and_the_consent_issuer() {
    use creditgate_ident::SubjectKind;
    let policy = demo();
    let get = |name: &str| policy.principal(name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(policy.consent_oversight(get("samr")), [SubjectKind::CreditCode, SubjectKind::ResidentId]);
    for other in ["credit_agency", "platform_a", "privacy_officer", "public", "credit_platform"] {
        assert!(policy.consent_oversight(get(other)).is_empty(), "{other}");
    }
    for kind in [SubjectKind::CreditCode, SubjectKind::ResidentId] {
        let names: Vec<&str> = policy.consent_overseers(kind).map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["samr"], "{kind:?}");
    }
    // The consent issuer's organisation is a caller, but reads no credit data.
    let issuer = policy.principal_for(&identity("spiffe://credit.example/org/credit-platform")).expect("issuer");
    assert_eq!(issuer.name, "credit_platform");
    assert!(policy.grants_for(issuer).is_empty(), "{:?}", policy.grants_for(issuer));
}

#[test]
fn date_column_mistakes() {
    let with = |date_column: &str| {
        BASE.replace(
            "dispute_column = \"disputed\"",
            &format!("dispute_column = \"disputed\"\ndate_column = \"{date_column}\""),
        )
    };
    let refused = |text: String| match Policy::parse(&text, "policy.toml") {
        Err(PolicyError::Invalid(issues)) => issues.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        other => panic!("should be refused: {other:?}"),
    };
    assert_eq!(
        refused(with("nope")),
        [
            "policy.toml: datasets.\"market.enterprises\".date_column: unknown column \"nope\" in dataset \"market.enterprises\""
        ]
    );
    assert_eq!(
        refused(with("credit_code")),
        [
            "policy.toml: datasets.\"market.enterprises\".date_column: \"credit_code\" is a subject key of \"market.enterprises\", not the date of its records"
        ]
    );
    assert_eq!(
        refused(with("disputed")),
        [
            "policy.toml: datasets.\"market.enterprises\".date_column: \"disputed\" is the dispute flag of \"market.enterprises\", not the date of its records"
        ]
    );
    // Positive control.
    let policy = Policy::parse(&with("end"), "policy.toml").expect("valid");
    assert_eq!(policy.dataset("market.enterprises").and_then(|d| d.date_column.as_deref()), Some("end"));
    let typo = BASE.replace("dispute_column = \"disputed\"", "dispute_column = \"disputed\"\ndate_colum = \"end\"");
    let errs = refused(typo);
    assert!(errs.len() == 1 && errs[0].contains("date_colum"), "{errs:?}");
}

#[test]
fn consent_oversight_mistakes() {
    let agency = |oversight: &str| {
        format!(
            "[[principals]]\nname = \"ag\"\nidentity = \"spiffe://a/ag\"\norganization = \"X\"\nrole = \"agency\"\n\
             purposes = [\"supervision\"]\nduty_codes = [\"supervision\"]\nconsent_oversight = {oversight}\n"
        )
    };
    assert_one(
        &agency("[\"resident_id\", \"passport\"]"),
        "policy.toml: principals[1].consent_oversight[1]: unknown subject kind \"passport\" (expected credit_code or resident_id)",
    );
    assert_one(
        &agency("[\"resident_id\", \"resident_id\"]"),
        "policy.toml: principals[1].consent_oversight[1]: \"resident_id\" is listed twice",
    );
    assert_one(
        &agency("[]"),
        "policy.toml: principals[1].consent_oversight: name the subject kinds whose consents the agency oversees \
         (credit_code, resident_id), or leave the key out",
    );
    assert_one(
        "[[principals]]\nname = \"pl\"\nidentity = \"spiffe://a/pl\"\norganization = \"X\"\nrole = \"platform\"\n\
         purposes = [\"p\"]\nconsent_oversight = [\"resident_id\"]\n",
        "policy.toml: principals[1].consent_oversight: consent oversight is a statutory duty of agencies, not of role platform",
    );
    // Positive control: an agency overseeing individuals' consents only.
    let policy = Policy::parse(&format!("{BASE}\n{}", agency("[\"resident_id\"]")), "policy.toml").expect("valid");
    let ag = policy.principal("ag").expect("ag");
    assert_eq!(policy.consent_oversight(ag), [creditgate_ident::SubjectKind::ResidentId]);
    assert_eq!(policy.consent_overseers(creditgate_ident::SubjectKind::CreditCode).count(), 0);
    assert!(policy.consent_oversight(policy.principal("samr").expect("samr")).is_empty());
}

#[test]
fn demo_names_every_purpose_and_organisation_in_chinese_and_english() {
    let policy = demo();
    for principal in policy.principals() {
        let org = policy.organization_names().get(&principal.organization);
        assert!(org.is_some_and(|n| !n.zh.is_empty() && !n.en.is_empty()), "{}", principal.organization);
        for purpose in &principal.purposes {
            assert!(policy.purpose_names().contains_key(purpose), "{purpose}");
        }
    }
    assert_eq!(policy.purpose_names()["supervision"].zh, "监督管理");
}

#[test]
fn with_a_name_registry_a_purpose_or_organisation_missing_from_it_is_reported() {
    let text = std::fs::read_to_string(DEMO).expect("demo policy");
    let typo = text
        .replacen(
            "purposes = [\"licensing_review\", \"supervision\"",
            "purposes = [\"licensing_review\", \"supervison\"",
            1,
        )
        .replacen(
            "organization = \"Platform A E-commerce Co., Ltd.\"",
            "organization = \"Platform A E-Commerce Co., Ltd.\"",
            1,
        )
        .replacen("[purposes.audit]\nzh = \"审计监督\"", "[purposes.Audit]\nzh = \"\"", 1);
    let issues = match Policy::parse(&typo, "demo-policy.toml") {
        Err(PolicyError::Invalid(issues)) => issues.0.iter().map(ToString::to_string).collect::<Vec<_>>(),
        other => panic!("expected issues, got {other:?}"),
    };
    let all = issues.join("\n");
    assert!(
        all.contains("principals[0].purposes[1]: purpose \"supervison\" has no [purposes.supervison] entry"),
        "{all}"
    );
    assert!(all.contains("principals[2].organization: organisation \"Platform A E-Commerce Co., Ltd.\""), "{all}");
    assert!(all.contains("purposes.Audit: purpose codes are lowercase"), "{all}");
    assert!(all.contains("purposes.Audit.zh: a display name must not be empty"), "{all}");
    // The privacy officer's purpose `audit` lost its entry with the rename.
    assert!(all.contains("purpose \"audit\" has no [purposes.audit] entry"), "{all}");
    // Without registries nothing is required.
    let bare = text.split("# Names shown to people").next().expect("head").to_owned()
        + text.split("# Datasets\n").nth(1).map(|rest| format!("# Datasets\n{rest}")).as_deref().unwrap_or("");
    Policy::parse(&bare, "bare.toml").expect("a policy without name registries is valid");
}

#[test]
fn masking_settings_and_their_defaults() {
    let defaults = Policy::parse(BASE, "policy.toml").expect("base").masking();
    assert_eq!(defaults.min_k, creditgate_policy::DEFAULT_MIN_K);
    assert_eq!(defaults.min_k, 5);
    assert!(!defaults.relate_masked_values);
    assert_eq!(defaults.keyed_hash_scope, creditgate_policy::KeyedHashScope::Organization);
    assert!(defaults.may_link(&Mask::KeyedHash) && !defaults.may_link(&Mask::Mobile));
    let set = Policy::parse(
        &format!("{BASE}\n[masking]\nmin_k = 10\nkeyed_hash_scope = \"principal\"\nrelate_masked_values = true\n"),
        "policy.toml",
    )
    .expect("valid")
    .masking();
    assert_eq!(set.min_k, 10);
    assert_eq!(set.keyed_hash_scope, creditgate_policy::KeyedHashScope::Principal);
    assert!(set.may_link(&Mask::Mobile));
    assert_one(
        "[masking]\nmin_k = 0\n",
        "policy.toml: masking.min_k: min_k must be 1 to 1000 (people sharing a masked value), got 0",
    );
    let errs = errors("[masking]\nkeyed_hash_scope = \"deployment\"\n");
    assert!(errs.len() == 1 && errs[0].contains("masking") && errs[0].contains("organization"), "{errs:?}");
    let errs = errors("[masking]\nmin_kk = 5\n");
    assert!(errs.len() == 1 && errs[0].contains("min_kk"), "{errs:?}");
}
