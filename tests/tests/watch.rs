//! `run --watch`: a reload soak. Keep-alive requests over every kind of route run while the
//! config is edited 20 times (a route, a provider and a rate-limit policy added and removed;
//! half of the saves in place, half as an editor does, by renaming a new file over the old):
//! no request fails, keys are fetched only for providers that are new, and the counts of an
//! unchanged policy survive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tollgate_tests::{temp_dir, wait_until, Conn, Gateway, Idp, Upstream};

/// The config of edit `i`: the part that never changes, and what edit `i` adds.
fn config(up: &Upstream, kc: &Idp, extra: &Idp, i: usize) -> String {
    let (route, provider, policy) = (i % 2 == 1, i % 4 >= 2, i % 3 == 1);
    let mut yaml = format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nauth:\n  providers:\n    - {{ name: kc, issuer: \"{}\", audiences: [https://api.example.test] }}\n",
        up.addr, kc.issuer
    );
    if provider {
        yaml += &format!("    - {{ name: extra, issuer: \"{}\" }}\n", extra.issuer);
    }
    yaml += "rate_limits:\n  roomy: { key: subject, tiers: [ { name: all, limit: 100000/minute } ] }\n  tight: { key: subject, tiers: [ { name: all, limit: 5/minute } ] }\n";
    if policy {
        yaml += "  temp: { key: ip, tiers: [ { name: all, limit: 1000/minute } ] }\n";
    }
    yaml += "routes:\n  - { name: public, match: { path: /public/* }, upstream: u, auth: none }\n  - { name: api, match: { path: /api/* }, upstream: u }\n  - { name: limited, match: { path: /limited/* }, upstream: u, rate_limit: roomy }\n  - { name: tight, match: { path: /tight/* }, upstream: u, rate_limit: tight }\n";
    if route {
        let limit = if policy { ", rate_limit: temp" } else { "" };
        yaml += &format!(
            "  - {{ name: extra, match: {{ path: /extra/* }}, upstream: u, auth: none{limit} }}\n"
        );
    }
    yaml
}

fn get(gw: &Gateway, path: &str, token: &str) -> u16 {
    gw.send(&format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ))
    .status
}

#[test]
fn twenty_edits_under_keep_alive_load_fail_no_request() {
    let keys = temp_dir();
    let kc = Idp::oidc(0, "RS256", "kc-1", &keys.join("kc.jwk"));
    let extra = Idp::oidc(0, "ES256", "extra-1", &keys.join("extra.jwk"));
    let up = Upstream::start("u");
    let gw = Gateway::start_watching(&config(&up, &kc, &extra, 0));
    wait_until(Duration::from_secs(20), "kc's keys", || {
        gw.admin_get("/readyz").status == 200
    });
    let soak = kc.token("svc-admin", "svc-admin-secret");
    let steady = kc.token("svc-user", "svc-user-secret");
    // Three of the tight policy's five, before any edit.
    for _ in 0..3 {
        assert_eq!(get(&gw, "/tight/x", &steady), 200);
    }
    let kc_fetches = || gw.metric("tollgate_jwks_refresh_total{provider=\"kc\",result=\"ok\"}");
    let kc_before = kc_fetches();
    assert_eq!(kc_before, Some(1.0));

    let stop = AtomicBool::new(false);
    let answered = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        // Keep-alive streams, each over every kind of route (none, a token, a limit).
        for stream in 0..2 {
            let (stop, answered, failures, soak, gw) = (&stop, &answered, &failures, &soak, &gw);
            s.spawn(move || {
                let mut conn = Conn::open(gw.http);
                let paths = ["/public/x", "/api/x", "/limited/x"];
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let path = paths[n % paths.len()];
                    n += 1;
                    let request = format!(
                        "GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {soak}\r\n\r\n"
                    );
                    match conn.try_request(request.as_bytes()) {
                        Ok(r) if r.status == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failures
                            .lock()
                            .unwrap()
                            .push(format!("stream {stream} {path}: {}", r.status)),
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("stream {stream} {path}: {e}"));
                            conn = Conn::open(gw.http);
                        }
                    }
                }
            });
        }

        for i in 1..=20 {
            let yaml = config(&up, &kc, &extra, i);
            if i % 2 == 0 {
                gw.rewrite_config(&yaml);
            } else {
                gw.replace_config(&yaml);
            }
            wait_until(Duration::from_secs(10), "the edit to be loaded", || {
                gw.metric("tollgate_config_reloads_total{result=\"ok\"}") == Some(i as f64)
            });
            let extra_route = if i % 2 == 1 { 200 } else { 404 };
            assert_eq!(get(&gw, "/extra/x", &soak), extra_route, "edit {i}");
        }
        stop.store(true, Ordering::Relaxed);
    });

    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        answered.load(Ordering::Relaxed) > 100,
        "the streams ran during the edits"
    );
    // A save in place can be seen half written (truncated, then written) when the writer is
    // descheduled in between on a loaded machine: that read is refused and counted, the old
    // config serves on, and the complete file is loaded right after. Never more than a few.
    let errors = gw
        .metric("tollgate_config_reloads_total{result=\"error\"}")
        .unwrap_or(0.0);
    assert!(errors <= 3.0, "{errors} refused reloads");
    // kc was in every config: its keys were never fetched again. `extra` was added 5 times
    // (edits 2, 6, 10, 14, 18): a fetch each time.
    assert_eq!(kc_fetches(), kc_before);
    let extra_fetches = gw
        .metric("tollgate_jwks_refresh_total{provider=\"extra\",result=\"ok\"}")
        .unwrap_or(0.0);
    assert_eq!(extra_fetches, 5.0);
    // The tight policy never changed: two of its five are left, then 429.
    let after: Vec<u16> = (0..3).map(|_| get(&gw, "/tight/x", &steady)).collect();
    assert_eq!(after, [200, 200, 429]);
}
