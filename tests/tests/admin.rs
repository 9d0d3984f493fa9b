//! The admin listener and the access log.

use tollgate_tests::{Gateway, Upstream};

fn gateway(u: &Upstream) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: things\n    match: {{ path: /things/* }}\n    upstream: u\n    auth: none\n",
        u.addr
    ))
}

#[test]
fn healthz_and_readyz_answer_json() {
    let u = Upstream::start("u");
    let gw = gateway(&u);
    let r = gw.admin_get("/healthz");
    assert_eq!(r.status, 200);
    let r = gw.admin_get("/readyz");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({ "ready": true }));
    assert_eq!(gw.admin_get("/nope").status, 404);
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let u = Upstream::start("u");
    let gw = gateway(&u);
    for _ in 0..3 {
        assert_eq!(gw.get("/things/1").status, 200);
    }
    assert_eq!(gw.get("/elsewhere").status, 404);
    // Metrics are recorded after the response is sent, by each request's own task: the last
    // request's may land before an earlier one's, so poll for all of them.
    let metrics = || String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    tollgate_tests::wait_until(std::time::Duration::from_secs(5), "the metrics", || {
        let text = metrics();
        text.contains(r#"tollgate_requests_total{route="(none)",status="404"} 1"#)
            && text.contains(r#"tollgate_request_duration_seconds_count{route="things"} 3"#)
    });
    let text = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    assert!(
        text.contains(r#"tollgate_requests_total{route="(none)",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tollgate_request_duration_seconds_count{route="things"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tollgate_config_reloads_total{result="error"} 0"#),
        "{text}"
    );
}

#[test]
fn access_log_has_one_json_line_per_request_with_the_contract_keys() {
    let u = Upstream::start("u");
    let gw = gateway(&u);
    let r = gw.send("GET /things/42?secret=hunter2 HTTP/1.1\r\nHost: t\r\nX-Request-Id: log-test-1\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    let line = gw.access_log_line("log-test-1");
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "ts",
        "method",
        "path",
        "status",
        "route",
        "upstream",
        "provider",
        "subject",
        "tier",
        "auth",
        "latency_ms",
        "request_id",
    ] {
        assert!(keys.contains(&key), "missing {key} in {line}");
    }
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/things/42");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "things");
    assert_eq!(line["upstream"], "u");
    assert_eq!(line["auth"], "none");
    assert_eq!(line["subject"], serde_json::Value::Null);
    assert!(line["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(line["ts"].as_str().unwrap().contains('T'));
    // The query string (where tokens sometimes travel) is not logged.
    assert!(!line.to_string().contains("hunter2"));

    gw.send("DELETE /nowhere HTTP/1.1\r\nHost: t\r\nX-Request-Id: log-test-2\r\nConnection: close\r\n\r\n");
    let line = gw.access_log_line("log-test-2");
    assert_eq!(
        (line["status"].as_u64(), &line["route"]),
        (Some(404), &serde_json::Value::Null)
    );
}

#[test]
fn sigterm_exits_cleanly_with_the_access_log_flushed() {
    let u = Upstream::start("u");
    let mut gw = gateway(&u);
    for i in 0..20 {
        let r = gw.send(&format!("GET /things/{i} HTTP/1.1\r\nHost: t\r\nX-Request-Id: flush-{i}\r\nConnection: close\r\n\r\n"));
        assert_eq!(r.status, 200);
    }
    let status = gw.stop();
    assert!(status.success(), "{status:?}\n{}", gw.stderr());
    let ids: Vec<String> = gw
        .access_log()
        .iter()
        .map(|l| l["request_id"].as_str().unwrap_or("").to_owned())
        .collect();
    for i in 0..20 {
        assert!(
            ids.contains(&format!("flush-{i}")),
            "line flush-{i} missing"
        );
    }
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_without_waiting_out_the_grace_period() {
    let u = Upstream::start("u");
    let mut gw = Gateway::start(&format!(
        "server:\n  grace_period: 20s\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: things\n    match: {{ path: /things/* }}\n    upstream: u\n    auth: none\n",
        u.addr
    ));
    let addr = gw.http;
    let slow = std::thread::spawn(move || {
        tollgate_tests::Conn::open(addr)
            .request(b"GET /things/slow HTTP/1.1\r\nHost: t\r\nx-echo-delay-ms: 1500\r\nConnection: close\r\n\r\n")
    });
    tollgate_tests::wait_until(
        std::time::Duration::from_secs(5),
        "the slow request in flight",
        || {
            String::from_utf8(gw.admin_get("/metrics").body)
                .unwrap()
                .contains("tollgate_requests_in_flight 1")
        },
    );
    let started = std::time::Instant::now();
    gw.signal("TERM");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the request in flight was cut off");
    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "waited out the grace period: {:?}",
        started.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn trace_context_passes_untouched_and_its_trace_id_is_logged() {
    let u = Upstream::start("u");
    let gw = gateway(&u);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let r = gw.send(&format!("GET /things/1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-1\r\ntraceparent: {parent}\r\ntracestate: {state}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 200);
    let seen = &r.json()["headers"];
    assert_eq!(
        (&seen["traceparent"], &seen["tracestate"]),
        (&serde_json::json!(parent), &serde_json::json!(state))
    );
    assert_eq!(
        gw.access_log_line("trace-1")["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // A malformed one is still passed on as it came (not ours to fix), but not logged.
    let bad = "00-not-a-trace-01";
    let r = gw.send(&format!("GET /things/1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: trace-2\r\ntraceparent: {bad}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.json()["headers"]["traceparent"], bad);
    assert_eq!(
        gw.access_log_line("trace-2")["trace_id"],
        serde_json::Value::Null
    );
}
