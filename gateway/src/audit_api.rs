//! The privacy-officer API (`/v1/audit/…`) and the console page (`/console`).
//!
//! Only principals with role `privacy_officer` get in. Reading the audit log
//! is itself an access and is audited. Subjects are searched by their raw
//! identifier, which is validated and hashed here; the log holds only hashes.

use std::collections::BTreeMap;
use std::sync::Arc;

use creditgate_audit::{AuditQuery, NewRecord, Outcome, RecordedQuery, StatsQuery, SubjectKey};
use creditgate_ident::{CreditCode, ResidentId};
use creditgate_policy::Role;
use http::{Method, Response, StatusCode};

use crate::error::GatewayError;
use crate::gateway::{Caller, Gateway};
use crate::http::{Body, json_response, text_response};

/// The console page, embedded in the binary.
pub const CONSOLE_HTML: &str = include_str!("../console/index.html");

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

fn query_params(query: Option<&str>) -> BTreeMap<String, String> {
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
    match ResidentId::parse(raw) {
        Ok(id) => Ok(SubjectKey::ResidentId(id.as_str().to_string())),
        Err(id_error) => {
            let code_error = CreditCode::parse(raw).err().map(|e| e.to_string()).unwrap_or_default();
            Err(GatewayError::BadRequest(format!(
                "subject: not a valid unified social credit code ({code_error}) nor resident ID ({id_error})"
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

fn require_officer(caller: &Caller) -> Result<(), GatewayError> {
    if caller.principal.role == Role::PrivacyOfficer {
        Ok(())
    } else {
        Err(GatewayError::PolicyRefused(format!(
            "the audit API and console are for privacy officers; {} has role {}",
            caller.principal.name,
            caller.principal.role.as_str()
        )))
    }
}

/// Routes `/v1/audit/…` and `/console` for an authenticated caller.
pub async fn route(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Response<Body>, GatewayError> {
    if method != Method::GET {
        return Err(GatewayError::MethodNotAllowed(format!("{method} {path}")));
    }
    if let Err(refusal) = require_officer(caller) {
        gateway.audit_api_access(caller, path, None, Vec::new(), Some(&refusal)).await?;
        return Err(refusal);
    }
    let params = query_params(query);
    let log = Arc::clone(gateway.auditor().log());
    let blocking = |f: Box<dyn FnOnce() -> Result<serde_json::Value, GatewayError> + Send>| async move {
        tokio::task::spawn_blocking(f).await.map_err(|e| GatewayError::Internal(format!("audit task: {e}")))?
    };
    let audit_error = |e: creditgate_audit::AuditError| GatewayError::Internal(format!("audit log: {e}"));
    let mut subjects = Vec::new();
    let body = match path {
        "/console" => {
            gateway.audit_api_access(caller, path, None, subjects, None).await?;
            return Ok(text_response("text/html; charset=utf-8", CONSOLE_HTML.to_string()));
        }
        "/v1/audit/verify" => {
            blocking(Box::new(move || Ok(serde_json::to_value(log.verify()).unwrap_or_default()))).await?
        }
        "/v1/audit/records" => {
            let subject_hash = match params.get("subject").filter(|s| !s.is_empty()) {
                Some(raw) => {
                    let hash = gateway.auditor().hasher().hash(&subject_key(raw)?);
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
            let search = AuditQuery {
                caller: text("caller"),
                organization: text("organization"),
                purpose: text("purpose"),
                outcome,
                dataset: text("dataset"),
                from: time_param(&params, "from")?,
                to: time_param(&params, "to")?,
                subject_hash,
                offset: number_param(&params, "offset", 0)?,
                limit: number_param(&params, "limit", 50)?,
            };
            blocking(Box::new(move || {
                let page = log.search(&search).map_err(audit_error)?;
                Ok(serde_json::json!({"total": page.total, "offset": page.offset, "limit": page.limit, "items": page.items}))
            }))
            .await?
        }
        "/v1/audit/stats" => {
            let today = chrono::Utc::now().date_naive();
            // Statistics are per day, both ends inclusive.
            let from = time_param(&params, "from")?.map(|t| t.date_naive()).unwrap_or(today - chrono::Days::new(30));
            let to = match time_param(&params, "to")? {
                // `to` is an exclusive end: at midnight, the day before is the last.
                Some(t) if t.time() == chrono::NaiveTime::MIN => t.date_naive().pred_opt().unwrap_or(today),
                Some(t) => t.date_naive(),
                None => today,
            };
            if from > to {
                return Err(GatewayError::BadRequest("from: must not be after to".into()));
            }
            let stats = StatsQuery { from, to, flag_rule: Default::default() };
            blocking(Box::new(move || {
                Ok(serde_json::to_value(log.stats(&stats).map_err(audit_error)?).unwrap_or_default())
            }))
            .await?
        }
        p if p.starts_with("/v1/audit/subjects/") && p.ends_with("/report") => {
            let raw = percent_decode(&p["/v1/audit/subjects/".len()..p.len() - "/report".len()]);
            let key = subject_key(&raw)?;
            let kind = match key {
                SubjectKey::CreditCode(_) => "credit_code",
                SubjectKey::ResidentId(_) => "resident_id",
            };
            let hash = gateway.auditor().hasher().hash(&key);
            subjects.push(hash.clone());
            let h = hash.clone();
            blocking(Box::new(move || {
                let accesses = log.subject_report(&h).map_err(audit_error)?;
                Ok(serde_json::json!({"subject": {"type": kind, "hash": h}, "accesses": accesses}))
            }))
            .await?
        }
        other => return Err(GatewayError::NotFound(other.chars().take(200).collect())),
    };
    let mut filters = params;
    filters.remove("subject");
    gateway.audit_api_access(caller, path, Some(filters), subjects, None).await?;
    Ok(json_response(StatusCode::OK, body))
}

impl Gateway {
    /// Audits an access to the audit API itself: the path (identifiers in it
    /// replaced by their keyed hashes) and the search filters (the subject
    /// filter only as its hash, in `subject_hashes`).
    pub async fn audit_api_access(
        &self,
        caller: &Caller,
        path: &str,
        filters: Option<BTreeMap<String, String>>,
        subject_hashes: Vec<String>,
        refusal: Option<&GatewayError>,
    ) -> Result<(), GatewayError> {
        let path = self.auditor().redact_text(path);
        let query = match filters {
            Some(filters) if !filters.is_empty() => serde_json::json!({"audit_api": path, "filters": filters}),
            _ => serde_json::json!({"audit_api": path}),
        };
        let record = NewRecord {
            legal_basis: Some("oversight".to_string()),
            subject_hashes,
            outcome: if refusal.is_some() { Outcome::Refused } else { Outcome::Allowed },
            refusal_reason: refusal.map(|e| format!("{}: {}", e.code().code, e.client_message())),
            ..caller.record_of(RecordedQuery::Lookup(query))
        };
        self.record(caller, record).await.map(|_| ())
    }
}
