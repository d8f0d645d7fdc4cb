//! Signed checkpoints (`checkpoints.jsonl`) and exported checkpoints.
//!
//! A checkpoint states "this log had `record_count` records and its head
//! record (`head_seq`) had hash `head_hash` at `time`", signed with Ed25519.
//! The signature covers `CHECKPOINT_SIGNING_CONTEXT` followed by the
//! checkpoint's JSON without the `signature` field.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::AuditError;
use crate::keys::{SigningKey, key_id_of, verify_signature};
use crate::record::rfc3339_millis;

/// File name of the checkpoint log inside the state directory.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";

/// Domain-separation prefix of the signed bytes.
pub const CHECKPOINT_SIGNING_CONTEXT: &[u8] = b"creditgate-audit-checkpoint-v1\n";

/// `format` value of an exported checkpoint file.
pub const EXPORT_FORMAT: &str = "creditgate-audit-checkpoint/1";

/// Why a checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// Every N records or T seconds.
    Periodic,
    /// On `close()`.
    Close,
    /// On request (`checkpoint_now`, export).
    Manual,
    /// Written by the old key just before a key rotation (`next_key_id` set).
    Rotation,
    /// After pruning: anchors the new start of the chain (`anchor` set).
    Anchor,
}

/// The new start of the chain after pruning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// First sequence number still in the log.
    pub first_seq: u64,
    /// That record's `prev_hash` (the hash of the last pruned record).
    pub prev_hash: String,
}

/// One signed checkpoint (a line of `checkpoints.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Why it was written.
    pub kind: CheckpointKind,
    /// Records ever appended (equals `head_seq`, since seq starts at 1).
    pub record_count: u64,
    /// Sequence number of the head record (0 for an empty log).
    pub head_seq: u64,
    /// Hash of the head record ([`GENESIS_HASH`](crate::GENESIS_HASH) for an empty log).
    pub head_hash: String,
    /// When it was signed.
    #[serde(with = "rfc3339_millis")]
    pub time: DateTime<Utc>,
    /// Id of the signing key (see [`key_id_of`]).
    pub key_id: String,
    /// Set on [`CheckpointKind::Anchor`].
    pub anchor: Option<Anchor>,
    /// Set on [`CheckpointKind::Rotation`]: the key that signs from now on.
    pub next_key_id: Option<String>,
    /// Ed25519 signature, base64.
    pub signature: String,
}

#[derive(Serialize)]
struct SignedBody<'a> {
    kind: CheckpointKind,
    record_count: u64,
    head_seq: u64,
    head_hash: &'a str,
    time: String,
    key_id: &'a str,
    anchor: &'a Option<Anchor>,
    next_key_id: &'a Option<String>,
}

impl Checkpoint {
    /// Creates and signs a checkpoint.
    pub fn sign(
        key: &SigningKey,
        kind: CheckpointKind,
        head_seq: u64,
        head_hash: &str,
        time: DateTime<Utc>,
        anchor: Option<Anchor>,
        next_key_id: Option<String>,
    ) -> Result<Self, AuditError> {
        let mut cp = Checkpoint {
            kind,
            record_count: head_seq,
            head_seq,
            head_hash: head_hash.to_owned(),
            time,
            key_id: key.key_id().to_owned(),
            anchor,
            next_key_id,
            signature: String::new(),
        };
        cp.signature = B64.encode(key.sign(&cp.signed_bytes()?));
        Ok(cp)
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Result<Vec<u8>, AuditError> {
        let body = SignedBody {
            kind: self.kind,
            record_count: self.record_count,
            head_seq: self.head_seq,
            head_hash: &self.head_hash,
            time: rfc3339_millis::format(&self.time),
            key_id: &self.key_id,
            anchor: &self.anchor,
            next_key_id: &self.next_key_id,
        };
        let mut out = CHECKPOINT_SIGNING_CONTEXT.to_vec();
        serde_json::to_writer(&mut out, &body).map_err(|source| AuditError::Json { what: "checkpoint", source })?;
        Ok(out)
    }

    /// Whether the signature verifies under `public_key` and `key_id` names that key.
    pub fn verify(&self, public_key: &[u8]) -> bool {
        if key_id_of(public_key) != self.key_id {
            return false;
        }
        let Ok(sig) = B64.decode(&self.signature) else {
            return false;
        };
        let Ok(msg) = self.signed_bytes() else {
            return false;
        };
        verify_signature(public_key, &msg, &sig)
    }

    /// The stored line, with trailing newline.
    pub(crate) fn to_line(&self) -> Result<Vec<u8>, AuditError> {
        let mut line = serde_json::to_vec(self).map_err(|source| AuditError::Json { what: "checkpoint", source })?;
        line.push(b'\n');
        Ok(line)
    }
}

/// What `export_checkpoint` writes for a witness: a checkpoint plus the
/// public key that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedCheckpoint {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Raw Ed25519 public key, base64.
    pub public_key: String,
}

impl ExportedCheckpoint {
    /// Reads an exported checkpoint file.
    pub fn read(path: &Path) -> Result<Self, AuditError> {
        let bytes = std::fs::read(path).map_err(AuditError::io("read", path))?;
        serde_json::from_slice(&bytes).map_err(|source| AuditError::Json { what: "exported checkpoint", source })
    }

    /// Whether the format is known and the signature verifies under the embedded key.
    pub fn is_valid(&self) -> bool {
        self.format == EXPORT_FORMAT && B64.decode(&self.public_key).is_ok_and(|pk| self.checkpoint.verify(&pk))
    }
}
