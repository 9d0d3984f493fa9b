//! Routing through the real binary: precedence, 404/405, normalisation attacks.

use tollgate_tests::{Gateway, Upstream};

fn gateway(public: &Upstream, admin: &Upstream) -> Gateway {
    Gateway::start(&format!(
        r#"
upstreams:
  public: {{ targets: ["{public}"] }}
  admin: {{ targets: ["{admin}"] }}
routes:
  - name: catch-all
    match: {{ path: /* }}
    upstream: public
    auth: none
  - name: public
    match: {{ path: /api/public/* }}
    upstream: public
    auth: none
  - name: admin
    match: {{ path: /api/admin/*, methods: [GET, DELETE] }}
    upstream: admin
    auth: none
  - name: user-by-id
    match: {{ path: "/api/users/{{id}}" }}
    upstream: public
    auth: none
  - name: user-me
    match: {{ path: /api/users/me }}
    upstream: admin
    auth: none
  - name: wildcard-host
    match: {{ path: /api/users/me, host: "*.example.com" }}
    upstream: public
    auth: none
  - name: exact-host
    match: {{ path: /api/users/me, host: api.example.com }}
    upstream: admin
    auth: none
"#,
        public = public.addr,
        admin = admin.addr
    ))
}

fn route_of(gw: &Gateway, request_id: &str) -> String {
    gw.access_log_line(request_id)["route"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn get(gw: &Gateway, path: &str, host: &str) -> (u16, String, String) {
    let rid = format!("rid-{}", tollgate_tests::free_port());
    let r = gw.send(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Request-Id: {rid}\r\nConnection: close\r\n\r\n"
    ));
    let uri = if r.status == 200 {
        r.json()["uri"].as_str().unwrap_or("").to_owned()
    } else {
        String::new()
    };
    (r.status, route_of(gw, &rid), uri)
}

#[test]
fn most_specific_route_wins_whatever_the_declaration_order() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    assert_eq!(get(&gw, "/api/users/me", "x").1, "user-me");
    assert_eq!(get(&gw, "/api/users/42", "x").1, "user-by-id");
    assert_eq!(get(&gw, "/api/users/42/posts", "x").1, "catch-all");
    assert_eq!(get(&gw, "/api/public", "x").1, "public");
    assert_eq!(get(&gw, "/api/public/a/b", "x").1, "public");
    assert_eq!(get(&gw, "/api/publicity", "x").1, "catch-all");
    assert_eq!(get(&gw, "/", "x").1, "catch-all");
}

#[test]
fn host_patterns_take_precedence_exact_then_wildcard_then_none() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    assert_eq!(get(&gw, "/api/users/me", "api.example.com").1, "exact-host");
    assert_eq!(
        get(&gw, "/api/users/me", "API.Example.com:8080").1,
        "exact-host"
    );
    assert_eq!(
        get(&gw, "/api/users/me", "acme.example.com").1,
        "wildcard-host"
    );
    assert_eq!(
        get(&gw, "/api/users/me", "a.b.example.com").1,
        "wildcard-host"
    );
    assert_eq!(get(&gw, "/api/users/me", "example.com").1, "user-me");
    // A host's routes do not hide less specific hosts' other paths.
    assert_eq!(get(&gw, "/api/public/x", "api.example.com").1, "public");
}

#[test]
fn method_mismatch_is_405_with_allow_and_never_falls_through() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    let r = gw.send("POST /api/admin/users HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("DELETE, GET"));
    assert_eq!(r.json()["error"], "method_not_allowed");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn no_route_is_404_json() {
    let a = Upstream::start("only");
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /r }}\n    upstream: u\n    auth: none\n",
        a.addr
    ));
    let r = gw.get("/nothing-here");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn dot_segments_are_resolved_before_routing_and_the_upstream_gets_the_normal_path() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    for attack in [
        "/api/public/../admin/x",
        "/api/public/%2e%2e/admin/x",
        "/api/public/%2E%2E/admin/x",
        "/api/public/.%2e/admin/x",
        "/api/public/./../admin/x",
        "//api//public/..//admin/x",
        "/api/%61dmin/x",
    ] {
        let (status, route, uri) = get(&gw, attack, "x");
        assert_eq!((status, route.as_str()), (200, "admin"), "{attack}");
        assert_eq!(uri, "/api/admin/x", "{attack}");
    }
    let (_, _, uri) = get(&gw, "/api/public/a%3ab?q=%2e%2e/x&y", "x");
    assert_eq!(
        uri, "/api/public/a%3Ab?q=%2e%2e/x&y",
        "query string is passed as sent"
    );
}

#[test]
fn ambiguous_encodings_and_escapes_above_root_are_400_and_reach_no_upstream() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    for attack in [
        "/api/public/..%2Fadmin/x",
        "/api/public/%2F..%2Fadmin",
        "/api/public/..%5Cadmin",
        "/api/public/..\\admin",
        "/../api/admin/x",
        "/api/../../etc/passwd",
        "/api/public/%00",
        "/api/public/%0d%0aX-Injected:%20yes",
        "/api/public/%zz",
    ] {
        let rid = format!("attack-{}", tollgate_tests::free_port());
        let r = gw.send(&format!(
            "GET {attack} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.status, 400, "{attack}");
        assert_eq!(r.json()["error"], "bad_request", "{attack}");
        let line = gw.access_log_line(&rid);
        assert_eq!(
            line["upstream"],
            serde_json::Value::Null,
            "{attack} reached an upstream"
        );
    }
}

#[test]
fn rewrite_strips_prefix_adds_prefix_and_sets_host() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&format!(
        r#"
upstreams:
  u: {{ targets: ["{}"] }}
routes:
  - name: v2
    match: {{ path: /api/* }}
    upstream: u
    auth: none
    rewrite: {{ strip_prefix: /api, prefix: /v2, host: users.internal }}
"#,
        u.addr
    ));
    let r = gw.get("/api/users/7?x=1");
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["uri"], "/v2/users/7?x=1");
    assert_eq!(echo["headers"]["host"], "users.internal");
}

#[test]
fn gateway_answers_on_grpc_requests_are_grpc_statuses() {
    let a = Upstream::start("only");
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /r }}\n    upstream: u\n    auth: none\n",
        a.addr
    ));
    let r = gw.send("POST /pkg.Service/Method HTTP/1.1\r\nHost: t\r\nContent-Type: application/grpc+proto\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("12"));
    assert_eq!(r.header("content-type"), Some("application/grpc"));
    assert!(r.header("grpc-message").is_some());
    assert!(r.body.is_empty());
}

#[test]
fn host_header_disagreeing_with_an_absolute_target_is_400() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    let r = gw.send("GET http://api.example.com/api/users/me HTTP/1.1\r\nHost: acme.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    let r = gw.send("GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 400);
    let r = gw.send("GET http://api.example.com/api/users/me?q=1 HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["uri"],
        "/api/users/me?q=1",
        "absolute-form goes upstream in origin-form"
    );
    assert_eq!(r.served_by(), "admin");
}

#[test]
fn dot_segments_with_parameters_are_400() {
    let (p, a) = (Upstream::start("public"), Upstream::start("admin"));
    let gw = gateway(&p, &a);
    for attack in [
        "/api/public/..;/admin/x",
        "/api/public/%2e%2e;jsessionid=1/admin",
        "/api/public/.;/x",
    ] {
        assert_eq!(gw.get(attack).status, 400, "{attack}");
    }
    assert_eq!(get(&gw, "/api/public/a;b", "x").2, "/api/public/a;b");
}
