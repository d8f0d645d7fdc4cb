//! Real mutual TLS over 127.0.0.1:0: who is served, who is refused, and
//! which trust configurations are refused at start-up.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{Pki, STEP, client_config, echo_server, ping};
use creditgate_certs::CertError;
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_certs::tls::{self, ALPN_H2, ClientTrust};
use tokio::io::AsyncReadExt;

/// The client-side error of a refused handshake must carry the server's
/// alert: proof that it was refused for the reason under test.
fn assert_refused(err: &std::io::Error, alert: &str) {
    let msg = err.to_string();
    assert!(msg.contains(alert), "expected alert {alert}, got: {msg}");
}

const HANDSHAKE: Duration = Duration::from_secs(5);
const HOUR: Duration = Duration::from_secs(3600);

fn mtls_server(pki: &Pki, trust: &ClientTrust) -> std::sync::Arc<rustls::ServerConfig> {
    tls::server_config(&pki.server_cert, &pki.server_key, Some(trust), &[ALPN_H2]).unwrap()
}

#[tokio::test]
async fn valid_client_is_served_with_its_identity() {
    let pki = Pki::new();
    let mut server = echo_server(mtls_server(&pki, &ClientTrust::new(&pki.ca_file)), HANDSHAKE).await;

    let echoed =
        ping(server.addr, client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)))).await.unwrap();
    assert_eq!(echoed, b"ping");

    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert!(info.remote_addr.ip().is_loopback());
    let id = info.identity.expect("identity on an mTLS listener");
    assert_eq!(id.uri.as_deref(), Some("spiffe://credit.example/org/court-01"));
    assert_eq!(id.org_id.as_deref(), Some("court-01"));
    assert_eq!(id.organization.as_deref(), Some("City Court"));
    assert_eq!(id.common_name.as_deref(), Some("batch-client"));
    assert_eq!(id.serial, pki.client.serial);
    let der = pki.client.cert_der().unwrap();
    let expected_fp = hex::encode(ring::digest::digest(&ring::digest::SHA256, &der));
    assert_eq!(id.fingerprint, expected_fp);
    assert!(id.matches("spiffe://credit.example/org/court-01"));
    assert!(id.matches(&format!("sha256:{expected_fp}")));
    assert!(id.matches("o=City Court/cn=batch-client"));
    assert!(!id.matches("batch-client"), "CN alone never matches");
}

#[tokio::test]
async fn client_without_certificate_is_refused_and_server_keeps_serving() {
    let pki = Pki::new();
    let mut server = echo_server(mtls_server(&pki, &ClientTrust::new(&pki.ca_file)), HANDSHAKE).await;

    let err = ping(server.addr, client_config(&pki.ca_file, None)).await.unwrap_err();
    assert_refused(&err, "CertificateRequired");

    // A refused handshake does not end the stream: the next valid client is served.
    let ok = ping(server.addr, client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)))).await;
    assert_eq!(ok.unwrap(), b"ping");
    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert!(info.identity.is_some());
    assert!(server.accepted.try_recv().is_err(), "the refused client never reached the server");
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let server = echo_server(mtls_server(&pki, &ClientTrust::new(&pki.ca_file)), HANDSHAKE).await;

    let other_ca = DevCa::generate("other CA").unwrap();
    let foreign = other_ca.issue(&IssueRequest::client("court-01", "City Court", "batch-client")).unwrap();
    let (cert, key) = foreign.write(pki.dir.path(), "foreign").unwrap();
    let err = ping(server.addr, client_config(&pki.ca_file, Some((&cert, &key)))).await.unwrap_err();
    assert_refused(&err, "UnknownCA");

    // Control: the same request with the right CA's certificate is served.
    assert_eq!(
        ping(server.addr, client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)))).await.unwrap(),
        b"ping"
    );
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let pki = Pki::new();
    let server = echo_server(mtls_server(&pki, &ClientTrust::new(&pki.ca_file)), HANDSHAKE).await;

    let now = SystemTime::now();
    let req = IssueRequest::client("court-01", "City Court", "old").valid_between(now - 48 * HOUR, now - 24 * HOUR);
    let (_, cert, key) = pki.issue(&req, "expired");
    let err = ping(server.addr, client_config(&pki.ca_file, Some((&cert, &key)))).await.unwrap_err();
    assert_refused(&err, "CertificateExpired");

    // Control: a certificate valid now, otherwise identical, is served.
    let req = IssueRequest::client("court-01", "City Court", "old").valid_between(now - HOUR, now + HOUR);
    let (_, cert, key) = pki.issue(&req, "current");
    assert_eq!(ping(server.addr, client_config(&pki.ca_file, Some((&cert, &key)))).await.unwrap(), b"ping");
}

#[tokio::test]
async fn revoked_certificate_is_refused_by_crl() {
    let pki = Pki::new();
    let (revoked, revoked_cert, revoked_key) =
        pki.issue(&IssueRequest::client("tax-01", "Tax Bureau", "revoked"), "revoked");
    let crl_file = pki.path("crl.pem");
    std::fs::write(&crl_file, pki.ca.crl_pem(std::slice::from_ref(&revoked.serial), HOUR).unwrap()).unwrap();
    let trust = ClientTrust::new(&pki.ca_file).with_crl(&crl_file);
    let mut server = echo_server(mtls_server(&pki, &trust), HANDSHAKE).await;

    // TLS 1.3: the client may only learn of the refusal at its first read.
    let err = ping(server.addr, client_config(&pki.ca_file, Some((&revoked_cert, &revoked_key)))).await.unwrap_err();
    assert_refused(&err, "CertificateRevoked");

    // Control: a certificate not on the CRL is served by the same server.
    assert_eq!(
        ping(server.addr, client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)))).await.unwrap(),
        b"ping"
    );
    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert_eq!(info.identity.unwrap().serial, pki.client.serial);
    assert!(server.accepted.try_recv().is_err(), "the revoked client never reached the server");
}

#[tokio::test]
async fn expired_crl_is_refused_only_when_enforced() {
    let pki = Pki::new();
    let crl_file = pki.path("stale-crl.pem");
    let past = SystemTime::now() - 48 * HOUR;
    std::fs::write(&crl_file, pki.ca.crl_pem_with_times(&[], past, HOUR).unwrap()).unwrap();
    let client = || client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)));

    let lax = echo_server(mtls_server(&pki, &ClientTrust::new(&pki.ca_file).with_crl(&crl_file)), HANDSHAKE).await;
    assert_eq!(ping(lax.addr, client()).await.unwrap(), b"ping");

    let strict_trust = ClientTrust::new(&pki.ca_file).with_crl(&crl_file).enforcing_crl_expiry();
    let strict = echo_server(mtls_server(&pki, &strict_trust), HANDSHAKE).await;
    let err = ping(strict.addr, client()).await.unwrap_err();
    assert_refused(&err, "alert");
}

#[tokio::test]
async fn public_listener_serves_clients_without_identity() {
    let pki = Pki::new();
    let config = tls::server_config(&pki.server_cert, &pki.server_key, None, &[ALPN_H2, tls::ALPN_HTTP11]).unwrap();
    let mut server = echo_server(config, HANDSHAKE).await;
    assert_eq!(ping(server.addr, client_config(&pki.ca_file, None)).await.unwrap(), b"ping");
    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert!(info.identity.is_none());
}

#[tokio::test]
async fn stalled_handshake_times_out_without_blocking_others() {
    let pki = Pki::new();
    let server = echo_server(mtls_server(&pki, &ClientTrust::new(&pki.ca_file)), Duration::from_millis(300)).await;
    // A TCP peer that never starts a handshake.
    let mut idle = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // Others are served meanwhile.
    assert_eq!(
        ping(server.addr, client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)))).await.unwrap(),
        b"ping"
    );
    // And the idle one is closed after the handshake timeout.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(STEP, idle.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the server closes a stalled handshake");
}

#[test]
fn empty_or_unreadable_trust_is_refused_at_startup() {
    let pki = Pki::new();
    let server = |trust: &ClientTrust| tls::server_config(&pki.server_cert, &pki.server_key, Some(trust), &[ALPN_H2]);

    let missing = pki.path("missing-ca.pem");
    let err = server(&ClientTrust::new(&missing)).unwrap_err();
    assert!(matches!(err, CertError::Read { .. }), "{err}");
    assert!(err.to_string().contains("missing-ca.pem"), "{err}");

    let empty = pki.path("empty-ca.pem");
    std::fs::write(&empty, "").unwrap();
    let err = server(&ClientTrust::new(&empty)).unwrap_err();
    assert_eq!(err.to_string(), format!("no certificates in {}", empty.display()));

    let err = server(&ClientTrust::new(&pki.ca_file).with_crl(pki.path("missing-crl.pem"))).unwrap_err();
    assert!(err.to_string().contains("missing-crl.pem"), "{err}");

    let err = server(&ClientTrust::new(&pki.ca_file).with_crl(&empty)).unwrap_err();
    assert!(err.to_string().contains("no certificate revocation lists"), "{err}");

    // A CRL file that is a certificate, not a CRL.
    let err = server(&ClientTrust::new(&pki.ca_file).with_crl(&pki.ca_file)).unwrap_err();
    assert!(matches!(err, CertError::NoCrls { .. }), "{err}");

    // The client side refuses an empty trust store too.
    let err = tls::client_config(&empty, None, &[ALPN_H2]).unwrap_err();
    assert!(err.to_string().starts_with("no certificates in"), "{err}");

    // Control: the same server with a good trust configuration starts.
    server(&ClientTrust::new(&pki.ca_file)).unwrap();
}

#[test]
fn mismatched_key_and_certificate_are_refused() {
    let pki = Pki::new();
    let err = tls::server_config(&pki.server_cert, &pki.client_key, None, &[ALPN_H2]).unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    let err = tls::client_config(&pki.ca_file, Some((&pki.client_cert, &pki.server_key)), &[]).unwrap_err();
    assert!(err.to_string().contains("client.pem"), "{err}");
}

#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::new();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pki.server_key), 0o600);
    assert_eq!(mode(&pki.client_key), 0o600);
    assert_eq!(mode(&pki.client_cert) & 0o600, 0o600);

    let ca_dir = pki.path("ca");
    DevCa::init(&ca_dir, "dev").unwrap();
    assert_eq!(mode(&ca_dir.join("ca.key")), 0o600);
}
