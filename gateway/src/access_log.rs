//! The access log: one JSON object per request on stdout, written by a thread of its own so
//! that no request waits on the terminal or a pipe. A full queue drops lines (counted in
//! `tollgate_access_log_dropped_total`) rather than slowing requests.

use std::io::Write;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tollgate_admin::Metrics;

/// One line, in the contract's keys. Absent values are `null`.
#[derive(Debug, Serialize)]
pub struct Entry {
    #[serde(serialize_with = "rfc3339")]
    pub ts: SystemTime,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub provider: Option<String>,
    pub subject: Option<String>,
    pub tier: Option<String>,
    pub auth: Option<&'static str>,
    pub latency_ms: f64,
    pub request_id: String,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let t = time::OffsetDateTime::from(*t);
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    s.serialize_str(&text)
}

enum Msg {
    Line(Box<Entry>),
    Flush(SyncSender<()>),
}

pub struct AccessLog {
    tx: SyncSender<Msg>,
    metrics: Arc<Metrics>,
    _writer: JoinHandle<()>,
}

impl AccessLog {
    pub fn start(metrics: Arc<Metrics>) -> std::io::Result<AccessLog> {
        let (tx, rx) = sync_channel(64 * 1024);
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx))?;
        Ok(AccessLog {
            tx,
            metrics,
            _writer: writer,
        })
    }

    pub fn log(&self, entry: Entry) {
        match self.tx.try_send(Msg::Line(Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.access_log_dropped()
            }
        }
    }

    /// Waits (bounded) until every line queued so far is written and flushed.
    pub fn flush(&self) {
        let (ack_tx, ack_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(Duration::from_secs(5));
        }
    }
}

fn write_lines(rx: Receiver<Msg>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    loop {
        // Block for the next message, then write whatever else is queued, then flush: lines
        // reach stdout as soon as the queue runs dry, in batches under load.
        let msg = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(msg) => msg,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut next = Some(msg);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(entry) => {
                    if serde_json::to_writer(&mut out, &entry).is_ok() {
                        let _ = out.write_all(b"\n");
                    }
                }
                Msg::Flush(ack) => {
                    let _ = out.flush();
                    let _ = ack.try_send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}
