//! Graceful shutdown that waits only as long as it must.
//!
//! On SIGTERM (and after a SIGQUIT upgrade hand-over) Pingora stops accepting, then sleeps the
//! whole grace period. We watch its execution phase instead: once the grace period starts, we
//! wait for the requests still in flight (bounded by `server.grace_period`), flush the access
//! log and exit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::server::ExecutionPhase;
use prometheus::IntGauge;
use tokio::sync::broadcast::Receiver;

use crate::access_log::AccessLog;

/// Requests between their first phase and their access-log line: the
/// `tollgate_requests_in_flight` gauge.
#[derive(Clone)]
pub struct InFlight(pub IntGauge);

/// Held by one request; dropping it marks the request done.
pub struct InFlightGuard(IntGauge);

impl InFlight {
    pub fn enter(&self) -> InFlightGuard {
        self.0.inc();
        InFlightGuard(self.0.clone())
    }

    pub fn count(&self) -> i64 {
        self.0.get()
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Starts the thread that ends the process once the grace period has begun and nothing is in
/// flight any more (or the grace period is over).
pub fn exit_when_drained(
    mut phases: Receiver<ExecutionPhase>,
    in_flight: InFlight,
    grace: Duration,
    access_log: Arc<AccessLog>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || {
            loop {
                match phases.blocking_recv() {
                    Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
            // Idle means nothing in flight for a moment: a connection accepted just before the
            // listener closed counts only once its request head is read.
            const SETTLE: Duration = Duration::from_secs(1);
            let deadline = Instant::now() + grace;
            let mut idle_since = None;
            while Instant::now() < deadline {
                if in_flight.count() > 0 {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= SETTLE {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let left = in_flight.count();
            if left > 0 {
                tracing::warn!(
                    requests = left,
                    "grace period over with requests still in flight"
                );
            } else {
                tracing::info!("all requests finished; exiting");
            }
            access_log.flush();
            std::process::exit(0);
        })?;
    Ok(())
}
