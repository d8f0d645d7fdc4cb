//! Consent revocations and use counts in PostgreSQL, shared by every replica.
//!
//! One row per (issuer, consent id), as [`creditgate_consent::ConsentStore`]
//! keeps one entry: nothing about the subject but its keyed hash and kind.

use chrono::{DateTime, Utc};
use creditgate_consent::{ConsentLedger, ConsentRefusal, ConsentStatus, Revocation, VerifiedConsent};
use creditgate_ident::SubjectKind;

use crate::{PgState, StateError};

/// Consents in the shared state.
#[derive(Clone)]
pub struct PgConsents {
    state: PgState,
    hash_key: Vec<u8>,
}

impl std::fmt::Debug for PgConsents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConsents").finish_non_exhaustive()
    }
}

/// Why a use was not counted.
#[derive(Debug, thiserror::Error)]
pub enum UseError {
    /// The consent does not allow another use.
    #[error(transparent)]
    Refused(ConsentRefusal),
    /// The state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

const COLUMNS: &str = "issuer, consent_id, subject_hash, subject_type, grantee, uses, max_uses, first_use, last_use, revoked_at, revoked_by";

impl PgConsents {
    /// Consents in `state`, hashing subjects with `hash_key` (the same key
    /// a local store would use, so hashes agree across backends).
    pub fn new(state: PgState, hash_key: &[u8]) -> Self {
        PgConsents { state, hash_key: hash_key.to_vec() }
    }

    /// Counts one use of a verified consent if it is not revoked, fewer
    /// than its maximum uses are recorded and no other subject is recorded
    /// under its id; returns the uses including this one. One conditional
    /// statement: concurrent uses on every replica never exceed the maximum.
    pub async fn try_use_verified(&self, consent: &VerifiedConsent) -> Result<u32, UseError> {
        let issuer = consent.issuer().to_owned();
        let id = consent.consent_id().to_owned();
        let max = i32::try_from(consent.max_uses()).unwrap_or(i32::MAX);
        let hash = creditgate_consent::subject_hash(&self.hash_key, consent.subject());
        let kind = kind_text(consent.subject().kind());
        let grantee = consent.grantee().to_owned();
        let now = Utc::now();
        let (counted, row) = self
            .state
            .run(move |pool| async move {
                let conn = pool.get().await?;
                let counted = conn
                    .query_opt(
                        "INSERT INTO consents AS c (issuer, consent_id, subject_hash, subject_type, grantee, uses, \
                         max_uses, first_use, last_use) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7) \
                         ON CONFLICT (issuer, consent_id) DO UPDATE SET uses = c.uses + 1, max_uses = EXCLUDED.max_uses, \
                         last_use = EXCLUDED.last_use, first_use = COALESCE(c.first_use, EXCLUDED.first_use), \
                         subject_hash = COALESCE(c.subject_hash, EXCLUDED.subject_hash), \
                         subject_type = COALESCE(c.subject_type, EXCLUDED.subject_type), \
                         grantee = COALESCE(c.grantee, EXCLUDED.grantee) \
                         WHERE c.revoked_at IS NULL AND c.uses < EXCLUDED.max_uses \
                         AND (c.subject_hash IS NULL OR c.subject_hash = EXCLUDED.subject_hash) \
                         RETURNING uses",
                        &[&issuer, &id, &hash, &kind, &grantee, &max, &now],
                    )
                    .await?
                    .map(|row| row.get::<_, i32>(0));
                if counted.is_some() || max < 1 {
                    return Ok((counted, None));
                }
                let row = conn
                    .query_opt(
                        "SELECT revoked_at IS NOT NULL, uses, subject_hash FROM consents \
                         WHERE issuer = $1 AND consent_id = $2",
                        &[&issuer, &id],
                    )
                    .await?
                    .map(|r| (r.get::<_, bool>(0), r.get::<_, i32>(1), r.get::<_, Option<String>>(2)));
                Ok((None, row))
            })
            .await?;
        if let Some(uses) = counted {
            return Ok(u32::try_from(uses).unwrap_or(0));
        }
        let id = consent.consent_id().to_owned();
        let refusal = match row {
            Some((true, _, _)) => ConsentRefusal::Revoked { consent_id: id },
            Some((false, _, Some(other)))
                if other != creditgate_consent::subject_hash(&self.hash_key, consent.subject()) =>
            {
                ConsentRefusal::Malformed(format!(
                    "consent id {id} is already recorded for a different subject; the issuer must give every consent \
                     its own id"
                ))
            }
            _ => ConsentRefusal::UsesExhausted { max: consent.max_uses() },
        };
        Err(UseError::Refused(refusal))
    }

    /// Revokes `issuer`'s consent `consent_id` (it need not have been used);
    /// `true` if this call revoked it, `false` if it already was.
    pub async fn revoke(
        &self,
        issuer: &str,
        consent_id: &str,
        by: &str,
        subject_hash: Option<&str>,
    ) -> Result<bool, StateError> {
        let (issuer, id, by, hash) =
            (issuer.to_owned(), consent_id.to_owned(), by.to_owned(), subject_hash.map(str::to_owned));
        let now = Utc::now();
        self.state
            .run(move |pool| async move {
                let row = pool
                    .get()
                    .await?
                    .query_opt(
                        "INSERT INTO consents AS c (issuer, consent_id, subject_hash, revoked_at, revoked_by) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, consent_id) DO UPDATE SET \
                         revoked_at = EXCLUDED.revoked_at, revoked_by = EXCLUDED.revoked_by, \
                         subject_hash = COALESCE(c.subject_hash, EXCLUDED.subject_hash) \
                         WHERE c.revoked_at IS NULL RETURNING 1",
                        &[&issuer, &id, &hash, &now, &by],
                    )
                    .await?;
                Ok(row.is_some())
            })
            .await
    }

    /// What the state knows about consent id `consent_id` from every issuer, by issuer.
    pub async fn statuses(&self, consent_id: &str) -> Result<Vec<ConsentStatus>, StateError> {
        let id = consent_id.to_owned();
        self.select(format!("SELECT {COLUMNS} FROM consents WHERE consent_id = $1 ORDER BY issuer"), id).await
    }

    /// The revocations and use counts of consent id `consent_id`, read now,
    /// for [`creditgate_consent::verify`] (the use itself is then reserved
    /// with [`PgConsents::try_use_verified`], which decides under concurrency).
    pub async fn ledger(&self, consent_id: &str) -> Result<LedgerRows, StateError> {
        Ok(LedgerRows { rows: self.statuses(consent_id).await? })
    }

    async fn select(&self, sql: String, key: String) -> Result<Vec<ConsentStatus>, StateError> {
        self.state
            .run(move |pool| async move {
                let rows = pool.get().await?.query(&sql, &[&key]).await?;
                rows.iter().map(status_of).collect()
            })
            .await
    }
}

/// One consent id's rows, read at one moment ([`PgConsents::ledger`]).
#[derive(Debug, Clone, Default)]
pub struct LedgerRows {
    rows: Vec<ConsentStatus>,
}

impl ConsentLedger for LedgerRows {
    fn is_revoked(&self, consent_id: &str) -> bool {
        self.rows.iter().any(|s| s.consent_id == consent_id && s.revoked.is_some())
    }
    fn uses(&self, consent_id: &str) -> u32 {
        self.rows.iter().filter(|s| s.consent_id == consent_id).map(|s| s.uses).sum()
    }
    fn is_revoked_for(&self, issuer: &str, consent_id: &str) -> bool {
        self.rows
            .iter()
            .any(|s| s.consent_id == consent_id && s.issuer.as_deref() == Some(issuer) && s.revoked.is_some())
    }
    fn uses_for(&self, issuer: &str, consent_id: &str) -> u32 {
        self.rows
            .iter()
            .find(|s| s.consent_id == consent_id && s.issuer.as_deref() == Some(issuer))
            .map_or(0, |s| s.uses)
    }
}

fn kind_text(kind: SubjectKind) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn status_of(row: &tokio_postgres::Row) -> Result<ConsentStatus, StateError> {
    let kind: Option<String> = row.try_get(3)?;
    let subject_type = match kind {
        Some(k) => Some(
            serde_json::from_value(serde_json::Value::String(k.clone()))
                .map_err(|_| StateError::Database(format!("consents.subject_type `{k}` is not a subject kind")))?,
        ),
        None => None,
    };
    let revoked_at: Option<DateTime<Utc>> = row.try_get(9)?;
    let revoked_by: Option<String> = row.try_get(10)?;
    Ok(ConsentStatus {
        issuer: Some(row.try_get(0)?),
        consent_id: row.try_get(1)?,
        subject_hash: row.try_get(2)?,
        subject_type,
        grantee: row.try_get(4)?,
        uses: u32::try_from(row.try_get::<_, i32>(5)?).unwrap_or(0),
        max_uses: row.try_get::<_, Option<i32>>(6)?.map(|m| u32::try_from(m).unwrap_or(0)),
        first_use: row.try_get(7)?,
        last_use: row.try_get(8)?,
        revoked: revoked_at.map(|at| Revocation { at, by: revoked_by.unwrap_or_default() }),
    })
}
