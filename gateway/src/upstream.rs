//! Upstream pools: Pingora `LoadBalancer`s built from `upstreams`, their health checks, and the
//! peer for one request.
//!
//! A target is out of rotation while its health check says so, or for a short while after it
//! refused a connection (then the request is retried once on another target: nothing was sent).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::lb::health_check::{HealthCheck as PingoraCheck, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use tollgate_config::{Balance, HealthCheck, Protocol, Upstream as UpstreamConfig};

/// Defaults when neither the upstream nor the route says: Envoy's 5 s connect timeout, and a
/// read timeout long enough for slow APIs but short of a hung connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a target that refused a connection stays out without a health check to say when
/// it is back.
const REFUSED_COOLDOWN: Duration = Duration::from_secs(5);
const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Upstream {
    pub name: Arc<str>,
    /// The config it was built from: an unchanged upstream is kept across reloads, with its
    /// connections' health and its checker.
    pub config: UpstreamConfig,
    balancer: Arc<Balancer>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    protocol: Protocol,
    /// Per target: out of rotation until this many ms after `epoch` (0: in rotation).
    refused_until: HashMap<SocketAddr, AtomicU64>,
    epoch: Instant,
    cooldown: Duration,
    _checker: Option<Checker>,
}

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    /// Consistent (ketama) hashing on a per-request key: the subject, or the client address
    /// for anonymous requests.
    Hash(LoadBalancer<Consistent>),
}

/// The health-check task of one pool; it stops when the pool is dropped.
struct Checker(tokio::task::JoinHandle<()>);

impl Drop for Checker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lb<S>(
    targets: &[&str],
    check: Option<Box<dyn PingoraCheck + Send + Sync>>,
) -> Result<LoadBalancer<S>, String>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut lb = LoadBalancer::<S>::try_from_iter(targets)
        .map_err(|e| format!("cannot resolve targets: {e}"))?;
    if let Some(check) = check {
        lb.set_health_check(check);
    }
    Ok(lb)
}

impl Upstream {
    /// Builds the pool (resolving host names once, here) and, with a `runtime`, starts its
    /// health checks there.
    pub fn build(
        name: &str,
        config: &UpstreamConfig,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Result<Upstream, String> {
        let targets: Vec<&str> = config.targets.iter().map(|t| t.as_str()).collect();
        let check = config.health_check.as_ref().map(health_check);
        let balancer = Arc::new(match config.balance {
            Balance::RoundRobin => Balancer::RoundRobin(lb(&targets, check)?),
            Balance::Random => Balancer::Random(lb(&targets, check)?),
            Balance::Hash => Balancer::Hash(lb(&targets, check)?),
        });
        let refused_until = balancer
            .backends()
            .get_backend()
            .iter()
            .map(|b| (b.addr.clone(), AtomicU64::new(0)))
            .collect();
        let interval = config
            .health_check
            .as_ref()
            .and_then(|h| h.interval)
            .map_or(DEFAULT_CHECK_INTERVAL, |d| d.0);
        let checker = match (&config.health_check, runtime) {
            (Some(_), Some(rt)) => {
                let balancer = balancer.clone();
                Some(Checker(rt.spawn(async move {
                    loop {
                        balancer.backends().run_health_check(true).await;
                        tokio::time::sleep(interval).await;
                    }
                })))
            }
            _ => None,
        };
        let timeouts = config.timeouts.unwrap_or_default();
        Ok(Upstream {
            name: name.into(),
            config: config.clone(),
            balancer,
            connect_timeout: timeouts.connect.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            read_timeout: timeouts.read.map_or(DEFAULT_READ_TIMEOUT, |d| d.0),
            protocol: config.protocol,
            refused_until,
            epoch: Instant::now(),
            cooldown: if config.health_check.is_some() {
                interval
            } else {
                REFUSED_COOLDOWN
            },
            _checker: checker,
        })
    }

    /// Picks a healthy target; `key` matters only for `balance: hash`.
    pub fn select(&self, key: &[u8]) -> Option<Backend> {
        // At most this many tries to skip targets out of rotation.
        const TRIES: usize = 256;
        let now = self.epoch.elapsed().as_millis() as u64;
        let usable = |b: &Backend, healthy: bool| {
            healthy
                && self
                    .refused_until
                    .get(&b.addr)
                    .is_none_or(|until| until.load(Ordering::Relaxed) <= now)
        };
        match self.balancer.as_ref() {
            Balancer::RoundRobin(lb) => lb.select_with(key, TRIES, usable),
            Balancer::Random(lb) => lb.select_with(key, TRIES, usable),
            Balancer::Hash(lb) => lb.select_with(key, TRIES, usable),
        }
    }

    /// Takes a target that refused a connection out of rotation for a while.
    pub fn refused(&self, addr: &SocketAddr) {
        if let Some(until) = self.refused_until.get(addr) {
            let until_ms = (self.epoch.elapsed() + self.cooldown).as_millis() as u64;
            until.store(until_ms, Ordering::Relaxed);
            tracing::warn!(upstream = %self.name, target = %addr, "target refused a connection; out of rotation for {:?}", self.cooldown);
        }
    }

    pub fn peer(&self, backend: &Backend, connect: Duration, read: Duration) -> HttpPeer {
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        if self.protocol == Protocol::Http2 {
            // h2c with prior knowledge (gRPC); the upstream must speak HTTP/2 cleartext.
            peer.options.alpn = ALPN::H2;
        }
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect);
        peer.options.read_timeout = Some(read);
        // No write timeout: writes to the upstream run beside the read of its response, which
        // the read timeout bounds; one timer fewer per request (docs/benchmarks.md).
        peer
    }
}

impl Balancer {
    fn backends(&self) -> &pingora::lb::Backends {
        match self {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Random(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        }
    }
}

/// `health_check`: an HTTP GET of `path` (any 2xx is healthy), or a TCP connect without a path.
fn health_check(config: &HealthCheck) -> Box<dyn PingoraCheck + Send + Sync> {
    let timeout = config.timeout.map_or(DEFAULT_CHECK_TIMEOUT, |d| d.0);
    let unhealthy_after = config.unhealthy_after.unwrap_or(2).max(1) as usize;
    let healthy_after = config.healthy_after.unwrap_or(1).max(1) as usize;
    match &config.path {
        Some(path) => {
            let mut check = HttpHealthCheck::new("localhost", false);
            if let Ok(req) = pingora::http::RequestHeader::build("GET", path.as_bytes(), None) {
                let mut req = req;
                let _ = req.append_header("Host", "localhost");
                let _ = req.append_header("User-Agent", "tollgate-health-check");
                check.req = req;
            }
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.read_timeout = Some(timeout);
            check.consecutive_failure = unhealthy_after;
            check.consecutive_success = healthy_after;
            check.validator = Some(Box::new(|resp| {
                if resp.status.is_success() {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::CustomCode("unhealthy status", resp.status.as_u16()),
                        "health check answered a non-2xx status",
                    )
                }
            }));
            Box::new(check)
        }
        None => {
            let mut check = TcpHealthCheck::new();
            check.peer_template.options.connection_timeout = Some(timeout);
            check.consecutive_failure = unhealthy_after;
            check.consecutive_success = healthy_after;
            check
        }
    }
}
