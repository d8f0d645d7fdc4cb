//! Rate limits (governor, burst + sustained, per principal) and daily quotas,
//! both from the policy file.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

use chrono::NaiveDate;
use creditgate_policy::Principal;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::GatewayError;

/// Per-principal limiters and daily counters.
#[derive(Default)]
pub struct Limits {
    limiters: Mutex<HashMap<String, (u32, u32, std::sync::Arc<DefaultDirectRateLimiter>)>>,
    daily: Mutex<HashMap<String, (NaiveDate, u64)>>,
}

impl Limits {
    /// Admits one data request of `principal` or refuses it with the time to wait.
    pub fn admit(&self, principal: &Principal, today: NaiveDate) -> Result<(), GatewayError> {
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
        if let Some(quota) = principal.daily_quota {
            let mut daily = self.daily.lock().unwrap_or_else(|p| p.into_inner());
            let entry = daily.entry(principal.name.clone()).or_insert((today, 0));
            if entry.0 != today {
                *entry = (today, 0);
            }
            if entry.1 >= quota {
                let now = chrono::Local::now();
                let midnight =
                    (today + chrono::Days::new(1)).and_hms_opt(0, 0, 0).map(|t| t.and_local_timezone(chrono::Local));
                let wait = match midnight {
                    Some(chrono::LocalResult::Single(t)) => (t - now).num_seconds().max(1) as u64,
                    _ => 3600,
                };
                return Err(GatewayError::RateLimited {
                    what: format!("daily quota of {quota} requests"),
                    retry_after_secs: wait,
                });
            }
            entry.1 += 1;
        }
        Ok(())
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
