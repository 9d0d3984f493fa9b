//! The Redis backend: the same GCRA as [`crate::gcra`], as one Lua script run atomically by
//! Redis (one round trip, `EVALSHA`), so that every gateway sharing the Redis shares the count.
//!
//! Keys are `tollgate:rl:<policy>:<tier>:{<caller key>}`: the hash tag keeps a key on one slot
//! of a Redis Cluster while different callers spread over the slots. A key expires when its
//! bucket is full again, so Redis holds only callers of the last period.
//!
//! Every call is bounded by `redis.timeout`; a failed or late call is the policy's `on_error`
//! (the caller decides). The connection (a `ConnectionManager`, or a cluster connection) is
//! made and remade in the background, so Redis coming back is noticed within seconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;

use crate::gcra::{Decision, Quota};

/// `redis.on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// This instance's own bucket, with the same limit.
    Local,
    Allow,
    /// 503 with `Retry-After: 1`.
    Deny,
}

/// GCRA in milliseconds on Redis's own clock (`TIME`), so that gateways with skewed clocks
/// agree. Returns {allowed, remaining, reset_ms, retry_after_ms}.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + interval
local ahead = new - now
if ahead <= capacity then
  redis.call('SET', KEYS[1], new, 'PX', ahead)
  return {1, math.floor((capacity - ahead) / interval), ahead, 0}
end
return {0, 0, tat - now, ahead - capacity}
";

/// Gives one request back (a later policy refused it).
const REFUND: &str = r"
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat then redis.call('SET', KEYS[1], tat - tonumber(ARGV[1]), 'KEEPTTL') end
return 0
";

enum Conn {
    Single(ConnectionManager),
    /// Set by a background task once the cluster answers.
    Cluster(Arc<ArcSwapOption<ClusterConnection>>),
}

pub struct Shared {
    conn: Conn,
    timeout: Duration,
    pub on_error: OnError,
    acquire: redis::Script,
    refund: redis::Script,
    /// Calls that failed or took longer than `timeout`.
    pub errors: AtomicU64,
    on_failure: Arc<dyn Fn() + Send + Sync>,
    _task: Option<Task>,
}

/// PEM files for `rediss://`: the CA to trust instead of the public roots, and a client
/// certificate with its key.
#[derive(Default)]
pub struct Tls {
    pub ca: Option<Vec<u8>>,
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    fn certificates(self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client
                .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.ca,
        }
    }
}

/// Whether a `redis://` / `rediss://` URL parses.
pub fn valid_url(url: &str) -> bool {
    redis::Client::open(url).is_ok()
}

struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Shared {
    /// Connects lazily: nothing waits for Redis here. Must run inside `runtime`'s context or
    /// be given it.
    pub fn new(
        url: Option<&str>,
        cluster_nodes: &[String],
        tls: Option<Tls>,
        timeout: Duration,
        on_error: OnError,
        on_failure: Arc<dyn Fn() + Send + Sync>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Shared, String> {
        let _inside = runtime.enter();
        let (conn, task) = if cluster_nodes.is_empty() {
            let url = url.ok_or("redis needs url or cluster_nodes")?;
            let client = match tls {
                None => redis::Client::open(url),
                Some(tls) => redis::Client::build_with_tls(url, tls.certificates()),
            }
            .map_err(|e| format!("cannot use the Redis URL or its TLS files: {:?}", e.kind()))?;
            let config = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(timeout.max(Duration::from_millis(10))))
                .set_min_delay(Duration::from_millis(100))
                .set_max_delay(Duration::from_secs(1))
                .set_number_of_retries(usize::MAX);
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| format!("cannot set up the connection: {e}"))?;
            (Conn::Single(manager), None)
        } else {
            let mut builder = redis::cluster::ClusterClient::builder(cluster_nodes.to_vec());
            if let Some(tls) = tls {
                builder = builder.certs(tls.certificates());
            }
            let client = builder
                .connection_timeout(Duration::from_secs(1))
                .response_timeout(timeout.max(Duration::from_millis(10)))
                .retries(1)
                .build()
                .map_err(|_| "cluster_nodes: not valid Redis URLs".to_owned())?;
            let slot = Arc::new(ArcSwapOption::empty());
            let fill = slot.clone();
            // The first connection needs one seed node to answer: try until one does.
            let task = runtime.spawn(async move {
                loop {
                    match client.get_async_connection().await {
                        Ok(c) => {
                            fill.store(Some(Arc::new(c)));
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "redis cluster: no seed node answers yet");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
            (Conn::Cluster(slot), Some(Task(task)))
        };
        Ok(Shared {
            conn,
            timeout,
            on_error,
            acquire: redis::Script::new(ACQUIRE),
            refund: redis::Script::new(REFUND),
            errors: AtomicU64::new(0),
            on_failure,
            _task: task,
        })
    }

    /// One request against the shared bucket `key`; `Err` when Redis failed or was late.
    pub async fn acquire(&self, key: &str, quota: &Quota) -> Result<Decision, String> {
        let interval = (quota.interval_ns() / 1_000_000).max(1);
        let capacity = interval.saturating_mul(quota.burst);
        let mut invocation = self.acquire.key(key);
        invocation.arg(interval).arg(capacity);
        let reply: Vec<i64> = self.run(&invocation).await.inspect_err(|_| {
            self.errors.fetch_add(1, Ordering::Relaxed);
            (self.on_failure)();
        })?;
        let [allowed, remaining, reset, retry] = reply[..] else {
            return Err("unexpected reply from the rate-limit script".into());
        };
        let ms = |v: i64| u64::try_from(v).unwrap_or(0).saturating_mul(1_000_000);
        Ok(Decision {
            allowed: allowed == 1,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset_ns: ms(reset),
            retry_after_ns: ms(retry),
        })
    }

    pub async fn refund(&self, key: &str, quota: &Quota) {
        let interval = (quota.interval_ns() / 1_000_000).max(1);
        let mut invocation = self.refund.key(key);
        invocation.arg(interval);
        // A refund that fails leaves the caller one request short for one interval: counted as
        // an error, not retried.
        if self.run::<i64>(&invocation).await.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
            (self.on_failure)();
        }
    }

    /// Runs a script invocation on whichever connection there is, bounded by `timeout`.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, String> {
        match &self.conn {
            Conn::Single(manager) => {
                let mut c = manager.clone();
                self.bounded(invocation.invoke_async(&mut c)).await
            }
            Conn::Cluster(slot) => match slot.load_full() {
                Some(c) => {
                    let mut c = (*c).clone();
                    self.bounded(invocation.invoke_async(&mut c)).await
                }
                None => Err("no cluster connection yet".into()),
            },
        }
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}
