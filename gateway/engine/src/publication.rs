//! Publication periods of the public window: whether a record is shown
//! today, until when, and under which rule.
//!
//! A rule belongs to one disclosure section (gateway config, `[public]`).
//! It is applied twice, and both must agree:
//!
//! - at the source, as part of the public role's mandatory row predicate
//!   ([`PublicationRule::predicate`]): a record out of its period never
//!   leaves the connector, like a record past retention;
//! - per shown record ([`PublicationRule::decide`]): the last day it is shown
//!   (`shown_until`) and the rule that decided it (`publication_rule`).
//!
//! The regime that applies to a record is read from its own columns (the
//! penalty's kind and amount, the list entry's severity), never fixed per
//! section. Periods are counted as the Civil Code counts months (Art.
//! 201–202): a period of *n* months from day D ends on the day of the same
//! number *n* months later, or on the last day of that month when it has
//! no such day; D + *n* months is the last day shown.
//!
//! Rules:
//!
//! - [`Order45`]: 市场监督管理行政处罚信息公示规定 (SAMR Order 45).
//!   Penalties that are only a warning are not published (Art. 2);
//!   annulled decisions are withdrawn (Art. 11); a notice of criticism or a
//!   low fine is shown for 3 months, any other penalty for 3 years (Art. 13).
//!   What counts as a low fine is a provincial standard: `low_fine_max`.
//! - [`ListPeriods`]: list entries (e.g. a black list) with a minimum and a
//!   maximum period per severity (the 2019 credit-website rule: serious
//!   6 months to 3 years, general 3 months to 1 year). An entry is shown
//!   from its listing day until its end day (the day its cause ended or it
//!   was repaired), but at least for the minimum and at most for the
//!   maximum period; an entry whose severity has no configured period is
//!   not shown.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, lit};
use serde::{Deserialize, Serialize};

/// Months of Order 45 Art. 13's short period (criticism, low fine).
pub const ORDER_45_SHORT_MONTHS: u32 = 3;
/// Months of Order 45 Art. 13's long period (every other published penalty).
pub const ORDER_45_LONG_MONTHS: u32 = 36;
/// Longest period a list rule may configure (10 years).
pub const MAX_PERIOD_MONTHS: u32 = 120;

/// A section's publication rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum PublicationRule {
    /// SAMR Order 45 for administrative penalties.
    SamrOrder45(Order45),
    /// Minimum and maximum periods per severity, for list entries.
    ListPeriods(ListPeriods),
}

/// SAMR Order 45: the columns it reads and the deployment's standards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order45 {
    /// The day the decision was published (the period starts there).
    pub published_on: String,
    /// The penalty's kind (its most severe part).
    pub kind: String,
    /// The fine's amount.
    pub amount: String,
    /// Whether the decision was annulled (withdrawn, Art. 11).
    pub annulled: String,
    /// Largest fine, in whole yuan, that counts as a low fine (the
    /// province's standard), inclusive. A whole number so that the
    /// comparison is exact at any source.
    pub low_fine_max: u64,
    /// Kinds that are only a warning: never published (Art. 2).
    #[serde(default = "default_warning_kinds")]
    pub warning_kinds: Vec<String>,
    /// Kinds that are a notice of criticism: 3 months (Art. 13).
    #[serde(default = "default_criticism_kinds")]
    pub criticism_kinds: Vec<String>,
    /// Kinds that are a fine: 3 months when low, else 3 years (Art. 13).
    #[serde(default = "default_fine_kinds")]
    pub fine_kinds: Vec<String>,
}

fn default_warning_kinds() -> Vec<String> {
    vec!["warning".to_string()]
}
fn default_criticism_kinds() -> Vec<String> {
    vec!["criticism".to_string()]
}
fn default_fine_kinds() -> Vec<String> {
    vec!["fine".to_string()]
}

/// List entries: periods per severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPeriods {
    /// The listing day (the period starts there).
    pub listed_on: String,
    /// The day the entry's cause ended (repair, removal); open while NULL.
    #[serde(default)]
    pub ends_on: Option<String>,
    /// The entry's severity: a key of `periods`.
    pub severity: String,
    /// Period per severity value.
    pub periods: BTreeMap<String, Period>,
}

/// A minimum and a maximum publication period, in months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// Shown at least this long, even when the cause ended earlier.
    pub min_months: u32,
    /// Shown at most this long.
    pub max_months: u32,
}

/// Why a shown record is shown, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The last day the record is shown.
    pub until: NaiveDate,
    /// The rule and regime that decided it, a stable code
    /// (`samr_order_45.art13_3m`, `samr_order_45.art13_3y`,
    /// `list_periods.<severity>`).
    pub rule: String,
}

/// `start` plus `months`, as the Civil Code counts a period of months (the
/// month's last day when it has no corresponding day).
pub fn period_end(start: NaiveDate, months: u32) -> Option<NaiveDate> {
    start.checked_add_months(Months::new(months))
}

/// The first start day whose period of `months` still includes `today`: the
/// records starting on or after it are shown. Exact around month ends
/// (31 March − 1 month is not simply 28 February).
pub fn first_start_shown(today: NaiveDate, months: u32) -> Option<NaiveDate> {
    let mut day = today.checked_sub_months(Months::new(months))?;
    // Month-end clamping makes `period_end` non-injective: walk to the exact edge.
    while period_end(day, months)? < today {
        day = day.succ_opt()?;
    }
    while let Some(before) = day.pred_opt() {
        if period_end(before, months)? >= today {
            day = before;
        } else {
            break;
        }
    }
    Some(day)
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::from_name(name.to_string()))
}

fn date_literal(day: NaiveDate) -> Expr {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or(NaiveDate::MIN);
    Expr::Literal(ScalarValue::Date32(Some((day - epoch).num_days() as i32)), None)
}

fn texts(values: &[String]) -> Vec<Expr> {
    values.iter().map(|v| lit(v.clone())).collect()
}

fn out_of_range(what: &str) -> String {
    format!("the publication period of {what} is out of the calendar's range")
}

impl PublicationRule {
    /// The columns the rule reads (all must be granted to the public role, unmasked).
    pub fn columns(&self) -> Vec<&str> {
        match self {
            PublicationRule::SamrOrder45(r) => vec![&r.published_on, &r.kind, &r.amount, &r.annulled],
            PublicationRule::ListPeriods(r) => {
                let mut columns = vec![r.listed_on.as_str(), r.severity.as_str()];
                columns.extend(r.ends_on.as_deref());
                columns
            }
        }
    }

    /// Problems of the rule's settings, each prefixed with `at` (its config key).
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for column in self.columns() {
            if !creditgate_ident::is_identifier(column) {
                problems.push(format!("{at}: `{column}` must be a column name"));
            }
        }
        match self {
            PublicationRule::SamrOrder45(r) => {
                if i64::try_from(r.low_fine_max).is_err() {
                    problems.push(format!("{at}.low_fine_max: {} is too large", r.low_fine_max));
                }
                let lists = [("warning_kinds", &r.warning_kinds), ("criticism_kinds", &r.criticism_kinds)];
                for (key, kinds) in lists.into_iter().chain([("fine_kinds", &r.fine_kinds)]) {
                    if kinds.is_empty() {
                        problems.push(format!("{at}.{key}: name at least one kind"));
                    }
                }
                for kind in &r.warning_kinds {
                    if r.criticism_kinds.contains(kind) || r.fine_kinds.contains(kind) {
                        problems.push(format!("{at}.warning_kinds: `{kind}` is also a published kind"));
                    }
                }
            }
            PublicationRule::ListPeriods(r) => {
                if r.periods.is_empty() {
                    problems.push(format!("{at}.periods: name the period of at least one severity"));
                }
                for (severity, period) in &r.periods {
                    if period.min_months > period.max_months || period.max_months == 0 {
                        problems.push(format!(
                            "{at}.periods.{severity}: min_months ({}) must be at most max_months ({}), and max_months above 0",
                            period.min_months, period.max_months
                        ));
                    }
                    if period.max_months > MAX_PERIOD_MONTHS {
                        problems.push(format!(
                            "{at}.periods.{severity}: max_months ({}) is above {MAX_PERIOD_MONTHS}",
                            period.max_months
                        ));
                    }
                }
            }
        }
        problems
    }

    /// The predicate keeping exactly the records shown on `today`, over raw
    /// columns with literals only (the connector applies it before anything
    /// else). Agrees with [`PublicationRule::decide`] on every record.
    pub fn predicate(&self, today: NaiveDate) -> Result<Expr, String> {
        match self {
            PublicationRule::SamrOrder45(r) => {
                let short = first_start_shown(today, ORDER_45_SHORT_MONTHS).ok_or_else(|| out_of_range("Order 45"))?;
                let long = first_start_shown(today, ORDER_45_LONG_MONTHS).ok_or_else(|| out_of_range("Order 45"))?;
                let low_fine_max = i64::try_from(r.low_fine_max).map_err(|_| out_of_range("Order 45"))?;
                let published = || column(&r.published_on);
                let kind = || column(&r.kind);
                let is_short = kind()
                    .in_list(texts(&r.criticism_kinds), false)
                    .or(kind().in_list(texts(&r.fine_kinds), false).and(column(&r.amount).lt_eq(lit(low_fine_max))));
                let is_long = kind()
                    .in_list(texts(&r.criticism_kinds), true)
                    .and(kind().in_list(texts(&r.fine_kinds), true).or(column(&r.amount).gt(lit(low_fine_max))));
                Ok(column(&r.annulled)
                    .is_not_true()
                    .and(kind().in_list(texts(&r.warning_kinds), true))
                    .and(published().lt_eq(date_literal(today)))
                    .and(
                        is_short
                            .and(published().gt_eq(date_literal(short)))
                            .or(is_long.and(published().gt_eq(date_literal(long)))),
                    ))
            }
            PublicationRule::ListPeriods(r) => {
                let listed = || column(&r.listed_on);
                let mut regimes = Vec::new();
                for (severity, period) in &r.periods {
                    let within_max =
                        first_start_shown(today, period.max_months).ok_or_else(|| out_of_range(severity))?;
                    let within_min =
                        first_start_shown(today, period.min_months).ok_or_else(|| out_of_range(severity))?;
                    // Shown until min(listed + max, max(listed + min, ends_on)).
                    let mut still = listed().gt_eq(date_literal(within_min));
                    match &r.ends_on {
                        Some(ends) => {
                            still = still.or(column(ends).is_null()).or(column(ends).gt_eq(date_literal(today)));
                        }
                        None => still = lit(true),
                    }
                    regimes.push(
                        column(&r.severity)
                            .eq(lit(severity.clone()))
                            .and(listed().gt_eq(date_literal(within_max)))
                            .and(still),
                    );
                }
                let any = regimes.into_iter().reduce(Expr::or).unwrap_or(lit(false));
                Ok(listed().lt_eq(date_literal(today)).and(any))
            }
        }
    }

    /// Whether `record` (a result row as JSON: dates as `YYYY-MM-DD`) is shown
    /// on `today`, until when and why; `None` when it is not shown.
    pub fn decide(&self, record: &serde_json::Map<String, serde_json::Value>, today: NaiveDate) -> Option<Shown> {
        let text = |name: &str| record.get(name).and_then(|v| v.as_str());
        let day = |name: &str| text(name).and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok());
        match self {
            PublicationRule::SamrOrder45(r) => {
                if record.get(&r.annulled).and_then(|v| v.as_bool()) == Some(true) {
                    return None;
                }
                let kind = text(&r.kind)?.to_string();
                if r.warning_kinds.contains(&kind) {
                    return None;
                }
                let published = day(&r.published_on)?;
                let short = if r.criticism_kinds.contains(&kind) {
                    true
                } else if r.fine_kinds.contains(&kind) {
                    record.get(&r.amount).and_then(|v| v.as_f64())? <= r.low_fine_max as f64
                } else {
                    false
                };
                let (months, code) = match short {
                    true => (ORDER_45_SHORT_MONTHS, "samr_order_45.art13_3m"),
                    false => (ORDER_45_LONG_MONTHS, "samr_order_45.art13_3y"),
                };
                let until = period_end(published, months)?;
                (published <= today && until >= today).then(|| Shown { until, rule: code.to_string() })
            }
            PublicationRule::ListPeriods(r) => {
                let listed = day(&r.listed_on)?;
                let severity = text(&r.severity)?;
                let period = r.periods.get(severity)?;
                let longest = period_end(listed, period.max_months)?;
                let shortest = period_end(listed, period.min_months)?;
                let until = match r.ends_on.as_deref().map(|c| record.get(c).filter(|v| !v.is_null())) {
                    // No end column, or still open: the maximum period.
                    None | Some(None) => longest,
                    Some(Some(value)) => {
                        let ends = value.as_str().and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())?;
                        ends.max(shortest).min(longest)
                    }
                };
                (listed <= today && until >= today).then(|| Shown { until, rule: format!("list_periods.{severity}") })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::prelude::SessionContext;
    use std::sync::Arc;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn first_start_shown_is_the_exact_edge_around_month_ends() {
        let mut today = day("2023-01-01");
        while today < day("2025-12-31") {
            for months in [1, 3, 6, 12, 36] {
                let first = first_start_shown(today, months).expect("in range");
                assert!(period_end(first, months).expect("end") >= today, "{today} {months}: {first} is shown");
                let before = first.pred_opt().expect("day");
                assert!(period_end(before, months).expect("end") < today, "{today} {months}: {before} is not");
            }
            today = today.succ_opt().expect("day");
        }
        // The Civil Code's count: from 15 January, 3 months end on 15 April.
        assert_eq!(period_end(day("2026-01-15"), 3), Some(day("2026-04-15")));
        assert_eq!(period_end(day("2025-11-30"), 3), Some(day("2026-02-28")));
        assert_eq!(first_start_shown(day("2026-03-31"), 1), Some(day("2026-03-01")));
    }

    fn order45() -> PublicationRule {
        PublicationRule::SamrOrder45(Order45 {
            published_on: "decided".into(),
            kind: "kind".into(),
            amount: "amount".into(),
            annulled: "annulled".into(),
            low_fine_max: 10_000,
            warning_kinds: default_warning_kinds(),
            criticism_kinds: default_criticism_kinds(),
            fine_kinds: default_fine_kinds(),
        })
    }

    fn lists() -> PublicationRule {
        PublicationRule::ListPeriods(ListPeriods {
            listed_on: "listed".into(),
            ends_on: Some("ended".into()),
            severity: "severity".into(),
            periods: BTreeMap::from([
                ("serious".to_string(), Period { min_months: 6, max_months: 36 }),
                ("general".to_string(), Period { min_months: 3, max_months: 12 }),
            ]),
        })
    }

    /// Records of every regime, dated on every day of a window around
    /// `today`'s boundaries (some with NULLs).
    fn records(today: NaiveDate) -> (RecordBatch, Vec<serde_json::Map<String, serde_json::Value>>) {
        let kinds = [Some("warning"), Some("criticism"), Some("fine"), Some("confiscation"), None];
        let amounts = [Some(0.0), Some(10_000.0), Some(10_000.5), None];
        let severities = [Some("serious"), Some("general"), Some("minor"), None];
        let mut rows = Vec::new();
        let mut offset = 0i64;
        for back in (0..1200).step_by(3).chain([88, 89, 90, 91, 92, 93, 1094, 1095, 1096, 1097]) {
            for (k, kind) in kinds.iter().enumerate() {
                let amount = amounts[(k + back as usize) % amounts.len()];
                let severity = severities[(k + back as usize / 3) % severities.len()];
                let start = today - chrono::Days::new(back);
                offset += 1;
                let ended = match offset % 4 {
                    0 => None,
                    1 => Some(start + chrono::Days::new((offset % 200) as u64)),
                    2 => Some(today),
                    _ => Some(today - chrono::Days::new(1)),
                };
                let annulled = match offset % 7 {
                    0 => Some(true),
                    1 => None,
                    _ => Some(false),
                };
                rows.push((start, *kind, amount, annulled, severity, ended));
            }
        }
        // Also a record from the future.
        rows.push((today + chrono::Days::new(2), Some("fine"), Some(50_000.0), Some(false), Some("serious"), None));
        let epoch = day("1970-01-01");
        let d32 = |d: NaiveDate| (d - epoch).num_days() as i32;
        let schema = Arc::new(Schema::new(vec![
            Field::new("decided", DataType::Date32, true),
            Field::new("kind", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("annulled", DataType::Boolean, true),
            Field::new("listed", DataType::Date32, true),
            Field::new("severity", DataType::Utf8, true),
            Field::new("ended", DataType::Date32, true),
            Field::new("id", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Date32Array::from(rows.iter().map(|r| Some(d32(r.0))).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
                Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())),
                Arc::new(BooleanArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())),
                Arc::new(Date32Array::from(rows.iter().map(|r| Some(d32(r.0))).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())),
                Arc::new(Date32Array::from(rows.iter().map(|r| r.5.map(d32)).collect::<Vec<_>>())),
                Arc::new(StringArray::from((0..rows.len()).map(|i| i.to_string()).collect::<Vec<_>>())),
            ],
        )
        .expect("batch");
        let json = crate::encode::batches_to_json(std::slice::from_ref(&batch)).expect("json");
        let maps = json.into_iter().filter_map(|v| v.as_object().cloned()).collect();
        (batch, maps)
    }

    async fn filtered_ids(batch: RecordBatch, predicate: Expr) -> Vec<String> {
        let ctx = SessionContext::new();
        let frame = ctx.read_batch(batch).expect("frame").filter(predicate).expect("filter");
        let batches = frame.collect().await.expect("collect");
        let rows = crate::encode::batches_to_json(&batches).expect("json");
        let mut ids: Vec<String> = rows.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn the_source_predicate_keeps_exactly_the_records_decide_shows() {
        for today in [day("2026-12-03"), day("2026-05-31"), day("2024-02-29"), day("2025-03-01")] {
            for rule in [order45(), lists()] {
                let (batch, maps) = records(today);
                let mut expected: Vec<String> = maps
                    .iter()
                    .filter(|m| rule.decide(m, today).is_some())
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect();
                expected.sort();
                assert!(expected.len() > 20, "{today}: the window shows records ({})", expected.len());
                assert!(expected.len() < maps.len() / 2, "{today}: and hides many");
                let got = filtered_ids(batch, rule.predicate(today).expect("predicate")).await;
                assert_eq!(got, expected, "{today} {rule:?}");
                let predicate = rule.predicate(today).expect("predicate");
                assert!(
                    creditgate_remote::is_pushable(&predicate, &None),
                    "the rule can be applied at the source: {predicate}"
                );
            }
        }
    }

    fn row(pairs: &[(&str, serde_json::Value)]) -> serde_json::Map<String, serde_json::Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn order_45_regimes_and_their_boundary_days() {
        let today = day("2026-12-03");
        let rule = order45();
        let penalty = |kind: &str, amount: f64, decided: &str| {
            row(&[
                ("kind", kind.into()),
                ("amount", amount.into()),
                ("decided", decided.into()),
                ("annulled", false.into()),
            ])
        };
        let short = rule.decide(&penalty("criticism", 0.0, "2026-09-03"), today).expect("last day");
        assert_eq!(short, Shown { until: today, rule: "samr_order_45.art13_3m".into() });
        assert!(rule.decide(&penalty("criticism", 0.0, "2026-09-02"), today).is_none());
        assert!(rule.decide(&penalty("fine", 10_000.0, "2026-09-03"), today).is_some(), "a low fine, inclusive");
        assert!(rule.decide(&penalty("fine", 10_000.0, "2026-09-02"), today).is_none());
        let long = rule.decide(&penalty("fine", 10_001.0, "2023-12-03"), today).expect("3 years");
        assert_eq!(long.rule, "samr_order_45.art13_3y");
        assert!(rule.decide(&penalty("fine", 10_001.0, "2023-12-02"), today).is_none());
        assert!(rule.decide(&penalty("revocation", 0.0, "2023-12-03"), today).is_some());
        assert!(rule.decide(&penalty("warning", 0.0, "2026-12-01"), today).is_none(), "warnings: Art. 2");
        let mut annulled = penalty("fine", 90_000.0, "2026-11-01");
        annulled.insert("annulled".into(), true.into());
        assert!(rule.decide(&annulled, today).is_none(), "annulled: Art. 11");
    }

    #[test]
    fn list_periods_between_minimum_and_maximum() {
        let today = day("2026-12-03");
        let rule = lists();
        let entry = |severity: &str, listed: &str, ended: serde_json::Value| {
            row(&[("severity", severity.into()), ("listed", listed.into()), ("ended", ended)])
        };
        let open = serde_json::Value::Null;
        assert_eq!(
            rule.decide(&entry("serious", "2023-12-03", open.clone()), today).map(|s| s.until),
            Some(today),
            "3 years at most, last day"
        );
        assert!(rule.decide(&entry("serious", "2023-12-02", open.clone()), today).is_none());
        // Ended (repaired) early: still the 6-month minimum.
        assert!(rule.decide(&entry("serious", "2026-06-03", "2026-06-10".into()), today).is_some());
        assert!(rule.decide(&entry("serious", "2026-06-02", "2026-06-10".into()), today).is_none());
        assert!(rule.decide(&entry("general", "2025-12-03", open.clone()), today).is_some());
        assert!(rule.decide(&entry("general", "2025-12-02", open.clone()), today).is_none());
        assert!(rule.decide(&entry("general", "2026-09-03", "2026-09-04".into()), today).is_some());
        assert!(rule.decide(&entry("general", "2026-09-02", "2026-09-04".into()), today).is_none());
        // Ends today: shown today; a severity without a period: never.
        assert!(rule.decide(&entry("general", "2025-12-02", today.to_string().into()), today).is_none());
        assert!(rule.decide(&entry("serious", "2024-12-02", today.to_string().into()), today).is_some());
        assert!(rule.decide(&entry("minor", "2026-12-01", open), today).is_none());
    }

    #[test]
    fn settings_are_checked_and_unknown_keys_refused() {
        let text = r#"rule = "list_periods"
listed_on = "listed"
severity = "severity"
periods = { serious = { min_months = 40, max_months = 36 } }"#;
        let rule: PublicationRule = toml::from_str(text).expect("parses");
        let problems = rule.problems("public.sections[3].publication");
        assert!(problems.iter().any(|p| p.contains("periods.serious: min_months (40)")), "{problems:?}");
        let typo = text.replace("listed_on", "listed_at");
        assert!(toml::from_str::<PublicationRule>(&typo).is_err());
    }
}
