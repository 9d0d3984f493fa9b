//! SIGQUIT graceful upgrade: a new process takes over the listener with no failed request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tollgate_tests::{temp_dir, wait_until, Conn, Gateway, Upstream};

#[test]
fn a_new_process_takes_over_the_listener_with_no_failed_request() {
    let u = Upstream::start("u");
    let sock_dir = temp_dir();
    let sock = sock_dir.join("upgrade.sock");
    let mut old = Gateway::start(&format!(
        "server:\n  grace_period: 5s\n  upgrade_sock: \"{}\"\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n",
        sock.display(),
        u.addr
    ));

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, sent, addr) = (stop.clone(), sent.clone(), old.http);
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                // A new connection each time: the listener itself must never be missing.
                match std::panic::catch_unwind(|| {
                    Conn::open(addr)
                        .try_request(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                }) {
                    Ok(Ok(r)) if r.status == 200 => {}
                    Ok(Ok(r)) => failures.push(format!("status {}", r.status)),
                    Ok(Err(e)) => failures.push(e.to_string()),
                    Err(_) => failures.push("connect failed".to_owned()),
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
            failures
        })
    };
    wait_until(Duration::from_secs(10), "traffic", || {
        sent.load(Ordering::Relaxed) > 20
    });

    let mut new = old.upgrade(&sock);
    wait_until(Duration::from_secs(20), "the old process to exit", || {
        old.exited()
    });
    let after = sent.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "traffic to the new process",
        || sent.load(Ordering::Relaxed) > after + 20,
    );
    stop.store(true, Ordering::Relaxed);
    let failures = client.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}",
        failures.len(),
        failures.first()
    );
    assert!(!new.exited(), "the new process is serving");
    assert_eq!(new.admin_get("/healthz").status, 200);
    let _ = std::fs::remove_dir_all(sock_dir);
}
