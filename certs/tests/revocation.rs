//! Revocation while the server runs, against a real HTTP/2 server (hyper over
//! `ReloadableTrust::incoming`) on 127.0.0.1:0 with certificates made here:
//! a revoked client loses its open connection and its in-flight stream and
//! is refused on a new one, while other clients carry on; bad CRLs are
//! rejected and the previous ones kept; an expired CRL under enforcement
//! fails closed; the maximum connection age closes idle connections.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use common::{Pki, STEP, client_config};
use creditgate_certs::CertError;
use creditgate_certs::ca::{DevCa, IssueRequest, Issued};
use creditgate_certs::revocation::{
    CloseReason, CrlOutcome, ReloadTrigger, ReloadableTrust, RevocationCounters, RevocationOptions,
};
use creditgate_certs::tls::{ALPN_H2, ClientTrust, ConnInfo, IncomingOptions};
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const HOUR: Duration = Duration::from_secs(3600);
/// Long enough that the watcher never fires during a test that reloads on demand.
const NEVER: Duration = Duration::from_secs(24 * 3600);
/// Interval between tries when waiting for something to happen.
const POLL: Duration = Duration::from_millis(10);

fn options(check_interval: Duration, max_age: Option<Duration>) -> RevocationOptions {
    RevocationOptions {
        check_interval,
        max_connection_age: max_age,
        max_connection_age_grace: Duration::from_millis(300),
    }
}

/// Replaces a file the way `certs revoke` does (temporary file + rename).
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `f` until it returns `Some`, at most [`STEP`].
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------
// A small HTTP/2 server and client

type Body = BoxBody<Bytes, Infallible>;

/// `/hello` answers with the caller's name, after checking that the
/// connection is still valid (403 with the reason otherwise); `/stream`
/// sends a chunk every 20 ms until the client goes away.
async fn handle(info: ConnInfo, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    if !info.still_valid() {
        let reason = info.close_reason().map(|r| r.to_string()).unwrap_or_default();
        let mut resp = Response::new(Full::new(Bytes::from(reason)).boxed());
        *resp.status_mut() = StatusCode::FORBIDDEN;
        return Ok(resp);
    }
    let name = info.identity.as_ref().map(|id| id.name()).unwrap_or_default();
    let body = match req.uri().path() {
        "/stream" => {
            let ticks = futures::stream::unfold(0u64, |n| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Some((Ok::<_, Infallible>(Frame::data(Bytes::from(format!("tick {n}\n")))), n + 1))
            });
            BodyExt::boxed(StreamBody::new(ticks))
        }
        _ => Full::new(Bytes::from(format!("hello {name}"))).boxed(),
    };
    Ok(Response::new(body))
}

struct H2Server {
    addr: SocketAddr,
    /// The server side of every accepted connection.
    accepted: mpsc::UnboundedReceiver<ConnInfo>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for H2Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves HTTP/2 on `trust.incoming`; a connection asked to close (maximum
/// age) is shut down gracefully (GOAWAY).
async fn h2_server(pki: &Pki, trust: &ReloadableTrust) -> H2Server {
    let config = trust.server_config(&pki.server_cert, &pki.server_key, &[ALPN_H2]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Box::pin(trust.incoming(listener, config, IncomingOptions::default()));
    let (tx, accepted) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(conn) = incoming.next().await {
            let conn = conn.expect("incoming never yields errors");
            let info = conn.info().clone();
            let _ = tx.send(info.clone());
            tokio::spawn(async move {
                let closing = info.closing();
                let service = hyper::service::service_fn({
                    let info = info.clone();
                    move |req| handle(info.clone(), req)
                });
                let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(conn), service);
                let mut served = std::pin::pin!(served);
                tokio::select! {
                    _ = served.as_mut() => {}
                    _ = closing => {
                        served.as_mut().graceful_shutdown();
                        let _ = served.await;
                    }
                }
            });
        }
    });
    H2Server { addr, accepted, task }
}

struct H2Client {
    sender: SendRequest<Empty<Bytes>>,
    /// Ends when the connection closes.
    conn: tokio::task::JoinHandle<()>,
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

async fn h2_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<H2Client, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| error_chain(&e))?;
    let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .map_err(|e| error_chain(&e))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(H2Client { sender, conn })
}

impl H2Client {
    async fn request(&mut self, path: &str) -> Result<Response<Incoming>, String> {
        let req = Request::builder().uri(format!("https://localhost{path}")).body(Empty::new()).unwrap();
        let step = async {
            self.sender.ready().await.map_err(|e| error_chain(&e))?;
            self.sender.send_request(req).await.map_err(|e| error_chain(&e))
        };
        tokio::time::timeout(STEP, step).await.unwrap_or_else(|_| Err("request timed out".to_owned()))
    }

    async fn get(&mut self, path: &str) -> Result<(StatusCode, String), String> {
        let resp = self.request(path).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| error_chain(&e))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Next chunk of a streaming response: `Ok(Some)` data, `Ok(None)` clean
/// end, `Err` the stream broke.
async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, String> {
    loop {
        match tokio::time::timeout(STEP, body.frame()).await {
            Err(_) => return Err("no frame in time".to_owned()),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(error_chain(&e)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a streaming response until it ends (at most [`STEP`]).
async fn stream_end(body: &mut Incoming) -> Result<Option<Bytes>, String> {
    let end = async {
        loop {
            match next_chunk(body).await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    };
    tokio::time::timeout(STEP, end).await.expect("the stream ends in time")
}

/// One request on a fresh connection with `cert`.
async fn fresh_get(addr: SocketAddr, pki: &Pki, cert: (&Path, &Path)) -> Result<(StatusCode, String), String> {
    let mut client = h2_connect(addr, client_config(&pki.ca_file, Some(cert))).await?;
    client.get("/hello").await
}

/// A bare TLS handshake with `cert`, then a read: the HTTP/2 server speaks
/// first (SETTINGS), while a refused handshake surfaces as the server's
/// alert (TLS 1.3 reports a refused client certificate only at the first
/// read). Returns the error text.
async fn refusal(addr: SocketAddr, pki: &Pki, cert: (&Path, &Path)) -> Option<String> {
    refusal_with(addr, client_config(&pki.ca_file, Some(cert))).await
}

/// [`refusal`] with a given client configuration (and so its TLS session
/// cache: a second connection tries to resume the first one's session).
async fn refusal_with(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Option<String> {
    let step = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls =
            tokio_rustls::TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map(|_| ())
    };
    match tokio::time::timeout(STEP, step).await {
        Err(_) => Some("timed out".to_owned()),
        Ok(result) => result.err().map(|e| e.to_string()),
    }
}

async fn assert_refused(addr: SocketAddr, pki: &Pki, cert: (&Path, &Path), alert: &str, case: &str) {
    let error = refusal(addr, pki, cert).await.unwrap_or_else(|| panic!("{case}: the handshake was accepted"));
    assert!(error.contains(&format!("received fatal alert: {alert}")), "{case}: {error}");
    // And an HTTP/2 request fails.
    assert!(fresh_get(addr, pki, cert).await.is_err(), "{case}: a request was served");
}

struct Client {
    issued: Issued,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

impl Client {
    fn files(&self) -> (&Path, &Path) {
        (&self.cert, &self.key)
    }
}

fn client(pki: &Pki, org: &str, stem: &str) -> Client {
    let (issued, cert, key) = pki.issue(&IssueRequest::client(org, "Org", stem), stem);
    Client { issued, cert, key }
}

async fn next_accepted(server: &mut H2Server) -> ConnInfo {
    tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap()
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_the_open_connection_and_stream_and_refuses_new_ones() {
    let pki = Pki::new();
    let alice = client(&pki, "court-01", "alice");
    let bob = client(&pki, "tax-01", "bob");
    let crl = pki.path("crl.pem");
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    let trust = ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), options(NEVER, None)).unwrap();
    let mut server = h2_server(&pki, &trust).await;

    let alice_config = client_config(&pki.ca_file, Some(alice.files()));
    let mut a = h2_connect(server.addr, Arc::clone(&alice_config)).await.unwrap();
    let a_info = next_accepted(&mut server).await;
    let mut b = h2_connect(server.addr, client_config(&pki.ca_file, Some(bob.files()))).await.unwrap();
    let b_info = next_accepted(&mut server).await;
    assert_eq!(a.get("/hello").await.unwrap().0, StatusCode::OK);
    assert_eq!(b.get("/hello").await.unwrap().0, StatusCode::OK);
    let mut a_stream = a.request("/stream").await.unwrap().into_body();
    let mut b_stream = b.request("/stream").await.unwrap().into_body();
    assert!(next_chunk(&mut a_stream).await.unwrap().is_some());
    assert!(next_chunk(&mut b_stream).await.unwrap().is_some());
    assert_eq!(trust.counters().open_connections, 2);

    // Revoke alice and reload (what SIGHUP does).
    replace(&crl, &pki.ca.crl_pem(std::slice::from_ref(&alice.issued.serial), HOUR).unwrap());
    let revoked_at = Instant::now();
    let report = trust.reload_async().await;
    assert!(report.accepted(), "{report}");
    assert_eq!(report.trigger, ReloadTrigger::OnDemand);
    assert_eq!(report.files[0].outcome, CrlOutcome::Loaded);
    assert_eq!(report.files[0].crls[0].revoked_serials, 1);
    assert!(report.files[0].crls[0].crl_number.is_some());
    assert_eq!(report.generation, 2);
    assert_eq!(report.connections_checked, 2);
    assert_eq!(report.connections_closed(), 1, "{report}");
    assert_eq!(report.closed[0].serial.as_deref(), Some(alice.issued.serial.as_str()));
    assert_eq!(report.closed[0].reason, CloseReason::Revoked);
    // The server side knows at once: a request racing with the close is refused.
    assert!(!a_info.still_valid());
    assert_eq!(a_info.close_reason(), Some(CloseReason::Revoked));
    assert!(b_info.still_valid());

    // Alice's in-flight stream breaks (an error, not a clean end)…
    let ended = stream_end(&mut a_stream).await;
    let refused_after = revoked_at.elapsed();
    assert!(ended.is_err(), "the revoked client's stream must end with an error, got {ended:?}");
    println!("revocation to refusal, on-demand reload, open HTTP/2 stream: {refused_after:?}");
    // …her connection is gone…
    tokio::time::timeout(STEP, &mut a.conn).await.expect("the revoked connection closes").unwrap();
    assert!(a.get("/hello").await.is_err(), "no request on the old connection");
    // …and a new connection with her certificate is refused at the handshake.
    assert_refused(server.addr, &pki, alice.files(), "CertificateRevoked", "revoked").await;
    // Not even by resuming the TLS session of her first connection (the
    // server does not offer resumption).
    let error = refusal_with(server.addr, Arc::clone(&alice_config)).await.expect("refused on resumption");
    assert!(error.contains("CertificateRevoked"), "{error}");

    // Control: bob is unaffected, on his open stream, his open connection and a new one.
    for _ in 0..3 {
        assert!(next_chunk(&mut b_stream).await.unwrap().is_some(), "bob's stream keeps flowing");
    }
    assert_eq!(b.get("/hello").await.unwrap(), (StatusCode::OK, "hello spiffe://credit.example/org/tax-01".into()));
    assert_eq!(fresh_get(server.addr, &pki, bob.files()).await.unwrap().0, StatusCode::OK);

    let counters = trust.counters();
    assert_eq!(counters.reloads_ok, 1);
    assert_eq!(counters.reloads_rejected, 0);
    assert_eq!(counters.connections_closed_revoked, 1);
    assert_eq!(counters.connections_closed_untrusted, 0);
    assert!(counters.handshakes_refused_revoked >= 1, "{counters:?}");
    assert_eq!(trust.last_report().unwrap().generation, 2);
    let open = trust.connections();
    assert!(open.iter().all(|c| c.serial.as_deref() != Some(alice.issued.serial.as_str())), "{open:?}");
    assert!(open.iter().any(|c| c.serial.as_deref() == Some(bob.issued.serial.as_str())), "{open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_crl_file_takes_effect_within_the_check_interval() {
    let pki = Pki::new();
    let alice = client(&pki, "court-01", "alice");
    let bob = client(&pki, "tax-01", "bob");
    let crl = pki.path("crl.pem");
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    let interval = Duration::from_millis(100);
    let trust = ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), options(interval, None)).unwrap();
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    trust.on_report({
        let reports = Arc::clone(&reports);
        move |r| reports.lock().unwrap().push(r.clone())
    });
    let server = h2_server(&pki, &trust).await;
    let mut a = h2_connect(server.addr, client_config(&pki.ca_file, Some(alice.files()))).await.unwrap();
    let mut b = h2_connect(server.addr, client_config(&pki.ca_file, Some(bob.files()))).await.unwrap();
    let mut a_stream = a.request("/stream").await.unwrap().into_body();
    assert!(next_chunk(&mut a_stream).await.unwrap().is_some());
    assert_eq!(b.get("/hello").await.unwrap().0, StatusCode::OK);

    replace(&crl, &pki.ca.crl_pem(std::slice::from_ref(&alice.issued.serial), HOUR).unwrap());
    let revoked_at = Instant::now();
    let ended = stream_end(&mut a_stream).await;
    let refused_after = revoked_at.elapsed();
    assert!(ended.is_err(), "{ended:?}");
    println!("revocation to refusal, file change (check interval {interval:?}), open HTTP/2 stream: {refused_after:?}");
    assert_refused(server.addr, &pki, alice.files(), "CertificateRevoked", "revoked").await;
    assert_eq!(b.get("/hello").await.unwrap().0, StatusCode::OK, "bob unaffected");

    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 1, "one reload for one change: {reports:?}");
    assert_eq!(reports[0].trigger, ReloadTrigger::FileChanged);
    assert_eq!(reports[0].connections_closed(), 1);
    assert_eq!(trust.counters().connections_closed_revoked, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crls_are_rejected_and_the_previous_one_stays_in_force() {
    let pki = Pki::new();
    let good = client(&pki, "court-01", "good");
    let revoked = client(&pki, "tax-01", "revoked");
    let crl = pki.path("crl.pem");
    let in_force = pki.ca.crl_pem(std::slice::from_ref(&revoked.issued.serial), HOUR).unwrap();
    replace(&crl, &in_force);
    let trust = ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), options(NEVER, None)).unwrap();
    let server = h2_server(&pki, &trust).await;
    let mut open = h2_connect(server.addr, client_config(&pki.ca_file, Some(good.files()))).await.unwrap();
    assert_eq!(open.get("/hello").await.unwrap().0, StatusCode::OK);

    let other_ca = DevCa::generate("other CA").unwrap();
    // Same name as ours, different key: it would un-revoke everything if believed.
    let impostor = DevCa::generate("test CA").unwrap();
    let older = pki.ca.crl_pem_with_times(&[], SystemTime::now() - HOUR, 2 * HOUR).unwrap();
    let cases: [(&str, String, &str); 5] = [
        ("garbage", "this is not a CRL\n".to_owned(), "no \"X509 CRL\" PEM section"),
        ("bad DER", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n".to_owned(), "not a valid DER CRL"),
        ("another CA", other_ca.crl_pem(&[], HOUR).unwrap(), "which is not a CA in"),
        ("forged signature", impostor.crl_pem(&[], HOUR).unwrap(), "not signed by that CA's key"),
        ("older CRL number", older, "an older CRL would un-revoke"),
    ];
    for (i, (case, contents, expected)) in cases.iter().enumerate() {
        replace(&crl, contents);
        let report = trust.reload_async().await;
        assert!(!report.accepted(), "{case}: {report}");
        let CrlOutcome::Rejected { reason } = &report.files[0].outcome else { panic!("{case}: {report}") };
        assert!(reason.contains(expected), "{case}: {reason}");
        assert!(!reason.contains("BEGIN"), "{case}: the file's content is not echoed: {reason}");
        // The previous CRL is still the one in force, and says so.
        assert_eq!(report.files[0].crls.len(), 1, "{case}");
        assert_eq!(report.files[0].crls[0].revoked_serials, 1, "{case}");
        assert_eq!(report.generation, 1, "{case}: nothing was swapped");
        assert_eq!(trust.counters().reloads_rejected, i as u64 + 1, "{case}");
        assert_eq!(trust.counters().reloads_ok, 0, "{case}");
        assert_refused(server.addr, &pki, revoked.files(), "CertificateRevoked", case).await;
        assert_eq!(fresh_get(server.addr, &pki, good.files()).await.unwrap().0, StatusCode::OK, "{case}");
        assert_eq!(open.get("/hello").await.unwrap().0, StatusCode::OK, "{case}: open connections untouched");
    }

    // A missing file is rejected the same way.
    std::fs::remove_file(&crl).unwrap();
    let report = trust.reload_async().await;
    let CrlOutcome::Rejected { reason } = &report.files[0].outcome else { panic!("{report}") };
    assert!(reason.contains("cannot read"), "{reason}");
    assert_refused(server.addr, &pki, revoked.files(), "CertificateRevoked", "missing file").await;

    // Control: a good CRL is accepted, and un-revokes as it says.
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    let report = trust.reload_async().await;
    assert!(report.accepted(), "{report}");
    assert_eq!(report.generation, 2);
    assert_eq!(fresh_get(server.addr, &pki, revoked.files()).await.unwrap().0, StatusCode::OK);
    assert_eq!(trust.counters().reloads_ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_rejects_a_bad_file_once_and_keeps_watching() {
    let pki = Pki::new();
    let revoked = client(&pki, "tax-01", "revoked");
    let crl = pki.path("crl.pem");
    replace(&crl, &pki.ca.crl_pem(std::slice::from_ref(&revoked.issued.serial), HOUR).unwrap());
    let interval = Duration::from_millis(50);
    let trust = ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), options(interval, None)).unwrap();
    let server = h2_server(&pki, &trust).await;
    // The watcher starts with the first connection stream.
    assert_refused(server.addr, &pki, revoked.files(), "CertificateRevoked", "before").await;

    replace(&crl, "garbage\n");
    let counters: RevocationCounters =
        eventually("the rejection", async || Some(trust.counters()).filter(|c| c.reloads_rejected > 0)).await;
    assert_eq!(counters.reloads_rejected, 1);
    // Unchanged bad content is not rejected again at every interval.
    tokio::time::sleep(interval * 6).await;
    assert_eq!(trust.counters().reloads_rejected, 1);
    assert_refused(server.addr, &pki, revoked.files(), "CertificateRevoked", "still revoked").await;

    // Fixing the file is noticed too.
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    eventually("the fix", async || Some(()).filter(|()| trust.counters().reloads_ok == 1)).await;
    assert_eq!(fresh_get(server.addr, &pki, revoked.files()).await.unwrap().0, StatusCode::OK);
}

#[test]
fn a_bad_crl_fails_start_up() {
    let pki = Pki::new();
    let crl = pki.path("crl.pem");
    let other = DevCa::generate("other CA").unwrap();
    replace(&crl, &other.crl_pem(&[], HOUR).unwrap());
    let err =
        ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), RevocationOptions::default()).unwrap_err();
    assert!(matches!(err, CertError::CrlRejected { .. }), "{err}");
    assert!(err.to_string().contains("crl.pem") && err.to_string().contains("not a CA in"), "{err}");
    let zero = RevocationOptions { check_interval: Duration::ZERO, ..RevocationOptions::default() };
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    assert!(ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), zero).is_err());
    // Control.
    ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), RevocationOptions::default()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_crl_fails_closed_when_expiry_is_enforced() {
    let pki = Pki::new();
    let alice = client(&pki, "court-01", "alice");
    let crl = pki.path("crl.pem");
    // Valid for two more seconds.
    let this_update = SystemTime::now() - HOUR;
    replace(&crl, &pki.ca.crl_pem_with_times(&[], this_update, HOUR + Duration::from_secs(2)).unwrap());
    let strict = ReloadableTrust::new(
        ClientTrust::new(&pki.ca_file).with_crl(&crl).enforcing_crl_expiry(),
        options(NEVER, None),
    )
    .unwrap();
    let lax = ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), options(NEVER, None)).unwrap();
    let mut strict_server = h2_server(&pki, &strict).await;
    let lax_server = h2_server(&pki, &lax).await;
    let mut strict_conn =
        h2_connect(strict_server.addr, client_config(&pki.ca_file, Some(alice.files()))).await.unwrap();
    let strict_info = next_accepted(&mut strict_server).await;
    let mut lax_conn = h2_connect(lax_server.addr, client_config(&pki.ca_file, Some(alice.files()))).await.unwrap();
    assert_eq!(strict_conn.get("/hello").await.unwrap().0, StatusCode::OK);
    assert_eq!(lax_conn.get("/hello").await.unwrap().0, StatusCode::OK);

    // When the next update passes the watcher re-reads the file (unchanged:
    // still expired) and the open connection is closed.
    let closed = eventually("the expired-CRL close", async || strict_info.close_reason()).await;
    assert_eq!(closed, CloseReason::CrlExpired);
    assert!(!strict_info.still_valid());
    tokio::time::timeout(STEP, &mut strict_conn.conn).await.expect("the connection closes").unwrap();
    // The report is stored once the reload that closed the connection ends
    // (a loaded machine can observe the close first).
    let report = eventually("the next-update reload report", async || {
        strict.last_report().filter(|r| r.trigger == ReloadTrigger::NextUpdatePassed)
    })
    .await;
    assert_eq!(report.trigger, ReloadTrigger::NextUpdatePassed, "{report}");
    assert!(report.files[0].expired, "{report}");
    assert_eq!(report.files[0].outcome, CrlOutcome::Unchanged);
    // New handshakes are refused (rustls sends UnknownCA for an expired CRL).
    assert_refused(strict_server.addr, &pki, alice.files(), "UnknownCA", "expired CRL").await;
    let counters = strict.counters();
    assert!(counters.handshakes_refused_expired_crl >= 1, "{counters:?}");
    assert_eq!(counters.connections_closed_untrusted, 1, "{counters:?}");

    // Control: without enforcement the expired CRL is still used.
    lax.check();
    assert_eq!(lax_conn.get("/hello").await.unwrap().0, StatusCode::OK);
    assert_eq!(fresh_get(lax_server.addr, &pki, alice.files()).await.unwrap().0, StatusCode::OK);
    assert_eq!(lax.counters().handshakes_refused_expired_crl, 0);

    // A current CRL restores service.
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    assert!(strict.reload_async().await.accepted());
    assert_eq!(fresh_get(strict_server.addr, &pki, alice.files()).await.unwrap().0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_age_closes_an_idle_connection() {
    let pki = Pki::new();
    let trust = ClientTrust::new(&pki.ca_file);
    let aged = ReloadableTrust::new(trust.clone(), options(NEVER, Some(Duration::from_millis(300)))).unwrap();
    let ageless = ReloadableTrust::new(trust, options(NEVER, None)).unwrap();
    let mut aged_server = h2_server(&pki, &aged).await;
    let ageless_server = h2_server(&pki, &ageless).await;
    let me = (pki.client_cert.as_path(), pki.client_key.as_path());
    let mut aged_conn = h2_connect(aged_server.addr, client_config(&pki.ca_file, Some(me))).await.unwrap();
    let aged_info = next_accepted(&mut aged_server).await;
    let mut ageless_conn = h2_connect(ageless_server.addr, client_config(&pki.ca_file, Some(me))).await.unwrap();
    assert_eq!(aged_conn.get("/hello").await.unwrap().0, StatusCode::OK);
    assert_eq!(ageless_conn.get("/hello").await.unwrap().0, StatusCode::OK);

    // The idle connection is closed gracefully (the server honours
    // `closing()` with GOAWAY): the client's connection task ends.
    tokio::time::timeout(STEP, &mut aged_conn.conn).await.expect("closed at its maximum age").unwrap();
    assert_eq!(aged_info.close_reason(), Some(CloseReason::MaxAge));
    assert!(aged_info.still_valid(), "the certificate itself is still fine");
    eventually("the max-age counter", async || Some(()).filter(|()| aged.counters().connections_closed_max_age == 1))
        .await;
    assert_eq!(aged.counters().open_connections, 0);
    // The client may reconnect.
    assert_eq!(fresh_get(aged_server.addr, &pki, me).await.unwrap().0, StatusCode::OK);
    // Control: the same kind of connection without a maximum age is still open.
    assert_eq!(ageless_conn.get("/hello").await.unwrap().0, StatusCode::OK);
    assert_eq!(ageless.counters().connections_closed_max_age, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_age_closes_a_connection_whose_server_ignores_the_request() {
    let pki = Pki::new();
    let trust =
        ReloadableTrust::new(ClientTrust::new(&pki.ca_file), options(NEVER, Some(Duration::from_millis(200)))).unwrap();
    let config = trust.server_config(&pki.server_cert, &pki.server_key, &[ALPN_H2]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Box::pin(trust.incoming(listener, config, IncomingOptions::default()));
    // An echo server that knows nothing about closing.
    let server = tokio::spawn(async move {
        while let Some(Ok(mut conn)) = incoming.next().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let config = client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)));
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    // After age + grace the connection is closed under the server: a clean
    // TLS close (close_notify), not a reset.
    let n = tokio::time::timeout(STEP, tls.read(&mut buf)).await.expect("closed in time").expect("clean close");
    assert_eq!(n, 0);
    eventually("the max-age counter", async || Some(()).filter(|()| trust.counters().connections_closed_max_age == 1))
        .await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_is_checked_against_the_crls_in_force() {
    // A server configuration of one's own with the live verifier and TLS
    // session resumption on: rustls skips the certificate check on
    // resumption, so the registry checks the chain of a resumed connection.
    let pki = Pki::new();
    let alice = client(&pki, "court-01", "alice");
    let crl = pki.path("crl.pem");
    replace(&crl, &pki.ca.crl_pem(&[], HOUR).unwrap());
    let trust = ReloadableTrust::new(ClientTrust::new(&pki.ca_file).with_crl(&crl), options(NEVER, None)).unwrap();
    let chain = creditgate_certs::load::certs_from_pem_file(&pki.server_cert).unwrap();
    let key = creditgate_certs::load::key_from_pem_file(&pki.server_key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(creditgate_certs::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(trust.verifier())
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = Box::pin(trust.incoming(listener, config, IncomingOptions::default()));
    let server = tokio::spawn(async move {
        while let Some(Ok(mut conn)) = incoming.next().await {
            tokio::spawn(async move {
                let _ = conn.write_all(b"hi").await;
                let mut sink = [0u8; 16];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    let alice_config = client_config(&pki.ca_file, Some(alice.files()));
    let greet = |config: Arc<rustls::ClientConfig>| async move {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls =
            tokio_rustls::TlsConnector::from(config).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        let mut hi = [0u8; 2];
        tls.read_exact(&mut hi).await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Ok::<_, std::io::Error>(resumed)
    };
    assert!(!greet(Arc::clone(&alice_config)).await.unwrap(), "first connection: full handshake");
    // Control: resumption works here, and a resumed connection is served.
    assert!(greet(Arc::clone(&alice_config)).await.unwrap(), "second connection resumes");

    replace(&crl, &pki.ca.crl_pem(std::slice::from_ref(&alice.issued.serial), HOUR).unwrap());
    assert!(trust.reload_async().await.accepted());
    let before = trust.counters().connections_closed_revoked;
    let resumed = tokio::time::timeout(STEP, greet(Arc::clone(&alice_config))).await.expect("in time");
    assert!(resumed.is_err(), "a revoked client must not be served on a resumed session: {resumed:?}");
    assert_eq!(trust.counters().connections_closed_revoked, before + 1);
    server.abort();
}
