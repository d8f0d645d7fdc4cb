//! creditgate policy: who may see what, and how it is shown.
//!
//! This crate is pure (no networking). It
//!
//! - loads and validates the policy file ([`Policy::load`],
//!   [`Policy::parse`]): principals with their roles, purposes, duty codes,
//!   licences and (agencies) consent oversight; datasets with every column
//!   classified, subject keys, retention of negative records, dispute flags
//!   and record dates; rules (per role or per principal × dataset) with
//!   granted columns, masks and row filters. Every mistake is reported at
//!   once, with file, key path and reason. Deny by default.
//! - answers the gateway's questions: which principal a certificate
//!   identity is ([`Policy::principal_for`]), whether a purpose is allowed
//!   ([`Policy::check_purpose`]), what each dataset grant is
//!   ([`Policy::grants_for`] → [`DatasetGrant`]), and which agencies oversee
//!   consents about which kinds of subject ([`Policy::consent_oversight`]).
//! - compiles a grant into DataFusion: the connector's mandatory row
//!   predicate ([`DatasetGrant::row_predicate`]: row filters and retention,
//!   plain comparisons only; [`DatasetGrant::date_range_predicate`] adds a
//!   consent's data date range), the columns safe for raw pushdown
//!   ([`DatasetGrant::raw_columns`]), and the secure view ([`secure_view`])
//!   that masks every column with the vectorised mask UDFs of [`MaskUdfs`].
//!
//! ```text
//! let mandatory = grant.row_predicate(today)?;            // at the connector, before anything else
//! let raw = grant.raw_columns();                          // raw pushdown allowed on these only
//! let remote = RemoteTable::new(..).with_mandatory_filter(mandatory).with_raw_columns(raw);
//! let view = creditgate_policy::secure_view(Arc::new(remote), &grant, &masks)?;
//! ```

#![forbid(unsafe_code)]

mod access;
mod error;
mod grant;
pub mod linkage;
pub mod lint;
pub mod masks;
mod model;
mod names;
mod policy;
mod predicate;
pub mod relate;
mod view;

pub use access::{LegalBasis, MAX_PURPOSE_LEN, Operation, Purpose};
pub use error::{Issue, Issues, PolicyError};
pub use grant::{DatasetGrant, GrantedColumn};
pub use masks::{KeyedHashScope, Mask, MaskUdfs};
pub use model::{
    ColumnClass, DEFAULT_RETENTION_YEARS, Dataset, Licence, NegativeRecords, PUBLIC_IDENTITY, Principal, RateLimit,
    Role, RowFilter, Rule, RuleSubject, SubjectKeys, default_mask,
};
pub use names::{DisplayName, MAX_DISPLAY_NAME_CHARS};
pub use policy::{DEFAULT_MIN_K, MAX_MIN_K, MAX_POLICY_BYTES, Masking, Policy};
pub use predicate::MAX_ROW_FILTER_LEN;
pub use view::secure_view;
