//! The admin listener: `tollgate_admin::respond` served by a Pingora HTTP service.

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use tollgate_admin::{respond, Answer, Metrics, Readiness};
use tollgate_auth::tenants::Allowed;

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
        let answer = match req.uri.path() {
            "/tenants" if matches!(req.method, http::Method::GET | http::Method::HEAD) => {
                tenants(&gate)
            }
            path => {
                if path == "/metrics" {
                    before_scrape(&gate, &self.metrics);
                }
                respond(
                    req.method.as_str(),
                    req.uri.path(),
                    &self.metrics,
                    gate.as_ref(),
                )
            }
        };
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

/// `GET /tenants`: every multi-tenant provider, its concrete issuers and their key state.
fn tenants(gate: &Gate) -> Answer {
    let providers: Vec<serde_json::Value> = gate
        .auth
        .providers()
        .iter()
        .filter_map(|p| {
            let (_, allowed) = p.tenancy.as_ref()?;
            let accepted = match allowed {
                Allowed::Any => serde_json::json!("any"),
                Allowed::List(list) => {
                    let mut names: Vec<&String> = list.iter().collect();
                    names.sort();
                    serde_json::json!(names)
                }
            };
            let issuers: Vec<serde_json::Value> = p
                .tenants()
                .map(|t| t.states())
                .unwrap_or_default()
                .into_iter()
                .map(|s| {
                    serde_json::json!({
                        "tenant": s.tenant,
                        "issuer": s.issuer,
                        "ready": s.keys.is_some(),
                        "keys": s.keys,
                    })
                })
                .collect();
            Some(serde_json::json!({
                "provider": &*p.name,
                "issuer": p.issuer,
                "tenants": accepted,
                // Keys shared by every tenant (a static source, or one jwks_uri): no issuers
                // of their own to list.
                "keys_per_tenant": p.tenants().is_some(),
                "issuers": issuers,
            }))
        })
        .collect();
    Answer {
        status: 200,
        content_type: "application/json",
        body: serde_json::json!({ "providers": providers })
            .to_string()
            .into_bytes(),
    }
}

/// Sets `tollgate_tenants` and `tollgate_token_cache_total` before a scrape.
fn before_scrape(gate: &Gate, metrics: &Metrics) {
    let (hits, misses) = gate.auth.cache().counts();
    metrics.token_cache(hits, misses);
    // Providers a reload removed leave no series behind.
    metrics.clear_tenants();
    for p in gate.auth.providers() {
        if let Some(t) = p.tenants() {
            let states = t.states();
            let with_keys = states.iter().filter(|s| s.keys.is_some()).count();
            metrics.tenants(&p.name, states.len(), with_keys);
        }
    }
}
