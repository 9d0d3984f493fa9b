//! A deadline for request headers on HTTP/1 connections, which Pingora does not have: it gives
//! every read of a request header its own 60 s (or the keep-alive time), so a client trickling
//! one byte a minute holds a connection forever (slowloris).
//!
//! [`Guarded`] wraps Pingora's HTTP app per connection. While the connection waits for a
//! request's headers, it may wait at most `header_timeout` for the first request, and at most
//! `idle_timeout + header_timeout` after the previous response for the next one; past that, the
//! connection is closed without an answer (as nginx does). The proxy marks the phases through a
//! task-local [`Phase`]: headers read (`new_ctx`), response done (`logging`). With `listen.h2c`
//! the first bytes are peeked here, under the same deadline, to tell HTTP/2 from HTTP/1: that
//! bounds Pingora's own unbounded sniff. HTTP/2 connections (by ALPN or preface) get no
//! deadline here: their frames carry whole header blocks, and `h2_idle_timeout` applies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;

use crate::proxy::Gateway;

/// `server.header_timeout` by default: far more than any real client needs for its headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// `server.idle_timeout` by default (Pingora's keeps idle connections forever).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// `server.idle_timeout`, in whole seconds as Pingora takes it (at least 1).
pub fn idle_timeout(file: &tollgate_config::File) -> Duration {
    let d = file
        .server
        .idle_timeout
        .map_or(DEFAULT_IDLE_TIMEOUT, |d| d.0);
    Duration::from_secs(d.as_secs().max(1))
}

/// What HTTP/2 sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

tokio::task_local! {
    static PHASE: Arc<Phase>;
}

/// Where a connection is: waiting for headers since some time, or busy with a request.
pub struct Phase {
    start: Instant,
    /// Milliseconds after `start` since the connection waits for headers; `BUSY` while a
    /// request is being handled.
    waiting_since: AtomicU64,
    /// Whether a request was ever read (the idle allowance applies after the first).
    served: AtomicU64,
}

const BUSY: u64 = u64::MAX;

impl Phase {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// The request's headers were read: no deadline until its response is done.
pub fn headers_read() {
    let _ = PHASE.try_with(|p| {
        p.waiting_since.store(BUSY, Ordering::Relaxed);
        p.served.store(1, Ordering::Relaxed);
    });
}

/// The response is done: the connection waits for the next request's headers.
pub fn request_done() {
    let _ = PHASE.try_with(|p| p.waiting_since.store(p.now_ms(), Ordering::Relaxed));
}

pub struct Guarded {
    pub proxy: Arc<HttpProxy<Gateway>>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub h2c: bool,
}

#[async_trait]
impl ServerApp for Guarded {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        let tls = stream.get_ssl_digest().is_some();
        if self.h2c && !tls {
            let mut first = [0u8; H2_PREFACE.len()];
            match tokio::time::timeout(self.header_timeout, stream.try_peek(&mut first)).await {
                // HTTP/2 by its preface; a stream that cannot be peeked is Pingora's to sniff.
                Ok(Ok(true)) if first == *H2_PREFACE => {
                    return self.proxy.process_new(stream, shutdown).await;
                }
                Ok(Ok(false)) => return self.proxy.process_new(stream, shutdown).await,
                Ok(Ok(true)) => {}
                // Fewer than 24 bytes in time, or a broken connection.
                _ => return None,
            }
        }
        let phase = Arc::new(Phase {
            start: Instant::now(),
            waiting_since: AtomicU64::new(0),
            served: AtomicU64::new(0),
        });
        let serve = PHASE.scope(phase.clone(), self.proxy.process_new(stream, shutdown));
        tokio::pin!(serve);
        loop {
            let wait = match phase.waiting_since.load(Ordering::Relaxed) {
                // Busy: look again after a header timeout (a long response is not limited).
                BUSY => self.header_timeout,
                since => {
                    let allowed = if phase.served.load(Ordering::Relaxed) == 0 {
                        self.header_timeout
                    } else {
                        self.idle_timeout + self.header_timeout
                    };
                    let elapsed = Duration::from_millis(phase.now_ms().saturating_sub(since));
                    match allowed.checked_sub(elapsed) {
                        Some(left) if !left.is_zero() => left,
                        _ => {
                            tracing::debug!("request headers not complete in time: closing");
                            return None;
                        }
                    }
                }
            };
            tokio::select! {
                done = &mut serve => return done,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn cleanup(&self) {
        self.proxy.cleanup().await;
    }
}
