//! SIGHUP reload: new routes appear without a failed request; bad configs are refused.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tollgate_tests::{wait_until, Conn, Gateway, Upstream};

fn config(u: &Upstream, extra_route: bool) -> String {
    let mut yaml = format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: old\n    match: {{ path: /old/* }}\n    upstream: u\n    auth: none\n",
        u.addr
    );
    if extra_route {
        yaml.push_str(
            "  - name: new\n    match: { path: /new/* }\n    upstream: u\n    auth: none\n",
        );
    }
    yaml
}

fn reloads(gw: &Gateway, result: &str) -> u64 {
    let text = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    let series = format!("tollgate_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn sighup_adds_a_route_during_a_keep_alive_stream_with_zero_failures() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&config(&u, false));
    assert_eq!(gw.get("/new/x").status, 404);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, sent, addr) = (stop.clone(), sent.clone(), gw.http);
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match conn.try_request(b"GET /old/x HTTP/1.1\r\nHost: t\r\n\r\n") {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.push(format!(
                            "status {}: {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )),
                        Err(e) => failures.push(e.to_string()),
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();

    wait_until(Duration::from_secs(10), "traffic", || {
        sent.load(Ordering::Relaxed) > 50
    });
    gw.rewrite_config(&config(&u, true));
    gw.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload", || {
        reloads(&gw, "ok") == 1
    });
    let at_reload = sent.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(10), "traffic after the reload", || {
        sent.load(Ordering::Relaxed) > at_reload + 50
    });
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert_eq!(gw.get("/new/x").status, 200);
}

#[test]
fn an_invalid_config_on_sighup_keeps_the_old_one_and_is_counted() {
    let u = Upstream::start("u");
    let gw = Gateway::start(&config(&u, false));
    gw.rewrite_config("routes:\n  - name: broken\n    match: { path: /x }\n    upstream: missing\n    auth: none\n");
    gw.signal("HUP");
    wait_until(Duration::from_secs(10), "the refused reload", || {
        reloads(&gw, "error") == 1
    });
    assert_eq!(gw.get("/old/x").status, 200);
    assert!(
        gw.stderr().contains(r#"unknown upstream "missing""#),
        "{}",
        gw.stderr()
    );
    assert_eq!(reloads(&gw, "ok"), 0);
}
