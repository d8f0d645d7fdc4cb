//! creditgate PKI: everything about certificates and mutual TLS.
//!
//! - [`ca`]: a development CA (rcgen) issuing server certificates and client
//!   certificates that carry an organisation identity
//!   (`spiffe://<trust domain>/org/<org id>` URI SAN, subject O and CN), and
//!   signing CRLs;
//! - [`load`]: PEM certificates, keys (PKCS#8, PKCS#1, SEC1) and CRLs made by
//!   any CA, openssl included;
//! - [`identity`]: the verified caller's [`identity::Identity`], read from its
//!   leaf certificate, and how configured identity strings match it;
//! - [`tls`]: rustls server/client configurations (client CA + CRLs), a
//!   stream of accepted TLS connections for tonic/hyper with the caller's
//!   identity attached, and a tonic channel over our own TLS;
//! - [`revocation`]: a client trust whose CRLs are reloaded while the server
//!   runs (on demand, on file change, at `nextUpdate`), refusing bad CRLs,
//!   with a registry that closes connections whose certificate gets revoked
//!   and enforces a maximum connection age;
//! - [`cli`]: the `creditgate certs …` subcommands.
//!
//! Only the ring crypto provider is used: library code builds configurations
//! with [`provider()`], and binaries call [`install_default_provider()`] first
//! thing in `main`.

#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

pub mod ca;
pub mod cli;
mod conns;
mod crl;
mod error;
mod fsutil;
pub mod identity;
pub mod load;
pub mod revocation;
pub mod tls;

pub use error::CertError;

/// ring CryptoProvider, shared. Library code uses `builder_with_provider(provider())`.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// Installs ring as the process default (idempotent; call at top of main).
///
/// If another provider was installed first it is left in place (rustls
/// allows one per process); this crate never relies on the default anyway.
pub fn install_default_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none()
        && rustls::crypto::ring::default_provider().install_default().is_err()
    {
        tracing::debug!("a rustls CryptoProvider was installed concurrently; keeping it");
    }
}
