//! Consent for creditgate: signed consent artefacts, their verification
//! against a request, and the gateway's store of revocations and use counts.
//!
//! A credit agency or platform may look up an individual only with the
//! individual's consent for a stated purpose (credit-industry regulation
//! Art. 18/20; PIPL §14 new purpose ⇒ new consent, §15 withdrawal at any
//! time, §23 and §28–29 separate consent). The consent travels with the
//! request as a [`ConsentArtefact`]: a JSON document signed with Ed25519 by
//! a consent issuer (e.g. the public credit platform) that names the
//! subject, the grantee organisation, purposes, datasets (optionally
//! columns), the data date range, a validity window and a maximum number of
//! uses.
//!
//! * Issuing: [`IssuerKey`] and [`issue`]; the [`cli`] module is the
//!   `creditgate consent keygen | issue | show` command.
//! * Verifying: [`TrustedIssuers`] (from `[[consent_issuers]]`) and
//!   [`verify`], which runs every check in a fixed order and answers with a
//!   [`VerifiedConsent`] permit or the first [`ConsentRefusal`].
//! * Remembering: [`ConsentStore`] keeps revocations and use counts in the
//!   gateway's state directory, keyed by issuer and consent id (ids are
//!   unique per issuer only); [`ConsentStore::try_use_verified`] counts a
//!   use atomically. It stores no personal data beyond the consent id, the
//!   issuer id, a keyed hash of the subject ([`subject_hash`]) and the kind
//!   of subject.
//!
//! A gateway handles a consent-based request like this:
//!
//! ```no_run
//! # use creditgate_consent::*;
//! # fn f(issuers: &TrustedIssuers, store: &ConsentStore, body: serde_json::Value,
//! #      subject: &SubjectRef, datasets: &[String]) -> Result<(), ConsentError> {
//! let artefact = ConsentArtefact::from_value(body)?;
//! let permit = verify(&artefact, &CheckContext {
//!     issuers,
//!     ledger: store,
//!     caller_org: "credit-agency",
//!     subject,
//!     purpose: "credit_report",
//!     datasets,
//!     now: chrono::Utc::now(),
//! })?;
//! let uses = store.try_use_verified(&permit)?; // atomic; refuses if revoked or used up
//! // … query permit.datasets(), restricted by permit.columns(ds) and permit.data_range()
//! # let _ = uses; Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod artefact;
pub mod cli;
mod error;
mod fsutil;
mod keys;
mod store;
mod subject;
mod verify;

pub use artefact::{
    CANONICAL_PREFIX, ConsentArtefact, ConsentDraft, MAX_ARTEFACT_BYTES, MAX_LIST_LEN, MAX_NAME_LEN, MAX_PURPOSE_LEN,
    is_consent_id, issue,
};
pub use cli::{ConsentCommand, run};
pub use error::ConsentError;
pub use keys::{IssuerConfig, IssuerKey, KEY_ID_LEN, TrustedIssuers, key_id_of};
pub use store::{
    COMPACT_AFTER_RECORDS, ConsentStatus, ConsentStore, JOURNAL_FILE, LEGACY_STORE_FORMAT, LOCK_FILE,
    MIN_SUBJECT_HASH_KEY_LEN, Revocation, SNAPSHOT_FILE, STORE_FORMAT,
};
pub use subject::{SUBJECT_HASH_LEN, SubjectRef, is_subject_hash, subject_hash};
pub use verify::{
    CLOCK_SKEW_ALLOWANCE_SECS, CheckContext, ConsentLedger, ConsentRefusal, VerifiedConsent, authenticate, verify,
};
