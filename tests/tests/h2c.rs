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
