//! The Flight SQL service and its server loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery, DoPutPreparedStatementResult,
    ProstMessageExt, SqlInfo, SqlSupportedTransaction, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc, Ticket,
};
use creditgate_certs::revocation::CloseReason;
use creditgate_certs::tls::{ConnInfo, TlsConn};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::cap_message;
use crate::direct::{DirectPreparedQuery, UNKNOWN_HANDLE, decode_parameters};
use crate::normalize::{normalize_batch, normalize_schema};
use crate::ticket::{TicketError, TicketSigner};

/// Default cap on a single gRPC message, both directions (tonic's 4 MiB is too small).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Everything the backend may use to decide who is calling.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The verified connection (absent only if the server was not started with [`serve`]).
    pub conn: Option<ConnInfo>,
    /// gRPC call headers (purpose codes and the like; never identity).
    pub metadata: MetadataMap,
}

impl RequestContext {
    fn from_request<T>(request: &Request<T>) -> Self {
        Self { conn: request.extensions().get::<ConnInfo>().cloned(), metadata: request.metadata().clone() }
    }
}

/// One table a caller may see, for the metadata calls.
#[derive(Debug, Clone)]
pub struct TableEntry {
    /// Catalog name.
    pub catalog: String,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Arrow schema of the table as the caller sees it.
    pub arrow_schema: SchemaRef,
}

/// The query engine behind a Flight SQL front end.
#[tonic::async_trait]
pub trait QueryBackend: Send + Sync + 'static {
    /// The authenticated caller, produced once per request.
    type Caller: Send + Sync + 'static;
    /// The backend's error type; its conversion to `Status` is the one place
    /// where its failures get gRPC codes.
    type Error: Into<Status> + Send + 'static;

    /// Decides who is calling. Identity comes from the verified certificate in
    /// `ctx.conn`, never from headers.
    async fn authenticate(&self, ctx: &RequestContext) -> Result<Self::Caller, Self::Error>;

    /// Bytes that bind a ticket to this caller (certificate fingerprint and
    /// anything else the ticket must not be replayed without).
    fn binding(&self, caller: &Self::Caller) -> Vec<u8>;

    /// Plans `sql` for `caller` and returns the output schema.
    async fn plan(&self, caller: &Self::Caller, sql: &str) -> Result<SchemaRef, Self::Error>;

    /// Plans and executes `sql` for `caller`.
    async fn execute(&self, caller: &Self::Caller, sql: &str) -> Result<SendableRecordBatchStream, Self::Error>;

    /// Converts an error raised while streaming.
    fn stream_error(&self, caller: &Self::Caller, error: DataFusionError) -> Self::Error;

    /// The error that ends a result stream when the server stops accepting
    /// the connection's certificate while the stream runs (revoked, its CRL
    /// expired under enforcement): the same refusal a new request on that
    /// connection gets.
    fn connection_refused(&self, caller: &Self::Caller, reason: CloseReason) -> Self::Error;

    /// The tables `caller` may see.
    async fn tables(&self, caller: &Self::Caller) -> Result<Vec<TableEntry>, Self::Error>;

    /// Prepares `sql` (Flight SQL `CreatePreparedStatement`). The returned
    /// key is sealed into the handle the client holds (signed and bound to
    /// the caller like a ticket) and comes back to the `*_prepared` calls.
    /// By default the key is the SQL itself and the statement takes no
    /// parameters.
    async fn prepare(&self, caller: &Self::Caller, sql: &str) -> Result<PreparedStatement, Self::Error> {
        let schema = self.plan(caller, sql).await?;
        Ok(PreparedStatement {
            key: sql.to_string(),
            dataset_schema: schema,
            parameter_schema: Arc::new(Schema::empty()),
        })
    }

    /// Binds the parameter rows of `batches` (Flight SQL `DoPut` on a
    /// prepared statement) to the statement of `key`, returning the key of
    /// the bound statement (sent back to the client as its new handle).
    /// `None`: this backend takes no parameters (the default).
    async fn bind(
        &self,
        _caller: &Self::Caller,
        _key: &str,
        _batches: Vec<arrow::array::RecordBatch>,
    ) -> Option<Result<String, Self::Error>> {
        None
    }

    /// The output schema of the prepared statement of `key` (`GetFlightInfo`).
    async fn plan_prepared(&self, caller: &Self::Caller, key: &str) -> Result<SchemaRef, Self::Error> {
        self.plan(caller, key).await
    }

    /// Executes the prepared statement of `key` (`DoGet`).
    async fn execute_prepared(
        &self,
        caller: &Self::Caller,
        key: &str,
    ) -> Result<SendableRecordBatchStream, Self::Error> {
        self.execute(caller, key).await
    }

    /// Executes the prepared statement of `key` once for every bound row
    /// without returning the rows, and returns how many there were (Flight
    /// SQL `DoPut` with `CommandPreparedStatementUpdate`, what ADBC's
    /// `executemany` sends). `None`: not offered (the default).
    async fn execute_prepared_counting(&self, _caller: &Self::Caller, _key: &str) -> Option<Result<i64, Self::Error>> {
        None
    }

    /// Releases the prepared statement of `key` (`ClosePreparedStatement`).
    async fn close_prepared(&self, _caller: &Self::Caller, _key: &str) {}

    /// Whether this backend runs direct prepared tickets
    /// ([`crate::DirectPreparedQuery`]: a handle and one row of parameters in
    /// the `DoGet` ticket). The default is no: such a ticket is refused as
    /// unsupported before its handle is even looked at.
    fn offers_direct_prepared(&self) -> bool {
        false
    }

    /// Executes the prepared statement of `key` with one row of `parameters`
    /// (a direct prepared ticket). Called only when
    /// [`QueryBackend::offers_direct_prepared`] says so; `None` (the
    /// default): not offered, and the ticket is refused.
    async fn execute_with(
        &self,
        _caller: &Self::Caller,
        _key: &str,
        _parameters: arrow::array::RecordBatch,
    ) -> Option<Result<SendableRecordBatchStream, Self::Error>> {
        None
    }

    /// The status of a ticket or handle that does not open for this caller
    /// (the backend may record the refusal).
    async fn ticket_refused(&self, _caller: &Self::Caller, error: TicketError) -> Status {
        match error {
            TicketError::Malformed => Status::invalid_argument(error.to_string()),
            TicketError::WrongCaller => Status::permission_denied(error.to_string()),
        }
    }

    /// Custom Flight actions this backend offers: (type, description).
    fn custom_actions(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Runs a custom action; `None` when `action_type` is not one of [`QueryBackend::custom_actions`].
    async fn custom_action(
        &self,
        _caller: &Self::Caller,
        _action_type: &str,
        _body: &[u8],
    ) -> Option<Result<Vec<u8>, Self::Error>> {
        None
    }
}

/// A statement prepared by a [`QueryBackend`].
#[derive(Debug, Clone)]
pub struct PreparedStatement {
    /// What the handle carries (sealed) back to the backend.
    pub key: String,
    /// The schema of its results (normalised by the front end).
    pub dataset_schema: SchemaRef,
    /// The schema of one row of its parameters (empty: none).
    pub parameter_schema: SchemaRef,
}

/// Most parameter rows one `DoPut` may bind.
pub const MAX_BOUND_ROWS: usize = 10_000;

/// Static facts the front end reports through `GetSqlInfo`.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Server name reported to clients.
    pub server_name: String,
    /// Maximum gRPC message size in bytes.
    pub max_message_bytes: usize,
    /// At this age a connection is sent HTTP/2 GOAWAY and its calls in
    /// flight may finish; `None`: no limit.
    pub max_connection_age: Option<Duration>,
    /// Key of the ticket signatures. Servers that give it the same key
    /// (replicas behind one load balancer) accept each other's tickets;
    /// `None`: a fresh random key (tickets serve this process only).
    pub ticket_key: Option<Vec<u8>>,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            server_name: "creditgate".to_string(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_connection_age: None,
            ticket_key: None,
        }
    }
}

/// A Flight SQL service in front of a [`QueryBackend`].
pub struct FlightSqlFront<B: QueryBackend> {
    backend: Arc<B>,
    signer: TicketSigner,
    sql_info: Arc<SqlInfoData>,
}

impl<B: QueryBackend> FlightSqlFront<B> {
    /// A front end for `backend`.
    pub fn new(backend: Arc<B>, config: &FrontConfig) -> Result<Self, ServeError> {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, config.server_name.as_str());
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        info.append(SqlInfo::SqlDdlCatalog, false);
        info.append(SqlInfo::SqlDdlSchema, false);
        info.append(SqlInfo::SqlDdlTable, false);
        let sql_info = info.build().map_err(ServeError::SqlInfo)?;
        let signer = match &config.ticket_key {
            Some(key) => TicketSigner::with_key(key),
            None => TicketSigner::random(),
        };
        Ok(Self { backend, signer, sql_info: Arc::new(sql_info) })
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<B::Caller, Status> {
        let ctx = RequestContext::from_request(request);
        self.backend.authenticate(&ctx).await.map_err(Into::into)
    }

    async fn open_ticket(&self, caller: &B::Caller, handle: &[u8]) -> Result<String, Status> {
        match self.signer.open(&self.backend.binding(caller), handle) {
            Ok(opened) => Ok(opened),
            Err(error) => Err(self.backend.ticket_refused(caller, error).await),
        }
    }

    fn info_for(&self, schema: &Schema, ticket: Vec<u8>, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding schema: {e}")))
            .map(|info| info.with_endpoint(endpoint).with_descriptor(descriptor).with_ordered(true))
    }

    async fn stream_sql(
        &self,
        caller: B::Caller,
        conn: Option<ConnInfo>,
        sql: &str,
    ) -> Result<Response<DoGetStream>, Status> {
        let stream = self.backend.execute(&caller, sql).await.map_err(Into::into)?;
        self.stream_result(caller, conn, stream)
    }

    fn stream_result(
        &self,
        caller: B::Caller,
        conn: Option<ConnInfo>,
        stream: SendableRecordBatchStream,
    ) -> Result<Response<DoGetStream>, Status> {
        let schema = normalize_schema(&stream.schema());
        let backend = Arc::clone(&self.backend);
        let target = Arc::clone(&schema);
        let caller = Arc::new(caller);
        let stream_caller = Arc::clone(&caller);
        let batches = stream.map(move |item| match item {
            Ok(batch) => normalize_batch(batch, &target).map_err(FlightError::Arrow),
            Err(error) => {
                let status: Status = backend.stream_error(&stream_caller, error).into();
                Err(FlightError::Tonic(Box::new(status)))
            }
        });
        // A certificate refused while the stream runs ends it with the
        // refusal's status, while the transport still carries it.
        let backend = Arc::clone(&self.backend);
        let refused = async move {
            let Some(conn) = conn else { return std::future::pending().await };
            let reason = certificate_refused(&conn).await;
            let status: Status = backend.connection_refused(&caller, reason).into();
            FlightError::Tonic(Box::new(status))
        };
        let batches = EndOnRefusal { stream: batches.boxed(), refused: Some(Box::pin(refused)) };
        let encoded =
            FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(flight_error_to_status);
        Ok(Response::new(Box::pin(encoded)))
    }

    fn encode_batch(schema: SchemaRef, batch: arrow::array::RecordBatch) -> Response<DoGetStream> {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async move { Ok(batch) }))
            .map_err(flight_error_to_status);
        Response::new(Box::pin(stream))
    }
}

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The connection a request came on (absent outside [`serve`]).
fn conn_of<T>(request: &Request<T>) -> Option<ConnInfo> {
    request.extensions().get::<ConnInfo>().cloned()
}

/// Resolves when the server stops accepting `conn`'s certificate (never
/// for a connection that only reaches its maximum age: its streams finish).
async fn certificate_refused(conn: &ConnInfo) -> CloseReason {
    let reason = conn.closing().await;
    if reason.invalidates_certificate() {
        return reason;
    }
    // Draining for its age; a revocation may still follow.
    loop {
        if let Some(reason) = conn.close_reason().filter(|r| r.invalidates_certificate()) {
            return reason;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A result stream that ends with an error once `refused` resolves.
struct EndOnRefusal<S> {
    stream: S,
    refused: Option<Pin<Box<dyn Future<Output = FlightError> + Send>>>,
}

impl<S> Stream for EndOnRefusal<S>
where
    S: Stream<Item = Result<arrow::array::RecordBatch, FlightError>> + Unpin,
{
    type Item = Result<arrow::array::RecordBatch, FlightError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let Some(refused) = self.refused.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(error) = refused.as_mut().poll(cx) {
            self.refused = None;
            return Poll::Ready(Some(Err(error)));
        }
        let next = Pin::new(&mut self.stream).poll_next(cx);
        if matches!(next, Poll::Ready(None)) {
            self.refused = None;
        }
        next
    }
}

/// The parameter rows of a `DoPut` on a prepared statement, decoded (at
/// most [`MAX_BOUND_ROWS`]).
async fn read_parameters(stream: PeekableFlightDataStream) -> Result<Vec<arrow::array::RecordBatch>, Status> {
    let mut decoded = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
        // A message with no IPC header (only the descriptor) carries nothing to decode.
        stream
            .try_filter(|data| std::future::ready(!data.data_header.is_empty()))
            .map_err(|status| FlightError::Tonic(Box::new(status))),
    );
    let mut batches = Vec::new();
    let mut rows = 0usize;
    while let Some(batch) = decoded.next().await {
        let batch = batch.map_err(|e| match e {
            FlightError::Tonic(status) => *status,
            other => Status::invalid_argument(cap_message(&format!("the parameters cannot be read: {other}"))),
        })?;
        rows += batch.num_rows();
        if rows > MAX_BOUND_ROWS {
            return Err(Status::invalid_argument(format!(
                "more than {MAX_BOUND_ROWS} parameter rows in one binding; bind fewer rows per execution"
            )));
        }
        batches.push(batch);
    }
    Ok(batches)
}

fn flight_error_to_status(error: FlightError) -> Status {
    match error {
        FlightError::Tonic(status) => *status,
        other => Status::internal(cap_message(&other.to_string())),
    }
}

fn arrow_status(error: FlightError) -> Status {
    Status::internal(cap_message(&format!("building a metadata result: {error}")))
}

fn schema_ipc(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let message: IpcMessage = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding schema: {e}")))?;
    Ok(message.0)
}

#[tonic::async_trait]
impl<B: QueryBackend> FlightSqlService for FlightSqlFront<B> {
    type FlightService = FlightSqlFront<B>;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        // Authentication is the client certificate; the handshake only confirms it.
        self.caller(&request).await?;
        let response = HandshakeResponse { protocol_version: 0, payload: Default::default() };
        Ok(Response::new(Box::pin(futures::stream::once(async move { Ok(response) }))))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let schema = self.backend.plan(&caller, &query.query).await.map_err(Into::into)?;
        let schema = normalize_schema(&schema);
        let handle = self.signer.seal(&self.backend.binding(&caller), &query.query);
        let ticket = TicketStatementQuery { statement_handle: handle.into() }.as_any().encode_to_vec();
        Ok(Response::new(self.info_for(&schema, ticket, request.into_inner())?))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = self.caller(&request).await?;
        let key = self.open_ticket(&caller, &query.prepared_statement_handle).await?;
        let planned = self.backend.plan_prepared(&caller, &key).await.map_err(Into::into)?;
        let schema = normalize_schema(&planned);
        let ticket = query.as_any().encode_to_vec();
        Ok(Response::new(self.info_for(&schema, ticket, request.into_inner())?))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.into_builder().schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Ok(Response::new(self.info_for(&schema, query.as_any().encode_to_vec(), request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let sql = self.open_ticket(&caller, &ticket.statement_handle).await?;
        self.stream_sql(caller, conn_of(&request), &sql).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let key = self.open_ticket(&caller, &query.prepared_statement_handle).await?;
        let stream = self.backend.execute_prepared(&caller, &key).await.map_err(Into::into)?;
        self.stream_result(caller, conn_of(&request), stream)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let tables = self.backend.tables(&caller).await.map_err(Into::into)?;
        let mut builder = query.into_builder();
        let mut seen = std::collections::BTreeSet::new();
        for entry in tables {
            if seen.insert(entry.catalog.clone()) {
                builder.append(entry.catalog);
            }
        }
        let schema = builder.schema();
        let batch = builder.build().map_err(arrow_status)?;
        Ok(Self::encode_batch(schema, batch))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let tables = self.backend.tables(&caller).await.map_err(Into::into)?;
        let mut builder = query.into_builder();
        let mut seen = std::collections::BTreeSet::new();
        for entry in tables {
            if seen.insert((entry.catalog.clone(), entry.schema.clone())) {
                builder.append(entry.catalog, entry.schema);
            }
        }
        let schema = builder.schema();
        let batch = builder.build().map_err(arrow_status)?;
        Ok(Self::encode_batch(schema, batch))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = self.caller(&request).await?;
        let tables = self.backend.tables(&caller).await.map_err(Into::into)?;
        let mut builder = query.into_builder();
        for entry in tables {
            let schema = normalize_schema(&entry.arrow_schema);
            builder.append(&entry.catalog, &entry.schema, &entry.table, "TABLE", &schema).map_err(arrow_status)?;
        }
        let schema = builder.schema();
        let batch = builder.build().map_err(arrow_status)?;
        Ok(Self::encode_batch(schema, batch))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        let schema = builder.schema();
        let batch = builder.build().map_err(arrow_status)?;
        Ok(Self::encode_batch(schema, batch))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.caller(&request).await?;
        let builder = query.into_builder(&self.sql_info);
        let schema = builder.schema();
        let batch = builder.build().map_err(arrow_status)?;
        Ok(Self::encode_batch(schema, batch))
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let key = self.open_ticket(&caller, &query.prepared_statement_handle).await?;
        let batches = read_parameters(request.into_inner()).await?;
        match self.backend.bind(&caller, &key, batches.clone()).await {
            Some(bound) => {
                let bound = bound.map_err(Into::into)?;
                let handle = self.signer.seal(&self.backend.binding(&caller), &bound);
                Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(handle.into()) })
            }
            // An empty binding (some clients send one) is accepted.
            None if batches.iter().all(|b| b.num_rows() == 0) => {
                Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
            }
            None => Err(Status::invalid_argument(
                "prepared statement parameters are not supported here; put literal values in the SQL",
            )),
        }
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let caller = self.caller(&request).await?;
        let key = self.open_ticket(&caller, &query.prepared_statement_handle).await?;
        match self.backend.execute_prepared_counting(&caller, &key).await {
            Some(counted) => counted.map_err(Into::into),
            None => Err(Status::unimplemented("this server is read-only: it runs no updates")),
        }
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = self.caller(&request).await?;
        let prepared = self.backend.prepare(&caller, &query.query).await.map_err(Into::into)?;
        let schema = normalize_schema(&prepared.dataset_schema);
        let handle = self.signer.seal(&self.backend.binding(&caller), &prepared.key);
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: schema_ipc(&schema)?,
            parameter_schema: schema_ipc(&prepared.parameter_schema)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let caller = self.caller(&request).await?;
        // Closing a handle that does not open for this caller releases nothing and is not an error.
        if let Ok(key) = self.signer.open(&self.backend.binding(&caller), &query.prepared_statement_handle) {
            self.backend.close_prepared(&caller, &key).await;
        }
        Ok(())
    }

    /// Besides the tickets it issues, the service accepts a `CommandStatementQuery`
    /// packed as the DoGet ticket itself ("direct statement"): one round trip
    /// instead of GetFlightInfo + DoGet, used by the gateway towards its
    /// connectors. It grants nothing more than GetFlightInfo would: the caller
    /// is authenticated on this call and the statement runs as its own.
    /// Backends that offer it also take a [`DirectPreparedQuery`]: a prepared
    /// statement's handle (signed for this caller) with one row of
    /// parameters.
    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        if message.is::<DirectPreparedQuery>() && self.backend.offers_direct_prepared() {
            let caller = self.caller(&request).await?;
            let query = message
                .unpack::<DirectPreparedQuery>()
                .map_err(|e| Status::invalid_argument(format!("malformed direct prepared ticket: {e}")))?
                .ok_or_else(|| Status::invalid_argument("malformed direct prepared ticket"))?;
            let Ok(key) = self.signer.open(&self.backend.binding(&caller), &query.prepared_statement_handle) else {
                return Err(Status::not_found(UNKNOWN_HANDLE));
            };
            let parameters = decode_parameters(&query.parameters)
                .map_err(|e| Status::invalid_argument(format!("direct prepared ticket: {e}")))?;
            let Some(stream) = self.backend.execute_with(&caller, &key, parameters).await else {
                return Err(Status::unimplemented("direct prepared tickets are not offered here"));
            };
            let stream = stream.map_err(Into::into)?;
            return self.stream_result(caller, conn_of(&request), stream);
        }
        if message.is::<CommandStatementQuery>() {
            let caller = self.caller(&request).await?;
            let query = message
                .unpack::<CommandStatementQuery>()
                .map_err(|e| Status::invalid_argument(format!("malformed statement ticket: {e}")))?
                .ok_or_else(|| Status::invalid_argument("malformed statement ticket"))?;
            return self.stream_sql(caller, conn_of(&request), &query.query).await;
        }
        Err(Status::unimplemented(format!("unsupported ticket type {}", cap_message(&message.type_url))))
    }

    async fn do_action_fallback(
        &self,
        request: Request<arrow_flight::Action>,
    ) -> Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        let caller = self.caller(&request).await?;
        let action = request.into_inner();
        match self.backend.custom_action(&caller, &action.r#type, &action.body).await {
            Some(Ok(body)) => {
                let result = arrow_flight::Result { body: body.into() };
                Ok(Response::new(Box::pin(futures::stream::once(async move { Ok(result) }))))
            }
            Some(Err(error)) => Err(error.into()),
            None => Err(Status::invalid_argument(format!(
                "unknown action `{}`; see ListActions",
                cap_message(&action.r#type)
            ))),
        }
    }

    async fn list_custom_actions(&self) -> Option<Vec<Result<arrow_flight::ActionType, Status>>> {
        let actions = self.backend.custom_actions();
        (!actions.is_empty()).then(|| {
            actions
                .into_iter()
                .map(|(r#type, description)| Ok(arrow_flight::ActionType { r#type, description }))
                .collect()
        })
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Serves `backend` over Flight SQL on the TLS connections of `incoming` until
/// `shutdown` completes.
pub async fn serve<B, S>(
    backend: Arc<B>,
    config: FrontConfig,
    incoming: S,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError>
where
    B: QueryBackend,
    S: Stream<Item = Result<TlsConn, std::io::Error>> + Send + 'static,
{
    let front = FlightSqlFront::new(backend, &config)?;
    let service = FlightServiceServer::new(front)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_nodelay(true);
    if let Some(age) = config.max_connection_age {
        builder = builder.max_connection_age(age);
    }
    builder.add_service(service).serve_with_incoming_shutdown(incoming, shutdown).await.map_err(ServeError::Transport)
}

/// Why the Flight SQL server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The static `GetSqlInfo` table could not be built.
    #[error("building the Flight SQL server information: {0}")]
    SqlInfo(FlightError),
    /// The gRPC transport failed.
    #[error("Flight SQL transport: {0}")]
    Transport(tonic::transport::Error),
}
