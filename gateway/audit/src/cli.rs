//! The `creditgate audit …` subcommands, for the gateway binary to wire in.

use std::path::{Path, PathBuf};

use crate::verify::{export_checkpoint, verify};

/// Exit code for usage or I/O errors of the CLI itself.
pub const EXIT_ERROR: i32 = 2;

/// `creditgate audit <command>`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain and check every checkpoint signature.
    Verify {
        /// The audit state directory.
        #[arg(long)]
        dir: PathBuf,
        /// A checkpoint exported earlier (by a witness) to compare against.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
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
}

/// Runs `audit verify`: returns the exit code and the message to print
/// (stdout when the code is 0, stderr otherwise).
pub fn run_verify(dir: &Path, checkpoint: Option<&Path>) -> (i32, String) {
    let report = verify(dir, checkpoint);
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

/// Runs a command: returns the exit code and the message to print.
pub fn run(cmd: &AuditCommand) -> (i32, String) {
    match cmd {
        AuditCommand::Verify { dir, checkpoint } => run_verify(dir, checkpoint.as_deref()),
        AuditCommand::ExportCheckpoint { dir, out } => run_export_checkpoint(dir, out),
    }
}
