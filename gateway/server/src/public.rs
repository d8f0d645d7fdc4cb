//! The public listener's router: server TLS only, no client certificate,
//! the policy's `public` principal.
//!
//! - `GET /`: the public credit window, a page for people (search, an
//!   enterprise's sections); `GET /embed`: the query widget platforms embed
//!   on their home pages; `GET /assets/…`: their styles and scripts. All are
//!   embedded in the binary and make no request outside this origin
//!   (a `Content-Security-Policy` of `'self'` says so to the browser).
//! - `GET /public/v1/search?q=` and `GET /public/v1/enterprises/{code}`:
//!   the same data as JSON, or CSV with `format=csv` (see
//!   `creditgate_ops::public`); each request is authorized, rate-limited per
//!   client address and audited.
//! - `/healthz` and `/openapi.json` are operational.

use std::net::IpAddr;
use std::sync::Arc;

use creditgate_engine::{Engine, GatewayError};
use creditgate_ops::public::{ENTERPRISE_PATH, PageRequest, SEARCH_PATH};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tracing::Instrument;

use crate::http::{Body, OPENAPI, empty_response, json_response, text_response};

/// The public page.
pub const PAGE_HTML: &str = include_str!("../public/index.html");
/// The embeddable query widget.
pub const EMBED_HTML: &str = include_str!("../public/embed.html");
/// Styles of the page and the widget.
pub const STYLE_CSS: &str = include_str!("../public/window.css");
/// The page's script (no framework, no external request).
pub const PAGE_JS: &str = include_str!("../public/window.js");

/// Everything from this origin only; the page is not framed elsewhere.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// The widget: from this origin only, framed by any site.
const EMBED_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
     base-uri 'none'; frame-ancestors *";

/// A static asset with its security headers.
fn asset(content_type: &'static str, text: &str, csp: Option<&'static str>) -> Response<Body> {
    let mut response = text_response(content_type, text.to_string());
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(csp) = csp {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    }
    response
}

/// Routes a request on the public listener from `client`.
pub async fn route(
    engine: &Arc<Engine>,
    client: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let path = req.uri().path().to_string();
    let params = creditgate_ops::officer::query_params(req.uri().query());
    let csv = match params.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(GatewayError::BadRequest(format!(
                "format: `{}` is not json or csv",
                other.chars().take(20).collect::<String>()
            )));
        }
    };
    match (path.as_str(), req.method()) {
        ("/", &Method::GET) => Ok(asset("text/html; charset=utf-8", PAGE_HTML, Some(PAGE_CSP))),
        ("/embed", &Method::GET) => Ok(asset("text/html; charset=utf-8", EMBED_HTML, Some(EMBED_CSP))),
        ("/assets/window.css", &Method::GET) => Ok(asset("text/css; charset=utf-8", STYLE_CSS, None)),
        ("/assets/window.js", &Method::GET) => Ok(asset("text/javascript; charset=utf-8", PAGE_JS, None)),
        ("/healthz", &Method::GET) => Ok(json_response(StatusCode::OK, serde_json::json!({"status": "ok"}))),
        ("/openapi.json", &Method::GET) => Ok(text_response("application/json", OPENAPI.to_string())),
        ("/favicon.ico", &Method::GET) => Ok(empty_response(StatusCode::NO_CONTENT)),
        (SEARCH_PATH, &Method::GET) => {
            let page =
                PageRequest::parse(params.get("page").map(String::as_str), params.get("per_page").map(String::as_str))?;
            let q = params.get("q").map(String::as_str).unwrap_or("");
            let caller = engine.public_caller(client)?;
            let span = caller.span();
            let answer = creditgate_ops::public::search(engine, caller, q, page).instrument(span).await?;
            Ok(match csv {
                true => text_response("text/csv; charset=utf-8", creditgate_ops::public::search_csv(&answer)),
                false => json_response(StatusCode::OK, answer),
            })
        }
        (p, &Method::GET) if p.starts_with(ENTERPRISE_PATH) => {
            let caller = engine.public_caller(client)?;
            let span = caller.span();
            let raw = creditgate_ops::officer::percent_decode(&p[ENTERPRISE_PATH.len()..]);
            let body = creditgate_ops::public::enterprise(engine, caller, &raw).instrument(span).await?;
            Ok(match csv {
                true => text_response("text/csv; charset=utf-8", creditgate_ops::public::enterprise_csv(&body)),
                false => json_response(StatusCode::OK, body),
            })
        }
        (p, _) if p.starts_with(ENTERPRISE_PATH) => {
            Err(GatewayError::MethodNotAllowed(format!("{} {}", req.method(), ENTERPRISE_PATH)))
        }
        (SEARCH_PATH, _) => Err(GatewayError::MethodNotAllowed(format!("{} {}", req.method(), SEARCH_PATH))),
        (p, _) => Err(GatewayError::NotFound(engine.auditor().redact_text(&p.chars().take(200).collect::<String>()))),
    }
}
