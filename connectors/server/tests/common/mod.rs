//! A real connector on 127.0.0.1:0 with a PKI made at test time, and a real
//! Flight SQL client over mutual TLS.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::sql::client::FlightSqlServiceClient;
use creditgate_certs::ca::{DevCa, IssueRequest};
use creditgate_certs::tls::{self, ALPN_H2};
use creditgate_connector::{
    Connector, ConnectorConfig, DEFAULT_MAX_CONNECTION_AGE_SECONDS, RunningConnector, TableConfig, TableFormat,
};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tonic::transport::Channel;

/// The identity the connector serves.
pub const GATEWAY: &str = "spiffe://credit.example/org/creditgate-gateway";
/// Upper bound for anything a test waits for.
pub const STEP: Duration = Duration::from_secs(15);
const HOUR: Duration = Duration::from_secs(3600);

/// A client certificate on disk.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: String,
}

pub struct Lab {
    pub _tmp: tempfile::TempDir,
    pub ca: DevCa,
    pub ca_file: PathBuf,
    pub crl: PathBuf,
    /// Two gateway certificates: same identity, different serials.
    pub gateway_1: Cert,
    pub gateway_2: Cert,
    pub running: RunningConnector,
    pub connector: Arc<Connector>,
}

/// Replaces a file the way `certs revoke` does (temporary file + rename).
pub fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub async fn lab(crl_check_interval_seconds: u64) -> Lab {
    lab_with(crl_check_interval_seconds, |dir| {
        std::fs::write(dir.join("items.csv"), "id,name\n1,one\n2,two\n3,three\n").unwrap();
        vec![TableConfig {
            name: "items".into(),
            format: TableFormat::Csv,
            path: dir.join("items.csv"),
            source_table: None,
            columns: vec!["id".into(), "name".into()],
        }]
    })
    .await
}

/// A connector serving the tables `tables` writes into the lab's directory.
pub async fn lab_with(crl_check_interval_seconds: u64, tables: impl FnOnce(&Path) -> Vec<TableConfig>) -> Lab {
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let ca = DevCa::generate("test CA").unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let server = ca
        .issue(&IssueRequest::server("connector", vec!["localhost".into()], vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]))
        .unwrap();
    let (server_cert, server_key) = server.write(&dir, "server").unwrap();
    let gateway = |cn: &str| {
        let issued = ca.issue(&IssueRequest::client("creditgate-gateway", "creditgate gateway", cn)).unwrap();
        let (cert, key) = issued.write(&dir, cn).unwrap();
        Cert { cert, key, serial: issued.serial }
    };
    let gateway_1 = gateway("gateway-1");
    let gateway_2 = gateway("gateway-2");
    let crl = dir.join("crl.pem");
    replace(&crl, &ca.crl_pem(&[], HOUR).unwrap());
    let tables = tables(&dir);

    let config = ConnectorConfig {
        name: "market".into(),
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        cert: server_cert,
        key: server_key,
        client_ca: ca_file.clone(),
        crls: vec![crl.clone()],
        enforce_crl_expiry: false,
        crl_check_interval_seconds,
        max_connection_age_seconds: DEFAULT_MAX_CONNECTION_AGE_SECONDS,
        allowed_clients: vec![GATEWAY.into()],
        served_log: dir.join("served.jsonl"),
        memory_limit_bytes: 256 * 1024 * 1024,
        handshake_timeout_ms: 5_000,
        tables,
    };
    let connector = Connector::open(config).await.unwrap();
    let running = Arc::clone(&connector).start().await.unwrap();
    Lab { _tmp: tmp, ca, ca_file, crl, gateway_1, gateway_2, running, connector }
}

impl Lab {
    /// A Flight SQL client holding `cert` (it connects at its first call and
    /// keeps the connection).
    pub fn client(&self, cert: &Cert) -> FlightSqlServiceClient<Channel> {
        self.client_with(self.client_config(cert))
    }

    /// A client configuration presenting `cert` (its TLS session cache is
    /// shared by every connection made with it).
    pub fn client_config(&self, cert: &Cert) -> Arc<rustls::ClientConfig> {
        tls::client_config(&self.ca_file, Some((&cert.cert, &cert.key)), &[ALPN_H2]).unwrap()
    }

    /// A Flight SQL client over `config`.
    pub fn client_with(&self, config: Arc<rustls::ClientConfig>) -> FlightSqlServiceClient<Channel> {
        let channel =
            tls::channel(&self.running.addr.to_string(), "localhost", config, Duration::from_secs(5)).unwrap();
        FlightSqlServiceClient::new(channel)
    }

    /// A bare TLS handshake with `config`, then a read (the HTTP/2 server
    /// speaks first): `None` if accepted, else the error, which carries the
    /// server's alert (tonic's errors do not).
    pub async fn tls_refusal(&self, config: Arc<rustls::ClientConfig>) -> Option<String> {
        let step = async {
            let tcp = tokio::net::TcpStream::connect(self.running.addr).await?;
            let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.map(|_| ())
        };
        match tokio::time::timeout(STEP, step).await {
            Err(_) => Some("timed out".to_owned()),
            Ok(result) => result.err().map(|e| e.to_string()),
        }
    }

    /// Writes a CRL revoking `serials`.
    pub fn revoke(&self, serials: &[String]) {
        replace(&self.crl, &self.ca.crl_pem(serials, HOUR).unwrap());
    }
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

/// Runs a query; the number of rows, or the error with its causes.
pub async fn query(client: &mut FlightSqlServiceClient<Channel>) -> Result<usize, String> {
    let run = async {
        let info = client.execute("SELECT id, name FROM items".to_owned(), None).await.map_err(|e| error_chain(&e))?;
        let mut rows = 0;
        for endpoint in info.endpoint {
            let ticket = endpoint.ticket.ok_or("no ticket")?;
            let mut stream = client.do_get(ticket).await.map_err(|e| error_chain(&e))?;
            while let Some(batch) = stream.next().await {
                rows += batch.map_err(|e| error_chain(&e))?.num_rows();
            }
        }
        Ok(rows)
    };
    tokio::time::timeout(STEP, run).await.unwrap_or_else(|_| Err("query timed out".to_owned()))
}

/// Queries until one fails (at most [`STEP`]); the error and how long it took.
pub async fn until_refused(client: &mut FlightSqlServiceClient<Channel>, since: Instant) -> (String, Duration) {
    loop {
        match query(client).await {
            Err(e) => return (e, since.elapsed()),
            Ok(rows) => assert_eq!(rows, 3),
        }
        assert!(since.elapsed() < STEP, "the revoked certificate is still served after {STEP:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `cert` is refused on a new connection: a Flight query fails, and the TLS
/// handshake gets the CertificateRevoked alert.
pub async fn assert_refused_on_new_connection(lab: &Lab, cert: &Cert) {
    assert_refused_with(lab, lab.client_config(cert)).await;
}

/// [`assert_refused_on_new_connection`] with a given client configuration.
pub async fn assert_refused_with(lab: &Lab, config: Arc<rustls::ClientConfig>) {
    query(&mut lab.client_with(Arc::clone(&config))).await.expect_err("a new connection with a revoked certificate");
    let error = lab.tls_refusal(config).await.expect("the handshake is refused");
    assert!(error.contains("received fatal alert: CertificateRevoked"), "{error}");
}
