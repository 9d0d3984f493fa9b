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
    /// The `listen` and `admin` sections the process started with: they change only on
    /// restart or graceful upgrade.
    pub listeners: String,
}

/// What of a config fixes the listening sockets.
pub fn listeners(file: &tollgate_config::File) -> String {
    format!(
        "{:?} {:?} {:?}",
        file.listen.http.as_deref(),
        file.listen.https.as_ref().map(|h| h.addr.as_str()),
        file.admin.listen.as_deref()
    )
}

impl Reloader {
    pub fn reload(&self) -> Result<(), Problems> {
        let result = tollgate_config::load(&self.path).and_then(|loaded| {
            if listeners(&loaded.file) != self.listeners {
                tracing::warn!(
                    "listener addresses changed: they take effect on restart or graceful upgrade"
                );
            }
            Gate::build(&loaded, &self.metrics)
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
