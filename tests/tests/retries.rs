//! `routes[].retries`: idempotent requests tried again on listed upstream statuses.

use tollgate_tests::{validate, FixedStatusServer, Gateway, Upstream};

fn gateway(a: &Upstream, sick: &FixedStatusServer, retries: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:\n  pool: {{ targets: [\"{}\", \"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: pool\n    auth: none\n{retries}",
        a.addr, sick.addr
    ))
}

fn statuses(gw: &Gateway, method: &str, n: usize) -> Vec<u16> {
    let mut conn = tollgate_tests::Conn::open(gw.http);
    let req = format!("{method} /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    (0..n)
        .map(|_| conn.request(req.as_bytes()).status)
        .collect()
}

#[test]
fn idempotent_requests_are_retried_on_listed_statuses_and_others_are_not() {
    let a = Upstream::start("a");
    let sick = FixedStatusServer::start(503);
    // Without retries, round robin sends every other request to the sick target.
    let gw = gateway(&a, &sick, "");
    assert!(statuses(&gw, "GET", 6).contains(&503));
    drop(gw);

    let gw = gateway(&a, &sick, "    retries: { attempts: 1, on: [503] }\n");
    assert_eq!(
        statuses(&gw, "GET", 10),
        vec![200; 10],
        "every 503 was retried on the other target"
    );
    assert!(
        statuses(&gw, "POST", 6).contains(&503),
        "POST is not idempotent: never retried"
    );
    drop(gw);

    let gw = gateway(&a, &sick, "    retries: { attempts: 1, on: [502] }\n");
    assert!(statuses(&gw, "GET", 6).contains(&503), "503 is not listed");
}

#[test]
fn when_every_try_fails_the_last_answer_passes_through() {
    let a = FixedStatusServer::start(502);
    let b = FixedStatusServer::start(502);
    let gw = Gateway::start(&format!(
        "upstreams:\n  pool: {{ targets: [\"{}\", \"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: pool\n    auth: none\n    retries: {{ attempts: 3, on: [502] }}\n",
        a.addr, b.addr
    ));
    let r = gw.get("/x");
    assert_eq!(r.status, 502);
    assert_eq!(
        r.json()["status"],
        502,
        "the upstream's own answer, not the gateway's"
    );
}

#[test]
fn bad_retry_configs_are_refused() {
    let yaml = |retries: &str| {
        format!("upstreams:\n  u: {{ targets: [\"127.0.0.1:9\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n    retries: {retries}\n")
    };
    let (code, out) = validate(&yaml("{ attempts: 0 }"));
    assert_eq!(code, 1);
    assert!(out.contains("routes[0].retries.attempts"), "{out}");
    let (code, out) = validate(&yaml("{ attempts: 2, on: [teapot] }"));
    assert_eq!(code, 1);
    assert!(out.contains("routes[0].retries.on[0]"), "{out}");
}
