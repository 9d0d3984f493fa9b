//! GCRA (the generic cell rate algorithm): one number per key, the theoretical arrival time
//! (TAT) of the next request if requests came exactly at the limit's pace.
//!
//! ```text
//!   limit N/period   emission interval T = period / N   burst B (default N)
//!   a request at `now`:  tat = max(TAT, now);  new = tat + T
//!     admitted if new - now <= B*T   (store TAT = new)
//!     else refused, retry after  new - B*T - now
//!   remaining = floor((B*T - (new - now)) / T)     reset = new - now  (bucket full again)
//! ```
//!
//! Times are nanoseconds on a monotonic clock; the Redis backend runs the same arithmetic in
//! milliseconds inside one Lua script.

/// A limit in GCRA terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// N of `limit: N/period`.
    pub count: u64,
    pub period_ns: u64,
    /// B: how many may arrive at once.
    pub burst: u64,
}

impl Quota {
    /// The emission interval T.
    pub fn interval_ns(&self) -> u64 {
        (self.period_ns / self.count.max(1)).max(1)
    }

    /// B*T: how far ahead of now the TAT may run.
    fn capacity_ns(&self) -> u64 {
        self.interval_ns().saturating_mul(self.burst)
    }
}

/// The outcome for one request, with what the `RateLimit-*` headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests that could be sent right now.
    pub remaining: u64,
    /// Nanoseconds until the bucket is full again.
    pub reset_ns: u64,
    /// For a refusal: nanoseconds until one request would be admitted.
    pub retry_after_ns: u64,
}

/// One request at `now` against a stored TAT (`None`: never seen, or full again). Returns the
/// decision and, when admitted, the TAT to store.
pub fn check(quota: &Quota, tat: Option<u64>, now: u64) -> (Decision, Option<u64>) {
    let t = quota.interval_ns();
    let capacity = quota.capacity_ns();
    let tat = tat.map_or(now, |tat| tat.max(now));
    let new = tat.saturating_add(t);
    let ahead = new - now;
    if ahead <= capacity {
        let remaining = (capacity - ahead) / t;
        let decision = Decision {
            allowed: true,
            remaining,
            reset_ns: ahead,
            retry_after_ns: 0,
        };
        (decision, Some(new))
    } else {
        let decision = Decision {
            allowed: false,
            remaining: 0,
            reset_ns: tat - now,
            retry_after_ns: ahead - capacity,
        };
        (decision, None)
    }
}

/// Whole seconds, rounded up (the contract's `Retry-After` and `RateLimit-Reset`).
pub fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn quota(count: u64, period_s: u64, burst: u64) -> Quota {
        Quota {
            count,
            period_ns: period_s * S,
            burst,
        }
    }

    /// Runs requests at the given seconds; returns each decision.
    fn run(q: &Quota, at: &[u64]) -> Vec<Decision> {
        let mut tat = None;
        at.iter()
            .map(|&s| {
                let (d, new) = check(q, tat, s * S);
                if let Some(new) = new {
                    tat = Some(new);
                }
                d
            })
            .collect()
    }

    #[test]
    fn three_a_minute_burst_three() {
        let d = run(&quota(3, 60, 3), &[0, 0, 0, 0]);
        let summary: Vec<_> = d
            .iter()
            .map(|d| {
                (
                    d.allowed,
                    d.remaining,
                    ceil_secs(d.reset_ns),
                    ceil_secs(d.retry_after_ns),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (true, 2, 20, 0),
                (true, 1, 40, 0),
                (true, 0, 60, 0),
                (false, 0, 60, 20)
            ]
        );
    }

    #[test]
    fn refill_one_every_interval() {
        // 3/minute: one request comes back every 20 s.
        let d = run(&quota(3, 60, 3), &[0, 0, 0, 19, 20, 21, 40]);
        let allowed: Vec<bool> = d.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false, true, false, true]);
        assert_eq!(ceil_secs(d[3].retry_after_ns), 1);
    }

    #[test]
    fn burst_smaller_and_larger_than_the_count() {
        // 10/s with burst 1: strictly one every 100 ms.
        let q = Quota {
            count: 10,
            period_ns: S,
            burst: 1,
        };
        let (a, tat) = check(&q, None, 0);
        let (b, _) = check(&q, tat, 50_000_000);
        let (c, _) = check(&q, tat, 100_000_000);
        assert!(a.allowed && !b.allowed && c.allowed);
        assert_eq!(b.retry_after_ns, 50_000_000);
        // 1/hour with burst 5: five at once, then one an hour.
        let d = run(&quota(1, 3600, 5), &[0, 0, 0, 0, 0, 0, 3600]);
        let allowed: Vec<bool> = d.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, true, true, false, true]);
        assert_eq!(d[4].remaining, 0);
        assert_eq!(ceil_secs(d[4].reset_ns), 5 * 3600);
    }

    #[test]
    fn an_idle_key_is_full_again() {
        let d = run(&quota(3, 60, 3), &[0, 0, 0, 61]);
        assert_eq!((d[3].allowed, d[3].remaining), (true, 2));
    }

    #[test]
    fn rounding_up() {
        assert_eq!(ceil_secs(1), 1);
        assert_eq!(ceil_secs(S), 1);
        assert_eq!(ceil_secs(S + 1), 2);
        assert_eq!(ceil_secs(0), 0);
    }
}
