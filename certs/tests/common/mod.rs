//! Shared fixtures: a PKI written to a temp dir and a TLS echo server built on
//! `tls::incoming`.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use creditgate_certs::ca::{DevCa, IssueRequest, Issued};
use creditgate_certs::tls::{self, ConnInfo};
use futures::StreamExt;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Upper bound for any single network step in a test.
pub const STEP: Duration = Duration::from_secs(10);

/// Files of a test PKI.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: DevCa,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client: Issued,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        creditgate_certs::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate("test CA").unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        let server = ca
            .issue(&IssueRequest::server(
                "gateway",
                vec!["localhost".to_owned()],
                vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            ))
            .unwrap();
        let (server_cert, server_key) = server.write(dir.path(), "server").unwrap();
        let client = ca.issue(&IssueRequest::client("court-01", "City Court", "batch-client")).unwrap();
        let (client_cert, client_key) = client.write(dir.path(), "client").unwrap();
        Pki { dir, ca, ca_file, server_cert, server_key, client, client_cert, client_key }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues another certificate from this PKI's CA and writes it as `stem`.
    pub fn issue(&self, req: &IssueRequest, stem: &str) -> (Issued, PathBuf, PathBuf) {
        let issued = self.ca.issue(req).unwrap();
        let (c, k) = issued.write(self.dir.path(), stem).unwrap();
        (issued, c, k)
    }
}

/// A running echo server: every accepted connection's `ConnInfo` is reported
/// on `accepted`, then bytes are echoed until EOF.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub accepted: mpsc::UnboundedReceiver<ConnInfo>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn echo_server(config: Arc<rustls::ServerConfig>, handshake_timeout: Duration) -> EchoServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, accepted) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut conns = Box::pin(tls::incoming(listener, config, handshake_timeout));
        while let Some(conn) = conns.next().await {
            let mut conn = conn.expect("incoming never yields errors");
            let _ = tx.send(conn.info().clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    EchoServer { addr, accepted, task }
}

/// Connects, writes "ping" and reads the echo. Returns the echoed bytes or
/// the first error (TLS 1.3 reports a refused client certificate only at the
/// first read).
pub async fn ping(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<Vec<u8>> {
    let step = async {
        let tcp = TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    };
    tokio::time::timeout(STEP, step)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "test step timed out")))
}

pub fn client_config(ca: &Path, cert: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    tls::client_config(ca, cert, &[tls::ALPN_H2]).unwrap()
}
