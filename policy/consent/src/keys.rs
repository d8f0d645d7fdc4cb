//! Issuer signing keys and the gateway's trusted-issuer list.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::artefact::is_name;
use crate::error::ConsentError;

/// Length of a key id in hex characters.
pub const KEY_ID_LEN: usize = 16;

/// Length of a raw Ed25519 public key in bytes.
const PUBLIC_KEY_LEN: usize = 32;

/// PEM label of the key files [`IssuerKey`] writes.
const PEM_LABEL: &str = "PRIVATE KEY";

/// The key id of an Ed25519 public key: hex SHA-256 of the 32 raw bytes,
/// first [`KEY_ID_LEN`] characters (the scheme the audit log uses too).
pub fn key_id_of(public_key: &[u8]) -> String {
    let mut id = hex::encode(ring::digest::digest(&ring::digest::SHA256, public_key).as_ref());
    id.truncate(KEY_ID_LEN);
    id
}

/// A consent issuer's Ed25519 private key.
///
/// Stored as PKCS#8 (ring writes v2) in a PEM file (`-----BEGIN PRIVATE
/// KEY-----`) with mode 0600; DER files are read too. `Debug` shows only the
/// key id.
pub struct IssuerKey {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl IssuerKey {
    /// Generates a key; returns it with its PKCS#8 v2 DER encoding (to store).
    pub fn generate() -> Result<(IssuerKey, Vec<u8>), ConsentError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| ConsentError::Crypto("Ed25519 key generation"))?;
        let der = doc.as_ref().to_vec();
        let key = Self::from_pkcs8(&der).map_err(|_| ConsentError::Crypto("Ed25519 key generation"))?;
        Ok((key, der))
    }

    /// Parses a PKCS#8 (v1 or v2) Ed25519 private key, DER or PEM. The error
    /// says what is wrong, in words.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<IssuerKey, String> {
        let der = if bytes.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(bytes).map_err(|_| "PEM is not UTF-8".to_owned())?;
            let body: String = text.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
            B64.decode(body).map_err(|_| "PEM body is not base64".to_owned())?
        } else {
            bytes.to_vec()
        };
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key ({e})"))?;
        let key_id = key_id_of(pair.public_key().as_ref());
        Ok(IssuerKey { pair, key_id })
    }

    /// Loads the key at `path`. A file readable by group or others is
    /// refused (the message says to `chmod 600` it).
    pub fn load(path: &Path) -> Result<IssuerKey, ConsentError> {
        let bytes = fs::read(path).map_err(ConsentError::io("read", path))?;
        check_private(path)?;
        Self::from_pkcs8(&bytes).map_err(|reason| ConsentError::Key { path: path.to_path_buf(), reason })
    }

    /// Loads the key at `path`, or generates one and writes it there (PEM,
    /// mode 0600, parent directories created) if the file does not exist.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(IssuerKey, bool), ConsentError> {
        match fs::metadata(path) {
            Ok(_) => Self::load(path).map(|k| (k, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, der) = Self::generate()?;
                match crate::fsutil::create_atomic(path, pem_encode(&der).as_bytes()) {
                    Ok(()) => {}
                    // Another process created it meanwhile: use that one.
                    Err(ConsentError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Self::load(path).map(|k| (k, false));
                    }
                    Err(e) => return Err(e),
                }
                Ok((key, true))
            }
            Err(e) => Err(ConsentError::io("stat", path)(e)),
        }
    }

    /// The key id ([`key_id_of`] the public key).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key in base64 (standard alphabet), as the trusted-issuer
    /// configuration takes it.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.public_key())
    }

    /// Signs `msg`.
    pub(crate) fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

/// PEM-encodes a PKCS#8 DER private key.
fn pem_encode(der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), ConsentError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path).map_err(ConsentError::io("stat", path))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(ConsentError::Key {
            path: path.to_path_buf(),
            reason: format!(
                "file mode {:o} lets group or others read the private key; run `chmod 600` on it",
                mode & 0o777
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), ConsentError> {
    Ok(())
}

/// One `[[consent_issuers]]` entry of the gateway configuration:
///
/// ```toml
/// [[consent_issuers]]
/// id = "credit-platform"
/// public_key = "base64 of the 32-byte Ed25519 public key"
/// # or: public_key_file = "keys/credit-platform.pub"   (the same base64 text)
/// ```
///
/// Exactly one of `public_key` and `public_key_file` is given. Several
/// entries with the same `id` add keys to that issuer (key rotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Issuer id, as artefacts name it in `issuer`.
    pub id: String,
    /// The public key, base64 (standard alphabet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// A file holding the public key in base64 (as `consent keygen` writes
    /// to `<KEYFILE>.pub`); relative paths are resolved against the
    /// configuration file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_file: Option<PathBuf>,
}

/// The consent issuers the gateway trusts: issuer id → public keys by key id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedIssuers {
    issuers: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl TrustedIssuers {
    /// Builds the list from configuration entries. Every problem is reported
    /// at once in [`ConsentError::Config`], each prefixed with its key
    /// (`consent_issuers[i].field`). An empty list is refused: a gateway
    /// that takes consents must trust at least one issuer.
    pub fn from_config(entries: &[IssuerConfig], base_dir: Option<&Path>) -> Result<TrustedIssuers, ConsentError> {
        let mut issues = Vec::new();
        let mut out = TrustedIssuers::default();
        if entries.is_empty() {
            issues.push(
                "consent_issuers: no consent issuer configured; add a [[consent_issuers]] entry with id and \
                 public_key"
                    .to_owned(),
            );
        }
        for (i, entry) in entries.iter().enumerate() {
            let at = |field: &str| format!("consent_issuers[{i}].{field}");
            if !is_name(&entry.id) {
                issues.push(format!("{}: must be 1-128 characters from A-Z a-z 0-9 . _ -", at("id")));
            }
            let text = match (&entry.public_key, &entry.public_key_file) {
                (Some(k), None) => Some((at("public_key"), k.clone())),
                (None, Some(file)) => {
                    let path = match base_dir {
                        Some(base) if file.is_relative() => base.join(file),
                        _ => file.clone(),
                    };
                    match fs::read_to_string(&path) {
                        Ok(t) => Some((at("public_key_file"), t)),
                        Err(e) => {
                            issues.push(format!("{}: cannot read {}: {e}", at("public_key_file"), path.display()));
                            None
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    issues.push(format!("{}: give public_key or public_key_file, not both", at("public_key")));
                    None
                }
                (None, None) => {
                    issues.push(format!("{}: missing (or give public_key_file)", at("public_key")));
                    None
                }
            };
            if let Some((key, text)) = text {
                match decode_public_key(&text) {
                    Ok(pk) => {
                        if is_name(&entry.id) {
                            out.insert(&entry.id, pk);
                        }
                    }
                    Err(reason) => issues.push(format!("{key}: {reason}")),
                }
            }
        }
        if issues.is_empty() { Ok(out) } else { Err(ConsentError::Config { issues }) }
    }

    /// Adds one public key (32 raw bytes) for `issuer`.
    pub fn add(&mut self, issuer: &str, public_key: &[u8]) -> Result<(), ConsentError> {
        if !is_name(issuer) {
            return Err(ConsentError::invalid("issuer", "must be 1-128 characters from A-Z a-z 0-9 . _ -"));
        }
        if public_key.len() != PUBLIC_KEY_LEN {
            return Err(ConsentError::invalid("public_key", "an Ed25519 public key is 32 bytes"));
        }
        self.insert(issuer, public_key.to_vec());
        Ok(())
    }

    fn insert(&mut self, issuer: &str, public_key: Vec<u8>) {
        self.issuers.entry(issuer.to_owned()).or_default().insert(key_id_of(&public_key), public_key);
    }

    /// Whether no issuer is trusted.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The trusted issuer ids, sorted.
    pub fn issuer_ids(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }

    /// The key ids trusted for `issuer` (`None` if the issuer is unknown).
    pub fn key_ids(&self, issuer: &str) -> Option<impl Iterator<Item = &str>> {
        self.issuers.get(issuer).map(|keys| keys.keys().map(String::as_str))
    }

    /// Looks up a key: `Err(false)` unknown issuer, `Err(true)` known issuer
    /// but unknown key id.
    pub(crate) fn key(&self, issuer: &str, key_id: &str) -> Result<&[u8], bool> {
        let keys = self.issuers.get(issuer).ok_or(false)?;
        keys.get(key_id).map(Vec::as_slice).ok_or(true)
    }
}

/// Decodes a base64 public key (surrounding whitespace ignored).
fn decode_public_key(text: &str) -> Result<Vec<u8>, String> {
    let bytes = B64.decode(text.trim()).map_err(|_| "not base64 (standard alphabet)".to_owned())?;
    if bytes.len() != PUBLIC_KEY_LEN {
        return Err(format!("decodes to {} bytes; an Ed25519 public key is {PUBLIC_KEY_LEN}", bytes.len()));
    }
    Ok(bytes)
}

/// Verifies an Ed25519 signature.
pub(crate) fn verify_signature(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key).verify(msg, sig).is_ok()
}
