//! Ed25519 checkpoint signing keys and the public key ring (`keys.json`).

use std::fs;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::error::AuditError;
use crate::record::{rfc3339_millis, sha256_hex};

/// File name of the public key ring inside the state directory.
pub const KEYS_FILE: &str = "keys.json";

/// Length of a key id in hex characters.
pub const KEY_ID_LEN: usize = 16;

/// The key id of a public key: hex SHA-256 of the raw public key, first
/// [`KEY_ID_LEN`] characters.
pub fn key_id_of(public_key: &[u8]) -> String {
    let mut id = sha256_hex(public_key);
    id.truncate(KEY_ID_LEN);
    id
}

/// An Ed25519 private key used to sign checkpoints.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 (v1 or v2) Ed25519 private key, DER or PEM.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, String> {
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
        Ok(SigningKey { pair, key_id })
    }

    /// Generates a fresh key; returns it with its PKCS#8 v2 DER encoding.
    pub fn generate() -> Result<(Self, Vec<u8>), String> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "key generation failed".to_owned())?;
        let key = Self::from_pkcs8(doc.as_ref())?;
        Ok((key, doc.as_ref().to_vec()))
    }

    /// Loads the key from `path`, or creates a new one there (mode 0600) if
    /// the file does not exist. An existing file readable by group or others
    /// is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        let key_err = |reason: String| AuditError::SigningKey { path: path.to_path_buf(), reason };
        match fs::read(path) {
            Ok(bytes) => {
                check_private(path)?;
                Self::from_pkcs8(&bytes).map_err(key_err)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, der) = Self::generate().map_err(key_err)?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    fs::create_dir_all(parent).map_err(AuditError::io("create directory", parent))?;
                }
                use creditgate_files::{Access, Existing};
                match creditgate_files::write_atomic(path, &der, Access::Private, Existing::Keep) {
                    Ok(()) => {}
                    // Another process created it meanwhile: use that one.
                    Err(e) if e.already_exists() => return Self::load_or_create(path),
                    Err(e) => return Err(crate::segment::write_error(e)),
                }
                info!(audit.key_id = %key.key_id, "created a new audit checkpoint signing key");
                Ok(key)
            }
            Err(e) => Err(AuditError::io("read", path)(e)),
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

    /// Signs `msg`.
    pub(crate) fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), AuditError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path).map_err(AuditError::io("stat", path))?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(AuditError::SigningKey {
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
fn check_private(_path: &Path) -> Result<(), AuditError> {
    Ok(())
}

/// Verifies an Ed25519 signature.
pub(crate) fn verify_signature(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key).verify(msg, sig).is_ok()
}

/// One public key in `keys.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyEntry {
    /// [`key_id_of`] the key.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// Raw public key, base64.
    pub public_key: String,
    /// When the key was first used by this log.
    #[serde(with = "rfc3339_millis")]
    pub added: DateTime<Utc>,
}

/// `keys.json`: every public key that ever signed a checkpoint of this log,
/// oldest first, so old checkpoints still verify after rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRing {
    /// The keys, oldest first.
    pub keys: Vec<PublicKeyEntry>,
}

impl KeyRing {
    /// Loads `keys.json` from `dir`; a missing file is an empty ring.
    pub fn load(dir: &Path) -> Result<Self, AuditError> {
        let path = dir.join(KEYS_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| AuditError::Json { what: "keys.json", source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeyRing::default()),
            Err(e) => Err(AuditError::io("read", path)(e)),
        }
    }

    /// Writes `keys.json` atomically (temporary file, fsync, rename, fsync directory).
    pub(crate) fn save(&self, dir: &Path) -> Result<(), AuditError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| AuditError::Json { what: "keys.json", source })?;
        crate::segment::write_atomic(dir, KEYS_FILE, &bytes)
    }

    /// The raw public key for `key_id`, if known and well-formed.
    pub fn public_key(&self, key_id: &str) -> Option<Vec<u8>> {
        self.keys
            .iter()
            .find(|k| k.key_id == key_id)
            .and_then(|k| B64.decode(&k.public_key).ok())
            .filter(|pk| key_id_of(pk) == key_id)
    }

    /// Adds `key` if absent; returns whether it was added.
    pub(crate) fn ensure(&mut self, key: &SigningKey, now: DateTime<Utc>) -> bool {
        if self.keys.iter().any(|k| k.key_id == key.key_id()) {
            return false;
        }
        self.keys.push(PublicKeyEntry {
            key_id: key.key_id().to_owned(),
            algorithm: "ed25519".to_owned(),
            public_key: B64.encode(key.public_key()),
            added: now,
        });
        true
    }
}
