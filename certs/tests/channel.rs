//! `tls::channel` (tonic client over our rustls config) against a tonic
//! server fed by `tls::incoming`; the request handler sees the caller's
//! `ConnInfo` in the request extensions.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use common::{Pki, STEP};
use creditgate_certs::tls::{self, ALPN_H2, ClientTrust, ConnInfo};
use tokio::net::TcpListener;
use tonic::body::Body;
use tower::{Service, ServiceExt};

/// A generated-code-free gRPC route that answers with the caller's identity
/// in a header.
#[derive(Clone)]
struct WhoAmI;

impl tonic::server::NamedService for WhoAmI {
    const NAME: &'static str = "test.WhoAmI";
}

impl Service<http::Request<Body>> for WhoAmI {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let name = req
            .extensions()
            .get::<ConnInfo>()
            .and_then(|info| info.identity.as_ref())
            .map(|id| id.name())
            .unwrap_or_else(|| "<none>".to_owned());
        let resp = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .header("x-identity", name)
            .body(Body::empty())
            .unwrap();
        std::future::ready(Ok(resp))
    }
}

async fn start_server(pki: &Pki) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let config =
        tls::server_config(&pki.server_cert, &pki.server_key, Some(&ClientTrust::new(&pki.ca_file)), &[ALPN_H2])
            .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tls::incoming(listener, config, Duration::from_secs(5));
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder().add_service(WhoAmI).serve_with_incoming(incoming).await.unwrap();
    });
    (addr, task)
}

fn request() -> http::Request<Body> {
    http::Request::builder()
        .method("POST")
        .uri("/test.WhoAmI/Ping")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn channel_reaches_tonic_server_over_mtls() {
    let pki = Pki::new();
    let (addr, server) = start_server(&pki).await;

    let config = tls::client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)), &[ALPN_H2]).unwrap();
    for server_name in ["localhost", "127.0.0.1"] {
        let mut channel = tls::channel(&addr.to_string(), server_name, config.clone(), STEP).unwrap();
        let resp =
            tokio::time::timeout(STEP, async { channel.ready().await?.call(request()).await }).await.unwrap().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers().get("x-identity").unwrap(),
            "spiffe://credit.example/org/court-01",
            "server name {server_name}"
        );
    }
    server.abort();
}

#[tokio::test]
async fn channel_without_client_certificate_fails() {
    let pki = Pki::new();
    let (addr, server) = start_server(&pki).await;

    let config = tls::client_config(&pki.ca_file, None, &[ALPN_H2]).unwrap();
    let mut channel = tls::channel(&addr.to_string(), "localhost", config, STEP).unwrap();
    let result = tokio::time::timeout(STEP, async { channel.ready().await?.call(request()).await }).await.unwrap();
    assert!(result.is_err(), "request without a client certificate must fail");
    server.abort();
}

#[tokio::test]
async fn channel_refuses_wrong_server_name() {
    let pki = Pki::new();
    let (addr, server) = start_server(&pki).await;
    let config = tls::client_config(&pki.ca_file, Some((&pki.client_cert, &pki.client_key)), &[ALPN_H2]).unwrap();
    let mut channel = tls::channel(&addr.to_string(), "not-the-gateway.example", config, STEP).unwrap();
    let result = tokio::time::timeout(STEP, async { channel.ready().await?.call(request()).await }).await.unwrap();
    assert!(result.is_err(), "server certificate does not name not-the-gateway.example");
    server.abort();
}

#[test]
fn channel_rejects_bad_addresses_and_names() {
    let pki = Pki::new();
    let config = tls::client_config(&pki.ca_file, None, &[ALPN_H2]).unwrap();
    assert!(tls::channel("localhost", "localhost", config.clone(), STEP).is_err());
    assert!(tls::channel("127.0.0.1:notaport", "localhost", config.clone(), STEP).is_err());
    assert!(tls::channel("127.0.0.1:4455", "bad name!", config, STEP).is_err());
}
