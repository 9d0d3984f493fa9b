//! Authentication: who is calling, proven by a bearer JWT from one of several issuers or by an
//! API key.
//!
//! [`Authenticator::authenticate`] is the whole stage: credentials taken from the request
//! ([`credentials`]), the issuer picked by the token's unverified `iss` (exact match), the key
//! by `kid` within that issuer only, the signature and claims checked ([`verify`]), and the
//! caller's [`Identity`] built through the provider's claim mapping. A verified token is cached
//! (by its SHA-256) until it expires or its key leaves the issuer's set.

pub mod api_keys;
mod build;
pub mod claims;
pub mod keys;
pub mod remote;
pub mod tenants;
pub mod token;
pub mod verify;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use http::{HeaderMap, HeaderName};
use serde_json::{Map, Value};

pub use build::{build, Context};
use claims::{ClaimPath, Claims, Resolved};
use keys::KeySet;
use remote::{Current, Remote};
use tenants::{Allowed, Refusal, Template, Tenants};
use token::Token;
use verify::{Failure, Rules};

/// The provider name of API-key callers.
pub const API_KEY: &str = "api_key";

/// The authenticated caller, as the later stages see it.
#[derive(Debug)]
pub struct Identity {
    /// The provider's name, or `api_key`.
    pub provider: Arc<str>,
    /// `$tenant`: from a multi-tenant provider's issuer, or an API key's `tenant`.
    pub tenant: Option<Arc<str>>,
    pub subject: Option<String>,
    pub client: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub claims: Map<String, Value>,
    /// The config's per-request claim paths, looked up at verification (see [`Identity::claim`]).
    pub resolved: Resolved,
}

impl Claims for Identity {
    /// The value at `path`: resolved when the token was verified if the config reads it on
    /// every request, else looked up in the claims. The same value either way.
    fn claim(&self, path: &ClaimPath) -> Option<&Value> {
        match self.resolved.get(path) {
            Some(value) => value,
            None => path.lookup(&self.claims),
        }
    }
}

/// A refusal by this stage: 400, 401 or 503, with the RFC 6750 error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub status: u16,
    /// `invalid_request`, `invalid_token` or `temporarily_unavailable`.
    pub code: &'static str,
    /// What failed; never the token.
    pub description: Cow<'static, str>,
    pub retry_after: Option<u64>,
    /// The provider the token was for, when one was found (for metrics).
    pub provider: Option<Arc<str>>,
}

impl AuthError {
    fn bad_request(description: &'static str) -> AuthError {
        AuthError {
            status: 400,
            code: "invalid_request",
            description: description.into(),
            retry_after: None,
            provider: None,
        }
    }

    fn invalid(
        description: impl Into<Cow<'static, str>>,
        provider: Option<&Arc<str>>,
    ) -> AuthError {
        AuthError {
            status: 401,
            code: "invalid_token",
            description: description.into(),
            retry_after: None,
            provider: provider.cloned(),
        }
    }
}

/// What the request carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    None,
    Bearer(&'a str),
    ApiKey(&'a [u8]),
}

/// The credentials of a request: at most one `Authorization: Bearer` header or one API key
/// header, never both (400).
pub fn credentials<'a>(
    headers: &'a HeaderMap,
    api_key_header: Option<&HeaderName>,
) -> Result<Credentials<'a>, AuthError> {
    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    let bearer = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(AuthError::bad_request("more than one Authorization header"))
        }
        (Some(value), None) => {
            let text = value
                .to_str()
                .map_err(|_| AuthError::invalid("Authorization header is not ASCII", None))?;
            let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(AuthError {
                    status: 401,
                    code: "invalid_request",
                    description: "only Bearer tokens are accepted in Authorization".into(),
                    retry_after: None,
                    provider: None,
                });
            }
            let token = token.trim_start_matches(' ');
            if token.is_empty() {
                return Err(AuthError::invalid("empty bearer token", None));
            }
            Some(token)
        }
    };
    let api_key = match api_key_header {
        None => None,
        Some(name) => {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (None, _) => None,
                (Some(_), Some(_)) => {
                    return Err(AuthError::bad_request("more than one API key header"))
                }
                (Some(v), None) => Some(v.as_bytes()),
            }
        }
    };
    match (bearer, api_key) {
        (Some(_), Some(_)) => Err(AuthError::bad_request(
            "a request carries a bearer token or an API key, not both",
        )),
        (Some(token), None) => Ok(Credentials::Bearer(token)),
        (None, Some(key)) => Ok(Credentials::ApiKey(key)),
        (None, None) => Ok(Credentials::None),
    }
}

/// One configured issuer, or a template of issuers (one per tenant).
pub struct Provider {
    pub name: Arc<str>,
    pub issuer: String,
    /// For a multi-tenant provider: the `{tenant}` template and the tenants accepted.
    pub tenancy: Option<(Template, Allowed)>,
    rules: Rules,
    mapping: Mapping,
    keys: Keys,
    /// What decides whether a reload may keep this provider's remote keys.
    fingerprint: build::Fingerprint,
    /// A hash of the checks and claim mapping its tokens pass through: a cached verification
    /// made under other ones is not used.
    policy: u64,
}

/// Where a provider's claims are (the `claims` mapping).
#[derive(Debug, Clone)]
pub struct Mapping {
    pub subject: ClaimPath,
    pub roles: Option<ClaimPath>,
    pub scopes: Vec<ClaimPath>,
    pub client: Vec<ClaimPath>,
}

enum Keys {
    /// `jwks_file`, `public_key_file` or `secret`: read at load (and at every reload).
    Static(Arc<KeySet>),
    Remote(Arc<Remote>),
    /// Each tenant's issuer has keys of its own (discovery, or `jwks_uri` with `{tenant}`).
    PerTenant(Arc<Tenants>),
    /// A remote source in a config that is only checked (`tollgate validate`): never fetched.
    Pending,
}

impl Provider {
    /// Whether the provider has keys now (`/readyz`).
    pub fn ready(&self) -> bool {
        match &self.keys {
            Keys::Static(_) => true,
            Keys::Remote(r) => matches!(r.current(), Current::Keys(_)),
            Keys::PerTenant(t) => t.waiting().is_empty(),
            Keys::Pending => false,
        }
    }

    /// The concrete issuers of a multi-tenant provider with keys per tenant.
    pub fn tenants(&self) -> Option<&Tenants> {
        match &self.keys {
            Keys::PerTenant(t) => Some(t),
            _ => None,
        }
    }

    /// The number of keys of a provider whose keys come from a file or a secret.
    pub fn static_keys(&self) -> Option<usize> {
        match &self.keys {
            Keys::Static(keys) => Some(keys.len()),
            _ => None,
        }
    }

    /// Why it is not ready, if it is not (`/readyz`).
    pub fn waiting_for(&self) -> Option<String> {
        if let Keys::PerTenant(t) = &self.keys {
            let waiting = t.waiting();
            return (!waiting.is_empty()).then(|| {
                format!(
                    "provider {}: no keys yet for tenants {}",
                    self.name,
                    waiting.join(", ")
                )
            });
        }
        (!self.ready()).then(|| format!("provider {}: no keys yet", self.name))
    }

    fn identity(
        &self,
        claims: Map<String, Value>,
        tenant: Option<&str>,
        read: &Arc<[ClaimPath]>,
    ) -> Identity {
        let first = |paths: &[ClaimPath]| paths.iter().find_map(|p| p.string(&claims));
        Identity {
            resolved: Resolved::new(read, &claims),
            provider: self.name.clone(),
            tenant: tenant.map(Arc::from),
            subject: self.mapping.subject.string(&claims),
            client: first(&self.mapping.client),
            roles: self
                .mapping
                .roles
                .as_ref()
                .map(|p| p.strings(&claims))
                .unwrap_or_default(),
            scopes: self
                .mapping
                .scopes
                .iter()
                .map(|p| p.strings(&claims))
                .find(|s| !s.is_empty())
                .unwrap_or_default(),
            claims,
        }
    }
}

/// A verified token, remembered by the SHA-256 of its text.
struct Cached {
    identity: Arc<Identity>,
    policy: u64,
    kid: Option<String>,
    key_serial: u64,
    exp: i64,
    nbf: Option<i64>,
}

/// Verified tokens, shared across reloads. Bounded: past the cap, expired entries go first,
/// then half of the rest.
pub struct TokenCache {
    entries: DashMap<[u8; 32], Cached>,
    cap: usize,
    /// Bearer tokens answered from the cache, and verified afresh (since the process started).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    pub fn new(cap: usize) -> TokenCache {
        TokenCache {
            entries: DashMap::new(),
            cap,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// (hits, misses) so far: bearer tokens answered from the cache, and verified afresh.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&self, key: [u8; 32], entry: Cached, now: i64) {
        if self.entries.len() >= self.cap {
            self.entries.retain(|_, c| c.exp > now);
            if self.entries.len() >= self.cap {
                let mut drop_this = false;
                self.entries.retain(|_, _| {
                    drop_this = !drop_this;
                    !drop_this
                });
            }
        }
        self.entries.insert(key, entry);
    }
}

pub struct Authenticator {
    providers: Vec<Provider>,
    by_issuer: HashMap<String, usize>,
    /// The multi-tenant providers, tried after the exact issuers.
    templates: Vec<usize>,
    api_keys: Option<api_keys::ApiKeys>,
    cache: Arc<TokenCache>,
    clock_skew: i64,
    /// The claim paths the config reads on every request: resolved in each new identity.
    claims_read: Arc<[ClaimPath]>,
}

/// How a request was authenticated, for metrics and the access log.
pub enum Outcome {
    Ok(Arc<Identity>),
    Refused(AuthError),
}

impl Authenticator {
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The API key header, if API keys are configured.
    pub fn api_key_header(&self) -> Option<&HeaderName> {
        self.api_keys.as_ref().map(|k| &k.header)
    }

    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }

    /// Checks the credentials; `Credentials::None` is the caller's business (anonymous or 401
    /// by the route's mode) and never reaches here.
    pub async fn authenticate(
        &self,
        credentials: &Credentials<'_>,
        now: i64,
    ) -> Result<Arc<Identity>, AuthError> {
        match credentials {
            Credentials::None => Err(AuthError::invalid("no credentials", None)),
            Credentials::ApiKey(key) => self
                .api_keys
                .as_ref()
                .and_then(|keys| keys.find(key))
                .ok_or_else(|| AuthError::invalid("unknown API key", Some(&API_KEY.into()))),
            Credentials::Bearer(text) => self.bearer(text, now).await,
        }
    }

    /// The provider of an issuer: an exact one, else the multi-tenant provider whose template
    /// it fits (at most one can: overlapping providers are a config error), with the tenant.
    fn provider_of<'t>(&self, iss: &'t str) -> Option<(&Provider, Option<&'t str>)> {
        if let Some(p) = self.by_issuer.get(iss).and_then(|&i| self.providers.get(i)) {
            return Some((p, None));
        }
        // Two templates may fit one issuer when their tenant lists keep them apart: the
        // provider is the one that accepts this tenant.
        self.templates.iter().find_map(|&i| {
            let provider = self.providers.get(i)?;
            let (template, allowed) = provider.tenancy.as_ref()?;
            let tenant = template.tenant_of(iss).filter(|t| allowed.contains(t))?;
            Some((provider, Some(tenant)))
        })
    }

    async fn bearer(&self, text: &str, now: i64) -> Result<Arc<Identity>, AuthError> {
        let digest = sha256(text.as_bytes());
        if let Some(hit) = self.cached(&digest, now) {
            self.cache.hits.fetch_add(1, Ordering::Relaxed);
            return hit;
        }
        self.cache.misses.fetch_add(1, Ordering::Relaxed);
        let token = Token::parse(text).map_err(|e| AuthError::invalid(e, None))?;
        // The issuer by the unverified `iss`, exactly; its keys are the only ones tried.
        let not_accepted = || AuthError::invalid("token issuer is not accepted", None);
        let (provider, tenant) = self.provider_of(&token.iss).ok_or_else(not_accepted)?;
        if let (Some((_, allowed)), Some(t)) = (&provider.tenancy, tenant) {
            if !allowed.contains(t) {
                return Err(not_accepted());
            }
        }
        let invalid = |e: &'static str| AuthError::invalid(e, Some(&provider.name));
        let verified = match &provider.keys {
            Keys::Static(keys) => {
                verify::verify(&token, keys, &provider.rules, now).map_err(|f| match f {
                    Failure::UnknownKey => invalid("no key of this issuer matches the token"),
                    Failure::Invalid(e) => invalid(e),
                })?
            }
            Keys::Remote(remote) => verify_remote(remote, &token, provider, now).await?,
            Keys::PerTenant(tenants) => {
                let tenant = tenant.ok_or_else(not_accepted)?;
                let remote = tenants.remote(tenant).await.map_err(|r| match r {
                    Refusal::Unknown => not_accepted(),
                    Refusal::Outage(retry) => unavailable(provider, retry),
                })?;
                let verified = verify_remote(&remote, &token, provider, now).await?;
                tenants.touch(tenant);
                verified
            }
            Keys::Pending => return Err(unavailable(provider, 1)),
        };
        let kid = token.kid.clone();
        let identity = Arc::new(provider.identity(token.claims, tenant, &self.claims_read));
        self.cache.insert(
            digest,
            Cached {
                identity: identity.clone(),
                policy: provider.policy,
                kid,
                key_serial: verified.key.serial,
                exp: verified.exp,
                nbf: verified.nbf,
            },
            now,
        );
        Ok(identity)
    }

    /// A cached verification, if its provider still has the key that made it; the times are
    /// checked again on every hit.
    fn cached(&self, digest: &[u8; 32], now: i64) -> Option<Result<Arc<Identity>, AuthError>> {
        let entry = self.cache.entries.get(digest)?;
        let provider = self
            .providers
            .iter()
            .find(|p| p.name == entry.identity.provider && p.policy == entry.policy)?;
        let has_key = |keys: Option<Arc<KeySet>>| {
            keys.is_some_and(|k| k.contains(entry.kid.as_deref(), entry.key_serial))
        };
        let still_there = match &provider.keys {
            Keys::Static(keys) => keys.contains(entry.kid.as_deref(), entry.key_serial),
            Keys::Remote(remote) => has_key(remote.keys()),
            // Only while the tenant's issuer is in use: an evicted one is looked up again.
            Keys::PerTenant(tenants) => {
                let tenant = entry.identity.tenant.as_deref();
                let found = has_key(
                    tenant
                        .and_then(|t| tenants.existing(t))
                        .and_then(|r| r.keys()),
                );
                if let (true, Some(t)) = (found, tenant) {
                    tenants.touch(t);
                }
                found
            }
            Keys::Pending => false,
        };
        if !still_there {
            return None;
        }
        Some(
            verify::check_times(entry.exp, entry.nbf, now, self.clock_skew)
                .map(|()| entry.identity.clone())
                .map_err(|e| AuthError::invalid(e, Some(&provider.name))),
        )
    }
}

/// Verifies with an issuer's remote keys; an unknown `kid` makes the keys be fetched again
/// (once, for all waiting requests) and the token tried once more.
async fn verify_remote(
    remote: &Arc<Remote>,
    token: &Token<'_>,
    provider: &Provider,
    now: i64,
) -> Result<verify::Verified, AuthError> {
    let invalid = |f: Failure| {
        let e = match f {
            Failure::UnknownKey => "no key of this issuer matches the token",
            Failure::Invalid(e) => e,
        };
        AuthError::invalid(e, Some(&provider.name))
    };
    let keys = current(remote, provider)?;
    match verify::verify(token, &keys, &provider.rules, now) {
        Err(Failure::UnknownKey) => {
            remote.refetch().await;
            let keys = current(remote, provider)?;
            verify::verify(token, &keys, &provider.rules, now).map_err(invalid)
        }
        other => other.map_err(invalid),
    }
}

fn current(remote: &Remote, provider: &Provider) -> Result<Arc<KeySet>, AuthError> {
    match remote.current() {
        Current::Keys(keys) => Ok(keys),
        // Not the token's fault: 503, so that clients keep good tokens (contract "Outages").
        Current::Unavailable { retry_after } => Err(unavailable(provider, retry_after)),
    }
}

fn unavailable(provider: &Provider, retry_after: u64) -> AuthError {
    AuthError {
        status: 503,
        code: "temporarily_unavailable",
        description: "the token issuer's keys are not available yet".into(),
        retry_after: Some(retry_after),
        provider: Some(provider.name.clone()),
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests;
