//! Fixtures for creditgate's end-to-end tests: a whole federation on loopback
//! ports with certificates made at test time, plus helpers to read the
//! connectors' served-query logs, compute expected results straight from the
//! Parquet files, and simulate stalled sources.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use creditgate_connector::{ServedLog, ServedRecord};
use creditgate_tooling::demo::{Lab, LabOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

/// The demo policy as it was before issue 14 (resident ID first 6 + last 4,
/// mobile first 3 + last 4, name first character): the masks that
/// re-identified, for the tests that reproduce that and the linkage report
/// failing on them.
pub const OLD_MASKS_POLICY: &str = include_str!("../fixtures/demo-policy-old-masks.toml");

/// Deadlines used by the tests (connect, first batch, total), in ms: short, so
/// failure tests finish quickly, but far above what a healthy loopback query needs.
pub const TEST_DEADLINES_MS: (u64, u64, u64) = (2_000, 5_000, 60_000);

/// Starts a federation in `dir` (scale 1).
pub async fn start_lab(dir: &Path) -> Lab {
    start_lab_with(dir, |_| {}).await
}

/// Starts a federation in `dir` after `adjust` changes the options.
pub async fn start_lab_with(dir: &Path, adjust: impl FnOnce(&mut LabOptions)) -> Lab {
    creditgate_certs::install_default_provider();
    let mut options = LabOptions::new(dir);
    options.deadlines_ms = TEST_DEADLINES_MS;
    adjust(&mut options);
    match Lab::start(options).await {
        Ok(lab) => lab,
        Err(e) => panic!("cannot start the test federation: {e}"),
    }
}

/// The served-query records of a connector so far. The gateway quotes every
/// identifier it pushes (`"credit_code" = '…'`); the quotes are removed here
/// so tests read the SQL as a person writes it.
pub fn served(lab: &Lab, source: &str) -> Vec<ServedRecord> {
    let config = lab.connector_configs.get(source).unwrap_or_else(|| panic!("no connector {source}"));
    ServedLog::read_all(&config.served_log).unwrap_or_default()
}

/// A local DataFusion session over the federation's raw Parquet files, with
/// the same `schema.table` names and the demo policy's retention rule applied
/// to negative records (no masks): the expected result for a caller whose
/// policy leaves the queried columns unmasked.
pub async fn reference_session(lab: &Lab) -> SessionContext {
    let policy = creditgate_policy::Policy::parse(creditgate_tooling::demo::DEMO_POLICY, "demo-policy.toml")
        .expect("demo policy");
    let today = chrono::Local::now().date_naive();
    let ctx = SessionContext::new();
    let catalog = ctx.catalog("datafusion").expect("default catalog");
    catalog.register_schema("raw", Arc::new(datafusion::catalog::MemorySchemaProvider::new())).expect("schema");
    for source in &lab.manifest.sources {
        catalog
            .register_schema(&source.name, Arc::new(datafusion::catalog::MemorySchemaProvider::new()))
            .expect("schema");
        for table in &source.tables {
            let path = lab.dir.join("data").join(&table.file);
            let raw = format!("raw.{}_{}", source.name, table.name);
            ctx.register_parquet(raw.as_str(), path.to_str().expect("utf8 path"), ParquetReadOptions::default())
                .await
                .expect("register parquet");
            let name = format!("{}.{}", source.name, table.name);
            let filter = match policy.dataset(&name).and_then(|d| d.negative.as_ref()) {
                Some(negative) => {
                    let cutoff =
                        today.checked_sub_months(chrono::Months::new(12 * negative.retention_years)).expect("cutoff");
                    format!(" WHERE {c} IS NULL OR {c} >= DATE '{cutoff}'", c = negative.end_date)
                }
                None => String::new(),
            };
            ctx.sql(&format!("CREATE VIEW {name} AS SELECT * FROM {raw}{filter}"))
                .await
                .expect("reference view")
                .collect()
                .await
                .expect("create view");
        }
    }
    ctx
}

/// Rows of `batches` rendered as sorted strings (order-insensitive comparison).
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &Default::default()).expect("formatter"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters.iter().map(|f| f.value(row).to_string()).collect();
            rows.push(cells.join("|"));
        }
    }
    rows.sort();
    rows
}

/// A server that completes TLS handshakes with `cert`/`key` and then never
/// says anything: a stalled source.
pub async fn stall_server(listener: tokio::net::TcpListener, cert: &Path, key: &Path) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let config = creditgate_certs::tls::server_config(cert, key, None, &[b"h2"]).expect("stall server TLS");
    let mut incoming = Box::pin(creditgate_certs::tls::incoming(listener, config, Duration::from_secs(5)));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(Ok(conn)) = incoming.next().await {
            held.push(conn);
        }
    })
}

/// Binds `addr` again after its server stopped. The old listener is released
/// by a background task, so the first attempts may still find it in use.
pub async fn rebind(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let mut last = None;
    for _ in 0..100 {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot rebind {addr}: {last:?}");
}

/// Resident set size of this process, in bytes (`VmRSS` of
/// `/proc/self/status`). The lab's gateway and connectors run in-process, so
/// this is their memory plus the test's own.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Every record of the lab's audit log so far, in order.
pub fn audit_records(lab: &Lab) -> Vec<creditgate_audit::AuditRecord> {
    audit_records_in(&lab.dir.join("state").join("audit"))
}

/// The records of requests in `lab`'s audit log, in order: every record but
/// the stream-end records that complete streamed results and the events of
/// the gateway itself (CRL reloads, refused handshakes).
pub fn request_records(lab: &Lab) -> Vec<creditgate_audit::AuditRecord> {
    audit_records(lab).into_iter().filter(|r| r.is_request()).collect()
}

/// The stream-end record of `request_id`. It is appended when the stream
/// ends, after the response; this waits for it (up to 30 s, then panics).
pub async fn stream_end_record(lab: &Lab, request_id: &str) -> creditgate_audit::AuditRecord {
    for _ in 0..300 {
        if let Some(r) = audit_records(lab).into_iter().find(|r| r.is_stream_end() && r.request_id == request_id) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no stream-end record for request {request_id}");
}

/// Every record of the audit log in `dir` (a gateway's `state/audit`), in order.
pub fn audit_records_in(dir: &Path) -> Vec<creditgate_audit::AuditRecord> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("audit dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).expect("segment").lines().map(str::to_string).collect::<Vec<_>>())
        .map(|line| creditgate_audit::AuditRecord::from_line(line.as_bytes()).expect("record"))
        .collect()
}

/// One kept-alive HTTP/1.1 connection over mTLS to the gateway's HTTP
/// listener as a demo caller: requests are sent one after another on the same
/// connection, and a response body can be read piecemeal (or not at all).
pub struct HttpConn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
    connection: tokio::task::JoinHandle<()>,
    purpose: Option<String>,
}

/// A response read in full by [`HttpConn::request`].
#[derive(Debug)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// `X-Request-Id`, if any.
    pub request_id: Option<String>,
    /// Every response header (`Retry-After`, …).
    pub headers: http::HeaderMap,
    /// The body.
    pub body: bytes::Bytes,
}

impl HttpReply {
    /// The value of response header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The start of the body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(600)]).into_owned()
    }
}

impl HttpConn {
    /// Connects (TCP, TLS with the caller's certificate, HTTP/1.1 handshake)
    /// as demo caller `caller`, who sends its first purpose code by default.
    pub async fn open(lab: &Lab, caller: &str) -> Result<HttpConn, String> {
        use hyper_util::rt::TokioIo;
        let who = lab.caller(caller).ok_or_else(|| format!("no demo caller `{caller}`"))?;
        let config = creditgate_certs::tls::client_config(&lab.ca_file, Some((&who.cert, &who.key)), &[b"http/1.1"])
            .map_err(|e| e.to_string())?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
        let addr = lab.gateway.http_addr;
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(creditgate_tooling::demo::SERVER_NAME.to_string())
            .map_err(|e| e.to_string())?;
        let stream = connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(HttpConn { sender, connection, purpose: who.purposes.first().cloned() })
    }

    /// Stops sending the caller's first purpose by default: a request then
    /// carries the purpose header only when its `headers` set one (to test
    /// the purpose requirement and the `purpose` body field on their own).
    pub fn without_default_purpose(mut self) -> HttpConn {
        self.purpose = None;
        self
    }

    /// Sends one request and returns the response with its body unread.
    /// `headers` may set the purpose header; otherwise the caller's first
    /// purpose is sent.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        use creditgate_engine::PURPOSE_HEADER;
        self.sender.ready().await.map_err(|e| format!("the kept-alive connection is gone: {e}"))?;
        let mut builder =
            http::Request::builder().method(method).uri(path).header("host", creditgate_tooling::demo::SERVER_NAME);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(PURPOSE_HEADER))
            && let Some(purpose) = &self.purpose
        {
            builder = builder.header(PURPOSE_HEADER, purpose.as_str());
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(http_body_util::Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        self.sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))
    }

    /// Sends one request and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<HttpReply, String> {
        use http_body_util::BodyExt;
        let response = self.send(method, path, headers, body).await?;
        let status = response.status().as_u16();
        let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.map_err(|e| format!("HTTP body: {e}"))?.to_bytes();
        Ok(HttpReply { status, request_id, headers, body })
    }

    /// Closes the connection at once (the TCP connection is dropped, whatever
    /// is still being sent).
    pub fn abort(self) {
        self.connection.abort();
    }
}

/// Starts a connector with `config` again, on the address its predecessor
/// used (retried briefly: the old listener is released in the background).
pub async fn restart_connector(
    config: &creditgate_connector::ConnectorConfig,
) -> creditgate_connector::RunningConnector {
    let mut last = String::new();
    for _ in 0..100 {
        let connector = match creditgate_connector::Connector::open(config.clone()).await {
            Ok(connector) => connector,
            Err(e) => panic!("cannot open connector `{}`: {e}", config.name),
        };
        match connector.start().await {
            Ok(running) => return running,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("connector `{}` cannot restart on {}: {last}", config.name, config.listen);
}

/// Starts a federation in `dir` with data as of `as_of`, its sources kept
/// where `backend` says (database-backed sources are loaded first, under
/// `backend.db_schema_prefix`; see [`LoadedSchemas`] to drop them again).
pub async fn start_lab_on(
    dir: &Path,
    backend: creditgate_tooling::demo_backend::BackendArgs,
    as_of: chrono::NaiveDate,
) -> Lab {
    start_lab_with(dir, |options| {
        options.backend = backend;
        options.as_of = as_of;
    })
    .await
}

/// Prepares `to` so that a lab started there serves exactly the lab in
/// `from`: the same generated data, the same CA and consent issuer key, and
/// the same gateway secret (so masks and keyed hashes come out the same).
pub fn share_lab_data(from: &Path, to: &Path) {
    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
        for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
            let entry = entry.expect("directory entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copy to {}: {e}", target.display()));
            }
        }
    }
    copy_tree(&from.join("data"), &to.join("data"));
    copy_tree(&from.join("certs"), &to.join("certs"));
    std::fs::create_dir_all(to.join("state")).expect("state dir");
    std::fs::copy(from.join("state").join("secret.key"), to.join("state").join("secret.key")).expect("gateway secret");
}

/// The database schemas a lab over `args` loads for `sources`; dropped when
/// this guard goes out of scope, test failure included.
pub struct LoadedSchemas {
    args: creditgate_tooling::demo_backend::BackendArgs,
    sources: Vec<String>,
}

impl LoadedSchemas {
    /// A guard for the schemas of `sources` under `args` (which need not exist yet).
    pub fn new(args: &creditgate_tooling::demo_backend::BackendArgs, sources: &[String]) -> LoadedSchemas {
        LoadedSchemas { args: args.clone(), sources: sources.to_vec() }
    }
}

impl Drop for LoadedSchemas {
    fn drop(&mut self) {
        let (args, sources) = (self.args.clone(), std::mem::take(&mut self.sources));
        // A runtime of its own on a thread of its own: `drop` may run on a
        // runtime thread, which must not block on another future.
        let outcome = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(creditgate_tooling::demo_backend::unload(&sources, &args))
        })
        .join();
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("cannot drop the test's database schemas: {e}"),
            Err(_) => eprintln!("cannot drop the test's database schemas: the cleanup thread panicked"),
        }
    }
}

/// Everything a failed Flight call says: the gRPC code and message, then each
/// error in its source chain (where a transport failure keeps the TLS alert,
/// e.g. `received fatal alert: UnknownCA`), joined by ` | `.
pub fn flight_error_chain(error: &arrow_flight::error::FlightError) -> String {
    use arrow_flight::error::FlightError;
    let mut parts = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = match error {
        FlightError::Tonic(status) => {
            parts.push(format!("{:?}: {}", status.code(), status.message()));
            std::error::Error::source(status.as_ref())
        }
        other => {
            parts.push(other.to_string());
            std::error::Error::source(other)
        }
    };
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(" | ")
}

/// Opens a TLS connection to `addr` (server name `localhost`, ALPN `alpn`)
/// trusting `ca` and presenting `cert`, sends nothing and reads: the reason the
/// server refused the client (`received fatal alert: CertificateRequired`, …),
/// or `None` when the server accepted it (it spoke, or waited for the client).
///
/// With TLS 1.3 a client learns of a refused certificate only after its side
/// of the handshake, and a client that has already sent a request may see the
/// connection reset before it reads the alert; sending nothing makes the alert
/// the first thing read.
pub async fn tls_refusal(
    addr: std::net::SocketAddr,
    ca: &Path,
    cert: Option<(&Path, &Path)>,
    alpn: &[u8],
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let config = creditgate_certs::tls::client_config(ca, cert, &[alpn]).expect("client TLS config");
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let mut tls = match connector.connect(name, tcp).await {
        Ok(tls) => tls,
        Err(e) => return Some(e.to_string()),
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(10), tls.read(&mut byte)).await {
        Ok(Ok(0)) => Some("connection closed without an alert".to_string()),
        Ok(Ok(_)) | Err(_) => None,
        Ok(Err(e)) => Some(e.to_string()),
    }
}

/// Checks that `error`, from a Flight call, is a connection that failed, not
/// an answer from the server: tonic's transport error (`Unknown: transport
/// error`, or `Cancelled: operation was canceled` when the connection broke
/// while the request waited for it), never a gRPC status such as
/// `PermissionDenied`. When the client got to read the server's TLS alert it
/// is in the chain, and it must be `alert`. Returns the chain's text.
pub fn assert_transport_refusal(error: &arrow_flight::error::FlightError, alert: &str, case: &str) -> String {
    let text = flight_error_chain(error);
    assert!(
        (text.starts_with("Unknown: ") || text.starts_with("Cancelled: ")) && text.contains("transport error"),
        "{case}: expected a failed connection, not an answer from the server: {text}"
    );
    assert!(!text.contains("PermissionDenied") && !text.contains("purpose"), "{case}: {text}");
    if text.contains("received fatal alert") {
        assert!(text.contains(&format!("received fatal alert: {alert}")), "{case}: expected the {alert} alert: {text}");
    }
    text
}

/// Adds a caller to `lab` (so [`Lab::http`] and [`HttpConn::open`] can act
/// as it): a client certificate from the lab's CA whose SPIFFE identity is
/// `spiffe://credit.example/org/<org_id>`. The policy decides whether the
/// gateway knows it.
pub fn add_caller(lab: &mut Lab, name: &str, org_id: &str, role: &str, purposes: &[&str]) {
    use creditgate_certs::ca::{DevCa, IssueRequest};
    let certs = lab.dir.join("certs");
    let ca = DevCa::load(&certs).unwrap_or_else(|e| panic!("the lab's CA: {e}"));
    let issued = ca
        .issue(&IssueRequest::client(org_id, format!("test caller {name}"), name))
        .unwrap_or_else(|e| panic!("certificate for {name}: {e}"));
    let (cert, key) = issued.write(&certs, &format!("caller-{name}")).unwrap_or_else(|e| panic!("write {name}: {e}"));
    lab.callers.push(creditgate_tooling::demo::DemoCaller {
        name: name.to_string(),
        role: role.to_string(),
        organization: format!("test caller {name}"),
        org_id: org_id.to_string(),
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        known: true,
        cert,
        key,
    });
}

/// Stops the lab's gateway and starts a new one with the same configuration
/// and state directory (audit log, secret, consent store), on new ports; the
/// connectors keep running. Starting is retried briefly: the stopped
/// gateway's last connections release the state directory's locks in the
/// background.
pub async fn restart_gateway(lab: Lab) -> Lab {
    let Lab {
        dir,
        ca_file,
        manifest,
        callers,
        connectors,
        connector_configs,
        gateway_config,
        gateway,
        consent_key,
        gateway_handle,
    } = lab;
    gateway.stop().await.unwrap_or_else(|e| panic!("stop the gateway: {e}"));
    drop(gateway_handle);
    let mut last = String::new();
    for _ in 0..100 {
        match creditgate_engine::Engine::new(gateway_config.clone()).await {
            Ok(handle) => {
                let running = creditgate_server::start(Arc::clone(&handle))
                    .await
                    .unwrap_or_else(|e| panic!("start the gateway: {e}"));
                return Lab {
                    dir,
                    ca_file,
                    manifest,
                    callers,
                    connectors,
                    connector_configs,
                    gateway_config,
                    gateway: running,
                    consent_key,
                    gateway_handle: handle,
                };
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway cannot start again on its state directory: {last}");
}

/// A Flight server that answers every DoGet with `batches` (schema `schema`)
/// and then sends nothing more, keeping the stream open: a source that stalls
/// after its first batch. Serves `cert`/`key` on `listener` until the handle
/// is aborted or dropped with the runtime; other calls are unimplemented.
pub fn first_batches_then_stall_server(
    listener: tokio::net::TcpListener,
    cert: &Path,
    key: &Path,
    schema: &arrow::datatypes::Schema,
    batches: Vec<RecordBatch>,
) -> tokio::task::JoinHandle<()> {
    let messages = arrow_flight::utils::batches_to_flight_data(schema, batches).expect("encode the batches");
    let tls = creditgate_certs::tls::server_config(cert, key, None, &[b"h2"]).expect("stalling server TLS");
    let incoming = creditgate_certs::tls::incoming(listener, tls, Duration::from_secs(5));
    let service = arrow_flight::flight_service_server::FlightServiceServer::new(StallAfter { messages });
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
    })
}

/// The service of [`first_batches_then_stall_server`].
#[derive(Clone)]
struct StallAfter {
    messages: Vec<arrow_flight::FlightData>,
}

type StallStream<T> = futures::stream::BoxStream<'static, Result<T, tonic::Status>>;

#[tonic::async_trait]
impl arrow_flight::flight_service_server::FlightService for StallAfter {
    type HandshakeStream = StallStream<arrow_flight::HandshakeResponse>;
    type ListFlightsStream = StallStream<arrow_flight::FlightInfo>;
    type DoGetStream = StallStream<arrow_flight::FlightData>;
    type DoPutStream = StallStream<arrow_flight::PutResult>;
    type DoExchangeStream = StallStream<arrow_flight::FlightData>;
    type DoActionStream = StallStream<arrow_flight::Result>;
    type ListActionsStream = StallStream<arrow_flight::ActionType>;

    async fn do_get(
        &self,
        _: tonic::Request<arrow_flight::Ticket>,
    ) -> Result<tonic::Response<Self::DoGetStream>, tonic::Status> {
        use futures::StreamExt;
        let sent = futures::stream::iter(self.messages.clone().into_iter().map(Ok));
        Ok(tonic::Response::new(sent.chain(futures::stream::pending()).boxed()))
    }
    async fn handshake(
        &self,
        _: tonic::Request<tonic::Streaming<arrow_flight::HandshakeRequest>>,
    ) -> Result<tonic::Response<Self::HandshakeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn list_flights(
        &self,
        _: tonic::Request<arrow_flight::Criteria>,
    ) -> Result<tonic::Response<Self::ListFlightsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn get_flight_info(
        &self,
        _: tonic::Request<arrow_flight::FlightDescriptor>,
    ) -> Result<tonic::Response<arrow_flight::FlightInfo>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn poll_flight_info(
        &self,
        _: tonic::Request<arrow_flight::FlightDescriptor>,
    ) -> Result<tonic::Response<arrow_flight::PollInfo>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn get_schema(
        &self,
        _: tonic::Request<arrow_flight::FlightDescriptor>,
    ) -> Result<tonic::Response<arrow_flight::SchemaResult>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn do_put(
        &self,
        _: tonic::Request<tonic::Streaming<arrow_flight::FlightData>>,
    ) -> Result<tonic::Response<Self::DoPutStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn do_exchange(
        &self,
        _: tonic::Request<tonic::Streaming<arrow_flight::FlightData>>,
    ) -> Result<tonic::Response<Self::DoExchangeStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn do_action(
        &self,
        _: tonic::Request<arrow_flight::Action>,
    ) -> Result<tonic::Response<Self::DoActionStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
    async fn list_actions(
        &self,
        _: tonic::Request<arrow_flight::Empty>,
    ) -> Result<tonic::Response<Self::ListActionsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("stalling test server"))
    }
}
