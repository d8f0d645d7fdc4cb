//! Daily quotas counted in PostgreSQL, exact across replicas.

use chrono::NaiveDate;

use crate::{PgState, StateError};

/// Daily quota counters in the shared state: one row per day and quota key.
#[derive(Clone, Debug)]
pub struct PgQuotas {
    state: PgState,
}

/// The outcome of [`PgQuotas::spend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaSpend {
    /// Spent; the units used today including these.
    Spent(u64),
    /// Not spent: fewer units remain than asked; the units used today.
    Exceeded(u64),
}

impl PgQuotas {
    /// Quotas in `state`.
    pub fn new(state: PgState) -> Self {
        PgQuotas { state }
    }

    /// Spends `n` units of `key`'s quota of `limit` for `day`, or none if
    /// fewer than `n` remain. One conditional statement: concurrent spends
    /// on every replica never pass the limit together.
    pub async fn spend(&self, key: &str, day: NaiveDate, n: u64, limit: u64) -> Result<QuotaSpend, StateError> {
        let key = key.to_owned();
        let (n, limit) = (clamp(n), clamp(limit));
        self.state
            .run(move |pool| async move {
                let conn = pool.get().await?;
                if n <= limit {
                    let spent = conn
                        .query_opt(
                            "INSERT INTO quotas AS q (day, quota_key, used) VALUES ($1, $2, $3) \
                             ON CONFLICT (day, quota_key) DO UPDATE SET used = q.used + EXCLUDED.used \
                             WHERE q.used + EXCLUDED.used <= $4 RETURNING used",
                            &[&day, &key, &n, &limit],
                        )
                        .await?;
                    if let Some(row) = spent {
                        return Ok(QuotaSpend::Spent(unclamp(row.get(0))));
                    }
                }
                let used = conn
                    .query_opt("SELECT used FROM quotas WHERE day = $1 AND quota_key = $2", &[&day, &key])
                    .await?
                    .map_or(0, |row| unclamp(row.get(0)));
                Ok(QuotaSpend::Exceeded(used))
            })
            .await
    }

    /// Units of `key` used on `day`: what the spends recorded, for checks
    /// from outside the gateway (the state tests read the count back with it).
    pub async fn used(&self, key: &str, day: NaiveDate) -> Result<u64, StateError> {
        let key = key.to_owned();
        self.state
            .run(move |pool| async move {
                let row = pool
                    .get()
                    .await?
                    .query_opt("SELECT used FROM quotas WHERE day = $1 AND quota_key = $2", &[&day, &key])
                    .await?;
                Ok(row.map_or(0, |row| unclamp(row.get(0))))
            })
            .await
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unclamp(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
