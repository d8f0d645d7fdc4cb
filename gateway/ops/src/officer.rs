//! The privacy-officer API (`/v1/audit/…`) and the console page (`/console`).
//!
//! Only principals with role `privacy_officer` get in (the permit's
//! operation `audit_read`). Reading the audit log is itself an access and is
//! audited. Subjects are searched by their raw identifier, which is
//! validated and hashed here; the log holds only hashes. Unknown parameters
//! are refused by name, so a misspelt filter never returns every record.

use std::collections::BTreeMap;
use std::sync::Arc;

use creditgate_audit::{AuditQuery, Outcome, RecordedQuery, StatsQuery, SubjectKey};
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
    /// The console page (the server serves it).
    Console,
}

/// The parameters each endpoint accepts.
fn accepted(path: &str) -> &'static [&'static str] {
    match path {
        "/v1/audit/records" => {
            &["caller", "organization", "purpose", "outcome", "dataset", "from", "to", "subject", "offset", "limit"]
        }
        "/v1/audit/stats" => &["from", "to"],
        _ => &[],
    }
}

/// A request of the officer API, read before authorization.
enum Request {
    Console,
    Verify,
    Records(Box<AuditQuery>),
    Stats(StatsQuery),
    Report { kind: &'static str, hash: String },
}

fn read_request(
    engine: &Engine,
    path: &str,
    params: &BTreeMap<String, String>,
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
        p if p.starts_with("/v1/audit/subjects/") && p.ends_with("/report") => {
            let raw = percent_decode(&p["/v1/audit/subjects/".len()..p.len() - "/report".len()]);
            let key = subject_key(&raw)?;
            let kind = match key {
                SubjectKey::CreditCode(_) => "credit_code",
                SubjectKey::ResidentId(_) => "resident_id",
                SubjectKey::Mobile(_) => "mobile",
            };
            let hash = engine.auditor().hasher().hash(&key);
            subjects.push(hash.clone());
            Request::Report { kind, hash }
        }
        other => return Err(GatewayError::NotFound(other.chars().take(200).collect())),
    })
}

/// Serves `GET /v1/audit/…` and `GET /console` for `caller`: reads the
/// request (parameters checked), asks for an `audit_read` permit, answers,
/// and records the access with its filters (the subject filter only as its
/// keyed hash). `path` is the decoded path.
pub async fn serve(
    engine: &Engine,
    caller: Caller,
    purpose: Option<String>,
    path: &str,
    query: Option<&str>,
) -> Result<Answer, GatewayError> {
    let params = query_params(query);
    let mut subjects = Vec::new();
    let read = read_request(engine, path, &params, &mut subjects);
    let mut filters = params;
    filters.remove("subject");
    let recorded_path = engine.auditor().redact_text(path);
    let what = match &read {
        Ok(Request::Records(_) | Request::Stats(_)) if !filters.is_empty() => {
            serde_json::json!({"audit_api": recorded_path, "filters": filters})
        }
        _ => serde_json::json!({"audit_api": recorded_path}),
    };
    let request = match read {
        Ok(request) => request,
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
        Request::Verify => {
            blocking(Box::new(move || Ok(serde_json::to_value(log.verify()).unwrap_or_default()))).await.map(Answer::Json)
        }
        Request::Records(search) => blocking(Box::new(move || {
            let page = log.search(&search).map_err(audit_error)?;
            Ok(serde_json::json!({"total": page.total, "offset": page.offset, "limit": page.limit, "items": page.items}))
        }))
        .await
        .map(Answer::Json),
        Request::Stats(stats) => blocking(Box::new(move || {
            Ok(serde_json::to_value(log.stats(&stats).map_err(audit_error)?).unwrap_or_default())
        }))
        .await
        .map(Answer::Json),
        Request::Report { kind, hash } => blocking(Box::new(move || {
            let accesses = log.subject_report(&hash).map_err(audit_error)?;
            Ok(serde_json::json!({"subject": {"type": kind, "hash": hash}, "accesses": accesses}))
        }))
        .await
        .map(Answer::Json),
    };
    match answer {
        Ok(answer) => {
            permit.allow(Disclosure::default()).await?;
            Ok(answer)
        }
        Err(error) => Err(permit.refuse(error).await),
    }
}
