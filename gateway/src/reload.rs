//! Reload: re-read and validate the whole config, build a new `Gate`, swap it in atomically.
//! Requests in flight keep the `Gate` they started with; an invalid config keeps the old one.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_admin::Metrics;
use tollgate_config::Problems;

use crate::gate::Gate;

pub struct Reloader {
    pub path: PathBuf,
    pub gate: Arc<ArcSwap<Gate>>,
    pub metrics: Arc<Metrics>,
    /// Where background work of a gate (health checks) runs.
    pub runtime: tokio::runtime::Handle,
    /// The settings the process started with that a reload cannot change.
    pub restart_only: String,
}

/// The settings fixed at start: listening sockets, threads and shutdown behaviour.
pub fn restart_only(file: &tollgate_config::File) -> String {
    format!(
        "{:?} {:?} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        file.listen.http.as_deref(),
        file.listen
            .https
            .as_ref()
            .map(|h| (h.addr.as_str(), h.cert.as_str(), h.key.as_str())),
        file.listen.h2c,
        file.admin.listen.as_deref(),
        file.server.threads,
        file.server.work_stealing,
        file.server.header_timeout,
        file.server.idle_timeout,
        file.server.grace_period,
        file.server.upgrade_sock.as_deref(),
    )
}

impl Reloader {
    pub fn reload(&self) -> Result<(), Problems> {
        let result = tollgate_config::load(&self.path).and_then(|loaded| {
            let previous = self.gate.load();
            let gate = Gate::build(&loaded, &self.metrics, Some(&self.runtime), Some(&previous))?;
            if restart_only(&loaded.file) != self.restart_only {
                tracing::warn!(
                    "listen, admin.listen, server.threads, server.work_stealing, server.header_timeout, server.idle_timeout, server.grace_period or server.upgrade_sock changed: they take effect on restart or graceful upgrade"
                );
            }
            Ok(gate)
        });
        match result {
            Ok(gate) => {
                self.gate.store(Arc::new(gate));
                self.metrics.reload(true);
                tracing::info!(config = %self.path.display(), "config reloaded");
                Ok(())
            }
            Err(problems) => {
                self.metrics.reload(false);
                for p in problems.iter() {
                    tracing::error!(config = %self.path.display(), "reload refused, keeping the running config: {p}");
                }
                Err(problems)
            }
        }
    }

    /// Reloads on every SIGHUP, from a thread of its own. The handler is installed before this
    /// returns, so a SIGHUP can never kill the process (its default action) once we serve.
    pub fn on_sighup(self) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                for _ in signals.forever() {
                    let _ = self.reload();
                }
            })?;
        Ok(())
    }
}
