//! One remote connector: a pooled, kept-alive mTLS channel and the Flight SQL
//! calls the gateway makes on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{Schema, SchemaRef};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, CommandGetTables,
    CommandStatementQuery, ProstMessageExt,
};
use arrow_flight::{Action, FlightInfo, IpcMessage, Ticket};
use creditgate_ident::SourceName;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use prost::Message;
use tonic::transport::Channel;

use crate::error::{SourceError, SourceErrorKind};

/// Default deadline for establishing a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default deadline for the first batch of a result.
pub const DEFAULT_FIRST_BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for a whole result.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest gRPC message accepted from a connector.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Per-source deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// From sending the query to receiving the first batch.
    pub first_batch: Duration,
    /// From sending the query to the end of the result.
    pub total: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            first_batch: DEFAULT_FIRST_BATCH_TIMEOUT,
            total: DEFAULT_TOTAL_TIMEOUT,
        }
    }
}

/// A table a connector advertises.
#[derive(Debug, Clone)]
pub struct RemoteTableInfo {
    /// Schema (namespace) at the connector; the connector's source name.
    pub schema_name: String,
    /// Table name at the connector.
    pub table: String,
    /// Arrow schema of the table.
    pub schema: SchemaRef,
}

/// Consecutive connection failures or timeouts after which the circuit opens.
pub const CIRCUIT_FAILURE_THRESHOLD: u32 = 5;
/// How long an open circuit refuses calls before letting one through again.
pub const CIRCUIT_OPEN_FOR: Duration = Duration::from_secs(5);

/// A circuit breaker: after [`CIRCUIT_FAILURE_THRESHOLD`] consecutive
/// unavailable/timeout failures, calls fail at once for [`CIRCUIT_OPEN_FOR`]
/// instead of hammering a dead source; then one call is let through (half-open).
#[derive(Debug, Default)]
struct Circuit {
    failures: std::sync::atomic::AtomicU32,
    open_until: std::sync::Mutex<Option<Instant>>,
}

impl Circuit {
    fn check(&self) -> Result<(), Duration> {
        let mut open = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
        match *open {
            Some(until) if Instant::now() < until => Err(until - Instant::now()),
            Some(_) => {
                // Half-open: let this call through; a failure re-opens at once.
                *open = None;
                self.failures.store(CIRCUIT_FAILURE_THRESHOLD - 1, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record(&self, error: Option<&SourceError>) {
        use std::sync::atomic::Ordering;
        match error {
            None => self.failures.store(0, Ordering::SeqCst),
            Some(e) if matches!(e.kind, SourceErrorKind::Unavailable(_) | SourceErrorKind::Timeout { .. }) => {
                if self.failures.fetch_add(1, Ordering::SeqCst) + 1 >= CIRCUIT_FAILURE_THRESHOLD {
                    *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Instant::now() + CIRCUIT_OPEN_FOR);
                }
            }
            Some(_) => {}
        }
    }
}

/// Whether a source answers, as last seen by any call to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachability {
    /// Not called yet.
    Unknown,
    /// Its last call got an answer (a result or an error of its own).
    Reachable,
    /// Its last call could not reach it (connection failed or timed out).
    Unreachable,
}

impl Reachability {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Reachability::Reachable,
            2 => Reachability::Unreachable,
            _ => Reachability::Unknown,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Reachability::Unknown => 0,
            Reachability::Reachable => 1,
            Reachability::Unreachable => 2,
        }
    }

    /// A short label (health, logs).
    pub fn label(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Reachable => "reachable",
            Reachability::Unreachable => "unreachable",
        }
    }
}

/// What a remote query sends.
#[derive(Debug, Clone)]
pub enum Statement {
    /// SQL text with its values written in as literals.
    Text(String),
    /// SQL with `$1`, `$2`, … placeholders, prepared once per source and
    /// executed with one row of `parameters` per query (a direct prepared
    /// ticket: one round trip, and the connector reuses its plan).
    Prepared {
        /// The statement's text.
        sql: String,
        /// One row: a column per placeholder, `$1` first.
        parameters: RecordBatch,
    },
}

/// Most prepared-statement handles kept per source (the statements of every
/// lookup plan the gateway keeps, with room to spare).
pub const MAX_PREPARED_HANDLES: usize = 4096;

/// Called after each remote query with the source, a status label and the duration.
pub type SourceObserver = Arc<dyn Fn(&str, &'static str, Duration) + Send + Sync>;

/// A connector reachable over a kept-alive HTTP/2 channel.
pub struct RemoteSource {
    name: SourceName,
    client: FlightSqlServiceClient<Channel>,
    deadlines: Deadlines,
    observer: Option<SourceObserver>,
    circuit: Circuit,
    /// [`Reachability`] as a number, changed by [`RemoteSource::note`].
    reachability: std::sync::atomic::AtomicU8,
    /// The connector's handle of each statement prepared there, by text.
    handles: std::sync::Mutex<lru::LruCache<String, bytes::Bytes>>,
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource").field("name", &self.name).field("deadlines", &self.deadlines).finish()
    }
}

impl RemoteSource {
    /// A source named `name` over `channel` (see `creditgate_certs::tls::channel`).
    pub fn new(name: SourceName, channel: Channel, deadlines: Deadlines) -> Self {
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Self {
            name,
            client: FlightSqlServiceClient::new_from_inner(inner),
            deadlines,
            observer: None,
            circuit: Circuit::default(),
            reachability: std::sync::atomic::AtomicU8::new(0),
            handles: std::sync::Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(MAX_PREPARED_HANDLES).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
        }
    }

    /// Reports each query's status and duration to `observer` (metrics).
    pub fn with_observer(mut self, observer: SourceObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The source's name.
    pub fn name(&self) -> &SourceName {
        &self.name
    }

    /// The source's deadlines.
    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }

    /// Whether the source answered its last call.
    pub fn reachability(&self) -> Reachability {
        Reachability::from_u8(self.reachability.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Records the outcome of a call for [`RemoteSource::reachability`],
    /// with one log line when the source goes away and one when it returns
    /// (not one per failed call).
    fn note(&self, error: Option<&SourceError>) {
        let now = match error {
            Some(e) if matches!(e.kind, SourceErrorKind::Unavailable(_) | SourceErrorKind::Timeout { .. }) => {
                Reachability::Unreachable
            }
            _ => Reachability::Reachable,
        };
        let before = Reachability::from_u8(self.reachability.swap(now.as_u8(), std::sync::atomic::Ordering::AcqRel));
        match (before, now, error) {
            (Reachability::Unknown, Reachability::Unreachable, Some(e)) => {
                tracing::warn!(source = %self.name, error = %e.kind, "source not reachable; retrying in the background");
            }
            (Reachability::Reachable, Reachability::Unreachable, Some(e)) => {
                tracing::warn!(source = %self.name, error = %e.kind, "source went away; retrying in the background");
            }
            (Reachability::Unreachable, Reachability::Reachable, _) => {
                tracing::info!(source = %self.name, "source reachable again");
            }
            (Reachability::Unknown, Reachability::Reachable, _) => {
                tracing::info!(source = %self.name, "source reachable");
            }
            _ => {}
        }
    }

    fn error(&self, kind: SourceErrorKind) -> SourceError {
        SourceError { source_name: self.name.clone(), kind }
    }

    fn flight_error(&self, error: FlightError) -> SourceError {
        match error {
            FlightError::Tonic(status) => SourceError::from_status(&self.name, &status),
            other => self.error(SourceErrorKind::Failed(other.to_string())),
        }
    }

    /// Lists the connector's tables with their schemas (`GetTables`).
    pub async fn tables(&self) -> Result<Vec<RemoteTableInfo>, SourceError> {
        let deadline = self.deadlines.first_batch.max(self.deadlines.connect);
        let work = async {
            let mut client = self.client.clone();
            let request = CommandGetTables { include_schema: true, ..Default::default() };
            let info = client.get_tables(request).await.map_err(|e| self.flight_error(e))?;
            let batches = fetch_all(&mut client, info).await.map_err(|e| self.flight_error(e))?;
            let mut out = Vec::new();
            for batch in &batches {
                out.extend(self.parse_tables(batch)?);
            }
            Ok(out)
        };
        let result = match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(self.error(SourceErrorKind::Timeout { phase: "table list", after: deadline })),
        };
        self.note(result.as_ref().err());
        result
    }

    fn parse_tables(&self, batch: &RecordBatch) -> Result<Vec<RemoteTableInfo>, SourceError> {
        let bad = |what: &str| self.error(SourceErrorKind::SchemaMismatch(format!("GetTables: {what}")));
        let text = |name: &str| -> Result<&StringArray, SourceError> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| bad(&format!("column {name} missing")))
        };
        let schemas = text("db_schema_name")?;
        let tables = text("table_name")?;
        let encoded = batch
            .column_by_name("table_schema")
            .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
            .ok_or_else(|| bad("column table_schema missing"))?;
        let mut out = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let schema = Schema::try_from(IpcMessage(encoded.value(row).to_vec().into()))
                .map_err(|e| bad(&format!("undecodable table schema: {e}")))?;
            out.push(RemoteTableInfo {
                schema_name: if schemas.is_null(row) { String::new() } else { schemas.value(row).to_string() },
                table: tables.value(row).to_string(),
                schema: Arc::new(schema),
            });
        }
        Ok(out)
    }

    /// Runs `statement` at the source and streams batches that must match `expected`.
    /// Nothing is sent until the stream is first polled.
    pub fn query(self: &Arc<Self>, statement: Statement, expected: SchemaRef) -> SendableRecordBatchStream {
        let source = Arc::clone(self);
        let started = Instant::now();
        let total_deadline = tokio::time::Instant::now() + self.deadlines.total;
        let first_deadline = self.deadlines.first_batch.min(self.deadlines.total);
        let expected_for_stream = Arc::clone(&expected);

        let opened = async move {
            if let Err(wait) = source.circuit.check() {
                let e = source.error(SourceErrorKind::Unavailable(format!(
                    "it failed {CIRCUIT_FAILURE_THRESHOLD} times in a row; not retried for another {} ms",
                    wait.as_millis()
                )));
                return Err(e);
            }
            let open = source.open(statement, &expected_for_stream);
            let (first, rest) = match tokio::time::timeout(first_deadline, open).await {
                Ok(Ok(pair)) => {
                    source.note(None);
                    pair
                }
                Ok(Err(e)) => return Err(source.observe_failure(e, started)),
                Err(_) => {
                    let e = source.error(SourceErrorKind::Timeout { phase: "first batch", after: first_deadline });
                    return Err(source.observe_failure(e, started));
                }
            };
            let state = Tail {
                source: Arc::clone(&source),
                rest,
                first,
                total_deadline,
                started,
                expected: expected_for_stream,
                done: false,
            };
            Ok(futures::stream::unfold(state, Tail::next))
        };
        let stream = futures::stream::once(opened)
            .map(|result| match result {
                Ok(tail) => tail.boxed(),
                Err(e) => futures::stream::once(async move { Err(e.into_datafusion()) }).boxed(),
            })
            .flatten();
        Box::pin(RecordBatchStreamAdapter::new(expected, stream))
    }

    /// Sends the query and waits for the first batch. The statement goes as a
    /// direct DoGet ticket (one round trip; creditgate connectors accept a
    /// packed `CommandStatementQuery` there) rather than GetFlightInfo + DoGet.
    ///
    /// A prepared statement goes as a direct prepared ticket with the
    /// connector's handle for its text ([`RemoteSource::handle`]); a handle
    /// the connector no longer knows (it restarted) is replaced once.
    async fn open(
        &self,
        statement: Statement,
        expected: &SchemaRef,
    ) -> Result<(Option<RecordBatch>, BoxStream<'static, Result<RecordBatch, FlightError>>), SourceError> {
        let (stream, first) = match &statement {
            Statement::Text(sql) => {
                let ticket =
                    CommandStatementQuery { query: sql.clone(), transaction_id: None }.as_any().encode_to_vec();
                self.first_batch(ticket).await.map_err(|e| self.flight_error(e))?
            }
            Statement::Prepared { sql, parameters } => {
                let parameters = creditgate_flight::encode_parameters(parameters)
                    .map_err(|e| self.error(SourceErrorKind::Failed(format!("encoding the parameters: {e}"))))?;
                let mut retried = false;
                loop {
                    let handle = self.handle(sql).await?;
                    let ticket = creditgate_flight::DirectPreparedQuery {
                        prepared_statement_handle: handle,
                        parameters: parameters.clone(),
                    }
                    .as_any()
                    .encode_to_vec();
                    match self.first_batch(ticket).await {
                        Err(FlightError::Tonic(status)) if status.code() == tonic::Code::NotFound && !retried => {
                            self.forget_handle(sql);
                            retried = true;
                        }
                        other => break other.map_err(|e| self.flight_error(e))?,
                    }
                }
            }
        };
        if first.is_none() {
            // No rows: the schema message is all there is to check.
            if let Some(Err(message)) = stream.schema().map(|schema| check_fields(schema, expected)) {
                return Err(self.error(SourceErrorKind::SchemaMismatch(message)));
            }
        }
        Ok((first, stream.boxed()))
    }

    /// Sends `ticket` and waits for the first batch.
    async fn first_batch(
        &self,
        ticket: Vec<u8>,
    ) -> Result<(arrow_flight::decode::FlightRecordBatchStream, Option<RecordBatch>), FlightError> {
        let mut client = self.client.clone();
        let mut stream = client.do_get(Ticket::new(ticket)).await?;
        let first = stream.next().await.transpose()?;
        Ok((stream, first))
    }

    /// The connector's handle for the statement `sql`: kept from an earlier
    /// `CreatePreparedStatement`, or prepared now.
    async fn handle(&self, sql: &str) -> Result<bytes::Bytes, SourceError> {
        if let Some(handle) = self.handles.lock().unwrap_or_else(|p| p.into_inner()).get(sql) {
            return Ok(handle.clone());
        }
        let mut client = self.client.clone();
        let request = ActionCreatePreparedStatementRequest { query: sql.to_string(), transaction_id: None };
        let action =
            Action { r#type: "CreatePreparedStatement".to_string(), body: request.as_any().encode_to_vec().into() };
        let mut results = client.do_action(action).await.map_err(|e| self.flight_error(e))?;
        let message =
            results.message().await.map_err(|status| SourceError::from_status(&self.name, &status))?.ok_or_else(
                || self.error(SourceErrorKind::Failed("CreatePreparedStatement returned nothing".into())),
            )?;
        let prepared = Any::decode(&*message.body)
            .ok()
            .and_then(|any| any.unpack::<ActionCreatePreparedStatementResult>().ok().flatten())
            .ok_or_else(|| self.error(SourceErrorKind::Failed("CreatePreparedStatement returned no handle".into())))?;
        let handle = prepared.prepared_statement_handle;
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).put(sql.to_string(), handle.clone());
        Ok(handle)
    }

    /// Forgets the kept handle of `sql` (the connector no longer knows it).
    fn forget_handle(&self, sql: &str) {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).pop(sql);
    }

    /// How many prepared-statement handles are kept.
    pub fn prepared_handles(&self) -> usize {
        self.handles.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn observe_failure(&self, error: SourceError, started: Instant) -> SourceError {
        self.circuit.record(Some(&error));
        self.note(Some(&error));
        if let Some(observer) = &self.observer {
            observer(self.name.as_str(), error.status_label(), started.elapsed());
        }
        tracing::warn!(source = %self.name, error = %error.kind, "remote query failed");
        error
    }
}

/// The rest of a result after the first batch, under the total deadline.
struct Tail {
    source: Arc<RemoteSource>,
    rest: BoxStream<'static, Result<RecordBatch, FlightError>>,
    first: Option<RecordBatch>,
    total_deadline: tokio::time::Instant,
    started: Instant,
    expected: SchemaRef,
    done: bool,
}

impl Tail {
    async fn next(mut self) -> Option<(datafusion::error::Result<RecordBatch>, Tail)> {
        if self.done {
            return None;
        }
        let item = match self.first.take() {
            Some(batch) => Some(Ok(batch)),
            None => match tokio::time::timeout_at(self.total_deadline, self.rest.next()).await {
                Ok(item) => item.map(|r| r.map_err(|e| self.source.flight_error(e))),
                Err(_) => {
                    let after = self.source.deadlines.total;
                    Some(Err(self.source.error(SourceErrorKind::Timeout { phase: "end of the result", after })))
                }
            },
        };
        match item {
            None => {
                self.done = true;
                self.source.circuit.record(None);
                self.source.note(None);
                if let Some(observer) = &self.source.observer {
                    observer(self.source.name.as_str(), "ok", self.started.elapsed());
                }
                None
            }
            Some(Ok(batch)) => match check_schema(&batch, &self.expected) {
                Ok(()) => Some((Ok(batch), self)),
                Err(message) => {
                    self.done = true;
                    let e = self
                        .source
                        .observe_failure(self.source.error(SourceErrorKind::SchemaMismatch(message)), self.started);
                    Some((Err(e.into_datafusion()), self))
                }
            },
            Some(Err(e)) => {
                self.done = true;
                let e = self.source.observe_failure(e, self.started);
                Some((Err(e.into_datafusion()), self))
            }
        }
    }
}

/// A result dropped before its end (the caller went away, or the gateway
/// needed fewer rows, e.g. a LIMIT it applies itself) is reported as
/// `cancelled`, so every remote query shows up in the source metrics once.
impl Drop for Tail {
    fn drop(&mut self) {
        if !self.done
            && let Some(observer) = &self.source.observer
        {
            observer(self.source.name.as_str(), "cancelled", self.started.elapsed());
        }
    }
}

fn check_schema(batch: &RecordBatch, expected: &SchemaRef) -> Result<(), String> {
    check_fields(&batch.schema(), expected)
}

/// Whether `got` has the expected number of columns and their types.
fn check_fields(got: &SchemaRef, expected: &SchemaRef) -> Result<(), String> {
    if got.fields().len() != expected.fields().len() {
        return Err(format!("expected {} columns, got {}", expected.fields().len(), got.fields().len()));
    }
    for (g, e) in got.fields().iter().zip(expected.fields()) {
        if g.data_type() != e.data_type() {
            return Err(format!("column `{}` is {}, expected {}", e.name(), g.data_type(), e.data_type()));
        }
    }
    Ok(())
}

/// Streams every endpoint of `info` in order.
fn endpoint_stream(
    client: FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> BoxStream<'static, Result<RecordBatch, FlightError>> {
    futures::stream::iter(info.endpoint)
        .then(move |endpoint| {
            let mut client = client.clone();
            async move {
                let ticket = endpoint
                    .ticket
                    .ok_or_else(|| FlightError::ProtocolError("endpoint without a ticket".to_string()))?;
                client.do_get(ticket).await
            }
        })
        .try_flatten()
        .boxed()
}

async fn fetch_all(
    client: &mut FlightSqlServiceClient<Channel>,
    info: FlightInfo,
) -> Result<Vec<RecordBatch>, FlightError> {
    endpoint_stream(client.clone(), info).try_collect().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable() -> SourceError {
        SourceError {
            source_name: SourceName::parse("court").expect("source name"),
            kind: SourceErrorKind::Unavailable("refused".into()),
        }
    }

    #[test]
    fn circuit_opens_after_consecutive_failures_and_half_opens_later() {
        let circuit = Circuit::default();
        for _ in 0..CIRCUIT_FAILURE_THRESHOLD - 1 {
            circuit.record(Some(&unavailable()));
            assert!(circuit.check().is_ok(), "still closed below the threshold");
        }
        circuit.record(Some(&unavailable()));
        assert!(circuit.check().is_err(), "open at the threshold");
        // A query error (not an outage) does not count.
        let other = Circuit::default();
        for _ in 0..10 {
            other.record(Some(&SourceError {
                source_name: SourceName::parse("x").expect("source name"),
                kind: SourceErrorKind::Failed("bad sql".into()),
            }));
        }
        assert!(other.check().is_ok());
        // Half-open after the window: one call goes through; success closes it.
        *circuit.open_until.lock().expect("lock") = Some(Instant::now() - Duration::from_millis(1));
        assert!(circuit.check().is_ok());
        circuit.record(None);
        circuit.record(Some(&unavailable()));
        assert!(circuit.check().is_ok(), "a success reset the count");
    }
}
