//! Checking a consent artefact against one request.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::artefact::{ConsentArtefact, MAX_PURPOSE_LEN, printable, rfc3339};
use crate::keys::{TrustedIssuers, verify_signature};
use crate::subject::SubjectRef;

/// How far the gateway's clock may lag the issuer's: a consent whose
/// `valid_from` is at most this far in the future is already accepted.
/// (No allowance is given at `valid_until`.)
pub const CLOCK_SKEW_ALLOWANCE_SECS: i64 = 60;

/// Why a consent does not allow a request. One variant per check, in the
/// order [`verify`] runs them; each message says what failed and what the
/// caller can do, and contains no personal data (never a subject id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentRefusal {
    /// The artefact is not well formed (syntax, missing or unknown field,
    /// bad identifier, a value outside its rule).
    #[error("the consent artefact is malformed: {0}")]
    Malformed(String),
    /// The issuer is not trusted by this gateway (`key_id: None`), or it is
    /// but the signing key is not one configured for it.
    #[error("{}", unknown_issuer_message(.issuer, .key_id.as_deref()))]
    UnknownIssuer {
        /// The issuer the artefact names.
        issuer: String,
        /// The artefact's key id, when the issuer is known but the key is not.
        key_id: Option<String>,
    },
    /// The signature does not verify under the issuer's key.
    #[error(
        "the consent's signature does not verify: the artefact was changed after signing or not signed by the \
         issuer's key {key_id}; send the artefact exactly as issued, or request a new one"
    )]
    BadSignature {
        /// The key id the artefact names.
        key_id: String,
    },
    /// The validity window has not started.
    #[error("the consent is not valid before {}; retry after that time", rfc3339::format(.valid_from))]
    NotYetValid {
        /// Start of the window.
        valid_from: DateTime<Utc>,
    },
    /// The validity window has ended.
    #[error("the consent expired at {}; a new consent from the subject is needed", rfc3339::format(.valid_until))]
    Expired {
        /// End of the window.
        valid_until: DateTime<Utc>,
    },
    /// The consent was granted to another organisation.
    #[error(
        "the consent was granted to organisation \"{expected}\", not to the caller's organisation \"{got}\"; \
         a consent cannot be passed on to another organisation"
    )]
    WrongGrantee {
        /// The grantee the consent names.
        expected: String,
        /// The caller's organisation.
        got: String,
    },
    /// The consent is about another subject than the one looked up.
    #[error("the consent is for a different subject than the one looked up; check the identifier and the consent")]
    WrongSubject,
    /// The stated purpose is not one the subject agreed to.
    #[error(
        "purpose \"{purpose}\" is not covered by the consent (it covers: {}); state a covered purpose, or a new \
         consent is needed for a new purpose",
        .covered.join(", ")
    )]
    PurposeNotCovered {
        /// The purpose stated in the request (sanitised, capped).
        purpose: String,
        /// The purposes the consent covers.
        covered: Vec<String>,
    },
    /// The request names datasets the consent does not cover.
    #[error(
        "the consent does not cover dataset(s) {} (it covers: {}); remove them from the request or obtain a \
         consent that covers them",
        .datasets.join(", "),
        .covered.join(", ")
    )]
    DatasetNotCovered {
        /// The requested datasets that are not covered.
        datasets: Vec<String>,
        /// The datasets the consent covers.
        covered: Vec<String>,
    },
    /// The consent has been revoked (withdrawn).
    #[error("consent {consent_id} has been revoked; it can no longer be used")]
    Revoked {
        /// The consent id.
        consent_id: String,
    },
    /// Every allowed use has been made.
    #[error("the consent allowed {max} use(s) and all have been made; a new consent from the subject is needed")]
    UsesExhausted {
        /// The consent's `max_uses`.
        max: u32,
    },
}

fn unknown_issuer_message(issuer: &str, key_id: Option<&str>) -> String {
    match key_id {
        None => format!(
            "consent issuer \"{issuer}\" is not trusted by this gateway; obtain the consent from a trusted issuer"
        ),
        Some(k) => format!(
            "consent issuer \"{issuer}\" is trusted, but its key {k} is not configured at this gateway; ask the \
             operator to add the issuer's new key"
        ),
    }
}

impl ConsentRefusal {
    /// A stable code for the refusal, for metrics labels and clients
    /// (`consent.expired`, …).
    pub fn code(&self) -> &'static str {
        match self {
            ConsentRefusal::Malformed(_) => "consent.malformed",
            ConsentRefusal::UnknownIssuer { .. } => "consent.unknown_issuer",
            ConsentRefusal::BadSignature { .. } => "consent.bad_signature",
            ConsentRefusal::NotYetValid { .. } => "consent.not_yet_valid",
            ConsentRefusal::Expired { .. } => "consent.expired",
            ConsentRefusal::WrongGrantee { .. } => "consent.wrong_grantee",
            ConsentRefusal::WrongSubject => "consent.wrong_subject",
            ConsentRefusal::PurposeNotCovered { .. } => "consent.purpose_not_covered",
            ConsentRefusal::DatasetNotCovered { .. } => "consent.dataset_not_covered",
            ConsentRefusal::Revoked { .. } => "consent.revoked",
            ConsentRefusal::UsesExhausted { .. } => "consent.uses_exhausted",
        }
    }
}

/// Read access to revocations and use counts ([`crate::ConsentStore`]
/// implements it; tests may use a fake).
///
/// A consent id is unique per issuer only: [`verify`] asks the
/// issuer-scoped [`ConsentLedger::is_revoked_for`] and
/// [`ConsentLedger::uses_for`]. Their default implementations answer from
/// the id alone, which suits a ledger that knows a single issuer.
pub trait ConsentLedger {
    /// Whether `consent_id` has been revoked (under any issuer).
    fn is_revoked(&self, consent_id: &str) -> bool;
    /// How many uses of `consent_id` have been recorded (under any issuer).
    fn uses(&self, consent_id: &str) -> u32;
    /// Whether `issuer`'s consent `consent_id` has been revoked.
    fn is_revoked_for(&self, issuer: &str, consent_id: &str) -> bool {
        let _ = issuer;
        self.is_revoked(consent_id)
    }
    /// How many uses of `issuer`'s consent `consent_id` have been recorded.
    fn uses_for(&self, issuer: &str, consent_id: &str) -> u32 {
        let _ = issuer;
        self.uses(consent_id)
    }
}

/// One request, as the verifier sees it.
#[derive(Clone, Copy)]
pub struct CheckContext<'a> {
    /// The issuers this gateway trusts.
    pub issuers: &'a TrustedIssuers,
    /// Revocations and use counts.
    pub ledger: &'a dyn ConsentLedger,
    /// The caller's organisation id (its principal's `organization`, the
    /// `org` segment of its SPIFFE URI).
    pub caller_org: &'a str,
    /// The subject being looked up (already validated).
    pub subject: &'a SubjectRef,
    /// The purpose the request states.
    pub purpose: &'a str,
    /// The datasets the request reads. Empty means "whatever the consent
    /// covers": [`VerifiedConsent::datasets`] then lists the consent's
    /// datasets, and the gateway must read no others.
    pub datasets: &'a [String],
    /// The time of the request.
    pub now: DateTime<Utc>,
}

/// Proof that a consent allows one request: built only by [`verify`].
///
/// The gateway should still call [`crate::ConsentStore::try_use_verified`]
/// before reading any data: it re-checks revocation and counts the use
/// atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedConsent {
    consent_id: String,
    issuer: String,
    key_id: String,
    grantee: String,
    subject: SubjectRef,
    purpose: String,
    datasets: Vec<String>,
    consented_datasets: Vec<String>,
    columns: Option<BTreeMap<String, Vec<String>>>,
    data_from: Option<NaiveDate>,
    data_to: Option<NaiveDate>,
    valid_until: DateTime<Utc>,
    max_uses: u32,
    uses_before: u32,
}

impl VerifiedConsent {
    /// The consent id.
    pub fn consent_id(&self) -> &str {
        &self.consent_id
    }
    /// The issuer id.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The id of the key that signed.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
    /// The grantee organisation (= the caller's organisation).
    pub fn grantee(&self) -> &str {
        &self.grantee
    }
    /// The subject (= the looked-up subject).
    pub fn subject(&self) -> &SubjectRef {
        &self.subject
    }
    /// The purpose checked.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }
    /// The datasets this request may read: the requested ones, or all the
    /// consent covers when the request named none.
    pub fn datasets(&self) -> &[String] {
        &self.datasets
    }
    /// Every dataset the consent covers.
    pub fn consented_datasets(&self) -> &[String] {
        &self.consented_datasets
    }
    /// The columns of `dataset` the consent allows: `Some(list)` when the
    /// consent restricts that dataset's columns, `None` when it does not
    /// (the policy's column rules still apply).
    pub fn columns(&self, dataset: &str) -> Option<&[String]> {
        self.columns.as_ref().and_then(|c| c.get(dataset)).map(Vec::as_slice)
    }
    /// Whether the consent names `column` of `dataset` explicitly (a gateway
    /// may demand this for sensitive columns, which need separate consent).
    pub fn names_column(&self, dataset: &str, column: &str) -> bool {
        self.columns(dataset).is_some_and(|cols| cols.iter().any(|c| c == column))
    }
    /// The data date range the consent covers (inclusive bounds; `None` = open).
    pub fn data_range(&self) -> (Option<NaiveDate>, Option<NaiveDate>) {
        (self.data_from, self.data_to)
    }
    /// End of the validity window.
    pub fn valid_until(&self) -> DateTime<Utc> {
        self.valid_until
    }
    /// The consent's maximum number of uses.
    pub fn max_uses(&self) -> u32 {
        self.max_uses
    }
    /// Uses recorded before this request.
    pub fn uses_before(&self) -> u32 {
        self.uses_before
    }
    /// The legal basis for the audit record: `consent:<consent id>`.
    pub fn legal_basis(&self) -> String {
        format!("consent:{}", self.consent_id)
    }
}

/// Checks that `artefact` is well formed and signed by a trusted issuer's
/// key — steps 1–3 of [`verify`], nothing about its use. For operations on a
/// consent that are not a use of it (an oversight agency presenting it to
/// revoke it).
pub fn authenticate(artefact: &ConsentArtefact, issuers: &TrustedIssuers) -> Result<(), ConsentRefusal> {
    // 1. shape
    artefact.check_shape()?;

    // 2. issuer
    let public_key =
        issuers.key(&artefact.issuer, &artefact.key_id).map_err(|known| ConsentRefusal::UnknownIssuer {
            issuer: artefact.issuer.clone(),
            key_id: known.then(|| artefact.key_id.clone()),
        })?;

    // 3. signature
    let bad_signature = || ConsentRefusal::BadSignature { key_id: artefact.key_id.clone() };
    let msg = artefact.signing_bytes().map_err(|_| bad_signature())?;
    let sig = artefact.signature_bytes().ok_or_else(bad_signature)?;
    if verify_signature(public_key, &msg, &sig) { Ok(()) } else { Err(bad_signature()) }
}

/// Checks `artefact` against one request, in this order, stopping at the
/// first failure:
///
/// 1. shape — every field within its rule ([`ConsentRefusal::Malformed`]);
/// 2. issuer — trusted, and its key id configured ([`ConsentRefusal::UnknownIssuer`]);
/// 3. signature — Ed25519 over [`ConsentArtefact::signing_bytes`] ([`ConsentRefusal::BadSignature`]);
/// 4. window — `valid_from − 60 s ≤ now < valid_until`
///    ([`ConsentRefusal::NotYetValid`], [`ConsentRefusal::Expired`]);
/// 5. grantee = `caller_org`, exactly ([`ConsentRefusal::WrongGrantee`]);
/// 6. subject = the looked-up subject, after normalisation ([`ConsentRefusal::WrongSubject`]);
/// 7. purpose in `purposes` ([`ConsentRefusal::PurposeNotCovered`]);
/// 8. every requested dataset in `datasets` ([`ConsentRefusal::DatasetNotCovered`]);
/// 9. not revoked ([`ConsentRefusal::Revoked`]);
/// 10. recorded uses < `max_uses` ([`ConsentRefusal::UsesExhausted`]).
///
/// Steps 9–10 look the consent up by its issuer and id together
/// ([`ConsentLedger::is_revoked_for`], [`ConsentLedger::uses_for`]).
///
/// Nothing is checked about the request's content before the signature has
/// verified, so an unsigned artefact learns nothing about this gateway's
/// state. Steps 9–10 read the ledger; [`crate::ConsentStore::try_use_verified`]
/// repeats them atomically when it counts the use.
pub fn verify(artefact: &ConsentArtefact, ctx: &CheckContext<'_>) -> Result<VerifiedConsent, ConsentRefusal> {
    // 1.–3. shape, issuer, signature
    authenticate(artefact, ctx.issuers)?;

    // 4. window
    if ctx.now + Duration::seconds(CLOCK_SKEW_ALLOWANCE_SECS) < artefact.valid_from {
        return Err(ConsentRefusal::NotYetValid { valid_from: artefact.valid_from });
    }
    if ctx.now >= artefact.valid_until {
        return Err(ConsentRefusal::Expired { valid_until: artefact.valid_until });
    }

    // 5. grantee
    if ctx.caller_org != artefact.grantee {
        return Err(ConsentRefusal::WrongGrantee {
            expected: artefact.grantee.clone(),
            got: printable(ctx.caller_org),
        });
    }

    // 6. subject
    if ctx.subject != &artefact.subject {
        return Err(ConsentRefusal::WrongSubject);
    }

    // 7. purpose
    if !artefact.purposes.iter().any(|p| p == ctx.purpose) {
        let purpose: String = printable(ctx.purpose).chars().take(MAX_PURPOSE_LEN).collect();
        return Err(ConsentRefusal::PurposeNotCovered { purpose, covered: artefact.purposes.clone() });
    }

    // 8. datasets
    let uncovered: Vec<String> =
        ctx.datasets.iter().filter(|d| !artefact.datasets.contains(d)).map(|d| printable(d)).collect();
    if !uncovered.is_empty() {
        return Err(ConsentRefusal::DatasetNotCovered { datasets: uncovered, covered: artefact.datasets.clone() });
    }

    // 9. revoked
    if ctx.ledger.is_revoked_for(&artefact.issuer, &artefact.consent_id) {
        return Err(ConsentRefusal::Revoked { consent_id: artefact.consent_id.clone() });
    }

    // 10. uses
    let uses_before = ctx.ledger.uses_for(&artefact.issuer, &artefact.consent_id);
    if uses_before >= artefact.max_uses {
        return Err(ConsentRefusal::UsesExhausted { max: artefact.max_uses });
    }

    let datasets = if ctx.datasets.is_empty() {
        artefact.datasets.clone()
    } else {
        let mut requested = Vec::with_capacity(ctx.datasets.len());
        for d in ctx.datasets {
            if !requested.contains(d) {
                requested.push(d.clone());
            }
        }
        requested
    };
    Ok(VerifiedConsent {
        consent_id: artefact.consent_id.clone(),
        issuer: artefact.issuer.clone(),
        key_id: artefact.key_id.clone(),
        grantee: artefact.grantee.clone(),
        subject: artefact.subject.clone(),
        purpose: ctx.purpose.to_owned(),
        datasets,
        consented_datasets: artefact.datasets.clone(),
        columns: artefact.columns.clone(),
        data_from: artefact.data_from,
        data_to: artefact.data_to,
        valid_until: artefact.valid_until,
        max_uses: artefact.max_uses,
        uses_before,
    })
}
