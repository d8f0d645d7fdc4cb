//! The validated policy model: principals, datasets and rules.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use creditgate_ident::DatasetName;
use datafusion::logical_expr::Expr;
use serde::Serialize;

use crate::masks::Mask;

/// The configured identity of the principal served on the public
/// disclosure listener (no client certificate).
pub const PUBLIC_IDENTITY: &str = "public";

/// Retention of negative records when the policy does not say otherwise:
/// 5 years from the end of the event (征信业管理条例 Art. 16).
pub const DEFAULT_RETENTION_YEARS: u32 = 5;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every accepted spelling, comma-separated (for error messages).
            pub const EXPECTED: &'static str = concat!($($text, ", "),+);

            /// The spelling used in policy files.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        concat!("unknown ", $what, " \"{}\" (expected one of {})"),
                        other,
                        Self::EXPECTED.trim_end_matches(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// What kind of caller a principal is; decides its legal basis.
    Role, "role", {
        /// A government department acting on a statutory duty.
        Agency => "agency",
        /// A licensed third-party credit agency (consent + purpose).
        CreditAgency => "credit_agency",
        /// An e-commerce platform (onboarding checks).
        Platform => "platform",
        /// The data protection officer: audit log only, no credit data.
        PrivacyOfficer => "privacy_officer",
        /// Anyone, on the public disclosure listener: public fields only.
        Public => "public",
    }
);

string_enum!(
    /// Sensitivity class of a column.
    ColumnClass, "column class", {
        /// Disclosed to the public.
        Public => "public",
        /// Not public, but not about an individual (internal case data, …).
        Restricted => "restricted",
        /// Personal information (names of individuals, addresses, …).
        Personal => "personal",
        /// Sensitive personal information (ID numbers, phone numbers,
        /// financial accounts, complainant identity): separate consent.
        Sensitive => "sensitive",
    }
);

/// A credit agency's licence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Licence {
    /// Licence number.
    pub number: String,
    /// Last day the licence is valid.
    pub expiry: NaiveDate,
    /// Datasets the licence covers; the agency is granted nothing outside them.
    pub scope: Vec<DatasetName>,
}

/// Rate limit of a principal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Burst size.
    pub burst: u32,
}

/// A caller known to the policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Unique name (used in rules, logs and audit records).
    pub name: String,
    /// Configured identity: `spiffe://…`, `sha256:<fingerprint>`,
    /// `o=<O>/cn=<CN>`, or [`PUBLIC_IDENTITY`] for the public principal.
    pub identity: String,
    /// Organisation the principal belongs to (consent grantee).
    pub organization: String,
    /// Role.
    pub role: Role,
    /// Allowed purpose codes (never empty).
    pub purposes: Vec<String>,
    /// Statutory duty codes (agencies only; never empty for them).
    pub duty_codes: Vec<String>,
    /// Licence (credit agencies only; always present for them).
    pub licence: Option<Licence>,
    /// Rate limit, if configured.
    pub rate_limit: Option<RateLimit>,
    /// Maximum requests per day, if configured.
    pub daily_quota: Option<u64>,
}

/// Which columns hold the data subject's identifiers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SubjectKeys {
    /// Column holding the unified social credit code.
    pub credit_code: Option<String>,
    /// Column holding the resident ID number.
    pub resident_id: Option<String>,
}

impl SubjectKeys {
    /// Is `column` one of the subject-key columns?
    pub fn contains(&self, column: &str) -> bool {
        self.credit_code.as_deref() == Some(column) || self.resident_id.as_deref() == Some(column)
    }
}

/// Retention rule of a negative-record dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NegativeRecords {
    /// Column holding the date the adverse event ended (NULL: not ended).
    pub end_date: String,
    /// Records whose event ended more than this many years ago are never
    /// returned.
    pub retention_years: u32,
}

/// A logical dataset (`source.table`) and the classification of its columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// `source.table`.
    pub name: DatasetName,
    /// Every column with its class.
    pub columns: BTreeMap<String, ColumnClass>,
    /// Subject-key columns.
    pub subject_keys: SubjectKeys,
    /// Retention rule, for negative-record datasets.
    pub negative: Option<NegativeRecords>,
    /// Column carrying the dispute flag: granted to everyone who sees the
    /// dataset, even when a rule's `columns` omit it, and never masked. A
    /// query gets it when it selects it (by name or through `*`, as every
    /// lookup and disclosure page does); the gateway never adds it to an
    /// aggregate or a narrower projection the caller wrote.
    pub dispute_column: Option<String>,
    /// Column holding each record's own date (a `DATE`: the decision,
    /// filing, listing or registration date): the date a consent's data date
    /// range (`data_from`..=`data_to`) is compared with. `None`: the dataset
    /// has no record date, and cannot be read under a consent that limits
    /// the data date range.
    pub date_column: Option<String>,
}

/// A row-filter predicate, as written and as compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFilter {
    /// The SQL text from the policy.
    pub sql: String,
    /// The compiled predicate over raw columns (plain comparisons only).
    pub expr: Expr,
}

/// Whom a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSubject {
    /// Every principal of this role (unless a principal rule overrides it).
    Role(Role),
    /// One principal, by name; overrides role rules for the same dataset.
    Principal(String),
}

/// One rule for one dataset (a `datasets = [...]` rule becomes one per dataset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Position of the rule in the file (0-based `[[rules]]` index).
    pub index: usize,
    /// Whom it applies to.
    pub subject: RuleSubject,
    /// Dataset name.
    pub dataset: DatasetName,
    /// Allowed or denied.
    pub allow: bool,
    /// Granted columns; `None` grants every column.
    pub columns: Option<Vec<String>>,
    /// Explicit masks; other granted columns get [`default_mask`].
    pub masks: BTreeMap<String, Mask>,
    /// Row filters (ANDed).
    pub row_filters: Vec<RowFilter>,
}

/// The mask a granted column gets when the rule names none:
///
/// - `public` and `restricted` columns: `none` (the rule chose to grant them);
/// - `personal` and `sensitive` columns: `keyed_hash` for subject-key
///   columns (a pseudonym that still joins across datasets), `null`
///   otherwise.
///
/// Showing personal or sensitive values in clear always takes an explicit
/// `mask = "none"` in the rule.
pub fn default_mask(class: ColumnClass, is_subject_key: bool) -> Mask {
    match class {
        ColumnClass::Public | ColumnClass::Restricted => Mask::None,
        ColumnClass::Personal | ColumnClass::Sensitive if is_subject_key => Mask::KeyedHash,
        ColumnClass::Personal | ColumnClass::Sensitive => Mask::Null,
    }
}
