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

use creditgate_certs::tls::{self, ClientTrust};
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
}

/// Binds the listeners and serves `engine` until [`RunningGateway::stop`].
pub async fn start(engine: Arc<Engine>) -> Result<RunningGateway, GatewayError> {
    let server = &engine.config().server;
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
    let local = |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| GatewayError::Server(e.to_string()));
    let flight_listener = bind(server.flight_listen).await?;
    let http_listener = bind(server.http_listen).await?;
    let flight_addr = local(&flight_listener)?;
    let http_addr = local(&http_listener)?;
    let (tx, rx) = watch::channel(false);
    let mut handles = Vec::new();

    {
        let backend = Arc::new(flight::FlightBackend::new(Arc::clone(&engine)));
        let mut rx = rx.clone();
        let incoming = tls::incoming(flight_listener, flight_tls, handshake);
        handles.push(tokio::spawn(
            async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                };
                let front = FrontConfig { server_name: "creditgate gateway".to_string(), ..FrontConfig::default() };
                creditgate_flight::serve(backend, front, incoming, shutdown)
                    .await
                    .map_err(|e| GatewayError::Server(e.to_string()))
            }
            .instrument(tracing::info_span!("flight", %flight_addr)),
        ));
    }
    {
        let incoming = tls::incoming(http_listener, http_tls, handshake);
        handles.push(tokio::spawn(
            http::serve(Arc::clone(&engine), incoming, rx.clone(), Frontend::Http)
                .instrument(tracing::info_span!("http", %http_addr)),
        ));
    }
    let mut public_addr = None;
    if let Some(addr) = server.public_listen {
        let public_tls = tls::server_config(&server.cert, &server.key, None, &[b"h2", b"http/1.1"])?;
        let listener = bind(addr).await?;
        let bound = local(&listener)?;
        public_addr = Some(bound);
        let incoming = tls::incoming(listener, public_tls, handshake);
        handles.push(tokio::spawn(
            http::serve(Arc::clone(&engine), incoming, rx.clone(), Frontend::Public)
                .instrument(tracing::info_span!("public", addr = %bound)),
        ));
    }
    engine.spawn_upkeep(rx);
    tracing::info!(%flight_addr, %http_addr, public = ?public_addr, "gateway listening");
    Ok(RunningGateway { flight_addr, http_addr, public_addr, stop: tx, handles, engine })
}

impl RunningGateway {
    /// The engine being served.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
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
