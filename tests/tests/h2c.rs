//! Cleartext HTTP/2: an h2c listener beside HTTP/1.1, and h2c to upstreams (`protocol: http2`).

use std::process::Command;

use tollgate_tests::{Gateway, Upstream};

/// curl with HTTP/2 prior knowledge (h2c): (HTTP version, status, body).
fn curl_h2c(url: &str) -> (String, u16, serde_json::Value) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version} %{http_code}",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, meta) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl: {text:?} {}", String::from_utf8_lossy(&out.stderr)));
    let (version, status) = meta.split_once(' ').unwrap();
    (
        version.to_owned(),
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or_default(),
    )
}

#[test]
fn h2c_and_http1_share_the_listener_and_h2c_reaches_an_http2_upstream() {
    let u = Upstream::start("u");
    let gw = Gateway::start_with_listen(
        "  h2c: true\n",
        &format!(
            "upstreams:\n  h1: {{ targets: [\"{a}\"] }}\n  h2: {{ targets: [\"{a}\"], protocol: http2 }}\nroutes:\n  - name: one\n    match: {{ path: /one/* }}\n    upstream: h1\n    auth: none\n  - name: two\n    match: {{ path: /two/* }}\n    upstream: h2\n    auth: none\n",
            a = u.addr
        ),
    );
    let (version, status, body) = curl_h2c(&format!("http://{}/two/../two/x?q=1", gw.http));
    assert_eq!((version.as_str(), status), ("2", 200));
    assert_eq!(
        body["version"], "HTTP/2.0",
        "the upstream was reached over h2c"
    );
    assert_eq!(
        body["uri"].as_str().map(|u| u.ends_with("/two/x?q=1")),
        Some(true),
        "{body}"
    );
    let (version, status, body) = curl_h2c(&format!("http://{}/one/y", gw.http));
    assert_eq!((version.as_str(), status), ("2", 200));
    assert_eq!(body["version"], "HTTP/1.1");
    // HTTP/1.1 on the same port still works.
    let r = gw.get("/one/z");
    assert_eq!(r.status, 200);
    // Gateway answers on h2 are the same JSON.
    let (_, status, body) = curl_h2c(&format!("http://{}/nowhere", gw.http));
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

/// Requests in flight to an HTTP/2 upstream share its connections (Pingora alone would open
/// one connection per request in flight).
#[test]
fn concurrent_requests_to_an_http2_upstream_share_a_connection() {
    const N: usize = 20;
    let u = Upstream::start("u");
    let gw = Gateway::start_with_listen(
        "  h2c: true\n",
        &format!(
            "upstreams:\n  h2: {{ targets: [\"{}\"], protocol: http2 }}\nroutes:\n  - name: all\n    match: {{ path: /* }}\n    upstream: h2\n    auth: none\n",
            u.addr
        ),
    );
    // One request first, so that a connection to the upstream is open and pooled.
    let (_, status, first) = curl_h2c(&format!("http://{}/warm", gw.http));
    assert_eq!(status, 200);
    // Then N at once, multiplexed by curl on one h2c connection to the gateway.
    let urls: Vec<String> = (0..N).map(|i| format!("http://{}/r{i}", gw.http)).collect();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--http2-prior-knowledge"])
        .args(["--parallel", "--parallel-immediate", "--parallel-max", "20"])
        .args(&urls)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let answers: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(answers.len(), N, "{}", String::from_utf8_lossy(&out.stderr));
    let mut peers: Vec<&str> = answers
        .iter()
        .chain([&first])
        .map(|a| {
            assert_eq!(a["version"], "HTTP/2.0", "{a}");
            a["peer"].as_str().unwrap()
        })
        .collect();
    peers.sort_unstable();
    peers.dedup();
    // Shared: 1 to 3 connections in trials (a burst may open a second or third before the
    // first is seen to have room); one stream per connection: 13 to 20.
    assert!(
        peers.len() <= 5,
        "{} requests in flight used {} upstream connections: {peers:?}",
        N + 1,
        peers.len()
    );
}
