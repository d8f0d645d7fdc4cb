//! What a principal is granted beyond what its rules say: a credit agency's
//! licence scope bounds every rule (role or principal), and a dataset's
//! dispute flag is granted, unmasked, to whoever sees the dataset — through
//! to the rows of the secure view.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::array_value_to_string;
use creditgate_policy::{Mask, MaskUdfs, Policy, Role, secure_view};
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-policy.toml");

/// Two credit agencies with different licence scopes and an agency, over two
/// datasets; the credit agencies' role rule names both datasets.
const TWO_AGENCIES: &str = r#"
[[principals]]
name = "narrow"
identity = "spiffe://credit.example/org/narrow"
organization = "Narrow Credit"
role = "credit_agency"
purposes = ["credit_report"]
licence = { number = "ZX-1", expiry = 2099-12-31, scope = ["market.enterprises"] }

[[principals]]
name = "wide"
identity = "spiffe://credit.example/org/wide"
organization = "Wide Credit"
role = "credit_agency"
purposes = ["credit_report"]
licence = { number = "ZX-2", expiry = 2099-12-31, scope = ["market.enterprises", "court.debtors"] }

[[principals]]
name = "samr"
identity = "spiffe://credit.example/org/samr"
organization = "SAMR"
role = "agency"
purposes = ["supervision"]
duty_codes = ["supervision"]

[datasets."market.enterprises"]
columns = { credit_code = "public", name = "public" }
subject_keys = { credit_code = "credit_code" }

[datasets."court.debtors"]
columns = { case_no = "public", credit_code = "public", end = "public", disputed = "public" }
subject_keys = { credit_code = "credit_code" }
negative = { end_date = "end" }
dispute_column = "disputed"
"#;

fn parse(extra: &str) -> Policy {
    Policy::parse(&format!("{TWO_AGENCIES}\n{extra}"), "policy.toml").unwrap_or_else(|e| panic!("valid: {e}"))
}

fn granted(policy: &Policy, principal: &str) -> Vec<String> {
    let p = policy.principal(principal).unwrap_or_else(|| panic!("{principal}"));
    policy.grants_for(p).into_iter().map(|g| g.dataset.to_string()).collect()
}

#[test]
fn a_role_rule_outside_the_licence_scope_grants_nothing() {
    let policy = parse(
        "[[rules]]\nrole = \"credit_agency\"\ndatasets = [\"market.enterprises\", \"court.debtors\"]\n\
         [[rules]]\nrole = \"agency\"\ndatasets = [\"market.enterprises\", \"court.debtors\"]\n",
    );
    let narrow = policy.principal("narrow").expect("narrow");
    assert!(policy.grant_for(narrow, "court.debtors").is_none(), "outside the licence: denied despite the rule");
    assert_eq!(granted(&policy, "narrow"), ["market.enterprises"]);
    // Controls: the same rule with the dataset in scope, and a principal without a licence.
    assert_eq!(granted(&policy, "wide"), ["court.debtors", "market.enterprises"]);
    assert_eq!(granted(&policy, "samr"), ["court.debtors", "market.enterprises"]);
}

#[test]
fn a_principal_rule_outside_the_licence_scope_grants_nothing() {
    let policy = parse(
        "[[rules]]\nprincipal = \"narrow\"\ndataset = \"court.debtors\"\n\
         [[rules]]\nprincipal = \"wide\"\ndataset = \"court.debtors\"\n",
    );
    let narrow = policy.principal("narrow").expect("narrow");
    assert_eq!(narrow.role, Role::CreditAgency);
    assert!(policy.grant_for(narrow, "court.debtors").is_none(), "a principal rule does not widen the licence");
    assert!(granted(&policy, "narrow").is_empty());
    assert_eq!(granted(&policy, "wide"), ["court.debtors"]);
}

#[test]
fn the_demo_credit_agency_gets_nothing_beyond_its_licence() {
    let demo = std::fs::read_to_string(DEMO).expect("demo policy");
    let outside = ["courier.staff", "complaints.complaints", "platform_a.shops", "payment.fraud_reports"];
    let rules = format!(
        "[[rules]]\nrole = \"credit_agency\"\ndatasets = [{:?}, {:?}]\n\
         [[rules]]\nprincipal = \"credit_agency\"\ndatasets = [{:?}, {:?}]\n",
        outside[0], outside[1], outside[2], outside[3]
    );
    let policy = Policy::parse(&format!("{demo}\n{rules}"), "demo-policy.toml").expect("valid");
    let agency = policy.principal("credit_agency").expect("credit agency");
    let mut scope = agency.licence.as_ref().expect("licence").scope.clone();
    scope.sort();
    assert_eq!(granted(&policy, "credit_agency"), scope, "exactly the licence scope");
    for dataset in outside {
        assert!(policy.grant_for(agency, dataset).is_none(), "{dataset} is outside the licence");
    }

    // Control: the same rules with the scope widened do grant those datasets.
    let last_in_scope = "    \"credit_platform.black_list\",\n] }";
    assert!(demo.contains(last_in_scope), "the demo licence scope ends as expected");
    let widened = demo.replace(
        last_in_scope,
        &format!("    \"credit_platform.black_list\",\n{}] }}", outside.map(|d| format!("    {d:?},\n")).concat()),
    );
    let policy = Policy::parse(&format!("{widened}\n{rules}"), "demo-policy.toml").expect("valid");
    let agency = policy.principal("credit_agency").expect("credit agency");
    for dataset in outside {
        assert!(policy.grant_for(agency, dataset).is_some(), "{dataset} is granted once in scope");
    }
}

#[test]
fn every_demo_grant_of_a_disputable_dataset_carries_the_flag_unmasked() {
    let policy = Policy::load(DEMO).expect("demo policy");
    let mut checked = 0;
    for principal in policy.principals() {
        for grant in policy.grants_for(principal) {
            let dataset = policy.dataset(grant.dataset.as_str()).expect("dataset");
            let Some(flag) = &dataset.dispute_column else { continue };
            assert_eq!(grant.dispute_column.as_ref(), Some(flag), "{}: {}", principal.name, grant.dataset);
            let column =
                grant.column(flag).unwrap_or_else(|| panic!("{}: {} lacks {flag}", principal.name, grant.dataset));
            assert_eq!(column.mask, Mask::None, "{}: {}.{flag}", principal.name, grant.dataset);
            assert!(grant.raw_columns().contains(flag), "the flag is a raw column (exact filters on it push down)");
            checked += 1;
        }
    }
    assert!(checked >= 15, "grants of negative datasets checked: {checked}");
}

/// The source rows of `court.debtors`: one disputed record, one not.
fn debtors() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("case_no", DataType::Utf8, false),
        Field::new("credit_code", DataType::Utf8, false),
        Field::new("end", DataType::Utf8, true),
        Field::new("disputed", DataType::Boolean, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["C1", "C2"])),
            Arc::new(StringArray::from(vec!["91A", "91B"])),
            Arc::new(StringArray::from(vec![None::<&str>, None])),
            Arc::new(BooleanArray::from(vec![true, false])),
        ],
    )
    .expect("batch")
}

#[tokio::test]
async fn the_flag_reaches_select_star_even_when_the_rule_leaves_it_out() {
    let policy = parse("[[rules]]\nrole = \"agency\"\ndataset = \"court.debtors\"\ncolumns = [\"case_no\"]\n");
    let samr = policy.principal("samr").expect("samr");
    let grant = policy.grant_for(samr, "court.debtors").expect("grant");
    let names: Vec<&str> = grant.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["case_no", "disputed"]);

    let batch = debtors();
    let source = MemTable::try_new(batch.schema(), vec![vec![batch]]).expect("memtable");
    let masks = MaskUdfs::new(b"grants test secret 0123456789abcdef").expect("masks");
    let view = secure_view(Arc::new(source), &grant, &masks).expect("secure view");
    let ctx = SessionContext::new();
    ctx.register_table("debtors", view).expect("register");

    let batches = ctx.sql("SELECT * FROM debtors ORDER BY case_no").await.expect("plan").collect().await.expect("run");
    let schema = batches[0].schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(columns, ["case_no", "disputed"], "the rule's columns plus the flag; nothing else");
    let cells: Vec<String> = batches[0]
        .columns()
        .iter()
        .map(|c| (0..c.len()).map(|r| array_value_to_string(c, r).expect("display")).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(cells, ["C1,C2", "true,false"], "the flag is the source's value, unmasked");

    // A query that does not select the flag returns none (documented): aggregates keep working.
    let batches = ctx.sql("SELECT COUNT(*) AS n FROM debtors").await.expect("plan").collect().await.expect("run");
    assert_eq!(batches[0].schema().fields().len(), 1);
    assert_eq!(array_value_to_string(batches[0].column(0), 0).expect("display"), "2");
}
