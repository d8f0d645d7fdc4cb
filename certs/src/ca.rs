//! A development certificate authority built on rcgen.
//!
//! It issues server certificates (DNS/IP SANs, `serverAuth`) and client
//! certificates carrying an organisation identity (SPIFFE URI SAN
//! `spiffe://<trust domain>/org/<org id>`, subject O and CN, `clientAuth`),
//! and signs CRLs. Keys are ECDSA P-256; serials are random.
//!
//! Production deployments may use any CA instead (openssl, a corporate PKI):
//! the rest of the crate only reads PEM files.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::fsutil::{self, Existing, KEY_MODE, PUBLIC_MODE};
use crate::identity::{Identity, normalize_serial};
use crate::{CertError, load};

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside a CA directory (mode 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// Default trust domain of SPIFFE URIs.
pub const DEFAULT_TRUST_DOMAIN: &str = "credit.example";
/// Default validity of issued certificates, in days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Validity of a dev CA certificate, in days (10 years).
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Issued certificates start this long before "now", to tolerate clock skew.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Length of generated serial numbers, in bytes (RFC 5280 allows up to 20).
const SERIAL_LEN: usize = 16;

/// A development CA: its certificate and signing key.
pub struct DevCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("DevCa")
            .field("fingerprint", &crate::identity::fingerprint_hex(&self.cert_der))
            .finish_non_exhaustive()
    }
}

/// What kind of certificate to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// A TLS server (gateway, connector): DNS and IP SANs, `serverAuth`.
    Server {
        /// DNS SANs.
        dns: Vec<String>,
        /// IP address SANs.
        ips: Vec<IpAddr>,
    },
    /// A TLS client belonging to an organisation: SPIFFE URI SAN, subject O,
    /// `clientAuth`.
    Client {
        /// Organisation id, the last segment of the SPIFFE URI
        /// (`[A-Za-z0-9._-]`, at most 128 characters).
        org_id: String,
        /// Organisation name, the subject O.
        org_name: String,
    },
}

/// Parameters of a certificate to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueRequest {
    /// Server or client, with the kind's names.
    pub kind: CertKind,
    /// Subject CN.
    pub common_name: String,
    /// Trust domain of the SPIFFE URI (client certificates); default
    /// [`DEFAULT_TRUST_DOMAIN`].
    pub trust_domain: String,
    /// Start of validity; default now minus [`BACKDATE`].
    pub not_before: Option<SystemTime>,
    /// End of validity; default `not_before + validity_days`. Set it in the
    /// past to make an expired certificate for tests.
    pub not_after: Option<SystemTime>,
    /// Validity in days when `not_after` is not set.
    pub validity_days: u32,
}

impl IssueRequest {
    /// A server certificate named `name` (the CN) with the given SANs. At
    /// least one DNS name or IP address is required; nothing is added
    /// implicitly (the CLI adds the loopback names).
    pub fn server(name: impl Into<String>, dns: Vec<String>, ips: Vec<IpAddr>) -> Self {
        Self::new(CertKind::Server { dns, ips }, name.into())
    }

    /// A client certificate for organisation `org_id` (URI SAN
    /// `spiffe://<trust domain>/org/<org_id>`), subject `O=<org_name>`,
    /// `CN=<cn>`.
    pub fn client(org_id: impl Into<String>, org_name: impl Into<String>, cn: impl Into<String>) -> Self {
        Self::new(CertKind::Client { org_id: org_id.into(), org_name: org_name.into() }, cn.into())
    }

    fn new(kind: CertKind, common_name: String) -> Self {
        Self {
            kind,
            common_name,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            not_before: None,
            not_after: None,
            validity_days: DEFAULT_VALIDITY_DAYS,
        }
    }

    /// Sets the trust domain of the SPIFFE URI.
    pub fn with_trust_domain(mut self, trust_domain: impl Into<String>) -> Self {
        self.trust_domain = trust_domain.into();
        self
    }

    /// Sets the validity in days (counted from `not_before`).
    pub fn with_validity_days(mut self, days: u32) -> Self {
        self.validity_days = days;
        self
    }

    /// Sets an explicit validity window (e.g. one in the past, for tests of
    /// expired certificates).
    pub fn valid_between(mut self, not_before: SystemTime, not_after: SystemTime) -> Self {
        self.not_before = Some(not_before);
        self.not_after = Some(not_after);
        self
    }

    /// The SPIFFE URI a client certificate from this request carries.
    pub fn spiffe_uri(&self) -> Option<String> {
        match &self.kind {
            CertKind::Client { org_id, .. } => Some(spiffe_uri(&self.trust_domain, org_id)),
            CertKind::Server { .. } => None,
        }
    }
}

/// A freshly issued certificate and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM. Never log it.
    pub key_pem: String,
    /// Serial number, lowercase hex (the form [`Identity::serial`] and
    /// `certs revoke --serial` use).
    pub serial: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued").field("serial", &self.serial).field("key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes `dir/<stem>.pem` (mode 0644) and `dir/<stem>.key` (mode 0600),
    /// each atomically (temporary file + rename; an existing pair is
    /// replaced). Creates `dir` if needed. Returns (cert path, key path).
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), CertError> {
        validate_stem(stem)?;
        fsutil::ensure_dir(dir)?;
        let cert_path = dir.join(format!("{stem}.pem"));
        let key_path = dir.join(format!("{stem}.key"));
        fsutil::write_atomic(&key_path, self.key_pem.as_bytes(), KEY_MODE, Existing::Replace)?;
        fsutil::write_atomic(&cert_path, self.cert_pem.as_bytes(), PUBLIC_MODE, Existing::Replace)?;
        Ok((cert_path, key_path))
    }

    /// The certificate in DER form.
    pub fn cert_der(&self) -> Result<CertificateDer<'static>, CertError> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| CertError::InvalidCertificate {
            source_name: "issued certificate".to_owned(),
            reason: e.to_string(),
        })
    }

    /// The identity a verifier will extract from this certificate.
    pub fn identity(&self) -> Result<Identity, CertError> {
        Identity::from_der(&self.cert_der()?)
    }
}

impl DevCa {
    /// Generates a new CA in memory (for tests), subject `CN=<name>`.
    pub fn generate(name: &str) -> Result<DevCa, CertError> {
        if name.trim().is_empty() {
            return Err(CertError::input("CA name", name, "must not be empty"));
        }
        let key = KeyPair::generate().map_err(|e| CertError::generate("generate the CA key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = SystemTime::now();
        params.not_before = to_offset(now - BACKDATE)?;
        params.not_after = to_offset(later(now, DAY * CA_VALIDITY_DAYS)?)?;
        params.serial_number = Some(random_serial()?);
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params
            .self_signed(&key)
            .map_err(|e| CertError::generate(format!("self-sign the CA certificate {name:?}"), e))?;
        Ok(DevCa { cert_pem: cert.pem(), cert_der: cert.der().clone(), issuer: Issuer::new(params, key) })
    }

    /// Generates a new CA and writes `dir/ca.pem` and `dir/ca.key` (mode
    /// 0600), creating `dir` if needed. Refuses to overwrite an existing CA
    /// (either file present), atomically.
    pub fn init(dir: &Path, name: &str) -> Result<DevCa, CertError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        for existing in [&cert_path, &key_path] {
            if existing.exists() {
                return Err(CertError::CaExists { dir: dir.into(), existing: existing.clone() });
            }
        }
        let ca = Self::generate(name)?;
        fsutil::ensure_dir(dir)?;
        let exists = |e: &CertError, path: &PathBuf| match e {
            CertError::Write { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Some(CertError::CaExists { dir: dir.into(), existing: path.clone() })
            }
            _ => None,
        };
        let key_pem = ca.issuer.key().serialize_pem();
        if let Err(e) = fsutil::write_atomic(&key_path, key_pem.as_bytes(), KEY_MODE, Existing::Keep) {
            return Err(exists(&e, &key_path).unwrap_or(e));
        }
        if let Err(e) = fsutil::write_atomic(&cert_path, ca.cert_pem.as_bytes(), PUBLIC_MODE, Existing::Keep) {
            // Do not leave a key without its certificate behind.
            let _ = std::fs::remove_file(&key_path);
            return Err(exists(&e, &cert_path).unwrap_or(e));
        }
        Ok(ca)
    }

    /// Loads `dir/ca.pem` and `dir/ca.key`, checking that the certificate is
    /// a CA and that the key belongs to it.
    pub fn load(dir: &Path) -> Result<DevCa, CertError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_der = load::certs_from_pem_file(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| CertError::NoCertificates { path: cert_path.clone() })?;
        let key_pem = fsutil::read_to_string(&key_path)?;
        warn_if_key_readable_by_others(&key_path);
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| CertError::Pem { path: key_path.clone(), reason: format!("not a usable CA key: {e}") })?;

        let invalid = |reason: &str| CertError::InvalidCertificate {
            source_name: cert_path.display().to_string(),
            reason: reason.to_owned(),
        };
        let (_, parsed) = X509Certificate::from_der(&cert_der).map_err(|_| invalid("not a valid X.509 certificate"))?;
        if !parsed.is_ca() {
            return Err(invalid("not a CA certificate (basicConstraints CA:TRUE missing)"));
        }
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(invalid(&format!("its public key does not match {}", key_path.display())));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| CertError::generate(format!("use {} as an issuer", cert_path.display()), e))?;
        let cert_pem = fsutil::read_to_string(&cert_path)?;
        Ok(DevCa { cert_pem, cert_der, issuer })
    }

    /// The CA certificate, PEM (the trust anchor to hand to peers).
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// Issues a certificate with a fresh P-256 key and a random serial.
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued, CertError> {
        let cn = req.common_name.trim();
        if cn.is_empty() {
            return Err(CertError::input("common name", &req.common_name, "must not be empty"));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;

        match &req.kind {
            CertKind::Server { dns, ips } => {
                if dns.is_empty() && ips.is_empty() {
                    return Err(CertError::input(
                        "server certificate",
                        cn,
                        "needs at least one DNS name or IP address",
                    ));
                }
                params.distinguished_name.push(DnType::CommonName, cn);
                for name in dns {
                    validate_dns_name(name)?;
                    let ia5 = name
                        .as_str()
                        .try_into()
                        .map_err(|_| CertError::input("DNS name", name, "not an ASCII DNS name"))?;
                    params.subject_alt_names.push(SanType::DnsName(ia5));
                }
                params.subject_alt_names.extend(ips.iter().copied().map(SanType::IpAddress));
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            CertKind::Client { org_id, org_name } => {
                validate_trust_domain(&req.trust_domain)?;
                validate_org_id(org_id)?;
                if org_name.trim().is_empty() {
                    return Err(CertError::input("organisation name", org_name, "must not be empty"));
                }
                let uri = spiffe_uri(&req.trust_domain, org_id);
                let ia5 = uri.as_str().try_into().map_err(|_| CertError::input("SPIFFE URI", &uri, "not ASCII"))?;
                params.subject_alt_names.push(SanType::URI(ia5));
                params.distinguished_name.push(DnType::OrganizationName, org_name.as_str());
                params.distinguished_name.push(DnType::CommonName, cn);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }

        let not_before = req.not_before.unwrap_or_else(|| SystemTime::now() - BACKDATE);
        let not_after = match req.not_after {
            Some(t) => t,
            None => later(not_before, DAY * req.validity_days)?,
        };
        if not_after <= not_before {
            return Err(CertError::input(
                "validity",
                cn,
                "not_after must be later than not_before (validity_days must be at least 1)",
            ));
        }
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;

        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);

        let key = KeyPair::generate().map_err(|e| CertError::generate("generate a key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| CertError::generate(format!("sign the certificate for {cn:?}"), e))?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), serial: serial_hex })
    }

    /// CRL (PEM) revoking the given serials (hex, any of the forms
    /// [`normalize_serial`] accepts), signed by the CA, `thisUpdate` now and
    /// `nextUpdate` after `valid_for`. The CRL number is the current Unix
    /// time, so later CRLs have larger numbers.
    pub fn crl_pem(&self, revoked_serials: &[String], valid_for: Duration) -> Result<String, CertError> {
        let now = SystemTime::now();
        let entries: Vec<(String, SystemTime)> = revoked_serials.iter().map(|s| (s.clone(), now)).collect();
        self.crl_pem_at(&entries, now, valid_for)
    }

    /// Like [`DevCa::crl_pem`], with a revocation time per serial and an
    /// explicit `thisUpdate` (set it in the past to make an expired CRL for
    /// tests).
    pub fn crl_pem_with_times(
        &self,
        revoked: &[(String, SystemTime)],
        this_update: SystemTime,
        valid_for: Duration,
    ) -> Result<String, CertError> {
        self.crl_pem_at(revoked, this_update, valid_for)
    }

    fn crl_pem_at(
        &self,
        revoked: &[(String, SystemTime)],
        now: SystemTime,
        valid_for: Duration,
    ) -> Result<String, CertError> {
        if valid_for.is_zero() {
            return Err(CertError::input("CRL validity", "0s", "must be positive"));
        }
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for (serial, when) in revoked {
            let normalized = normalize_serial(serial)?;
            let bytes = hex::decode(&normalized).map_err(|e| CertError::input("serial", serial, e.to_string()))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: to_offset(*when)?,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let crl_number = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1).max(1);
        let params = CertificateRevocationListParams {
            this_update: to_offset(now)?,
            next_update: to_offset(later(now, valid_for)?)?,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(|e| CertError::generate("sign the CRL", e))?;
        crl.pem().map_err(|e| CertError::generate("encode the CRL", e))
    }
}

/// `spiffe://<trust_domain>/org/<org_id>`.
pub fn spiffe_uri(trust_domain: &str, org_id: &str) -> String {
    format!("spiffe://{trust_domain}/org/{org_id}")
}

/// Converts to rcgen's time type; refuses times outside years 0..=9999
/// instead of panicking.
fn to_offset(t: SystemTime) -> Result<OffsetDateTime, CertError> {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).ok(),
        Err(e) => i64::try_from(e.duration().as_secs()).ok().map(|s| -s),
    };
    secs.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| CertError::input("time", format!("{t:?}"), "outside the years 0-9999"))
}

fn later(t: SystemTime, by: Duration) -> Result<SystemTime, CertError> {
    t.checked_add(by).ok_or_else(|| CertError::input("validity", format!("{by:?}"), "too long"))
}

fn random_serial() -> Result<SerialNumber, CertError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; SERIAL_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CertError::Random { action: "generating a serial number" })?;
    // Positive, and no leading zero byte: the DER encoding then equals these
    // bytes and the hex form is stable.
    bytes[0] = (bytes[0] & 0x7f).max(1);
    Ok(SerialNumber::from_slice(&bytes))
}

fn validate_stem(stem: &str) -> Result<(), CertError> {
    if stem.is_empty() || stem.starts_with('.') || stem.contains(['/', '\\', '\0']) {
        return Err(CertError::input("file stem", stem, "must be a plain file name (no '/', not starting with '.')"));
    }
    Ok(())
}

fn validate_dns_name(name: &str) -> Result<(), CertError> {
    rustls_pki_types::DnsName::try_from(name)
        .map(|_| ())
        .map_err(|_| CertError::input("DNS name", name, "not a valid DNS name"))
}

fn validate_trust_domain(td: &str) -> Result<(), CertError> {
    let ok = !td.is_empty()
        && td.len() <= 255
        && td.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CertError::input("trust domain", td, "must be 1-255 characters of a-z, 0-9, '.', '-', '_'"))
    }
}

fn validate_org_id(org_id: &str) -> Result<(), CertError> {
    let ok = !org_id.is_empty()
        && org_id.len() <= 128
        && org_id != "."
        && org_id != ".."
        && org_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CertError::input("org id", org_id, "must be 1-128 characters of A-Z, a-z, 0-9, '.', '-', '_'"))
    }
}

fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            key.path = %path.display(),
            key.mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "CA key file is accessible to group or others; chmod 600 it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn client_certificate_carries_identity() {
        let ca = DevCa::generate("test CA").expect("ca");
        let issued = ca.issue(&IssueRequest::client("court-01", "City Court", "batch")).expect("issue");
        let id = issued.identity().expect("identity");
        assert_eq!(id.uri.as_deref(), Some("spiffe://credit.example/org/court-01"));
        assert_eq!(id.org_id.as_deref(), Some("court-01"));
        assert_eq!(id.organization.as_deref(), Some("City Court"));
        assert_eq!(id.common_name.as_deref(), Some("batch"));
        assert_eq!(id.serial, issued.serial);
        assert_eq!(id.serial.len(), SERIAL_LEN * 2);
        assert_eq!(id.fingerprint.len(), 64);

        let other = ca.issue(&IssueRequest::client("court-01", "City Court", "batch")).expect("issue");
        assert_ne!(other.serial, issued.serial, "serials are random");
    }

    #[test]
    fn invalid_requests_are_refused() {
        let ca = DevCa::generate("test CA").expect("ca");
        for bad in ["", "a/b", "..", "sp ace"] {
            let err = ca.issue(&IssueRequest::client(bad, "Org", "cn")).expect_err(bad);
            assert!(err.to_string().contains("org id"), "{err}");
        }
        let err = ca
            .issue(&IssueRequest::client("x", "Org", "cn").with_trust_domain("Bad Domain"))
            .expect_err("trust domain");
        assert!(err.to_string().contains("trust domain"), "{err}");
        let err = ca.issue(&IssueRequest::server("gw", vec![], vec![])).expect_err("no SANs");
        assert!(err.to_string().contains("at least one"), "{err}");
        let err = ca.issue(&IssueRequest::server("gw", vec!["bad name!".to_owned()], vec![])).expect_err("bad dns");
        assert!(err.to_string().contains("DNS name"), "{err}");
        let err = ca.issue(&IssueRequest::client("x", "Org", "cn").with_validity_days(0)).expect_err("zero days");
        assert!(err.to_string().contains("validity"), "{err}");
        let err = ca
            .issue(&IssueRequest::client("x", "Org", "cn").with_validity_days(u32::MAX))
            .expect_err("absurd validity");
        assert!(err.to_string().contains("9999"), "{err}");
        assert!(ca.crl_pem(&[], Duration::MAX).is_err());
    }

    #[test]
    fn init_writes_private_key_0600_and_refuses_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_dir = dir.path().join("ca");
        let ca = DevCa::init(&ca_dir, "dev CA").expect("init");
        assert_eq!(mode(&ca_dir.join(CA_KEY_FILE)), 0o600);
        let err = DevCa::init(&ca_dir, "dev CA").expect_err("second init");
        assert!(matches!(err, CertError::CaExists { .. }), "{err}");
        assert!(err.to_string().contains("refusing to overwrite"));

        let loaded = DevCa::load(&ca_dir).expect("load");
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        // The loaded CA can still issue and sign CRLs.
        let issued = loaded.issue(&IssueRequest::server("gw", vec!["localhost".to_owned()], vec![])).expect("issue");
        let (cert, key) = issued.write(dir.path(), "gw").expect("write");
        assert_eq!(mode(&key), 0o600);
        assert!(cert.ends_with("gw.pem"));
        loaded.crl_pem(std::slice::from_ref(&issued.serial), Duration::from_secs(3600)).expect("crl");
        // No temporary files are left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn load_rejects_mismatched_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        DevCa::init(&a, "A").expect("a");
        DevCa::init(&b, "B").expect("b");
        std::fs::copy(b.join(CA_KEY_FILE), a.join(CA_KEY_FILE)).expect("copy");
        let err = DevCa::load(&a).expect_err("mismatch");
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn debug_output_has_no_key() {
        let ca = DevCa::generate("test CA").expect("ca");
        let issued = ca.issue(&IssueRequest::client("o", "Org", "cn")).expect("issue");
        assert!(!format!("{issued:?}").contains("PRIVATE"));
        assert!(!format!("{ca:?}").contains("PRIVATE"));
    }
}
