//! The `creditgate certs …` subcommands: a dev CA on disk.
//!
//! A CA directory holds `ca.pem`, `ca.key` (0600), and once something is
//! revoked `revoked.json` (the revocation list) and `crl.pem` (the signed CRL
//! to configure as a listener's CRL file).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{DEFAULT_TRUST_DOMAIN, DEFAULT_VALIDITY_DAYS, DevCa, IssueRequest};
use crate::fsutil::{self, Existing, PUBLIC_MODE};
use crate::identity::{self, Identity, normalize_serial};
use crate::{CertError, load};

/// Default subject CN of a new dev CA.
pub const DEFAULT_CA_NAME: &str = "creditgate dev CA";
/// File name of the revocation list inside a CA directory.
pub const REVOKED_FILE: &str = "revoked.json";
/// File name of the signed CRL inside a CA directory.
pub const CRL_FILE: &str = "crl.pem";
/// Default validity of a written CRL, in days.
pub const DEFAULT_CRL_DAYS: u32 = 30;
/// DNS names every CLI-issued server certificate carries unless `--no-loopback`.
pub const LOOPBACK_DNS: &[&str] = &["localhost"];
/// IP addresses every CLI-issued server certificate carries unless `--no-loopback`.
pub const LOOPBACK_IPS: &[IpAddr] = &[IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];

/// clap subcommands for `creditgate certs …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CertsCommand {
    /// Create a development CA: DIR/ca.pem and DIR/ca.key (0600). Refuses to
    /// overwrite an existing CA.
    Init {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Subject CN of the CA certificate.
        #[arg(long, default_value = DEFAULT_CA_NAME)]
        name: String,
    },
    /// Issue a server or client certificate signed by the CA in DIR.
    Issue(IssueArgs),
    /// Revoke certificates (by serial or by certificate file): records them in
    /// DIR/revoked.json and rewrites DIR/crl.pem.
    Revoke(RevokeArgs),
    /// Re-sign DIR/crl.pem from DIR/revoked.json (renews its next update).
    Crl {
        /// CA directory.
        #[arg(long)]
        dir: PathBuf,
        /// Validity of the CRL in days.
        #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
        crl_days: u32,
    },
    /// Print the identity in a PEM certificate as JSON (first certificate of
    /// the file).
    Show {
        /// A PEM certificate file.
        file: PathBuf,
    },
}

/// Arguments of `certs issue`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["server", "client"])))]
pub struct IssueArgs {
    /// CA directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Issue a server certificate with this CN (also a DNS SAN when it is a
    /// valid DNS name). localhost, 127.0.0.1 and ::1 are always added unless
    /// --no-loopback.
    #[arg(long, value_name = "NAME")]
    pub server: Option<String>,
    /// Extra DNS SAN (repeatable).
    #[arg(long, requires = "server", conflicts_with = "client")]
    pub dns: Vec<String>,
    /// Extra IP SAN (repeatable).
    #[arg(long, requires = "server", conflicts_with = "client")]
    pub ip: Vec<IpAddr>,
    /// Do not add localhost, 127.0.0.1 and ::1 to a server certificate.
    #[arg(long, requires = "server", conflicts_with = "client")]
    pub no_loopback: bool,
    /// Issue a client certificate for this organisation id (URI SAN
    /// spiffe://TRUST_DOMAIN/org/ORG_ID).
    #[arg(long, value_name = "ORG_ID", requires = "org_name")]
    pub client: Option<String>,
    /// Organisation name (subject O) of a client certificate.
    #[arg(long, requires = "client")]
    pub org_name: Option<String>,
    /// Subject CN of a client certificate (default: the org id).
    #[arg(long, requires = "client")]
    pub cn: Option<String>,
    /// Trust domain of the SPIFFE URI.
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN, requires = "client")]
    pub trust_domain: String,
    /// Validity in days.
    #[arg(long, default_value_t = DEFAULT_VALIDITY_DAYS)]
    pub days: u32,
    /// Output directory (default: the CA directory).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Output file stem: writes STEM.pem and STEM.key (default: the server
    /// name, or client-<ORG_ID>).
    #[arg(long)]
    pub stem: Option<String>,
}

/// Arguments of `certs revoke`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["serial", "cert"])))]
pub struct RevokeArgs {
    /// CA directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Serial number in hex (as printed by `issue` and `show`; repeatable).
    #[arg(long, value_name = "HEX", num_args = 1..)]
    pub serial: Vec<String>,
    /// Certificate file whose serial to revoke (repeatable).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub cert: Vec<PathBuf>,
    /// Validity of the rewritten CRL in days.
    #[arg(long, default_value_t = DEFAULT_CRL_DAYS)]
    pub crl_days: u32,
}

/// The revocation list kept in `DIR/revoked.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokedList {
    revoked: Vec<RevokedEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokedEntry {
    serial: String,
    revoked_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

/// Runs a `certs` subcommand, printing results to stdout.
pub fn run(cmd: CertsCommand) -> Result<(), CertError> {
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // A closed stdout is not worth failing a command that already wrote its files.
        let _ = writeln!(out, "{line}");
    };
    match cmd {
        CertsCommand::Init { dir, name } => {
            DevCa::init(&dir, &name)?;
            say(format!("created CA {name:?}: {}", dir.join(crate::ca::CA_CERT_FILE).display()));
        }
        CertsCommand::Issue(args) => {
            let (cert, key, serial) = issue(&args)?;
            say(format!("certificate: {}", cert.display()));
            say(format!("key:         {}", key.display()));
            say(format!("serial:      {serial}"));
        }
        CertsCommand::Revoke(args) => {
            let added = revoke(&args)?;
            for serial in &added {
                say(format!("revoked {serial}"));
            }
            say(format!("CRL written: {}", args.dir.join(CRL_FILE).display()));
        }
        CertsCommand::Crl { dir, crl_days } => {
            let ca = DevCa::load(&dir)?;
            let list = read_revoked(&dir)?;
            write_crl(&ca, &dir, &list, crl_days)?;
            say(format!("CRL written: {}", dir.join(CRL_FILE).display()));
        }
        CertsCommand::Show { file } => {
            say(show(&file)?);
        }
    }
    Ok(())
}

fn issue(args: &IssueArgs) -> Result<(PathBuf, PathBuf, String), CertError> {
    let ca = DevCa::load(&args.dir)?;
    let (req, default_stem) = match (&args.server, &args.client) {
        (Some(name), None) => {
            let mut dns: Vec<String> = Vec::new();
            let mut ips: Vec<IpAddr> = Vec::new();
            if rustls_pki_types::DnsName::try_from(name.as_str()).is_ok() {
                dns.push(name.clone());
            }
            if !args.no_loopback {
                dns.extend(LOOPBACK_DNS.iter().map(|s| (*s).to_owned()));
                ips.extend_from_slice(LOOPBACK_IPS);
            }
            dns.extend(args.dns.iter().cloned());
            ips.extend(args.ip.iter().copied());
            dedup(&mut dns);
            dedup(&mut ips);
            (IssueRequest::server(name.clone(), dns, ips), name.clone())
        }
        (None, Some(org_id)) => {
            let org_name = args
                .org_name
                .clone()
                .ok_or_else(|| CertError::input("arguments", "--client", "--org-name is required"))?;
            let cn = args.cn.clone().unwrap_or_else(|| org_id.clone());
            let req = IssueRequest::client(org_id.clone(), org_name, cn).with_trust_domain(args.trust_domain.clone());
            (req, format!("client-{org_id}"))
        }
        _ => {
            return Err(CertError::input("arguments", "issue", "give exactly one of --server NAME or --client ORG_ID"));
        }
    };
    let issued = ca.issue(&req.with_validity_days(args.days))?;
    let out_dir = args.out_dir.clone().unwrap_or_else(|| args.dir.clone());
    let stem = args.stem.clone().unwrap_or(default_stem);
    let (cert, key) = issued.write(&out_dir, &stem)?;
    Ok((cert, key, issued.serial))
}

fn dedup<T: PartialEq + Clone>(v: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::with_capacity(v.len());
    v.retain(|x| {
        if seen.contains(x) {
            false
        } else {
            seen.push(x.clone());
            true
        }
    });
}

/// Adds the requested serials to `revoked.json` and rewrites `crl.pem`.
/// Returns the serials newly revoked.
fn revoke(args: &RevokeArgs) -> Result<Vec<String>, CertError> {
    let ca = DevCa::load(&args.dir)?;
    let ca_der = ca.cert_der();
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).map_err(|e| CertError::InvalidCertificate {
        source_name: args.dir.join(crate::ca::CA_CERT_FILE).display().to_string(),
        reason: format!("not a valid X.509 certificate: {e}"),
    })?;
    let mut requested: Vec<(String, Option<String>)> = Vec::new();
    for serial in &args.serial {
        requested.push((normalize_serial(serial)?, None));
    }
    for file in &args.cert {
        let der = first_cert(file)?;
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| CertError::InvalidCertificate {
            source_name: file.display().to_string(),
            reason: format!("not a valid X.509 certificate: {e}"),
        })?;
        // Raw DER comparison of the names: exact, no normalisation.
        if cert.tbs_certificate.issuer.as_raw() != ca_cert.tbs_certificate.subject.as_raw() {
            return Err(CertError::InvalidCertificate {
                source_name: file.display().to_string(),
                reason: "was not issued by this CA".to_owned(),
            });
        }
        requested.push((identity::serial_hex(cert.raw_serial()), Some(identity::display_name(cert.subject()))));
    }

    let mut list = read_revoked(&args.dir)?;
    let now: DateTime<Utc> = Utc::now();
    let mut added = Vec::new();
    for (serial, subject) in requested {
        if list.revoked.iter().any(|e| e.serial == serial) || added.contains(&serial) {
            continue;
        }
        list.revoked.push(RevokedEntry { serial: serial.clone(), revoked_at: now, subject });
        added.push(serial);
    }
    // CRL first: if signing fails, the JSON list is not ahead of the CRL.
    write_crl(&ca, &args.dir, &list, args.crl_days)?;
    let json = serde_json::to_vec_pretty(&list)
        .map_err(|source| CertError::Json { path: args.dir.join(REVOKED_FILE), source })?;
    fsutil::write_atomic(&args.dir.join(REVOKED_FILE), &json, PUBLIC_MODE, Existing::Replace)?;
    Ok(added)
}

fn read_revoked(dir: &Path) -> Result<RevokedList, CertError> {
    let path = dir.join(REVOKED_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| CertError::Json { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RevokedList::default()),
        Err(e) => Err(CertError::read(path, e)),
    }
}

fn write_crl(ca: &DevCa, dir: &Path, list: &RevokedList, crl_days: u32) -> Result<(), CertError> {
    if crl_days == 0 {
        return Err(CertError::input("--crl-days", "0", "must be at least 1"));
    }
    let entries: Vec<(String, SystemTime)> =
        list.revoked.iter().map(|e| (e.serial.clone(), SystemTime::from(e.revoked_at))).collect();
    let pem =
        ca.crl_pem_with_times(&entries, SystemTime::now(), Duration::from_secs(u64::from(crl_days) * 24 * 60 * 60))?;
    fsutil::write_atomic(&dir.join(CRL_FILE), pem.as_bytes(), PUBLIC_MODE, Existing::Replace)
}

fn first_cert(file: &Path) -> Result<rustls_pki_types::CertificateDer<'static>, CertError> {
    load::certs_from_pem_file(file)?.into_iter().next().ok_or_else(|| CertError::NoCertificates { path: file.into() })
}

/// JSON describing the first certificate of `file`: the [`Identity`] fields,
/// its config `name`, subject, issuer, validity and SANs.
fn show(file: &Path) -> Result<String, CertError> {
    let der = first_cert(file)?;
    let invalid = |reason: String| CertError::InvalidCertificate { source_name: file.display().to_string(), reason };
    let id = Identity::from_der(&der).map_err(|e| invalid(e.to_string()))?;
    let (_, cert) = X509Certificate::from_der(&der).map_err(|e| invalid(e.to_string()))?;
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.iter().map(format_general_name).collect())
        .unwrap_or_default();
    let mut value = serde_json::to_value(&id).map_err(|source| CertError::Json { path: file.into(), source })?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("name".into(), id.name().into());
        obj.insert("subject".into(), identity::display_name(cert.subject()).into());
        obj.insert("issuer".into(), identity::display_name(cert.issuer()).into());
        obj.insert("not_before".into(), rfc3339(cert.validity().not_before.timestamp()).into());
        obj.insert("not_after".into(), rfc3339(cert.validity().not_after.timestamp()).into());
        obj.insert("is_ca".into(), cert.is_ca().into());
        obj.insert("subject_alt_names".into(), sans.into());
    }
    serde_json::to_string_pretty(&value).map_err(|source| CertError::Json { path: file.into(), source })
}

/// `DNS:x`, `IP:127.0.0.1`, `URI:spiffe://…` (openssl's spelling).
fn format_general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                Err(_) => format!("IP:{}", hex::encode(bytes)),
            },
        },
        other => other.to_string(),
    }
}

fn rfc3339(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0).map(|t| t.to_rfc3339()).unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: CertsCommand,
    }

    fn parse(args: &[&str]) -> Result<CertsCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("certs").chain(args.iter().copied())).map(|c| c.cmd)
    }

    fn run_args(args: &[&str]) -> Result<(), CertError> {
        run(parse(args).expect("valid arguments"))
    }

    #[test]
    fn argument_rules() {
        assert!(parse(&["issue", "--dir", "d"]).is_err(), "kind required");
        assert!(parse(&["issue", "--dir", "d", "--server", "a", "--client", "b", "--org-name", "B"]).is_err());
        assert!(parse(&["issue", "--dir", "d", "--client", "b"]).is_err(), "org name required");
        assert!(parse(&["issue", "--dir", "d", "--client", "b", "--org-name", "B", "--dns", "x"]).is_err());
        assert!(parse(&["revoke", "--dir", "d"]).is_err(), "serial or cert required");
        assert!(parse(&["issue", "--dir", "d", "--server", "gw", "--ip", "10.0.0.1"]).is_ok());
    }

    #[test]
    fn init_issue_revoke_show() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("ca");
        let d = dir.to_str().expect("utf-8 path");
        run_args(&["init", "--dir", d]).expect("init");
        assert!(run_args(&["init", "--dir", d]).is_err(), "no overwrite");

        run_args(&["issue", "--dir", d, "--server", "gw.internal", "--ip", "10.1.2.3"]).expect("server");
        let shown = show(&dir.join("gw.internal.pem")).expect("show");
        for expected in
            ["\"DNS:gw.internal\"", "\"DNS:localhost\"", "\"IP:127.0.0.1\"", "\"IP:::1\"", "\"IP:10.1.2.3\""]
        {
            assert!(shown.contains(expected), "{expected} missing in {shown}");
        }

        run_args(&[
            "issue",
            "--dir",
            d,
            "--client",
            "tax-01",
            "--org-name",
            "Tax Bureau",
            "--cn",
            "batch",
            "--stem",
            "tax",
        ])
        .expect("client");
        let shown: serde_json::Value = serde_json::from_str(&show(&dir.join("tax.pem")).expect("show")).expect("json");
        assert_eq!(shown["uri"], "spiffe://credit.example/org/tax-01");
        assert_eq!(shown["org_id"], "tax-01");
        assert_eq!(shown["organization"], "Tax Bureau");
        assert_eq!(shown["common_name"], "batch");
        let serial = shown["serial"].as_str().expect("serial").to_owned();

        let server_cert = dir.join("gw.internal.pem");
        run_args(&[
            "revoke",
            "--dir",
            d,
            "--serial",
            &serial.to_uppercase(),
            "--cert",
            server_cert.to_str().expect("utf-8"),
        ])
        .expect("revoke");
        // Revoking again is idempotent.
        run_args(&["revoke", "--dir", d, "--serial", &serial]).expect("revoke again");
        let list = read_revoked(&dir).expect("list");
        assert_eq!(list.revoked.len(), 2);
        assert_eq!(list.revoked[0].serial, serial);

        let crls = load::crls_from_pem_file(dir.join(CRL_FILE)).expect("crl");
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&crls[0]).expect("parse crl");
        let revoked: Vec<String> =
            crl.iter_revoked_certificates().map(|r| identity::serial_hex(r.raw_serial())).collect();
        assert!(revoked.contains(&serial), "{revoked:?}");
        assert_eq!(revoked.len(), 2);

        run_args(&["crl", "--dir", d, "--crl-days", "7"]).expect("crl renew");
    }

    #[test]
    fn revoke_refuses_foreign_certificate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        DevCa::init(&a, "A").expect("a");
        let cb = DevCa::init(&b, "B").expect("b");
        let issued = cb.issue(&IssueRequest::client("x", "X", "x")).expect("issue");
        let (cert, _) = issued.write(tmp.path(), "foreign").expect("write");
        let err = run_args(&["revoke", "--dir", a.to_str().expect("utf-8"), "--cert", cert.to_str().expect("utf-8")])
            .expect_err("foreign");
        assert!(err.to_string().contains("not issued by this CA"), "{err}");
    }
}
