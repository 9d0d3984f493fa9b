//! The wire side of rate limiting: the `RateLimit-*` headers of a verdict (the contract's
//! fine print: `Limit` is the burst, `Reset` and `Retry-After` whole seconds rounded up).
//!
//! A request keeps only the headline verdict's numbers ([`Headline`], two small `Copy`
//! structs); the three numeric values go into the response as header values directly, and
//! `RateLimit-Policy` is formatted once per quota and thread ([`policy_value`]). Counting a
//! verdict in `tollgate_ratelimit_total` uses handles made at load ([`TierCounters`]).

use std::cell::RefCell;
use std::sync::Arc;

use http::HeaderValue;
use pingora::http::ResponseHeader;
use tollgate_admin::{LazyCounter, Metrics};
use tollgate_ratelimit::gcra::{ceil_secs, Decision, Quota};
use tollgate_ratelimit::{Policy, Verdict};

// As written on the wire: Pingora takes a `&'static str` name as it is, where a `HeaderName`
// would be title-cased into a new buffer on every response.
const LIMIT: &str = "RateLimit-Limit";
const REMAINING: &str = "RateLimit-Remaining";
const RESET: &str = "RateLimit-Reset";
const POLICY: &str = "RateLimit-Policy";

/// The numbers behind one response's `RateLimit-*` headers.
#[derive(Debug, Clone, Copy)]
pub struct Headline {
    quota: Quota,
    decision: Decision,
}

impl Headline {
    /// `None` for an unlimited tier: such a response carries no headers.
    pub fn of(v: &Verdict) -> Option<Headline> {
        v.limit
            .map(|(quota, decision)| Headline { quota, decision })
    }

    fn values(&self) -> [(&'static str, HeaderValue); 4] {
        let Headline { quota, decision } = self;
        [
            (LIMIT, HeaderValue::from(quota.burst)),
            (REMAINING, HeaderValue::from(decision.remaining)),
            (
                RESET,
                HeaderValue::from(ceil_secs(decision.reset_ns).max(1)),
            ),
            (POLICY, policy_value(quota)),
        ]
    }

    /// Adds the headers to an upstream's response.
    pub fn write(&self, response: &mut ResponseHeader) -> pingora::Result<()> {
        for (name, value) in self.values() {
            response.insert_header(name, value)?;
        }
        Ok(())
    }

    /// The headers as a refusal carries them.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, String)> {
        let names = [
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "ratelimit-policy",
        ];
        names.into_iter().zip(
            self.values()
                .into_iter()
                .map(|(_, v)| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        )
    }
}

thread_local! {
    /// The last `RateLimit-Policy` value made on this thread, and the quota it describes: the
    /// responses of a route nearly always carry the same one, so it is formatted once instead
    /// of once per response.
    static LAST_POLICY: RefCell<Option<(Quota, HeaderValue)>> = const { RefCell::new(None) };
}

/// `RateLimit-Policy: 100;w=60;burst=100` for a quota.
fn policy_value(quota: &Quota) -> HeaderValue {
    LAST_POLICY.with_borrow_mut(|last| {
        if let Some((_, value)) = last.as_ref().filter(|(q, _)| q == quota) {
            return value.clone();
        }
        let text = format!(
            "{};w={};burst={}",
            quota.count,
            ceil_secs(quota.period_ns),
            quota.burst
        );
        // Digits, `;`, `=` and letters only: always a valid header value.
        let value = HeaderValue::try_from(text).unwrap_or(HeaderValue::from_static(""));
        *last = Some((*quota, value.clone()));
        value
    })
}

/// `tollgate_ratelimit_total` for one tier of one of a route's policies: its `allowed` and
/// `limited` series, resolved at load.
pub struct TierCounters {
    policy: Arc<str>,
    tier: Arc<str>,
    allowed: LazyCounter,
    limited: LazyCounter,
}

/// The counters of every tier of a route's policies.
pub fn tier_counters(policies: &[Arc<Policy>], metrics: &Metrics) -> Vec<TierCounters> {
    policies
        .iter()
        .flat_map(|p| {
            p.tier_names().map(|tier| TierCounters {
                policy: p.name.clone(),
                tier: tier.clone(),
                allowed: metrics.ratelimit_counter(&p.name, tier, true),
                limited: metrics.ratelimit_counter(&p.name, tier, false),
            })
        })
        .collect()
}

/// Counts one verdict of a route's policies: by the route's handles (a verdict carries the
/// very `Arc`s of its policy's and tier's names), else by label lookup.
pub fn count(counters: &[TierCounters], v: &Verdict, metrics: &Metrics) {
    let known = counters
        .iter()
        .find(|c| Arc::ptr_eq(&c.policy, &v.policy) && Arc::ptr_eq(&c.tier, &v.tier));
    match (known, v.allowed()) {
        (Some(c), true) => c.allowed.inc(),
        (Some(c), false) => c.limited.inc(),
        (None, allowed) => metrics.ratelimit(&v.policy, &v.tier, allowed),
    }
}

/// `Retry-After` of a 429: at least 1.
pub fn retry_after(v: &Verdict) -> String {
    let wait = v.limit.map_or(1, |(_, d)| ceil_secs(d.retry_after_ns));
    wait.max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_value_is_the_quota_s_whichever_came_before() {
        let minute = Quota {
            count: 100,
            period_ns: 60_000_000_000,
            burst: 20,
        };
        let second = Quota {
            count: 5,
            period_ns: 1_000_000_000,
            burst: 5,
        };
        for (quota, want) in [
            (minute, "100;w=60;burst=20"),
            (minute, "100;w=60;burst=20"),
            (second, "5;w=1;burst=5"),
            (minute, "100;w=60;burst=20"),
        ] {
            assert_eq!(policy_value(&quota), want);
        }
    }
}
