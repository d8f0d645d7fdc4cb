//! Rate limits (governor, burst + sustained, per principal) and daily quotas
//! (per licence for a licensed credit agency, else per principal), both from
//! the policy file. Quota counts survive a restart: they are saved in the
//! state directory every few seconds and at shutdown. The public listener
//! also limits each client address ([`AddressLimits`]).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::NaiveDate;
use creditgate_policy::Principal;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;

use crate::error::GatewayError;

/// A principal's rate limiter, with the (per-minute, burst) it was built for.
type Limiter = (u32, u32, std::sync::Arc<DefaultDirectRateLimiter>);

/// Per-principal limiters and daily counters.
#[derive(Default)]
pub struct Limits {
    limiters: Mutex<HashMap<String, Limiter>>,
    daily: Mutex<HashMap<String, (NaiveDate, u64)>>,
    /// Where the daily counts are saved (none: kept in memory only).
    state_file: Option<PathBuf>,
    /// Counts changed since the last save.
    dirty: AtomicBool,
    /// Daily counts kept in the shared state (every replica spends from
    /// one count); rate limits stay per replica.
    shared: Option<creditgate_state::PgQuotas>,
}

/// The saved daily counts: one day's requests per quota key.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedCounts {
    day: Option<NaiveDate>,
    used: BTreeMap<String, u64>,
}

/// What a daily quota is counted against: the licence of a licensed credit
/// agency (two principals under one licence share it), else the principal.
fn quota_key(principal: &Principal) -> String {
    match &principal.licence {
        Some(licence) => format!("licence:{}", licence.number),
        None => format!("principal:{}", principal.name),
    }
}

impl Limits {
    /// Limits whose daily counts are saved in `file`; today's counts saved
    /// there earlier are loaded (a restart does not reset a quota). An
    /// unreadable or malformed file is refused by name.
    pub fn load(file: &Path, today: NaiveDate) -> Result<Self, GatewayError> {
        let saved = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice::<SavedCounts>(&bytes)
                .map_err(|e| GatewayError::Config(format!("{}: not a quota counts file: {e}", file.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedCounts::default(),
            Err(e) => return Err(GatewayError::Config(format!("{}: cannot read: {e}", file.display()))),
        };
        let daily = match saved.day {
            Some(day) if day == today => saved.used.into_iter().map(|(key, n)| (key, (day, n))).collect(),
            _ => HashMap::new(),
        };
        Ok(Self { daily: Mutex::new(daily), state_file: Some(file.to_path_buf()), ..Self::default() })
    }

    /// Limits whose daily counts are kept in the shared state, exact across
    /// replicas.
    pub fn shared(quotas: creditgate_state::PgQuotas) -> Self {
        Self { shared: Some(quotas), ..Self::default() }
    }

    /// Saves today's counts (atomically: temporary file, fsync, rename) if
    /// they changed since the last save. Returns whether it wrote.
    pub fn save(&self, today: NaiveDate) -> Result<bool, GatewayError> {
        let Some(file) = &self.state_file else { return Ok(false) };
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        let counts = {
            let daily = self.daily.lock().unwrap_or_else(|p| p.into_inner());
            SavedCounts {
                day: Some(today),
                used: daily.iter().filter(|(_, (day, _))| *day == today).map(|(k, (_, n))| (k.clone(), *n)).collect(),
            }
        };
        let result = write_atomic(file, &serde_json::to_vec_pretty(&counts).unwrap_or_default());
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result.map(|()| true).map_err(|e| GatewayError::Server(format!("saving quota counts: {e}")))
    }

    /// Admits one request of `principal` under its rate limit, or refuses
    /// it with the time to wait.
    pub fn rate(&self, principal: &Principal) -> Result<(), GatewayError> {
        if let Some(limit) = principal.rate_limit {
            let limiter = {
                let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
                let entry = map.get(&principal.name);
                match entry {
                    Some((per_second, burst, limiter)) if *per_second == limit.per_second && *burst == limit.burst => {
                        std::sync::Arc::clone(limiter)
                    }
                    _ => {
                        let per_second = NonZeroU32::new(limit.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
                        let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
                        let limiter =
                            std::sync::Arc::new(RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)));
                        map.insert(
                            principal.name.clone(),
                            (limit.per_second, limit.burst, std::sync::Arc::clone(&limiter)),
                        );
                        limiter
                    }
                }
            };
            if let Err(not_until) = limiter.check() {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(GatewayError::RateLimited {
                    what: format!("rate limit of {} requests/s (burst {})", limit.per_second, limit.burst),
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    /// Counts one data request of `principal` against its daily quota, or
    /// refuses it with the time to wait (until midnight).
    pub async fn quota(&self, principal: &Principal, today: NaiveDate) -> Result<(), GatewayError> {
        self.quota_n(principal, today, 1).await
    }

    /// Spends `n` units of the principal's daily quota at once, or none:
    /// refused when fewer than `n` remain (a batch is all or nothing). With
    /// shared state the count is the one every replica spends from; when
    /// the database cannot be reached the request is refused as retryable.
    pub async fn quota_n(&self, principal: &Principal, today: NaiveDate, n: u64) -> Result<(), GatewayError> {
        let (Some(shared), Some(quota)) = (&self.shared, principal.daily_quota) else {
            return self.quota_local(principal, today, n);
        };
        match shared.spend(&quota_key(principal), today, n, quota).await {
            Ok(creditgate_state::QuotaSpend::Spent(_)) => Ok(()),
            Ok(creditgate_state::QuotaSpend::Exceeded(used)) => Err(over_quota(principal, quota, today, n, used)),
            Err(e) => Err(crate::state::state_error("the daily quota", &e)),
        }
    }

    /// [`Limits::quota_n`] on this replica's own counts.
    fn quota_local(&self, principal: &Principal, today: NaiveDate, n: u64) -> Result<(), GatewayError> {
        if let Some(quota) = principal.daily_quota {
            let key = quota_key(principal);
            let mut daily = self.daily.lock().unwrap_or_else(|p| p.into_inner());
            let entry = daily.entry(key).or_insert((today, 0));
            if entry.0 != today {
                *entry = (today, 0);
            }
            if entry.1.saturating_add(n) > quota {
                return Err(over_quota(principal, quota, today, n, entry.1));
            }
            entry.1 += n;
            self.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }
}

/// The refusal of a request over `principal`'s daily quota of `quota`
/// (`used` spent today, `n` asked for), with the time to wait until midnight.
fn over_quota(principal: &Principal, quota: u64, today: NaiveDate, n: u64, used: u64) -> GatewayError {
    let now = chrono::Local::now();
    let midnight = (today + chrono::Days::new(1)).and_hms_opt(0, 0, 0).map(|t| t.and_local_timezone(chrono::Local));
    let wait = match midnight {
        Some(chrono::LocalResult::Single(t)) => (t - now).num_seconds().max(1) as u64,
        _ => 3600,
    };
    let under = match &principal.licence {
        Some(licence) => format!(" under licence {}", licence.number),
        None => String::new(),
    };
    let needs = match n {
        1 => String::new(),
        n => format!(" (this batch needs {n}; {} remain today)", quota.saturating_sub(used)),
    };
    GatewayError::RateLimited { what: format!("daily quota of {quota} requests{under}{needs}"), retry_after_secs: wait }
}

/// Checks between two clean-ups of the per-address limiter's table.
const ADDRESS_RETAIN_EVERY: u64 = 1024;

/// A rate limit per client address (the public listener: no certificate,
/// so the address is all there is to tell clients apart). The table of
/// addresses is cleaned of idle ones as it is used, so it stays bounded by
/// the addresses active within one refill period.
pub struct AddressLimits {
    per_second: u32,
    burst: u32,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl AddressLimits {
    /// `per_second` sustained, `burst` at once, per address (both at least 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let size = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            per_second,
            burst,
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(size)),
            checks: AtomicU64::new(0),
        }
    }

    /// Admits one request from `address`, or refuses it with the time to wait.
    pub fn check(&self, address: IpAddr) -> Result<(), GatewayError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % ADDRESS_RETAIN_EVERY == ADDRESS_RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&address).map_err(|not_until| GatewayError::RateLimited {
            what: format!("rate limit of {} requests/s (burst {}) per client address", self.per_second, self.burst),
            retry_after_secs: not_until.wait_time_from(DefaultClock::default().now()).as_secs().max(1),
        })
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// Writes `bytes` to `file` with the workspace's one atomic write.
fn write_atomic(file: &Path, bytes: &[u8]) -> Result<(), creditgate_files::WriteError> {
    use creditgate_files::{Access, Existing};
    creditgate_files::write_atomic(file, bytes, Access::Private, Existing::Replace)
}

#[cfg(test)]
impl Limits {
    /// Rate limit then quota, as the engine applies them to a data request.
    fn admit(&self, principal: &Principal, today: NaiveDate) -> Result<(), GatewayError> {
        self.rate(principal)?;
        self.quota_local(principal, today, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use creditgate_policy::{RateLimit, Role};

    fn principal(name: &str, rate: Option<RateLimit>, quota: Option<u64>) -> Principal {
        Principal {
            name: name.into(),
            identity: format!("spiffe://credit.example/org/{name}"),
            organization: name.into(),
            role: Role::Agency,
            purposes: vec!["supervision".into()],
            duty_codes: vec!["supervision".into()],
            licence: None,
            rate_limit: rate,
            daily_quota: quota,
        }
    }

    #[test]
    fn burst_then_refused_with_retry_after_and_others_unaffected() {
        let limits = Limits::default();
        let today = chrono::Local::now().date_naive();
        let busy = principal("busy", Some(RateLimit { per_second: 1, burst: 3 }), None);
        let other = principal("other", Some(RateLimit { per_second: 1, burst: 3 }), None);
        for _ in 0..3 {
            limits.admit(&busy, today).expect("within burst");
        }
        match limits.admit(&busy, today) {
            Err(GatewayError::RateLimited { retry_after_secs, .. }) => assert!(retry_after_secs >= 1),
            other => panic!("expected a rate-limit refusal, got {other:?}"),
        }
        limits.admit(&other, today).expect("another principal is unaffected");
    }

    #[test]
    fn a_licence_shares_one_quota_and_counts_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("quotas.json");
        let today = chrono::Local::now().date_naive();
        let licence = creditgate_policy::Licence {
            number: "ZX-1".into(),
            expiry: today + chrono::Days::new(30),
            scope: Vec::new(),
        };
        let mut first = principal("agency-desk-1", None, Some(3));
        first.role = Role::CreditAgency;
        first.licence = Some(licence.clone());
        let mut second = first.clone();
        second.name = "agency-desk-2".into();
        let unlicensed = principal("platform", None, Some(3));

        let limits = Limits::load(&file, today).expect("no file yet");
        limits.admit(&first, today).expect("1");
        limits.admit(&second, today).expect("2: same licence");
        assert!(limits.save(today).expect("save"), "changed counts are saved");
        assert!(!limits.save(today).expect("save"), "unchanged counts are not rewritten");
        drop(limits);

        // After a restart the licence has one request left, whichever desk asks.
        let limits = Limits::load(&file, today).expect("load");
        limits.admit(&second, today).expect("3");
        let error = limits.admit(&first, today).expect_err("the licence's quota is used up");
        assert!(error.to_string().contains("daily quota of 3 requests under licence ZX-1"), "{error}");
        // Another principal has its own quota.
        limits.admit(&unlicensed, today).expect("unaffected");
        // Counts from another day are not carried over.
        limits.save(today).expect("save");
        let tomorrow = Limits::load(&file, today + chrono::Days::new(1)).expect("load");
        tomorrow.admit(&first, today + chrono::Days::new(1)).expect("a new day");
        // A damaged file is refused by name.
        std::fs::write(&file, b"{not json").expect("write");
        let error = Limits::load(&file, today).err().expect("refused");
        assert!(error.to_string().contains("quotas.json"), "{error}");
    }

    #[test]
    fn each_client_address_has_its_own_bucket() {
        let limits = AddressLimits::new(1, 2);
        let one: IpAddr = "192.0.2.1".parse().expect("ip");
        let two: IpAddr = "192.0.2.2".parse().expect("ip");
        limits.check(one).expect("1");
        limits.check(one).expect("2: burst");
        let error = limits.check(one).expect_err("over the burst");
        assert!(error.to_string().contains("per client address"), "{error}");
        limits.check(two).expect("another address is unaffected");
        assert_eq!(limits.tracked(), 2);
    }

    #[test]
    fn daily_quota_resets_the_next_day() {
        let limits = Limits::default();
        let today = chrono::Local::now().date_naive();
        let p = principal("quota", None, Some(2));
        limits.admit(&p, today).expect("1");
        limits.admit(&p, today).expect("2");
        let error = limits.admit(&p, today).expect_err("over quota");
        assert!(error.to_string().contains("daily quota of 2"), "{error}");
        limits.admit(&p, today + chrono::Days::new(1)).expect("new day");
    }
}
