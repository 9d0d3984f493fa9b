//! The admin listener: `tollgate_admin::respond` served by a Pingora HTTP service.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use tollgate_admin::{respond, Metrics, Readiness};

use crate::gate::Gate;

pub struct AdminApp {
    pub gate: Arc<ArcSwap<Gate>>,
    pub metrics: Arc<Metrics>,
}

impl Readiness for Gate {
    /// Every provider without keys (`admin.readiness: all_providers`, the default).
    fn waiting_for(&self) -> Vec<String> {
        self.auth
            .providers()
            .iter()
            .filter_map(|p| p.waiting_for())
            .collect()
    }

    fn blocking(&self) -> bool {
        self.readiness == tollgate_config::Readiness::AllProviders
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let gate = self.gate.load();
        let answer = respond(
            req.method.as_str(),
            req.uri.path(),
            &self.metrics,
            gate.as_ref(),
        );
        let len = answer.body.len();
        http::Response::builder()
            .status(answer.status)
            .header(http::header::CONTENT_TYPE, answer.content_type)
            .header(http::header::CONTENT_LENGTH, len)
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(answer.body)
            .unwrap_or_default()
    }
}
