//! A grading template: header, grade bands and rules, read from TOML.
//!
//! ```toml
//! [template]
//! id = "qingdao-ecommerce"
//! version = "2026.1"
//! title = { zh = "电子商务经营主体信用分级", en = "E-commerce operator credit grade" }
//! start = 100
//!
//! [[bands]]                       # best first; the last band takes every lower score
//! grade = "A"
//! min = 90
//!
//! [[rules]]
//! id = "MKT-PEN-MAJOR"
//! title = { zh = "大额行政处罚", en = "Large administrative penalty" }
//! citation = "template §3.1"
//! dataset = "market.penalties"
//! record_key = "penalty_id"
//! when = [{ column = "amount", op = ">=", value = 100000 }, { column = "annulled", op = "=", value = false }]
//! within = { column = "decision_date", years = 3 }
//! points = -10                    # per firing; with `each`, per matching record …
//! each = true
//! max_times = 3                   # … at most this many times
//! grade = "C"                     # and at most this grade (a direct grade)
//! warning = false                 # a risk warning when it fires
//! ```

use std::collections::{BTreeMap, BTreeSet};

use creditgate_ident::{is_dataset_name, is_identifier};

use serde::{Deserialize, Serialize};

/// A text in Simplified Chinese and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// Simplified Chinese.
    pub zh: String,
    /// English.
    pub en: String,
}

/// A whole grading template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Name, version and score range.
    pub template: Header,
    /// Grade bands, best first.
    pub bands: Vec<Band>,
    /// The rules, in the order they are reported.
    pub rules: Vec<Rule>,
}

/// The template's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Stable identifier (letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// Version of the template; every answer names it.
    pub version: String,
    /// What the template grades, for people.
    pub title: Names,
    /// The score every subject starts from.
    pub start: i64,
    /// The lowest score (default 0).
    #[serde(default)]
    pub floor: i64,
    /// The highest score (default: `start`).
    #[serde(default)]
    pub ceiling: Option<i64>,
}

impl Header {
    /// The highest score.
    pub fn ceiling(&self) -> i64 {
        self.ceiling.unwrap_or(self.start)
    }
}

/// One grade band: scores from `min` up to the next better band.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// The grade (`A`, `B`, …).
    pub grade: String,
    /// The lowest score of the band.
    pub min: i64,
    /// What the grade means, for people.
    #[serde(default)]
    pub title: Option<Names>,
}

/// One rule: a predicate over one dataset's records and its effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier, unique in the template.
    pub id: String,
    /// What the rule looks for, for people.
    pub title: Names,
    /// The document and article (or the template's own clause) it applies.
    pub citation: String,
    /// The dataset it reads, `schema.table`.
    pub dataset: String,
    /// The column identifying a record (shown as evidence, as the caller sees it).
    pub record_key: String,
    /// Conditions every matching record meets (all of them).
    #[serde(default)]
    pub when: Vec<Condition>,
    /// Only records dated within this window before today.
    #[serde(default)]
    pub within: Option<Window>,
    /// Points added (positive) or deducted (negative) when the rule fires.
    #[serde(default)]
    pub points: i64,
    /// Points per matching record instead of once.
    #[serde(default)]
    pub each: bool,
    /// With `each`: at most this many records count.
    #[serde(default)]
    pub max_times: Option<u32>,
    /// A direct grade: when the rule fires, the grade is at most this one.
    #[serde(default)]
    pub grade: Option<String>,
    /// A risk warning: a batch lists subjects with fired warnings first.
    #[serde(default)]
    pub warning: bool,
}

impl Rule {
    /// Every column the rule's predicate reads (conditions and window).
    pub fn columns_read(&self) -> BTreeSet<&str> {
        let mut columns: BTreeSet<&str> = self.when.iter().map(|c| c.column.as_str()).collect();
        if let Some(window) = &self.within {
            columns.insert(window.column.as_str());
        }
        columns
    }

    /// The most records that count when the rule fires.
    pub fn times(&self) -> u32 {
        if self.each { self.max_times.unwrap_or(1) } else { 1 }
    }
}

/// One condition: `column op value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The column compared.
    pub column: String,
    /// The comparison.
    pub op: Op,
    /// The value compared with (none for `is null` / `is not null`; a list for `in` / `not in`).
    #[serde(default)]
    pub value: Option<Literal>,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Equal.
    #[serde(rename = "=")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// At least.
    #[serde(rename = ">=")]
    Ge,
    /// One of a list.
    #[serde(rename = "in")]
    In,
    /// None of a list.
    #[serde(rename = "not in")]
    NotIn,
    /// Has no value.
    #[serde(rename = "is null")]
    IsNull,
    /// Has a value.
    #[serde(rename = "is not null")]
    IsNotNull,
}

impl Op {
    /// The operator as written in a template.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "in",
            Op::NotIn => "not in",
            Op::IsNull => "is null",
            Op::IsNotNull => "is not null",
        }
    }
}

/// A value in a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A text.
    Text(String),
    /// A list (for `in` / `not in`).
    List(Vec<Literal>),
}

/// Records dated within a window before today: exactly one of `days`,
/// `months`, `years`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The record's date column.
    pub column: String,
    /// Days.
    #[serde(default)]
    pub days: Option<u32>,
    /// Calendar months.
    #[serde(default)]
    pub months: Option<u32>,
    /// Calendar years.
    #[serde(default)]
    pub years: Option<u32>,
}

impl Window {
    /// The first day inside the window ending `today` (inclusive).
    pub fn start(&self, today: chrono::NaiveDate) -> chrono::NaiveDate {
        let back = match (self.days, self.months, self.years) {
            (Some(days), _, _) => today.checked_sub_days(chrono::Days::new(u64::from(days))),
            (None, Some(months), _) => today.checked_sub_months(chrono::Months::new(months)),
            (None, None, Some(years)) => today.checked_sub_months(chrono::Months::new(years.saturating_mul(12))),
            (None, None, None) => Some(today),
        };
        back.unwrap_or(chrono::NaiveDate::MIN)
    }

    /// The window in words (`3 years`).
    pub fn describe(&self) -> String {
        match (self.days, self.months, self.years) {
            (Some(n), _, _) => format!("{n} days"),
            (None, Some(n), _) => format!("{n} months"),
            (None, None, Some(n)) => format!("{n} years"),
            (None, None, None) => "0 days".to_string(),
        }
    }
}

fn is_template_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Template {
    /// Reads a template file: the template, or every problem of it (unknown
    /// keys, types, missing keys and the checks of [`Template::problems`])
    /// at once.
    pub fn load(file: &std::path::Path) -> Result<Template, String> {
        creditgate_files::config::load(file, |_: &mut Template| {}, Template::problems)
    }

    /// Parses a template from `text` (`origin` names it in the problems).
    pub fn parse(text: &str, origin: &str) -> Result<Template, String> {
        creditgate_files::config::parse(text, std::path::Path::new(origin), |_: &mut Template| {}, Template::problems)
    }

    /// The band index of `grade` (0 is the best), if it is one of the template's.
    pub fn band_index(&self, grade: &str) -> Option<usize> {
        self.bands.iter().position(|b| b.grade == grade)
    }

    /// The band a score falls in (index; 0 is the best).
    pub fn band_of(&self, score: i64) -> usize {
        self.bands.iter().position(|b| score >= b.min).unwrap_or(self.bands.len().saturating_sub(1))
    }

    /// The datasets the rules read, each with the columns its rules read
    /// (conditions, windows, record keys).
    pub fn datasets(&self) -> BTreeMap<&str, BTreeSet<&str>> {
        let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for rule in &self.rules {
            let entry = out.entry(rule.dataset.as_str()).or_default();
            entry.extend(rule.columns_read());
            entry.insert(rule.record_key.as_str());
        }
        out
    }

    /// Every problem of the template's content, each `key: reason`.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let h = &self.template;
        if !is_template_id(&h.id) {
            problems.push("template.id: letters, digits, `-`, `_` and `.` only, at most 64".to_string());
        }
        if h.version.trim().is_empty() {
            problems.push("template.version: must not be empty".to_string());
        }
        if h.floor >= h.ceiling() {
            problems.push(format!("template.floor: must be below the ceiling ({})", h.ceiling()));
        }
        if h.start < h.floor || h.start > h.ceiling() {
            problems.push(format!(
                "template.start: must be between the floor ({}) and the ceiling ({})",
                h.floor,
                h.ceiling()
            ));
        }
        if self.bands.is_empty() {
            problems.push("bands: at least one band is needed".to_string());
        }
        let mut grades = BTreeSet::new();
        for (i, band) in self.bands.iter().enumerate() {
            if band.grade.trim().is_empty() || band.grade.len() > 8 {
                problems.push(format!("bands[{i}].grade: 1 to 8 characters"));
            }
            if !grades.insert(band.grade.as_str()) {
                problems.push(format!("bands[{i}].grade: `{}` is listed twice", band.grade));
            }
            if i > 0 && band.min >= self.bands[i - 1].min {
                problems.push(format!(
                    "bands[{i}].min: bands are listed best first, so each min must be below the one before ({})",
                    self.bands[i - 1].min
                ));
            }
        }
        if let Some(last) = self.bands.last()
            && last.min > h.floor
        {
            problems.push(format!(
                "bands[{}].min: the last band must take every score down to the floor ({}); set min = {}",
                self.bands.len() - 1,
                h.floor,
                h.floor
            ));
        }
        let mut ids = BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = format!("rules[{i}]");
            if !is_template_id(&rule.id) {
                problems.push(format!("{key}.id: letters, digits, `-`, `_` and `.` only, at most 64"));
            } else if !ids.insert(rule.id.as_str()) {
                problems.push(format!("{key}.id: `{}` is used by another rule", rule.id));
            }
            if rule.citation.trim().is_empty() {
                problems.push(format!("{key}.citation: name the document and article (or the template's clause)"));
            }
            if !is_dataset_name(&rule.dataset) {
                problems.push(format!("{key}.dataset: `schema.table`, lowercase"));
            }
            if !is_identifier(&rule.record_key) {
                problems.push(format!("{key}.record_key: a lowercase column name"));
            }
            if rule.points == 0 && rule.grade.is_none() {
                problems.push(format!("{key}: the rule has no effect; give it points, a direct grade, or both"));
            }
            if let Some(grade) = &rule.grade
                && self.band_index(grade).is_none()
            {
                let known: Vec<&str> = self.bands.iter().map(|b| b.grade.as_str()).collect();
                problems.push(format!("{key}.grade: `{grade}` is not a band; the bands are {}", known.join(", ")));
            }
            match (rule.each, rule.max_times) {
                (true, None) => problems
                    .push(format!("{key}.max_times: a rule with `each = true` must bound how many records count")),
                (true, Some(0)) => problems.push(format!("{key}.max_times: must be at least 1")),
                (false, Some(_)) => problems.push(format!("{key}.max_times: only with `each = true`")),
                _ => {}
            }
            for (j, condition) in rule.when.iter().enumerate() {
                let ckey = format!("{key}.when[{j}]");
                if !is_identifier(&condition.column) {
                    problems.push(format!("{ckey}.column: a lowercase column name"));
                }
                match (condition.op, &condition.value) {
                    (Op::IsNull | Op::IsNotNull, Some(_)) => {
                        problems.push(format!("{ckey}.value: `{}` takes no value", condition.op.as_str()))
                    }
                    (Op::IsNull | Op::IsNotNull, None) => {}
                    (Op::In | Op::NotIn, Some(Literal::List(items)))
                        if items.is_empty() || items.iter().any(|v| matches!(v, Literal::List(_))) =>
                    {
                        problems.push(format!("{ckey}.value: a non-empty list of plain values"))
                    }
                    (Op::In | Op::NotIn, Some(Literal::List(_))) => {}
                    (Op::In | Op::NotIn, _) => {
                        problems.push(format!("{ckey}.value: `{}` takes a list", condition.op.as_str()))
                    }
                    (_, Some(Literal::List(_))) => {
                        problems.push(format!("{ckey}.value: `{}` takes one value, not a list", condition.op.as_str()))
                    }
                    (_, None) => problems
                        .push(format!("{ckey}.value: missing (`{}` compares with a value)", condition.op.as_str())),
                    (Op::Lt | Op::Le | Op::Gt | Op::Ge, Some(Literal::Bool(_))) => problems
                        .push(format!("{ckey}.value: `{}` does not order true and false", condition.op.as_str())),
                    _ => {}
                }
            }
            if let Some(window) = &rule.within {
                if !is_identifier(&window.column) {
                    problems.push(format!("{key}.within.column: a lowercase column name"));
                }
                let set = [window.days, window.months, window.years].iter().filter(|v| v.is_some()).count();
                if set != 1 {
                    problems.push(format!("{key}.within: exactly one of days, months, years"));
                } else if [window.days, window.months, window.years].contains(&Some(0)) {
                    problems.push(format!("{key}.within: the window must be at least 1"));
                }
            }
        }
        problems
    }

    /// Problems of the template against what a policy classifies: every
    /// dataset and column a rule reads must exist. `columns_of` gives a
    /// dataset's columns, or none for an unknown dataset.
    pub fn problems_against(&self, columns_of: impl Fn(&str) -> Option<Vec<String>>) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let Some(columns) = columns_of(&rule.dataset) else {
                problems.push(format!("rules[{i}].dataset: `{}` is not a dataset of the policy", rule.dataset));
                continue;
            };
            let mut read: Vec<&str> = rule.columns_read().into_iter().collect();
            read.push(&rule.record_key);
            for column in read {
                if !columns.iter().any(|c| c == column) {
                    problems.push(format!(
                        "rules[{i}] ({}): `{}` has no column `{column}`; its columns are {}",
                        rule.id,
                        rule.dataset,
                        columns.join(", ")
                    ));
                }
            }
        }
        problems
    }
}
