//! The request pipeline inside Pingora's `ProxyHttp` phases:
//! route → authenticate → authorize → rate-limit → forward.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::Peer;
use pingora::{Error, ErrorSource, ErrorType, Result};
use tollgate_config::AuthMode;

use crate::access_log::{AccessLog, Entry};
use crate::authn::authenticate;
use crate::denial::Denial;
use crate::forwarded::forwarded;
use crate::gate::{Gate, Route};
use crate::lifecycle::{InFlight, InFlightGuard};
use crate::route::route;

pub struct Gateway {
    pub gate: Arc<ArcSwap<Gate>>,
    pub access_log: Arc<AccessLog>,
    pub in_flight: InFlight,
    pub metrics: Arc<tollgate_admin::Metrics>,
    /// `server.idle_timeout` in seconds: idle HTTP/1.1 keep-alive connections are closed after
    /// it (Pingora's default keeps them forever).
    pub idle_timeout_secs: u64,
}

/// What one request carries from phase to phase.
pub struct RequestCtx {
    /// The config this request started with: a reload never changes it mid-request.
    gate: Arc<Gate>,
    started: Instant,
    /// Built once, shared by the upstream request, the response and the access log.
    request_id: HeaderValue,
    /// From a valid W3C `traceparent`, for the access log.
    trace_id: Option<String>,
    grpc: bool,
    route: Option<usize>,
    upstream_uri: Option<String>,
    client: IpAddr,
    forwarded_for: String,
    trusted_peer: bool,
    /// The client connected over TLS.
    tls: bool,
    /// Status of an answer the gateway made itself.
    denied: Option<u16>,
    body_bytes: u64,
    /// Tries of the upstream after the first one, so far.
    retried: u32,
    /// The authenticated caller, if any.
    identity: Option<Arc<tollgate_auth::Identity>>,
    /// The access log's `auth`: `none`, `ok`, `anonymous` or a refusal's code.
    auth_result: Option<&'static str>,
    /// The tier of the policy whose headers the response carries (`$tier`).
    tier: Option<Arc<str>>,
    /// The numbers of the `RateLimit-*` headers every response of a rate-limited route
    /// carries.
    ratelimit: Option<crate::limits::Headline>,
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    fn route(&self) -> Option<&Route> {
        self.route.map(|i| &self.gate.routes[i])
    }
}

impl Gateway {
    /// Stages in contract order. A refusal from any stage is a [`Denial`].
    async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Denial> {
        let gate = ctx.gate.clone();
        let req = session.req_header();

        // The RFC 9728 document, when configured, is the gateway's own.
        if let Some(meta) = &gate.resource_metadata {
            let read = matches!(req.method, http::Method::GET | http::Method::HEAD);
            if read && req.uri.path() == meta.path {
                return Err(
                    Denial::document(meta.document.clone()).header("cache-control", "max-age=300")
                );
            }
        }

        // 1. Route: 400 / 404 / 405 / 431.
        let routed = route(&gate, req)?;
        let route = &gate.routes[routed.route];
        ctx.route = Some(routed.route);
        ctx.upstream_uri = routed.upstream_uri;
        if let (true, Some(cors)) = (routed.preflight, &route.cors) {
            // Answered before authentication: no credentials were read.
            ctx.auth_result = Some("none");
            return Err(cors.preflight(req));
        }

        // 2. Authenticate: 400 / 401 / 503.
        match authenticate(&gate, route, req, &self.metrics).await {
            Ok(caller) => {
                ctx.auth_result = Some(caller.result);
                ctx.identity = caller.identity;
            }
            Err((denial, code)) => {
                ctx.auth_result = Some(code);
                return Err(denial);
            }
        }

        // 3. Authorize: 403 (tenant isolation, then the allow rules).
        if let Err(refusal) =
            crate::authz::authorize(route, &routed.tenant, ctx.identity.as_deref())
        {
            ctx.auth_result = Some(refusal.code);
            return Err(refusal);
        }

        // 4. Rate-limit: 429.
        if !route.rate_limits.is_empty() {
            let caller = tollgate_ratelimit::Caller {
                identity: ctx.identity.as_deref(),
                ip: ctx.client,
            };
            let verdicts = match tollgate_ratelimit::acquire_all(&route.rate_limits, &caller).await
            {
                tollgate_ratelimit::Outcome::Verdicts(v) => v,
                tollgate_ratelimit::Outcome::Unavailable => {
                    // `redis.on_error: deny`.
                    return Err(
                        Denial::new(503, "unavailable", "rate limiting is unavailable")
                            .header("retry-after", "1"),
                    );
                }
            };
            for v in &verdicts {
                crate::limits::count(&route.ratelimit_counters, v, &self.metrics);
            }
            // `$tier`: the headline's, or the first policy's when every tier is unlimited.
            let headline = tollgate_ratelimit::headline(&verdicts);
            ctx.tier = headline.or(verdicts.first()).map(|v| v.tier.clone());
            if let Some(v) = headline {
                ctx.ratelimit = crate::limits::Headline::of(v);
                if !v.allowed() {
                    // The `RateLimit-*` headers are added with every refusal's, below.
                    return Err(Denial::new(429, "rate_limited", "too many requests")
                        .header("retry-after", crate::limits::retry_after(v)));
                }
            }
        }

        // 5. Forward: checks on what is sent upstream.
        if let Some(max) = route.max_body {
            if content_length(req).is_some_and(|n| n > max) {
                return Err(Denial::payload_too_large());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        // Called once a request's headers are read.
        crate::deadline::headers_read();
        RequestCtx {
            gate: self.gate.load_full(),
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            trace_id: None,
            grpc: false,
            route: None,
            upstream_uri: None,
            client: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            forwarded_for: String::new(),
            trusted_peer: false,
            tls: false,
            denied: None,
            body_bytes: 0,
            retried: 0,
            identity: None,
            auth_result: None,
            tier: None,
            ratelimit: None,
            _in_flight: self.in_flight.enter(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        session.set_keepalive(Some(self.idle_timeout_secs));
        // A client that stops reading (an HTTP/2 window left at zero, a full TCP window) must
        // not hold its stream and the upstream connection behind it forever.
        session.set_write_timeout(Some(std::time::Duration::from_secs(self.idle_timeout_secs)));
        let req = session.req_header();
        ctx.request_id = request_id(req);
        ctx.trace_id = crate::trace::trace_id(req);
        ctx.grpc = is_grpc(req);
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        let xff = session
            .req_header()
            .headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok());
        let fwd = forwarded(peer, xff, &ctx.gate.trusted_proxies);
        ctx.client = fwd.client;
        ctx.forwarded_for = fwd.header;
        ctx.trusted_peer = fwd.trusted_peer;
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());

        match self.admit(session, ctx).await {
            Ok(()) => Ok(false),
            Err(mut denial) => {
                // A refusal at or after rate limiting (429, 413) carries the limit's headers.
                denial
                    .headers
                    .extend(ctx.ratelimit.iter().flat_map(|h| h.pairs()));
                // A browser may read a refusal only if it carries the CORS headers.
                if let Some(cors) = ctx.route().and_then(|r| r.cors.as_ref()) {
                    if !denial
                        .headers
                        .iter()
                        .any(|(n, _)| *n == "access-control-allow-origin")
                    {
                        denial
                            .headers
                            .extend(cors.response_headers(session.req_header()));
                    }
                }
                ctx.denied = Some(denial.status);
                denial
                    .render(session, request_id_str(&ctx.request_id), ctx.grpc)
                    .await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // Bodies without Content-Length (chunked) are counted as they stream.
        if let (Some(chunk), Some(max)) = (body.as_ref(), ctx.route().and_then(|r| r.max_body)) {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > max {
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body is too large");
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(route) = ctx.route() else {
            return Error::e_explain(ErrorType::InternalError, "no route chosen");
        };
        // `balance: hash` keys on the client address until callers have subjects.
        let key = match ctx.client {
            IpAddr::V4(ip) => ip.to_ipv6_mapped().octets(),
            IpAddr::V6(ip) => ip.octets(),
        };
        let Some(backend) = route.upstream.select(&key) else {
            // After a refusal with nowhere else to go, the refusal is the answer (502); with
            // every target out of rotation from the start, there is no upstream (503).
            let status = if ctx.retried > 0 { 502 } else { 503 };
            return Error::e_explain(
                ErrorType::HTTPStatus(status),
                "no upstream target available",
            );
        };
        Ok(Box::new(route.upstream.peer(
            &backend,
            route.connect_timeout,
            route.read_timeout,
        )))
    }

    /// A target that refused the connection leaves the rotation at once; the request, of
    /// which nothing was sent, is tried once more on another target.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if matches!(
            e.etype(),
            ErrorType::ConnectRefused | ErrorType::ConnectNoRoute
        ) {
            if let Some(route) = ctx.route() {
                route.upstream.refused(peer.address());
            }
        }
        let may_retry = ctx
            .route()
            .is_some_and(|r| r.retries.on_connect_error && ctx.retried < r.retries.attempts);
        if may_retry {
            ctx.retried += 1;
            e.set_retry(true);
        }
        e
    }

    /// `retries.on: [502, 503, 504]`: an idempotent request whose upstream answered one of
    /// them is tried again (on the next target) instead of passing the answer on, while tries
    /// are left; the last answer passes as it is.
    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        let retry = ctx
            .route()
            .is_some_and(|r| r.retries.on_status(status) && ctx.retried < r.retries.attempts)
            && session.req_header().method.is_idempotent();
        if retry {
            ctx.retried += 1;
            let mut e = Error::explain(
                ErrorType::HTTPStatus(status),
                "upstream answered a retried status",
            );
            e.set_retry(true);
            return Err(e);
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for name in ctx
            .gate
            .identity_headers
            .iter()
            .chain(&ctx.gate.credential_headers)
        {
            upstream.remove_header(name);
        }
        if let (Some(identity), Some(route)) = (&ctx.identity, ctx.route()) {
            for (name, source) in &route.forward {
                if let Some(value) = crate::identity::value(source, identity, ctx.tier.as_deref()) {
                    upstream.insert_header(name.wire.clone(), value)?;
                }
            }
        }
        if let Some(uri) = ctx.upstream_uri.take() {
            let uri = uri
                .parse()
                .map_err(|e| Error::because(ErrorType::InternalError, "rewritten path", e))?;
            upstream.set_uri(uri);
        }
        if let Some(host) = ctx.route().and_then(|r| r.rewrite.host.as_deref()) {
            upstream.insert_header(http::header::HOST, host)?;
        }
        let forwarded_for = HeaderValue::try_from(std::mem::take(&mut ctx.forwarded_for))
            .map_err(|e| Error::because(ErrorType::InternalError, "X-Forwarded-For", e))?;
        upstream.insert_header(wire::X_FORWARDED_FOR, forwarded_for)?;
        if !ctx.trusted_peer || upstream.headers.get(&X_FORWARDED_PROTO).is_none() {
            let proto = HeaderValue::from_static(if ctx.tls { "https" } else { "http" });
            upstream.insert_header(wire::X_FORWARDED_PROTO, proto)?;
        }
        upstream.insert_header(wire::X_REQUEST_ID, ctx.request_id.clone())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(wire::X_REQUEST_ID, ctx.request_id.clone())?;
        if let Some(headline) = &ctx.ratelimit {
            headline.write(upstream_response)?;
        }
        if let Some(cors) = ctx.route().and_then(|r| r.cors.as_ref()) {
            for (name, value) in cors.response_headers(session.req_header()) {
                upstream_response.insert_header(name, value)?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let denial = match e.etype() {
            ErrorType::HTTPStatus(413) => Some(Denial::payload_too_large()),
            ErrorType::HTTPStatus(502) => Some(Denial::bad_gateway()),
            ErrorType::HTTPStatus(503) => Some(Denial::no_upstream()),
            ErrorType::HTTPStatus(504) => Some(Denial::gateway_timeout()),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                Some(Denial::gateway_timeout())
            }
            _ => match e.esource() {
                ErrorSource::Upstream => Some(Denial::bad_gateway()),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                        None
                    }
                    _ => Some(Denial::bad_request("the request could not be read").closing()),
                },
                ErrorSource::Internal | ErrorSource::Unset => Some(Denial::new(
                    500,
                    "internal_error",
                    "the gateway failed to handle the request",
                )),
            },
        };
        let code = match denial {
            Some(mut denial) if session.response_written().is_none() => {
                denial
                    .headers
                    .extend(ctx.ratelimit.iter().flat_map(|h| h.pairs()));
                ctx.denied = Some(denial.status);
                if let Err(write) = denial
                    .render(session, request_id_str(&ctx.request_id), ctx.grpc)
                    .await
                {
                    tracing::debug!("could not write error response: {write}");
                }
                denial.status
            }
            Some(denial) => denial.status,
            None => 0,
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        crate::deadline::request_done();
        // A denial's own status, even when written as a gRPC status on an HTTP 200.
        let status = ctx
            .denied
            .or_else(|| session.response_written().map(|r| r.status.as_u16()))
            .unwrap_or(0);
        let elapsed = ctx.started.elapsed();
        let route = ctx.route();
        route
            .map_or(&ctx.gate.unmatched, |r| &r.metrics)
            .observe(status, elapsed.as_secs_f64());
        let req = session.req_header();
        self.access_log.log(Entry {
            ts: SystemTime::now(),
            method: req.method.clone(),
            path: req.uri.path().to_owned(),
            status,
            route: route.map(|r| r.name.clone()),
            upstream: route.map(|r| r.upstream.name.clone()),
            provider: ctx.identity.as_ref().map(|i| i.provider.clone()),
            tenant: ctx.identity.as_ref().and_then(|i| i.tenant.clone()),
            subject: ctx.identity.as_ref().and_then(|i| i.subject.clone()),
            tier: ctx.tier.clone(),
            auth: ctx.auth_result.or_else(|| {
                route.map(|r| match r.auth {
                    AuthMode::None => "none",
                    AuthMode::Optional | AuthMode::Required => "anonymous",
                })
            }),
            latency_ms: elapsed.as_secs_f64() * 1000.0,
            request_id: ctx.request_id.clone(),
            trace_id: ctx.trace_id.take(),
        });
    }
}

fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn is_grpc(req: &RequestHeader) -> bool {
    req.headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The same names as written on the wire. Pingora's `insert_header` takes a `&'static str` as
/// it is; a `HeaderName` it would title-case into a new buffer on every call.
mod wire {
    pub const X_REQUEST_ID: &str = "X-Request-Id";
    pub const X_FORWARDED_FOR: &str = "X-Forwarded-For";
    pub const X_FORWARDED_PROTO: &str = "X-Forwarded-Proto";
}

/// The client's `X-Request-Id` if it is sane (1-128 characters of a safe, visible set), else
/// a new UUID.
fn request_id(req: &RequestHeader) -> HeaderValue {
    if let Some(id) = req.headers.get(&X_REQUEST_ID) {
        let bytes = id.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b));
        if sane {
            return id.clone();
        }
    }
    let mut text = [0u8; uuid::fmt::Simple::LENGTH];
    let text = uuid::Uuid::new_v4().simple().encode_lower(&mut text);
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A request ID is checked (or generated) ASCII, so this never yields "".
fn request_id_str(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or_default()
}
