//! Slow clients: request headers must arrive within `server.header_timeout` (slowloris), idle
//! keep-alive connections close after `server.idle_timeout`, and neither slows anyone else.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tollgate_tests::{Gateway, Upstream};

fn config(up: &Upstream) -> String {
    format!(
        "server:\n  grace_period: 0s\n  header_timeout: 1s\n  idle_timeout: 2s\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u, auth: none }}\n",
        up.addr
    )
}

/// Reads until the server closes the connection (or 10 s pass); returns when that was.
fn closed_after(mut s: TcpStream, started: Instant) -> Duration {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_at_the_header_timeout() {
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&up));
    let mut slow = TcpStream::connect(gw.http).unwrap();
    let started = Instant::now();
    // One byte every 200 ms: each read is quick, the whole header never completes in time.
    let trickler = std::thread::spawn(move || {
        for b in
            b"GET /x HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200)); // the slow client's pace
        }
        slow
    });
    // Others are served meanwhile.
    assert_eq!(gw.get("/x").status, 200);
    let slow = trickler.join().unwrap();
    let closed = closed_after(slow, started);
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(5),
        "closed after {closed:?}"
    );
    assert_eq!(gw.get("/x").status, 200);
}

#[test]
fn a_connection_that_never_sends_a_request_is_closed() {
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&up));
    let silent = TcpStream::connect(gw.http).unwrap();
    let closed = closed_after(silent, Instant::now());
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&up));
    let mut conn = TcpStream::connect(gw.http).unwrap();
    conn.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 8192];
    let n = conn.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let closed = closed_after(conn, idle_from);
    assert!(
        closed >= Duration::from_millis(1500) && closed < Duration::from_secs(6),
        "closed after {closed:?}"
    );
}

#[test]
fn the_h2c_sniff_is_bounded_by_the_header_timeout() {
    let up = Upstream::start("u");
    let gw = Gateway::start_with_listen("  h2c: true\n", &config(&up));
    // Fewer bytes than the HTTP/2 preface, then silence: Pingora alone would wait forever.
    let mut short = TcpStream::connect(gw.http).unwrap();
    short.write_all(b"GET /").unwrap();
    let closed = closed_after(short, Instant::now());
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
    assert_eq!(
        gw.get("/x").status,
        200,
        "HTTP/1.1 still served on the h2c port"
    );
}
