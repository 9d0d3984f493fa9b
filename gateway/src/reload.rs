//! Reload: re-read and validate the whole config, build a new `Gate`, swap it in atomically.
//! Requests in flight keep the `Gate` they started with; an invalid config keeps the old one.
//! Triggered by SIGHUP, and with `run --watch` by the file changing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// One reload at a time (SIGHUP and the watcher may ask at once); holds the SHA-256 of
    /// the file as last read, so the watcher skips events that changed nothing.
    pub last: Mutex<Option<[u8; 32]>>,
}

/// How long the watcher waits for a burst of file events (an editor's write, rename and
/// chmod) to end before it reloads once.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How long the file must stay the same before a watched change is loaded.
const SETTLE: Duration = Duration::from_millis(50);

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
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        *last = digest(&self.path);
        self.reload_locked()
    }

    /// Reloads if the file's content changed since it was last read (the watcher's events
    /// also come for files beside it, and for writes that leave it as it was).
    fn reload_if_changed(&self) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = digest(&self.path);
        // A file being written in place may be read half written: wait until two reads a
        // moment apart agree (the writer's next event comes anyway if they do not).
        std::thread::sleep(SETTLE);
        if digest(&self.path) != now {
            return;
        }
        if now.is_some() && now != *last {
            *last = now;
            let _ = self.reload_locked();
        }
    }

    fn reload_locked(&self) -> Result<(), Problems> {
        let started = std::time::Instant::now();
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
                let took_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(config = %self.path.display(), took_ms, "config reloaded");
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
    pub fn on_sighup(self: &Arc<Self>) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let this = self.clone();
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                for _ in signals.forever() {
                    let _ = this.reload();
                }
            })?;
        Ok(())
    }

    /// `run --watch`: reloads when the file's content changes. The directory is watched, not
    /// the file, so that an editor that writes a new file and renames it over the old one (and
    /// a Kubernetes ConfigMap's symlink swap) is seen too. The watcher lives as long as the
    /// returned value.
    pub fn watch(
        self: &Arc<Self>,
    ) -> Result<
        notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
        String,
    > {
        use notify_debouncer_mini::notify::RecursiveMode;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = digest(&self.path);
        let this = self.clone();
        let mut debouncer = notify_debouncer_mini::new_debouncer(
            DEBOUNCE,
            move |events: notify_debouncer_mini::DebounceEventResult| match events {
                Ok(_) => this.reload_if_changed(),
                Err(e) => tracing::warn!(error = %e, "watching the config failed"),
            },
        )
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        debouncer
            .watcher()
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        tracing::info!(config = %self.path.display(), "watching the config for changes");
        Ok(debouncer)
    }
}

/// The SHA-256 of a file, `None` if it cannot be read (mid-rename, say).
fn digest(path: &std::path::Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    d.as_ref().try_into().ok()
}
