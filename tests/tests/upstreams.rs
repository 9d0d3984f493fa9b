//! Load balancing, upstream failures and what is forwarded upstream.

use std::collections::HashSet;

use tollgate_tests::{free_port, Gateway, Upstream};

fn one_route(targets: &str, extra_upstream: &str, extra_route: &str) -> String {
    format!(
        "upstreams:\n  pool:\n    targets: [{targets}]\n{extra_upstream}routes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: pool\n    auth: none\n{extra_route}"
    )
}

#[test]
fn round_robin_spreads_requests_over_every_target() {
    let (a, b, c) = (
        Upstream::start("a"),
        Upstream::start("b"),
        Upstream::start("c"),
    );
    let gw = Gateway::start(&one_route(
        &format!("\"{}\", \"{}\", \"{}\"", a.addr, b.addr, c.addr),
        "",
        "",
    ));
    let served = gw.served_by("/x", 9);
    for name in ["a", "b", "c"] {
        assert_eq!(
            served.iter().filter(|s| *s == name).count(),
            3,
            "{served:?}"
        );
    }
}

#[test]
fn random_uses_every_target_and_hash_sticks_to_one() {
    let (a, b) = (Upstream::start("a"), Upstream::start("b"));
    let targets = format!("\"{}\", \"{}\"", a.addr, b.addr);
    let gw = Gateway::start(&one_route(&targets, "    balance: random\n", ""));
    let served: HashSet<String> = gw.served_by("/x", 64).into_iter().collect();
    assert_eq!(
        served.len(),
        2,
        "random picked only {served:?} in 64 requests"
    );
    drop(gw);

    let gw = Gateway::start(&one_route(&targets, "    balance: hash\n", ""));
    let served: HashSet<String> = gw.served_by("/x", 20).into_iter().collect();
    assert_eq!(
        served.len(),
        1,
        "hash by client spread one client over {served:?}"
    );
}

#[test]
fn refused_connection_is_502_json() {
    let closed = format!("\"127.0.0.1:{}\"", free_port());
    let gw = Gateway::start(&one_route(&closed, "", ""));
    let r = gw.get("/x");
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-request-id").is_some());
    // The target is now out of rotation for a while: no upstream is available.
    let r = gw.get("/x");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "unavailable");
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[test]
fn slow_upstream_is_504_after_the_read_timeout() {
    let slow = Upstream::start("slow");
    let gw = Gateway::start(&one_route(
        &format!("\"{}\"", slow.addr),
        "    timeouts: { read: 300ms }\n",
        "",
    ));
    let r =
        gw.send("GET /x HTTP/1.1\r\nHost: t\r\nx-echo-delay-ms: 3000\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"], "gateway_timeout");
    // The route's own timeout overrides the upstream's.
    drop(gw);
    let gw = Gateway::start(&one_route(
        &format!("\"{}\"", slow.addr),
        "    timeouts: { read: 300ms }\n",
        "    timeouts: { read: 5s }\n",
    ));
    let r =
        gw.send("GET /x HTTP/1.1\r\nHost: t\r\nx-echo-delay-ms: 600\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn upstream_status_and_body_pass_through() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&one_route(&format!("\"{}\"", u.addr), "", ""));
    let r =
        gw.send("GET /x HTTP/1.1\r\nHost: t\r\nx-echo-status: 503\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(r.served_by(), "u");
}

#[test]
fn request_id_is_kept_when_sane_generated_otherwise_and_sent_both_ways() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&one_route(&format!("\"{}\"", u.addr), "", ""));
    let r =
        gw.send("GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.json()["headers"]["x-request-id"], "abc-123");
    let r = gw.send("GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id with spaces \"quotes\"\r\nConnection: close\r\n\r\n");
    let generated = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
    assert_eq!(r.json()["headers"]["x-request-id"], generated.as_str());
    let long = "a".repeat(200);
    let r = gw.send(&format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: {long}\r\nConnection: close\r\n\r\n"
    ));
    assert_ne!(r.header("x-request-id"), Some(long.as_str()));
}

#[test]
fn identity_headers_from_the_client_are_stripped_on_every_route() {
    let u = Upstream::start("u");
    let mut yaml = one_route(
        &format!("\"{}\"", u.addr),
        "",
        "    forward_headers: { X-Route-Only: email }\n",
    );
    yaml.push_str("forward_headers:\n  X-User-ID: sub\n  X-Auth-Provider: $provider\n");
    let gw = Gateway::start(&yaml);
    let r = gw.send("GET /x HTTP/1.1\r\nHost: t\r\nX-User-ID: admin\r\nx-auth-provider: forged\r\nX-Route-Only: e\r\nX-Other: kept\r\nConnection: close\r\n\r\n");
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-user-id"], serde_json::Value::Null);
    assert_eq!(headers["x-auth-provider"], serde_json::Value::Null);
    assert_eq!(headers["x-route-only"], serde_json::Value::Null);
    assert_eq!(headers["x-other"], "kept");
}

#[test]
fn x_forwarded_for_is_replaced_for_untrusted_peers_and_appended_for_trusted_ones() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&one_route(&format!("\"{}\"", u.addr), "", ""));
    let r = gw.send("GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    assert_eq!(r.json()["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "http");
    drop(gw);
    let gw = Gateway::start(&format!(
        "server:\n  grace_period: 0s\n  trusted_proxies: [127.0.0.0/8]\n{}",
        one_route(&format!("\"{}\"", u.addr), "", "")
    ));
    let r = gw.send("GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    assert_eq!(r.json()["headers"]["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
}

#[test]
fn oversized_headers_are_431_and_oversized_bodies_413() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&format!(
        "server:\n  grace_period: 0s\n  max_header_bytes: 16KiB\n{}",
        one_route(&format!("\"{}\"", u.addr), "", "    max_body: 1KiB\n")
    ));
    let big = "v".repeat(20 * 1024);
    let r = gw.send(&format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 431);
    // A long request target counts into the head as well: 431 too (the contract's answer for a
    // head past the limit).
    let r = gw.send(&format!(
        "GET /x?q={big} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 431);
    let body = "b".repeat(2048);
    let r = gw.send(&format!(
        "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert_eq!(r.status, 413);
    let r = gw.send(&format!("POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{body}\r\n0\r\n\r\n"));
    assert_eq!(r.status, 413);
    let small = "s".repeat(512);
    let r = gw.send(&format!(
        "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 512\r\nConnection: close\r\n\r\n{small}"
    ));
    assert_eq!(
        (r.status, r.json()["body_bytes"].as_u64()),
        (200, Some(512))
    );
}

#[test]
fn authorization_is_stripped_unless_forward_authorization_is_set() {
    let u = Upstream::start("u");
    let req = "GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer abc.def.ghi\r\nConnection: close\r\n\r\n";
    let gw = Gateway::start(&one_route(&format!("\"{}\"", u.addr), "", ""));
    assert_eq!(
        gw.send(req).json()["headers"]["authorization"],
        serde_json::Value::Null
    );
    drop(gw);
    let mut yaml = one_route(&format!("\"{}\"", u.addr), "", "");
    yaml.push_str("auth:\n  forward_authorization: true\n");
    let gw = Gateway::start(&yaml);
    assert_eq!(
        gw.send(req).json()["headers"]["authorization"],
        "Bearer abc.def.ghi"
    );
}

#[test]
fn a_busy_port_is_a_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tollgate_tests::temp_dir();
    let config = dir.join("tollgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen:\n  http: \"127.0.0.1:{port}\"\nadmin:\n  listen: \"127.0.0.1:{}\"\nupstreams:\n  u: {{ targets: [\"127.0.0.1:1\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n",
            free_port()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(tollgate_tests::binary())
        .args(["run", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error: listen.http: cannot listen on"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn both_runtime_models_serve_many_connections_at_once() {
    let up = Upstream::start("a");
    for stealing in [false, true] {
        let gw = Gateway::start(&format!(
            "server: {{ threads: 2, work_stealing: {stealing}, grace_period: 0s }}\n{}",
            one_route(&format!("\"{}\"", up.addr), "", "")
        ));
        let answers: Vec<Vec<String>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8).map(|_| s.spawn(|| gw.served_by("/x", 25))).collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for served in answers {
            assert_eq!(
                served,
                vec!["a".to_string(); 25],
                "work_stealing: {stealing}"
            );
        }
    }
}
