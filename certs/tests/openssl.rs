//! Certificates and keys made by the `openssl` command line (not by our dev
//! CA) work through `server_config`/`client_config`, including an openssl
//! CRL. Key formats covered: PKCS#1 RSA (CA), SEC1 EC with a leading
//! `EC PARAMETERS` section (server), PKCS#8 EC (client).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{STEP, echo_server, ping};
use creditgate_certs::identity::Identity;
use creditgate_certs::load;
use creditgate_certs::tls::{self, ALPN_H2, ClientTrust};

fn openssl_available() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

fn openssl_stdout(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A minimal `openssl ca` setup, so openssl can also sign a CRL.
const CA_CONF: &str = "\
[ ca ]
default_ca = testca
[ testca ]
dir = .
database = index.txt
new_certs_dir = .
certificate = ca.pem
private_key = ca.key
serial = serial.txt
crlnumber = crlnumber.txt
default_md = sha256
default_crl_days = 1
policy = policy_any
[ policy_any ]
commonName = supplied
";

const SERVER_EXT: &str = "\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
";

const CLIENT_EXT: &str = "\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://credit.example/org/openssl-org
";

#[tokio::test]
async fn openssl_issued_certificates_work() {
    if !openssl_available() {
        eprintln!("SKIPPED openssl_issued_certificates_work: the `openssl` command is not installed");
        return;
    }
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("ca.cnf"), CA_CONF).unwrap();
    std::fs::write(d.join("server.ext"), SERVER_EXT).unwrap();
    std::fs::write(d.join("client.ext"), CLIENT_EXT).unwrap();
    std::fs::write(d.join("index.txt"), "").unwrap();
    std::fs::write(d.join("crlnumber.txt"), "01\n").unwrap();

    // CA: RSA key in PKCS#1 ("RSA PRIVATE KEY").
    openssl(d, &["genrsa", "-traditional", "-out", "ca.key", "2048"]);
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/O=Test/CN=openssl test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "ca.pem",
        ],
    );
    // Server: EC key in SEC1 form, with the EC PARAMETERS section openssl writes before it.
    openssl(d, &["ecparam", "-name", "prime256v1", "-genkey", "-out", "server.key"]);
    openssl(d, &["req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr"]);
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x1001",
            "-days",
            "1",
            "-sha256",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    // Client: EC key in PKCS#8 ("PRIVATE KEY"), URI SAN, subject O and CN.
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "client.key"]);
    openssl(
        d,
        &["req", "-new", "-key", "client.key", "-subj", "/O=OpenSSL Org/CN=openssl-client", "-out", "client.csr"],
    );
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x8f02",
            "-days",
            "1",
            "-sha256",
            "-extfile",
            "client.ext",
            "-out",
            "client.pem",
        ],
    );
    // A second client, to be revoked through an openssl CRL.
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "revoked.key"]);
    openssl(d, &["req", "-new", "-key", "revoked.key", "-subj", "/O=OpenSSL Org/CN=revoked", "-out", "revoked.csr"]);
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "revoked.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x1003",
            "-days",
            "1",
            "-sha256",
            "-extfile",
            "client.ext",
            "-out",
            "revoked.pem",
        ],
    );
    std::fs::write(d.join("serial.txt"), "2000\n").unwrap();
    openssl(d, &["ca", "-config", "ca.cnf", "-revoke", "revoked.pem"]);
    openssl(d, &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"]);

    // Key formats load as expected.
    for key in ["ca.key", "server.key", "client.key"] {
        load::key_from_pem_file(d.join(key)).unwrap();
    }
    assert!(matches!(load::key_from_pem_file(d.join("ca.key")).unwrap(), rustls_pki_types::PrivateKeyDer::Pkcs1(_)));
    assert!(matches!(load::key_from_pem_file(d.join("server.key")).unwrap(), rustls_pki_types::PrivateKeyDer::Sec1(_)));

    // Identity of an openssl certificate, serial as openssl prints it.
    let der = load::certs_from_pem_file(d.join("client.pem")).unwrap().remove(0);
    let id = Identity::from_der(&der).unwrap();
    assert_eq!(id.uri.as_deref(), Some("spiffe://credit.example/org/openssl-org"));
    assert_eq!(id.org_id.as_deref(), Some("openssl-org"));
    assert_eq!(id.organization.as_deref(), Some("OpenSSL Org"));
    assert_eq!(id.common_name.as_deref(), Some("openssl-client"));
    assert_eq!(id.serial, "8f02");
    let openssl_fp = openssl_stdout(d, &["x509", "-in", "client.pem", "-noout", "-fingerprint", "-sha256"]);
    let openssl_fp = openssl_fp.trim().rsplit('=').next().unwrap().replace(':', "").to_lowercase();
    assert_eq!(id.fingerprint, openssl_fp);

    let trust = ClientTrust::new(d.join("ca.pem")).with_crl(d.join("crl.pem"));
    let server_config =
        tls::server_config(&d.join("server.pem"), &d.join("server.key"), Some(&trust), &[ALPN_H2]).unwrap();
    let mut server = echo_server(server_config, Duration::from_secs(5)).await;

    let client =
        tls::client_config(&d.join("ca.pem"), Some((&d.join("client.pem"), &d.join("client.key"))), &[ALPN_H2])
            .unwrap();
    assert_eq!(ping(server.addr, client).await.unwrap(), b"ping");
    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert_eq!(*info.identity.unwrap(), id);

    let revoked =
        tls::client_config(&d.join("ca.pem"), Some((&d.join("revoked.pem"), &d.join("revoked.key"))), &[ALPN_H2])
            .unwrap();
    let err = ping(server.addr, revoked).await.unwrap_err();
    assert!(err.to_string().contains("CertificateRevoked"), "{err}");
}
