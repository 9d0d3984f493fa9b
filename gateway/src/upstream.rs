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
use tollgate_config::{Balance, HealthCheck, Protocol, Upstream as UpstreamConfig, UpstreamTls};

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
    tls: Option<Tls>,
    /// Per target: out of rotation until this many ms after `epoch` (0: in rotation).
    refused_until: HashMap<SocketAddr, AtomicU64>,
    /// The target of a pool of one.
    only: Option<Backend>,
    epoch: Instant,
    cooldown: Duration,
    _checker: Option<Checker>,
}

/// `tls`: TLS to every target, verified against `ca_file` (or the system's roots) for `sni`.
struct Tls {
    /// Never empty: Pingora skips certificate verification for an empty SNI.
    sni: String,
    ca: Option<Arc<pingora::protocols::tls::CaType>>,
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
    /// health checks there. An error names the key it is about (`targets`, `tls`).
    pub fn build(
        name: &str,
        config: &UpstreamConfig,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Result<Upstream, (&'static str, String)> {
        let targets: Vec<&str> = config.targets.iter().map(|t| t.as_str()).collect();
        let tls = config
            .tls
            .as_ref()
            .map(|t| tls(t, &targets))
            .transpose()
            .map_err(|e| ("tls", e))?;
        let check = config
            .health_check
            .as_ref()
            .map(|h| health_check(h, tls.as_ref()));
        let balancer = Arc::new(match config.balance {
            Balance::RoundRobin => {
                Balancer::RoundRobin(lb(&targets, check).map_err(|e| ("targets", e))?)
            }
            Balance::Random => Balancer::Random(lb(&targets, check).map_err(|e| ("targets", e))?),
            Balance::Hash => Balancer::Hash(lb(&targets, check).map_err(|e| ("targets", e))?),
        });
        let refused_until = balancer
            .backends()
            .get_backend()
            .iter()
            .map(|b| (b.addr.clone(), AtomicU64::new(0)))
            .collect();
        let all = balancer.backends().get_backend();
        let only = all.first().filter(|_| all.len() == 1).cloned();
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
            tls,
            refused_until,
            only,
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
        let usable = |b: &Backend, healthy: bool| {
            healthy
                && self.refused_until.get(&b.addr).is_none_or(|until| {
                    // The clock is read only for a target that was ever refused.
                    let until = until.load(Ordering::Relaxed);
                    until == 0 || until <= self.epoch.elapsed().as_millis() as u64
                })
        };
        // One target: no choice to make (the common sidecar shape).
        if let Some(only) = &self.only {
            let healthy = self.balancer.backends().ready(only);
            return usable(only, healthy).then(|| only.clone());
        }
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
        let sni = self.tls.as_ref().map_or(String::new(), |t| t.sni.clone());
        let mut peer = HttpPeer::new(backend.addr.clone(), self.tls.is_some(), sni);
        if let Some(tls) = &self.tls {
            peer.options.ca = tls.ca.clone();
        }
        peer.options.alpn = match (self.protocol, self.tls.is_some()) {
            // h2c with prior knowledge (gRPC); the upstream must speak HTTP/2 cleartext.
            (Protocol::Http2, _) => ALPN::H2,
            (Protocol::Http1, true) => ALPN::H1,
            (Protocol::Http1, false) => peer.options.alpn,
        };
        if self.protocol == Protocol::Http2 {
            // Pingora's default is one stream per connection: a new connection for every
            // request in flight. Streams share one, up to this many (and to what the target
            // allows in its SETTINGS); more in flight open another.
            peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
        }
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect);
        peer.options.read_timeout = Some(read);
        // No write timeout: writes to the upstream run beside the read of its response, which
        // the read timeout bounds; one timer fewer per request (docs/benchmarks.md).
        peer
    }
}

/// Concurrent streams on one HTTP/2 connection to a target (gRPC servers commonly allow 100).
const H2_STREAMS_PER_CONNECTION: usize = 100;

impl Balancer {
    fn backends(&self) -> &pingora::lb::Backends {
        match self {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Random(lb) => lb.backends(),
            Balancer::Hash(lb) => lb.backends(),
        }
    }
}

/// The SNI (the `sni` key, else the first target's host) and the CA certificates of `tls`.
fn tls(config: &UpstreamTls, targets: &[&str]) -> Result<Tls, String> {
    let sni = match config.sni.as_deref() {
        Some(sni) if !sni.is_empty() => sni.to_owned(),
        _ => targets
            .first()
            .and_then(|t| t.rsplit_once(':'))
            .map(|(host, _)| {
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned()
            })
            .ok_or("tls needs an sni or a target host")?,
    };
    let ca = match config.ca_file.as_deref() {
        None => None,
        Some(path) => Some(ca_certificates(path)?),
    };
    Ok(Tls { sni, ca })
}

/// Reads PEM CA certificates. Each is parsed here first: Pingora's certificate type panics on
/// DER it cannot parse.
fn ca_certificates(path: &str) -> Result<Arc<pingora::protocols::tls::CaType>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file: {e}"))?;
    let mut certs = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(&pem) {
        let block = block.map_err(|e| format!("ca_file is not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        if x509_parser::parse_x509_certificate(&block.contents).is_err() {
            return Err("ca_file holds a certificate that does not parse".to_owned());
        }
        let cert = pingora::utils::tls::WrappedX509::new(block.contents, |raw| {
            pingora::utils::tls::parse_x509(raw)
        });
        certs.push(cert);
    }
    if certs.is_empty() {
        return Err("ca_file holds no certificate".to_owned());
    }
    Ok(Arc::from(certs.into_boxed_slice()))
}

/// `health_check`: an HTTP GET of `path` (any 2xx is healthy), or a TCP connect without a path.
fn health_check(config: &HealthCheck, tls: Option<&Tls>) -> Box<dyn PingoraCheck + Send + Sync> {
    let timeout = config.timeout.map_or(DEFAULT_CHECK_TIMEOUT, |d| d.0);
    let unhealthy_after = config.unhealthy_after.unwrap_or(2).max(1) as usize;
    let healthy_after = config.healthy_after.unwrap_or(1).max(1) as usize;
    match &config.path {
        Some(path) => {
            let mut check = HttpHealthCheck::new("localhost", tls.is_some());
            if let Some(tls) = tls {
                check.peer_template.sni = tls.sni.clone();
                check.peer_template.options.ca = tls.ca.clone();
            }
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
            let mut check = match tls {
                Some(tls) => TcpHealthCheck::new_tls(&tls.sni),
                None => TcpHealthCheck::new(),
            };
            check.peer_template.options.connection_timeout = Some(timeout);
            check.consecutive_failure = unhealthy_after;
            check.consecutive_success = healthy_after;
            check
        }
    }
}
