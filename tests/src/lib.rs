//! Fixtures for creditgate's end-to-end tests: a whole federation on loopback
//! ports with certificates made at test time, plus helpers to read the
//! connectors' served-query logs, compute expected results straight from the
//! Parquet files, and simulate stalled sources.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use creditgate_connector::{ServedLog, ServedRecord};
use creditgate_gateway::demo::{Lab, LabOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

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

/// The served-query records of a connector so far.
pub fn served(lab: &Lab, source: &str) -> Vec<ServedRecord> {
    let config = lab.connector_configs.get(source).unwrap_or_else(|| panic!("no connector {source}"));
    ServedLog::read_all(&config.served_log).unwrap_or_default()
}

/// A local DataFusion session over the federation's raw Parquet files, with
/// the same `schema.table` names and the demo policy's retention rule applied
/// to negative records (no masks): the expected result for a caller whose
/// policy leaves the queried columns unmasked.
pub async fn reference_session(lab: &Lab) -> SessionContext {
    let policy = creditgate_policy::Policy::parse(creditgate_gateway::demo::DEMO_POLICY, "demo-policy.toml")
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
    /// The body.
    pub body: bytes::Bytes,
}

impl HttpReply {
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
        let name = rustls::pki_types::ServerName::try_from(creditgate_gateway::demo::SERVER_NAME.to_string())
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
        use creditgate_gateway::gateway::PURPOSE_HEADER;
        self.sender.ready().await.map_err(|e| format!("the kept-alive connection is gone: {e}"))?;
        let mut builder =
            http::Request::builder().method(method).uri(path).header("host", creditgate_gateway::demo::SERVER_NAME);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(PURPOSE_HEADER)) {
            if let Some(purpose) = &self.purpose {
                builder = builder.header(PURPOSE_HEADER, purpose.as_str());
            }
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
        let body = response.into_body().collect().await.map_err(|e| format!("HTTP body: {e}"))?.to_bytes();
        Ok(HttpReply { status, request_id, body })
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
