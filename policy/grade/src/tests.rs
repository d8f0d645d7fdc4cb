//! Tests of templates and of the rule engine (bands, windows, direct grades,
//! missing data).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::eval::{Input, Status, evaluate};
use crate::template::Template;

fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

const TODAY: &str = "2026-12-03";

/// A small template: bands A/B/C/D as the demo's, one per-record deduction
/// with a window, one direct-D rule, one addition.
const SMALL: &str = r#"
[template]
id = "t"
version = "1"
title = { zh = "测试", en = "Test" }
start = 100

[[bands]]
grade = "A"
min = 90
[[bands]]
grade = "B"
min = 70
[[bands]]
grade = "C"
min = 40
[[bands]]
grade = "D"
min = 0

[[rules]]
id = "PEN"
title = { zh = "处罚", en = "Penalty" }
citation = "§1"
dataset = "m.penalties"
record_key = "id"
when = [{ column = "amount", op = ">=", value = 1000 }]
within = { column = "decided", years = 3 }
points = -15
each = true
max_times = 4

[[rules]]
id = "DEBTOR"
title = { zh = "失信", en = "Debtor" }
citation = "§2"
dataset = "c.debtors"
record_key = "case"
when = [{ column = "ended", op = "is null" }]
grade = "D"

[[rules]]
id = "RED"
title = { zh = "红名单", en = "Red list" }
citation = "§3"
dataset = "p.red"
record_key = "entry"
points = 5
"#;

fn small() -> Template {
    Template::parse(SMALL, "small.toml").expect("small template")
}

fn shown(columns: &[&str]) -> BTreeMap<String, String> {
    columns.iter().map(|c| (c.to_string(), "none".to_string())).collect()
}

#[test]
fn the_demo_template_is_valid_and_covers_every_source() {
    let template = Template::parse(crate::DEMO_TEMPLATE, "demo-grading.toml").expect("demo template");
    let sources: std::collections::BTreeSet<&str> =
        template.rules.iter().filter_map(|r| r.dataset.split('.').next()).collect();
    for source in
        ["market", "court", "tax", "courier", "complaints", "credit_platform", "payment", "platform_a", "platform_b"]
    {
        assert!(sources.contains(source), "no rule reads {source}");
    }
    assert!(template.rules.iter().any(|r| r.grade.as_deref() == Some("D")), "a direct-D rule");
    assert!(template.rules.iter().any(|r| r.warning), "a warning rule");
    assert_eq!(
        template.bands.iter().map(|b| (b.grade.as_str(), b.min)).collect::<Vec<_>>(),
        [("A", 90), ("B", 70), ("C", 40), ("D", 0)]
    );
}

#[test]
fn every_problem_of_a_template_is_reported_at_once() {
    let bad = SMALL
        .replace("min = 70", "min = 95")
        .replace("grade = \"D\"\n\n[[rules]]", "grade = \"E\"\n\n[[rules]]")
        .replace("max_times = 4", "")
        .replace("points = 5", "points = 5\ncolour = \"red\"");
    let error = Template::parse(&bad, "bad.toml").expect_err("bad template");
    for expected in ["colour", "bands[1].min", "`E` is not a band", "max_times"] {
        assert!(error.contains(expected), "{expected} missing from:\n{error}");
    }
    let no_effect = SMALL.replace("points = 5", "");
    assert!(Template::parse(&no_effect, "x").expect_err("no effect").contains("has no effect"));
    let window = SMALL.replace("years = 3", "years = 3, days = 2");
    assert!(Template::parse(&window, "x").expect_err("window").contains("exactly one of days, months, years"));
}

#[test]
fn a_template_is_checked_against_the_policy_datasets() {
    let template = small();
    let problems = template.problems_against(|dataset| match dataset {
        "m.penalties" => Some(vec!["id".into(), "amount".into()]),
        "c.debtors" => Some(vec!["case".into(), "ended".into()]),
        _ => None,
    });
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("no column `decided`"), "{problems:?}");
    assert!(problems[1].contains("`p.red` is not a dataset"), "{problems:?}");
}

#[test]
fn windows_include_their_first_day_and_exclude_the_day_before() {
    let template = small();
    let today = day(TODAY);
    let start = template.rules[0].within.as_ref().expect("window").start(today);
    assert_eq!(start, day("2023-12-03"));
    let rows = vec![
        json!({"id": "in", "amount": 5000, "decided": "2023-12-03"}),
        json!({"id": "out", "amount": 5000, "decided": "2023-12-02"}),
    ];
    let columns = shown(&["id", "amount", "decided"]);
    let mut inputs = BTreeMap::new();
    inputs.insert("m.penalties".to_string(), Input::Rows { rows: &rows, shown: &columns });
    let outcome = &evaluate(&template, &inputs, today).rules[0];
    assert_eq!(outcome.status, Status::Fired);
    assert_eq!(outcome.matched, 1);
    assert_eq!(outcome.evidence[0].record, json!("in"));
    assert_eq!(outcome.points, Some(-15));
}

#[test]
fn a_masked_or_hidden_column_leaves_the_rule_not_evaluated() {
    let template = small();
    let rows = vec![json!({"id": "p1", "amount": "[0,100000)", "decided": "2026-01-01"})];
    let mut columns = shown(&["id", "decided"]);
    columns.insert("amount".into(), "range_bucket(100000)".into());
    let mut inputs = BTreeMap::new();
    inputs.insert("m.penalties".to_string(), Input::Rows { rows: &rows, shown: &columns });
    let assessment = evaluate(&template, &inputs, day(TODAY));
    let rule = &assessment.rules[0];
    assert_eq!(rule.status, Status::NotEvaluated);
    assert!(rule.reason.as_deref().is_some_and(|r| r.contains("range_bucket")), "{rule:?}");
    assert!(!assessment.complete);
    assert_eq!(assessment.grade, None);
    columns.remove("amount");
    let mut inputs = BTreeMap::new();
    inputs.insert("m.penalties".to_string(), Input::Rows { rows: &rows, shown: &columns });
    let rule = &evaluate(&template, &inputs, day(TODAY)).rules[0];
    assert!(rule.reason.as_deref().is_some_and(|r| r.contains("not granted")), "{rule:?}");
}

#[test]
fn a_direct_grade_caps_a_perfect_score() {
    let template = small();
    let debtors = vec![json!({"case": "(2025)鲁02执1号", "ended": null})];
    let none: Vec<Value> = Vec::new();
    let red = vec![json!({"entry": "R1"})];
    let (c1, c2, c3) = (shown(&["case", "ended"]), shown(&["id", "amount", "decided"]), shown(&["entry"]));
    let mut inputs = BTreeMap::new();
    inputs.insert("c.debtors".to_string(), Input::Rows { rows: &debtors, shown: &c1 });
    inputs.insert("m.penalties".to_string(), Input::Rows { rows: &none, shown: &c2 });
    inputs.insert("p.red".to_string(), Input::Rows { rows: &red, shown: &c3 });
    let assessment = evaluate(&template, &inputs, day(TODAY));
    assert!(assessment.complete);
    assert_eq!(assessment.score, Some(100), "the addition stops at the ceiling");
    assert_eq!(assessment.grade.as_deref(), Some("D"));
}

/// A penalty record: amount, days before today, or a missing value.
#[derive(Debug, Clone)]
struct Pen {
    amount: Option<i64>,
    days_ago: Option<i64>,
}

fn pen() -> impl Strategy<Value = Pen> {
    (prop::option::weighted(0.9, 0i64..5000), prop::option::weighted(0.9, -10i64..2000))
        .prop_map(|(amount, days_ago)| Pen { amount, days_ago })
}

fn pen_rows(pens: &[Pen], today: chrono::NaiveDate) -> Vec<Value> {
    pens.iter()
        .enumerate()
        .map(|(i, p)| {
            let date = p.days_ago.map(|d| (today - chrono::Duration::days(d)).format("%Y-%m-%d").to_string());
            json!({"id": format!("P{i}"), "amount": p.amount, "decided": date})
        })
        .collect()
}

/// Which datasets a caller may read: each of the three, or not.
fn visibility() -> impl Strategy<Value = [bool; 3]> {
    prop::array::uniform3(any::<bool>())
}

proptest! {
    /// A higher score is never a worse grade, and every score has a band.
    #[test]
    fn bands_are_monotone(a in -50i64..150, b in -50i64..150) {
        let template = small();
        let (low, high) = (a.min(b), a.max(b));
        prop_assert!(template.band_of(high) <= template.band_of(low));
        prop_assert!(template.band_of(low) < template.bands.len());
    }

    /// The engine agrees with a direct computation of the deduction rule.
    #[test]
    fn per_record_points_follow_the_records(pens in prop::collection::vec(pen(), 0..12)) {
        let today = day(TODAY);
        let template = small();
        let rows: Vec<Value> = pen_rows(&pens, today)
            .into_iter()
            .filter(|r| !r["amount"].is_null() && !r["decided"].is_null())
            .collect();
        let columns = shown(&["id", "amount", "decided"]);
        let mut inputs = BTreeMap::new();
        inputs.insert("m.penalties".to_string(), Input::Rows { rows: &rows, shown: &columns });
        let outcome = evaluate(&template, &inputs, today).rules[0].clone();
        let start = today.checked_sub_months(chrono::Months::new(36)).expect("date");
        let expected = pens
            .iter()
            .filter(|p| p.amount.is_some_and(|a| a >= 1000))
            .filter(|p| p.days_ago.is_some_and(|d| today - chrono::Duration::days(d) >= start))
            .count();
        prop_assert_eq!(outcome.matched, expected);
        prop_assert_eq!(outcome.points, Some(-15 * expected.min(4) as i64));
        prop_assert_eq!(outcome.status == Status::Fired, expected > 0);
    }

    /// Missing data (a dataset hidden, or a record's value missing) never
    /// yields a grade: the assessment is incomplete, and the grade of the
    /// full data lies within its range — it is never better than the best
    /// nor worse than the worst the range allows.
    #[test]
    fn missing_data_never_gives_a_better_grade(
        pens in prop::collection::vec(pen(), 0..10),
        debtor in any::<bool>(),
        red in any::<bool>(),
        visible in visibility(),
        fill in 0i64..5000,
    ) {
        let today = day(TODAY);
        let template = small();
        let partial = pen_rows(&pens, today);
        // The full data: every missing value known.
        let full: Vec<Value> = partial
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if r["amount"].is_null() { r["amount"] = json!(fill); }
                if r["decided"].is_null() { r["decided"] = json!(TODAY); }
                r
            })
            .collect();
        let debtors: Vec<Value> = if debtor { vec![json!({"case": "K1", "ended": null})] } else { Vec::new() };
        let reds: Vec<Value> = if red { vec![json!({"entry": "R1"})] } else { Vec::new() };
        let (c1, c2, c3) = (shown(&["id", "amount", "decided"]), shown(&["case", "ended"]), shown(&["entry"]));
        let mut everything = BTreeMap::new();
        everything.insert("m.penalties".to_string(), Input::Rows { rows: &full, shown: &c1 });
        everything.insert("c.debtors".to_string(), Input::Rows { rows: &debtors, shown: &c2 });
        everything.insert("p.red".to_string(), Input::Rows { rows: &reds, shown: &c3 });
        let truth = evaluate(&template, &everything, today);
        prop_assert!(truth.complete);
        let grade = truth.grade.clone().expect("complete");
        let rank = |g: &str| template.band_index(g).expect("band");

        let mut seen = BTreeMap::new();
        let unreadable = "source failed".to_string();
        seen.insert("m.penalties".to_string(), if visible[0] { Input::Rows { rows: &partial, shown: &c1 } } else { Input::Unreadable(unreadable.clone()) });
        if visible[1] { seen.insert("c.debtors".to_string(), Input::Rows { rows: &debtors, shown: &c2 }); }
        if visible[2] { seen.insert("p.red".to_string(), Input::Rows { rows: &reds, shown: &c3 }); }
        let partial_grade = evaluate(&template, &seen, today);
        let missing = !visible.iter().all(|v| *v)
            || partial.iter().any(|r| r["amount"].is_null() || r["decided"].is_null());
        if partial_grade.complete {
            prop_assert_eq!(partial_grade.grade.as_deref(), Some(grade.as_str()));
        } else {
            prop_assert!(missing, "incomplete without missing data");
            prop_assert_eq!(partial_grade.grade, None);
            prop_assert_eq!(partial_grade.score, None);
        }
        prop_assert!(rank(&partial_grade.best) <= rank(&grade), "best {} worse than the truth {}", partial_grade.best, grade);
        prop_assert!(rank(&partial_grade.worst) >= rank(&grade), "worst {} better than the truth {}", partial_grade.worst, grade);
        let score = truth.score.expect("complete");
        prop_assert!(partial_grade.score_range[0] <= score && score <= partial_grade.score_range[1]);
        if !visible.iter().all(|v| *v) {
            prop_assert!(!partial_grade.complete, "a hidden dataset always leaves the grade incomplete");
        }
    }

    /// A fired direct-D rule gives D whatever the score.
    #[test]
    fn a_fired_direct_grade_always_applies(pens in prop::collection::vec(pen(), 0..10), red in any::<bool>()) {
        let today = day(TODAY);
        let template = small();
        let rows: Vec<Value> = pen_rows(&pens, today).into_iter().filter(|r| !r["amount"].is_null() && !r["decided"].is_null()).collect();
        let debtors = vec![json!({"case": "K1", "ended": null})];
        let reds: Vec<Value> = if red { vec![json!({"entry": "R1"})] } else { Vec::new() };
        let (c1, c2, c3) = (shown(&["id", "amount", "decided"]), shown(&["case", "ended"]), shown(&["entry"]));
        let mut inputs = BTreeMap::new();
        inputs.insert("m.penalties".to_string(), Input::Rows { rows: &rows, shown: &c1 });
        inputs.insert("c.debtors".to_string(), Input::Rows { rows: &debtors, shown: &c2 });
        inputs.insert("p.red".to_string(), Input::Rows { rows: &reds, shown: &c3 });
        let assessment = evaluate(&template, &inputs, today);
        prop_assert_eq!(assessment.grade.as_deref(), Some("D"));
    }
}
