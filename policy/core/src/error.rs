//! The crate's error type.

use std::fmt;

use creditgate_ident::DatasetName;

/// One problem found while loading a policy file: where it is and why it is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// Name of the policy source (usually the file name).
    pub origin: String,
    /// Key path inside the file, e.g. `rules[3].masks.legal_rep_id`
    /// (array indices are 0-based, in file order).
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub reason: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.reason)
        }
    }
}

/// Every problem found in one policy file, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issues(pub Vec<Issue>);

impl fmt::Display for Issues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} error{} in policy", if n == 1 { "" } else { "s" })?;
        for issue in &self.0 {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// Errors of the policy crate.
///
/// `Invalid`, `Read` and `WeakSecret` are configuration errors (start-up or
/// reload fails); `PurposeMissing`, `PurposeNotAllowed`, `LicenceExpired` and
/// `NoRecordDate` are refusals to show a caller (permission denied, with an actionable
/// reason); `MaskType`, `SourceMismatch`, `Retention` and `Plan` mean that the
/// policy and a source disagree or DataFusion failed while building a secure
/// view (internal: log, do not show details to callers).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The path that was read.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The policy file has one or more mistakes (all of them are listed).
    #[error("{0}")]
    Invalid(Issues),
    /// The masking secret is too short to be a secret.
    #[error("mask secret must be at least {min} bytes (got {got})")]
    WeakSecret {
        /// Minimum accepted length.
        min: usize,
        /// Length supplied.
        got: usize,
    },
    /// The request did not name a purpose.
    #[error(
        "a purpose is required: send one of the purpose codes allowed for {principal}: {}",
        allowed.join(", ")
    )]
    PurposeMissing {
        /// Principal name.
        principal: String,
        /// The purposes this principal may use.
        allowed: Vec<String>,
    },
    /// The purpose is not a well-formed purpose code (nothing is trimmed or folded).
    #[error("purpose \"{received}\" is not a purpose code (a-z, 0-9, _; sent exactly, no spaces)")]
    PurposeMalformed {
        /// What was received (control characters escaped, truncated).
        received: String,
    },
    /// The caller's role may not perform this operation.
    #[error("{principal} has role {role}, which may not {operation}")]
    OperationNotAllowed {
        /// Principal name.
        principal: String,
        /// The principal's role.
        role: &'static str,
        /// What the refused operation does.
        operation: &'static str,
    },
    /// An agency's purpose is not one of its statutory duties.
    #[error("purpose \"{purpose}\" is not one of {principal}'s statutory duties ({})", duties.join(", "))]
    NotADuty {
        /// Principal name.
        principal: String,
        /// The purpose requested.
        purpose: String,
        /// The principal's duty codes.
        duties: Vec<String>,
    },
    /// An individual's data needs the individual's consent.
    #[error(
        "looking up an individual requires the individual's written consent for this purpose \
         (credit-industry regulation Art. 18, PIPL §23): send the signed consent artefact as `consent`"
    )]
    ConsentRequired,
    /// A credit agency has no licence.
    #[error("{principal}: credit agencies need a licence to look up enterprises")]
    LicenceMissing {
        /// Principal name.
        principal: String,
    },
    /// The request named a purpose this principal may not use.
    #[error(
        "purpose \"{purpose}\" is not allowed for {principal}; allowed purposes: {}",
        allowed.join(", ")
    )]
    PurposeNotAllowed {
        /// Principal name.
        principal: String,
        /// The purpose requested (truncated to 64 characters).
        purpose: String,
        /// The purposes this principal may use.
        allowed: Vec<String>,
    },
    /// A credit agency's licence has expired.
    #[error("licence {number} of {principal} expired on {expiry}")]
    LicenceExpired {
        /// Principal name.
        principal: String,
        /// Licence number.
        number: String,
        /// Last day of validity.
        expiry: chrono::NaiveDate,
    },
    /// A consent limits the data date range, but the dataset has no
    /// record-date column to apply it to (a refusal for that dataset).
    #[error(
        "dataset {dataset} has no record date in the policy, so the consent's data date range cannot be applied \
         to it; leave it out of the request or use a consent without a data date range"
    )]
    NoRecordDate {
        /// Dataset name.
        dataset: DatasetName,
    },
    /// A mask cannot be applied to a column of this type.
    #[error("mask {mask} cannot be applied to {dataset}.{column} of type {data_type}")]
    MaskType {
        /// Dataset name.
        dataset: DatasetName,
        /// Column name.
        column: String,
        /// Mask spec.
        mask: String,
        /// Column type at the source.
        data_type: String,
    },
    /// A granted column does not exist at the source.
    #[error("dataset {dataset} has no column {column} at its source, but the policy grants it")]
    SourceMismatch {
        /// Dataset name.
        dataset: DatasetName,
        /// Column name.
        column: String,
    },
    /// The retention cut-off date cannot be computed.
    #[error("cannot compute the retention cut-off for {dataset}: {reason}")]
    Retention {
        /// Dataset name.
        dataset: DatasetName,
        /// Why.
        reason: String,
    },
    /// DataFusion failed while building a secure view.
    #[error("cannot build secure view for {dataset}: {source}")]
    Plan {
        /// Dataset name.
        dataset: DatasetName,
        /// The DataFusion error.
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
}
