//! The `creditgate audit …` subcommands, for the gateway binary to wire in.

use std::path::{Path, PathBuf};

use crate::error::AuditError;
use crate::keys::SigningKey;
use crate::log::{AuditLog, AuditOptions};
use crate::verify::{VerifyOptions, export_checkpoint, verify_with};

/// Exit code for usage or I/O errors of the CLI itself.
pub const EXIT_ERROR: i32 = 2;

/// Exit code of `audit verify` when there is no audit log to verify: the
/// directory is missing, or it holds no records and `--allow-empty` was not
/// given ([`FindingKind::NoLog`](crate::FindingKind::NoLog)).
pub const EXIT_NO_LOG: i32 = 3;

/// `creditgate audit <command>`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain and check every checkpoint signature.
    ///
    /// Exit codes: 0 the log verifies; 2 a file or the directory is
    /// unreadable; 3 no audit log: the directory does not exist, or it holds
    /// no records (no `audit-<seq>-<YYYYMMDD>.jsonl` segment files, or only
    /// empty ones) and --allow-empty was not given; 10-16 records malformed,
    /// modified, unlinked, deleted, reordered, duplicated or misnamed; 20-23
    /// checkpoints malformed, forged, signed by an unknown key or not matching
    /// the log; 30-32 the log is shorter than a checkpoint, rewritten, or the
    /// exported checkpoint is bad. The first problem found decides the code.
    ///
    /// With --postgres, verifies instead every replica's chain in the shared
    /// state: the same checks per replica, each finding naming the replica
    /// and the sequence number.
    Verify {
        /// The audit state directory.
        #[arg(long, required_unless_present = "postgres", conflicts_with = "postgres")]
        dir: Option<PathBuf>,
        /// The shared state: `postgres://user@host:port/database` (the
        /// password, if any, in --password-file or PGPASSWORD).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// The PostgreSQL schema of the shared state.
        #[arg(long, default_value = "creditgate", requires = "postgres")]
        schema: String,
        /// File holding the database password (first line).
        #[arg(long, requires = "postgres")]
        password_file: Option<PathBuf>,
        /// A checkpoint exported earlier (by a witness) to compare against.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Accept a directory with no records (a new log that has never
        /// recorded a request). A missing directory still fails.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Write the latest signed checkpoint and its public key for a witness to keep.
    ExportCheckpoint {
        /// The audit state directory.
        #[arg(long)]
        dir: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Switch checkpoint signing to a new Ed25519 key (gateway stopped). The
    /// old key signs a `rotation` checkpoint naming the new one; old
    /// checkpoints keep verifying against `keys.json`.
    RotateKey {
        /// The audit state directory (the gateway's `state/audit`).
        #[arg(long)]
        dir: PathBuf,
        /// The signing key file the gateway uses (`state/audit-signing.key`);
        /// replaced by the new key.
        #[arg(long)]
        key: PathBuf,
    },
}

/// Runs `audit verify`: returns the exit code and the message to print
/// (stdout when the code is 0, stderr otherwise). Without `allow_empty`, a
/// directory without records fails with [`EXIT_NO_LOG`]; a missing directory
/// always does.
pub fn run_verify(dir: &Path, checkpoint: Option<&Path>, allow_empty: bool) -> (i32, String) {
    let report = verify_with(dir, checkpoint, VerifyOptions { allow_empty });
    (report.exit_code(), report.message())
}

/// Runs `audit export-checkpoint`: returns the exit code and the message to print.
pub fn run_export_checkpoint(dir: &Path, out: &Path) -> (i32, String) {
    match export_checkpoint(dir, out) {
        Ok(x) => (
            0,
            format!(
                "exported the checkpoint of {} records (head seq {}, hash {}, signed {} by key {}) to {}",
                x.checkpoint.record_count,
                x.checkpoint.head_seq,
                x.checkpoint.head_hash,
                crate::record::rfc3339_millis::format(&x.checkpoint.time),
                x.checkpoint.key_id,
                out.display()
            ),
        ),
        Err(e) => (EXIT_ERROR, format!("audit export-checkpoint failed: {e}")),
    }
}

/// Runs `audit rotate-key`: returns the exit code and the message to print.
pub fn run_rotate_key(dir: &Path, key: &Path) -> (i32, String) {
    match rotate_key_file(dir, key) {
        Ok((old, new)) => (
            0,
            format!(
                "audit signing key rotated: {old} -> {new}; {} now holds the new key and old checkpoints still verify",
                key.display()
            ),
        ),
        Err(e) => (EXIT_ERROR, format!("audit rotate-key failed: {e}")),
    }
}

/// Generates a new signing key, has the log rotate to it and replaces `key`
/// with it. The new key is on disk (fsynced, mode 0600) before the rotation
/// checkpoints are written, and renamed into place after them, so a crash
/// leaves either the old key in place (the next start signs with it) or the
/// new one (already in `keys.json`). Returns the old and new key ids.
fn rotate_key_file(dir: &Path, key: &Path) -> Result<(String, String), AuditError> {
    let key_error = |reason: String| AuditError::SigningKey { path: key.to_path_buf(), reason };
    if !key.is_file() {
        return Err(key_error("no signing key there: rotate the key the gateway uses".to_owned()));
    }
    if !dir.is_dir() {
        return Err(AuditError::io("open", dir)(std::io::Error::from(std::io::ErrorKind::NotFound)));
    }
    let old_id = SigningKey::load_or_create(key)?.key_id().to_owned();
    let log = AuditLog::open(dir, AuditOptions::new(key))?;
    let (new_key, der) = SigningKey::generate().map_err(key_error)?;
    let new_id = new_key.key_id().to_owned();
    let tmp = key.with_extension("key.new");
    write_private(&tmp, &der)?;
    if let Err(e) = log.rotate_key(new_key) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, key).map_err(AuditError::io("rename", key))?;
    let parent = key.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    crate::segment::sync_dir(parent)?;
    log.close()?;
    Ok((old_id, new_id))
}

/// Writes a private key file (mode 0600, atomically), replacing a stale one.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    use creditgate_files::{Access, Existing};
    creditgate_files::write_atomic(path, bytes, Access::Private, Existing::Replace).map_err(crate::segment::write_error)
}

/// Runs a command: returns the exit code and the message to print.
pub fn run(cmd: &AuditCommand) -> (i32, String) {
    match cmd {
        AuditCommand::Verify { dir: Some(dir), checkpoint, allow_empty, .. } => {
            run_verify(dir, checkpoint.as_deref(), *allow_empty)
        }
        // The shared state is verified by the binary, which links the
        // PostgreSQL side (`creditgate_state::verify_url`).
        AuditCommand::Verify { dir: None, .. } => {
            (2, "audit verify: give --dir DIR, or --postgres URL to the creditgate binary".to_owned())
        }
        AuditCommand::ExportCheckpoint { dir, out } => run_export_checkpoint(dir, out),
        AuditCommand::RotateKey { dir, key } => run_rotate_key(dir, key),
    }
}
