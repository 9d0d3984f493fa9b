//! Stage 4 of the pipeline, rate-limit: the route's policies, each choosing a tier for the
//! caller and counting the caller's key in that tier's bucket (GCRA, [`gcra`]).
//!
//! The local backend keeps one TAT per key in a `DashMap` per (policy, tier), bounded: keys
//! whose bucket is full again carry no state and are dropped first; past the cap the keys
//! touched longest ago go (counted). The arithmetic is our own rather than `governor`'s so that
//! the headers (`Remaining`, `Reset`) come straight from it and the Redis backend can run the
//! very same formula in Lua.

pub mod gcra;
pub mod shared;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use tollgate_auth::claims::{ClaimPath, Claims};
use tollgate_auth::Identity;
use tollgate_config::{Rate, RateLimitPolicy, Report};
use tollgate_policy::expr::Expr;

use gcra::{Decision, Quota};
use shared::{OnError, Shared};

/// Keys one (policy, tier) bucket keeps: reaching it starts an eviction in the background.
pub const MAX_KEYS: usize = 500_000;
/// Keys one bucket never exceeds: past it, a new key waits for the eviction itself.
pub const HARD_MAX_KEYS: usize = MAX_KEYS + MAX_KEYS / 4;

/// What a policy counts by.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// The authenticated subject; anonymous callers by client IP.
    Subject,
    /// The caller's client (`$client`); without one, the client IP.
    Client,
    Ip,
    /// The API key's id; other callers by client IP.
    ApiKey,
    /// A claim's value; without it, the client IP.
    Claim(ClaimPath),
    /// The caller's tenant (all users of one customer share it); without one, the client IP.
    Tenant,
}

pub struct Tier {
    pub name: Arc<str>,
    when: Option<Expr>,
    /// `None`: unlimited.
    bucket: Option<Bucket>,
}

/// One tier's counts.
pub struct Bucket {
    pub quota: Quota,
    store: Arc<Store>,
    epoch: Instant,
}

pub struct Policy {
    pub name: Arc<str>,
    key: Key,
    tiers: Vec<Tier>,
    /// The config it came from: an unchanged policy keeps its counts across a reload.
    source: RateLimitPolicy,
    /// `backend: redis`: the shared buckets (the local ones serve `on_error: local`).
    shared: Option<Arc<Shared>>,
}

/// The caller as a policy sees it.
pub struct Caller<'a> {
    pub identity: Option<&'a Identity>,
    pub ip: IpAddr,
}

/// One policy's answer for one request.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub policy: Arc<str>,
    pub tier: Arc<str>,
    /// `None` for an unlimited tier: no headers.
    pub limit: Option<(Quota, Decision)>,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.limit.is_none_or(|(_, d)| d.allowed)
    }
}

impl Policy {
    /// The names of its tiers, in order (each the `Arc` its verdicts carry).
    pub fn tier_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.tiers.iter().map(|t| &t.name)
    }

    /// `shared`: the Redis connection, for a policy with `backend: redis`.
    pub fn compile(
        name: &str,
        config: &RateLimitPolicy,
        previous: Option<&Arc<Policy>>,
        shared: Option<&Arc<Shared>>,
        report: &mut Report<'_>,
    ) -> Option<Arc<Policy>> {
        let at = format!("rate_limits.{name}");
        if name.contains(['{', '}']) {
            // The caller's key is the Redis Cluster hash tag: no other braces in a key.
            report.error(&at, "a policy name cannot contain { or }");
        }
        let same_backend = |p: &Policy| match (&p.shared, shared) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if let Some(p) = previous.filter(|p| p.source == *config && same_backend(p)) {
            return Some(p.clone());
        }
        let key = match config.key.as_str() {
            "subject" => Key::Subject,
            "client" => Key::Client,
            "ip" => Key::Ip,
            "api_key" => Key::ApiKey,
            "tenant" => Key::Tenant,
            other => match other.strip_prefix("claim:").map(ClaimPath::parse) {
                Some(Ok(path)) => Key::Claim(path),
                Some(Err(e)) => {
                    report.error(format!("{at}.key"), e);
                    return None;
                }
                None => {
                    report.error(
                        format!("{at}.key"),
                        format!(
                            "unknown key {} (subject, client, ip, api_key, tenant, claim:<path>)",
                            config.key.quoted()
                        ),
                    );
                    return None;
                }
            },
        };
        if config.tiers.is_empty() {
            report.error(format!("{at}.tiers"), "list at least one tier");
        }
        let mut tiers = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, t) in config.tiers.iter().enumerate() {
            let tat = format!("{at}.tiers[{i}]");
            if t.name.contains(['{', '}']) {
                report.error(format!("{tat}.name"), "a tier name cannot contain { or }");
            }
            if !names.insert(t.name.as_str()) {
                report.error(
                    format!("{tat}.name"),
                    format!("duplicate tier {}", t.name.quoted()),
                );
            }
            let when = match &t.when {
                None => None,
                Some(text) => match Expr::parse(text) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        report.error(
                            format!("{tat}.when"),
                            tollgate_policy::expr::describe(&e, text),
                        );
                        continue;
                    }
                },
            };
            let bucket = match t.limit {
                Rate::Unlimited => {
                    if t.burst.is_some() {
                        report.error(format!("{tat}.burst"), "an unlimited tier has no burst");
                    }
                    None
                }
                Rate::Limited { count, period } => {
                    let burst = t.burst.unwrap_or(count);
                    if burst == 0 {
                        report.error(format!("{tat}.burst"), "must be at least 1");
                    }
                    Some(Bucket::new(Quota {
                        count,
                        period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
                        burst: burst.max(1),
                    }))
                }
            };
            tiers.push(Tier {
                name: t.name.as_str().into(),
                when,
                bucket,
            });
        }
        // Tiers are tried in order; one without `when` takes everyone left. Without one, a
        // caller could match no tier: refused at load rather than guessed at run time.
        match config.tiers.iter().position(|t| t.when.is_none()) {
            None if !config.tiers.is_empty() => report.error(
                format!("{at}.tiers"),
                "no default tier: give the last tier no `when`, so that every caller has one",
            ),
            Some(i) if i + 1 < config.tiers.len() => report.error(
                format!("{at}.tiers[{}]", i + 1),
                "unreachable: an earlier tier without `when` takes every caller",
            ),
            _ => {}
        }
        Some(Arc::new(Policy {
            name: name.into(),
            key,
            tiers,
            source: config.clone(),
            shared: shared.cloned(),
        }))
    }

    /// The claim paths it reads for every request (tiers' `when`, a `claim:` key), into `out`.
    pub fn claim_paths<'a>(&'a self, out: &mut Vec<&'a ClaimPath>) {
        if let Key::Claim(path) = &self.key {
            out.push(path);
        }
        for tier in &self.tiers {
            if let Some(e) = &tier.when {
                e.claim_paths(out);
            }
        }
    }

    /// The tier this caller falls in: the first whose `when` holds (anonymous callers have no
    /// claims, so only a tier without `when` takes them).
    pub fn tier(&self, caller: &Caller<'_>) -> Option<&Tier> {
        self.tiers
            .iter()
            .find(|t| match (&t.when, caller.identity) {
                (None, _) => true,
                (Some(e), Some(id)) => e.eval(id),
                (Some(_), None) => false,
            })
    }

    fn key(&self, caller: &Caller<'_>) -> String {
        let ip = || format!("ip:{}", caller.ip);
        let Some(id) = caller.identity else {
            return ip();
        };
        match &self.key {
            Key::Ip => ip(),
            // A subject or client is unique within its issuer only (OIDC Core §2): a tenant's
            // issuer is one of many, so its tenant is part of the key.
            Key::Subject => id.subject.as_ref().map_or_else(ip, |s| match &id.tenant {
                Some(t) => format!("sub:{}:{t}:{s}", id.provider),
                None => format!("sub:{}:{s}", id.provider),
            }),
            Key::Client => id.client.as_ref().map_or_else(ip, |c| match &id.tenant {
                Some(t) => format!("client:{}:{t}:{c}", id.provider),
                None => format!("client:{}:{c}", id.provider),
            }),
            Key::ApiKey => match (&*id.provider, &id.client) {
                (tollgate_auth::API_KEY, Some(key_id)) => format!("key:{key_id}"),
                _ => ip(),
            },
            Key::Tenant => id
                .tenant
                .as_ref()
                .map_or_else(ip, |t| format!("tenant:{t}")),
            Key::Claim(path) => match id.claim(path) {
                Some(serde_json::Value::String(s)) if s.is_empty() => ip(),
                Some(serde_json::Value::String(s)) => format!("claim:{s}"),
                Some(v) if !v.is_null() => format!("claim:{v}"),
                _ => ip(),
            },
        }
    }

    /// Counts one request (a refusal consumes nothing), and says where it was counted.
    async fn acquire(&self, caller: &Caller<'_>) -> Option<(Verdict, Counted)> {
        let tier = self.tier(caller)?;
        let verdict = |limit| Verdict {
            policy: self.name.clone(),
            tier: tier.name.clone(),
            limit,
        };
        let Some(bucket) = &tier.bucket else {
            return Some((verdict(None), Counted::Nowhere));
        };
        let key = self.key(caller);
        if let Some(shared) = &self.shared {
            let shared_key = format!("tollgate:rl:{}:{}:{{{key}}}", self.name, tier.name);
            match shared.acquire(&shared_key, &bucket.quota).await {
                Ok(d) => {
                    return Some((
                        verdict(Some((bucket.quota, d))),
                        Counted::Shared(shared_key),
                    ))
                }
                Err(e) => {
                    tracing::debug!(policy = %self.name, error = %e, "redis rate limit failed");
                    match shared.on_error {
                        OnError::Local => {}
                        OnError::Allow => return Some((verdict(None), Counted::Nowhere)),
                        OnError::Deny => return Some((verdict(None), Counted::Unavailable)),
                    }
                }
            }
        }
        let d = bucket.acquire(&key);
        Some((verdict(Some((bucket.quota, d))), Counted::Local(key)))
    }

    /// Gives back a request counted by [`Policy::acquire`] (a later policy refused it).
    async fn refund(&self, caller: &Caller<'_>, counted: &Counted) {
        let Some(bucket) = self.tier(caller).and_then(|t| t.bucket.as_ref()) else {
            return;
        };
        match (counted, &self.shared) {
            (Counted::Local(key), _) => bucket.refund(key),
            (Counted::Shared(key), Some(shared)) => shared.refund(key, &bucket.quota).await,
            _ => {}
        }
    }

    /// The Redis calls that failed or were late.
    pub fn shared_errors(&self) -> u64 {
        self.shared
            .as_ref()
            .map_or(0, |s| s.errors.load(Ordering::Relaxed))
    }

    /// The policy's tiers (for metrics and `explain`).
    pub fn tiers(&self) -> impl Iterator<Item = &Tier> {
        self.tiers.iter()
    }
}

impl Tier {
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }
}

impl Bucket {
    fn new(quota: Quota) -> Bucket {
        Bucket {
            quota,
            store: Arc::new(Store::default()),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn acquire(&self, key: &str) -> Decision {
        let now = self.now();
        // A caller seen before: no allocation, one shard lock.
        if let Some(mut tat) = self.store.tats.get_mut(key) {
            let stored = (*tat > now).then_some(*tat);
            let (decision, new) = gcra::check(&self.quota, stored, now);
            if let Some(new) = new {
                *tat = new;
            }
            return decision;
        }
        let len = self.store.tats.len();
        if len >= MAX_KEYS {
            self.make_room(now, len);
        }
        let mut entry = self.store.tats.entry(key.to_owned()).or_insert(0);
        let stored = (*entry > now).then_some(*entry);
        let (decision, new) = gcra::check(&self.quota, stored, now);
        if let Some(new) = new {
            *entry = new;
        }
        decision
    }

    fn refund(&self, key: &str) {
        if let Some(mut tat) = self.store.tats.get_mut(key) {
            *tat = tat.saturating_sub(self.quota.interval_ns());
        }
    }

    /// The store is at its cap: evicts on a blocking thread while requests go on (one eviction
    /// at a time), or right here if keys arrive faster than that eviction frees them.
    fn make_room(&self, now: u64, len: usize) {
        if len >= HARD_MAX_KEYS {
            // One request evicts; the others go on (the store may pass the cap by a few keys).
            if let Ok(_one) = self.store.inline.try_lock() {
                self.store.evict(now);
            }
            return;
        }
        if self.store.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.store.clone();
        let evict = move || {
            // Cleared however the eviction ends, so that the next one can start.
            let _done = Evicting(&store.evicting);
            store.evict(now);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(evict)),
            Err(_) => evict(),
        }
    }

    /// Drops keys whose bucket is full again; run now and then so that idle keys free their
    /// memory without waiting for the cap.
    pub fn sweep(&self) {
        let now = self.now();
        self.store.tats.retain(|_, tat| *tat > now);
    }

    /// Keys evicted because the store was full, since the last call.
    pub fn take_evicted(&self) -> u64 {
        self.store.evicted.swap(0, Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.store.tats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.tats.is_empty()
    }
}

/// A bucket's keys: the TAT of each.
#[derive(Default)]
struct Store {
    tats: DashMap<String, u64>,
    /// Keys evicted because the store was full.
    evicted: AtomicU64,
    /// A background eviction is running.
    evicting: AtomicBool,
    /// Held by the one request that evicts in line at the hard cap.
    inline: std::sync::Mutex<()>,
}

/// Clears the `evicting` flag when dropped.
struct Evicting<'a>(&'a AtomicBool);

impl Drop for Evicting<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Store {
    /// Brings the store to nine tenths of its cap: keys whose bucket is full again first (they
    /// hold no information), then the keys with the lowest TAT (the buckets closest to full
    /// again: mostly the callers seen least recently).
    fn evict(&self, now: u64) {
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.len() < MAX_KEYS {
            return;
        }
        let mut tats: Vec<u64> = self.tats.iter().map(|e| *e.value()).collect();
        let cut = tats.len().saturating_sub(MAX_KEYS / 10 * 9);
        if cut == 0 || cut >= tats.len() {
            return;
        }
        let (_, threshold, _) = tats.select_nth_unstable(cut);
        let threshold = *threshold;
        let before = self.tats.len();
        self.tats.retain(|_, tat| *tat > threshold);
        let gone = before.saturating_sub(self.tats.len());
        self.evicted.fetch_add(gone as u64, Ordering::Relaxed);
    }
}

/// Every policy of a config, by name.
pub type Policies = BTreeMap<String, Arc<Policy>>;

/// Where a policy counted a request.
enum Counted {
    Nowhere,
    Local(String),
    Shared(String),
    /// Redis failed and `on_error: deny`.
    Unavailable,
}

/// The outcome of a route's policies for one request.
pub enum Outcome {
    /// Every verdict, up to and including a refusing one.
    Verdicts(Vec<Verdict>),
    /// A Redis policy with `on_error: deny` could not count: 503.
    Unavailable,
}

/// All of a route's policies for one request: each must admit. A refused request is given
/// back to the policies that had counted it.
pub async fn acquire_all(policies: &[Arc<Policy>], caller: &Caller<'_>) -> Outcome {
    let mut verdicts = Vec::with_capacity(policies.len());
    let mut counted: Vec<(&Policy, Counted)> = Vec::with_capacity(policies.len());
    for p in policies {
        let Some((v, c)) = p.acquire(caller).await else {
            continue;
        };
        let refused = !v.allowed() || matches!(c, Counted::Unavailable);
        if refused {
            for (earlier, c) in &counted {
                earlier.refund(caller, c).await;
            }
            if matches!(c, Counted::Unavailable) {
                return Outcome::Unavailable;
            }
            verdicts.push(v);
            break;
        }
        verdicts.push(v);
        counted.push((p.as_ref(), c));
    }
    Outcome::Verdicts(verdicts)
}

/// The verdict whose headers a response carries: the refusing one, else the one closest to
/// refusing (fewest remaining, then longest reset). `None` when every tier was unlimited.
pub fn headline(verdicts: &[Verdict]) -> Option<&Verdict> {
    verdicts
        .iter()
        .filter_map(|v| v.limit.map(|(_, d)| (v, d)))
        .min_by_key(|(_, d)| (d.allowed, d.remaining, std::cmp::Reverse(d.reset_ns)))
        .map(|(v, _)| v)
}

#[cfg(test)]
mod tests;
