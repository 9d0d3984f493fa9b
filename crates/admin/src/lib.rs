//! Tollgate's admin surface: Prometheus metrics and the `/healthz`, `/readyz`, `/metrics`
//! answers. No server here: the gateway serves [`respond`] on its admin listener.
#![deny(clippy::unwrap_used)]

mod metrics;

pub use metrics::{LazyCounter, Metrics, RouteMetrics};

/// An admin answer, ready to write.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// What `/readyz` reports: every reason the gateway is not ready yet (empty: ready).
pub trait Readiness {
    fn waiting_for(&self) -> Vec<String>;

    /// Whether what `waiting_for` lists keeps `/readyz` at 503 (`admin.readiness:
    /// all_providers`, the default) or is only reported beside a 200 (`listener`).
    fn blocking(&self) -> bool {
        true
    }
}

/// Answers one admin request.
pub fn respond(method: &str, path: &str, metrics: &Metrics, readiness: &dyn Readiness) -> Answer {
    const JSON: &str = "application/json";
    if method != "GET" && method != "HEAD" {
        return Answer {
            status: 405,
            content_type: JSON,
            body: br#"{"error":"method_not_allowed"}"#.to_vec(),
        };
    }
    match path {
        "/healthz" => Answer {
            status: 200,
            content_type: JSON,
            body: br#"{"status":"ok"}"#.to_vec(),
        },
        "/readyz" => {
            let waiting = readiness.waiting_for();
            let (status, body) = if waiting.is_empty() {
                (200, serde_json::json!({ "ready": true }))
            } else if !readiness.blocking() {
                (
                    200,
                    serde_json::json!({ "ready": true, "waiting_for": waiting }),
                )
            } else {
                (
                    503,
                    serde_json::json!({ "ready": false, "waiting_for": waiting }),
                )
            };
            Answer {
                status,
                content_type: JSON,
                body: body.to_string().into_bytes(),
            }
        }
        "/metrics" => Answer {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics.render(),
        },
        _ => Answer {
            status: 404,
            content_type: JSON,
            body: br#"{"error":"not_found"}"#.to_vec(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Waiting(Vec<String>);
    impl Readiness for Waiting {
        fn waiting_for(&self) -> Vec<String> {
            self.0.clone()
        }
    }

    #[test]
    fn readyz_lists_what_it_waits_for() {
        let m = Metrics::new();
        let a = respond("GET", "/readyz", &m, &Waiting(vec![]));
        assert_eq!((a.status, a.body), (200, br#"{"ready":true}"#.to_vec()));
        let a = respond(
            "GET",
            "/readyz",
            &m,
            &Waiting(vec!["provider kc: no keys yet".into()]),
        );
        assert_eq!(a.status, 503);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["ready"], false);
        assert_eq!(v["waiting_for"][0], "provider kc: no keys yet");
    }

    struct Reporting(Vec<String>);
    impl Readiness for Reporting {
        fn waiting_for(&self) -> Vec<String> {
            self.0.clone()
        }
        fn blocking(&self) -> bool {
            false
        }
    }

    #[test]
    fn readiness_listener_only_reports() {
        let m = Metrics::new();
        let a = respond(
            "GET",
            "/readyz",
            &m,
            &Reporting(vec!["provider kc: no keys yet".into()]),
        );
        assert_eq!(a.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["ready"], true);
        assert_eq!(v["waiting_for"][0], "provider kc: no keys yet");
    }

    #[test]
    fn healthz_and_unknown_paths() {
        let m = Metrics::new();
        assert_eq!(respond("GET", "/healthz", &m, &Waiting(vec![])).status, 200);
        assert_eq!(respond("GET", "/nope", &m, &Waiting(vec![])).status, 404);
        assert_eq!(
            respond("POST", "/healthz", &m, &Waiting(vec![])).status,
            405
        );
    }
}
