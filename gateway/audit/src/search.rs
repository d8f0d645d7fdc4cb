//! Search, subject reports and statistics for the privacy-officer API.
//!
//! These scan the segment files (O(records)); that is fine for the volumes
//! of one gateway and keeps the log the single source of truth.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::error::AuditError;
use crate::record::{AuditRecord, ColumnAccess, Frontend, Outcome};
use crate::segment::{list_segments, read_lines};

/// Page size when [`AuditQuery::limit`] is 0.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_PAGE_LIMIT: usize = 1000;

/// How the requesting officer's own reads of the audit log are treated by a
/// search (see [`AuditRecord::is_own_read`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OwnReads {
    /// Listed with everything else (flagged `own_read`).
    #[default]
    Include,
    /// Left out.
    Exclude,
    /// Only they are listed.
    Only,
}

impl OwnReads {
    /// The parameter spellings, for error messages.
    pub const EXPECTED: &'static str = "include, exclude, only";

    /// Parses `include`, `exclude` or `only`.
    pub fn parse(text: &str) -> Option<OwnReads> {
        match text {
            "include" => Some(OwnReads::Include),
            "exclude" => Some(OwnReads::Exclude),
            "only" => Some(OwnReads::Only),
            _ => None,
        }
    }

    /// Whether a record that is (or is not) an own read passes.
    pub fn admits(self, own: bool) -> bool {
        match self {
            OwnReads::Include => true,
            OwnReads::Exclude => !own,
            OwnReads::Only => own,
        }
    }
}

/// Filters for [`AuditLog::search`](crate::AuditLog::search). Unset fields
/// match everything; set fields must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Caller name or certificate fingerprint (exact).
    pub caller: Option<String>,
    /// Caller organisation (exact).
    pub organization: Option<String>,
    /// Purpose (exact).
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// A dataset the request touched.
    pub dataset: Option<String>,
    /// Records at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Records before this time.
    pub to: Option<DateTime<Utc>>,
    /// Keyed subject hash (from [`SubjectHasher`](crate::SubjectHasher)).
    pub subject_hash: Option<String>,
    /// The requesting officer's certificate fingerprint: whose reads are
    /// "own reads" for [`AuditQuery::own_reads`].
    pub reader: Option<String>,
    /// Whether the reader's own reads of the audit log are listed.
    pub own_reads: OwnReads,
    /// Matches to skip (newest first).
    pub offset: usize,
    /// Page size (0: [`DEFAULT_PAGE_LIMIT`]; capped at [`MAX_PAGE_LIMIT`]).
    pub limit: usize,
}

impl AuditQuery {
    /// Whether `r` passes every set filter.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        self.caller.as_ref().is_none_or(|c| &r.caller.name == c || &r.caller.fingerprint == c)
            && self.organization.as_ref().is_none_or(|o| &r.caller.organization == o)
            && self.purpose.as_ref().is_none_or(|p| r.purpose.as_ref() == Some(p))
            && self.outcome.is_none_or(|o| r.outcome == o)
            && self.dataset.as_ref().is_none_or(|d| r.datasets.contains(d))
            && self.from.is_none_or(|t| r.time >= t)
            && self.to.is_none_or(|t| r.time < t)
            && self.subject_hash.as_ref().is_none_or(|h| r.subject_hashes.contains(h))
            && self.own_reads.admits(self.reader.as_deref().is_some_and(|me| r.is_own_read(me)))
    }

    fn effective_limit(&self) -> usize {
        match self.limit {
            0 => DEFAULT_PAGE_LIMIT,
            n => n.min(MAX_PAGE_LIMIT),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// How many items match in total.
    pub total: usize,
    /// Offset of the first item.
    pub offset: usize,
    /// Page size used.
    pub limit: usize,
}

/// One access to a subject, for the subject report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessEntry {
    /// The replica whose chain holds the record (a log shared by replicas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Record sequence number (in its replica's chain).
    pub seq: u64,
    /// When.
    pub time: DateTime<Utc>,
    /// Caller name.
    pub caller_name: String,
    /// Caller certificate fingerprint.
    pub caller_fingerprint: String,
    /// Caller organisation.
    pub organization: String,
    /// Caller role.
    pub role: String,
    /// Listener.
    pub frontend: Frontend,
    /// Declared purpose.
    pub purpose: Option<String>,
    /// Legal basis (duty code, consent id, licence).
    pub legal_basis: Option<String>,
    /// Datasets touched.
    pub datasets: Vec<String>,
    /// Columns disclosed and how each was masked.
    pub columns: Vec<ColumnAccess>,
    /// Outcome.
    pub outcome: Outcome,
    /// Why it was refused or failed.
    pub refusal_reason: Option<String>,
    /// Whether this access was a read of the audit log (an officer's search
    /// naming the subject), not of the subject's credit data.
    pub audit_read: bool,
}

/// How often one organisation, caller or purpose appears in a subject report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// The organisation, the caller's name, or the purpose code (`None`: no purpose declared).
    pub key: Option<String>,
    /// The caller's organisation (for callers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Accesses (every outcome).
    pub accesses: u64,
    /// Of which allowed.
    pub allowed: u64,
}

/// The summary of a subject report: who accessed the subject, how often and
/// for which purposes, over the whole retained log (not one page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportSummary {
    /// Accesses in total.
    pub accesses: u64,
    /// Of which allowed (data released).
    pub allowed: u64,
    /// Of which refused, failed or cancelled.
    pub not_allowed: u64,
    /// The oldest access.
    pub first: Option<DateTime<Utc>>,
    /// The newest access.
    pub last: Option<DateTime<Utc>>,
    /// Per organisation, most accesses first.
    pub organizations: Vec<Tally>,
    /// Per caller, most accesses first.
    pub callers: Vec<Tally>,
    /// Per purpose, most accesses first.
    pub purposes: Vec<Tally>,
}

fn tallies(counts: BTreeMap<(Option<String>, Option<String>), (u64, u64)>) -> Vec<Tally> {
    let mut out: Vec<Tally> = counts
        .into_iter()
        .map(|((key, organization), (accesses, allowed))| Tally { key, organization, accesses, allowed })
        .collect();
    out.sort_by(|a, b| b.accesses.cmp(&a.accesses).then_with(|| a.key.cmp(&b.key)));
    out
}

/// Summarises the accesses of a subject report (any order).
pub fn summarize(entries: &[AccessEntry]) -> ReportSummary {
    let mut organizations = BTreeMap::new();
    let mut callers = BTreeMap::new();
    let mut purposes = BTreeMap::new();
    let mut allowed = 0;
    for e in entries {
        let ok = u64::from(e.outcome == Outcome::Allowed);
        allowed += ok;
        for (map, key) in [
            (&mut organizations, (Some(e.organization.clone()), None)),
            (&mut callers, (Some(e.caller_name.clone()), Some(e.organization.clone()))),
            (&mut purposes, (e.purpose.clone(), None)),
        ] {
            let c: &mut (u64, u64) = map.entry(key).or_default();
            c.0 += 1;
            c.1 += ok;
        }
    }
    ReportSummary {
        accesses: entries.len() as u64,
        allowed,
        not_allowed: entries.len() as u64 - allowed,
        first: entries.iter().map(|e| e.time).min(),
        last: entries.iter().map(|e| e.time).max(),
        organizations: tallies(organizations),
        callers: tallies(callers),
        purposes: tallies(purposes),
    }
}

/// Which callers are flagged for review in [`Stats::flagged`].
///
/// On the last day of the range, a caller (by certificate fingerprint) is
/// flagged when the number of distinct subjects it looked up that day (any
/// outcome) is at least `min_distinct_subjects` **and** greater than `ratio`
/// times its average daily distinct subjects over the `trailing_days` days
/// before (days without activity count as 0, so a new caller is flagged once
/// it reaches the floor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlagRule {
    /// Multiple of the trailing average that counts as a jump.
    pub ratio: f64,
    /// Floor: fewer distinct subjects than this is never flagged.
    pub min_distinct_subjects: u64,
    /// Days before the last day that make the baseline.
    pub trailing_days: u32,
}

/// Default [`FlagRule::ratio`].
pub const DEFAULT_FLAG_RATIO: f64 = 3.0;
/// Default [`FlagRule::min_distinct_subjects`].
pub const DEFAULT_FLAG_MIN_DISTINCT_SUBJECTS: u64 = 20;
/// Default [`FlagRule::trailing_days`].
pub const DEFAULT_FLAG_TRAILING_DAYS: u32 = 7;

impl Default for FlagRule {
    fn default() -> Self {
        FlagRule {
            ratio: DEFAULT_FLAG_RATIO,
            min_distinct_subjects: DEFAULT_FLAG_MIN_DISTINCT_SUBJECTS,
            trailing_days: DEFAULT_FLAG_TRAILING_DAYS,
        }
    }
}

/// Parameters of [`AuditLog::stats`](crate::AuditLog::stats): an inclusive
/// UTC day range; flags are computed for `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsQuery {
    /// First day (UTC), inclusive.
    pub from: NaiveDate,
    /// Last day (UTC), inclusive; the day flags are computed for.
    pub to: NaiveDate,
    /// The flagging rule.
    pub flag_rule: FlagRule,
}

/// Counts for one (day, organisation, purpose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyCount {
    /// UTC day.
    pub day: NaiveDate,
    /// Caller organisation.
    pub organization: String,
    /// Purpose (`None` when none was declared).
    pub purpose: Option<String>,
    /// Requests (all outcomes).
    pub requests: u64,
    /// Refused requests.
    pub refusals: u64,
}

/// A caller flagged for review.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlaggedCaller {
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// Caller name.
    pub name: String,
    /// Organisation.
    pub organization: String,
    /// The day concerned.
    pub day: NaiveDate,
    /// Distinct subjects looked up that day.
    pub distinct_subjects: u64,
    /// Average daily distinct subjects over the trailing days.
    pub trailing_daily_average: f64,
}

/// Output of [`AuditLog::stats`](crate::AuditLog::stats).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Sorted by day, organisation, purpose.
    pub daily: Vec<DailyCount>,
    /// Flagged callers, most distinct subjects first.
    pub flagged: Vec<FlaggedCaller>,
}

/// Calls `f` for every durable, parseable record, newest first.
fn for_each_newest_first(dir: &Path, durable: Option<u64>, mut f: impl FnMut(AuditRecord)) -> Result<(), AuditError> {
    let (segments, _) = list_segments(dir)?;
    for seg in segments.iter().rev() {
        let lines = match read_lines(&seg.path) {
            Ok(l) => l,
            Err(_) if !seg.path.exists() => continue, // pruned meanwhile
            Err(e) => return Err(e),
        };
        for line in lines.iter().rev() {
            if !line.terminated {
                continue;
            }
            let Ok(r) = AuditRecord::from_line(&line.bytes) else { continue };
            if durable.is_some_and(|d| r.seq > d) {
                continue;
            }
            f(r);
        }
    }
    Ok(())
}

/// Searches the log in `dir` (see [`AuditLog::search`](crate::AuditLog::search)).
pub fn search_dir(dir: &Path, query: &AuditQuery, durable: Option<u64>) -> Result<Page<AuditRecord>, AuditError> {
    let mut pager = Pager::new(query);
    for_each_newest_first(dir, durable, |r| pager.offer(r))?;
    Ok(pager.page())
}

/// Searches `records` (newest first), as [`search_dir`] searches a directory.
pub fn search_records(records: impl IntoIterator<Item = AuditRecord>, query: &AuditQuery) -> Page<AuditRecord> {
    let mut pager = Pager::new(query);
    records.into_iter().for_each(|r| pager.offer(r));
    pager.page()
}

/// Collects one page of the records that match a query.
struct Pager<'a> {
    query: &'a AuditQuery,
    limit: usize,
    items: Vec<AuditRecord>,
    total: usize,
}

impl<'a> Pager<'a> {
    fn new(query: &'a AuditQuery) -> Self {
        Pager { query, limit: query.effective_limit(), items: Vec::new(), total: 0 }
    }

    fn offer(&mut self, r: AuditRecord) {
        if self.query.matches(&r) {
            if self.total >= self.query.offset && self.items.len() < self.limit {
                self.items.push(r);
            }
            self.total += 1;
        }
    }

    fn page(self) -> Page<AuditRecord> {
        Page { items: self.items, total: self.total, offset: self.query.offset, limit: self.limit }
    }
}

/// The subject-report entry of `r`, if it names the subject with this keyed hash.
pub fn access_entry(r: AuditRecord, subject_hash: &str) -> Option<AccessEntry> {
    if !r.subject_hashes.iter().any(|h| h == subject_hash) {
        return None;
    }
    Some(AccessEntry {
        replica: r.replica.clone(),
        seq: r.seq,
        time: r.time,
        audit_read: r.is_audit_read(),
        caller_name: r.caller.name,
        caller_fingerprint: r.caller.fingerprint,
        organization: r.caller.organization,
        role: r.caller.role,
        frontend: r.frontend,
        purpose: r.purpose,
        legal_basis: r.legal_basis,
        datasets: r.datasets,
        columns: r.columns,
        outcome: r.outcome,
        refusal_reason: r.refusal_reason,
    })
}

/// Every access to the subject with this keyed hash in `dir`, newest first.
pub fn subject_report_dir(
    dir: &Path,
    subject_hash: &str,
    durable: Option<u64>,
) -> Result<Vec<AccessEntry>, AuditError> {
    let mut out = Vec::new();
    for_each_newest_first(dir, durable, |r| out.extend(access_entry(r, subject_hash)))?;
    Ok(out)
}

/// The first day a [`StatsQuery`] needs records of (its range and the
/// trailing days its flag rule compares with).
pub fn stats_earliest_day(query: &StatsQuery) -> NaiveDate {
    query
        .from
        .min(query.to.checked_sub_days(Days::new(u64::from(query.flag_rule.trailing_days))).unwrap_or(NaiveDate::MIN))
}

/// Statistics over the log in `dir`.
pub fn stats_dir(dir: &Path, query: &StatsQuery, durable: Option<u64>) -> Result<Stats, AuditError> {
    let earliest = stats_earliest_day(query);
    let mut records = Vec::new();
    for_each_newest_first(dir, durable, |r| {
        let day = r.time.date_naive();
        if day >= earliest && day <= query.to {
            records.push(r);
        }
    })?;
    Ok(compute_stats(&records, query))
}

/// Computes [`Stats`] from records (any order).
pub fn compute_stats<'a>(records: impl IntoIterator<Item = &'a AuditRecord>, query: &StatsQuery) -> Stats {
    let rule = query.flag_rule;
    let baseline_start = query.to.checked_sub_days(Days::new(u64::from(rule.trailing_days))).unwrap_or(NaiveDate::MIN);
    let mut daily: BTreeMap<(NaiveDate, String, Option<String>), (u64, u64)> = BTreeMap::new();
    // fingerprint -> day -> distinct subjects
    let mut subjects: HashMap<&str, BTreeMap<NaiveDate, BTreeSet<&str>>> = HashMap::new();
    let mut who: HashMap<&str, (&str, &str)> = HashMap::new();
    for r in records.into_iter().filter(|r| r.is_request()) {
        let day = r.time.date_naive();
        if day >= query.from && day <= query.to {
            let e = daily.entry((day, r.caller.organization.clone(), r.purpose.clone())).or_default();
            e.0 += 1;
            if r.outcome == Outcome::Refused {
                e.1 += 1;
            }
        }
        if day >= baseline_start && day <= query.to && !r.subject_hashes.is_empty() {
            let per_day = subjects.entry(r.caller.fingerprint.as_str()).or_default().entry(day).or_default();
            per_day.extend(r.subject_hashes.iter().map(String::as_str));
            who.entry(r.caller.fingerprint.as_str())
                .or_insert((r.caller.name.as_str(), r.caller.organization.as_str()));
        }
    }
    let mut flagged = Vec::new();
    for (fp, days) in &subjects {
        let today = days.get(&query.to).map_or(0, |s| s.len() as u64);
        let before: u64 = days.iter().filter(|(d, _)| **d < query.to).map(|(_, s)| s.len() as u64).sum();
        let avg = if rule.trailing_days == 0 { 0.0 } else { before as f64 / f64::from(rule.trailing_days) };
        if today >= rule.min_distinct_subjects && (today as f64) > rule.ratio * avg {
            let (name, org) = who.get(fp).copied().unwrap_or(("", ""));
            flagged.push(FlaggedCaller {
                fingerprint: (*fp).to_owned(),
                name: name.to_owned(),
                organization: org.to_owned(),
                day: query.to,
                distinct_subjects: today,
                trailing_daily_average: avg,
            });
        }
    }
    flagged
        .sort_by(|a, b| b.distinct_subjects.cmp(&a.distinct_subjects).then_with(|| a.fingerprint.cmp(&b.fingerprint)));
    Stats {
        daily: daily
            .into_iter()
            .map(|((day, organization, purpose), (requests, refusals))| DailyCount {
                day,
                organization,
                purpose,
                requests,
                refusals,
            })
            .collect(),
        flagged,
    }
}
