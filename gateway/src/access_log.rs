//! The access log: one JSON object per request on stdout, written in batches by a thread of its
//! own so that no request waits on the terminal or a pipe. A full queue drops lines (counted in
//! `tollgate_access_log_dropped_total`) rather than slowing requests.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tollgate_admin::Metrics;

/// One line, in the contract's keys. Absent values are `null`.
#[derive(Debug, Serialize)]
pub struct Entry {
    #[serde(serialize_with = "rfc3339")]
    pub ts: SystemTime,
    #[serde(serialize_with = "method")]
    pub method: http::Method,
    pub path: String,
    pub status: u16,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub provider: Option<Arc<str>>,
    /// `$tenant`: a multi-tenant provider's tenant, or an API key's.
    pub tenant: Option<Arc<str>>,
    pub subject: Option<String>,
    pub tier: Option<Arc<str>>,
    pub auth: Option<&'static str>,
    pub latency_ms: f64,
    #[serde(serialize_with = "header_text")]
    pub request_id: http::HeaderValue,
    /// The W3C `traceparent`'s trace id, when the request carried a valid one.
    pub trace_id: Option<String>,
}

fn method<S: serde::Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn header_text<S: serde::Serializer>(v: &http::HeaderValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.to_str().unwrap_or_default())
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let t = time::OffsetDateTime::from(*t);
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    s.serialize_str(&text)
}

/// Lines wait here until the writer takes the whole batch: a request only pushes onto a
/// vector under an uncontended lock. (A channel would wake the writer thread for every line, a
/// context switch per request on a busy core.)
struct Shared {
    queue: Mutex<Vec<Entry>>,
    out: Mutex<std::io::BufWriter<std::io::Stdout>>,
    metrics: Arc<Metrics>,
}

/// At most this many lines wait; past it lines are dropped and counted.
const QUEUE_LIMIT: usize = 64 * 1024;
/// How often the writer takes a batch.
const WRITE_INTERVAL: Duration = Duration::from_millis(20);

pub struct AccessLog {
    shared: Arc<Shared>,
}

impl AccessLog {
    pub fn start(metrics: Arc<Metrics>) -> std::io::Result<AccessLog> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(1024)),
            out: Mutex::new(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            )),
            metrics,
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                std::thread::sleep(WRITE_INTERVAL);
                writer.write_batch();
            })?;
        Ok(AccessLog { shared })
    }

    pub fn log(&self, entry: Entry) {
        let mut queue = lock(&self.shared.queue);
        if queue.len() < QUEUE_LIMIT {
            queue.push(entry);
        } else {
            drop(queue);
            self.shared.metrics.access_log_dropped();
        }
    }

    /// Writes and flushes every line queued so far, on the calling thread.
    pub fn flush(&self) {
        self.shared.write_batch();
    }
}

impl Shared {
    fn write_batch(&self) {
        // Swap in a vector of the same size, so that the queue does not grow again each batch.
        let batch = {
            let mut queue = lock(&self.queue);
            let capacity = queue.capacity();
            std::mem::replace(&mut *queue, Vec::with_capacity(capacity))
        };
        if batch.is_empty() {
            return;
        }
        let mut out = lock(&self.out);
        for entry in &batch {
            if serde_json::to_writer(&mut *out, entry).is_ok() {
                let _ = out.write_all(b"\n");
            }
        }
        let _ = out.flush();
    }
}

/// A poisoned lock still holds a usable queue: a panic elsewhere must not stop the log.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
