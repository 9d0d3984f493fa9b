//! Request smuggling and malformed framing: whatever Pingora's parser makes of each shape, no
//! parsing differential may reach an upstream. A raw upstream records every byte it receives;
//! each hostile request must be refused (and nothing, or only well-framed requests, reach the
//! upstream), and the gateway must go on serving.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_tests::Gateway;

/// An upstream that answers each request head it sees with a fixed 200 (reading any declared
/// body), and keeps every byte it was sent.
struct Recorder {
    addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let all = bytes.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let all = all.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut chunk = [0u8; 8192];
                    loop {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => all.lock().unwrap().extend_from_slice(&chunk[..n]),
                        }
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if conn.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Recorder { addr, bytes }
    }

    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.bytes.lock().unwrap())).into_owned()
    }
}

/// Sends raw bytes on a new connection; everything the gateway answers until it closes (or
/// goes quiet for a second).
fn raw(gw: &Gateway, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(gw.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn statuses(answer: &str) -> Vec<u16> {
    answer
        .match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| answer.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

#[test]
fn no_smuggling_shape_reaches_an_upstream_as_two_requests_or_ambiguous_framing() {
    let rec = Recorder::start();
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: public, match: {{ path: /public/* }}, upstream: u, auth: none }}\n",
        rec.addr
    ));
    let smuggled = "GET /admin/secret HTTP/1.1\r\nHost: t\r\n\r\n";
    let cases: Vec<(&str, String)> = vec![
        (
            "Content-Length and Transfer-Encoding",
            format!("POST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "two different Content-Lengths",
            format!("POST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()),
        ),
        (
            "Content-Length list",
            format!("POST /public/a HTTP/1.1\r\nHost: t\r\nContent-Length: 0, {}\r\n\r\n{smuggled}", smuggled.len()),
        ),
        (
            "obs-fold",
            "GET /public/a HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n".to_owned(),
        ),
        (
            "Transfer-Encoding not chunked last",
            format!("POST /public/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "Transfer-Encoding with a space before the colon",
            format!("POST /public/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "bare LF line endings",
            "GET /public/a HTTP/1.1\nHost: t\nContent-Length: 0\n\n".to_owned(),
        ),
        (
            "a chunk size that overflows",
            "POST /public/a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\nx\r\n0\r\n\r\n".to_owned(),
        ),
        (
            "invalid UTF-8 in the path",
            "GET /public/\u{fffd} HTTP/1.1\r\nHost: t\r\n\r\n".replace('\u{fffd}', "\u{80}"),
        ),
        (
            "a NUL in a header value",
            "GET /public/a HTTP/1.1\r\nHost: t\r\nX-Nul: a\0b\r\n\r\n".to_owned(),
        ),
    ];
    let mut report = Vec::new();
    for (name, request) in &cases {
        let mut bytes = request.clone().into_bytes();
        if name.starts_with("invalid UTF-8") {
            // A raw 0x80 byte in the path, not its UTF-8 encoding.
            bytes = b"GET /public/\x80 HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
        }
        let answer = raw(&gw, &bytes);
        let seen = rec.take();
        // What reached the upstream: never the smuggled request, never both framings, and
        // every request line the upstream saw is one of ours, on CRLF lines.
        assert!(
            !seen.contains("/admin/secret"),
            "{name}: smuggled through\n{seen}"
        );
        for head in seen
            .split("\r\n\r\n")
            .filter(|h| h.contains(" HTTP/1.1\r\n"))
        {
            let lower = head.to_ascii_lowercase();
            let cl = lower.matches("\r\ncontent-length:").count();
            let te = lower.matches("\r\ntransfer-encoding:").count();
            assert!(cl + te <= 1, "{name}: ambiguous framing upstream\n{head}");
            assert!(
                !head.contains("\n ") && !head.contains('\0'),
                "{name}: {head:?}"
            );
        }
        let reached = seen.matches(" HTTP/1.1\r\n").count();
        report.push(format!(
            "{name}: {:?}, upstream saw {reached} request(s)",
            statuses(&answer)
        ));
        if name.starts_with("Content-Length and Transfer-Encoding") {
            // Pingora follows RFC 9112 §6.1/6.3: Transfer-Encoding wins, Content-Length is
            // dropped, and the connection is closed after the answer, so the bytes after the
            // chunked body are never read as a request (one answer, one request upstream).
            assert_eq!((statuses(&answer), reached), (vec![200], 1), "{name}");
        }
        // Refused with a 4xx, or answered as one well-framed request.
        let codes = statuses(&answer);
        assert!(
            codes.iter().all(|c| (400..500).contains(c) || *c == 200) && codes.len() <= 1,
            "{name}: {answer:?}"
        );
    }
    // Still serving.
    let r = gw.get("/public/after");
    assert_eq!(r.status, 200, "{report:#?}");
    eprintln!("{report:#?}");
}
