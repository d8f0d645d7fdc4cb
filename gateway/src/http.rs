//! The HTTP/JSON front end (hyper over our rustls listener).
//!
//! Routes: `POST /v1/query`, `GET /healthz`, `GET /metrics`, `GET /openapi.json`.
//! Identity comes only from the verified client certificate of the connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use creditgate_certs::tls::{ConnInfo, TlsConn};
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::sync::watch;
use tracing::Instrument;

use crate::error::GatewayError;
use crate::gateway::{Caller, Frontend, Gateway};

/// The committed OpenAPI document.
pub const OPENAPI: &str = include_str!("../openapi.json");
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Serves HTTP on the TLS connections of `incoming` until `stop` turns true.
pub async fn serve<S>(
    gateway: Arc<Gateway>,
    incoming: S,
    mut stop: watch::Receiver<bool>,
    frontend: Frontend,
) -> Result<(), GatewayError>
where
    S: Stream<Item = Result<TlsConn, std::io::Error>> + Send + 'static,
{
    let mut incoming = Box::pin(incoming);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            next = incoming.next() => {
                let Some(Ok(conn)) = next else {
                    if next.is_none() { break } else { continue }
                };
                let gateway = Arc::clone(&gateway);
                let mut stop = stop.clone();
                connections.spawn(async move {
                    let info = conn.info().clone();
                    let service = hyper::service::service_fn(move |req| {
                        let gateway = Arc::clone(&gateway);
                        let info = info.clone();
                        async move { Ok::<_, Infallible>(handle(gateway, info, req, frontend).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection(TokioIo::new(conn), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(e) = result {
                                tracing::debug!(error = %e, "http connection ended with an error");
                            }
                        }
                        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        }
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn handle(gateway: Arc<Gateway>, info: ConnInfo, req: Request<Incoming>, frontend: Frontend) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let result = match frontend {
        Frontend::Public => crate::public::route(&gateway, req).await,
        Frontend::Http | Frontend::Flight => route(&gateway, &info, req).await,
    };
    match result {
        Ok(response) => response,
        Err(error) => {
            let code = error.code();
            gateway.metrics().request(frontend.label(), code.code, started.elapsed());
            tracing::debug!(%method, %path, "http request failed");
            error_response(&error)
        }
    }
}

fn purpose_header(req: &Request<Incoming>) -> Option<String> {
    req.headers().get(crate::gateway::PURPOSE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string)
}

async fn route(
    gateway: &Arc<Gateway>,
    info: &ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if (path.as_str(), &method) == ("/openapi.json", &Method::GET) {
        return Ok(text_response("application/json", OPENAPI.to_string()));
    }
    let purpose = purpose_header(&req);
    let caller = gateway.authenticate(Some(info), Frontend::Http, purpose).await?;
    let span = crate::gateway::request_span(&caller);
    let result = dispatch(gateway, caller.clone(), req, &method, &path).instrument(span).await;
    // Every request leaves a record: one refused before its own record was
    // written (a malformed body, an unknown route, a bad parameter) gets one here.
    if let Err(error) = &result {
        let what = creditgate_audit::RecordedQuery::Request(format!(
            "{method} {}",
            gateway.auditor().redact_text(&crate::audit_api::percent_decode(&path))
        ));
        gateway.audit_unrecorded(&caller, what, error).await?;
    }
    result
}

/// The routes of the mTLS HTTP listener, for an authenticated caller.
/// `/healthz` and `/metrics` are operational and release no data; they are
/// not audited when they succeed.
async fn dispatch(
    gateway: &Arc<Gateway>,
    mut caller: Caller,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, GatewayError> {
    match (path, method) {
        ("/healthz", &Method::GET) => Ok(json_response(StatusCode::OK, health(gateway))),
        ("/metrics", &Method::GET) => Ok(text_response("text/plain; version=0.0.4", gateway.metrics().render())),
        ("/v1/catalog", &Method::GET) => {
            let what = creditgate_audit::RecordedQuery::Request(format!("{method} {path}"));
            gateway.audit_allowed(&caller, what).await?;
            Ok(json_response(StatusCode::OK, catalog(gateway, &caller)))
        }
        ("/v1/query", &Method::POST) => query(gateway, caller, req).await,
        (p, _) if p == "/console" || p.starts_with("/v1/audit/") => {
            crate::audit_api::route(gateway, &caller, method, p, req.uri().query()).await
        }
        ("/v1/lookup", &Method::POST) => {
            let request: crate::lookup::LookupRequest = read_json(
                req,
                "{\"subject\": {\"type\": \"credit_code\"|\"resident_id\", \"id\": \"…\"}, \"purpose\": \"…\"}",
            )
            .await?;
            if request.purpose.is_some() {
                caller.purpose = request.purpose.clone();
            }
            let document = gateway.lookup(&caller, request).await?;
            Ok(json_response(StatusCode::OK, document))
        }
        (p, m) if p.starts_with("/v1/consents/") => {
            let rest = &p["/v1/consents/".len()..];
            match (rest.strip_suffix("/revoke"), m) {
                (Some(id), &Method::POST) => {
                    let id = crate::audit_api::percent_decode(id);
                    let body = read_body(req).await?;
                    // An optional body: `{"consent": {…signed artefact…}}`.
                    let presented = if body.iter().all(u8::is_ascii_whitespace) {
                        None
                    } else {
                        let shape = "(optional) {\"consent\": {…the signed consent artefact…}}";
                        json_object::<RevokeRequest>(&body, shape)?.consent
                    };
                    Ok(json_response(StatusCode::OK, gateway.revoke_consent(&caller, &id, presented.as_ref()).await?))
                }
                (None, &Method::GET) if !rest.contains('/') => {
                    let id = crate::audit_api::percent_decode(rest);
                    Ok(json_response(StatusCode::OK, gateway.consent_status(&caller, &id).await?))
                }
                _ => Err(GatewayError::MethodNotAllowed(format!("{m} {p}"))),
            }
        }
        ("/healthz" | "/metrics" | "/openapi.json" | "/v1/query" | "/v1/catalog" | "/v1/lookup", _) => {
            Err(GatewayError::MethodNotAllowed(format!("{method} {path}")))
        }
        (path, _) => Err(GatewayError::NotFound(path.chars().take(200).collect())),
    }
}

fn health(gateway: &Gateway) -> serde_json::Value {
    let available: Vec<String> = gateway.federation().available().into_iter().map(|(d, _)| d.name).collect();
    let missing: Vec<&str> = gateway
        .federation()
        .datasets()
        .iter()
        .filter(|d| !available.contains(&d.name))
        .map(|d| d.name.as_str())
        .collect();
    serde_json::json!({
        "status": if missing.is_empty() { "ok" } else { "degraded" },
        "datasets_available": available.len(),
        "datasets_unavailable": missing,
    })
}

/// Body of `POST /v1/consents/{id}/revoke` (optional): the signed consent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    #[serde(default)]
    consent: Option<serde_json::Value>,
}

/// Body of `POST /v1/query`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    sql: String,
    #[serde(default)]
    purpose: Option<String>,
}

/// The response formats of `/v1/query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    fn from_accept(accept: Option<&HeaderValue>) -> Result<Self, GatewayError> {
        let Some(value) = accept.and_then(|v| v.to_str().ok()) else { return Ok(Format::Json) };
        for part in value.split(',') {
            let media = part.split(';').next().unwrap_or("").trim();
            match media {
                "application/json" | "*/*" | "application/*" | "" => return Ok(Format::Json),
                "text/csv" | "text/*" => return Ok(Format::Csv),
                "application/vnd.apache.arrow.stream" => return Ok(Format::Arrow),
                _ => {}
            }
        }
        Err(GatewayError::NotAcceptable(value.chars().take(100).collect()))
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Arrow => "application/vnd.apache.arrow.stream",
        }
    }
}

/// How much of an oversized body is read and thrown away before the refusal
/// is sent, so a client still writing its body gets to read the answer
/// instead of a reset connection ("lingering close").
const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// How long an oversized body is drained at most.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads a request body of at most [`MAX_BODY_BYTES`]. An oversized body is
/// refused; the rest of it is drained (bounded in bytes and time, nothing
/// kept) first, so the client can read the refusal.
pub(crate) async fn read_body(req: Request<Incoming>) -> Result<Bytes, GatewayError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        GatewayError::BadRequest(format!(
            "the request body is larger than the limit of {MAX_BODY_BYTES} bytes; send shorter SQL or fewer datasets"
        ))
    };
    let mut body = req.into_body();
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        drain(body).await;
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::BadRequest(format!("cannot read the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > MAX_BODY_BYTES {
                drain(body).await;
                return Err(too_large());
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

/// Reads and discards what is left of `body`, up to [`DRAIN_BYTES`] and
/// [`DRAIN_FOR`]; whatever remains after that is cut off with the connection.
async fn drain(mut body: Incoming) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// Reads a JSON object request body of at most [`MAX_BODY_BYTES`]. Only a
/// JSON object is accepted (serde would otherwise take an array as the
/// struct's fields in order).
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
    shape: &str,
) -> Result<T, GatewayError> {
    json_object(&read_body(req).await?, shape)
}

/// Parses `body` as a JSON object of type `T` (see [`read_json`]).
fn json_object<T: serde::de::DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, GatewayError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(GatewayError::BadRequest(format!("body must be JSON: an object {shape}")));
    }
    serde_json::from_slice(body).map_err(|e| GatewayError::BadRequest(format!("body must be JSON {shape}: {e}")))
}

async fn query(
    gateway: &Arc<Gateway>,
    mut caller: Caller,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let format = Format::from_accept(req.headers().get(header::ACCEPT))?;
    let request: QueryRequest = read_json(req, "{\"sql\": \"…\", \"purpose\": \"…\"}").await?;
    if request.purpose.is_some() {
        caller.purpose = request.purpose;
    }
    let mut stream = gateway.query(&caller, &request.sql).await?;
    // Wait for the first batch before committing to a status code, so a
    // failing source still gets a proper HTTP error.
    let first = match stream.next().await {
        Some(Ok(batch)) => Some(batch),
        Some(Err(e)) => return Err(GatewayError::from_datafusion(e, false)),
        None => None,
    };
    let schema = stream.schema();
    let body = encode(format, schema, first, stream)?;
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    if let Ok(id) = HeaderValue::from_str(&caller.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    Ok(response)
}

fn encode(
    format: Format,
    schema: SchemaRef,
    first: Option<RecordBatch>,
    rest: SendableRecordBatchStream,
) -> Result<Body, GatewayError> {
    let target = creditgate_flight::normalize_schema(&schema);
    let batches = futures::stream::iter(first.map(Ok)).chain(rest);
    let mut encoder = crate::encode::Encoder::new(format_kind(format), Arc::clone(&target))?;
    let head = encoder.head();
    let tail_encoder = Arc::new(std::sync::Mutex::new(encoder));
    let body_encoder = Arc::clone(&tail_encoder);
    let chunks = batches.map(move |item| {
        let mut encoder = body_encoder.lock().unwrap_or_else(|p| p.into_inner());
        match item.and_then(|b| Ok(creditgate_flight::normalize_batch(b, &target)?)) {
            Ok(batch) => encoder.batch(&batch),
            Err(e) => {
                let error = GatewayError::from_datafusion(e, false);
                error.log();
                encoder.failure(&error)
            }
        }
    });
    let tail = futures::stream::once(async move {
        let mut encoder = tail_encoder.lock().unwrap_or_else(|p| p.into_inner());
        Ok(encoder.finish())
    });
    let stream = futures::stream::once(async move { Ok(head) })
        .chain(chunks)
        .chain(tail)
        .map(|chunk: Result<Bytes, std::io::Error>| chunk.map(Frame::data));
    Ok(BodyExt::boxed_unsync(StreamBody::new(stream)))
}

fn format_kind(format: Format) -> crate::encode::Kind {
    match format {
        Format::Json => crate::encode::Kind::Json,
        Format::Csv => crate::encode::Kind::Csv,
        Format::Arrow => crate::encode::Kind::Arrow,
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|never: Infallible| match never {}).boxed_unsync()
}

pub(crate) fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn text_response(content_type: &'static str, text: String) -> Response<Body> {
    let mut response = Response::new(full(text));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /v1/catalog`: exactly which datasets and columns the caller may see, and how each is masked.
fn catalog(gateway: &Gateway, caller: &Caller) -> serde_json::Value {
    let policy = gateway.policy();
    let available: std::collections::BTreeSet<String> =
        gateway.federation().available().into_iter().map(|(d, _)| d.name).collect();
    let datasets: Vec<serde_json::Value> = policy
        .grants_for(&caller.principal)
        .iter()
        .map(|grant| {
            serde_json::json!({
                "name": grant.dataset,
                "available": available.contains(&grant.dataset),
                "columns": grant.columns.iter().map(|c| serde_json::json!({
                    "name": c.name, "class": c.class.as_str(), "mask": c.mask.to_string(),
                })).collect::<Vec<_>>(),
                "row_filters": grant.row_filters.iter().map(|f| f.sql.clone()).collect::<Vec<_>>(),
                "retention": grant.negative.as_ref().map(|n| serde_json::json!({
                    "end_date_column": n.end_date, "years": n.retention_years,
                })),
                "dispute_column": grant.dispute_column,
            })
        })
        .collect();
    serde_json::json!({
        "principal": caller.principal.name,
        "organization": caller.principal.organization,
        "role": caller.principal.role.as_str(),
        "purposes": caller.principal.purposes,
        "datasets": datasets,
    })
}

/// The JSON error body: `{"error": {"code", "message", "retryable"}}`.
pub fn error_response(error: &GatewayError) -> Response<Body> {
    error.log();
    let code = error.code();
    let status = StatusCode::from_u16(code.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(
        status,
        serde_json::json!({"error": {"code": code.code, "message": error.client_message(), "retryable": code.retryable}}),
    );
    if let GatewayError::RateLimited { retry_after_secs, .. } = error {
        if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}
