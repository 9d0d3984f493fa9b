//! Upstream pools: Pingora `LoadBalancer`s built from `upstreams`, and the peer for one request.

use std::sync::Arc;
use std::time::Duration;

use pingora::lb::selection::{Consistent, Random, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use tollgate_config::{Balance, Upstream as UpstreamConfig};

/// Defaults when neither the upstream nor the route says: Envoy's 5 s connect timeout, and a
/// read timeout long enough for slow APIs but short of a hung connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Upstream {
    pub name: Arc<str>,
    balancer: Balancer,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

enum Balancer {
    RoundRobin(LoadBalancer<RoundRobin>),
    Random(LoadBalancer<Random>),
    /// Consistent (ketama) hashing on a per-request key: the subject, or the client address
    /// for anonymous requests.
    Hash(LoadBalancer<Consistent>),
}

impl Upstream {
    /// Builds the pool; resolves host names once, here. The error names no YAML path: the
    /// caller knows which upstream it asked for.
    pub fn build(name: &str, config: &UpstreamConfig) -> Result<Upstream, String> {
        let targets: Vec<&str> = config.targets.iter().map(|t| t.as_str()).collect();
        let resolve = |e: std::io::Error| format!("cannot resolve targets: {e}");
        let balancer = match config.balance {
            Balance::RoundRobin => {
                Balancer::RoundRobin(LoadBalancer::try_from_iter(targets).map_err(resolve)?)
            }
            Balance::Random => {
                Balancer::Random(LoadBalancer::try_from_iter(targets).map_err(resolve)?)
            }
            Balance::Hash => Balancer::Hash(LoadBalancer::try_from_iter(targets).map_err(resolve)?),
        };
        let timeouts = config.timeouts.unwrap_or_default();
        Ok(Upstream {
            name: name.into(),
            balancer,
            connect_timeout: timeouts.connect.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            read_timeout: timeouts.read.map_or(DEFAULT_READ_TIMEOUT, |d| d.0),
        })
    }

    /// Picks a target; `key` matters only for `balance: hash`.
    pub fn select(&self, key: &[u8]) -> Option<Backend> {
        // At most this many tries to skip targets marked unhealthy.
        const TRIES: usize = 256;
        match &self.balancer {
            Balancer::RoundRobin(lb) => lb.select(key, TRIES),
            Balancer::Random(lb) => lb.select(key, TRIES),
            Balancer::Hash(lb) => lb.select(key, TRIES),
        }
    }

    pub fn peer(backend: &Backend, connect: Duration, read: Duration) -> HttpPeer {
        let mut peer = HttpPeer::new(backend.addr.clone(), false, String::new());
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect);
        peer.options.read_timeout = Some(read);
        peer.options.write_timeout = Some(read);
        peer
    }
}
