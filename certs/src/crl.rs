//! Checking a CRL file before it is put in force.
//!
//! A CRL is accepted only if it parses (as DER and for the TLS verifier),
//! names one of the configured CAs as its issuer, is signed by that CA's key,
//! and does not go back in CRL number. Anything else is refused with a reason
//! that names the file and the CRL, never its content.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use serde::Serialize;
use x509_parser::num_bigint::BigUint;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{CertError, provider};

/// What a CRL in force says, for reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrlSummary {
    /// The issuing CA's distinguished name.
    pub issuer: String,
    /// The CRL number (decimal), if the CRL has one.
    pub crl_number: Option<String>,
    /// How many certificate serials it revokes.
    pub revoked_serials: usize,
    /// Its `thisUpdate`.
    pub this_update: DateTime<Utc>,
    /// Its `nextUpdate`, after which it is expired.
    pub next_update: Option<DateTime<Utc>>,
}

/// A configured CA certificate, kept to check CRL issuers and signatures.
pub(crate) struct CaCert {
    der: CertificateDer<'static>,
}

impl CaCert {
    /// Reads the CA certificates of a trust bundle.
    pub(crate) fn from_bundle(ca_file: &Path, certs: &[CertificateDer<'static>]) -> Result<Vec<CaCert>, CertError> {
        let mut cas = Vec::with_capacity(certs.len());
        for (i, der) in certs.iter().enumerate() {
            if X509Certificate::from_der(der).is_err() {
                return Err(CertError::InvalidCertificate {
                    source_name: ca_file.display().to_string(),
                    reason: format!("CA certificate #{} is not a valid X.509 certificate", i + 1),
                });
            }
            cas.push(CaCert { der: der.clone() });
        }
        Ok(cas)
    }

    fn with_parsed<T>(&self, f: impl FnOnce(&X509Certificate<'_>) -> T) -> Option<T> {
        X509Certificate::from_der(&self.der).ok().map(|(_, cert)| f(&cert))
    }
}

/// A CRL that passed every check.
#[derive(Clone, Debug)]
pub(crate) struct ValidCrl {
    pub(crate) der: CertificateRevocationListDer<'static>,
    pub(crate) summary: CrlSummary,
    pub(crate) issuer_raw: Vec<u8>,
    pub(crate) number: Option<BigUint>,
    pub(crate) next_update: Option<SystemTime>,
}

impl ValidCrl {
    /// Whether the CRL is past its next update at `now`.
    pub(crate) fn expired_at(&self, now: SystemTime) -> bool {
        self.next_update.is_some_and(|next| now >= next)
    }
}

/// Checks the PEM content of one CRL file. `previous` are the CRLs this file
/// held until now (their CRL numbers must not go down). The error is the
/// reason for refusing the file.
pub(crate) fn validate_file(
    bytes: &[u8],
    cas: &[CaCert],
    ca_file: &Path,
    roots: &Arc<RootCertStore>,
    previous: &[ValidCrl],
) -> Result<Vec<ValidCrl>, String> {
    let ders = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {}", crate::load::pem_reason(&e)))?;
    if ders.is_empty() {
        return Err("no \"X509 CRL\" PEM section".to_owned());
    }
    let mut valid = Vec::with_capacity(ders.len());
    for (i, der) in ders.into_iter().enumerate() {
        let which = i + 1;
        valid.push(validate_one(der, cas, ca_file).map_err(|reason| format!("CRL #{which}: {reason}"))?);
    }
    // The TLS verifier parses CRLs itself (more strictly in places); it must
    // accept them too, or the set could not be put in force.
    WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
        .with_crls(valid.iter().map(|c| c.der.clone()))
        .build()
        .map_err(|e| format!("refused by the TLS verifier: {e}"))?;
    for crl in &valid {
        let older = previous
            .iter()
            .filter(|p| p.issuer_raw == crl.issuer_raw)
            .filter_map(|p| p.number.as_ref())
            .max()
            .filter(|loaded| crl.number.as_ref().is_none_or(|new| new < *loaded));
        if let Some(loaded) = older {
            return Err(format!(
                "CRL of {} has number {} but the CRL in force has number {loaded}: an older CRL would \
                 un-revoke certificates",
                crl.summary.issuer,
                crl.number.as_ref().map_or_else(|| "none".to_owned(), |n| n.to_string()),
            ));
        }
    }
    Ok(valid)
}

fn validate_one(
    der: CertificateRevocationListDer<'static>,
    cas: &[CaCert],
    ca_file: &Path,
) -> Result<ValidCrl, String> {
    let (rest, crl) = CertificateRevocationList::from_der(&der).map_err(|e| format!("not a valid DER CRL ({e})"))?;
    if !rest.is_empty() {
        return Err("trailing data after the CRL".to_owned());
    }
    let issuer_raw = crl.issuer().as_raw().to_vec();
    let issuer = crl.issuer().to_string();
    let candidates: Vec<&CaCert> = cas
        .iter()
        .filter(|ca| ca.with_parsed(|cert| cert.subject().as_raw() == issuer_raw.as_slice()).unwrap_or(false))
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "issued by `{issuer}`, which is not a CA in {} (only CRLs of the configured CAs are accepted)",
            ca_file.display()
        ));
    }
    let mut last_error = None;
    let signed = candidates.iter().any(|ca| {
        let verified = ca.with_parsed(|cert| verify(&crl, cert.public_key()));
        match verified {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                last_error = Some(e);
                false
            }
            None => false,
        }
    });
    if !signed {
        return Err(format!(
            "names `{issuer}` as its issuer but is not signed by that CA's key ({})",
            last_error.unwrap_or_else(|| "signature check failed".to_owned())
        ));
    }

    let this_update = to_chrono(crl.last_update().timestamp());
    let next_update_ts = crl.next_update().map(|t| t.timestamp());
    let summary = CrlSummary {
        issuer,
        crl_number: crl.crl_number().map(|n| n.to_string()),
        revoked_serials: crl.iter_revoked_certificates().count(),
        this_update,
        next_update: next_update_ts.map(to_chrono),
    };
    let next_update = next_update_ts.map(to_system_time);
    let number = crl.crl_number().cloned();
    Ok(ValidCrl { der: der.clone(), summary, issuer_raw, number, next_update })
}

fn verify(crl: &CertificateRevocationList<'_>, key: &SubjectPublicKeyInfo<'_>) -> Result<(), String> {
    crl.verify_signature(key).map_err(|e| match e {
        x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => "unsupported signature algorithm".to_owned(),
        x509_parser::error::X509Error::SignatureVerificationError => "the signature does not verify".to_owned(),
        other => other.to_string(),
    })
}

fn to_chrono(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

fn to_system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{DevCa, IssueRequest};

    const HOUR: Duration = Duration::from_secs(3600);

    struct Setup {
        ca: DevCa,
        cas: Vec<CaCert>,
        roots: Arc<RootCertStore>,
    }

    fn setup() -> Setup {
        let ca = DevCa::generate("test CA").expect("ca");
        let cas = CaCert::from_bundle(Path::new("ca.pem"), &[ca.cert_der()]).expect("cas");
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der()).expect("root");
        Setup { ca, cas, roots: Arc::new(roots) }
    }

    fn check(s: &Setup, pem: &str, previous: &[ValidCrl]) -> Result<Vec<ValidCrl>, String> {
        validate_file(pem.as_bytes(), &s.cas, Path::new("ca.pem"), &s.roots, previous)
    }

    #[test]
    fn a_crl_of_the_configured_ca_is_accepted_with_its_summary() {
        let s = setup();
        let serial = s.ca.issue(&IssueRequest::client("o", "Org", "cn")).expect("issue").serial;
        let crls = check(&s, &s.ca.crl_pem(&[serial], HOUR).expect("crl"), &[]).expect("accepted");
        assert_eq!(crls.len(), 1);
        let summary = &crls[0].summary;
        assert_eq!(summary.issuer, "CN=test CA");
        assert_eq!(summary.revoked_serials, 1);
        assert!(summary.crl_number.is_some());
        assert!(summary.next_update.is_some_and(|n| n > summary.this_update));
        assert!(!crls[0].expired_at(SystemTime::now()));
        assert!(crls[0].expired_at(SystemTime::now() + 2 * HOUR));
    }

    #[test]
    fn garbage_foreign_and_forged_crls_are_refused() {
        let s = setup();
        let err = check(&s, "this is not a CRL", &[]).expect_err("garbage");
        assert!(err.contains("no \"X509 CRL\""), "{err}");
        let err = check(&s, "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", &[]).expect_err("bad der");
        assert!(err.contains("not a valid DER CRL"), "{err}");

        let other = DevCa::generate("other CA").expect("other");
        let err = check(&s, &other.crl_pem(&[], HOUR).expect("crl"), &[]).expect_err("foreign");
        assert!(err.contains("`CN=other CA`, which is not a CA in ca.pem"), "{err}");

        // Same name as the configured CA, different key: the dangerous case
        // (it would un-revoke everything if it were believed).
        let impostor = DevCa::generate("test CA").expect("impostor");
        let err = check(&s, &impostor.crl_pem(&[], HOUR).expect("crl"), &[]).expect_err("forged");
        assert!(err.contains("not signed by that CA's key"), "{err}");
        assert!(err.contains("does not verify"), "{err}");
    }

    #[test]
    fn an_older_crl_number_is_refused() {
        let s = setup();
        let now = SystemTime::now();
        let newer = check(&s, &s.ca.crl_pem_with_times(&[], now, HOUR).expect("crl"), &[]).expect("newer");
        let older_pem = s.ca.crl_pem_with_times(&[], now - HOUR, 2 * HOUR).expect("crl");
        let err = check(&s, &older_pem, &newer).expect_err("rollback");
        assert!(err.contains("older CRL would un-revoke"), "{err}");
        // Control: without a CRL in force, the same file is accepted.
        check(&s, &older_pem, &[]).expect("accepted on its own");
    }
}
