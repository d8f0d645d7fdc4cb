//! rustls configurations, the accepted-connection stream and the client
//! channel.
//!
//! We terminate TLS ourselves (tonic's `ServerTlsConfig` has no CRL support):
//! [`incoming`] runs handshakes concurrently with a timeout and yields
//! [`TlsConn`]s, which tonic's `serve_with_incoming` (or hyper-util) serves.
//! Every request then carries a [`ConnInfo`] in its extensions with the
//! verified caller [`Identity`].
//!
//! [`server_config`] with a [`ClientTrust`] reads the CRLs once. For CRLs
//! that take effect while the server runs, and connections closed when their
//! certificate is revoked, use [`crate::revocation::ReloadableTrust`], whose
//! `incoming` registers every connection.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;

use crate::conns::{CloseReason, ConnShared};
use crate::identity::Identity;
use crate::revocation::{Tracker, Tracking};
use crate::{CertError, load, provider};

/// ALPN protocol id of HTTP/2 (gRPC, Flight).
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// Default TLS handshake timeout for [`incoming`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default cap on handshakes in flight at once in [`incoming`].
pub const DEFAULT_MAX_CONCURRENT_HANDSHAKES: usize = 256;
/// HTTP/2 keep-alive ping interval of [`channel`].
pub const DEFAULT_H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long [`channel`] waits for a keep-alive ping's answer.
pub const DEFAULT_H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted connections waiting for the consumer of [`incoming`].
const ACCEPT_QUEUE: usize = 64;
/// Pause after an `accept` error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Client-CA trust: CA bundle + optional CRL files (+ enforce CRL expiry flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTrust {
    /// PEM bundle of the CAs client certificates must chain to. Must exist and
    /// hold at least one certificate.
    pub ca_file: PathBuf,
    /// PEM CRL files; each must exist and hold at least one CRL. With CRLs
    /// configured, the whole client chain is checked and a certificate whose
    /// issuer has no CRL here is refused (fail closed).
    pub crl_files: Vec<PathBuf>,
    /// Refuse clients when a relevant CRL is past its `nextUpdate` (by
    /// default an expired CRL is still used).
    pub enforce_crl_expiry: bool,
}

impl ClientTrust {
    /// Trust `ca_file`, no CRLs.
    pub fn new(ca_file: impl Into<PathBuf>) -> Self {
        Self { ca_file: ca_file.into(), crl_files: Vec::new(), enforce_crl_expiry: false }
    }

    /// Adds a CRL file.
    pub fn with_crl(mut self, crl_file: impl Into<PathBuf>) -> Self {
        self.crl_files.push(crl_file.into());
        self
    }

    /// Refuse clients once a CRL is past its `nextUpdate`.
    pub fn enforcing_crl_expiry(mut self) -> Self {
        self.enforce_crl_expiry = true;
        self
    }
}

/// Reads a CA bundle into a root store; refuses a file with no usable CA.
pub fn root_store(ca_file: &Path) -> Result<RootCertStore, CertError> {
    let certs = load::certs_from_pem_file(ca_file)?;
    root_store_from(ca_file, &certs)
}

/// A root store of the certificates read from `ca_file`.
pub(crate) fn root_store_from(ca_file: &Path, certs: &[CertificateDer<'static>]) -> Result<RootCertStore, CertError> {
    let certs = certs.to_vec();
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| CertError::InvalidCertificate {
            source_name: ca_file.display().to_string(),
            reason: format!("CA certificate #{} is not a usable trust anchor: {e}", i + 1),
        })?;
    }
    Ok(roots)
}

/// Server config: cert chain + key; with `Some(trust)` clients MUST present a
/// cert chaining to it (WebPkiClientVerifier with CRLs); with `None` no
/// client auth (public listener). ALPN set to the given protocols (pass h2
/// for gRPC, h2+http/1.1 for HTTP).
///
/// Fails — so start-up fails — on a missing or empty CA file, an unreadable
/// or empty CRL file, a missing certificate or key, or a key that does not
/// match the certificate.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_trust: Option<&ClientTrust>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, CertError> {
    let verifier = match client_trust {
        None => WebPkiClientVerifier::no_client_auth(),
        Some(trust) => client_verifier(trust)?,
    };
    server_config_with_verifier(cert_file, key_file, verifier, alpn)
}

/// [`server_config`] with a given client-certificate verifier.
pub(crate) fn server_config_with_verifier(
    cert_file: &Path,
    key_file: &Path,
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, CertError> {
    let chain = load::certs_from_pem_file(cert_file)?;
    let key = load::key_from_pem_file(key_file)?;
    let context = || format!("certificate {}, key {}", cert_file.display(), key_file.display());
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| CertError::Tls { context: context(), source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| CertError::Tls { context: context(), source })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn client_verifier(trust: &ClientTrust) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, CertError> {
    let roots = root_store(&trust.ca_file)?;
    let mut crls = Vec::new();
    for file in &trust.crl_files {
        crls.extend(load::crls_from_pem_file(file)?);
    }
    webpki_verifier(trust, Arc::new(roots), crls)
}

/// The webpki verifier of `trust` with the given roots and CRLs.
pub(crate) fn webpki_verifier(
    trust: &ClientTrust,
    roots: Arc<RootCertStore>,
    crls: Vec<rustls_pki_types::CertificateRevocationListDer<'static>>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, CertError> {
    let mut builder = WebPkiClientVerifier::builder_with_provider(roots, provider()).with_crls(crls);
    if trust.enforce_crl_expiry {
        builder = builder.enforce_revocation_expiration();
    }
    builder.build().map_err(|source| CertError::ClientTrust {
        ca_file: trust.ca_file.clone(),
        crl_files: trust.crl_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        source,
    })
}

/// Client config trusting `ca_file`, optionally presenting a client cert
/// `(cert chain file, key file)`.
pub fn client_config(
    ca_file: &Path,
    client_cert: Option<(&Path, &Path)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, CertError> {
    let roots = root_store(ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| CertError::Tls { context: format!("client trusting {}", ca_file.display()), source })?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = load::certs_from_pem_file(cert_file)?;
            let key = load::key_from_pem_file(key_file)?;
            builder.with_client_auth_cert(chain, key).map_err(|source| CertError::Tls {
                context: format!("client certificate {}, key {}", cert_file.display(), key_file.display()),
                source,
            })?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Connection info attached to every accepted connection (and, via tonic's
/// `Connected`, to every request's extensions).
///
/// Clones share the connection's state: on a connection accepted through
/// [`ReloadableTrust::incoming`](crate::revocation::ReloadableTrust::incoming),
/// [`ConnInfo::still_valid`] turns false as soon as a reload finds the
/// certificate revoked, so a handler can refuse a request that raced with
/// the close.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The peer's TCP address.
    pub remote_addr: SocketAddr,
    /// The verified client identity; `None` on a listener without client
    /// authentication.
    pub identity: Option<Arc<Identity>>,
    pub(crate) state: Arc<ConnShared>,
}

impl ConnInfo {
    /// Info for a connection that no registry tracks (tests, in-process
    /// callers): it stays valid.
    pub fn new(remote_addr: SocketAddr, identity: Option<Arc<Identity>>) -> Self {
        Self { remote_addr, identity, state: ConnShared::new(false) }
    }

    /// False once the server found the peer certificate no longer acceptable
    /// (revoked, its CRL expired under enforcement, …): refuse the request
    /// as a new connection with this certificate would be refused. A cheap
    /// atomic load.
    pub fn still_valid(&self) -> bool {
        !self.state.close_reason().is_some_and(CloseReason::invalidates_certificate)
    }

    /// Why the server is closing this connection, once it decided to.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.close_reason()
    }

    /// Resolves when the server wants this connection closed: at its maximum
    /// age (close gracefully: HTTP/2 GOAWAY, e.g. hyper's
    /// `graceful_shutdown`), or when it was cut. Never resolves for an
    /// untracked connection.
    pub fn closing(&self) -> impl std::future::Future<Output = CloseReason> + Send + 'static {
        Arc::clone(&self.state).closing()
    }
}

/// An accepted TLS connection. Implements AsyncRead/AsyncWrite and
/// `tonic::transport::server::Connected<ConnectInfo = ConnInfo>`.
///
/// Dropped, it closes gracefully in the background ("lingering close"):
/// TLS close_notify and TCP FIN, then the peer's remaining bytes are read
/// and discarded until it closes (at most [`LINGER`]). Closing a socket that
/// still has unread input makes the kernel send RST and throw away what is
/// still queued for the peer — the end of a response the server already
/// finished, e.g. a stream completed during a graceful shutdown while the
/// client's HTTP/2 window updates were still arriving.
///
/// A connection accepted through
/// [`ReloadableTrust::incoming`](crate::revocation::ReloadableTrust::incoming)
/// can be *cut* by the server (revoked certificate, maximum age plus grace):
/// from then on every read and write fails with `ConnectionAborted` and the
/// task polling it is woken, so hyper/tonic end the connection and its
/// streams. A connection cut for its certificate is closed at once when
/// dropped (close_notify, no lingering).
#[derive(Debug)]
pub struct TlsConn {
    /// Always `Some` until the connection is dropped or taken apart.
    stream: Option<tokio_rustls::server::TlsStream<TcpStream>>,
    info: ConnInfo,
    /// Registration with a `ReloadableTrust`; dropping it deregisters.
    tracking: Option<Tracking>,
}

/// How long a dropped [`TlsConn`] waits for its peer to close.
pub const LINGER: Duration = Duration::from_secs(2);
/// How long a dropped [`TlsConn`] that was cut for its certificate tries to
/// send close_notify before the socket is closed.
const CUT_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Drop for TlsConn {
    fn drop(&mut self) {
        drop(self.tracking.take());
        let Some(mut stream) = self.stream.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let refused = self.info.state.cut_reason().is_some_and(CloseReason::invalidates_certificate);
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            if refused {
                // Nothing more is owed to this peer: no draining.
                let _ = tokio::time::timeout(CUT_CLOSE_TIMEOUT, stream.shutdown()).await;
                return;
            }
            let _ = tokio::time::timeout(LINGER, async {
                stream.shutdown().await?;
                let mut sink = [0u8; 4096];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<(), io::Error>(())
            })
            .await;
        });
    }
}

impl TlsConn {
    /// The peer address and verified identity.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    /// The peer's certificate chain as presented (leaf first), if any.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.stream.as_ref().and_then(|s| s.get_ref().1.peer_certificates())
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.stream.as_ref().and_then(|s| s.get_ref().1.alpn_protocol())
    }

    /// The underlying TLS stream (closing it is then the caller's business).
    /// The connection is deregistered: reloads and the maximum age no longer
    /// reach it.
    pub fn into_inner(mut self) -> tokio_rustls::server::TlsStream<TcpStream> {
        drop(self.tracking.take());
        self.stream.take().expect("a TlsConn holds its stream until it is dropped or taken apart")
    }

    /// The stream, unless the connection was cut (then the error to return).
    /// A tracked connection registers the polling task's waker first, so a
    /// cut wakes it.
    fn stream(
        self: Pin<&mut Self>,
        cx: &Context<'_>,
        direction: Direction,
    ) -> io::Result<Pin<&mut tokio_rustls::server::TlsStream<TcpStream>>> {
        let this = self.get_mut();
        let state = &this.info.state;
        if state.is_tracked() {
            match direction {
                Direction::Read => state.register_read(cx.waker()),
                Direction::Write => state.register_write(cx.waker()),
            }
            if let Some(reason) = state.cut_reason() {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, format!("connection closed: {reason}")));
            }
        }
        match this.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl AsyncRead for TlsConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.stream(cx, Direction::Read) {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.stream(cx, Direction::Write) {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.stream(cx, Direction::Write) {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream(cx, Direction::Write) {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.info.state.is_cut() {
            // Dropping it closes the socket.
            return Poll::Ready(Ok(()));
        }
        match self.stream(cx, Direction::Write) {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Options of [`incoming_with_options`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IncomingOptions {
    /// Each handshake must complete within this time.
    pub handshake_timeout: Duration,
    /// At most this many handshakes run at once; further connections wait in
    /// the kernel's accept queue.
    pub max_concurrent_handshakes: usize,
}

impl Default for IncomingOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_concurrent_handshakes: DEFAULT_MAX_CONCURRENT_HANDSHAKES,
        }
    }
}

/// Accepts TCP connections and runs TLS handshakes concurrently (each with
/// `handshake_timeout`), yielding only completed ones; failed handshakes are
/// logged at debug/info with the reason and the peer address and dropped
/// (never end the stream). Identity is parsed from the verified leaf cert.
///
/// The accept loop is spawned on the Tokio runtime at the first poll and
/// stops when the stream is dropped. The stream never yields `Err`: accept
/// errors are logged and retried.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
) -> impl Stream<Item = Result<TlsConn, io::Error>> + Send + 'static {
    incoming_with_options(listener, config, IncomingOptions { handshake_timeout, ..IncomingOptions::default() })
}

/// [`incoming`] with all options.
pub fn incoming_with_options(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    options: IncomingOptions,
) -> impl Stream<Item = Result<TlsConn, io::Error>> + Send + 'static {
    incoming_tracked(listener, config, options, None)
}

/// [`incoming_with_options`], registering connections with `tracker`.
pub(crate) fn incoming_tracked(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    options: IncomingOptions,
    tracker: Option<Tracker>,
) -> impl Stream<Item = Result<TlsConn, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
    let start = async move {
        if let Some(tracker) = &tracker {
            tracker.start();
        }
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), options, tracker, tx));
        ReceiverStream::new(rx)
    };
    futures::stream::once(start).flatten().map(Ok)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    options: IncomingOptions,
    tracker: Option<Tracker>,
    tx: mpsc::Sender<TlsConn>,
) {
    let limit = Arc::new(Semaphore::new(options.max_concurrent_handshakes.max(1)));
    loop {
        let permit = tokio::select! {
            () = tx.closed() => return,
            permit = limit.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return, // never closed
            },
        };
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote_addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                    tracing::warn!(error = %e, "accepting a TCP connection failed; retrying");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(peer.addr = %remote_addr, error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let tracker = tracker.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(conn) = handshake(acceptor, tcp, remote_addr, options.handshake_timeout, tracker).await {
                // The receiver is gone only when the server stopped.
                let _ = tx.send(conn).await;
            }
        });
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    remote_addr: SocketAddr,
    timeout: Duration,
    tracker: Option<Tracker>,
) -> Option<TlsConn> {
    // Read before the handshake, so a reload that runs during it is noticed.
    let generation = tracker.as_ref().map(Tracker::generation);
    let stream = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Err(_) => {
            tracing::debug!(peer.addr = %remote_addr, timeout = ?timeout, "TLS handshake timed out");
            return None;
        }
        Ok(Err(e)) => {
            match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(tls_error) => tracing::info!(
                    peer.addr = %remote_addr,
                    reason = %tls_error,
                    "TLS handshake refused"
                ),
                None => tracing::debug!(
                    peer.addr = %remote_addr,
                    reason = %e,
                    "TLS handshake failed"
                ),
            }
            return None;
        }
        Ok(Ok(stream)) => stream,
    };
    let session = stream.get_ref().1;
    let identity = match session.peer_certificates().and_then(|chain| chain.first()) {
        None => None,
        Some(leaf) => match Identity::from_der(leaf) {
            Ok(id) => Some(Arc::new(id)),
            Err(e) => {
                tracing::info!(
                    peer.addr = %remote_addr,
                    reason = %e,
                    "TLS connection dropped: no usable identity in the client certificate"
                );
                return None;
            }
        },
    };
    match &identity {
        Some(id) => tracing::debug!(
            peer.addr = %remote_addr,
            client.identity = %id.name(),
            client.fingerprint = %id.fingerprint,
            "TLS connection accepted"
        ),
        None => {
            tracing::debug!(peer.addr = %remote_addr, "TLS connection accepted without client certificate")
        }
    }
    let info = ConnInfo { remote_addr, identity, state: ConnShared::new(tracker.is_some()) };
    let tracking = match (tracker, generation) {
        (Some(tracker), Some(generation)) => {
            let chain = session.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
            // A resumed session skipped the certificate check: check it now.
            let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            Some(tracker.register(&info, chain, generation, resumed))
        }
        _ => None,
    };
    if let Some(reason) = info.state.cut_reason() {
        tracing::info!(peer.addr = %remote_addr, reason = %reason, "TLS connection dropped right after its handshake");
        return None;
    }
    Some(TlsConn { stream: Some(stream), info, tracking })
}

/// A lazily-connecting tonic Channel to `addr` (e.g. "127.0.0.1:4455") over
/// our rustls client config (TCP connect + TLS handshake via
/// `Endpoint::connect_with_connector_lazy`), server name `server_name` (DNS
/// name or IP), HTTP/2 keep-alive, connect timeout (covering TCP connect and
/// TLS handshake), tcp_nodelay.
///
/// Pass a `config` with ALPN `h2` (gRPC servers such as grpc-go require it).
/// Must be called within a Tokio runtime (tonic spawns the channel's worker).
pub fn channel(
    addr: &str,
    server_name: &str,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, CertError> {
    channel_to(addr, server_name, None, config, connect_timeout)
}

/// [`channel`], also requiring the server's (verified) certificate to carry
/// `identity` as its subject CN or URI SAN. One CA often signs every
/// department's connector with the same host name pattern; this tells them
/// apart, so a connector cannot answer in another's place. A mismatch fails
/// the connection with an error naming both identities.
pub fn channel_to(
    addr: &str,
    server_name: &str,
    identity: Option<&str>,
    config: Arc<ClientConfig>,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, CertError> {
    validate_addr(addr)?;
    if identity.is_some_and(|i| i.trim().is_empty()) {
        return Err(CertError::input("server identity", addr, "must not be empty when set"));
    }
    let expected: Option<Arc<str>> = identity.map(Arc::from);
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| CertError::input("server name", server_name, "not a DNS name or IP address"))?;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| CertError::input("server address", addr, e.to_string()))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(DEFAULT_H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(DEFAULT_H2_KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);

    let connector = TlsConnector::from(config);
    let addr = addr.to_owned();
    let service = tower::service_fn(move |_uri: http::Uri| {
        let connector = connector.clone();
        let name = name.clone();
        let addr = addr.clone();
        let expected = expected.clone();
        async move {
            let tcp = TcpStream::connect(&addr).await?;
            tcp.set_nodelay(true)?;
            let tls = connector.connect(name, tcp).await?;
            if let Some(expected) = expected.as_deref() {
                check_server_identity(&addr, expected, tls.get_ref().1.peer_certificates())?;
            }
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(service))
}

/// Checks that the verified leaf certificate of `addr` carries `expected` as
/// its CN or URI SAN.
fn check_server_identity(addr: &str, expected: &str, chain: Option<&[CertificateDer<'_>]>) -> io::Result<()> {
    let leaf = chain
        .and_then(|c| c.first())
        .ok_or_else(|| io::Error::new(io::ErrorKind::PermissionDenied, format!("{addr} presented no certificate")))?;
    let identity = Identity::from_der(leaf.as_ref())
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, format!("{addr}: {e}")))?;
    if identity.common_name.as_deref() == Some(expected) || identity.uri.as_deref() == Some(expected) {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{addr} is not the expected server: its certificate names {} but {expected} was expected",
            identity.uri.or(identity.common_name).unwrap_or_else(|| "nobody".to_owned())
        ),
    ))
}

/// `host:port` with a numeric port (`[v6]:port` for IPv6 literals).
fn validate_addr(addr: &str) -> Result<(), CertError> {
    let ok =
        addr.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    if ok { Ok(()) } else { Err(CertError::input("server address", addr, "expected host:port")) }
}
