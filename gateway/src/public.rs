//! The public disclosure window: server TLS only, no client certificate, the
//! policy's `public` principal. `GET /public/v1/enterprises/{credit-code}`
//! returns an enterprise's public registration, its public penalties and its
//! red/black list status.

use std::sync::Arc;

use creditgate_audit::{RecordedQuery, SubjectKey};
use creditgate_ident::CreditCode;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::encode::batches_to_json;
use crate::error::GatewayError;
use crate::gateway::{Caller, Gateway};
use crate::http::{Body, OPENAPI, json_response, text_response};

/// Path prefix of the enterprise disclosure endpoint.
pub const ENTERPRISE_PATH: &str = "/public/v1/enterprises/";

/// Routes a request on the public listener.
pub async fn route(gateway: &Arc<Gateway>, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let path = req.uri().path().to_string();
    match (path.as_str(), req.method()) {
        ("/healthz", &Method::GET) => Ok(json_response(StatusCode::OK, serde_json::json!({"status": "ok"}))),
        ("/openapi.json", &Method::GET) => Ok(text_response("application/json", OPENAPI.to_string())),
        (p, &Method::GET) if p.starts_with(ENTERPRISE_PATH) => {
            let caller = gateway.public_caller()?;
            let span = crate::gateway::request_span(&caller);
            let result = enterprise(gateway, &caller, &p[ENTERPRISE_PATH.len()..]).instrument(span).await;
            // A refusal before the disclosure's own record (a bad credit code) is recorded too.
            if let Err(error) = &result {
                let what = RecordedQuery::Request(format!(
                    "GET {}",
                    gateway.auditor().redact_text(&crate::audit_api::percent_decode(p))
                ));
                gateway.audit_unrecorded(&caller, what, error).await?;
            }
            result
        }
        (p, _) if p.starts_with(ENTERPRISE_PATH) => {
            Err(GatewayError::MethodNotAllowed(format!("{} {p}", req.method())))
        }
        (p, _) => Err(GatewayError::NotFound(p.chars().take(200).collect())),
    }
}

async fn enterprise(gateway: &Arc<Gateway>, caller: &Caller, raw: &str) -> Result<Response<Body>, GatewayError> {
    let raw = crate::audit_api::percent_decode(raw);
    // Validate before anything else: nothing is sent to any source for a bad code.
    let code = CreditCode::parse(&raw).map_err(|e| GatewayError::BadRequest(format!("credit_code: {e}")))?;
    let code = code.as_str();
    let hash = gateway.auditor().hasher().hash(&SubjectKey::CreditCode(code.to_string()));
    let parts = vec![
        ("enterprise".to_string(), format!("SELECT * FROM market.enterprises WHERE credit_code = '{code}'")),
        (
            "penalties".to_string(),
            format!("SELECT * FROM market.penalties WHERE credit_code = '{code}' ORDER BY decision_date DESC"),
        ),
        ("red_list".to_string(), format!("SELECT * FROM credit_platform.red_list WHERE credit_code = '{code}'")),
        ("black_list".to_string(), format!("SELECT * FROM credit_platform.black_list WHERE credit_code = '{code}'")),
    ];
    let query = RecordedQuery::Lookup(serde_json::json!({
        "endpoint": "public enterprise disclosure",
        "subject": {"type": "credit_code", "hash": hash},
    }));
    let results = gateway.collect_audited(caller, &parts, query, vec![hash]).await?;
    let mut body = serde_json::Map::new();
    body.insert("credit_code".into(), code.into());
    for (label, batches) in &results {
        let rows = batches_to_json(batches)?;
        match label.as_str() {
            "enterprise" => {
                let Some(first) = rows.into_iter().next() else {
                    return Err(GatewayError::NotFound(format!("no enterprise is registered with credit code {code}")));
                };
                body.insert("enterprise".into(), first);
            }
            "red_list" | "black_list" => {
                body.insert(format!("on_{label}"), (!rows.is_empty()).into());
                body.insert(label.clone(), rows.into());
            }
            _ => {
                body.insert(label.clone(), rows.into());
            }
        }
    }
    Ok(json_response(StatusCode::OK, serde_json::Value::Object(body)))
}
