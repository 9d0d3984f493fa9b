//! The `Gate`: everything one config compiles into (router, routes, upstream pools, header
//! rules), built once at load and swapped whole on reload. A request holds the `Arc<Gate>` it
//! started with until it ends.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use ipnet::IpNet;
use tollgate_admin::{LazyCounter, Metrics, RouteMetrics};
use tollgate_auth::claims::ClaimPath;
use tollgate_config::{AuthMode, Loaded, Problems, Report};
use tollgate_router::{BuildError, RouteSpec, Router};

use crate::cors::Cors;
use crate::identity::{self, Forwarded};
use crate::upstream::Upstream;

/// The default limit on request headers: the contract asks for at least 16 KiB.
const DEFAULT_MAX_HEADER_BYTES: u64 = 32 * 1024;

pub struct Gate {
    pub router: Router,
    /// The `redis` section it was built from, and its connection (kept by a reload that does
    /// not change the section).
    pub redis: Option<(
        tollgate_config::Redis,
        Arc<tollgate_ratelimit::shared::Shared>,
    )>,
    /// `rate_limits`; unchanged policies keep their counts across reloads.
    pub policies: tollgate_ratelimit::Policies,
    /// Providers and API keys; unchanged remote providers and the token cache survive reloads.
    pub auth: tollgate_auth::Authenticator,
    pub routes: Vec<Route>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// Every header named in any `forward_headers`: removed from every request, so that a
    /// client can never forge an identity header.
    pub identity_headers: Vec<HeaderName>,
    /// `Authorization` and the API-key header: stripped before proxying unless
    /// `auth.forward_authorization` is set.
    pub credential_headers: Vec<HeaderName>,
    pub trusted_proxies: Vec<IpNet>,
    pub max_header_bytes: u64,
    /// `tollgate_auth_total{result="ok"}` of each provider (and `api_key`), resolved at load.
    pub auth_ok: Vec<(Arc<str>, LazyCounter)>,
    /// `auth.resource_metadata`: the RFC 9728 document's URL, the path Tollgate serves it at,
    /// and the document.
    pub resource_metadata: Option<ResourceMetadata>,
    /// `admin.readiness`: whether providers without keys keep `/readyz` at 503.
    pub readiness: tollgate_config::Readiness,
    /// Metrics for requests that matched no route.
    pub unmatched: RouteMetrics,
}

pub struct Route {
    pub name: Arc<str>,
    pub upstream: Arc<Upstream>,
    pub auth: AuthMode,
    pub rewrite: Rewrite,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_body: Option<u64>,
    pub cors: Option<Cors>,
    pub retries: Retries,
    pub metrics: RouteMetrics,
    /// Headers sent upstream with the caller's identity.
    pub forward: Forwarded,
    /// `allow`: what an authenticated caller must have.
    pub allow: Option<tollgate_policy::Allow>,
    /// `rate_limit`: every one must admit.
    pub rate_limits: Vec<Arc<tollgate_ratelimit::Policy>>,
    /// `tollgate_ratelimit_total` for each tier of those policies.
    pub ratelimit_counters: Vec<crate::limits::TierCounters>,
}

/// `retries`: how often an idempotent request is tried again, and on what.
#[derive(Clone, Copy)]
pub struct Retries {
    /// Tries after the first one.
    pub attempts: u32,
    pub on_connect_error: bool,
    /// Upstream statuses (502, 503, 504) that are tried again.
    pub on_status: [bool; 3],
}

impl Retries {
    /// Without `retries`: one more try after a failed connection (nothing was sent), no more.
    const DEFAULT: Retries = Retries {
        attempts: 1,
        on_connect_error: true,
        on_status: [false; 3],
    };

    pub fn on_status(&self, status: u16) -> bool {
        matches!(status, 502..=504) && self.on_status[usize::from(status - 502)]
    }

    fn compile(
        config: &tollgate_config::Retries,
        route: usize,
        report: &mut Report<'_>,
    ) -> Retries {
        let mut retries = Retries {
            attempts: config.attempts,
            on_connect_error: false,
            on_status: [false; 3],
        };
        if !(1..=10).contains(&config.attempts) {
            report.error(
                format!("routes[{route}].retries.attempts"),
                "must be between 1 and 10",
            );
        }
        for (j, on) in config.on.iter().enumerate() {
            match on.as_str() {
                "connect_error" => retries.on_connect_error = true,
                "502" => retries.on_status[0] = true,
                "503" => retries.on_status[1] = true,
                "504" => retries.on_status[2] = true,
                _ => report.error(
                    format!("routes[{route}].retries.on[{j}]"),
                    "expected connect_error, 502, 503 or 504",
                ),
            }
        }
        if config.on.is_empty() {
            retries.on_connect_error = true;
        }
        retries
    }
}

#[derive(Default)]
pub struct Rewrite {
    pub strip_prefix: Option<String>,
    pub prefix: Option<String>,
    pub host: Option<String>,
}

impl Rewrite {
    /// The upstream path for a normalised request path.
    pub fn path<'p>(&self, path: &'p str) -> std::borrow::Cow<'p, str> {
        let mut out = std::borrow::Cow::Borrowed(path);
        if let Some(strip) = &self.strip_prefix {
            if let Some(rest) = path.strip_prefix(strip.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    out = if rest.is_empty() {
                        "/".into()
                    } else {
                        rest.into()
                    };
                }
            }
        }
        if let Some(prefix) = &self.prefix {
            out = format!("{}{}", prefix.trim_end_matches('/'), out).into();
        }
        out
    }
}

impl Gate {
    /// Counts a caller authenticated by `provider`.
    pub fn count_auth_ok(&self, provider: &str, metrics: &Metrics) {
        match self.auth_ok.iter().find(|(name, _)| **name == *provider) {
            Some((_, counter)) => counter.inc(),
            None => metrics.auth(provider, "ok"),
        }
    }

    /// Compiles a checked config. Every problem names its YAML path and line.
    ///
    /// With a `runtime`, health checks start there. Upstreams whose config is unchanged from
    /// the `previous` gate are kept as they are, health state and all.
    pub fn build(
        loaded: &Loaded,
        metrics: &Arc<Metrics>,
        runtime: Option<&tokio::runtime::Handle>,
        previous: Option<&Gate>,
    ) -> Result<Gate, Problems> {
        let mut report = loaded.report();
        let file = &loaded.file;
        tenant_routes(loaded, &mut report);

        let mut upstreams = BTreeMap::new();
        for (name, config) in &file.upstreams {
            let unchanged = previous
                .and_then(|p| p.upstreams.get(name))
                .filter(|u| u.config == *config);
            if let Some(upstream) = unchanged {
                upstreams.insert(name.clone(), upstream.clone());
                continue;
            }
            match Upstream::build(name, config, runtime) {
                Ok(u) => {
                    upstreams.insert(name.clone(), Arc::new(u));
                }
                Err((key, e)) => report.error(format!("upstreams.{name}.{key}"), e),
            }
        }

        let specs: Vec<RouteSpec<'_>> = file
            .routes
            .iter()
            .map(|r| RouteSpec {
                path: &r.matches.path,
                host: r.matches.host.as_deref(),
                methods: r
                    .matches
                    .methods
                    .as_ref()
                    .map(|ms| ms.iter().map(|m| m.to_ascii_uppercase()).collect()),
            })
            .collect();
        let router = match Router::build(&specs) {
            Ok(router) => Some(router),
            Err(errors) => {
                for e in errors {
                    match e {
                        BuildError::Path { route, message } => {
                            report.error(format!("routes[{route}].match.path"), message)
                        }
                        BuildError::Host { route, message } => {
                            report.error(format!("routes[{route}].match.host"), message)
                        }
                        BuildError::Ambiguous { route, other } => report.error(
                            format!("routes[{route}].match"),
                            format!(
                                "ambiguous: route {} has the same host, path and an overlapping method",
                                file.routes[other].name.quoted()
                            ),
                        ),
                    }
                }
                None
            }
        };

        let forward_defaults = identity::defaults(&file.forward_headers, &mut report);
        let redis = shared_redis(file, metrics, runtime, previous, &mut report);
        let mut policies = tollgate_ratelimit::Policies::new();
        for (name, config) in &file.rate_limits {
            let shared = match config.backend {
                tollgate_config::Backend::Local => None,
                tollgate_config::Backend::Redis => {
                    if file.redis.is_none() {
                        report.error(
                            format!("rate_limits.{name}.backend"),
                            "backend: redis needs a redis section",
                        );
                    }
                    redis.as_ref().map(|(_, s)| s)
                }
            };
            let previous = previous.and_then(|p| p.policies.get(name));
            if let Some(p) =
                tollgate_ratelimit::Policy::compile(name, config, previous, shared, &mut report)
            {
                policies.insert(name.clone(), p);
            }
        }
        let mut routes = Vec::with_capacity(file.routes.len());
        for (i, r) in file.routes.iter().enumerate() {
            let Some(upstream) = upstreams.get(r.upstream.as_str()) else {
                continue; // reported by the config check or the pool build
            };
            let rewrite = r
                .rewrite
                .as_ref()
                .map(|rw| compile_rewrite(rw, i, &mut report))
                .unwrap_or_default();
            let timeouts = r.timeouts.unwrap_or_default();
            let forward = identity::compile(
                &forward_defaults,
                r.forward_headers.as_ref(),
                i,
                &mut report,
            );
            let allow = r.allow.as_ref().and_then(|a| {
                if r.auth == AuthMode::None {
                    report.error(
                        format!("routes[{i}].allow"),
                        "allow rules need an authenticated caller: auth: none never has one",
                    );
                }
                tollgate_policy::Allow::compile(a, i, &mut report)
            });
            let rate_limits: Vec<_> = r
                .rate_limit
                .iter()
                .flat_map(|l| l.names())
                .filter_map(|n| policies.get(n.as_str()).cloned())
                .collect();
            let ratelimit_counters = crate::limits::tier_counters(&rate_limits, metrics);
            routes.push(Route {
                name: r.name.as_str().into(),
                upstream: upstream.clone(),
                auth: r.auth,
                rewrite,
                connect_timeout: timeouts.connect.map_or(upstream.connect_timeout, |d| d.0),
                read_timeout: timeouts.read.map_or(upstream.read_timeout, |d| d.0),
                max_body: r.max_body.map(|s| s.0),
                cors: r.cors.as_ref().map(|c| Cors::compile(c, i, &mut report)),
                retries: r
                    .retries
                    .as_ref()
                    .map_or(Retries::DEFAULT, |c| Retries::compile(c, i, &mut report)),
                metrics: metrics.route(&r.name),
                forward,
                allow,
                rate_limits,
                ratelimit_counters,
            });
        }

        if let Some(https) = &file.listen.https {
            tls_files(&https.cert, &https.key, &mut report);
        }
        let identity_headers = identity_headers(loaded, &mut report);
        let trusted_proxies = file
            .server
            .trusted_proxies
            .iter()
            .filter_map(|t| {
                t.parse::<IpNet>()
                    .ok()
                    .or_else(|| t.parse::<std::net::IpAddr>().ok().map(IpNet::from))
            })
            .collect();
        let max_header_bytes = file
            .server
            .max_header_bytes
            .map_or(DEFAULT_MAX_HEADER_BYTES, |s| s.0);
        // The contract promises clients at least 16 KiB of headers.
        if max_header_bytes < 16 * 1024 {
            report.error("server.max_header_bytes", "must be at least 16KiB");
        }

        let auth = tollgate_auth::build(
            &file.auth,
            &mut report,
            tollgate_auth::Context {
                runtime,
                events: Arc::new(AuthEvents(metrics.clone())),
                previous: previous.map(|p| &p.auth),
                claims_read: claims_read(&routes),
            },
        );
        for provider in auth.providers() {
            if let Some(keys) = provider.static_keys() {
                metrics.static_keys(&provider.name, keys);
            }
        }
        let resource_metadata = file
            .auth
            .resource_metadata
            .as_ref()
            .and_then(|url| ResourceMetadata::build(url, &auth, &routes, &mut report));
        let credential_headers = if file.auth.forward_authorization {
            Vec::new()
        } else {
            std::iter::once(http::header::AUTHORIZATION)
                .chain(auth.api_key_header().cloned())
                .collect()
        };
        let gate = router.map(|router| Gate {
            router,
            policies,
            redis,
            auth,
            routes,
            upstreams,
            identity_headers,
            credential_headers,
            trusted_proxies,
            max_header_bytes,
            auth_ok: file
                .auth
                .providers
                .iter()
                .map(|p| p.name.as_str())
                .chain(["api_key"])
                .map(|name| (name.into(), metrics.auth_counter(name, "ok")))
                .collect(),
            readiness: file.admin.readiness,
            resource_metadata,
            unmatched: metrics.route("(none)"),
        });
        match (report.finish(()), gate) {
            (Ok(()), Some(gate)) => Ok(gate),
            (Err(problems), _) => Err(problems),
            (Ok(()), None) => Err(Problems::one("routes", "routes could not be built")),
        }
    }
}

/// RFC 9728 protected-resource metadata, served by Tollgate itself.
pub struct ResourceMetadata {
    pub url: String,
    /// The path of `url`: requests for it get the document.
    pub path: String,
    pub document: bytes::Bytes,
}

impl ResourceMetadata {
    const WELL_KNOWN: &'static str = "/.well-known/oauth-protected-resource";

    /// The resource identifier is the URL without the well-known part (RFC 9728 §3.1:
    /// `https://api.example.com/.well-known/oauth-protected-resource/v1` describes
    /// `https://api.example.com/v1`).
    fn build(
        url: &tollgate_config::Text,
        auth: &tollgate_auth::Authenticator,
        routes: &[Route],
        report: &mut Report<'_>,
    ) -> Option<ResourceMetadata> {
        let parsed = url.parse::<http::Uri>().ok().filter(|u| {
            matches!(u.scheme_str(), Some("https" | "http"))
                && u.authority().is_some()
                && u.query().is_none()
                && u.path().starts_with(Self::WELL_KNOWN)
        });
        let Some(uri) = parsed else {
            report.error(
                "auth.resource_metadata",
                format!(
                    "expected an http(s) URL whose path starts with {} (RFC 9728 §3.1)",
                    Self::WELL_KNOWN
                ),
            );
            return None;
        };
        let authority = uri.authority().map_or("", |a| a.as_str());
        let rest = &uri.path()[Self::WELL_KNOWN.len()..];
        let resource = format!(
            "{}://{authority}{rest}",
            uri.scheme_str().unwrap_or("https")
        );
        let mut issuers: Vec<&str> = auth.providers().iter().map(|p| p.issuer.as_str()).collect();
        issuers.dedup();
        let scopes: std::collections::BTreeSet<&str> = routes
            .iter()
            .filter_map(|r| r.allow.as_ref())
            .flat_map(|a| a.scopes().iter().map(String::as_str))
            .collect();
        let mut document = serde_json::json!({
            "resource": resource,
            "authorization_servers": issuers,
            "bearer_methods_supported": ["header"],
        });
        if !scopes.is_empty() {
            document["scopes_supported"] = serde_json::json!(scopes);
        }
        Some(ResourceMetadata {
            url: url.to_string(),
            path: uri.path().to_owned(),
            document: bytes::Bytes::from(document.to_string()),
        })
    }
}

/// The Redis connection for `backend: redis` policies: the previous gate's when the `redis`
/// section is unchanged, else a new one (connected lazily, in the background).
fn shared_redis(
    file: &tollgate_config::File,
    metrics: &Arc<Metrics>,
    runtime: Option<&tokio::runtime::Handle>,
    previous: Option<&Gate>,
    report: &mut Report<'_>,
) -> Option<(
    tollgate_config::Redis,
    Arc<tollgate_ratelimit::shared::Shared>,
)> {
    use tollgate_ratelimit::shared::{OnError, Shared};
    let config = file.redis.as_ref()?;
    if let Some((old, shared)) = previous.and_then(|p| p.redis.as_ref()) {
        if old == config {
            return Some((config.clone(), shared.clone()));
        }
    }
    let nodes: Vec<String> = config
        .cluster_nodes
        .iter()
        .flatten()
        .map(|n| n.to_string())
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        if redis_url_problem(n).is_some() {
            report.error(
                format!("redis.cluster_nodes[{i}]"),
                "expected redis:// or rediss:// host:port",
            );
        }
    }
    if let Some(url) = &config.url {
        if let Some(problem) = redis_url_problem(url) {
            report.error("redis.url", problem);
            return None;
        }
    }
    let on_error = match config.on_error {
        tollgate_config::OnError::Local => OnError::Local,
        tollgate_config::OnError::Allow => OnError::Allow,
        tollgate_config::OnError::Deny => OnError::Deny,
    };
    let timeout = config.timeout.map_or(Duration::from_millis(50), |d| d.0);
    if timeout < Duration::from_millis(1) {
        report.error("redis.timeout", "must be at least 1ms");
    }
    let tls = config
        .tls
        .as_ref()
        .and_then(|t| redis_tls(t, config, report));
    let runtime = runtime?;
    let errors = metrics.clone();
    match Shared::new(
        config.url.as_deref(),
        &nodes,
        tls,
        timeout,
        on_error,
        Arc::new(move || errors.redis_error()),
        runtime,
    ) {
        Ok(shared) => Some((config.clone(), Arc::new(shared))),
        Err(e) => {
            report.error("redis", e);
            None
        }
    }
}

/// `redis.tls`: the PEM files, read now so that a missing one is a config error.
fn redis_tls(
    tls: &tollgate_config::ClientTls,
    config: &tollgate_config::Redis,
    report: &mut Report<'_>,
) -> Option<tollgate_ratelimit::shared::Tls> {
    let urls = config
        .url
        .iter()
        .chain(config.cluster_nodes.iter().flatten());
    if urls.clone().any(|u| !u.starts_with("rediss://")) {
        report.error("redis.tls", "TLS needs rediss:// URLs");
    }
    if tls.insecure_skip_verify {
        report.error(
            "redis.tls.insecure_skip_verify",
            "not supported for Redis: name the server's CA in ca_file instead",
        );
    }
    let mut read = |path: Option<&tollgate_config::Text>, key: &str| {
        let path = path?;
        match std::fs::read(path.as_str()) {
            Ok(pem) if pem.starts_with(b"-----BEGIN") => Some(pem),
            Ok(_) => {
                report.error(format!("redis.tls.{key}"), "not a PEM file");
                None
            }
            Err(e) => {
                report.error(
                    format!("redis.tls.{key}"),
                    format!("cannot read {}: {e}", path.quoted()),
                );
                None
            }
        }
    };
    let ca = read(tls.ca_file.as_ref(), "ca_file");
    let client = match (&tls.cert_file, &tls.key_file) {
        (Some(_), Some(_)) => {
            read(tls.cert_file.as_ref(), "cert_file").zip(read(tls.key_file.as_ref(), "key_file"))
        }
        (None, None) => None,
        _ => {
            report.error("redis.tls", "cert_file and key_file go together");
            None
        }
    };
    Some(tollgate_ratelimit::shared::Tls { ca, client })
}

/// What is wrong with a Redis URL, without repeating it (it may hold a password).
fn redis_url_problem(url: &str) -> Option<&'static str> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Some("expected a redis:// or rediss:// URL");
    }
    redis_url_parses(url)
        .then_some(())
        .map_or(Some("not a valid Redis URL"), |()| None)
}

fn redis_url_parses(url: &str) -> bool {
    tollgate_ratelimit::shared::valid_url(url)
}

/// Key fetches, counted in `tollgate_jwks_refresh_total` and `tollgate_jwks_keys`.
struct AuthEvents(Arc<Metrics>);

impl tollgate_auth::remote::Events for AuthEvents {
    fn fetched(&self, provider: &str, result: &'static str, keys: usize) {
        self.0.jwks_fetched(provider, result, keys);
    }

    fn tenant_fetched(&self, provider: &str, result: &'static str) {
        self.0.jwks_refreshed(provider, result);
    }
}

/// The listener's certificate chain and key must load now: Pingora panics on bad ones when
/// the listener starts.
fn tls_files(cert: &str, key: &str, report: &mut Report<'_>) {
    match pingora::tls::load_certs_and_key_files(cert, key) {
        Ok(Some(_)) => {}
        Ok(None) => report.error(
            "listen.https.cert",
            "no certificate or no private key found in listen.https.cert / listen.https.key",
        ),
        Err(e) => report.error(
            "listen.https",
            format!("cannot load the certificate or key: {e}"),
        ),
    }
}

/// `rewrite`: prefixes are whole, normal paths (`/api/` strips like `/api`), so that what goes
/// upstream is still a normal path.
fn compile_rewrite(
    rw: &tollgate_config::Rewrite,
    route: usize,
    report: &mut Report<'_>,
) -> Rewrite {
    let mut path = |key: &str, value: &Option<tollgate_config::Text>| {
        let v = value.as_deref()?;
        let trimmed = if v.len() > 1 {
            v.trim_end_matches('/')
        } else {
            v
        };
        let normal =
            v.starts_with('/') && tollgate_router::normalize(trimmed).is_ok_and(|n| n == trimmed);
        if !normal {
            report.error(
                format!("routes[{route}].rewrite.{key}"),
                "expected a normal path starting with / (no //, . or .. segments, no %2F)",
            );
        }
        (trimmed != "/").then(|| trimmed.to_owned())
    };
    let strip_prefix = path("strip_prefix", &rw.strip_prefix);
    let prefix = path("prefix", &rw.prefix);
    let host = rw.host.as_deref().map(str::to_owned);
    if let Some(h) = &host {
        if h.is_empty()
            || http::HeaderValue::from_str(h).is_err()
            || h.contains(|c: char| c.is_whitespace())
        {
            report.error(format!("routes[{route}].rewrite.host"), "not a valid host");
        }
    }
    Rewrite {
        strip_prefix,
        prefix,
        host,
    }
}

/// Every claim path the routes read per request: forwarded headers, `allow.claims`, and the tiers
/// and keys of their rate limits. Each verified token has them resolved once (see
/// `tollgate_auth::claims::Resolved`).
fn claims_read(routes: &[Route]) -> Vec<ClaimPath> {
    let mut paths = Vec::new();
    for route in routes {
        for (_, source) in &route.forward {
            if let identity::Source::Claim(path) = source {
                paths.push(path);
            }
        }
        if let Some(allow) = &route.allow {
            allow.claim_paths(&mut paths);
        }
        for policy in &route.rate_limits {
            policy.claim_paths(&mut paths);
        }
    }
    paths.into_iter().cloned().collect()
}

fn identity_headers(loaded: &Loaded, report: &mut Report<'_>) -> Vec<HeaderName> {
    let file = &loaded.file;
    let mut names = HashSet::new();
    let route_headers = file
        .routes
        .iter()
        .filter_map(|r| r.forward_headers.as_ref())
        .flat_map(|h| h.keys());
    for name in file.forward_headers.keys().chain(route_headers) {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => {
                names.insert(h);
            }
            Err(_) => report.error(
                "forward_headers",
                format!("not a valid header name: {name:?}"),
            ),
        }
    }
    names.into_iter().collect()
}

/// A route that captures `{tenant}` isolates tenants: without authentication every request
/// would pass that isolation unchecked.
fn tenant_routes(loaded: &Loaded, report: &mut Report<'_>) {
    for (i, r) in loaded.file.routes.iter().enumerate() {
        let captures_tenant = |p: &str| p.contains("{tenant}");
        let captures = captures_tenant(&r.matches.path)
            || r.matches.host.as_deref().is_some_and(captures_tenant);
        if captures && r.auth == tollgate_config::AuthMode::None {
            report.error(
                format!("routes[{i}].auth"),
                "a route that captures {tenant} admits only that tenant's callers: it needs auth: required or optional",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(strip: Option<&str>, prefix: Option<&str>) -> Rewrite {
        Rewrite {
            strip_prefix: strip.map(str::to_owned),
            prefix: prefix.map(str::to_owned),
            host: None,
        }
    }

    #[test]
    fn rewrite_prefixes_are_trimmed_and_must_be_normal() {
        let source = tollgate_config::SourceMap::default();
        let mut report = Report::new(&source);
        let rw = tollgate_config::Rewrite {
            strip_prefix: Some("/api/".into()),
            prefix: Some("/".into()),
            host: None,
        };
        let compiled = compile_rewrite(&rw, 0, &mut report);
        assert_eq!(compiled.path("/api/users"), "/users");
        assert!(report.is_empty());
        for bad in ["/v2/../x", "v2", "/v2//x", "/a%2Fb"] {
            let rw = tollgate_config::Rewrite {
                strip_prefix: None,
                prefix: Some(bad.into()),
                host: None,
            };
            let mut report = Report::new(&source);
            compile_rewrite(&rw, 0, &mut report);
            assert!(!report.is_empty(), "{bad}");
        }
    }

    #[test]
    fn rewrite_strips_and_prefixes_whole_segments() {
        assert_eq!(rw(Some("/api"), None).path("/api/users"), "/users");
        assert_eq!(rw(Some("/api"), None).path("/api"), "/");
        assert_eq!(rw(Some("/api"), None).path("/apix/users"), "/apix/users");
        assert_eq!(
            rw(Some("/api"), Some("/v2")).path("/api/users"),
            "/v2/users"
        );
        assert_eq!(rw(None, Some("/v2/")).path("/users"), "/v2/users");
        assert_eq!(rw(None, None).path("/users"), "/users");
    }
}
