//! Where the gateway's decisions are remembered: consent revocations and
//! use counts, daily quotas and the audit log. `[state] backend = "local"`
//! keeps them in files of the state directory (one gateway);
//! `"postgres"` keeps them in PostgreSQL, shared by every replica
//! (`creditgate-state`). Rate limits are always per replica.

use creditgate_consent::{ConsentError, ConsentLedger, ConsentStatus, ConsentStore, VerifiedConsent};
use creditgate_state::{LedgerRows, PgConsents, StateError, UseError};

use crate::error::GatewayError;

/// Consent revocations and use counts, in the state directory or shared.
#[derive(Debug)]
pub enum ConsentBook {
    /// Files of this gateway's state directory.
    Local(ConsentStore),
    /// PostgreSQL, shared by every replica.
    Shared(PgConsents),
}

/// Why a consent-book operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsentBookError {
    /// Refused or failed as the local store refuses or fails.
    #[error(transparent)]
    Consent(#[from] ConsentError),
    /// The shared state failed.
    #[error(transparent)]
    State(#[from] StateError),
}

impl ConsentBookError {
    /// The refusal, when the consent itself does not allow the operation.
    pub fn refusal(&self) -> Option<&creditgate_consent::ConsentRefusal> {
        match self {
            ConsentBookError::Consent(e) => e.refusal(),
            ConsentBookError::State(_) => None,
        }
    }
}

/// A view of the revocations and use counts for [`creditgate_consent::verify`].
pub enum LedgerView<'a> {
    /// The local store (read under its lock).
    Local(&'a ConsentStore),
    /// Rows read from the shared state just now.
    Shared(LedgerRows),
}

impl ConsentLedger for LedgerView<'_> {
    fn is_revoked(&self, consent_id: &str) -> bool {
        match self {
            LedgerView::Local(s) => ConsentLedger::is_revoked(*s, consent_id),
            LedgerView::Shared(r) => r.is_revoked(consent_id),
        }
    }
    fn uses(&self, consent_id: &str) -> u32 {
        match self {
            LedgerView::Local(s) => ConsentLedger::uses(*s, consent_id),
            LedgerView::Shared(r) => r.uses(consent_id),
        }
    }
    fn is_revoked_for(&self, issuer: &str, consent_id: &str) -> bool {
        match self {
            LedgerView::Local(s) => ConsentLedger::is_revoked_for(*s, issuer, consent_id),
            LedgerView::Shared(r) => r.is_revoked_for(issuer, consent_id),
        }
    }
    fn uses_for(&self, issuer: &str, consent_id: &str) -> u32 {
        match self {
            LedgerView::Local(s) => ConsentLedger::uses_for(*s, issuer, consent_id),
            LedgerView::Shared(r) => r.uses_for(issuer, consent_id),
        }
    }
}

impl ConsentBook {
    /// Counts one use of a verified consent (atomic; refused if revoked or used up).
    pub async fn try_use_verified(&self, consent: &VerifiedConsent) -> Result<u32, ConsentBookError> {
        match self {
            ConsentBook::Local(store) => Ok(store.try_use_verified(consent)?),
            ConsentBook::Shared(pg) => pg.try_use_verified(consent).await.map_err(|e| match e {
                UseError::Refused(refusal) => ConsentBookError::Consent(refusal.into()),
                UseError::State(state) => ConsentBookError::State(state),
            }),
        }
    }

    /// Revokes `issuer`'s consent `consent_id`; `true` if this call revoked it.
    pub async fn revoke(
        &self,
        issuer: Option<&str>,
        consent_id: &str,
        by: &str,
        subject_hash: Option<&str>,
    ) -> Result<bool, ConsentBookError> {
        match (self, issuer) {
            (ConsentBook::Local(store), _) => Ok(store.revoke(issuer, consent_id, by, subject_hash)?),
            (ConsentBook::Shared(pg), Some(issuer)) => Ok(pg.revoke(issuer, consent_id, by, subject_hash).await?),
            // Entries of unknown issuer exist only in stores written before
            // issuers were recorded, never in the shared state.
            (ConsentBook::Shared(_), None) => {
                Err(ConsentError::invalid("issuer", "the shared state records every consent with its issuer").into())
            }
        }
    }

    /// What is known about consent id `consent_id`, by issuer.
    pub async fn statuses(&self, consent_id: &str) -> Result<Vec<ConsentStatus>, ConsentBookError> {
        match self {
            ConsentBook::Local(store) => Ok(store.statuses(consent_id)),
            ConsentBook::Shared(pg) => Ok(pg.statuses(consent_id).await?),
        }
    }

    /// Revocations and use counts of `consent_id`, for verification.
    pub async fn ledger(&self, consent_id: &str) -> Result<LedgerView<'_>, ConsentBookError> {
        match self {
            ConsentBook::Local(store) => Ok(LedgerView::Local(store)),
            ConsentBook::Shared(pg) => Ok(LedgerView::Shared(pg.ledger(consent_id).await?)),
        }
    }
}

/// The gateway error for a shared-state failure: retryable and named when
/// the database is unreachable, an internal failure otherwise.
pub fn state_error(what: &'static str, error: &StateError) -> GatewayError {
    match error {
        StateError::Unavailable(_) => {
            tracing::error!(state.what = what, %error, "shared state unreachable; refusing the request");
            GatewayError::StateUnavailable { what }
        }
        other => GatewayError::internal(format!("{what}: {other}")),
    }
}
