//! `tollgate explain`: one request, dry-run through the same stages as the proxy (routing,
//! authentication, authorization), each step's decision and reason on one line.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;
use tollgate_admin::Metrics;

use crate::authn::authenticate;
use crate::denial::Denial;
use crate::gate::Gate;
use crate::route::route;

/// The request to explain, from the command line.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: Option<&'a str>,
    pub token: Option<&'a str>,
    pub api_key: Option<&'a str>,
}

/// How long `explain` waits for remote providers' keys before it goes on without them.
const KEYS_WAIT: Duration = Duration::from_secs(10);

pub fn explain(config: &Path, request: &Request<'_>) -> ExitCode {
    let loaded = match tollgate_config::load(config) {
        Ok(l) => l,
        Err(problems) => {
            println!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = Arc::new(Metrics::new());
    let gate = match Gate::build(&loaded, &metrics, Some(runtime.handle()), None) {
        Ok(g) => g,
        Err(problems) => {
            println!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let req = match header(&gate, request) {
        Ok(r) => r,
        Err(e) => {
            println!("request: refused: {e}");
            return ExitCode::FAILURE;
        }
    };

    let routed = match route(&gate, &req) {
        Ok(r) => r,
        Err(d) => return refused("route", &d),
    };
    let r = &gate.routes[routed.route];
    println!(
        "route: ok: {:?} (upstream {}, auth {})",
        &*r.name,
        r.upstream.name,
        match r.auth {
            tollgate_config::AuthMode::None => "none",
            tollgate_config::AuthMode::Optional => "optional",
            tollgate_config::AuthMode::Required => "required",
        }
    );

    // Remote keys are fetched in the background, as by `run`: give the token's issuer (by its
    // unverified `iss`) a moment to get its keys.
    let issuer = request
        .token
        .and_then(|t| tollgate_auth::token::Token::parse(t).ok())
        .map(|t| t.iss);
    let deadline = Instant::now() + KEYS_WAIT;
    while let Some(p) = gate
        .auth
        .providers()
        .iter()
        .find(|p| issuer.as_deref().is_some_and(|iss| waiting(p, iss)))
    {
        if Instant::now() >= deadline {
            println!(
                "authenticate: note: provider {} has no keys after {KEYS_WAIT:?}",
                p.name
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50)); // polling the provider's state
    }
    let caller = match runtime.block_on(authenticate(&gate, r, &req, &metrics)) {
        Ok(c) => c,
        Err((d, _)) => return refused("authenticate", &d),
    };
    match &caller.identity {
        None => println!("authenticate: ok: {}", caller.result),
        Some(id) => println!(
            "authenticate: ok: provider {}{}, subject {}, roles [{}], scopes [{}]",
            id.provider,
            id.tenant
                .as_ref()
                .map_or(String::new(), |t| format!(", tenant {t}")),
            id.subject.as_deref().unwrap_or("(none)"),
            id.roles.join(", "),
            id.scopes.join(", ")
        ),
    }

    if let crate::authz::Captured::Tenant(t) = &routed.tenant {
        println!("authorize: the route captures tenant {t:?}: only its callers are admitted");
    }
    if let Err(d) = crate::authz::authorize(r, &routed.tenant, caller.identity.as_deref()) {
        return refused("authorize", &d);
    }
    match (&r.allow, &caller.identity) {
        (None, _) => println!("authorize: ok: the route has no allow rules"),
        (Some(_), None) => println!("authorize: ok: anonymous caller of an optional route"),
        (Some(_), Some(_)) => {
            println!("authorize: ok: the caller satisfies the route's allow rules")
        }
    }
    if r.rate_limits.is_empty() {
        println!("rate limit: ok: the route has no rate limit");
    }
    for policy in &r.rate_limits {
        let caller = tollgate_ratelimit::Caller {
            identity: caller.identity.as_deref(),
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        };
        match policy.tier(&caller) {
            Some(tier) => match tier.bucket() {
                Some(b) => println!(
                    "rate limit: policy {:?}, tier {:?}: {} requests per {} s, burst {}",
                    &*policy.name,
                    &*tier.name,
                    b.quota.count,
                    tollgate_ratelimit::gcra::ceil_secs(b.quota.period_ns),
                    b.quota.burst
                ),
                None => println!(
                    "rate limit: policy {:?}, tier {:?}: unlimited",
                    &*policy.name, &*tier.name
                ),
            },
            None => println!("rate limit: policy {:?}: no tier", &*policy.name),
        }
    }
    println!("result: allowed");
    ExitCode::SUCCESS
}

/// Whether the provider of `iss` is still waiting for its first keys (for a tenant's issuer:
/// a listed tenant's, which is fetched at start).
fn waiting(p: &tollgate_auth::Provider, iss: &str) -> bool {
    match (&p.tenancy, p.tenants()) {
        (None, _) => p.issuer == iss && !p.ready(),
        (Some((template, _)), Some(tenants)) => template
            .tenant_of(iss)
            .and_then(|t| tenants.existing(t))
            .is_some_and(|r| r.keys().is_none()),
        (Some((template, _)), None) => template.tenant_of(iss).is_some() && !p.ready(),
    }
}

fn refused(step: &str, d: &Denial) -> ExitCode {
    println!(
        "{step}: refused: {} {}: {}",
        d.status, d.code, d.description
    );
    for (name, value) in &d.headers {
        println!("  {name}: {value}");
    }
    println!("result: refused with {}", d.status);
    ExitCode::FAILURE
}

fn header(gate: &Gate, request: &Request<'_>) -> Result<RequestHeader, String> {
    // As sent: methods are case-sensitive (RFC 9110 §9.1), so `get` is not `GET` here either.
    let mut req = RequestHeader::build(request.method, request.path.as_bytes(), None)
        .map_err(|e| format!("bad method or path: {e}"))?;
    let mut set = |name: &str, value: String| {
        req.insert_header(name.to_owned(), value)
            .map_err(|e| format!("bad {name}: {e}"))
    };
    set("host", request.host.unwrap_or("localhost").to_owned())?;
    if let Some(token) = request.token {
        set("authorization", format!("Bearer {token}"))?;
    }
    if let Some(key) = request.api_key {
        let name = gate
            .auth
            .api_key_header()
            .map_or("x-api-key", |h| h.as_str())
            .to_owned();
        set(&name, key.to_owned())?;
    }
    Ok(req)
}
