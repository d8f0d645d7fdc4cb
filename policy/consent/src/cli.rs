//! `creditgate consent …`: issuer key generation, issuing and showing consents.
//!
//! The gateway binary embeds [`ConsentCommand`] as a subcommand and calls
//! [`run`]:
//!
//! ```text
//! creditgate consent keygen --out issuer.key
//! creditgate consent issue --key issuer.key --issuer credit-platform \
//!     --subject-type resident_id --subject 11010519491231002X \
//!     --grantee credit-agency --purpose credit_report \
//!     --dataset court.dishonest_debtors --dataset market.enterprises \
//!     --days 30 --max-uses 3 --out consent.json
//! creditgate consent show consent.json
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Timelike as _, Utc};
use creditgate_ident::SubjectKind;

use crate::artefact::{ConsentArtefact, ConsentDraft, issue};
use crate::error::ConsentError;
use crate::keys::IssuerKey;
use crate::subject::SubjectRef;

/// Validity of an issued consent when `--days` is not given.
pub const DEFAULT_VALID_DAYS: u32 = 30;

/// Maximum uses of an issued consent when `--max-uses` is not given (one
/// lookup: the least a consent can allow).
pub const DEFAULT_MAX_USES: u32 = 1;

/// Longest validity `--days` accepts (about ten years).
pub const MAX_VALID_DAYS: u32 = 3660;

/// Environment variable that may carry `--subject`, so a resident ID need
/// not appear in the process list or shell history.
pub const SUBJECT_ENV: &str = "CREDITGATE_CONSENT_SUBJECT";

/// Identifier kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SubjectTypeArg {
    /// Unified social credit code (an organisation).
    #[value(name = "credit_code")]
    CreditCode,
    /// Resident ID number (a natural person).
    #[value(name = "resident_id")]
    ResidentId,
}

impl From<SubjectTypeArg> for SubjectKind {
    fn from(t: SubjectTypeArg) -> Self {
        match t {
            SubjectTypeArg::CreditCode => SubjectKind::CreditCode,
            SubjectTypeArg::ResidentId => SubjectKind::ResidentId,
        }
    }
}

/// Consent issuer commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing would only obscure the clap derive")]
pub enum ConsentCommand {
    /// Create an issuer signing key (Ed25519, PKCS#8 PEM, mode 0600), or load
    /// the existing one; write its public key to KEYFILE.pub and print the
    /// `[[consent_issuers]]` entry for the gateway configuration.
    Keygen {
        /// The private key file.
        #[arg(long, value_name = "KEYFILE")]
        out: PathBuf,
    },
    /// Issue a signed consent artefact (printed, or written with mode 0600).
    Issue {
        /// The issuer's private key file.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The issuer id the gateway knows this key under.
        #[arg(long, value_name = "ID")]
        issuer: String,
        /// Kind of subject identifier.
        #[arg(long = "subject-type", value_enum, value_name = "TYPE")]
        subject_type: SubjectTypeArg,
        /// The subject's identifier (15-digit resident IDs are upgraded to 18).
        #[arg(long, value_name = "ID", env = SUBJECT_ENV, hide_env_values = true)]
        subject: String,
        /// The grantee organisation id (the `org` of its SPIFFE URI).
        #[arg(long, value_name = "ORG")]
        grantee: String,
        /// A purpose code the subject agreed to (repeat for several).
        #[arg(long = "purpose", value_name = "CODE", required = true)]
        purposes: Vec<String>,
        /// A dataset covered, `<source>.<table>` (repeat for several).
        #[arg(long = "dataset", value_name = "DATASET", required = true)]
        datasets: Vec<String>,
        /// Restrict a dataset to some columns: `DATASET=COL[,COL...]` (repeatable).
        #[arg(long = "column", value_name = "DATASET=COLS")]
        columns: Vec<String>,
        /// First day of the data covered (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        data_from: Option<NaiveDate>,
        /// Last day of the data covered (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        data_to: Option<NaiveDate>,
        /// Start of validity (RFC 3339); default now.
        #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
        valid_from: Option<DateTime<Utc>>,
        /// Days of validity from the start.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_VALID_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_VALID_DAYS)))]
        days: u32,
        /// Maximum number of lookups.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_USES,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_uses: u32,
        /// Consent id (default: a random `cns-…` id).
        #[arg(long, value_name = "ID")]
        consent_id: Option<String>,
        /// Write the artefact here instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a consent artefact's format and print it.
    Show {
        /// The artefact file.
        file: PathBuf,
    },
}

/// Runs a consent command, printing to standard output.
pub fn run(cmd: ConsentCommand) -> Result<(), ConsentError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_with(cmd, &mut out, Utc::now())
}

/// Runs a consent command, printing to `out`, with `now` as the current time.
pub fn run_with(cmd: ConsentCommand, out: &mut dyn Write, now: DateTime<Utc>) -> Result<(), ConsentError> {
    let print_err = ConsentError::io("write", "standard output");
    match cmd {
        ConsentCommand::Keygen { out: path } => {
            let (key, created) = IssuerKey::load_or_create(&path)?;
            let pub_path = public_key_path(&path);
            std::fs::write(&pub_path, format!("{}\n", key.public_key_b64()))
                .map_err(ConsentError::io("write", &pub_path))?;
            let verb = if created { "created" } else { "loaded existing" };
            writeln!(
                out,
                "{verb} issuer key {} (key id {})\npublic key written to {}\n\n\
                 Add to the gateway configuration:\n\n[[consent_issuers]]\nid = \"<issuer id>\"\npublic_key = \"{}\"",
                path.display(),
                key.key_id(),
                pub_path.display(),
                key.public_key_b64()
            )
            .map_err(print_err)
        }
        ConsentCommand::Issue {
            key,
            issuer,
            subject_type,
            subject,
            grantee,
            purposes,
            datasets,
            columns,
            data_from,
            data_to,
            valid_from,
            days,
            max_uses,
            consent_id,
            out: out_file,
        } => {
            let key = IssuerKey::load(&key)?;
            let subject = SubjectRef::parse(subject_type.into(), &subject)
                .map_err(|source| ConsentError::Ident { field: "--subject", source })?;
            let valid_from = match valid_from {
                Some(t) => t,
                None => now.with_nanosecond(0).unwrap_or(now),
            };
            let draft = ConsentDraft {
                consent_id,
                issuer,
                subject,
                grantee,
                purposes,
                datasets,
                columns: parse_columns(&columns)?,
                data_from,
                data_to,
                valid_from,
                valid_until: valid_from + Duration::days(i64::from(days)),
                max_uses,
            };
            let artefact = issue(&key, draft)?;
            let json = artefact.to_json_pretty()?;
            match out_file {
                Some(file) => {
                    crate::fsutil::write_atomic(&file, format!("{json}\n").as_bytes())?;
                    writeln!(
                        out,
                        "wrote consent {} to {} (valid until {}, at most {} use(s))",
                        artefact.consent_id,
                        file.display(),
                        crate::artefact::rfc3339::format(&artefact.valid_until),
                        artefact.max_uses
                    )
                    .map_err(print_err)
                }
                None => writeln!(out, "{json}").map_err(print_err),
            }
        }
        ConsentCommand::Show { file } => {
            let artefact = read_artefact(&file)?;
            artefact.check_shape().map_err(crate::verify::ConsentRefusal::from)?;
            writeln!(out, "{}", artefact.to_json_pretty()?).map_err(print_err)
        }
    }
}

/// Reads and parses an artefact file.
pub fn read_artefact(path: &Path) -> Result<ConsentArtefact, ConsentError> {
    let text = std::fs::read_to_string(path).map_err(ConsentError::io("read", path))?;
    Ok(ConsentArtefact::from_json(&text)?)
}

/// `KEYFILE.pub` next to the key.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut name = key.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// `--column DATASET=COL[,COL…]` options as a map (repeats merge).
fn parse_columns(args: &[String]) -> Result<Option<BTreeMap<String, Vec<String>>>, ConsentError> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for arg in args {
        let Some((dataset, cols)) = arg.split_once('=') else {
            return Err(ConsentError::invalid("--column", "expected DATASET=COL[,COL...]"));
        };
        let list = map.entry(dataset.trim().to_owned()).or_default();
        list.extend(cols.split(',').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
    }
    Ok(Some(map))
}

/// Parses an RFC 3339 timestamp.
fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 timestamp like 2026-05-01T00:00:00Z ({e})"))
}
