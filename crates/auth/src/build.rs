//! From the `auth` section to an [`Authenticator`], reporting every problem with its YAML path.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use tollgate_config::{Auth, Provider as ProviderConfig, Report};

use crate::api_keys::ApiKeys;
use crate::claims::{ClaimPath, Resolved};
use crate::keys::KeySet;
use crate::remote::{Events, Location, Remote, Timing};
use crate::tenants::{self, Allowed, Overlapping, Template, Tenants};
use crate::token::parse_algorithm;
use crate::verify::Rules;
use crate::{Authenticator, Identity, Keys, Mapping, Provider, TokenCache};

/// The contract's default: every asymmetric algorithm, never HMAC.
const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
const DEFAULT_MAX_STALE: Duration = Duration::from_secs(3600);
const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(30);
/// Verified tokens remembered at most (about 1–2 KiB each with their claims).
pub const CACHE_ENTRIES: usize = 50_000;

/// What a remote provider's keys depend on: a reload that changes none of it keeps them.
#[derive(PartialEq)]
pub(crate) struct Fingerprint {
    issuer: String,
    /// The tenants accepted and `max_tenants`, for a multi-tenant provider.
    tenants: Option<(Allowed, usize)>,
    jwks_uri: Option<String>,
    tls: Option<tollgate_config::ClientTls>,
    timing: Timing,
}

/// What building needs besides the config.
pub struct Context<'a> {
    /// Where key fetches run; `None` (as for `tollgate validate`) fetches nothing.
    pub runtime: Option<&'a tokio::runtime::Handle>,
    pub events: Arc<dyn Events>,
    /// The running authenticator, whose unchanged remote providers keep their keys and whose
    /// token cache is kept.
    pub previous: Option<&'a Authenticator>,
    /// The claim paths the config reads on every request (forwarded headers, rules, tiers, rate
    /// limit keys): looked up once per verified token, not once per request.
    pub claims_read: Vec<ClaimPath>,
}

pub fn build(auth: &Auth, report: &mut Report<'_>, ctx: Context<'_>) -> Authenticator {
    let clock_skew = auth.clock_skew.map_or(DEFAULT_CLOCK_SKEW, |d| d.0);
    let timing = Timing {
        refresh_interval: auth.jwks.refresh_interval.map_or(DEFAULT_REFRESH, |d| d.0),
        max_stale: auth.jwks.max_stale.map_or(DEFAULT_MAX_STALE, |d| d.0),
        min_refetch_interval: auth
            .jwks
            .min_refetch_interval
            .map_or(DEFAULT_MIN_REFETCH, |d| d.0),
    };
    if timing.refresh_interval < Duration::from_secs(1) {
        report.error("auth.jwks.refresh_interval", "must be at least 1s");
    }
    if timing.max_stale < timing.refresh_interval {
        // Keys age from their last good fetch: shorter than one refresh, they would lapse
        // before every refresh even with a healthy issuer.
        report.error(
            "auth.jwks.max_stale",
            "must be at least refresh_interval (keys would expire between refreshes)",
        );
    }

    let mut providers = Vec::new();
    let mut by_issuer = HashMap::new();
    let mut templates = Vec::new();
    let mut names = HashSet::new();
    // One HTTP client for every provider without `tls` (building one reads the system's
    // roots), made on first need.
    let mut default_client = None;
    for (i, config) in auth.providers.iter().enumerate() {
        let at = format!("auth.providers[{i}]");
        if !names.insert(config.name.as_str()) {
            report.error(
                format!("{at}.name"),
                format!("duplicate provider name {}", config.name.quoted()),
            );
        }
        if config.name.as_str() == crate::API_KEY {
            report.error(
                format!("{at}.name"),
                "\"api_key\" is the name API-key callers get; choose another",
            );
        }
        if config.issuer.is_empty() {
            report.error(format!("{at}.issuer"), "must not be empty");
        }
        let tenancy = match tenancy(config, &at, report) {
            Ok(t) => t,
            Err(()) => continue,
        };
        // Two providers must never both claim one issuer: the later one is the error.
        let claims_same = |earlier: &Provider| match (&tenancy, &earlier.tenancy) {
            (None, None) => earlier.issuer == config.issuer.as_str(),
            (Some((t, allowed)), None) => {
                tenants::overlap(t, allowed, Overlapping::Literal(&earlier.issuer))
            }
            (None, Some((t, allowed))) => {
                tenants::overlap(t, allowed, Overlapping::Literal(config.issuer.as_str()))
            }
            (Some((a, a_allowed)), Some((b, b_allowed))) => {
                tenants::overlap(a, a_allowed, Overlapping::Template(b, b_allowed))
            }
        };
        if let Some(earlier) = providers.iter().find(|p| claims_same(p)) {
            let what = if tenancy.is_some() || earlier.tenancy.is_some() {
                "could claim the same issuers as"
            } else {
                "has the same issuer as"
            };
            report.error(
                format!("{at}.issuer"),
                format!(
                    "provider {} {what} provider {}",
                    config.name.quoted(),
                    earlier.name
                ),
            );
            continue;
        }
        let template = tenancy.is_some();
        let made = provider(
            config,
            tenancy,
            &at,
            (timing, clock_skew),
            &mut default_client,
            report,
            &ctx,
        );
        // Indexed only once built, so that an index always names its own provider.
        if let Some(provider) = made {
            if template {
                templates.push(providers.len());
            } else {
                by_issuer.insert(config.issuer.to_string(), providers.len());
            }
            providers.push(provider);
        }
    }

    let mut claims_read: Vec<ClaimPath> = Vec::new();
    for path in &ctx.claims_read {
        if !claims_read.iter().any(|p| p.same(path)) {
            claims_read.push(path.clone());
        }
    }
    let claims_read: Arc<[ClaimPath]> = claims_read.into();
    let api_keys = auth
        .api_keys
        .as_ref()
        .and_then(|k| api_keys(k, &claims_read, report));
    let cache = ctx.previous.map_or_else(
        || Arc::new(TokenCache::new(CACHE_ENTRIES)),
        |p| p.cache.clone(),
    );
    Authenticator {
        providers,
        by_issuer,
        templates,
        api_keys,
        cache,
        clock_skew: clock_skew.as_secs() as i64,
        claims_read,
    }
}

/// A `{tenant}` template with its tenants, or `None` for a plain issuer; `Err` once reported.
fn tenancy(
    config: &ProviderConfig,
    at: &str,
    report: &mut Report<'_>,
) -> Result<Option<(Template, Allowed)>, ()> {
    let template = match Template::parse(config.issuer.as_str()) {
        Ok(t) => t,
        Err(e) => {
            report.error(format!("{at}.issuer"), e);
            return Err(());
        }
    };
    let Some(template) = template else {
        if config
            .jwks_uri
            .as_ref()
            .is_some_and(|u| u.contains(tenants::PLACEHOLDER))
        {
            report.error(
                format!("{at}.jwks_uri"),
                "{tenant} in jwks_uri needs an issuer with {tenant}",
            );
            return Err(());
        }
        if config.tenants.is_some() || config.max_tenants.is_some() {
            report.error(
                format!("{at}.tenants"),
                "tenants and max_tenants need an issuer with {tenant}",
            );
            return Err(());
        }
        return Ok(None);
    };
    let allowed = match &config.tenants {
        None => {
            report.error(
                format!("{at}.tenants"),
                "an issuer with {tenant} needs tenants: [names] or tenants: any",
            );
            return Err(());
        }
        Some(tollgate_config::Tenants::Keyword(k)) if k.as_str() == "any" => Allowed::Any,
        Some(tollgate_config::Tenants::Keyword(k)) => {
            report.error(
                format!("{at}.tenants"),
                format!("expected a list of tenants or any, not {}", k.quoted()),
            );
            return Err(());
        }
        Some(tollgate_config::Tenants::List(list)) => {
            let mut names = HashSet::new();
            for (j, name) in list.iter().enumerate() {
                if !tenants::valid_tenant(name) {
                    report.error(
                        format!("{at}.tenants[{j}]"),
                        format!(
                            "{} is not a tenant name (1 to {} letters, digits, - and _)",
                            name.quoted(),
                            tenants::MAX_TENANT_LEN
                        ),
                    );
                } else if !names.insert(name.to_string()) {
                    report.error(
                        format!("{at}.tenants[{j}]"),
                        format!("duplicate tenant {}", name.quoted()),
                    );
                }
            }
            if list.is_empty() {
                report.error(format!("{at}.tenants"), "list at least one tenant (or any)");
                return Err(());
            }
            Allowed::List(names)
        }
    };
    match (config.max_tenants, &allowed) {
        (Some(0), _) => {
            report.error(format!("{at}.max_tenants"), "must be at least 1");
            return Err(());
        }
        (Some(max), Allowed::List(list)) if max < list.len() => {
            report.error(
                format!("{at}.max_tenants"),
                format!("{max} is fewer than the {} tenants listed", list.len()),
            );
            return Err(());
        }
        _ => {}
    }
    let discovery = per_tenant_keys(config) && config.jwks_uri.is_none();
    if discovery && !(config.issuer.starts_with("https://") || config.issuer.starts_with("http://"))
    {
        report.error(
            format!("{at}.issuer"),
            "OIDC discovery (no key source given) needs an http(s) issuer URL",
        );
        return Err(());
    }
    Ok(Some((template, allowed)))
}

fn provider(
    config: &ProviderConfig,
    tenancy: Option<(Template, Allowed)>,
    at: &str,
    (timing, clock_skew): (Timing, Duration),
    default_client: &mut Option<reqwest::Client>,
    report: &mut Report<'_>,
    ctx: &Context<'_>,
) -> Option<Provider> {
    let name: Arc<str> = config.name.as_str().into();
    let sources = [
        config.jwks_uri.is_some(),
        config.jwks_file.is_some(),
        config.public_key_file.is_some(),
        config.secret.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        report.error(
            at,
            "give at most one key source: jwks_uri, jwks_file, public_key_file or secret (none = OIDC discovery)",
        );
        return None;
    }

    let hmac = config.secret.is_some();
    let algorithms = match &config.algorithms {
        None if hmac => HMAC.to_vec(),
        None => DEFAULT_ALGORITHMS.to_vec(),
        Some(list) => {
            let mut algs = Vec::new();
            for (j, a) in list.iter().enumerate() {
                let path = format!("{at}.algorithms[{j}]");
                match parse_algorithm(a) {
                    None => report.error(path, format!("unknown algorithm {} (RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 EdDSA HS256 HS384 HS512)", a.quoted())),
                    Some(alg) if HMAC.contains(&alg) && !hmac => report.error(
                        path,
                        format!("{} needs a secret: HMAC is never verified with a public key", a.as_str()),
                    ),
                    Some(alg) if !HMAC.contains(&alg) && hmac => report.error(
                        path,
                        format!("a secret verifies only HS256, HS384 or HS512, not {}", a.as_str()),
                    ),
                    Some(alg) => algs.push(alg),
                }
            }
            if list.is_empty() {
                report.error(
                    format!("{at}.algorithms"),
                    "must list at least one algorithm",
                );
            }
            algs
        }
    };
    let audiences = config
        .audiences
        .iter()
        .flatten()
        .map(|a| a.to_string())
        .collect();
    let mapping = mapping(config, at, report)?;
    let rules = Rules {
        algorithms,
        audiences,
        clock_skew: clock_skew.as_secs() as i64,
    };
    // What a cached verification was checked against: a reload that changes it makes the
    // provider's cached tokens be verified again.
    let policy = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        format!("{rules:?} {mapping:?} {}", config.issuer.as_str()).hash(&mut h);
        h.finish()
    };
    let max_tenants = match &tenancy {
        Some((_, Allowed::List(list))) => config.max_tenants.unwrap_or(list.len()),
        _ => config.max_tenants.unwrap_or(tenants::DEFAULT_MAX_TENANTS),
    };
    let fingerprint = Fingerprint {
        issuer: config.issuer.to_string(),
        // Only keys per tenant depend on the tenant list; shared keys do not (the list is
        // checked on every request).
        tenants: tenancy
            .as_ref()
            .filter(|_| per_tenant_keys(config))
            .map(|(_, a)| (a.clone(), max_tenants)),
        jwks_uri: config.jwks_uri.as_ref().map(|u| u.to_string()),
        tls: config.tls.clone(),
        timing,
    };

    let keys = if let Some(path) = &config.jwks_file {
        let path_at = format!("{at}.jwks_file");
        match std::fs::read(path.as_str()) {
            Ok(bytes) => match KeySet::from_jwks(&bytes) {
                Ok((set, _)) => Keys::Static(Arc::new(set)),
                Err(e) => return error(report, path_at, e),
            },
            Err(e) => {
                return error(
                    report,
                    path_at,
                    format!("cannot read {}: {e}", path.quoted()),
                )
            }
        }
    } else if let Some(path) = &config.public_key_file {
        let path_at = format!("{at}.public_key_file");
        match std::fs::read(path.as_str()) {
            Ok(bytes) => match KeySet::from_pem(&bytes) {
                Ok(set) => Keys::Static(Arc::new(set)),
                Err(e) => return error(report, path_at, format!("{}: {e}", path.quoted())),
            },
            Err(e) => {
                return error(
                    report,
                    path_at,
                    format!("cannot read {}: {e}", path.quoted()),
                )
            }
        }
    } else if let Some(secret) = &config.secret {
        if secret.is_empty() {
            return error(report, format!("{at}.secret"), "must not be empty".into());
        }
        if secret.len() < 32 {
            // RFC 7518 §3.2 wants at least as many bytes as the hash output.
            tracing::warn!(provider = %name, "the HMAC secret is shorter than 32 bytes: easy to guess offline");
        }
        Keys::Static(Arc::new(KeySet::from_secret(secret.as_bytes())))
    } else if let Some((template, allowed)) = tenancy.as_ref().filter(|_| per_tenant_keys(config)) {
        // Keys of each tenant's own: discovery per concrete issuer, or `jwks_uri` with
        // `{tenant}`.
        let source = match &config.jwks_uri {
            Some(uri) if uri.starts_with("https://") || uri.starts_with("http://") => {
                tenants::KeySource::JwksUri(uri.to_string())
            }
            Some(_) => {
                return error(
                    report,
                    format!("{at}.jwks_uri"),
                    "must be an http:// or https:// URL".into(),
                )
            }
            None => tenants::KeySource::Discovery,
        };
        let previous = ctx.previous.and_then(|p| {
            p.providers.iter().find_map(|old| match &old.keys {
                Keys::PerTenant(t) if *old.name == *name => Some((old, t.clone())),
                _ => None,
            })
        });
        match (previous, ctx.runtime) {
            (Some((old, tenants)), _) if old.fingerprint == fingerprint => Keys::PerTenant(tenants),
            (previous, Some(runtime)) => {
                let client = client(config, at, default_client, report)?;
                let factory = tenants::Factory {
                    provider: name.clone(),
                    template: template.clone(),
                    source,
                    tls: config.tls.clone(),
                    timing,
                    client,
                    runtime: runtime.clone(),
                    events: ctx.events.clone(),
                };
                Keys::PerTenant(Arc::new(Tenants::new(
                    allowed.clone(),
                    max_tenants,
                    factory,
                    previous.as_ref().map(|(_, t)| t.as_ref()),
                )))
            }
            (_, None) => {
                // `validate`: nothing is fetched, but the tls files are checked.
                client(config, at, default_client, report)?;
                Keys::Pending
            }
        }
    } else {
        let location = match &config.jwks_uri {
            Some(uri) => {
                if !uri.starts_with("https://") && !uri.starts_with("http://") {
                    return error(
                        report,
                        format!("{at}.jwks_uri"),
                        "must be an http:// or https:// URL".into(),
                    );
                }
                Location::JwksUri(uri.to_string())
            }
            None => {
                if !config.issuer.starts_with("https://") && !config.issuer.starts_with("http://") {
                    return error(
                        report,
                        format!("{at}.issuer"),
                        "OIDC discovery (no key source given) needs an http(s) issuer URL".into(),
                    );
                }
                Location::Discovery {
                    issuer: config.issuer.to_string(),
                }
            }
        };
        let reused = ctx.previous.and_then(|p| {
            p.providers.iter().find_map(|old| match &old.keys {
                Keys::Remote(r) if old.fingerprint == fingerprint && *old.name == *name => {
                    Some(r.clone())
                }
                _ => None,
            })
        });
        // The HTTP client (which reads the system's roots: milliseconds) is built only for
        // keys that are fetched anew, so that a reload of unchanged providers stays cheap.
        match (reused, ctx.runtime) {
            (Some(remote), _) => Keys::Remote(remote),
            (None, Some(runtime)) => Keys::Remote(Remote::start(
                name.clone(),
                location,
                timing,
                client(config, at, default_client, report)?,
                runtime.clone(),
                ctx.events.clone(),
            )),
            (None, None) => {
                client(config, at, default_client, report)?;
                Keys::Pending
            }
        }
    };
    Some(Provider {
        name,
        issuer: config.issuer.to_string(),
        tenancy,
        rules,
        mapping,
        keys,
        fingerprint,
        policy,
    })
}

/// Whether a template provider's tenants have keys of their own: discovery per tenant, or a
/// `jwks_uri` with `{tenant}` (a static source or a plain `jwks_uri` is shared by all).
fn per_tenant_keys(config: &ProviderConfig) -> bool {
    config.jwks_file.is_none()
        && config.public_key_file.is_none()
        && config.secret.is_none()
        && config
            .jwks_uri
            .as_ref()
            .is_none_or(|u| u.contains(tenants::PLACEHOLDER))
}

fn error<T>(report: &mut Report<'_>, path: String, message: String) -> Option<T> {
    report.error(path, message);
    None
}

fn mapping(config: &ProviderConfig, at: &str, report: &mut Report<'_>) -> Option<Mapping> {
    let claims = config.claims.as_ref();
    let mut ok = true;
    let mut path =
        |key: &str, given: Option<&tollgate_config::Text>, default: &[&str]| -> Vec<ClaimPath> {
            match given {
                Some(text) => match ClaimPath::parse(text) {
                    Ok(p) => vec![p],
                    Err(e) => {
                        let e = if text.substituted() {
                            format!("not a claim path: {}", text.quoted())
                        } else {
                            e
                        };
                        report.error(format!("{at}.claims.{key}"), e);
                        ok = false;
                        Vec::new()
                    }
                },
                None => default
                    .iter()
                    .filter_map(|d| ClaimPath::parse(d).ok())
                    .collect(),
            }
        };
    let subject = path("subject", claims.and_then(|c| c.subject.as_ref()), &["sub"]);
    let roles = path("roles", claims.and_then(|c| c.roles.as_ref()), &["roles"]);
    // `scope` (RFC 8693), or Azure AD's `scp`.
    let scopes = path(
        "scopes",
        claims.and_then(|c| c.scopes.as_ref()),
        &["scope", "scp"],
    );
    // `azp` (OIDC), or `client_id` (RFC 9068).
    let client = path(
        "client",
        claims.and_then(|c| c.client.as_ref()),
        &["azp", "client_id"],
    );
    if !ok {
        return None;
    }
    Some(Mapping {
        subject: subject.into_iter().next()?,
        roles: roles.into_iter().next(),
        scopes,
        client,
    })
}

/// The HTTP client for discovery and JWKS: no redirects (a key document that moves elsewhere
/// is refused), a time limit, and the provider's `tls`.
fn client(
    config: &ProviderConfig,
    at: &str,
    default_client: &mut Option<reqwest::Client>,
    report: &mut Report<'_>,
) -> Option<reqwest::Client> {
    if config.tls.is_none() {
        if let Some(c) = default_client {
            return Some(c.clone());
        }
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(crate::remote::FETCH_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .user_agent("tollgate");
    if let Some(tls) = &config.tls {
        if let Some(ca) = &tls.ca_file {
            let cert = std::fs::read(ca.as_str())
                .map_err(|e| format!("cannot read {}: {e}", ca.quoted()))
                .and_then(|pem| {
                    reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|_| format!("{} is not a PEM certificate", ca.quoted()))
                });
            match cert {
                Ok(certs) => {
                    for c in certs {
                        builder = builder.add_root_certificate(c);
                    }
                }
                Err(e) => return error(report, format!("{at}.tls.ca_file"), e),
            }
        }
        match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let pem = std::fs::read(cert.as_str()).and_then(|mut c| {
                    c.push(b'\n');
                    c.extend(std::fs::read(key.as_str())?);
                    Ok(c)
                });
                match pem.map_err(|e| e.to_string()).and_then(|p| {
                    reqwest::Identity::from_pem(&p)
                        .map_err(|_| "not a PEM certificate and key".to_owned())
                }) {
                    Ok(identity) => builder = builder.identity(identity),
                    Err(e) => return error(report, format!("{at}.tls.cert_file"), e),
                }
            }
            (None, None) => {}
            _ => {
                return error(
                    report,
                    format!("{at}.tls"),
                    "cert_file and key_file go together".into(),
                )
            }
        }
        if tls.insecure_skip_verify {
            tracing::warn!(
                provider = %config.name.as_str(),
                "tls.insecure_skip_verify: the certificates of this issuer's key server are NOT checked; anyone on the path can serve keys and mint accepted tokens"
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
    }
    match builder.build() {
        Ok(c) => {
            if config.tls.is_none() {
                *default_client = Some(c.clone());
            }
            Some(c)
        }
        Err(e) => error(
            report,
            format!("{at}.tls"),
            format!("cannot build the HTTP client: {e}"),
        ),
    }
}

fn api_keys(
    config: &tollgate_config::ApiKeys,
    claims_read: &Arc<[ClaimPath]>,
    report: &mut Report<'_>,
) -> Option<ApiKeys> {
    let header_text = config.header.as_ref().map_or("X-API-Key", |h| h.as_str());
    let header = match HeaderName::from_bytes(header_text.as_bytes()) {
        Ok(h) if h != http::header::AUTHORIZATION => h,
        _ => {
            report.error(
                "auth.api_keys.header",
                format!("not a usable header name: {header_text:?}"),
            );
            return None;
        }
    };
    if config.keys.is_empty() {
        report.error("auth.api_keys.keys", "list at least one key");
    }
    let mut ids = HashSet::new();
    let mut hashes = HashSet::new();
    let mut keys = Vec::new();
    for (i, key) in config.keys.iter().enumerate() {
        let at = format!("auth.api_keys.keys[{i}]");
        if key.id.is_empty() || !ids.insert(key.id.as_str()) {
            report.error(
                format!("{at}.id"),
                format!("empty or duplicate id {}", key.id.quoted()),
            );
        }
        let hash = match (&key.key, &key.sha256) {
            (Some(k), None) if !k.is_empty() => crate::sha256(k.as_bytes()),
            (None, Some(hex)) => match decode_hex(hex) {
                Some(h) => h,
                None => {
                    report.error(
                        format!("{at}.sha256"),
                        "must be 64 hex digits (the SHA-256 of the key)",
                    );
                    continue;
                }
            },
            _ => {
                report.error(&at, "give exactly one of key (non-empty) or sha256");
                continue;
            }
        };
        if !hashes.insert(hash) {
            report.error(&at, "the same key is listed twice");
        }
        let mut claims = match &key.claims {
            None => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(_) => {
                report.error(
                    format!("{at}.claims"),
                    "must be a mapping of claim names to values",
                );
                continue;
            }
        };
        let subject = key
            .subject
            .as_ref()
            .map_or(key.id.to_string(), |s| s.to_string());
        claims.insert("sub".into(), Value::String(subject.clone()));
        if let Some(tenant) = &key.tenant {
            claims
                .entry("tenant")
                .or_insert_with(|| Value::String(tenant.to_string()));
        }
        let strings = |name: &str| {
            ClaimPath::parse(name)
                .map(|p| p.strings(&claims))
                .unwrap_or_default()
        };
        if let Some(tenant) = key.tenant.as_ref().filter(|t| !tenants::valid_tenant(t)) {
            report.error(
                format!("{at}.tenant"),
                format!(
                    "{} is not a tenant name (letters, digits, - and _)",
                    tenant.quoted()
                ),
            );
        }
        let identity = Identity {
            provider: crate::API_KEY.into(),
            tenant: key.tenant.as_ref().map(|t| Arc::from(t.as_str())),
            subject: Some(subject),
            client: Some(key.id.to_string()),
            roles: strings("roles"),
            scopes: {
                let s = strings("scopes");
                if s.is_empty() {
                    strings("scope")
                } else {
                    s
                }
            },
            resolved: Resolved::new(claims_read, &claims),
            claims,
        };
        keys.push((hash, Arc::new(identity)));
    }
    Some(ApiKeys::new(header, keys))
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}
