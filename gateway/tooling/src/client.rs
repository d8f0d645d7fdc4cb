//! Small mTLS clients for the gateway's own front ends, used by the demo and
//! the end-to-end tests (real clients connect with pyarrow, ADBC or curl).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use bytes::Bytes;
use creditgate_certs::tls;
use futures::TryStreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tonic::transport::Channel;

/// Connect timeout of the helper clients.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client's certificate material.
#[derive(Debug, Clone)]
pub struct ClientIdentity<'a> {
    /// CA that signs the server.
    pub ca: &'a Path,
    /// Client certificate (PEM), if any.
    pub cert: Option<(&'a Path, &'a Path)>,
}

/// A Flight SQL client over mTLS.
pub struct FlightClient {
    inner: FlightSqlServiceClient<Channel>,
}

impl FlightClient {
    /// Connects lazily to `addr` (e.g. `127.0.0.1:4000`), verifying the server as `server_name`.
    pub fn connect(addr: &str, server_name: &str, who: &ClientIdentity<'_>) -> Result<Self, String> {
        let config = tls::client_config(who.ca, who.cert, &[b"h2"]).map_err(|e| e.to_string())?;
        let channel = tls::channel(addr, server_name, config, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(creditgate_flight::DEFAULT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(creditgate_flight::DEFAULT_MAX_MESSAGE_BYTES);
        Ok(Self { inner: FlightSqlServiceClient::new_from_inner(inner) })
    }

    /// Sets a call header sent with every request (e.g. `x-creditgate-purpose`).
    pub fn set_header(&mut self, key: &str, value: &str) {
        self.inner.set_header(key, value);
    }

    /// Runs a statement query and collects the result.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<RecordBatch>, FlightError> {
        let info = self.inner.execute(sql.to_string(), None).await?;
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or_else(|| FlightError::ProtocolError("no ticket".into()))?;
            let stream = self.inner.do_get(ticket).await?;
            batches.extend(stream.try_collect::<Vec<_>>().await?);
        }
        Ok(batches)
    }

    /// Runs a statement query in one round trip: the `CommandStatementQuery`
    /// goes as the DoGet ticket itself (accepted by creditgate's Flight SQL
    /// services; what the gateway does towards its connectors).
    pub async fn query_direct(&mut self, sql: &str) -> Result<Vec<RecordBatch>, FlightError> {
        use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt};
        use prost::Message;
        let ticket = CommandStatementQuery { query: sql.to_string(), transaction_id: None }.as_any().encode_to_vec();
        let stream = self.inner.do_get(arrow_flight::Ticket::new(ticket)).await?;
        stream.try_collect().await
    }

    /// Runs a statement query and streams the result, counting rows and
    /// bytes (the data the batches hold, see [`creditgate_flight::batch_data_bytes`]) without keeping
    /// the batches.
    pub async fn query_count(&mut self, sql: &str) -> Result<(u64, u64), FlightError> {
        use futures::StreamExt;
        let info = self.inner.execute(sql.to_string(), None).await?;
        let (mut rows, mut bytes) = (0u64, 0u64);
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or_else(|| FlightError::ProtocolError("no ticket".into()))?;
            let mut stream = self.inner.do_get(ticket).await?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows += batch.num_rows() as u64;
                bytes += creditgate_flight::batch_data_bytes(&batch);
            }
        }
        Ok((rows, bytes))
    }

    /// Runs the `creditgate.lookup` Flight action with a JSON body.
    pub async fn lookup(&mut self, body: &serde_json::Value) -> Result<serde_json::Value, FlightError> {
        self.json_action(creditgate_ops::lookup::LOOKUP_ACTION, body).await
    }

    /// Runs the `creditgate.grade` Flight action with a JSON body.
    pub async fn grade(&mut self, body: &serde_json::Value) -> Result<serde_json::Value, FlightError> {
        self.json_action(creditgate_ops::grade::GRADE_ACTION, body).await
    }

    /// Runs a Flight action whose body and one result are JSON.
    async fn json_action(&mut self, kind: &str, body: &serde_json::Value) -> Result<serde_json::Value, FlightError> {
        let action = arrow_flight::Action { r#type: kind.to_string(), body: body.to_string().into_bytes().into() };
        let mut results =
            self.inner.inner_mut().do_action(action).await.map_err(|s| FlightError::Tonic(Box::new(s)))?.into_inner();
        use futures::StreamExt;
        match results.next().await {
            Some(Ok(result)) => {
                serde_json::from_slice(&result.body).map_err(|e| FlightError::ProtocolError(e.to_string()))
            }
            Some(Err(status)) => Err(FlightError::Tonic(Box::new(status))),
            None => Err(FlightError::ProtocolError(format!("empty {kind} result"))),
        }
    }

    /// The underlying arrow-flight client, for metadata calls.
    pub fn inner_mut(&mut self) -> &mut FlightSqlServiceClient<Channel> {
        &mut self.inner
    }
}

/// The status code and message of a failed Flight call, for display.
pub fn flight_error_text(error: &FlightError) -> String {
    match error {
        FlightError::Tonic(status) => format!("{:?}: {}", status.code(), status.message()),
        other => other.to_string(),
    }
}

/// A response from [`http_request`].
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// `X-Request-Id`, if any (the id in the gateway's logs and audit record).
    pub request_id: Option<String>,
    /// The whole body.
    pub body: Bytes,
    /// Every header, names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
}

impl HttpResponse {
    /// The first value of header `name` (lowercase), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 connection over mTLS to `addr` (the server checked as
/// `server_name`), its driver running on the runtime.
pub async fn http1_connect(
    addr: &str,
    server_name: &str,
    who: &ClientIdentity<'_>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let config = tls::client_config(who.ca, who.cert, &[b"http/1.1"]).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
    let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let stream = connector.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One HTTP/1.1 request over mTLS to `addr`.
pub async fn http_request(
    addr: &str,
    server_name: &str,
    who: &ClientIdentity<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Result<HttpResponse, String> {
    let mut sender = http1_connect(addr, server_name, who).await?;
    let mut builder = http::Request::builder().method(method).uri(path).header("host", server_name);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default()))).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let content_type = header("content-type");
    let request_id = header("x-request-id");
    let all_headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let body = response.into_body().collect().await.map_err(|e| format!("HTTP body: {e}"))?.to_bytes();
    Ok(HttpResponse { status, content_type, request_id, body, headers: all_headers })
}
