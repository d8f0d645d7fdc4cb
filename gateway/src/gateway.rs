//! The gateway core: callers, per-request sessions, planning and execution,
//! shared by every front end.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use creditgate_certs::identity::Identity;
use creditgate_certs::tls::{self, ClientTrust, ConnInfo};
use creditgate_flight::engine::{locked_down_runtime, read_only_sql_options, session};
use creditgate_flight::{FrontConfig, ObservedStream, QueryBackend, RequestContext, TableEntry};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, SessionContext};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{CallerConfig, GatewayConfig};
use crate::error::GatewayError;
use crate::federation::{CATALOG, Federation};
use crate::metrics::Metrics;

/// How often sources that have not answered yet are retried.
pub const SOURCE_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Which front end a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// Arrow Flight SQL.
    Flight,
    /// HTTP/JSON.
    Http,
}

impl Frontend {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Frontend::Flight => "flight",
            Frontend::Http => "http",
        }
    }
}

/// An authenticated caller, for one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The configured caller name.
    pub name: String,
    /// The verified certificate identity.
    pub identity: Arc<Identity>,
    /// The request id (also in logs).
    pub request_id: String,
    /// The front end.
    pub frontend: Frontend,
}

/// The gateway.
pub struct Gateway {
    config: GatewayConfig,
    federation: Arc<Federation>,
    metrics: Arc<Metrics>,
    runtime: Arc<RuntimeEnv>,
}

impl Gateway {
    /// Builds the federation and asks every connector for its tables once.
    /// Sources that do not answer are retried in the background.
    pub async fn new(config: GatewayConfig) -> Result<Arc<Self>, GatewayError> {
        config.validate().map_err(GatewayError::Config)?;
        let metrics = Arc::new(Metrics::default());
        let federation = Arc::new(Federation::new(&config, Arc::clone(&metrics))?);
        let runtime = locked_down_runtime(config.server.memory_limit_bytes)
            .map_err(|e| GatewayError::Config(format!("server.memory_limit_bytes: {}", e.strip_backtrace())))?;
        for failure in federation.refresh().await {
            tracing::warn!(source = %failure.source_name, "source not available at start-up; will retry");
        }
        federation.spawn_refresher(SOURCE_RETRY_INTERVAL);
        Ok(Arc::new(Self { config, federation, metrics, runtime }))
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The federation.
    pub fn federation(&self) -> &Arc<Federation> {
        &self.federation
    }

    /// Maps the verified connection to a configured caller.
    pub fn authenticate(&self, conn: Option<&ConnInfo>, frontend: Frontend) -> Result<Caller, GatewayError> {
        let identity = conn.and_then(|c| c.identity.clone()).ok_or(GatewayError::Unauthenticated)?;
        let known: Option<&CallerConfig> = self.config.callers.iter().find(|c| identity.matches(&c.identity));
        match known {
            Some(caller) => {
                Ok(Caller { name: caller.name.clone(), identity, request_id: crate::request_id(), frontend })
            }
            None => {
                self.metrics.denial(frontend.label(), "CG-AUTH-002");
                Err(GatewayError::UnknownCaller(identity.name()))
            }
        }
    }

    /// A fresh session whose catalog holds the datasets available to `caller`.
    pub fn session_for(&self, _caller: &Caller) -> SessionContext {
        let ctx = session(Arc::clone(&self.runtime), CATALOG, "public", true);
        ctx.register_catalog(CATALOG, self.federation.catalog());
        ctx
    }

    /// Plans `sql` for `caller`.
    pub async fn plan(&self, caller: &Caller, sql: &str) -> Result<DataFrame, GatewayError> {
        let statement = crate::sql_gate::parse_query(sql)?;
        let state = self.session_for(caller).state();
        let plan = match state.statement_to_plan(statement).await {
            Ok(plan) => plan,
            Err(error) => return Err(self.planning_error(sql, error)),
        };
        read_only_sql_options().verify_plan(&plan).map_err(|e| GatewayError::InvalidQuery(e.strip_backtrace()))?;
        Ok(DataFrame::new(state, plan))
    }

    fn planning_error(&self, sql: &str, error: DataFusionError) -> GatewayError {
        // A dataset whose source has not answered yet is "unavailable", not "unknown".
        let lowered = sql.to_lowercase();
        for dataset in self.federation.datasets() {
            if lowered.contains(&dataset.name) {
                if let Some(source) = self.federation.unavailable_source_of(&dataset.name) {
                    return GatewayError::Source(creditgate_remote::SourceError {
                        source_name: source,
                        kind: creditgate_remote::SourceErrorKind::Unavailable(
                            "the gateway has not reached it yet; retry shortly".to_string(),
                        ),
                    });
                }
            }
        }
        GatewayError::from_datafusion(error, true)
    }

    /// Plans and executes `sql`, returning a stream that records rows, bytes
    /// and duration when it ends.
    pub async fn query(&self, caller: &Caller, sql: &str) -> Result<SendableRecordBatchStream, GatewayError> {
        let started = Instant::now();
        tracing::debug!(sql = %sql, "query");
        let frame = self.plan(caller, sql).await?;
        let stream = frame.execute_stream().await.map_err(|e| GatewayError::from_datafusion(e, false))?;
        let metrics = Arc::clone(&self.metrics);
        let frontend = caller.frontend.label();
        let span = tracing::Span::current();
        Ok(Box::pin(ObservedStream::new(stream, move |report| {
            let _entered = span.enter();
            metrics.request(frontend, report.outcome.label(), started.elapsed());
            tracing::info!(
                rows = report.rows,
                bytes = report.bytes,
                duration_ms = started.elapsed().as_millis() as u64,
                outcome = report.outcome.label(),
                "query finished"
            );
        })))
    }

    /// The tables a caller may see, with their schemas.
    pub fn tables_for(&self, _caller: &Caller) -> Vec<TableEntry> {
        self.federation
            .available()
            .into_iter()
            .map(|(d, schema)| TableEntry {
                catalog: CATALOG.to_string(),
                schema: d.schema_name,
                table: d.table_name,
                arrow_schema: schema,
            })
            .collect()
    }

    /// Binds both listeners and serves until [`RunningGateway::stop`].
    pub async fn start(self: Arc<Self>) -> Result<RunningGateway, GatewayError> {
        let server = &self.config.server;
        let trust = ClientTrust {
            ca_file: server.client_ca.clone(),
            crl_files: server.crls.clone(),
            enforce_crl_expiry: server.enforce_crl_expiry,
        };
        let handshake = Duration::from_millis(server.handshake_timeout_ms);
        let flight_tls = tls::server_config(&server.cert, &server.key, Some(&trust), &[b"h2"])?;
        let http_tls = tls::server_config(&server.cert, &server.key, Some(&trust), &[b"h2", b"http/1.1"])?;
        let bind = |addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| GatewayError::Server(format!("cannot listen on {addr}: {e}")))
        };
        let flight_listener = bind(server.flight_listen).await?;
        let http_listener = bind(server.http_listen).await?;
        let flight_addr = flight_listener.local_addr().map_err(|e| GatewayError::Server(e.to_string()))?;
        let http_addr = http_listener.local_addr().map_err(|e| GatewayError::Server(e.to_string()))?;
        let (tx, rx) = watch::channel(false);

        let flight = {
            let gateway = Arc::clone(&self);
            let mut rx = rx.clone();
            let incoming = tls::incoming(flight_listener, flight_tls, handshake);
            tokio::spawn(
                async move {
                    let shutdown = async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    };
                    let front = FrontConfig { server_name: "creditgate gateway".to_string(), ..FrontConfig::default() };
                    creditgate_flight::serve(gateway, front, incoming, shutdown)
                        .await
                        .map_err(|e| GatewayError::Server(e.to_string()))
                }
                .instrument(tracing::info_span!("flight", %flight_addr)),
            )
        };
        let http = {
            let gateway = Arc::clone(&self);
            let incoming = tls::incoming(http_listener, http_tls, handshake);
            tokio::spawn(crate::http::serve(gateway, incoming, rx).instrument(tracing::info_span!("http", %http_addr)))
        };
        tracing::info!(%flight_addr, %http_addr, "gateway listening");
        Ok(RunningGateway { flight_addr, http_addr, stop: tx, handles: vec![flight, http] })
    }
}

/// A gateway serving in the background.
pub struct RunningGateway {
    /// Flight SQL address.
    pub flight_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<Result<(), GatewayError>>>,
}

impl RunningGateway {
    /// Stops accepting, lets in-flight requests finish, and waits.
    pub async fn stop(self) -> Result<(), GatewayError> {
        let _ = self.stop.send(true);
        for handle in self.handles {
            match handle.await {
                Ok(result) => result?,
                Err(e) => return Err(GatewayError::Server(format!("listener task failed: {e}"))),
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl QueryBackend for Gateway {
    type Caller = (Caller, tracing::Span);
    type Error = GatewayError;

    async fn authenticate(&self, ctx: &RequestContext) -> Result<Self::Caller, GatewayError> {
        let caller = Gateway::authenticate(self, ctx.conn.as_ref(), Frontend::Flight)?;
        let span = tracing::info_span!(
            "request",
            request.id = %caller.request_id,
            client.name = %caller.name,
            frontend = "flight"
        );
        Ok((caller, span))
    }

    fn binding(&self, (caller, _): &Self::Caller) -> Vec<u8> {
        caller.identity.fingerprint.as_bytes().to_vec()
    }

    async fn plan(&self, (caller, span): &Self::Caller, sql: &str) -> Result<SchemaRef, GatewayError> {
        let frame = Gateway::plan(self, caller, sql).instrument(span.clone()).await?;
        Ok(Arc::new(frame.schema().as_arrow().clone()))
    }

    async fn execute(
        &self,
        (caller, span): &Self::Caller,
        sql: &str,
    ) -> Result<SendableRecordBatchStream, GatewayError> {
        let result = self.query(caller, sql).instrument(span.clone()).await;
        if let Err(e) = &result {
            self.metrics.request("flight", e.code().code, Duration::ZERO);
        }
        result
    }

    fn stream_error(&self, _caller: &Self::Caller, error: DataFusionError) -> GatewayError {
        GatewayError::from_datafusion(error, false)
    }

    async fn tables(&self, (caller, _): &Self::Caller) -> Result<Vec<TableEntry>, GatewayError> {
        Ok(self.tables_for(caller))
    }
}
