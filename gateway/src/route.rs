//! Stage one: where does the request go? Checks the request head, normalises the path and
//! finds the route (400 / 404 / 405 / 431 otherwise).

use std::borrow::Cow;

use pingora::http::RequestHeader;
use tollgate_router::{host_of, normalize, Lookup};

use crate::authz::Captured;
use crate::cors::Cors;
use crate::denial::Denial;
use crate::gate::Gate;

/// A request that found its route.
pub struct Routed {
    pub route: usize,
    /// Path and query to send upstream, when it differs from what the client sent.
    pub upstream_uri: Option<String>,
    /// A CORS preflight for a route with `cors`: the gateway answers it.
    pub preflight: bool,
    /// The tenant the route's host or path captured (tenant isolation).
    pub tenant: Captured,
}

pub fn route(gate: &Gate, req: &RequestHeader) -> Result<Routed, Denial> {
    header_size(gate, req)?;
    let host = request_host(req)?;
    let path = normalize(req.uri.path()).map_err(|e| Denial::bad_request(e.to_string()))?;
    // A CORS preflight is routed by the method it asks about; it is the gateway's to answer
    // only on a route with `cors`, and is an ordinary OPTIONS request elsewhere.
    let asked = Cors::preflight_method(req);
    let preflight_route = asked.and_then(|m| match gate.router.find(host.as_deref(), &path, m) {
        Lookup::Found(found) if gate.routes[found.route].cors.is_some() => Some(found),
        _ => None,
    });
    let preflight = preflight_route.is_some();
    let lookup = match preflight_route {
        Some(found) => Lookup::Found(found),
        None => gate
            .router
            .find(host.as_deref(), &path, req.method.as_str()),
    };
    let found = match lookup {
        Lookup::Found(found) => found,
        Lookup::MethodNotAllowed { allow } => return Err(Denial::method_not_allowed(allow)),
        Lookup::NotFound => return Err(Denial::not_found()),
    };
    let route = &gate.routes[found.route];
    let upstream_path = route.rewrite.path(&path);
    // An absolute-form target (`GET http://host/path`) goes upstream in origin-form (Pingora
    // keeps the raw target for the wire, and has already checked it against `Host`).
    let absolute = !req.raw_path().starts_with(b"/");
    let upstream_uri = match (&upstream_path, req.uri.path()) {
        (Cow::Borrowed(p), raw) if *p == raw && !absolute => None,
        (p, _) => Some(match req.uri.query() {
            Some(q) => format!("{p}?{q}"),
            None => p.to_string(),
        }),
    };
    let path_tenant = found
        .params
        .iter()
        .find_map(|&(name, value)| (name == "tenant").then_some(value));
    Ok(Routed {
        route: found.route,
        upstream_uri,
        preflight,
        tenant: Captured::of(found.host_tenant, path_tenant),
    })
}

/// The host to route on: `Host` (HTTP/1.1) or the URI's authority (HTTP/2, absolute-form).
/// Two `Host` headers, or a `Host` that disagrees with the authority, are refused: which one
/// an upstream believes is a guess, and routing on the other is a way around host rules.
fn request_host(req: &RequestHeader) -> Result<Option<String>, Denial> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() {
        return Err(Denial::bad_request("more than one Host header"));
    }
    let header = match header.map(|h| h.to_str()) {
        Some(Ok(h)) if !h.is_empty() => Some(host_of(h)),
        Some(Ok(_)) | None => None,
        Some(Err(_)) => return Err(Denial::bad_request("Host header is not ASCII")),
    };
    match (req.uri.authority().map(|a| host_of(a.as_str())), header) {
        (Some(authority), Some(header)) if authority != header => Err(Denial::bad_request(
            "Host header does not match the request target",
        )),
        (Some(authority), _) => Ok(Some(authority)),
        (None, header) => Ok(header),
    }
}

/// `server.max_header_bytes`: Pingora's own limit is 1 MiB (and answers 400 unlogged); ours is
/// smaller and answers 431 (RFC 6585 §5), and the connection is closed.
fn header_size(gate: &Gate, req: &RequestHeader) -> Result<(), Denial> {
    let target = req.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    let mut total = req.method.as_str().len() + target + 12;
    for (name, value) in req.headers.iter() {
        total += name.as_str().len() + value.len() + 4;
    }
    if total as u64 > gate.max_header_bytes {
        return Err(Denial::new(
            431,
            "request_header_fields_too_large",
            "request headers are too large",
        )
        .closing());
    }
    Ok(())
}
