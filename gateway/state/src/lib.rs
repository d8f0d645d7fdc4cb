//! creditgate's shared state in PostgreSQL, for several gateway replicas.
//!
//! A single gateway keeps its state in files of its state directory. Run
//! as N identical replicas behind a load balancer, the replicas must share
//! what a request decides on, or a consent revoked on one replica stays
//! usable on another and a quota is multiplied by N. With `[state] backend
//! = "postgres"` every replica keeps, in one PostgreSQL schema:
//!
//! - **consents** ([`PgConsents`]): revocations, use counts and the first
//!   use's subject hash; a use is reserved with one conditional `UPDATE`, so
//!   a one-use consent presented to every replica at once succeeds once;
//! - **daily quotas** ([`PgQuotas`]): one counter row per day and licence
//!   (or principal), spent with one conditional `UPDATE`, exact under
//!   concurrency;
//! - **the audit log** ([`PgAuditLog`]): every record committed (group
//!   commit) before its response is released; each replica keeps its own
//!   hash chain, its id in every record, and signs checkpoints stored
//!   beside it; search, the subject report and verification read every
//!   replica's records ([`verify_database`]).
//!
//! The schema is versioned ([`migrate`]): migrations are applied at start
//! in one transaction under an advisory lock, and a database newer than
//! the binary is refused. When the database cannot be reached every
//! operation fails with [`StateError::Unavailable`] and the gateway refuses
//! requests that need state as retryable; rate limits stay per replica.
//!
//! The driver runs on a small runtime of its own, so the blocking audit
//! calls ([`creditgate_audit::AuditStore`]) and the async consent and quota
//! calls share one pool whatever runtime calls them.

mod audit;
mod consents;
mod error;
pub mod migrate;
mod quotas;
mod settings;
mod verify;

use std::future::Future;
use std::sync::Arc;

pub use audit::{PgAuditLog, PgAuditOptions};
pub use consents::{LedgerRows, PgConsents, UseError};
pub use error::StateError;
pub use quotas::{PgQuotas, QuotaSpend};
pub use settings::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_SCHEMA, PgSettings, is_replica_id};
pub use verify::{verify_database, verify_url};

/// Pooled connections to the state database.
pub type Pool = bb8::Pool<bb8_postgres::PostgresConnectionManager<tokio_postgres::NoTls>>;

/// A connection to the shared state: the pool, on the state's own runtime.
/// Cheap to clone.
#[derive(Clone)]
pub struct PgState {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    pool: Pool,
    settings: PgSettings,
    /// Holds the replica's advisory lock for the life of the process.
    _replica_lock: Option<tokio_postgres::Client>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks; this may run inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgState").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

impl PgState {
    /// Connects, applies pending migrations and takes the replica's lock
    /// (a second running gateway with the same replica id is refused).
    pub async fn connect(settings: PgSettings) -> Result<PgState, StateError> {
        Self::open(settings, true).await
    }

    /// Connects for reading and verifying only (no replica lock; the schema
    /// must exist and be of a version this binary knows).
    pub async fn connect_reader(settings: PgSettings) -> Result<PgState, StateError> {
        Self::open(settings, false).await
    }

    async fn open(settings: PgSettings, writer: bool) -> Result<PgState, StateError> {
        let config = settings.driver_config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("creditgate-state")
            .enable_all()
            .build()
            .map_err(|e| StateError::Settings(format!("cannot start the state runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let opened = {
            let settings = settings.clone();
            handle
                .spawn(async move {
                    let manager = bb8_postgres::PostgresConnectionManager::new(config.clone(), tokio_postgres::NoTls);
                    let pool = bb8::Pool::builder()
                        .max_size(settings.pool_size)
                        .connection_timeout(settings.connect_timeout)
                        .test_on_check_out(false)
                        .build(manager)
                        .await?;
                    let lock = match writer {
                        true => {
                            migrate::apply(&pool, &settings.schema).await?;
                            Some(replica_lock(&config, &settings).await?)
                        }
                        false => {
                            migrate::check(&pool, &settings.schema).await?;
                            None
                        }
                    };
                    Ok::<_, StateError>((pool, lock))
                })
                .await
        };
        let opened = match opened {
            Ok(result) => result,
            Err(join) => Err(StateError::Unavailable(format!("connecting stopped: {join}"))),
        };
        let (pool, lock) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                // Dropping a runtime blocks; this may run inside another runtime.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        tracing::info!(state.schema = %settings.schema, state.replica = %settings.replica, "PostgreSQL state connected");
        Ok(PgState { inner: Arc::new(Inner { runtime: Some(runtime), handle, pool, settings, _replica_lock: lock }) })
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &PgSettings {
        &self.inner.settings
    }

    /// This gateway's replica id.
    pub fn replica(&self) -> &str {
        &self.inner.settings.replica
    }

    /// Runs `f` with the pool on the state's runtime and awaits it from any runtime.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        match self.inner.handle.spawn(async move { f(pool).await }).await {
            Ok(result) => result,
            Err(join) => Err(StateError::Unavailable(format!("state task stopped: {join}"))),
        }
    }

    /// Runs `f` on the state's runtime and blocks this thread until it is
    /// done (for the blocking audit interface; never from async code).
    pub(crate) fn block<T, F, Fut>(&self, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StateError>> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.inner.handle.spawn(async move {
            let _ = tx.send(f(pool).await);
        });
        rx.recv().unwrap_or_else(|_| Err(StateError::Unavailable("state task stopped".to_owned())))
    }

    /// The state runtime's handle (the audit writer runs there).
    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }
}

/// A dedicated session holding `pg_try_advisory_lock` on the replica id for
/// as long as the process lives.
async fn replica_lock(
    config: &tokio_postgres::Config,
    settings: &PgSettings,
) -> Result<tokio_postgres::Client, StateError> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "the PostgreSQL session holding the replica lock ended");
        }
    });
    let key = format!("creditgate replica {}.{}", settings.schema, settings.replica);
    let row = client.query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&key]).await?;
    if !row.get::<_, bool>(0) {
        return Err(StateError::ReplicaInUse(settings.replica.clone()));
    }
    Ok(client)
}
