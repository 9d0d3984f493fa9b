//! Upstream health: refused connections and health checks take targets out of rotation.

use std::time::Duration;

use tollgate_tests::{free_port, wait_until, Conn, FixedStatusServer, Gateway, Upstream};

fn pool(targets: &str, health_check: &str) -> String {
    format!(
        "upstreams:\n  pool:\n    targets: [{targets}]\n{health_check}routes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: pool\n    auth: none\n"
    )
}

/// `n` requests on one keep-alive connection, all answered 200 by the healthy upstream `a`.
fn all_served_by_a(gw: &Gateway, n: usize) -> bool {
    gw.served_by("/x", n).iter().all(|s| s == "a")
}

#[test]
fn a_refused_connection_is_retried_on_another_target_and_the_target_leaves_the_rotation() {
    let a = Upstream::start("a");
    let closed = free_port();
    let gw = Gateway::start(&pool(
        &format!("\"127.0.0.1:{closed}\", \"{}\"", a.addr),
        "",
    ));
    // Round robin would send every other request to the closed port: none may fail.
    assert!(all_served_by_a(&gw, 20));
    let refusals = gw.stderr().matches("refused a connection").count();
    assert_eq!(
        refusals,
        1,
        "the refusing target should leave the rotation after one refusal\n{}",
        gw.stderr()
    );
}

#[test]
fn when_every_target_refuses_the_answer_is_a_json_error() {
    let gw = Gateway::start(&pool(
        &format!(
            "\"127.0.0.1:{}\", \"127.0.0.1:{}\"",
            free_port(),
            free_port()
        ),
        "",
    ));
    let r = gw.get("/x");
    assert!(r.status == 502 || r.status == 503, "{}", r.status);
    assert!(r.json()["error"].is_string());
}

#[test]
fn a_failing_health_check_takes_a_target_out_of_rotation() {
    let a = Upstream::start("a");
    let sick = FixedStatusServer::start(503);
    let check = "    health_check: { path: /healthz, interval: 100ms, timeout: 500ms, unhealthy_after: 1, healthy_after: 1 }\n";
    let gw = Gateway::start(&pool(&format!("\"{}\", \"{}\"", a.addr, sick.addr), check));
    wait_until(
        Duration::from_secs(10),
        "the sick target to leave the rotation",
        || all_served_by_a(&gw, 10),
    );
}

#[test]
fn a_pool_changed_by_a_reload_is_health_checked_too() {
    let a = Upstream::start("a");
    let sick = FixedStatusServer::start(503);
    let targets = format!("\"{}\", \"{}\"", a.addr, sick.addr);
    let gw = Gateway::start(&pool(&targets, ""));
    // Without a health check, the sick target answers its share.
    let mut conn = Conn::open(gw.http);
    let statuses: Vec<u16> = (0..4)
        .map(|_| conn.request(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").status)
        .collect();
    assert!(statuses.contains(&503), "{statuses:?}");

    gw.rewrite_config(&pool(
        &targets,
        "    health_check: { path: /healthz, interval: 100ms, unhealthy_after: 1 }\n",
    ));
    gw.signal("HUP");
    wait_until(
        Duration::from_secs(10),
        "the reloaded pool's health check",
        || all_served_by_a(&gw, 10),
    );
}
