//! The public listener's router: server TLS only, no client certificate,
//! the policy's `public` principal. `GET /public/v1/enterprises/{code}` is
//! the disclosure page (see `creditgate_ops::public`); `/healthz` and
//! `/openapi.json` are operational.

use std::sync::Arc;

use creditgate_engine::{Engine, GatewayError};
use creditgate_ops::public::ENTERPRISE_PATH;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::http::{Body, OPENAPI, empty_response, json_response, text_response};

/// Routes a request on the public listener.
pub async fn route(engine: &Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let path = req.uri().path().to_string();
    match (path.as_str(), req.method()) {
        ("/healthz", &Method::GET) => Ok(json_response(StatusCode::OK, serde_json::json!({"status": "ok"}))),
        ("/openapi.json", &Method::GET) => Ok(text_response("application/json", OPENAPI.to_string())),
        ("/favicon.ico", &Method::GET) => Ok(empty_response(StatusCode::NO_CONTENT)),
        (p, &Method::GET) if p.starts_with(ENTERPRISE_PATH) => {
            let caller = engine.public_caller()?;
            let span = caller.span();
            let raw = creditgate_ops::officer::percent_decode(&p[ENTERPRISE_PATH.len()..]);
            let body = creditgate_ops::public::enterprise(engine, caller, &raw).instrument(span).await?;
            Ok(json_response(StatusCode::OK, body))
        }
        (p, _) if p.starts_with(ENTERPRISE_PATH) => {
            Err(GatewayError::MethodNotAllowed(format!("{} {}", req.method(), ENTERPRISE_PATH)))
        }
        (p, _) => Err(GatewayError::NotFound(engine.auditor().redact_text(&p.chars().take(200).collect::<String>()))),
    }
}
