//! Reload: re-read and validate the whole config, build a new `Gate`, swap it in atomically.
//! Requests in flight keep the `Gate` they started with; an invalid config keeps the old one.
//! Triggered by SIGHUP, and with `run --watch` by the file changing.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Where a replaced gate goes to be dropped.
    pub retired: Retired<Gate>,
}

/// How long the watcher waits for a burst of file events (an editor's write, rename and
/// chmod) to end before it reloads once.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How long the file must stay the same before a watched change is loaded.
const SETTLE: Duration = Duration::from_millis(50);
/// The nice value of the threads that build and drop gates. Workers run at 0: on a busy
/// machine a build (about 20 ms from start to swap for 1000 routes and 20 providers) then gets
/// a small share of a contended core instead of an equal one, and the reload waits a little
/// longer instead of the requests in flight (docs/benchmarks.md: a smaller bump, not none).
const BACKGROUND_NICE: i32 = 10;
/// How often the retirer looks whether the requests holding an old gate are done.
const RETIRE_POLL: Duration = Duration::from_millis(10);
/// After this long a retired gate is let go anyway: the last request holding it drops it.
const RETIRE_WAIT: Duration = Duration::from_secs(60);

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
        lower_priority();
        let started = Instant::now();
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
                let old = self.gate.swap(Arc::new(gate));
                self.metrics.reload(true);
                let took_ms = started.elapsed().as_secs_f64() * 1000.0;
                tracing::info!(config = %self.path.display(), took_ms, "config reloaded");
                self.retired.put(old);
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

/// Old gates, kept until the requests in flight on them are done and then dropped on a thread
/// of their own. Tearing down a large gate (routers, pools, metric handles: about a millisecond
/// for 1000 routes) would otherwise fall to a worker, inside the last request that held it.
pub struct Retired<T: Send + Sync + 'static>(mpsc::Sender<Arc<T>>);

impl<T: Send + Sync + 'static> Retired<T> {
    pub fn start() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Arc<T>>();
        std::thread::Builder::new()
            .name("retire".into())
            .spawn(move || {
                lower_priority();
                let mut held: Vec<(Arc<T>, Instant)> = Vec::new();
                loop {
                    let next = if held.is_empty() {
                        rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
                    } else {
                        rx.recv_timeout(RETIRE_POLL)
                    };
                    match next {
                        Ok(old) => held.push((old, Instant::now())),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    // Ours is the last reference once the requests holding it are done (each
                    // holds a clone from its first phase to its access-log line).
                    held.retain(|(old, since)| {
                        Arc::strong_count(old) > 1 && since.elapsed() < RETIRE_WAIT
                    });
                }
            })?;
        Ok(Self(tx))
    }

    pub fn put(&self, old: Arc<T>) {
        // Only fails if the thread is gone; `old` is then dropped here.
        let _ = self.0.send(old);
    }
}

/// Lowers the calling thread's priority to `BACKGROUND_NICE`. On Linux the nice value belongs
/// to a thread, so the workers keep theirs; a failure only costs the workers some CPU.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), BACKGROUND_NICE) {
        tracing::debug!(error = %e, "cannot lower this thread's priority");
    }
}

/// The SHA-256 of a file, `None` if it cannot be read (mid-rename, say).
fn digest(path: &std::path::Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    d.as_ref().try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the name of the thread that drops it.
    struct Probe(Arc<Mutex<Option<String>>>);

    impl Drop for Probe {
        fn drop(&mut self) {
            let name = std::thread::current().name().map(str::to_owned);
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) = name.or(Some(String::new()));
        }
    }

    #[test]
    fn a_retired_value_is_dropped_on_the_retire_thread_once_its_last_holder_is_done() {
        let dropped_by = Arc::new(Mutex::new(None));
        let retired = Retired::start().unwrap_or_else(|e| panic!("start: {e}"));
        let in_flight = Arc::new(Probe(dropped_by.clone()));
        retired.put(in_flight.clone());
        // A request still holds it: it cannot have been dropped.
        assert_eq!(*dropped_by.lock().unwrap_or_else(|e| e.into_inner()), None);
        drop(in_flight);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            assert!(Instant::now() < deadline, "not dropped within 5 s");
            std::thread::sleep(RETIRE_POLL);
        }
        assert_eq!(
            dropped_by
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_deref(),
            Some("retire")
        );
    }
}
