//! Evaluating a template over the records a caller may see.
//!
//! Each rule looks at its dataset's records, as the caller's policy shows
//! them. A rule is *not evaluated* — never guessed — when its dataset could
//! not be read (not granted, not covered by a consent, its source failed),
//! when a column it reads is not shown to the caller or is masked, or when
//! a record lacks a value its conditions need and the outcome depends on
//! it. Every rule gives a range of points (one value when evaluated); the
//! score and the grade are then ranges too, and the grade is stated only
//! when every rule was evaluated (`complete`). Missing data can only widen
//! the range, never move it: the grade of the full data always lies within
//! it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::template::{Condition, Literal, Op, Rule, Template};

/// Largest number of records given as evidence per rule (the count of all is reported).
pub const MAX_EVIDENCE: usize = 20;

/// One dataset as the caller may see it.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    /// The subject's records (JSON objects, as released), and how each
    /// column is shown (`none` for unmasked; a mask name; `withheld` for a
    /// granted column a consent does not cover). A column absent from
    /// `shown` is not granted.
    Rows {
        /// The records.
        rows: &'a [Value],
        /// Column → how it is shown.
        shown: &'a BTreeMap<String, String>,
    },
    /// The dataset could not be read; why (`source court timed out`, …).
    Unreadable(String),
}

/// What became of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its predicate matched at least one record.
    Fired,
    /// No record matched.
    NotFired,
    /// It could not be decided from what the caller may see.
    NotEvaluated,
}

/// One record that matched a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The record's key, as the caller sees it.
    pub record: Value,
    /// The fields the predicate read, as the caller sees them.
    pub fields: serde_json::Map<String, Value>,
}

/// A rule's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    /// The rule's id.
    pub id: String,
    /// Fired, not fired or not evaluated.
    pub status: Status,
    /// Points applied (evaluated rules; 0 when not fired).
    pub points: Option<i64>,
    /// The points the rule may contribute: `[least, most]` (equal when evaluated).
    pub points_range: [i64; 2],
    /// The direct grade the rule imposes when fired (or may impose, not evaluated).
    pub grade: Option<String>,
    /// Whether a fired rule is a risk warning.
    pub warning: bool,
    /// Why it was not evaluated.
    pub reason: Option<String>,
    /// Records that matched.
    pub matched: usize,
    /// The first [`MAX_EVIDENCE`] matching records.
    pub evidence: Vec<Evidence>,
}

/// A grade of one subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// Every rule evaluated.
    pub complete: bool,
    /// The grade, when complete.
    pub grade: Option<String>,
    /// The score, when complete.
    pub score: Option<i64>,
    /// The best grade the missing data would allow (the grade, when complete).
    pub best: String,
    /// The worst grade the missing data would allow (the grade, when complete).
    pub worst: String,
    /// The score range: `[lowest, highest]`.
    pub score_range: [i64; 2],
    /// Ids of rules marked as warnings that matched a record.
    pub warnings: Vec<String>,
    /// Every rule, in template order.
    pub rules: Vec<RuleOutcome>,
}

/// Three-valued truth (SQL's): a condition on a missing value is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
            _ => Truth::True,
        }
    }

    fn from(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }
}

/// Compares a record's value with a literal: `None` when the two cannot
/// be compared (different kinds).
fn compare(value: &Value, literal: &Literal) -> Option<std::cmp::Ordering> {
    match (value, literal) {
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Value::Number(n), Literal::Int(b)) => n.as_f64()?.partial_cmp(&(*b as f64)),
        (Value::Number(n), Literal::Float(b)) => n.as_f64()?.partial_cmp(b),
        (Value::String(a), Literal::Text(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => None,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One condition on one record: its truth, or why it is unknown.
fn check(condition: &Condition, record: &Value) -> (Truth, Option<String>) {
    let value = record.get(&condition.column).unwrap_or(&Value::Null);
    let column = &condition.column;
    match condition.op {
        Op::IsNull => return (Truth::from(value.is_null()), None),
        Op::IsNotNull => return (Truth::from(!value.is_null()), None),
        _ => {}
    }
    if value.is_null() {
        return (Truth::Unknown, Some(format!("a record has no value for `{column}`")));
    }
    let Some(literal) = &condition.value else {
        return (Truth::Unknown, Some(format!("the condition on `{column}` has no value")));
    };
    let mismatch =
        || (Truth::Unknown, Some(format!("`{column}` holds {}, which the rule cannot compare", kind(value))));
    match (condition.op, literal) {
        (Op::In | Op::NotIn, Literal::List(items)) => {
            let mut comparable = false;
            let mut found = false;
            for item in items {
                if let Some(ordering) = compare(value, item) {
                    comparable = true;
                    found |= ordering.is_eq();
                }
            }
            if !comparable {
                return mismatch();
            }
            (Truth::from(found == (condition.op == Op::In)), None)
        }
        (op, literal) => {
            let Some(ordering) = compare(value, literal) else { return mismatch() };
            let truth = match op {
                Op::Eq => ordering.is_eq(),
                Op::Ne => ordering.is_ne(),
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                Op::Ge => ordering.is_ge(),
                Op::In | Op::NotIn | Op::IsNull | Op::IsNotNull => false,
            };
            (Truth::from(truth), None)
        }
    }
}

/// The record's date in `column` (`YYYY-MM-DD…`), if it has one.
fn date_of(record: &Value, column: &str) -> Option<chrono::NaiveDate> {
    let text = record.get(column)?.as_str()?;
    chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// Whether `record` matches `rule` on `today`, or why that is unknown.
fn matches(rule: &Rule, record: &Value, today: chrono::NaiveDate) -> (Truth, Option<String>) {
    let mut truth = Truth::True;
    let mut why = None;
    if let Some(window) = &rule.within {
        match date_of(record, &window.column) {
            Some(date) => truth = Truth::from(date >= window.start(today)),
            None => {
                truth = Truth::Unknown;
                why = Some(format!("a record has no date in `{}`", window.column));
            }
        }
    }
    for condition in &rule.when {
        if truth == Truth::False {
            break;
        }
        let (t, reason) = check(condition, record);
        if t == Truth::Unknown && why.is_none() {
            why = reason;
        }
        truth = truth.and(t);
    }
    (truth, if truth == Truth::Unknown { why } else { None })
}

fn span(points: i64, times: u32) -> [i64; 2] {
    let total = points.saturating_mul(i64::from(times));
    [total.min(0), total.max(0)]
}

/// A rule not evaluated: it may contribute anything it could.
fn not_evaluated(rule: &Rule, reason: String) -> RuleOutcome {
    RuleOutcome {
        id: rule.id.clone(),
        status: Status::NotEvaluated,
        points: None,
        points_range: span(rule.points, rule.times()),
        grade: rule.grade.clone(),
        warning: rule.warning,
        reason: Some(reason),
        matched: 0,
        evidence: Vec::new(),
    }
}

fn evaluate_rule(rule: &Rule, input: Option<&Input<'_>>, today: chrono::NaiveDate) -> RuleOutcome {
    let (rows, shown) = match input {
        None => return not_evaluated(rule, format!("`{}` is not granted to this caller", rule.dataset)),
        Some(Input::Unreadable(why)) => {
            return not_evaluated(rule, format!("`{}` could not be read: {why}", rule.dataset));
        }
        Some(Input::Rows { rows, shown }) => (*rows, *shown),
    };
    let read = rule.columns_read();
    for &column in &read {
        match shown.get(column).map(String::as_str) {
            None => return not_evaluated(rule, format!("`{}.{column}` is not granted to this caller", rule.dataset)),
            Some("none") => {}
            Some(mask) => {
                return not_evaluated(rule, format!("`{}.{column}` is shown to this caller as `{mask}`", rule.dataset));
            }
        }
    }
    let mut matched = Vec::new();
    let mut unknown = 0usize;
    let mut unknown_reason = None;
    for record in rows {
        match matches(rule, record, today) {
            (Truth::True, _) => matched.push(record),
            (Truth::False, _) => {}
            (Truth::Unknown, why) => {
                unknown += 1;
                if unknown_reason.is_none() {
                    unknown_reason = why;
                }
            }
        }
    }
    let times = rule.times() as usize;
    let least = matched.len().min(times);
    let most = (matched.len() + unknown).min(times);
    let evidence = matched
        .iter()
        .take(MAX_EVIDENCE)
        .map(|record| {
            let fields = read.iter().map(|&c| (c.to_string(), record.get(c).cloned().unwrap_or(Value::Null))).collect();
            Evidence { record: record.get(&rule.record_key).cloned().unwrap_or(Value::Null), fields }
        })
        .collect();
    if least != most {
        let mut outcome = not_evaluated(rule, unknown_reason.unwrap_or_else(|| "a record's value is missing".into()));
        let (a, b) = (rule.points * least as i64, rule.points * most as i64);
        outcome.points_range = [a.min(b), a.max(b)];
        // A direct grade is certain once one record matched.
        outcome.matched = matched.len();
        outcome.evidence = evidence;
        return outcome;
    }
    let fired = least > 0;
    let points = rule.points * least as i64;
    RuleOutcome {
        id: rule.id.clone(),
        status: if fired { Status::Fired } else { Status::NotFired },
        points: Some(points),
        points_range: [points, points],
        grade: rule.grade.clone().filter(|_| fired),
        warning: rule.warning,
        reason: None,
        matched: matched.len(),
        evidence,
    }
}

/// Grades one subject: every rule of `template` over `inputs` (dataset →
/// what the caller may see of it; a dataset absent is not granted), on
/// `today` (the windows end there).
pub fn evaluate(template: &Template, inputs: &BTreeMap<String, Input<'_>>, today: chrono::NaiveDate) -> Assessment {
    let rules: Vec<RuleOutcome> =
        template.rules.iter().map(|rule| evaluate_rule(rule, inputs.get(&rule.dataset), today)).collect();
    let header = &template.template;
    let clamp = |score: i64| score.clamp(header.floor, header.ceiling());
    let low = clamp(header.start.saturating_add(rules.iter().map(|r| r.points_range[0]).sum::<i64>()));
    let high = clamp(header.start.saturating_add(rules.iter().map(|r| r.points_range[1]).sum::<i64>()));
    // Worse grades have higher band indexes.
    let mut best = template.band_of(high);
    let mut worst = template.band_of(low);
    for (rule, outcome) in template.rules.iter().zip(&rules) {
        let Some(direct) = rule.grade.as_deref().and_then(|g| template.band_index(g)) else { continue };
        let certain = outcome.status == Status::Fired || outcome.matched > 0;
        if certain {
            best = best.max(direct);
        }
        if certain || outcome.status == Status::NotEvaluated {
            worst = worst.max(direct);
        }
    }
    let complete = rules.iter().all(|r| r.status != Status::NotEvaluated);
    let name = |i: usize| template.bands.get(i).map(|b| b.grade.clone()).unwrap_or_default();
    let warnings = rules.iter().filter(|r| r.warning && r.matched > 0).map(|r| r.id.clone()).collect();
    Assessment {
        complete,
        grade: complete.then(|| name(worst)),
        score: complete.then_some(low),
        best: name(best),
        worst: name(worst),
        score_range: [low, high],
        warnings,
        rules,
    }
}
