//! Certificates and keys made by the `openssl` command line (not by our dev
//! CA) work through `server_config`/`client_config`, including an openssl
//! CRL. Key formats covered: PKCS#1 RSA (CA), SEC1 EC with a leading
//! `EC PARAMETERS` section (server), PKCS#8 EC (client).
//!
//! An intermediate CA chain (root → intermediate → leaf) works too: the
//! server and the client send `leaf + intermediate`, the other side trusts
//! only the root. With CRLs configured, revocation is checked for the whole
//! chain and fails closed (see `ClientTrust::crl_files`): a leaf issued by the
//! intermediate is refused while only the root's CRL is configured, and
//! accepted once the intermediate's CRL is configured as well; a revoked
//! intermediate (listed on the root's CRL) refuses every leaf under it.
//!
//! These tests need `openssl` on PATH. Under CI (the `CI` environment variable
//! set, as CI runners do) a missing `openssl` fails them; elsewhere they are
//! skipped with a warning written straight to stderr (not captured by the
//! test harness).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
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

/// Whether `CI` (its value, if set) means "running under CI": set to anything
/// but empty, `0` or `false`.
fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Run (`Ok(true)`), skip (`Ok(false)`) or fail (`Err`) an openssl test.
fn openssl_gate(available: bool, ci: Option<&str>) -> Result<bool, String> {
    match (available, is_ci(ci)) {
        (true, _) => Ok(true),
        (false, false) => Ok(false),
        (false, true) => Err("the `openssl` command is not on PATH, and CI is set: under CI this test must run \
                              (install openssl, e.g. `apt-get install openssl`)"
            .to_string()),
    }
}

/// `true` when the test can run; panics under CI without openssl; warns and
/// returns `false` otherwise.
fn require_openssl(test: &str) -> bool {
    match openssl_gate(openssl_available(), std::env::var("CI").ok().as_deref()) {
        Ok(run) => {
            if !run {
                // Straight to stderr: the harness captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "WARNING: SKIPPED {test}: the `openssl` command is not installed (with CI set this fails)"
                );
            }
            run
        }
        Err(message) => panic!("{test}: {message}"),
    }
}

#[test]
fn a_missing_openssl_fails_under_ci_and_skips_only_outside_it() {
    for ci in ["true", "1", "yes", "TRUE"] {
        assert!(openssl_gate(false, Some(ci)).is_err(), "CI={ci}");
        assert_eq!(openssl_gate(true, Some(ci)), Ok(true), "CI={ci}");
    }
    for ci in [None, Some(""), Some("0"), Some("false"), Some("False")] {
        assert_eq!(openssl_gate(false, ci), Ok(false), "CI={ci:?}");
        assert_eq!(openssl_gate(true, ci), Ok(true), "CI={ci:?}");
    }
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
    if !require_openssl("openssl_issued_certificates_work") {
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

/// An `openssl ca` setup for CA `name` (files `NAME.pem`, `NAME.key`,
/// `NAME-index.txt`, …), so openssl can revoke and sign CRLs for it.
fn write_ca_conf(dir: &Path, name: &str) {
    let conf = format!(
        "[ ca ]\ndefault_ca = {name}\n[ {name} ]\ndir = .\ndatabase = {name}-index.txt\nnew_certs_dir = .\n\
         certificate = {name}.pem\nprivate_key = {name}.key\nserial = {name}-serial.txt\n\
         crlnumber = {name}-crlnumber.txt\ndefault_md = sha256\ndefault_crl_days = 1\npolicy = policy_any\n\
         [ policy_any ]\ncommonName = supplied\n"
    );
    std::fs::write(dir.join(format!("{name}.cnf")), conf).unwrap();
    std::fs::write(dir.join(format!("{name}-index.txt")), "").unwrap();
    std::fs::write(dir.join(format!("{name}-serial.txt")), "3000\n").unwrap();
    std::fs::write(dir.join(format!("{name}-crlnumber.txt")), "01\n").unwrap();
}

/// A P-256 key and a certificate for `subject`, signed by CA `ca` with the
/// extensions in file `ext`.
fn openssl_issue(dir: &Path, stem: &str, subject: &str, ca: &str, ext: &str, serial: &str) {
    let key = format!("{stem}.key");
    let csr = format!("{stem}.csr");
    let pem = format!("{stem}.pem");
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    openssl(dir, &["req", "-new", "-key", &key, "-subj", subject, "-out", &csr]);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-set_serial",
            serial,
            "-days",
            "1",
            "-sha256",
            "-extfile",
            ext,
            "-out",
            &pem,
        ],
    );
}

/// Concatenates PEM files (leaf first) into `out`.
fn chain_file(dir: &Path, out: &str, parts: &[&str]) {
    let text: String = parts.iter().map(|p| std::fs::read_to_string(dir.join(p)).unwrap()).collect();
    std::fs::write(dir.join(out), text).unwrap();
}

const INTERMEDIATE_EXT: &str = "\
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
";

#[tokio::test]
async fn an_openssl_intermediate_ca_chain_works_and_its_revocation_is_checked_for_the_whole_chain() {
    if !require_openssl("an_openssl_intermediate_ca_chain_works_and_its_revocation_is_checked_for_the_whole_chain") {
        return;
    }
    creditgate_certs::install_default_provider();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("server.ext"), SERVER_EXT).unwrap();
    std::fs::write(d.join("client.ext"), CLIENT_EXT).unwrap();
    std::fs::write(d.join("intermediate.ext"), INTERMEDIATE_EXT).unwrap();
    write_ca_conf(d, "root");
    write_ca_conf(d, "inter");

    // Root (self-signed), intermediate (signed by the root), leaves (signed by the intermediate).
    openssl(d, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "root.key"]);
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/O=Test/CN=openssl root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.pem",
        ],
    );
    openssl_issue(d, "inter", "/O=Test/CN=openssl intermediate CA", "root", "intermediate.ext", "0x2001");
    openssl_issue(d, "server", "/CN=localhost", "inter", "server.ext", "0x2101");
    openssl_issue(d, "client", "/O=OpenSSL Org/CN=chained-client", "inter", "client.ext", "0x2102");
    openssl_issue(d, "revoked", "/O=OpenSSL Org/CN=revoked-chained", "inter", "client.ext", "0x2103");
    chain_file(d, "server-chain.pem", &["server.pem", "inter.pem"]);
    chain_file(d, "client-chain.pem", &["client.pem", "inter.pem"]);
    chain_file(d, "revoked-chain.pem", &["revoked.pem", "inter.pem"]);

    // CRLs: the root's (empty, then listing the intermediate) and the
    // intermediate's (listing `revoked`).
    openssl(d, &["ca", "-config", "root.cnf", "-gencrl", "-out", "root-crl.pem"]);
    openssl(d, &["ca", "-config", "inter.cnf", "-revoke", "revoked.pem"]);
    openssl(d, &["ca", "-config", "inter.cnf", "-gencrl", "-out", "inter-crl.pem"]);
    openssl(d, &["ca", "-config", "root.cnf", "-revoke", "inter.pem"]);
    openssl(d, &["ca", "-config", "root.cnf", "-gencrl", "-out", "root-crl-inter-revoked.pem"]);

    let leaf = load::certs_from_pem_file(d.join("client-chain.pem")).unwrap();
    assert_eq!(leaf.len(), 2, "the chain file holds the leaf and the intermediate");
    let id = Identity::from_der(&leaf[0]).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("chained-client"));
    assert_eq!(id.org_id.as_deref(), Some("openssl-org"));

    let root = d.join("root.pem");
    let client =
        |chain: &str, key: &str| tls::client_config(&root, Some((&d.join(chain), &d.join(key))), &[ALPN_H2]).unwrap();
    let serve = |trust: ClientTrust| {
        // The server presents its own chain through the intermediate; clients trust only the root.
        let config =
            tls::server_config(&d.join("server-chain.pem"), &d.join("server.key"), Some(&trust), &[ALPN_H2]).unwrap();
        echo_server(config, Duration::from_secs(5))
    };

    // No CRLs: the chain is accepted and the identity is the leaf's.
    let mut server = serve(ClientTrust::new(&root)).await;
    assert_eq!(ping(server.addr, client("client-chain.pem", "client.key")).await.unwrap(), b"ping");
    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert_eq!(*info.identity.unwrap(), id);
    // Negative control: the leaf without its intermediate does not chain to the root.
    let err = ping(server.addr, client("client.pem", "client.key")).await.unwrap_err();
    assert!(err.to_string().contains("UnknownCA"), "{err}");
    // Without CRLs, revocation is not checked.
    assert_eq!(ping(server.addr, client("revoked-chain.pem", "revoked.key")).await.unwrap(), b"ping");
    drop(server);

    // Only the root's CRL: the intermediate's revocation status is known, the
    // leaf's is not, and the verifier fails closed.
    let server = serve(ClientTrust::new(&root).with_crl(d.join("root-crl.pem"))).await;
    let err = ping(server.addr, client("client-chain.pem", "client.key")).await.unwrap_err();
    // The server's reason is `UnknownRevocationStatus`; rustls sends it as an
    // `unknown_ca` alert (as OpenSSL and BoringSSL do).
    assert!(err.to_string().contains("UnknownCA"), "refused by the server: {err}");
    drop(server);

    // Both CRLs: the chain is accepted, the revoked leaf is refused.
    let both = ClientTrust::new(&root).with_crl(d.join("root-crl.pem")).with_crl(d.join("inter-crl.pem"));
    let mut server = serve(both).await;
    assert_eq!(ping(server.addr, client("client-chain.pem", "client.key")).await.unwrap(), b"ping");
    let info = tokio::time::timeout(STEP, server.accepted.recv()).await.unwrap().unwrap();
    assert_eq!(info.identity.unwrap().common_name.as_deref(), Some("chained-client"));
    let err = ping(server.addr, client("revoked-chain.pem", "revoked.key")).await.unwrap_err();
    assert!(err.to_string().contains("CertificateRevoked"), "{err}");
    drop(server);

    // The root's CRL lists the intermediate: every leaf under it is refused.
    let inter_revoked =
        ClientTrust::new(&root).with_crl(d.join("root-crl-inter-revoked.pem")).with_crl(d.join("inter-crl.pem"));
    let server = serve(inter_revoked).await;
    let err = ping(server.addr, client("client-chain.pem", "client.key")).await.unwrap_err();
    assert!(err.to_string().contains("CertificateRevoked"), "{err}");
    drop(server);
}
