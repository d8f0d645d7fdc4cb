//! A server that finishes a response and drops the connection while the
//! client has sent bytes it never read (HTTP/2 WINDOW_UPDATEs, PINGs) must
//! not reset it: the kernel answers `close()` with unread input by RST, and
//! the client then loses the end of the response it has not read yet (a
//! stream cut at graceful shutdown). Dropping a `TlsConn` closes it
//! gracefully: close_notify, FIN, then drain the peer's bytes until it closes.
//! The same holds for a connection tracked by a `ReloadableTrust` that
//! closes normally.

mod common;

use std::sync::Arc;

use common::{Pki, STEP, client_config};
use creditgate_certs::revocation::{ReloadableTrust, RevocationOptions};
use creditgate_certs::tls::{self, ClientTrust, IncomingOptions, TlsConn};
use futures::{Stream, StreamExt as _};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const RESPONSE_BYTES: usize = 8 * 1024 * 1024;

type Incoming = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<TlsConn>> + Send>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_delivers_everything_written_before_it() {
    let pki = Pki::new();
    let trust = ClientTrust::new(&pki.ca_file);
    let server = tls::server_config(&pki.server_cert, &pki.server_key, Some(&trust), &[]).expect("server config");
    check_linger(&pki, move |listener| Box::pin(tls::incoming(listener, Arc::clone(&server), STEP))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_connection_closes_as_gracefully() {
    let pki = Pki::new();
    let trust = ReloadableTrust::new(ClientTrust::new(&pki.ca_file), RevocationOptions::default()).expect("trust");
    let server = trust.server_config(&pki.server_cert, &pki.server_key, &[]).expect("server config");
    let options = IncomingOptions { handshake_timeout: STEP, ..IncomingOptions::default() };
    check_linger(&pki, move |listener| Box::pin(trust.incoming(listener, server, options))).await;
}

async fn check_linger(pki: &Pki, incoming: impl FnOnce(TcpListener) -> Incoming + Send + 'static) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (written_tx, written_rx) = tokio::sync::oneshot::channel::<()>();
    let server_task = tokio::spawn(async move {
        let mut conns = incoming(listener);
        let mut conn = conns.next().await.expect("a connection").expect("handshake");
        // Read the request line only; the client's later bytes stay unread.
        let mut request = [0u8; 4];
        conn.read_exact(&mut request).await.expect("request");
        // Wait until the client's extra bytes have surely arrived, then
        // answer and drop the connection at once.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        conn.write_all(&vec![b'x'; RESPONSE_BYTES]).await.expect("write");
        conn.flush().await.expect("flush");
        drop(conn);
        let _ = written_tx.send(());
    });

    let client = client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake");
    tls.write_all(b"GET!").await.expect("request");
    tls.write_all(&[b'w'; 64]).await.expect("bytes the server never reads");
    tls.flush().await.expect("flush");
    // A slow reader: the server finishes writing (and drops the connection)
    // while much of the response still sits in its socket's send queue.
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(STEP, async {
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => response.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
            // Like HTTP/2 WINDOW_UPDATEs: bytes the server no longer reads.
            // (Writing may fail once the server has closed; the read decides.)
            let _ = tls.write_all(b"window").await;
            let _ = tls.flush().await;
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("in time");
    assert!(read.is_ok(), "the client lost the response's end: {read:?} after {} bytes", response.len());
    assert_eq!(response.len(), RESPONSE_BYTES, "every byte written before the drop arrives");
    tokio::time::timeout(STEP, written_rx).await.expect("in time").expect("the server dropped the connection");
    server_task.await.expect("server");
}
