//! Multi-tenant issuers: one provider whose `issuer` is a template with a `{tenant}`
//! placeholder (`https://kc.example.com/realms/{tenant}`), standing for one concrete issuer
//! per tenant.
//!
//! A token's `iss` fits a template only if the placeholder's place holds one tenant name: a
//! whole path segment or host label of letters, digits, `-` and `_` (no `.`, `/`, `%`), so
//! that `realms/a/../b` or `realms/a%2Fb` never fit. Each concrete issuer whose keys are its
//! own (discovery, or a `jwks_uri` with `{tenant}`) gets the full key lifecycle of
//! [`Remote`], created on first use under `tenants: any` or at start for a tenant list, at
//! most `max_tenants` of them (the least recently used goes). A name that turns out not to be
//! an issuer (404, or a discovery document for another issuer) is remembered for
//! `min_refetch_interval` (up to [`MAX_FAILED`] names), so a flood of made-up tenants costs one
//! fetch per name, and at most [`PROBES`] such fetches run at once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::{OnceCell, Semaphore};

use crate::remote::{Events, Location, Probe, Remote, Timing};

/// The placeholder.
pub const PLACEHOLDER: &str = "{tenant}";
/// `max_tenants` when none is given.
pub const DEFAULT_MAX_TENANTS: usize = 1000;
/// Longest tenant name accepted.
pub const MAX_TENANT_LEN: usize = 128;
/// Concrete issuers of one provider being looked up for the first time at once.
pub const PROBES: usize = 8;
/// Names remembered as failed, at most (about 200 bytes each).
pub const MAX_FAILED: usize = 10_000;
/// How long a first lookup waits for one of the [`PROBES`] permits.
const PERMIT_WAIT: Duration = Duration::from_secs(2);
/// How long an issuer that failed with an outage (network error, 5xx) is not asked again.
const OUTAGE_MEMORY: Duration = Duration::from_secs(1);

/// Characters that separate the tokens of an issuer URL; a tenant contains none of them.
const DELIMITERS: &[char] = &['/', '.', ':', '?', '#', '@', '%'];

/// An issuer with one `{tenant}`: the text before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    prefix: String,
    suffix: String,
}

impl Template {
    /// `Ok(None)` for an issuer without a placeholder.
    pub fn parse(issuer: &str) -> Result<Option<Template>, String> {
        let Some((prefix, suffix)) = issuer.split_once(PLACEHOLDER) else {
            return Ok(None);
        };
        if suffix.contains(PLACEHOLDER) {
            return Err("only one {tenant} per issuer".into());
        }
        let whole_token = prefix.ends_with(['/', '.'])
            && suffix
                .chars()
                .next()
                .is_none_or(|c| DELIMITERS.contains(&c));
        if !whole_token || !prefix.contains("://") {
            return Err(
                "{tenant} must be a whole path segment or host label of an http(s) URL".into(),
            );
        }
        if prefix.ends_with("://") && !suffix.starts_with('.') {
            return Err("{tenant} cannot be the whole host: it is one label of it".into());
        }
        Ok(Some(Template {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        }))
    }

    /// The tenant of an issuer that fits this template exactly.
    pub fn tenant_of<'a>(&self, iss: &'a str) -> Option<&'a str> {
        let tenant = iss.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        valid_tenant(tenant).then_some(tenant)
    }

    /// The concrete issuer of a tenant.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}{tenant}{}", self.prefix, self.suffix)
    }

    fn tokens(&self) -> Vec<Token<'_>> {
        let mut out = tokens(&self.prefix);
        out.push(Token::Tenant);
        out.extend(tokens(&self.suffix));
        out
    }
}

/// Whether `name` can be a tenant: 1 to 128 letters, digits, `-` and `_`.
pub fn valid_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TENANT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Text(&'a str),
    Delimiter(char),
    Tenant,
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if DELIMITERS.contains(&c) {
            if start < i {
                out.push(Token::Text(&text[start..i]));
            }
            out.push(Token::Delimiter(c));
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(Token::Text(&text[start..]));
    }
    out
}

/// Which tenants a provider accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Any,
    List(HashSet<String>),
}

impl Allowed {
    pub fn contains(&self, tenant: &str) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::List(list) => list.contains(tenant),
        }
    }
}

/// Whether one issuer could fit both `a` (with its tenants) and `b` (a template with its
/// tenants, or a literal issuer): two providers would claim it.
pub fn overlap(a: &Template, a_allowed: &Allowed, b: Overlapping<'_>) -> bool {
    match b {
        Overlapping::Literal(issuer) => a.tenant_of(issuer).is_some_and(|t| a_allowed.contains(t)),
        Overlapping::Template(b, b_allowed) => {
            let (ta, tb) = (a.tokens(), b.tokens());
            if ta.len() != tb.len() {
                return false;
            }
            // What each side's tenant would have to be for the two to meet.
            let (mut need_a, mut need_b, mut same_place) = (None, None, false);
            for (x, y) in ta.iter().zip(&tb) {
                match (x, y) {
                    (Token::Tenant, Token::Tenant) => same_place = true,
                    (Token::Tenant, Token::Text(t)) => need_a = Some(*t),
                    (Token::Text(t), Token::Tenant) => need_b = Some(*t),
                    (x, y) if x == y => {}
                    _ => return false,
                }
            }
            let fits = |t: &str, allowed: &Allowed| valid_tenant(t) && allowed.contains(t);
            if same_place {
                return match (a_allowed, b_allowed) {
                    (Allowed::List(x), Allowed::List(y)) => !x.is_disjoint(y),
                    (Allowed::List(x), Allowed::Any) | (Allowed::Any, Allowed::List(x)) => {
                        x.iter().any(|t| valid_tenant(t))
                    }
                    (Allowed::Any, Allowed::Any) => true,
                };
            }
            need_a.is_some_and(|t| fits(t, a_allowed)) && need_b.is_some_and(|t| fits(t, b_allowed))
        }
    }
}

/// The other side of [`overlap`].
pub enum Overlapping<'a> {
    Literal(&'a str),
    Template(&'a Template, &'a Allowed),
}

/// Where a tenant's own keys are: discovery of its issuer, or a `jwks_uri` with `{tenant}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Discovery,
    JwksUri(String),
}

/// How the concrete issuers of a provider are made.
pub struct Factory {
    pub provider: Arc<str>,
    pub template: Template,
    pub source: KeySource,
    /// The provider's `tls`, which `client` was built with.
    pub tls: Option<tollgate_config::ClientTls>,
    pub timing: Timing,
    pub client: reqwest::Client,
    pub runtime: tokio::runtime::Handle,
    pub events: Arc<dyn Events>,
}

impl Factory {
    fn remote(&self, tenant: &str) -> Arc<Remote> {
        let location = match &self.source {
            KeySource::Discovery => Location::Discovery {
                issuer: self.template.issuer(tenant),
            },
            KeySource::JwksUri(uri) => Location::JwksUri(uri.replace(PLACEHOLDER, tenant)),
        };
        Remote::new(
            self.provider.clone(),
            Some(tenant.into()),
            location,
            self.timing,
            self.client.clone(),
            self.runtime.clone(),
            self.events.clone(),
        )
    }
}

/// A concrete issuer in use.
struct Live {
    remote: Arc<Remote>,
    /// Milliseconds since [`Tenants::epoch`] of its last use.
    used: AtomicU64,
}

/// Why a tenant's keys cannot be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an issuer (404, or another issuer's discovery document), or not on the list: 401.
    Unknown,
    /// Its issuer could not be reached: 503, retry after this many seconds.
    Outage(u64),
}

/// One first lookup of a tenant's issuer, shared by its callers.
type Lookup = OnceCell<Result<Arc<Remote>, Refusal>>;

/// The concrete issuers of one provider whose tenants have keys of their own.
pub struct Tenants {
    pub allowed: Allowed,
    max: usize,
    factory: Factory,
    live: DashMap<String, Live>,
    /// Names that failed lately: until when, and how.
    failed: DashMap<String, (Instant, Refusal)>,
    /// First lookups in flight, one per name; later callers for the name wait for it.
    probes: DashMap<String, Arc<Lookup>>,
    permits: Semaphore,
    epoch: Instant,
}

/// One concrete issuer as `GET /tenants` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantState {
    pub tenant: String,
    pub issuer: String,
    /// Keys usable now; `None` while it has none.
    pub keys: Option<usize>,
}

impl Tenants {
    /// With a tenant list, every listed issuer starts fetching now; `previous`'s issuers of
    /// tenants still accepted, with the same key source, are kept with their keys.
    pub fn new(
        allowed: Allowed,
        max: usize,
        factory: Factory,
        previous: Option<&Tenants>,
    ) -> Tenants {
        let tenants = Tenants {
            allowed,
            max,
            factory,
            live: DashMap::new(),
            failed: DashMap::new(),
            probes: DashMap::new(),
            permits: Semaphore::new(PROBES),
            epoch: Instant::now(),
        };
        if let Some(previous) = previous.filter(|p| p.factory.same_source(&tenants.factory)) {
            for entry in previous.live.iter() {
                if tenants.allowed.contains(entry.key()) && tenants.live.len() < max {
                    tenants.live.insert(
                        entry.key().clone(),
                        Live {
                            remote: entry.remote.clone(),
                            // In use before the reload: still more recent than unproven ones.
                            used: AtomicU64::new(u64::from(entry.used.load(Ordering::Relaxed) > 0)),
                        },
                    );
                }
            }
        }
        if let Allowed::List(list) = &tenants.allowed {
            for tenant in list {
                if !tenants.live.contains_key(tenant) {
                    let remote = tenants.factory.remote(tenant);
                    remote.spawn(true);
                    tenants.live.insert(
                        tenant.clone(),
                        Live {
                            remote,
                            used: AtomicU64::new(0),
                        },
                    );
                }
            }
        }
        tenants
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The concrete issuer of `tenant` if it is in use (no fetch).
    pub fn existing(&self, tenant: &str) -> Option<Arc<Remote>> {
        self.live.get(tenant).map(|l| l.remote.clone())
    }

    /// The concrete issuer of `tenant`: in use already, or looked up now (one lookup per name
    /// at a time, at most [`PROBES`] names at once).
    pub async fn remote(&self, tenant: &str) -> Result<Arc<Remote>, Refusal> {
        if let Some(live) = self.live.get(tenant) {
            return Ok(live.remote.clone());
        }
        if !self.allowed.contains(tenant) {
            return Err(Refusal::Unknown);
        }
        if let Some(failed) = self.failed.get(tenant) {
            if failed.0 > Instant::now() {
                return Err(failed.1);
            }
        }
        let cell = self.probes.entry(tenant.to_owned()).or_default().clone();
        let result = cell.get_or_init(|| self.probe(tenant)).await.clone();
        self.probes.remove_if(tenant, |_, c| Arc::ptr_eq(c, &cell));
        result
    }

    async fn probe(&self, tenant: &str) -> Result<Arc<Remote>, Refusal> {
        // Waiting behind a flood of lookups is bounded: then this tenant's issuer is as good as
        // unreachable for now (503).
        let Ok(Ok(_permit)) = tokio::time::timeout(PERMIT_WAIT, self.permits.acquire()).await
        else {
            return Err(Refusal::Outage(1));
        };
        // Another caller may have finished this name while this one waited for a permit.
        if let Some(live) = self.live.get(tenant) {
            return Ok(live.remote.clone());
        }
        let remote = self.factory.remote(tenant);
        let (until, refusal) = match remote.probe().await {
            Probe::Found => {
                remote.spawn(false);
                self.admit(tenant, remote.clone());
                return Ok(remote);
            }
            Probe::NotFound => (
                Instant::now() + self.factory.timing.min_refetch_interval,
                Refusal::Unknown,
            ),
            Probe::Outage => (Instant::now() + OUTAGE_MEMORY, Refusal::Outage(1)),
        };
        if self.failed.len() >= MAX_FAILED {
            let now = Instant::now();
            self.failed.retain(|_, (until, _)| *until > now);
            if self.failed.len() >= MAX_FAILED {
                self.failed.clear();
            }
        }
        self.failed.insert(tenant.to_owned(), (until, refusal));
        Err(refusal)
    }

    /// Keeps a new concrete issuer, making room by dropping the least recently used one.
    fn admit(&self, tenant: &str, remote: Arc<Remote>) {
        while self.live.len() >= self.max {
            let oldest = self
                .live
                .iter()
                .min_by_key(|e| e.used.load(Ordering::Relaxed))
                .map(|e| e.key().clone());
            match oldest {
                Some(name) => {
                    tracing::info!(provider = %self.factory.provider, tenant = %name, "tenant issuer evicted (max_tenants)");
                    self.live.remove(&name);
                }
                None => break,
            }
        }
        // Unproven until a token of it verifies ([`Tenants::touch`]): evicted before any tenant
        // that has callers, so made-up but real names cannot push real tenants out.
        self.live.insert(
            tenant.to_owned(),
            Live {
                remote,
                used: AtomicU64::new(0),
            },
        );
    }

    /// A token of `tenant` verified (or was found in the cache): it is in use.
    pub fn touch(&self, tenant: &str) {
        if let Some(live) = self.live.get(tenant) {
            live.used.store(self.now_ms().max(1), Ordering::Relaxed);
        }
    }

    /// Listed tenants whose issuer has no keys yet (`/readyz`); always empty under `any`.
    pub fn waiting(&self) -> Vec<String> {
        let Allowed::List(list) = &self.allowed else {
            return Vec::new();
        };
        let mut out: Vec<String> = list
            .iter()
            .filter(|t| {
                self.live
                    .get(t.as_str())
                    .is_none_or(|l| l.remote.keys().is_none())
            })
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Every concrete issuer in use, by tenant name.
    pub fn states(&self) -> Vec<TenantState> {
        let mut out: Vec<TenantState> = self
            .live
            .iter()
            .map(|e| TenantState {
                tenant: e.key().clone(),
                issuer: self.factory.template.issuer(e.key()),
                keys: e.remote.keys().map(|k| k.len()),
            })
            .collect();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }
}

impl Factory {
    fn same_source(&self, other: &Factory) -> bool {
        self.provider == other.provider
            && self.template == other.template
            && self.source == other.source
            && self.tls == other.tls
            && self.timing == other.timing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(issuer: &str) -> Template {
        Template::parse(issuer).unwrap().unwrap()
    }

    fn list(names: &[&str]) -> Allowed {
        Allowed::List(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn a_template_takes_one_whole_segment_or_label() {
        let kc = t("https://kc.example.com/realms/{tenant}");
        assert_eq!(
            kc.tenant_of("https://kc.example.com/realms/acme"),
            Some("acme")
        );
        for bad in [
            "https://kc.example.com/realms/",
            "https://kc.example.com/realms/acme/",
            "https://kc.example.com/realms/a/../b",
            "https://kc.example.com/realms/a%2Fb",
            "https://kc.example.com/realms/a.b",
            "https://kc.example.com/realms/..",
            "https://KC.example.com/realms/acme",
            "http://kc.example.com/realms/acme",
        ] {
            assert_eq!(kc.tenant_of(bad), None, "{bad}");
        }
        let host = t("https://{tenant}.auth0.com/");
        assert_eq!(host.tenant_of("https://acme.auth0.com/"), Some("acme"));
        assert_eq!(host.tenant_of("https://a.b.auth0.com/"), None);
        let entra = t("https://login.microsoftonline.com/{tenant}/v2.0");
        let id = "9188040d-6c67-4c5b-b112-36a304b66dad";
        assert_eq!(
            entra.tenant_of(&format!("https://login.microsoftonline.com/{id}/v2.0")),
            Some(id)
        );
        assert_eq!(
            entra.issuer("x"),
            "https://login.microsoftonline.com/x/v2.0"
        );
        for bad in [
            "https://kc/realms/r-{tenant}",
            "https://kc/realms/{tenant}x",
            "https://kc/{tenant}/{tenant}",
            "{tenant}",
            "https://{tenant}",
            "https://{tenant}/x",
            "https://{tenant}:8443/",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Template::parse("https://kc/realms/main").unwrap(), None);
    }

    #[test]
    fn overlapping_providers_are_found() {
        let kc = t("https://kc/realms/{tenant}");
        let any = Allowed::Any;
        assert!(overlap(
            &kc,
            &any,
            Overlapping::Literal("https://kc/realms/main")
        ));
        assert!(!overlap(
            &kc,
            &list(&["acme"]),
            Overlapping::Literal("https://kc/realms/main")
        ));
        assert!(!overlap(
            &kc,
            &any,
            Overlapping::Literal("https://kc/realms/main/x")
        ));
        assert!(overlap(
            &kc,
            &any,
            Overlapping::Template(&kc, &list(&["a"]))
        ));
        assert!(!overlap(
            &kc,
            &list(&["a"]),
            Overlapping::Template(&kc, &list(&["b"]))
        ));
        assert!(overlap(
            &kc,
            &list(&["a", "b"]),
            Overlapping::Template(&kc, &list(&["b"]))
        ));
        let other = t("https://kc/tenants/{tenant}");
        assert!(!overlap(&kc, &any, Overlapping::Template(&other, &any)));
        // Different places: each side's tenant is the other's text there.
        let a = t("https://{tenant}.kc/realms/main");
        let b = t("https://x.kc/realms/{tenant}");
        assert!(overlap(&a, &any, Overlapping::Template(&b, &any)));
        assert!(!overlap(&a, &list(&["y"]), Overlapping::Template(&b, &any)));
        assert!(!overlap(
            &a,
            &any,
            Overlapping::Template(&b, &list(&["other"]))
        ));
    }

    #[test]
    fn tenant_names() {
        assert!(valid_tenant("acme"));
        assert!(valid_tenant("9188040d-6c67-4c5b-b112-36a304b66dad"));
        assert!(valid_tenant("a_b"));
        for bad in [
            "",
            ".",
            "..",
            "a.b",
            "a/b",
            "a%2F",
            "a b",
            "ä",
            &"x".repeat(129),
        ] {
            assert!(!valid_tenant(bad), "{bad}");
        }
    }
}
