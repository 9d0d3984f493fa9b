//! The gateway's metrics, in a registry of its own (not the process-wide default one).
//!
//! Label handles are resolved per route when a config is loaded, not per request: a request
//! touches a pre-resolved histogram and, for the common status codes, a counter resolved on
//! first use, never a label hash map.

use std::sync::{Arc, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    reloads: IntCounterVec,
    access_log_dropped: IntCounter,
    in_flight: IntGauge,
    auth: IntCounterVec,
    jwks_refresh: IntCounterVec,
    jwks_keys: IntGaugeVec,
    tenants: IntGaugeVec,
    token_cache: IntCounterVec,
    /// What `token_cache` has been told so far: (hits, misses).
    token_cache_seen: std::sync::Mutex<(u64, u64)>,
    ratelimit: IntCounterVec,
    redis_errors: IntCounter,
    evicted: IntCounter,
}

/// Status codes whose counters are resolved at load; others are looked up when they occur.
const COMMON_STATUS: [u16; 20] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 408, 413, 429, 431, 500, 502, 503, 504,
    101,
];

/// One series of a labelled counter, resolved on first use: made at load for each label set a
/// request may count, so that counting costs no label lookup (and an unused one adds no series).
#[derive(Clone)]
pub struct LazyCounter {
    family: IntCounterVec,
    labels: Arc<[String]>,
    handle: Arc<OnceLock<IntCounter>>,
}

impl LazyCounter {
    fn new(family: &IntCounterVec, labels: &[&str]) -> Self {
        LazyCounter {
            family: family.clone(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            handle: Arc::new(OnceLock::new()),
        }
    }

    pub fn inc(&self) {
        self.handle
            .get_or_init(|| {
                let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
                self.family.with_label_values(&labels)
            })
            .inc();
    }
}

/// One route's pre-resolved metric handles.
#[derive(Clone)]
pub struct RouteMetrics {
    name: String,
    requests: IntCounterVec,
    /// Resolved on first use, so unused status codes add no series.
    common: Arc<[OnceLock<IntCounter>; COMMON_STATUS.len()]>,
    duration: Histogram,
}

impl RouteMetrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        self.duration.observe(seconds);
        match COMMON_STATUS.iter().position(|s| *s == status) {
            Some(i) => self.common[i]
                .get_or_init(|| {
                    self.requests
                        .with_label_values(&[self.name.as_str(), &status.to_string()])
                })
                .inc(),
            None => self
                .requests
                .with_label_values(&[self.name.as_str(), &status.to_string()])
                .inc(),
        }
    }
}

impl Metrics {
    #[allow(clippy::expect_used)] // metric definitions are constants: a failure is a bug here
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tollgate_requests_total",
                "Requests answered, by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_request_duration_seconds",
                "Time from request headers to the end of the response, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let reloads = IntCounterVec::new(
            Opts::new(
                "tollgate_config_reloads_total",
                "Config reloads, by result (ok or error)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let access_log_dropped = IntCounter::new(
            "tollgate_access_log_dropped_total",
            "Access-log lines dropped because the writer could not keep up",
        )
        .expect("valid metric");
        let in_flight = IntGauge::new(
            "tollgate_requests_in_flight",
            "Requests being handled now (from request headers to the access-log line)",
        )
        .expect("valid metric");
        let auth = IntCounterVec::new(
            Opts::new(
                "tollgate_auth_total",
                "Authentication attempts, by provider (api_key for API keys, none when no provider was found) and result",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let jwks_refresh = IntCounterVec::new(
            Opts::new(
                "tollgate_jwks_refresh_total",
                "Fetches of a provider's keys (discovery and JWKS), by result (ok or error)",
            ),
            &["provider", "result"],
        )
        .expect("valid metric");
        let jwks_keys = IntGaugeVec::new(
            Opts::new("tollgate_jwks_keys", "Keys a provider can verify with now"),
            &["provider"],
        )
        .expect("valid metric");
        let tenants = IntGaugeVec::new(
            Opts::new(
                "tollgate_tenants",
                "Concrete issuers of a multi-tenant provider, by state (in_use, with_keys); tenants are counted, never named",
            ),
            &["provider", "state"],
        )
        .expect("valid metric");
        let token_cache = IntCounterVec::new(
            Opts::new(
                "tollgate_token_cache_total",
                "Bearer tokens answered from the verified-token cache (hit) or verified afresh (miss)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let ratelimit = IntCounterVec::new(
            Opts::new(
                "tollgate_ratelimit_total",
                "Rate-limit decisions, by policy, tier and result (allowed or limited)",
            ),
            &["policy", "tier", "result"],
        )
        .expect("valid metric");
        let redis_errors = IntCounter::new(
            "tollgate_ratelimit_redis_errors_total",
            "Redis rate-limit calls that failed or took longer than redis.timeout (on_error applied)",
        )
        .expect("valid metric");
        let evicted = IntCounter::new(
            "tollgate_ratelimit_evicted_total",
            "Local rate-limit keys dropped because a bucket store was full (not because their bucket was full again)",
        )
        .expect("valid metric");
        for c in [
            Box::new(in_flight.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(ratelimit.clone()),
            Box::new(evicted.clone()),
            Box::new(redis_errors.clone()),
            Box::new(auth.clone()),
            Box::new(jwks_refresh.clone()),
            Box::new(jwks_keys.clone()),
            Box::new(tenants.clone()),
            Box::new(token_cache.clone()),
            Box::new(requests.clone()),
            Box::new(duration.clone()),
            Box::new(reloads.clone()),
            Box::new(access_log_dropped.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        // Both results exist from the start, so a dashboard sees 0 rather than no series.
        reloads.with_label_values(&["ok"]);
        reloads.with_label_values(&["error"]);
        Metrics {
            registry,
            requests,
            duration,
            reloads,
            access_log_dropped,
            in_flight,
            auth,
            jwks_refresh,
            jwks_keys,
            tenants,
            token_cache,
            token_cache_seen: std::sync::Mutex::new((0, 0)),
            ratelimit,
            redis_errors,
            evicted,
        }
    }

    /// Local rate-limit keys evicted from full stores.
    pub fn ratelimit_evicted(&self, n: u64) {
        self.evicted.inc_by(n);
    }

    /// One Redis rate-limit call that failed or was late.
    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// The counter of one rate-limit decision, to resolve at load ([`Self::ratelimit`] looks
    /// the labels up on every call).
    pub fn ratelimit_counter(&self, policy: &str, tier: &str, allowed: bool) -> LazyCounter {
        let result = if allowed { "allowed" } else { "limited" };
        LazyCounter::new(&self.ratelimit, &[policy, tier, result])
    }

    /// The counter of one authentication result of a provider, to resolve at load.
    pub fn auth_counter(&self, provider: &str, result: &str) -> LazyCounter {
        LazyCounter::new(&self.auth, &[provider, result])
    }

    /// One rate-limit decision.
    pub fn ratelimit(&self, policy: &str, tier: &str, allowed: bool) {
        let result = if allowed { "allowed" } else { "limited" };
        self.ratelimit
            .with_label_values(&[policy, tier, result])
            .inc();
    }

    /// One authentication: `result` is `ok` or the refusal's error code.
    pub fn auth(&self, provider: &str, result: &str) {
        self.auth.with_label_values(&[provider, result]).inc();
    }

    /// One key fetch of a provider, and the keys it can use after it.
    pub fn jwks_fetched(&self, provider: &str, result: &str, keys: usize) {
        self.jwks_refresh
            .with_label_values(&[provider, result])
            .inc();
        self.jwks_keys
            .with_label_values(&[provider])
            .set(keys as i64);
    }

    /// One key fetch for a tenant's issuer of a multi-tenant provider (no key gauge: that
    /// provider has keys per tenant, see `tollgate_tenants`).
    pub fn jwks_refreshed(&self, provider: &str, result: &str) {
        self.jwks_refresh
            .with_label_values(&[provider, result])
            .inc();
    }

    /// Drops every `tollgate_tenants` series (before they are set again for a scrape).
    pub fn clear_tenants(&self) {
        self.tenants.reset();
    }

    /// The concrete issuers of a multi-tenant provider: in use, and with keys now.
    pub fn tenants(&self, provider: &str, in_use: usize, with_keys: usize) {
        self.tenants
            .with_label_values(&[provider, "in_use"])
            .set(in_use as i64);
        self.tenants
            .with_label_values(&[provider, "with_keys"])
            .set(with_keys as i64);
    }

    /// The token cache's counts so far (they only grow): the counters catch up before a
    /// scrape, so that a request pays one atomic add rather than a metric update.
    pub fn token_cache(&self, hits: u64, misses: u64) {
        let mut seen = self
            .token_cache_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.token_cache
            .with_label_values(&["hit"])
            .inc_by(hits.saturating_sub(seen.0));
        self.token_cache
            .with_label_values(&["miss"])
            .inc_by(misses.saturating_sub(seen.1));
        *seen = (hits.max(seen.0), misses.max(seen.1));
    }

    /// A provider with keys from a file or a secret.
    pub fn static_keys(&self, provider: &str, keys: usize) {
        self.jwks_keys
            .with_label_values(&[provider])
            .set(keys as i64);
    }

    /// The in-flight gauge, for the gateway to count requests with.
    pub fn in_flight(&self) -> IntGauge {
        self.in_flight.clone()
    }

    /// Handles for one route (or `(none)` for requests that matched no route).
    pub fn route(&self, name: &str) -> RouteMetrics {
        RouteMetrics {
            name: name.to_owned(),
            requests: self.requests.clone(),
            common: Arc::new(std::array::from_fn(|_| OnceLock::new())),
            duration: self.duration.with_label_values(&[name]),
        }
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
    }

    pub fn access_log_dropped(&self) {
        self.access_log_dropped.inc();
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_count_by_status() {
        let m = Metrics::new();
        let r = m.route("users");
        r.observe(200, 0.01);
        r.observe(200, 0.02);
        r.observe(418, 0.001);
        m.reload(true);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"tollgate_requests_total{route="users",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tollgate_requests_total{route="users",status="418"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tollgate_request_duration_seconds_count{route="users"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tollgate_config_reloads_total{result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tollgate_config_reloads_total{result="error"} 0"#),
            "{text}"
        );
    }
}
