//! The wire side of rate limiting: the `RateLimit-*` headers of a verdict (the contract's
//! fine print: `Limit` is the burst, `Reset` and `Retry-After` whole seconds rounded up).

use tollgate_ratelimit::gcra::ceil_secs;
use tollgate_ratelimit::Verdict;

/// `RateLimit-Limit`, `-Remaining`, `-Reset` and `-Policy`; none for an unlimited tier.
pub fn headers(v: &Verdict) -> Vec<(&'static str, String)> {
    let Some((quota, d)) = v.limit else {
        return Vec::new();
    };
    let window = ceil_secs(quota.period_ns);
    vec![
        ("ratelimit-limit", quota.burst.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", ceil_secs(d.reset_ns).max(1).to_string()),
        (
            "ratelimit-policy",
            format!("{};w={window};burst={}", quota.count, quota.burst),
        ),
    ]
}

/// `Retry-After` of a 429: at least 1.
pub fn retry_after(v: &Verdict) -> String {
    let wait = v.limit.map_or(1, |(_, d)| ceil_secs(d.retry_after_ns));
    wait.max(1).to_string()
}
