//! Loading PEM certificates, private keys and CRLs made by any CA (this
//! crate's dev CA, openssl, a corporate PKI).
//!
//! Every error names the file; none repeats the file's content.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::CertError;

/// Reads every `CERTIFICATE` section of a PEM file, in order (leaf first for a
/// chain file). A file without any certificate is an error
/// ("no certificates in …"), as is an unreadable or malformed file.
pub fn certs_from_pem_file(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let path = path.as_ref();
    let certs = read_all::<CertificateDer<'static>>(path)?;
    if certs.is_empty() {
        return Err(CertError::NoCertificates { path: path.into() });
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file: PKCS#8 (`PRIVATE KEY`),
/// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, as written by
/// `openssl ecparam -genkey`; a leading `EC PARAMETERS` section is skipped).
/// Encrypted keys are not supported.
pub fn key_from_pem_file(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>, CertError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| CertError::read(path, e))?;
    key_from_pem_bytes(path, &bytes)
}

/// Like [`key_from_pem_file`] but for PEM already in memory; `path` is only
/// used in error messages.
pub fn key_from_pem_bytes(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => Err(CertError::NoPrivateKey { path: path.into() }),
        Err(e) => Err(pem_error(path, e)),
    }
}

/// Reads every `X509 CRL` section of a PEM file. A file without any CRL is an
/// error, as is an unreadable or malformed file.
pub fn crls_from_pem_file(path: impl AsRef<Path>) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let path = path.as_ref();
    let crls = read_all::<CertificateRevocationListDer<'static>>(path)?;
    if crls.is_empty() {
        return Err(CertError::NoCrls { path: path.into() });
    }
    Ok(crls)
}

fn read_all<T: PemObject>(path: &Path) -> Result<Vec<T>, CertError> {
    let bytes = std::fs::read(path).map_err(|e| CertError::read(path, e))?;
    T::pem_slice_iter(&bytes).collect::<Result<Vec<T>, _>>().map_err(|e| pem_error(path, e))
}

/// Maps a PEM parse error to a message that names the file but never echoes
/// its content (a malformed key file must not leak into logs).
fn pem_error(path: &Path, e: pem::Error) -> CertError {
    match e {
        pem::Error::Io(io) => CertError::read(path, io),
        other => CertError::Pem { path: path.into(), reason: pem_reason(&other).to_owned() },
    }
}

/// What is wrong with a PEM input, in words that never quote its content.
pub(crate) fn pem_reason(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::Io(_) => "cannot be read",
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "malformed PEM BEGIN line",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::NoItemsFound => "no PEM sections of the expected type",
        _ => "malformed PEM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_missing_files_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let err = certs_from_pem_file(&empty).expect_err("empty file");
        assert_eq!(err.to_string(), format!("no certificates in {}", empty.display()));

        let missing = dir.path().join("missing.pem");
        let err = certs_from_pem_file(&missing).expect_err("missing file");
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let err = key_from_pem_file(&empty).expect_err("no key");
        assert!(err.to_string().starts_with("no private key in"), "{err}");

        let err = crls_from_pem_file(&empty).expect_err("no crl");
        assert!(err.to_string().contains("no certificate revocation lists"), "{err}");
    }

    #[test]
    fn malformed_pem_does_not_echo_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nSECRETSECRET!!!\n-----END PRIVATE KEY-----\n")
            .expect("write");
        let err = key_from_pem_file(&bad).expect_err("bad base64");
        let msg = err.to_string();
        assert!(msg.contains("bad.key"), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
    }
}
