//! The wire side of rate limiting: the `RateLimit-*` headers of a verdict (the contract's
//! fine print: `Limit` is the burst, `Reset` and `Retry-After` whole seconds rounded up).
//!
//! A request keeps only the headline verdict's numbers ([`Headline`], two small `Copy`
//! structs); the three numeric values go into the response as header values directly, and only
//! `RateLimit-Policy` is formatted, once per response.

use http::HeaderValue;
use pingora::http::ResponseHeader;
use tollgate_ratelimit::gcra::{ceil_secs, Decision, Quota};
use tollgate_ratelimit::Verdict;

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
        let policy = format!(
            "{};w={};burst={}",
            quota.count,
            ceil_secs(quota.period_ns),
            quota.burst
        );
        [
            (LIMIT, HeaderValue::from(quota.burst)),
            (REMAINING, HeaderValue::from(decision.remaining)),
            (
                RESET,
                HeaderValue::from(ceil_secs(decision.reset_ns).max(1)),
            ),
            // Digits, `;`, `=` and letters only: always a valid header value.
            (
                POLICY,
                HeaderValue::try_from(policy).unwrap_or(HeaderValue::from_static("")),
            ),
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

/// `Retry-After` of a 429: at least 1.
pub fn retry_after(v: &Verdict) -> String {
    let wait = v.limit.map_or(1, |(_, d)| ceil_secs(d.retry_after_ns));
    wait.max(1).to_string()
}
