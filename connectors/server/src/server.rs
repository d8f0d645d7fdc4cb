//! The connector's query backend and server loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use creditgate_certs::identity::Identity;
use creditgate_certs::revocation::CloseReason;
use creditgate_certs::revocation::{DEFAULT_MAX_CONNECTION_AGE_GRACE, ReloadableTrust, RevocationOptions};
use creditgate_certs::tls::{ALPN_H2, ClientTrust, IncomingOptions};
use creditgate_flight::engine::{locked_down_runtime, read_only_sql_options, session};
use creditgate_flight::{FrontConfig, ObservedStream, PreparedStatement, QueryBackend, RequestContext, TableEntry};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, SessionContext};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use arrow::array::RecordBatch;

use crate::config::{ConnectorConfig, TableFormat};
use crate::error::{ConnectorError, from_datafusion};
use crate::served_log::{ServedLog, ServedRecord};
use crate::sources::open_table;
use crate::statements::{StatementCounts, Statements};

/// The catalog name every connector serves its tables under.
pub const CATALOG: &str = "creditgate";

/// A connector: the source's exposed tables behind an allow-list of callers.
pub struct Connector {
    config: ConnectorConfig,
    ctx: SessionContext,
    tables: Vec<TableEntry>,
    log: Arc<ServedLog>,
    statements: Statements,
}

/// A caller the connector accepted.
#[derive(Debug, Clone)]
pub struct ConnectorCaller {
    identity: Arc<Identity>,
}

impl Connector {
    /// Opens every configured table; fails naming the first file table that
    /// cannot be opened (a database table that cannot be opened is served as
    /// unavailable instead, see `database`).
    pub async fn open(config: ConnectorConfig) -> Result<Arc<Self>, ConnectorError> {
        config.validate()?;
        let runtime = locked_down_runtime(config.memory_limit_bytes)
            .map_err(|e| ConnectorError::Config(format!("memory_limit_bytes: {}", e.strip_backtrace())))?;
        let ctx = session(runtime, CATALOG, &config.name, false);
        let mut tables = Vec::with_capacity(config.tables.len());
        let mut pools = crate::database::Pools::default();
        for table in &config.tables {
            let provider = open_table(&ctx, table, &mut pools).await?;
            tables.push(TableEntry {
                catalog: CATALOG.to_string(),
                schema: config.name.clone(),
                table: table.name.clone(),
                arrow_schema: provider.schema(),
            });
            ctx.register_table(table.name.as_str(), provider)
                .map_err(|e| ConnectorError::Table { table: table.name.clone(), message: e.strip_backtrace() })?;
        }
        let log = Arc::new(ServedLog::open(&config.served_log)?);
        let file_tables = config
            .tables
            .iter()
            .filter(|t| matches!(t.format, TableFormat::Parquet | TableFormat::Csv))
            .map(|t| t.name.clone());
        let statements = Statements::new(file_tables);
        Ok(Arc::new(Self { config, ctx, tables, log, statements }))
    }

    /// The connector's configuration.
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// How often statements were planned from text and how often a kept
    /// plan was reused (prepared statements; see [`crate::statements`]).
    pub fn statement_counts(&self) -> StatementCounts {
        self.statements.counts()
    }

    /// How many files' metadata (Parquet footers and page indexes) the
    /// connector keeps between queries: DataFusion's runtime cache, bounded
    /// (50 MiB by default) and checked against each file's size and
    /// modification time when it is listed, so a file rewritten in place is
    /// read anew.
    pub fn cached_file_metadata(&self) -> usize {
        self.ctx.runtime_env().cache_manager.get_file_metadata_cache().len()
    }

    /// Runs the kept plan of `sql` with `parameters` bound (a direct prepared ticket).
    async fn run_prepared(
        &self,
        caller: &ConnectorCaller,
        sql: &str,
        parameters: RecordBatch,
    ) -> Result<SendableRecordBatchStream, ConnectorError> {
        let started = chrono::Utc::now();
        tracing::debug!(caller = %caller.identity.name(), %sql, "prepared query");
        // A statement the cache let go of (or that another process prepared
        // under the same key) is planned again from its text.
        let planned = self.statements.get(&self.ctx, sql).await?;
        let plan = self.statements.bind(&self.ctx, &planned, &parameters).await?;
        let stream = datafusion::physical_plan::execute_stream(plan, self.ctx.task_ctx())
            .map_err(|e| from_datafusion(e, false))?;
        let values = (0..parameters.num_columns())
            .map(|i| {
                datafusion::common::ScalarValue::try_from_array(parameters.column(i), 0)
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            })
            .collect();
        Ok(self.served(caller, started, sql, values, stream, Arc::clone(planned.schema())))
    }

    /// `stream` conformed to `declared` (one schema per statement), with its
    /// served-log record written when it ends.
    fn served(
        &self,
        caller: &ConnectorCaller,
        started: chrono::DateTime<chrono::Utc>,
        sql: &str,
        parameters: Vec<String>,
        stream: SendableRecordBatchStream,
        declared: SchemaRef,
    ) -> SendableRecordBatchStream {
        let stream = creditgate_flight::conform_stream(stream, declared);
        let log = Arc::clone(&self.log);
        let record = ServedRecord {
            time: started.to_rfc3339(),
            caller: caller.identity.name(),
            fingerprint: caller.identity.fingerprint.clone(),
            sql: sql.to_string(),
            parameters,
            rows: 0,
            bytes: 0,
            duration_ms: 0,
            outcome: String::new(),
        };
        let observed = ObservedStream::new(stream, move |report| {
            let record = ServedRecord {
                rows: report.rows,
                bytes: report.bytes,
                duration_ms: report.duration.as_millis() as u64,
                outcome: report.outcome.label().to_string(),
                ..record
            };
            tracing::info!(
                client = %record.caller,
                rows = record.rows,
                bytes = record.bytes,
                duration_ms = record.duration_ms,
                outcome = %record.outcome,
                "served"
            );
            log.append(&record);
        });
        Box::pin(observed)
    }

    async fn dataframe(&self, sql: &str) -> Result<DataFrame, ConnectorError> {
        self.ctx.sql_with_options(sql, read_only_sql_options()).await.map_err(|e| from_datafusion(e, true))
    }

    /// Binds the configured address and serves until stopped.
    ///
    /// Client certificates are checked against `client_ca` and the CRLs in
    /// force at each handshake. The CRLs are read again on SIGHUP (Unix),
    /// when a file changes (checked every `crl_check_interval_seconds`) and
    /// when one passes its next update; after each reload, open connections
    /// whose certificate is no longer accepted are closed. Connections are
    /// closed gracefully at `max_connection_age_seconds`.
    pub async fn start(self: Arc<Self>) -> Result<RunningConnector, ConnectorError> {
        let trust = ReloadableTrust::new(
            ClientTrust {
                ca_file: self.config.client_ca.clone(),
                crl_files: self.config.crls.clone(),
                enforce_crl_expiry: self.config.enforce_crl_expiry,
            },
            RevocationOptions {
                check_interval: Duration::from_secs(self.config.crl_check_interval_seconds),
                max_connection_age: Some(self.max_connection_age()),
                max_connection_age_grace: DEFAULT_MAX_CONNECTION_AGE_GRACE,
            },
        )?;
        let server_config = trust.server_config(&self.config.cert, &self.config.key, &[ALPN_H2])?;
        let listener = tokio::net::TcpListener::bind(self.config.listen)
            .await
            .map_err(|e| ConnectorError::Server(format!("cannot listen on {}: {e}", self.config.listen)))?;
        let addr = listener.local_addr().map_err(|e| ConnectorError::Server(e.to_string()))?;
        let options = IncomingOptions {
            handshake_timeout: Duration::from_millis(self.config.handshake_timeout_ms),
            ..IncomingOptions::default()
        };
        let incoming = trust.incoming(listener, server_config, options);
        let (tx, rx) = oneshot::channel::<()>();
        let front = FrontConfig {
            server_name: format!("creditgate connector {}", self.config.name),
            max_connection_age: Some(self.max_connection_age()),
            ..FrontConfig::default()
        };
        let span = tracing::info_span!("connector", source = %self.config.name, %addr);
        tracing::info!(parent: &span, tables = self.tables.len(), "connector listening");
        let sighup = reload_on_sighup(&trust, &span);
        let handle = tokio::spawn(
            async move {
                let shutdown = async move {
                    let _ = rx.await;
                };
                creditgate_flight::serve(self, front, incoming, shutdown)
                    .await
                    .map_err(|e| ConnectorError::Server(e.to_string()))
            }
            .instrument(span),
        );
        Ok(RunningConnector { addr, trust, shutdown: Some(tx), handle, _sighup: sighup })
    }

    fn max_connection_age(&self) -> Duration {
        Duration::from_secs(self.config.max_connection_age_seconds)
    }
}

/// Reloads the CRLs on every SIGHUP while the connector runs.
fn reload_on_sighup(trust: &ReloadableTrust, span: &tracing::Span) -> Option<AbortOnDrop> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                let trust = trust.clone();
                let task = tokio::spawn(
                    async move {
                        while hangup.recv().await.is_some() {
                            tracing::info!("SIGHUP: reloading the CRLs");
                            // The report is logged by the reload itself.
                            let _ = trust.reload_async().await;
                        }
                    }
                    .instrument(span.clone()),
                );
                Some(AbortOnDrop(task))
            }
            Err(e) => {
                tracing::warn!(parent: span, error = %e, "cannot listen for SIGHUP; CRLs reload on file change only");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (trust, span);
        None
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connector serving in the background.
pub struct RunningConnector {
    /// The bound address.
    pub addr: SocketAddr,
    trust: ReloadableTrust,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ConnectorError>>,
    _sighup: Option<AbortOnDrop>,
}

impl RunningConnector {
    /// The client trust: [`ReloadableTrust::reload`] (what SIGHUP does),
    /// [`ReloadableTrust::counters`], [`ReloadableTrust::connections`],
    /// [`ReloadableTrust::last_report`].
    pub fn trust(&self) -> &ReloadableTrust {
        &self.trust
    }

    /// Stops accepting, lets in-flight calls finish, and waits for the server.
    pub async fn stop(mut self) -> Result<(), ConnectorError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the server ends.
    pub async fn wait(self) -> Result<(), ConnectorError> {
        match self.handle.await {
            Ok(result) => result,
            Err(e) => Err(ConnectorError::Server(format!("server task failed: {e}"))),
        }
    }

    /// Aborts the server at once (tests: simulate a dead source).
    pub fn abort(&self) {
        self.handle.abort();
    }
}

#[tonic::async_trait]
impl QueryBackend for Connector {
    type Caller = ConnectorCaller;
    type Error = ConnectorError;

    async fn authenticate(&self, ctx: &RequestContext) -> Result<ConnectorCaller, ConnectorError> {
        let conn = ctx.conn.as_ref().ok_or(ConnectorError::Unauthenticated)?;
        // A request that raced with the close of a connection whose
        // certificate was just revoked is refused like a new connection.
        if let Some(reason) = conn.close_reason().filter(|r| r.invalidates_certificate()) {
            return Err(ConnectorError::CertificateNoLongerAccepted(reason));
        }
        let identity = conn.identity.clone().ok_or(ConnectorError::Unauthenticated)?;
        if self.config.allowed_clients.iter().any(|allowed| identity.matches(allowed)) {
            Ok(ConnectorCaller { identity })
        } else {
            Err(ConnectorError::NotAllowed(identity.name()))
        }
    }

    fn binding(&self, caller: &ConnectorCaller) -> Vec<u8> {
        caller.identity.fingerprint.as_bytes().to_vec()
    }

    async fn plan(&self, _caller: &ConnectorCaller, sql: &str) -> Result<SchemaRef, ConnectorError> {
        let frame = self.dataframe(sql).await?;
        Ok(Arc::new(frame.schema().as_arrow().clone()))
    }

    async fn execute(&self, caller: &ConnectorCaller, sql: &str) -> Result<SendableRecordBatchStream, ConnectorError> {
        let started = chrono::Utc::now();
        tracing::debug!(caller = %caller.identity.name(), %sql, "query");
        let frame = self.dataframe(sql).await?;
        // One schema per statement: the stream carries the planned schema `plan` announced.
        let declared = Arc::new(frame.schema().as_arrow().clone());
        let stream = frame.execute_stream().await.map_err(|e| from_datafusion(e, false))?;
        Ok(self.served(caller, started, sql, Vec::new(), stream, declared))
    }

    async fn prepare(&self, _caller: &ConnectorCaller, sql: &str) -> Result<PreparedStatement, ConnectorError> {
        let planned = self.statements.get(&self.ctx, sql).await?;
        Ok(PreparedStatement {
            key: sql.to_string(),
            dataset_schema: Arc::clone(planned.schema()),
            parameter_schema: planned.parameter_schema(),
        })
    }

    fn offers_direct_prepared(&self) -> bool {
        true
    }

    async fn execute_with(
        &self,
        caller: &ConnectorCaller,
        sql: &str,
        parameters: RecordBatch,
    ) -> Option<Result<SendableRecordBatchStream, ConnectorError>> {
        Some(self.run_prepared(caller, sql, parameters).await)
    }

    fn stream_error(&self, _caller: &ConnectorCaller, error: DataFusionError) -> ConnectorError {
        from_datafusion(error, false)
    }

    fn connection_refused(&self, _caller: &ConnectorCaller, reason: CloseReason) -> ConnectorError {
        ConnectorError::CertificateNoLongerAccepted(reason)
    }

    async fn tables(&self, _caller: &ConnectorCaller) -> Result<Vec<TableEntry>, ConnectorError> {
        Ok(self.tables.clone())
    }
}
