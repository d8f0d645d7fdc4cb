//! The error boundary: how a [`GatewayError`] leaves the gateway, on gRPC
//! and on HTTP. The code, status and retryability come from the one table in
//! [`GatewayError::code`]; the message from [`GatewayError::client_message`]
//! (refusals say why; failures carry a fixed text or a reference id). Each
//! error is logged here, at the level its class deserves.

use http::{HeaderValue, StatusCode, header};
use tonic::Status;

use creditgate_engine::GatewayError;

use crate::http::{Body, json_response};

/// The gRPC status of `error` (Flight SQL): `<code>: <message>`, with the
/// code also in `x-creditgate-error-code` and the wait in `retry-after`.
pub fn status(error: GatewayError) -> Status {
    error.log();
    let code = error.code();
    let mut status = Status::new(code.grpc, format!("{}: {}", code.code, error.client_message()));
    if let Ok(value) = code.code.parse() {
        status.metadata_mut().insert("x-creditgate-error-code", value);
    }
    if let Some(wait) = error.retry_after_secs()
        && let Ok(value) = wait.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// The HTTP response of `error`: `{"error": {"code", "message", "retryable"}}`
/// with the table's status, and `Retry-After` when it applies.
pub fn error_response(error: &GatewayError) -> http::Response<Body> {
    error.log();
    let code = error.code();
    let status = StatusCode::from_u16(code.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(
        status,
        serde_json::json!({"error": {"code": code.code, "message": error.client_message(), "retryable": code.retryable}}),
    );
    if let Some(wait) = error.retry_after_secs()
        && let Ok(value) = HeaderValue::from_str(&wait.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The same refusal as [`error_response`], as a plain HTML page for a
/// browser (the console opened with a certificate that is not a privacy
/// officer's, for example): the code, the reason, in Chinese and English.
/// Same status and `x-creditgate-error-code`; nothing is run in the page.
pub fn error_page(error: &GatewayError) -> http::Response<Body> {
    error.log();
    let code = error.code();
    let status = StatusCode::from_u16(code.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (zh, en) = match status.as_u16() {
        401 => ("未能识别您的身份", "You could not be identified"),
        403 => ("无权访问", "Access refused"),
        404 => ("页面不存在", "Not found"),
        429 => ("请求过于频繁", "Too many requests"),
        400..=499 => ("请求有误", "The request was refused"),
        _ => ("服务暂时不可用", "The gateway could not answer"),
    };
    let page = format!(
        "<!doctype html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{zh} · {en} — creditgate</title>\n\
         <style>body{{font:15px/1.5 system-ui,\"Noto Sans\",\"WenQuanYi Zen Hei\",sans-serif;margin:0;background:#f4f6f9;color:#1c2430}}\
         main{{max-width:640px;margin:12vh auto;background:#fff;border:1px solid #e3e7ee;border-radius:10px;padding:24px 28px}}\
         h1{{font-size:20px;margin:0 0 4px}}h2{{font-size:15px;margin:0 0 16px;color:#667085;font-weight:500}}\
         code{{font-family:ui-monospace,monospace;background:#fdecea;color:#b42318;padding:1px 6px;border-radius:4px}}\
         p{{margin:8px 0}}.muted{{color:#667085;font-size:13px}}</style>\n</head>\n<body>\n<main>\n\
         <h1 data-testid=\"refusal-title\">{zh}</h1>\n<h2 lang=\"en\">{en}</h2>\n\
         <p><code data-testid=\"refusal-code\">{code}</code> <span data-testid=\"refusal-message\" lang=\"en\">{message}</span></p>\n\
         <p class=\"muted\">审计控制台仅供隐私保护专员使用，身份以客户端证书为准。本次访问已记入审计日志。</p>\n\
         <p class=\"muted\" lang=\"en\">The audit console is for privacy officers only; who you are comes from your \
         client certificate. This visit is in the audit log.</p>\n</main>\n</body>\n</html>\n",
        code = code.code,
        message = html_escape(&error.client_message()),
    );
    let mut response = crate::http::text_response("text/html; charset=utf-8", page);
    *response.status_mut() = status;
    if let Ok(value) = HeaderValue::from_str(code.code) {
        response.headers_mut().insert("x-creditgate-error-code", value);
    }
    if let Some(wait) = error.retry_after_secs()
        && let Ok(value) = HeaderValue::from_str(&wait.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The error type the Flight front end speaks: a [`GatewayError`] whose
/// conversion to [`Status`] is [`status`].
#[derive(Debug)]
pub struct FlightError(pub GatewayError);

impl From<GatewayError> for FlightError {
    fn from(error: GatewayError) -> FlightError {
        FlightError(error)
    }
}

impl From<FlightError> for Status {
    fn from(error: FlightError) -> Status {
        status(error.0)
    }
}
