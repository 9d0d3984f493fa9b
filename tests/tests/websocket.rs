//! WebSocket upgrades are proxied: the handshake passes the pipeline, then bytes flow both ways.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use tollgate_tests::{Gateway, UpgradeEchoServer};

#[test]
fn an_upgrade_is_proxied_and_the_connection_carries_bytes_both_ways() {
    let ws = UpgradeEchoServer::start();
    let gw = Gateway::start(&format!(
        "upstreams:\n  ws: {{ targets: [\"{}\"] }}\nroutes:\n  - name: socket\n    match: {{ path: /ws/*, methods: [GET] }}\n    upstream: ws\n    auth: none\n    forward_headers: {{ X-User-ID: sub }}\n",
        ws.addr
    ));
    let mut conn = TcpStream::connect(gw.http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(b"GET /ws/chat/../room HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-User-ID: forged\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            conn.read(&mut byte).unwrap(),
            1,
            "connection closed during the handshake"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");

    for message in [&b"hello"[..], b"\x81\x05world", &[0u8; 3000]] {
        conn.write_all(message).unwrap();
        let mut echoed = vec![0u8; message.len()];
        conn.read_exact(&mut echoed).unwrap();
        assert_eq!(echoed, message);
    }

    let upstream_head = ws.heads.lock().unwrap()[0].clone();
    assert!(
        upstream_head.starts_with("GET /ws/room HTTP/1.1"),
        "normalised path upstream:\n{upstream_head}"
    );
    assert!(
        upstream_head
            .to_ascii_lowercase()
            .contains("upgrade: websocket"),
        "{upstream_head}"
    );
    assert!(
        !upstream_head.contains("forged"),
        "identity header forwarded:\n{upstream_head}"
    );
}

#[test]
fn an_upgraded_connection_silent_past_the_read_timeout_is_closed() {
    let ws = UpgradeEchoServer::start();
    let gw = Gateway::start(&format!(
        "upstreams:\n  ws: {{ targets: [\"{}\"], timeouts: {{ read: 300ms }} }}\nroutes:\n  - name: socket\n    match: {{ path: /ws }}\n    upstream: ws\n    auth: none\n",
        ws.addr
    ));
    let mut conn = TcpStream::connect(gw.http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(
        b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    // Silent for longer than the read timeout: the gateway closes the connection.
    let started = std::time::Instant::now();
    let closed = loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break true,
            Ok(_) if started.elapsed() > Duration::from_secs(8) => break false,
            Ok(_) => {}
        }
    };
    assert!(closed);
}
