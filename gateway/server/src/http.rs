//! The HTTP/JSON front end (hyper over our rustls listener).
//!
//! Routes: `POST /v1/query`, `POST /v1/lookup`, `GET /v1/catalog`,
//! `GET|POST /v1/grades/{credit_code}`, `POST /v1/grades` (a batch, NDJSON),
//! `POST /v1/grades/{request_id}/review`,
//! `GET|POST /v1/consents/…`, `GET /v1/audit/…`, `GET /console`,
//! `GET /healthz`, `GET /metrics`, `GET /openapi.json`. Identity comes only
//! from the verified client certificate of the connection; each route reads
//! its request into an intent and gets a permit from the engine (directly or
//! through an operation of the ops crate). `/healthz`, `/metrics` and
//! `/openapi.json` release no data and are not audited; nor are the files a
//! browser fetches on its own (`/favicon.ico`, `/robots.txt`,
//! `/apple-touch-icon*.png`), answered before authentication. A refused
//! `GET` from a browser (one whose `Accept` lists `text/html`) gets a plain
//! HTML page instead of the JSON error.

use std::convert::Infallible;
use std::sync::Arc;

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

use creditgate_audit::RecordedQuery;
use creditgate_engine::{Caller, Disclosure, Engine, Frontend, GatewayError, Intent, PURPOSE_HEADER};
use creditgate_policy::Operation;

use crate::boundary::error_response;

/// The committed OpenAPI document.
pub const OPENAPI: &str = include_str!("../openapi.json");
/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The body of every response.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The console page, embedded in the binary.
pub const CONSOLE_HTML: &str = include_str!("../console/index.html");

/// Serves HTTP on the TLS connections of `incoming` until `stop` turns true.
pub async fn serve<S>(
    gateway: Arc<Engine>,
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
                    // At its maximum age (or when it is cut) the server asks
                    // the connection to close: GOAWAY, in-flight requests finish.
                    let closing = info.closing();
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
                        _ = closing => {
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

async fn handle(engine: Arc<Engine>, info: ConnInfo, req: Request<Incoming>, frontend: Frontend) -> Response<Body> {
    let result = match frontend {
        Frontend::Public => crate::public::route(&engine, info.remote_addr.ip(), req).await,
        Frontend::Http | Frontend::Flight => route(&engine, &info, req).await,
    };
    result.unwrap_or_else(|error| error_response(&error))
}

fn purpose_header(req: &Request<Incoming>) -> Option<String> {
    // Exactly as received: a header that is not visible ASCII is kept as
    // lossy text, so the purpose check refuses it by name.
    req.headers().get(PURPOSE_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// How a request that is refused before it could be read is recorded: its
/// method and path, identifiers in the path replaced by keyed hashes.
fn recorded_request(engine: &Engine, method: &Method, path: &str) -> RecordedQuery {
    RecordedQuery::Request(format!(
        "{method} {}",
        engine.auditor().redact_text(&creditgate_ops::officer::percent_decode(path))
    ))
}

/// What `/robots.txt` says: nothing here is for crawlers.
pub const ROBOTS_TXT: &str = "User-agent: *\nDisallow: /\n";

/// The answer to a file a browser asks for on its own (an icon,
/// `robots.txt`): it releases nothing, so it is answered before
/// authentication and not audited (a console visit would otherwise leave a
/// refusal per icon in the log).
fn browser_asset(path: &str) -> Option<Response<Body>> {
    match path {
        "/favicon.ico" => Some(empty_response(StatusCode::NO_CONTENT)),
        "/robots.txt" => Some(text_response("text/plain; charset=utf-8", ROBOTS_TXT.to_string())),
        p if p.starts_with("/apple-touch-icon") && p.ends_with(".png") && !p[1..].contains('/') => {
            Some(empty_response(StatusCode::NOT_FOUND))
        }
        _ => None,
    }
}

/// Whether the request comes from a browser showing a page: a `GET` whose
/// `Accept` lists `text/html` (the console's own API calls ask for JSON).
fn wants_html(req: &Request<Incoming>) -> bool {
    req.method() == Method::GET
        && req.headers().get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
            v.split(',').any(|part| {
                let mut pieces = part.split(';');
                let html = pieces.next().is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"));
                html && !pieces.any(|p| {
                    p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
                })
            })
        })
}

async fn route(engine: &Arc<Engine>, info: &ConnInfo, req: Request<Incoming>) -> Result<Response<Body>, GatewayError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if method == Method::GET {
        if path == "/openapi.json" {
            return Ok(text_response("application/json", OPENAPI.to_string()));
        }
        if let Some(response) = browser_asset(&path) {
            return Ok(response);
        }
    }
    let html = wants_html(&req);
    let answer = async {
        let caller = engine.authenticate(Some(info), Frontend::Http).await?;
        let span = caller.span();
        dispatch(engine, caller, req, &method, &path).instrument(span).await
    };
    match answer.await {
        Err(error) if html => Ok(crate::boundary::error_page(&error)),
        other => other,
    }
}

/// The routes of the mTLS HTTP listener, for an authenticated caller.
async fn dispatch(
    engine: &Arc<Engine>,
    caller: Caller,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, GatewayError> {
    let purpose = purpose_header(&req);
    match (path, method) {
        ("/healthz", &Method::GET) => Ok(json_response(StatusCode::OK, health(engine))),
        ("/metrics", &Method::GET) => Ok(text_response("text/plain; version=0.0.4", engine.render_metrics())),
        ("/v1/catalog", &Method::GET) => {
            let intent = Intent::new(Operation::Catalog, purpose, RecordedQuery::Request(format!("{method} {path}")));
            let permit = engine.authorize(caller, intent).await?;
            let document = catalog(engine, permit.principal());
            permit.allow(Disclosure::default()).await?;
            Ok(json_response(StatusCode::OK, document))
        }
        ("/v1/query", &Method::POST) => query(engine, caller, purpose, req).await,
        (p, &Method::GET) if p == "/console" || p.starts_with("/v1/audit/") => {
            let decoded = creditgate_ops::officer::percent_decode(p);
            let accept: Vec<&str> =
                req.headers().get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
            let accept = (!accept.is_empty()).then(|| accept.join(","));
            let answer =
                creditgate_ops::officer::serve(engine, caller, purpose, &decoded, req.uri().query(), accept.as_deref())
                    .await;
            Ok(match answer? {
                creditgate_ops::officer::Answer::Console => {
                    text_response("text/html; charset=utf-8", CONSOLE_HTML.to_string())
                }
                creditgate_ops::officer::Answer::Json(document) => json_response(StatusCode::OK, document),
                creditgate_ops::officer::Answer::Csv(text) => text_response("text/csv; charset=utf-8", text),
            })
        }
        ("/v1/lookup", &Method::POST) => {
            let shape = "{\"subject\": {\"type\": \"credit_code\"|\"resident_id\", \"id\": \"…\"}, \"purpose\": \"…\"}";
            let request: creditgate_ops::lookup::LookupRequest = match read_json(req, shape).await {
                Ok(request) => request,
                Err(error) => {
                    let intent = Intent::new(Operation::Unroutable, purpose, recorded_request(engine, method, path));
                    return Err(engine.refuse(caller, intent, error).await);
                }
            };
            let document = creditgate_ops::lookup::lookup(engine, caller, purpose, request).await?;
            Ok(json_response(StatusCode::OK, document))
        }
        ("/v1/grades", &Method::POST) => {
            let shape = "{\"credit_codes\": [\"…\", …] or \"district\": \"370202\", \"purpose\": \"…\"}";
            let request: creditgate_ops::grade::BatchRequest = match read_json(req, shape).await {
                Ok(request) => request,
                Err(error) => {
                    let intent = Intent::new(Operation::Unroutable, purpose, recorded_request(engine, method, path));
                    return Err(engine.refuse(caller, intent, error).await);
                }
            };
            let lines = creditgate_ops::grade::batch(Arc::clone(engine), caller, purpose, request).await?;
            Ok(ndjson_response(lines))
        }
        (p, m) if p.starts_with("/v1/grades/") => grades(engine, caller, purpose, req, m, p).await,
        (p, m) if p.starts_with("/v1/consents/") => {
            let rest = &p["/v1/consents/".len()..];
            match (rest.strip_suffix("/revoke"), m) {
                (Some(id), &Method::POST) => {
                    let id = creditgate_ops::officer::percent_decode(id);
                    // An optional body: `{"consent": {…signed artefact…}}`.
                    let presented = match read_body(req).await.and_then(|body| {
                        if body.iter().all(u8::is_ascii_whitespace) {
                            Ok(None)
                        } else {
                            let shape = "(optional) {\"consent\": {…the signed consent artefact…}}";
                            json_object::<RevokeRequest>(&body, shape).map(|r| r.consent)
                        }
                    }) {
                        Ok(presented) => presented,
                        Err(error) => {
                            let intent = Intent::new(Operation::ConsentRevoke, purpose, recorded_request(engine, m, p));
                            return Err(engine.refuse(caller, intent, error).await);
                        }
                    };
                    let document =
                        creditgate_ops::consent::revoke(engine, caller, purpose, &id, presented.as_ref()).await?;
                    Ok(json_response(StatusCode::OK, document))
                }
                (None, &Method::GET) if !rest.contains('/') => {
                    let id = creditgate_ops::officer::percent_decode(rest);
                    let document = creditgate_ops::consent::status(engine, caller, purpose, &id).await?;
                    Ok(json_response(StatusCode::OK, document))
                }
                (None, &Method::GET) => {
                    // Not a consent id (`/v1/consents/a/b`): the same 404 as an unknown consent.
                    let document = creditgate_ops::consent::status(engine, caller, purpose, rest).await?;
                    Ok(json_response(StatusCode::OK, document))
                }
                _ => {
                    let intent = Intent::new(Operation::ConsentStatus, purpose, recorded_request(engine, m, p));
                    Err(engine.refuse(caller, intent, GatewayError::MethodNotAllowed(format!("{m} {p}"))).await)
                }
            }
        }
        (
            "/healthz" | "/metrics" | "/openapi.json" | "/v1/query" | "/v1/catalog" | "/v1/lookup" | "/v1/grades"
            | "/console",
            _,
        ) => {
            let intent = Intent::new(Operation::Unroutable, purpose, recorded_request(engine, method, path));
            Err(engine.refuse(caller, intent, GatewayError::MethodNotAllowed(format!("{method} {path}"))).await)
        }
        (p, _) if p.starts_with("/v1/audit/") => {
            let intent = Intent::new(Operation::AuditRead, purpose, recorded_request(engine, method, path));
            Err(engine.refuse(caller, intent, GatewayError::MethodNotAllowed(format!("{method} {path}"))).await)
        }
        (p, _) => {
            let intent = Intent::new(Operation::Unroutable, purpose, recorded_request(engine, method, path));
            let error = GatewayError::NotFound(engine.auditor().redact_text(&p.chars().take(200).collect::<String>()));
            Err(engine.refuse(caller, intent, error).await)
        }
    }
}

fn health(gateway: &Engine) -> serde_json::Value {
    let federation = gateway.federation();
    let available: Vec<_> = federation.available().into_iter().map(|(d, _)| d.name).collect();
    let missing: Vec<&str> =
        federation.datasets().iter().filter(|d| !available.contains(&d.name)).map(|d| d.name.as_str()).collect();
    let mut sources = serde_json::Map::new();
    let mut unreachable = Vec::new();
    for source in federation.sources() {
        let reachability = source.reachability();
        if reachability == creditgate_remote::Reachability::Unreachable {
            unreachable.push(source.name().to_string());
        }
        sources.insert(source.name().to_string(), reachability.label().into());
    }
    let degraded = !missing.is_empty() || !unreachable.is_empty();
    serde_json::json!({
        "status": if degraded { "degraded" } else { "ok" },
        "datasets_available": available.len(),
        "datasets_unavailable": missing,
        "sources": sources,
        "sources_unreachable": unreachable,
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
    /// Values of the statement's `$1`, `$2`, … (or `?`), in order: strings,
    /// numbers, booleans or null. Values, never SQL.
    #[serde(default)]
    params: Option<Vec<serde_json::Value>>,
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
        Err(GatewayError::NotAcceptable {
            asked: value.chars().take(100).collect(),
            offered: "application/json, text/csv or application/vnd.apache.arrow.stream",
        })
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
/// `GET|POST /v1/grades/{credit_code}` (one grade; POST carries a purpose
/// and a consent) and `POST /v1/grades/{request_id}/review`.
async fn grades(
    engine: &Arc<Engine>,
    caller: Caller,
    purpose: Option<String>,
    req: Request<Incoming>,
    method: &Method,
    path: &str,
) -> Result<Response<Body>, GatewayError> {
    let rest = creditgate_ops::officer::percent_decode(&path["/v1/grades/".len()..]);
    let refuse = |caller: Caller, purpose: Option<String>, error: GatewayError| async move {
        let intent = Intent::new(Operation::Unroutable, purpose, recorded_request(engine, method, path));
        engine.refuse(caller, intent, error).await
    };
    match (rest.strip_suffix("/review"), method) {
        (Some(id), &Method::POST) if !id.contains('/') => {
            let shape = "{\"credit_code\": \"…\", \"reason\": \"…\"}";
            let request: creditgate_ops::grade::ReviewRequest = match read_json(req, shape).await {
                Ok(request) => request,
                Err(error) => return Err(refuse(caller, purpose, error).await),
            };
            let document = creditgate_ops::grade::review(engine, caller, purpose, id, request).await?;
            Ok(json_response(StatusCode::OK, document))
        }
        (None, &Method::GET) if !rest.contains('/') => {
            let request = creditgate_ops::grade::GradeRequest { credit_code: rest, purpose: None, consent: None };
            let document = creditgate_ops::grade::grade(engine, caller, purpose, request).await?;
            Ok(json_response(StatusCode::OK, document))
        }
        (None, &Method::POST) if !rest.contains('/') => {
            let shape = "(optional) {\"purpose\": \"…\", \"consent\": {…the signed consent artefact…}}";
            let body = match read_body(req).await {
                Ok(body) => body,
                Err(error) => return Err(refuse(caller, purpose, error).await),
            };
            let parsed = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(creditgate_ops::grade::GradeRequest { credit_code: String::new(), purpose: None, consent: None })
            } else {
                json_object::<creditgate_ops::grade::GradeRequest>(&body, shape)
            };
            let mut request = match parsed {
                Ok(request) => request,
                Err(error) => return Err(refuse(caller, purpose, error).await),
            };
            if !request.credit_code.is_empty() && request.credit_code != rest {
                let error = GatewayError::BadRequest(
                    "credit_code: the body names another subject than the path; leave it out of the body".to_string(),
                );
                return Err(refuse(caller, purpose, error).await);
            }
            request.credit_code = rest;
            let document = creditgate_ops::grade::grade(engine, caller, purpose, request).await?;
            Ok(json_response(StatusCode::OK, document))
        }
        (None, _) if rest.contains('/') => {
            let error =
                GatewayError::NotFound(engine.auditor().redact_text(&path.chars().take(200).collect::<String>()));
            Err(refuse(caller, purpose, error).await)
        }
        _ => Err(refuse(caller, purpose, GatewayError::MethodNotAllowed(format!("{method} {path}"))).await),
    }
}

/// The trailer of a batch of grades: how many were done of how many.
pub const PROGRESS_TRAILER: &str = "creditgate-progress";

/// A batch of grades as NDJSON: one line per item as it comes, the summary
/// last, and the summary's counts in the [`PROGRESS_TRAILER`] trailer.
fn ndjson_response(lines: futures::stream::BoxStream<'static, creditgate_ops::grade::BatchItem>) -> Response<Body> {
    use creditgate_ops::grade::BatchItem;
    let frames = lines.flat_map(|item| {
        let (value, last) = match item {
            BatchItem::Line(value) | BatchItem::Progress(value) => (value, false),
            BatchItem::Summary(value) => (value, true),
        };
        let mut text = value.to_string();
        text.push('\n');
        let mut frames = vec![Ok::<_, std::io::Error>(Frame::data(Bytes::from(text)))];
        if last {
            let counts = &value["summary"];
            let progress = format!(
                "done={}; total={}; complete={}; incomplete={}; refused={}",
                counts["done"], counts["total"], counts["complete"], counts["incomplete"], counts["refused"]
            );
            if let Ok(header) = HeaderValue::from_str(&progress) {
                let mut trailers = http::HeaderMap::new();
                trailers.insert(PROGRESS_TRAILER, header);
                frames.push(Ok(Frame::trailers(trailers)));
            }
        }
        futures::stream::iter(frames)
    });
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(header::TRAILER, HeaderValue::from_static(PROGRESS_TRAILER));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

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
    engine: &Arc<Engine>,
    caller: Caller,
    header_purpose: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Body>, GatewayError> {
    let read = async {
        let format = Format::from_accept(req.headers().get(header::ACCEPT))?;
        let request: QueryRequest = read_json(req, "{\"sql\": \"…\", \"params\": […], \"purpose\": \"…\"}").await?;
        Ok::<_, GatewayError>((format, request))
    };
    let (format, request) = match read.await {
        Ok(read) => read,
        Err(error) => {
            let intent =
                Intent::new(Operation::Query, header_purpose, RecordedQuery::Request("POST /v1/query".to_string()));
            return Err(engine.refuse(caller, intent, error).await);
        }
    };
    let request_id = caller.request_id().to_string();
    let purpose = request.purpose.or(header_purpose);
    let mut stream = match &request.params {
        Some(params) => engine.query_with_params(caller, purpose, &request.sql, params).await?,
        None => crate::flight::run_sql(engine, caller, purpose, &request.sql, false).await?,
    };
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
    if let Ok(id) = HeaderValue::from_str(&request_id) {
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
    let mut encoder = creditgate_engine::encode::Encoder::new(format_kind(format), Arc::clone(&target))?;
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

fn format_kind(format: Format) -> creditgate_engine::encode::Kind {
    match format {
        Format::Json => creditgate_engine::encode::Kind::Json,
        Format::Csv => creditgate_engine::encode::Kind::Csv,
        Format::Arrow => creditgate_engine::encode::Kind::Arrow,
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|never: Infallible| match never {}).boxed_unsync()
}

/// A response with no body.
pub fn empty_response(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A text response of `content_type`.
pub fn text_response(content_type: &'static str, text: String) -> Response<Body> {
    let mut response = Response::new(full(text));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /v1/catalog`: exactly which datasets and columns the caller may see, and how each is masked.
fn catalog(gateway: &Engine, principal: &creditgate_policy::Principal) -> serde_json::Value {
    let policy = gateway.policy();
    let available: std::collections::BTreeSet<_> =
        gateway.federation().available().into_iter().map(|(d, _)| d.name).collect();
    let datasets: Vec<serde_json::Value> = policy
        .grants_for(principal)
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
        "principal": principal.name,
        "organization": principal.organization,
        "role": principal.role.as_str(),
        "purposes": principal.purposes,
        "datasets": datasets,
    })
}
