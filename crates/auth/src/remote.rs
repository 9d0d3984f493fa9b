//! The key lifecycle of an issuer whose keys live behind a URL (`jwks_uri`, or OIDC discovery):
//! fetched at start without delaying anything, refreshed in the background, refetched once at
//! once for an unknown `kid` (one fetch in flight, at most once per `min_refetch_interval`),
//! kept for `max_stale` while the endpoint fails, and dropped after that.
//!
//! Every fetch runs on the background runtime; requests only read the current set (an
//! `ArcSwap`) or, for an unknown `kid`, wait for the one refetch in flight.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rand::Rng;
use tokio::runtime::Handle;
use tokio::sync::Mutex;

use crate::keys::KeySet;

/// A JWKS or discovery document larger than this is refused.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// One fetch (connect, TLS, headers and body) takes at most this long.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// An issuer without keys is retried after 1 s, doubling up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    JwksUri(String),
    /// `{issuer}/.well-known/openid-configuration`, whose `issuer` must be this one.
    Discovery {
        issuer: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub refresh_interval: Duration,
    pub max_stale: Duration,
    pub min_refetch_interval: Duration,
}

/// What the lifecycle reports, for metrics and logs.
pub trait Events: Send + Sync {
    /// `result`: `ok` or `error`; `keys`: the keys usable after it.
    fn fetched(&self, provider: &str, result: &'static str, keys: usize);

    /// A fetch for one tenant's issuer of a multi-tenant provider (its keys are not one
    /// provider-wide number).
    fn tenant_fetched(&self, provider: &str, result: &'static str) {
        let _ = (provider, result);
    }
}

#[derive(Default)]
struct Snapshot {
    keys: Option<Arc<KeySet>>,
    /// When the keys were last fetched successfully.
    good_at: Option<Instant>,
    /// While there are no keys: when the next attempt is due (for `Retry-After`).
    next_attempt: Option<Instant>,
}

pub struct Remote {
    provider: Arc<str>,
    /// For one tenant's issuer of a multi-tenant provider (logs only).
    tenant: Option<Arc<str>>,
    location: Location,
    timing: Timing,
    client: reqwest::Client,
    state: ArcSwap<Snapshot>,
    /// Held for the whole refetch: waiters line up here, and the time of the last refetch
    /// tells them whether another is allowed yet.
    refetch: Mutex<Option<Instant>>,
    /// One fetch at a time (background or refetch), so an older answer never replaces a
    /// newer one.
    fetching: Mutex<()>,
    runtime: Handle,
    events: Arc<dyn Events>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The keys as a request sees them.
pub enum Current {
    Keys(Arc<KeySet>),
    /// Never fetched, or dropped after `max_stale`: retry after this many seconds.
    Unavailable {
        retry_after: u64,
    },
}

/// The outcome of a first fetch for an issuer that may not exist ([`Remote::probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Found,
    /// 404, or a discovery document for another issuer: there is no such issuer.
    NotFound,
    /// Cannot connect, a timeout, 5xx, a bad document: the issuer may be down.
    Outage,
}

impl Remote {
    /// Starts the lifecycle: the first fetch begins at once on `runtime`.
    pub fn start(
        provider: Arc<str>,
        location: Location,
        timing: Timing,
        client: reqwest::Client,
        runtime: Handle,
        events: Arc<dyn Events>,
    ) -> Arc<Remote> {
        let remote = Remote::new(provider, None, location, timing, client, runtime, events);
        remote.spawn(true);
        remote
    }

    /// The lifecycle without its background task: [`Remote::spawn`] starts it.
    pub fn new(
        provider: Arc<str>,
        tenant: Option<Arc<str>>,
        location: Location,
        timing: Timing,
        client: reqwest::Client,
        runtime: Handle,
        events: Arc<dyn Events>,
    ) -> Arc<Remote> {
        Arc::new(Remote {
            provider,
            tenant,
            location,
            timing,
            client,
            state: ArcSwap::from_pointee(Snapshot {
                next_attempt: Some(Instant::now() + Duration::from_secs(1)),
                ..Snapshot::default()
            }),
            refetch: Mutex::new(None),
            fetching: Mutex::new(()),
            runtime: runtime.clone(),
            events,
            task: std::sync::Mutex::new(None),
        })
    }

    /// The background refresh: fetching at once (`fetch_first`), or first after one
    /// `refresh_interval` (the keys were just fetched by [`Remote::probe`]).
    pub fn spawn(self: &Arc<Self>, fetch_first: bool) {
        let task = self
            .runtime
            .spawn(background(Arc::downgrade(self), fetch_first));
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
    }

    /// One fetch now, for an issuer that may not exist; its keys are kept if found.
    pub async fn probe(self: &Arc<Self>) -> Probe {
        let this = self.clone();
        self.runtime
            .spawn(async move { this.fetch_and_store().await })
            .await
            .unwrap_or(Probe::Outage)
    }

    /// The keys usable now, if any.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        match self.current() {
            Current::Keys(keys) => Some(keys),
            Current::Unavailable { .. } => None,
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn current(&self) -> Current {
        let snapshot = self.state.load();
        let fresh = snapshot
            .good_at
            .is_some_and(|at| at.elapsed() <= self.timing.max_stale);
        match (&snapshot.keys, fresh) {
            (Some(keys), true) => Current::Keys(keys.clone()),
            _ => {
                let wait = snapshot.next_attempt.map_or(1, |at| {
                    at.saturating_duration_since(Instant::now())
                        .as_secs_f64()
                        .ceil() as u64
                });
                Current::Unavailable {
                    retry_after: wait.max(1),
                }
            }
        }
    }

    /// An unknown `kid`: fetch the keys again now, unless that happened less than
    /// `min_refetch_interval` ago. However many requests call this at once, one fetch runs;
    /// the others wait for it and then use its result.
    pub async fn refetch(self: &Arc<Self>) {
        let mut last = self.refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.timing.min_refetch_interval) {
            return;
        }
        *last = Some(Instant::now());
        let this = self.clone();
        // On the background runtime, so that the HTTP client's connections live there.
        let _ = self
            .runtime
            .spawn(async move { this.fetch_and_store().await })
            .await;
    }

    /// One fetch; its outcome replaces the keys (success) or ages them (failure).
    async fn fetch_and_store(&self) -> Probe {
        let _one_at_a_time = self.fetching.lock().await;
        let result = fetch(&self.client, &self.location).await;
        let previous = self.state.load();
        let now = Instant::now();
        match result {
            Ok((keys, skipped)) => {
                let tenant = self.tenant.as_deref().unwrap_or("");
                if skipped > 0 {
                    tracing::warn!(provider = %self.provider, tenant, skipped, "JWKS: keys skipped (malformed, unsupported or not for signing)");
                }
                tracing::info!(provider = %self.provider, tenant, keys = keys.len(), "JWKS fetched");
                self.report("ok", keys.len());
                self.state.store(Arc::new(Snapshot {
                    keys: Some(Arc::new(keys)),
                    good_at: Some(now),
                    next_attempt: None,
                }));
                Probe::Found
            }
            Err(e) => {
                let tenant = self.tenant.as_deref().unwrap_or("");
                let stale = previous
                    .good_at
                    .is_none_or(|at| now.duration_since(at) > self.timing.max_stale);
                let keys = if stale { None } else { previous.keys.clone() };
                if stale && previous.keys.is_some() {
                    tracing::error!(provider = %self.provider, tenant, "JWKS: keys dropped, older than max_stale");
                }
                tracing::warn!(provider = %self.provider, tenant, error = %e.message, "JWKS fetch failed");
                self.report("error", keys.as_ref().map_or(0, |k| k.len()));
                self.state.store(Arc::new(Snapshot {
                    keys,
                    good_at: previous.good_at,
                    next_attempt: previous.next_attempt,
                }));
                if e.not_found {
                    Probe::NotFound
                } else {
                    Probe::Outage
                }
            }
        }
    }

    fn report(&self, result: &'static str, keys: usize) {
        match self.tenant {
            Some(_) => self.events.tenant_fetched(&self.provider, result),
            None => self.events.fetched(&self.provider, result, keys),
        }
    }

    fn set_next_attempt(&self, at: Instant) {
        let previous = self.state.load();
        self.state.store(Arc::new(Snapshot {
            keys: previous.keys.clone(),
            good_at: previous.good_at,
            next_attempt: Some(at),
        }));
    }

    fn has_keys(&self) -> bool {
        matches!(self.current(), Current::Keys(_))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.task.lock() {
            if let Some(task) = slot.take() {
                task.abort();
            }
        }
    }
}

/// Fetch at start, then every `refresh_interval` (±10% jitter, so that many gateways do not
/// call the IdP in step); after a failure, again after 1 s, 2 s, 4 s ... at most 10 s (and
/// never later than the next regular refresh).
async fn background(remote: Weak<Remote>, fetch_first: bool) {
    let mut backoff = Duration::from_secs(1);
    if !fetch_first {
        let Some(refresh) = remote.upgrade().map(|r| r.timing.refresh_interval) else {
            return;
        };
        let jitter = rand::rng().random_range(0.9..=1.1);
        tokio::time::sleep(refresh.mul_f64(jitter)).await;
    }
    loop {
        let Some(this) = remote.upgrade() else { return };
        let ok = this.fetch_and_store().await == Probe::Found;
        let refresh = this.timing.refresh_interval;
        let wait = if ok {
            backoff = Duration::from_secs(1);
            let jitter = rand::rng().random_range(0.9..=1.1);
            refresh.mul_f64(jitter)
        } else {
            let wait = backoff.min(refresh);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if !this.has_keys() {
                this.set_next_attempt(Instant::now() + wait);
            }
            wait
        };
        drop(this);
        tokio::time::sleep(wait).await;
    }
}

/// Why a fetch failed.
struct FetchError {
    message: String,
    /// The issuer does not exist there (404, or discovery names another issuer).
    not_found: bool,
}

impl From<String> for FetchError {
    fn from(message: String) -> FetchError {
        FetchError {
            message,
            not_found: false,
        }
    }
}

async fn fetch(
    client: &reqwest::Client,
    location: &Location,
) -> Result<(KeySet, usize), FetchError> {
    let (jwks_uri, discovered) = match location {
        Location::JwksUri(uri) => (uri.clone(), false),
        Location::Discovery { issuer } => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let shown = shown(&url);
            // What is not a discovery document for this issuer (an error page, a soft 404, a
            // document for another issuer) says there is no such issuer here.
            let not_an_issuer = |message: String| FetchError {
                message,
                not_found: true,
            };
            let body = get(client, &url).await?;
            let doc: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| not_an_issuer(format!("discovery document at {shown} is not JSON")))?;
            // OpenID Connect Discovery §4.3: the document must name the issuer it was fetched
            // for, or its keys could be another issuer's.
            if doc.get("issuer").and_then(|i| i.as_str()) != Some(issuer.as_str()) {
                return Err(not_an_issuer(format!(
                    "discovery document at {shown} names another issuer"
                )));
            }
            let jwks_uri = doc
                .get("jwks_uri")
                .and_then(|u| u.as_str())
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .ok_or_else(|| format!("discovery document at {shown} has no http(s) jwks_uri"))?
                .to_owned();
            (jwks_uri, true)
        }
    };
    // Once an issuer's discovery document is found, its key set failing is an outage.
    let body = get(client, &jwks_uri).await.map_err(|e| FetchError {
        not_found: e.not_found && !discovered,
        ..e
    })?;
    KeySet::from_jwks(&body).map_err(|e| format!("{}: {e}", shown(&jwks_uri)).into())
}

/// A URL for a log line: without user, password and query, which may hold credentials.
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

/// A GET with a size cap; redirects are not followed (the client is built that way), and any
/// status but 200 is a failure.
async fn get(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    let shown = shown(url);
    let mut response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", without_url(&e)))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(FetchError {
            message: format!("{shown}: HTTP {}", response.status().as_u16()),
            // No such issuer (or tenant) there: 404 and 410, and 400 and 403 as IdPs answer
            // for a tenant they do not know (Entra ID: 400).
            not_found: matches!(response.status().as_u16(), 400 | 403 | 404 | 410),
        });
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(format!("{shown}: larger than {MAX_DOCUMENT_BYTES} bytes").into());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{shown}: {}", without_url(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(format!("{shown}: larger than {MAX_DOCUMENT_BYTES} bytes").into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn urls_in_log_lines_lose_their_credentials() {
        assert_eq!(
            shown("https://svc:s3cret@idp.example/keys?token=abc#x"),
            "https://idp.example/keys"
        );
        assert_eq!(shown("not a url"), "(a URL that does not parse)");
    }
}
