//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Each message names the file, directory or value concerned and what is
/// wrong with it. Messages never contain key material (PEM bodies, key
/// bytes): only paths, names, serials and library error descriptions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file is not valid PEM.
    #[error("invalid PEM in {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's content).
        reason: String,
    },

    /// A certificate file (or CA bundle) holds no `CERTIFICATE` section.
    #[error("no certificates in {path}")]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },

    /// A key file holds no usable private key.
    #[error(
        "no private key in {path} (expected an unencrypted PKCS#8 \"PRIVATE KEY\", \
         PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\" PEM section)"
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },

    /// A CRL file holds no `X509 CRL` section.
    #[error("no certificate revocation lists in {path}")]
    NoCrls {
        /// The file.
        path: PathBuf,
    },

    /// A certificate (from a file or from a peer) could not be used.
    #[error("invalid certificate in {source_name}: {reason}")]
    InvalidCertificate {
        /// Where the certificate came from: a path, or `"peer certificate"`.
        source_name: String,
        /// What is wrong.
        reason: String,
    },

    /// `DevCa::init` found an existing CA in the target directory.
    #[error("a CA already exists in {dir} (found {existing}); refusing to overwrite it")]
    CaExists {
        /// The CA directory.
        dir: PathBuf,
        /// The file that already exists.
        existing: PathBuf,
    },

    /// A name, identifier or parameter for a certificate is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// Which input (e.g. `"org id"`, `"DNS name"`, `"serial"`).
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it is refused.
        reason: String,
    },

    /// rcgen failed to generate or sign something.
    #[error("cannot {action}: {source}")]
    Generate {
        /// What was being done (e.g. `"sign the certificate for \"gw\""`).
        action: String,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed while {action}")]
    Random {
        /// What needed randomness.
        action: &'static str,
    },

    /// rustls refused a configuration (for instance a key that does not
    /// match its certificate).
    #[error("invalid TLS configuration ({context}): {source}")]
    Tls {
        /// Which files or settings were involved.
        context: String,
        /// The rustls error.
        #[source]
        source: rustls::Error,
    },

    /// The client-certificate verifier could not be built from the trust
    /// configuration (CA bundle and CRLs).
    #[error("invalid client trust configuration (CA {ca_file}, CRLs {crl_files}): {source}")]
    ClientTrust {
        /// The CA bundle.
        ca_file: PathBuf,
        /// The CRL files, comma-separated.
        crl_files: String,
        /// The verifier builder error.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },

    /// A CRL file was refused: it does not parse, is not issued and signed
    /// by one of the configured CAs, or goes back in CRL number.
    #[error("CRL file {path} rejected: {reason}")]
    CrlRejected {
        /// The file.
        path: PathBuf,
        /// Why (never the file's content).
        reason: String,
    },

    /// A JSON state file (the revocation list) is malformed.
    #[error("invalid JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl CertError {
    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Read { path: path.into(), source }
    }

    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Write { path: path.into(), source }
    }

    pub(crate) fn input(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput { what, value: value.into(), reason: reason.into() }
    }

    pub(crate) fn generate(action: impl Into<String>, source: rcgen::Error) -> Self {
        Self::Generate { action: action.into(), source }
    }
}
