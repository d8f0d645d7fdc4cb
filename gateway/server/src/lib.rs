//! The creditgate server: the listeners in front of the engine.
//!
//! - TLS accept (rustls, client certificates verified against the
//!   configured CA and CRLs) for the Flight SQL and HTTP listeners, server
//!   TLS only for the public listener;
//! - [`http`]: the HTTP/JSON router; [`public`]: the public listener's;
//!   [`flight`]: the Flight SQL adapter and the one SQL path;
//! - [`boundary`]: the one mapping of errors to gRPC status and HTTP;
//! - [`start`] / [`RunningGateway::stop`].
//!
//! Routers only read requests and write responses: every decision is the
//! engine's permit, every operation is the engine's or the ops crate's.

#![forbid(unsafe_code)]

pub mod boundary;
pub mod flight;
pub mod http;
pub mod public;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use creditgate_certs::revocation::{DEFAULT_MAX_CONNECTION_AGE_GRACE, ReloadableTrust, RevocationOptions};
use creditgate_certs::tls::{self, ALPN_H2, ClientTrust, IncomingOptions};
use creditgate_engine::{Engine, Frontend, GatewayError};
use creditgate_flight::FrontConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// A gateway serving in the background.
pub struct RunningGateway {
    /// Flight SQL address.
    pub flight_addr: SocketAddr,
    /// HTTP address.
    pub http_addr: SocketAddr,
    /// Public disclosure address, when enabled.
    pub public_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<Result<(), GatewayError>>>,
    engine: Arc<Engine>,
    trust: ReloadableTrust,
}

/// Binds the listeners and serves `engine` until [`RunningGateway::stop`].
pub async fn start(engine: Arc<Engine>) -> Result<RunningGateway, GatewayError> {
    let server = &engine.config().server;
    // One live client trust for both mTLS listeners: CRLs reloaded on
    // SIGHUP (see `RunningGateway::reload_crls`), on a file change and at a
    // CRL's next update; connections closed when their certificate is
    // revoked, and at their maximum age.
    let max_connection_age = Duration::from_secs(server.max_connection_age_seconds);
    let trust = ReloadableTrust::new(
        ClientTrust {
            ca_file: server.client_ca.clone(),
            crl_files: server.crls.clone(),
            enforce_crl_expiry: server.enforce_crl_expiry,
        },
        RevocationOptions {
            check_interval: Duration::from_secs(server.crl_check_interval_seconds),
            max_connection_age: Some(max_connection_age),
            max_connection_age_grace: DEFAULT_MAX_CONNECTION_AGE_GRACE,
        },
    )?;
    engine.attach_revocation(&trust);
    let handshake = IncomingOptions {
        handshake_timeout: Duration::from_millis(server.handshake_timeout_ms),
        ..IncomingOptions::default()
    };
    let flight_tls = trust.server_config(&server.cert, &server.key, &[ALPN_H2])?;
    let http_tls = trust.server_config(&server.cert, &server.key, &[ALPN_H2, b"http/1.1"])?;
    let bind = |addr: SocketAddr| async move {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| GatewayError::Server(format!("cannot listen on {addr}: {e}")))
    };
    let local = |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| GatewayError::Server(e.to_string()));
    let flight_listener = bind(server.flight_listen).await?;
    let http_listener = bind(server.http_listen).await?;
    let flight_addr = local(&flight_listener)?;
    let http_addr = local(&http_listener)?;
    let (tx, rx) = watch::channel(false);
    let mut handles = Vec::new();

    {
        let backend = Arc::new(flight::FlightBackend::new(Arc::clone(&engine)));
        let ticket_key = engine.ticket_key().to_vec();
        let mut rx = rx.clone();
        let incoming = trust.incoming(flight_listener, flight_tls, handshake);
        handles.push(tokio::spawn(
            async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                let front = FrontConfig {
                    server_name: "creditgate gateway".to_string(),
                    max_connection_age: Some(max_connection_age),
                    // Derived from the deployment secret: replicas accept each other's tickets.
                    ticket_key: Some(ticket_key),
                    ..FrontConfig::default()
                };
                creditgate_flight::serve(backend, front, incoming, shutdown)
                    .await
                    .map_err(|e| GatewayError::Server(e.to_string()))
            }
            .instrument(tracing::info_span!("flight", %flight_addr)),
        ));
    }
    {
        let incoming = trust.incoming(http_listener, http_tls, handshake);
        handles.push(tokio::spawn(
            http::serve(Arc::clone(&engine), incoming, rx.clone(), Frontend::Http)
                .instrument(tracing::info_span!("http", %http_addr)),
        ));
    }
    let mut public_addr = None;
    if let Some(addr) = server.public_listen {
        let public_tls = tls::server_config(&server.cert, &server.key, None, &[ALPN_H2, b"http/1.1"])?;
        let listener = bind(addr).await?;
        let bound = local(&listener)?;
        public_addr = Some(bound);
        let incoming = tls::incoming_with_options(listener, public_tls, handshake);
        handles.push(tokio::spawn(
            http::serve(Arc::clone(&engine), incoming, rx.clone(), Frontend::Public)
                .instrument(tracing::info_span!("public", addr = %bound)),
        ));
    }
    engine.spawn_upkeep(rx);
    tracing::info!(%flight_addr, %http_addr, public = ?public_addr, "gateway listening");
    Ok(RunningGateway { flight_addr, http_addr, public_addr, stop: tx, handles, engine, trust })
}

impl RunningGateway {
    /// The engine being served.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The client trust of the mTLS listeners (CRLs in force, open
    /// connections, counters).
    pub fn revocation(&self) -> &ReloadableTrust {
        &self.trust
    }

    /// Reads the CRL files again now (what SIGHUP does), closes the open
    /// connections whose certificate they revoke, and returns the report
    /// (also recorded in the audit log).
    pub async fn reload_crls(&self) -> creditgate_certs::revocation::ReloadReport {
        self.trust.reload_async().await
    }

    /// Stops accepting, lets in-flight requests finish for up to
    /// `server.shutdown_grace_ms` (a client that stopped reading cannot hold
    /// the shutdown up: after the grace period the listeners are closed
    /// regardless), writes a final audit checkpoint, and returns.
    pub async fn stop(self) -> Result<(), GatewayError> {
        let _ = self.stop.send(true);
        let grace = Duration::from_millis(self.engine.config().server.shutdown_grace_ms);
        let deadline = tokio::time::Instant::now() + grace;
        let mut result = Ok(());
        for mut handle in self.handles {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => result = Err(e),
                Ok(Err(e)) => result = Err(GatewayError::Server(format!("listener task failed: {e}"))),
                Err(_) => {
                    tracing::warn!(
                        grace_ms = grace.as_millis() as u64,
                        "in-flight requests outlived the shutdown grace; closing their connections"
                    );
                    handle.abort();
                    let _ = handle.await;
                }
            }
        }
        let engine = Arc::clone(&self.engine);
        let _ = tokio::task::spawn_blocking(move || engine.close()).await;
        result
    }
}

/// Reloads the policy and then the CRLs of `gateway` on every SIGHUP (Unix),
/// until the returned task is aborted. A failed policy reload keeps the
/// current policy; a rejected CRL file keeps its previous CRLs; both are
/// logged, and the CRL reload is recorded in the audit log.
pub fn reload_on_sighup(gateway: &RunningGateway) -> Option<JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => hangup,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the policy and CRLs reload only as configured");
                return None;
            }
        };
        let engine = Arc::clone(&gateway.engine);
        let trust = gateway.trust.clone();
        Some(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the policy and the CRLs");
                // Both outcomes are logged where they happen.
                let _ = engine.reload_policy();
                let _ = trust.reload_async().await;
            }
        }))
    }
    #[cfg(not(unix))]
    {
        let _ = gateway;
        None
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
