//! CORS: preflights answered by the gateway, allowed origins echoed on responses.

use tollgate_tests::{validate, Gateway, Upstream};

fn gateway(u: &Upstream, cors: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: api\n    match: {{ path: /api/*, methods: [GET, POST] }}\n    upstream: u\n    auth: none\n    max_body: 1KiB\n    cors: {cors}\n  - name: plain\n    match: {{ path: /plain/* }}\n    upstream: u\n    auth: none\n",
        u.addr
    ))
}

const CORS: &str = "{ origins: [\"https://app.example.com\"], methods: [GET, POST], headers: [Authorization, Content-Type], max_age: 10m, credentials: true }";

fn preflight(gw: &Gateway, path: &str, origin: &str, method: &str) -> tollgate_tests::Response {
    gw.send(&format!(
        "OPTIONS {path} HTTP/1.1\r\nHost: api.example.com\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n"
    ))
}

#[test]
fn a_preflight_from_a_listed_origin_is_answered_204_by_the_gateway() {
    let u = Upstream::start("u");
    let gw = gateway(&u, CORS);
    let r = preflight(&gw, "/api/things", "https://app.example.com", "POST");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Authorization, Content-Type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert!(r.body.is_empty());
    // The upstream never saw it: the route allows only GET and POST, yet OPTIONS was answered.
    let rid = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(gw.access_log_line(&rid)["status"], 204);
}

#[test]
fn a_preflight_from_an_unlisted_origin_or_for_another_method_is_403() {
    let u = Upstream::start("u");
    let gw = gateway(&u, CORS);
    let r = preflight(&gw, "/api/things", "https://evil.example.com", "GET");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("access-control-allow-origin"), None);
    let r = preflight(&gw, "/api/things", "https://app.example.com", "DELETE");
    assert_ne!(r.status, 204);
}

#[test]
fn actual_responses_echo_allowed_origins_only() {
    let u = Upstream::start("u");
    let gw = gateway(&u, CORS);
    let r = gw.send("GET /api/x HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert!(r
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("RateLimit-Remaining") && h.contains("X-Request-Id")));
    let r = gw.send("GET /api/x HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Refusals made by the gateway carry them too, so that the browser can read them.
    let r = gw.send("POST /api/x HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example.com\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn routes_without_cors_treat_options_as_an_ordinary_request() {
    let u = Upstream::start("u");
    let gw = gateway(&u, CORS);
    let r = preflight(&gw, "/plain/x", "https://app.example.com", "GET");
    assert_eq!(
        r.status, 200,
        "proxied to the upstream like any OPTIONS request"
    );
    assert_eq!(r.json()["method"], "OPTIONS");
}

#[test]
fn wildcard_origins_and_bad_cors_configs() {
    let u = Upstream::start("u");
    let gw = gateway(&u, "{ origins: [\"*\"] }");
    let r = preflight(&gw, "/api/things", "https://anyone.example", "GET");
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (204, Some("*"))
    );
    drop(gw);
    let bad = |cors: &str| {
        validate(&format!("upstreams:\n  u: {{ targets: [\"127.0.0.1:9\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n    cors: {cors}\n"))
    };
    let (code, out) = bad("{ origins: [\"*\"], credentials: true }");
    assert_eq!(code, 1);
    assert!(out.contains("routes[0].cors.credentials"), "{out}");
    let (code, out) = bad("{ origins: [\"app.example.com\"] }");
    assert_eq!(code, 1);
    assert!(out.contains("routes[0].cors.origins[0]"), "{out}");
}
