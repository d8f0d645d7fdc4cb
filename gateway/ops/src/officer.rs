//! The privacy-officer API (`/v1/audit/…`) and the console page (`/console`).
//!
//! Only principals with role `privacy_officer` get in (the permit's
//! operation `audit_read`). Reading the audit log is itself an access and is
//! audited. Subjects are searched by their raw identifier, which is
//! validated and hashed here; the log holds only hashes. Unknown parameters
//! are refused by name, so a misspelt filter never returns every record.
//! Records and subject reports come as JSON or, with `Accept: text/csv`, as
//! CSV; an `Accept` the route cannot produce is refused (406). The
//! officer's own reads of the audit log are flagged `own_read` and can be
//! left out or picked out (`own_reads=include|exclude|only`).
//! `GET /v1/audit/linkage` computes the linkability report of every
//! principal's masked columns ([`crate::linkage`]) when asked.

use std::collections::BTreeMap;
use std::sync::Arc;

use creditgate_audit::{
    AccessEntry, AuditQuery, AuditRecord, Outcome, OwnReads, RecordedQuery, StatsQuery, SubjectKey,
};
use creditgate_engine::{Caller, Disclosure, Engine, GatewayError, Intent};
use creditgate_ident::{CreditCode, ResidentId};
use creditgate_policy::Operation;

/// Decodes `%xx` escapes and `+` in a query-string or path component.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a query string, decoded (a repeated name keeps its last value).
pub fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(pair), String::new()),
        })
        .collect()
}

/// Parses a raw subject identifier (credit code or resident ID) into a key.
pub fn subject_key(raw: &str) -> Result<SubjectKey, GatewayError> {
    let raw = raw.trim();
    if let Ok(code) = CreditCode::parse(raw) {
        return Ok(SubjectKey::CreditCode(code.as_str().to_string()));
    }
    if let Ok(mobile) = creditgate_ident::Mobile::parse(raw) {
        return Ok(SubjectKey::Mobile(mobile.as_str().to_string()));
    }
    match ResidentId::parse(raw) {
        Ok(id) => Ok(SubjectKey::ResidentId(id.as_str().to_string())),
        Err(id_error) => {
            let code_error = CreditCode::parse(raw).err().map(|e| e.to_string()).unwrap_or_default();
            Err(GatewayError::BadRequest(format!(
                "subject: not a valid unified social credit code ({code_error}), resident ID ({id_error}) \
                 nor mobile number"
            )))
        }
    }
}

fn time_param(
    params: &BTreeMap<String, String>,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, GatewayError> {
    let Some(text) = params.get(name).filter(|t| !t.is_empty()) else { return Ok(None) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&chrono::Utc)));
    }
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| GatewayError::BadRequest(format!("{name}: expected a date (YYYY-MM-DD) or an RFC 3339 time")))?;
    // `to` is exclusive: a date-only `to` includes that whole day, to the last millisecond.
    let start = if name == "to" { day.succ_opt().unwrap_or(day) } else { day };
    Ok(start.and_hms_opt(0, 0, 0).map(|t| t.and_utc()))
}

fn number_param(params: &BTreeMap<String, String>, name: &str, default: usize) -> Result<usize, GatewayError> {
    match params.get(name).filter(|t| !t.is_empty()) {
        None => Ok(default),
        Some(t) => t.parse().map_err(|_| GatewayError::BadRequest(format!("{name}: expected a non-negative integer"))),
    }
}

/// What the officer API answers.
#[derive(Debug)]
pub enum Answer {
    /// A JSON document.
    Json(serde_json::Value),
    /// A CSV document (header line first), for `Accept: text/csv`.
    Csv(String),
    /// The console page (the server serves it).
    Console,
}

/// Subject report entries per page when `limit` is not given.
pub const DEFAULT_REPORT_PAGE: usize = 50;
/// Largest subject report page.
pub const MAX_REPORT_PAGE: usize = 1000;

/// The parameters each endpoint accepts.
fn accepted(path: &str) -> &'static [&'static str] {
    match path {
        "/v1/audit/records" => &[
            "caller",
            "organization",
            "purpose",
            "outcome",
            "dataset",
            "from",
            "to",
            "subject",
            "own_reads",
            "offset",
            "limit",
        ],
        "/v1/audit/stats" => &["from", "to"],
        p if is_report(p) => &["cursor", "limit", "own_reads"],
        _ => &[],
    }
}

fn is_report(path: &str) -> bool {
    path.starts_with("/v1/audit/subjects/") && path.ends_with("/report")
}

/// The formats of the officer API's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// The format `accept` asks for, among what `path` produces: records and
/// subject reports come as JSON or CSV, everything else as JSON. No
/// `Accept`, `*/*` and `application/json` mean JSON; media types with
/// `q=0` are not wanted. The console page ignores `Accept`.
fn negotiate(path: &str, accept: Option<&str>) -> Result<Format, GatewayError> {
    let csv = path == "/v1/audit/records" || is_report(path);
    let Some(value) = accept.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(Format::Json) };
    if path == "/console" {
        return Ok(Format::Json);
    }
    for part in value.split(',') {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let unwanted = pieces
            .any(|p| p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)));
        if unwanted {
            continue;
        }
        match media.as_str() {
            "application/json" | "*/*" | "application/*" | "" => return Ok(Format::Json),
            "text/csv" | "text/*" if csv => return Ok(Format::Csv),
            _ => {}
        }
    }
    Err(GatewayError::NotAcceptable {
        asked: value.chars().take(100).collect(),
        offered: if csv { "application/json or text/csv" } else { "application/json" },
    })
}

/// A request of the officer API, read before authorization.
enum Request {
    Console,
    Verify,
    Meta,
    Linkage,
    Records(Box<AuditQuery>),
    Stats(StatsQuery),
    Report { kind: &'static str, hash: String, cursor: Option<ReportCursor>, limit: usize, own_reads: OwnReads },
}

fn own_reads_param(params: &BTreeMap<String, String>) -> Result<OwnReads, GatewayError> {
    match params.get("own_reads").map(String::as_str).filter(|s| !s.is_empty()) {
        None => Ok(OwnReads::Include),
        Some(text) => OwnReads::parse(text)
            .ok_or_else(|| GatewayError::BadRequest(format!("own_reads: one of {}", OwnReads::EXPECTED))),
    }
}

fn read_request(
    engine: &Engine,
    path: &str,
    params: &BTreeMap<String, String>,
    reader: &str,
    subjects: &mut Vec<String>,
) -> Result<Request, GatewayError> {
    let unknown: Vec<&str> = params.keys().map(String::as_str).filter(|k| !accepted(path).contains(k)).collect();
    if !unknown.is_empty() {
        let accepted = accepted(path);
        return Err(GatewayError::BadRequest(format!(
            "unknown parameter{} {}; {} accepts {}",
            if unknown.len() == 1 { "" } else { "s" },
            unknown
                .iter()
                .map(|k| format!("`{}`", k.chars().take(40).collect::<String>()))
                .collect::<Vec<_>>()
                .join(", "),
            path,
            if accepted.is_empty() { "none".to_string() } else { accepted.join(", ") }
        )));
    }
    Ok(match path {
        "/console" => Request::Console,
        "/v1/audit/verify" => Request::Verify,
        "/v1/audit/meta" => Request::Meta,
        "/v1/audit/linkage" => Request::Linkage,
        "/v1/audit/records" => {
            let subject_hash = match params.get("subject").filter(|s| !s.is_empty()) {
                Some(raw) => {
                    let hash = engine.auditor().hasher().hash(&subject_key(raw)?);
                    subjects.push(hash.clone());
                    Some(hash)
                }
                None => None,
            };
            let outcome = match params.get("outcome").map(String::as_str).filter(|s| !s.is_empty()) {
                None => None,
                Some("allowed") => Some(Outcome::Allowed),
                Some("refused") => Some(Outcome::Refused),
                Some("failed") => Some(Outcome::Failed),
                Some("cancelled") => Some(Outcome::Cancelled),
                Some(_) => {
                    return Err(GatewayError::BadRequest("outcome: one of allowed, refused, failed, cancelled".into()));
                }
            };
            let text = |k: &str| params.get(k).filter(|v| !v.is_empty()).cloned();
            Request::Records(Box::new(AuditQuery {
                caller: text("caller"),
                organization: text("organization"),
                purpose: text("purpose"),
                outcome,
                dataset: text("dataset"),
                from: time_param(params, "from")?,
                to: time_param(params, "to")?,
                subject_hash,
                reader: Some(reader.to_owned()),
                own_reads: own_reads_param(params)?,
                offset: number_param(params, "offset", 0)?,
                limit: number_param(params, "limit", 50)?,
            }))
        }
        "/v1/audit/stats" => {
            let today = chrono::Utc::now().date_naive();
            // Statistics are per day, both ends inclusive.
            let from = time_param(params, "from")?.map(|t| t.date_naive()).unwrap_or(today - chrono::Days::new(30));
            let to = match time_param(params, "to")? {
                // `to` is an exclusive end: at midnight, the day before is the last.
                Some(t) if t.time() == chrono::NaiveTime::MIN => t.date_naive().pred_opt().unwrap_or(today),
                Some(t) => t.date_naive(),
                None => today,
            };
            if from > to {
                return Err(GatewayError::BadRequest("from: must not be after to".into()));
            }
            Request::Stats(StatsQuery { from, to, flag_rule: Default::default() })
        }
        p if is_report(p) => {
            let raw = percent_decode(&p["/v1/audit/subjects/".len()..p.len() - "/report".len()]);
            let key = subject_key(&raw)?;
            let cursor = match params.get("cursor").filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(ReportCursor::parse(c).ok_or_else(|| {
                    GatewayError::BadRequest(
                        "cursor: expected the next_cursor of the previous page (a sequence number, followed by \
                         @replica in a log shared by replicas)"
                            .into(),
                    )
                })?),
            };
            let limit = match number_param(params, "limit", DEFAULT_REPORT_PAGE)? {
                0 => DEFAULT_REPORT_PAGE,
                n => n.min(MAX_REPORT_PAGE),
            };
            let own_reads = own_reads_param(params)?;
            let kind = match key {
                SubjectKey::CreditCode(_) => "credit_code",
                SubjectKey::ResidentId(_) => "resident_id",
                SubjectKey::Mobile(_) => "mobile",
            };
            let hash = engine.auditor().hasher().hash(&key);
            subjects.push(hash.clone());
            Request::Report { kind, hash, cursor, limit, own_reads }
        }
        other => return Err(GatewayError::NotFound(other.chars().take(200).collect())),
    })
}

/// Serves `GET /v1/audit/…` and `GET /console` for `caller`: reads the
/// request (parameters and `accept` checked), asks for an `audit_read`
/// permit, answers, and records the access with its filters (the subject
/// filter only as its keyed hash). `path` is the decoded path.
pub async fn serve(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    path: &str,
    query: Option<&str>,
    accept: Option<&str>,
) -> Result<Answer, GatewayError> {
    let params = query_params(query);
    let mut subjects = Vec::new();
    let reader = caller.fingerprint().to_owned();
    let read = read_request(engine, path, &params, &reader, &mut subjects)
        .and_then(|request| negotiate(path, accept).map(|format| (format, request)));
    let mut filters = params;
    filters.remove("subject");
    let recorded_path = engine.auditor().redact_text(path);
    let what = match &read {
        Ok((_, Request::Records(_) | Request::Stats(_) | Request::Report { .. })) if !filters.is_empty() => {
            serde_json::json!({"audit_api": recorded_path, "filters": filters})
        }
        _ => serde_json::json!({"audit_api": recorded_path}),
    };
    let (format, request) = match read {
        Ok(read) => read,
        Err(error) => {
            // A request that cannot be read is recorded by its method and path.
            let what = RecordedQuery::Request(format!("GET {recorded_path}"));
            let intent = Intent::new(Operation::AuditRead, purpose, what).with_subjects(subjects);
            return Err(engine.refuse(caller, intent, error).await);
        }
    };
    let intent = Intent::new(Operation::AuditRead, purpose, RecordedQuery::Lookup(what)).with_subjects(subjects);
    let permit = engine.authorize(caller, intent).await?;
    let log = Arc::clone(engine.auditor().log());
    let audit_error = |e: creditgate_audit::AuditError| GatewayError::internal(format!("audit log: {e}"));
    let blocking = |f: Box<dyn FnOnce() -> Result<serde_json::Value, GatewayError> + Send>| async move {
        tokio::task::spawn_blocking(f).await.map_err(|e| GatewayError::internal(format!("audit task: {e}")))?
    };
    let answer = match request {
        Request::Console => Ok(Answer::Console),
        Request::Meta => Ok(Answer::Json(meta(engine, &permit))),
        // The linkability of every principal's masked columns, computed now
        // on the live federation (figures only: no value leaves the gateway).
        Request::Linkage => crate::linkage::for_engine(engine)
            .await
            .map(|report| Answer::Json(serde_json::to_value(report).unwrap_or_default())),
        Request::Verify => blocking(Box::new(move || Ok(serde_json::to_value(log.verify()).unwrap_or_default())))
            .await
            .map(Answer::Json),
        Request::Records(search) => blocking(Box::new(move || {
            let page = log.search(&search).map_err(audit_error)?;
            if format == Format::Csv {
                return Ok(serde_json::Value::String(records_csv(&page.items, &reader)));
            }
            let items: Vec<serde_json::Value> = page.items.iter().map(|r| record_json(r, &reader)).collect();
            Ok(serde_json::json!({"total": page.total, "offset": page.offset, "limit": page.limit, "items": items}))
        }))
        .await
        .map(|v| into_answer(format, v)),
        Request::Stats(stats) => blocking(Box::new(move || {
            Ok(serde_json::to_value(log.stats(&stats).map_err(audit_error)?).unwrap_or_default())
        }))
        .await
        .map(Answer::Json),
        Request::Report { kind, hash, cursor, limit, own_reads } => blocking(Box::new(move || {
            let mut accesses = log.subject_report(&hash).map_err(audit_error)?;
            accesses.retain(|a| own_reads.admits(is_own(a, &reader)));
            let summary = creditgate_audit::summarize(&accesses);
            // Newest first; a page starts after the cursor (the seq of the
            // previous page's last entry).
            let start = cursor.map_or(0, |c| c.start(&accesses));
            let page = &accesses[start..(start + limit).min(accesses.len())];
            let next_cursor = (start + page.len() < accesses.len()).then(|| page.last().map(ReportCursor::after));
            if format == Format::Csv {
                return Ok(serde_json::Value::String(report_csv(page, &reader)));
            }
            let entries: Vec<serde_json::Value> = page.iter().map(|a| access_json(a, &reader)).collect();
            Ok(serde_json::json!({
                "subject": {"type": kind, "hash": hash},
                "summary": summary,
                "limit": limit,
                "accesses": entries,
                "next_cursor": next_cursor.flatten(),
            }))
        }))
        .await
        .map(|v| into_answer(format, v)),
    };
    match answer {
        Ok(answer) => {
            permit.allow(Disclosure::default()).await?;
            Ok(answer)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}

/// `GET /v1/audit/meta`: what the console needs to show records to people:
/// the deployment's time zone, the display names of purposes and
/// organisations from the policy, and who is asking.
fn meta(engine: &Engine, permit: &creditgate_engine::Permit) -> serde_json::Value {
    let policy = engine.policy();
    let me = permit.caller();
    serde_json::json!({
        "time_zone": engine.config().audit.tz().name(),
        "purposes": policy.purpose_names(),
        "organizations": policy.organization_names(),
        "officer": {
            "name": me.name(),
            "organization": me.principal().organization,
            "fingerprint": me.fingerprint(),
        },
    })
}

fn into_answer(format: Format, value: serde_json::Value) -> Answer {
    match (format, value) {
        (Format::Csv, serde_json::Value::String(text)) => Answer::Csv(text),
        (_, value) => Answer::Json(value),
    }
}

fn is_own(entry: &AccessEntry, reader: &str) -> bool {
    entry.audit_read && !reader.is_empty() && entry.caller_fingerprint == reader
}

/// A record as the API shows it: the record, with `own_read`.
fn record_json(record: &AuditRecord, reader: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("own_read".into(), record.is_own_read(reader).into());
    }
    value
}

/// Where the next page of a subject report starts: after the entry with
/// this sequence number (and replica, in a log shared by replicas; text
/// `<seq>@<replica>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportCursor {
    seq: u64,
    replica: Option<String>,
}

impl ReportCursor {
    fn parse(text: &str) -> Option<ReportCursor> {
        let (seq, replica) = match text.split_once('@') {
            Some((seq, replica)) if creditgate_state::is_replica_id(replica) => (seq, Some(replica.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        Some(ReportCursor { seq: seq.parse().ok()?, replica })
    }

    /// The cursor of the page that follows `last`.
    fn after(last: &AccessEntry) -> String {
        match &last.replica {
            Some(replica) => format!("{}@{replica}", last.seq),
            None => last.seq.to_string(),
        }
    }

    /// The index of the first entry after the cursor (entries newest first).
    fn start(&self, entries: &[AccessEntry]) -> usize {
        match &self.replica {
            // One chain: sequence numbers fall as entries get older.
            None => entries.iter().position(|a| a.seq < self.seq).unwrap_or(entries.len()),
            Some(replica) => entries
                .iter()
                .position(|a| a.seq == self.seq && a.replica.as_ref() == Some(replica))
                .map_or(entries.len(), |i| i + 1),
        }
    }
}

fn access_json(entry: &AccessEntry, reader: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(entry).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("own_read".into(), is_own(entry, reader).into());
    }
    value
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line
/// break. A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@`,
/// tab, carriage return first) is prefixed with `'`, as callers choose some
/// of this text (purposes, names).
use creditgate_engine::encode::csv_text as csv_field;

fn csv_line(out: &mut String, fields: &[&str]) {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

fn time_text(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn query_text(query: &RecordedQuery) -> String {
    match query {
        RecordedQuery::Sql(sql) => sql.clone(),
        RecordedQuery::Prepared { statement, parameters } => {
            format!("{statement} -- prepared; {} parameter row(s)", parameters.len())
        }
        RecordedQuery::Lookup(v) | RecordedQuery::Event(v) => v.to_string(),
        RecordedQuery::Request(text) => text.clone(),
        RecordedQuery::StreamEnd(seq) => format!("end of the stream of record {seq}"),
    }
}

/// Records as CSV: one line per record, times in UTC (RFC 3339).
fn records_csv(records: &[AuditRecord], reader: &str) -> String {
    let mut out = String::new();
    csv_line(
        &mut out,
        &[
            "seq",
            "time_utc",
            "caller",
            "caller_fingerprint",
            "organization",
            "role",
            "frontend",
            "purpose",
            "legal_basis",
            "datasets",
            "outcome",
            "row_count",
            "refusal_reason",
            "own_read",
            "query",
        ],
    );
    for r in records {
        let frontend = serde_json::to_value(r.frontend).ok().and_then(|v| v.as_str().map(str::to_owned));
        csv_line(
            &mut out,
            &[
                &r.seq.to_string(),
                &time_text(&r.time),
                &r.caller.name,
                &r.caller.fingerprint,
                &r.caller.organization,
                &r.caller.role,
                frontend.as_deref().unwrap_or(""),
                r.purpose.as_deref().unwrap_or(""),
                r.legal_basis.as_deref().unwrap_or(""),
                &r.datasets.join(";"),
                r.outcome.as_str(),
                &r.row_count.map(|n| n.to_string()).unwrap_or_default(),
                r.refusal_reason.as_deref().unwrap_or(""),
                if r.is_own_read(reader) { "true" } else { "false" },
                &query_text(&r.query),
            ],
        );
    }
    out
}

/// A subject report page as CSV: one line per access, the disclosed fields
/// as `dataset.column:mask` separated by `;`.
fn report_csv(entries: &[AccessEntry], reader: &str) -> String {
    let mut out = String::new();
    csv_line(
        &mut out,
        &[
            "seq",
            "time_utc",
            "caller",
            "organization",
            "role",
            "frontend",
            "purpose",
            "legal_basis",
            "datasets",
            "fields",
            "outcome",
            "refusal_reason",
            "own_read",
        ],
    );
    for a in entries {
        let frontend = serde_json::to_value(a.frontend).ok().and_then(|v| v.as_str().map(str::to_owned));
        let fields: Vec<String> = a.columns.iter().map(|c| format!("{}.{}:{}", c.dataset, c.column, c.mask)).collect();
        csv_line(
            &mut out,
            &[
                &a.seq.to_string(),
                &time_text(&a.time),
                &a.caller_name,
                &a.organization,
                &a.role,
                frontend.as_deref().unwrap_or(""),
                a.purpose.as_deref().unwrap_or(""),
                a.legal_basis.as_deref().unwrap_or(""),
                &a.datasets.join(";"),
                &fields.join(";"),
                a.outcome.as_str(),
                a.refusal_reason.as_deref().unwrap_or(""),
                if is_own(a, reader) { "true" } else { "false" },
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_json_or_csv_and_refuses_the_rest() {
        let records = "/v1/audit/records";
        let report = "/v1/audit/subjects/x/report";
        assert_eq!(negotiate(records, None).ok(), Some(Format::Json));
        assert_eq!(negotiate(records, Some("text/csv")).ok(), Some(Format::Csv));
        assert_eq!(negotiate(report, Some("text/csv; charset=utf-8")).ok(), Some(Format::Csv));
        assert_eq!(negotiate(records, Some("text/csv;q=0, application/json")).ok(), Some(Format::Json));
        assert_eq!(negotiate(records, Some("text/html, */*;q=0.8")).ok(), Some(Format::Json));
        assert!(matches!(
            negotiate(records, Some("application/xml")),
            Err(GatewayError::NotAcceptable { offered: "application/json or text/csv", .. })
        ));
        assert!(matches!(
            negotiate("/v1/audit/stats", Some("text/csv")),
            Err(GatewayError::NotAcceptable { offered: "application/json", .. })
        ));
        assert_eq!(negotiate("/console", Some("text/html")).ok(), Some(Format::Json));
    }
}
