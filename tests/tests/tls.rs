//! The TLS listener: HTTP/1.1 and HTTP/2 by ALPN, certificates from a CA the test makes.

use std::path::Path;
use std::process::Command;

use tollgate_tests::{free_port, make_certs, temp_dir, validate, Gateway, Upstream};

/// curl over TLS, trusting only the test CA: (HTTP version, status, body).
fn curl(dir: &Path, port: u16, http2: bool) -> (String, u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(if http2 { "--http2" } else { "--http1.1" })
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://localhost:{port}/api/x"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, meta) = text.rsplit_once('\n').unwrap_or_else(|| {
        panic!(
            "curl said {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let (version, status) = meta.split_once(' ').unwrap();
    (
        version.to_owned(),
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or_default(),
    )
}

#[test]
fn https_listener_serves_http1_and_http2_by_alpn() {
    let dir = temp_dir();
    make_certs(&dir);
    let u = Upstream::start("u");
    let yaml = format!(
        "upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /api/* }}\n    upstream: u\n    auth: none\n",
        u.addr
    );
    let gw = Gateway::start_with_listen(
        &format!(
            "  https: {{ addr: \"127.0.0.1:$PORT\", cert: \"{}\", key: \"{}\" }}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
        &yaml,
    );
    let port = gw.extra_port;
    let (version, status, body) = curl(&dir, port, false);
    assert_eq!((version.as_str(), status), ("1.1", 200));
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
    let (version, status, _) = curl(&dir, port, true);
    assert_eq!((version.as_str(), status), ("2", 200));
    // Plain HTTP still works beside it.
    assert_eq!(gw.get("/api/x").status, 200);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unreadable_or_bad_certificates_are_config_errors() {
    let dir = temp_dir();
    std::fs::write(dir.join("bad.pem"), "not a certificate").unwrap();
    let yaml = |cert: &str| {
        format!(
            "listen:\n  https: {{ addr: \"127.0.0.1:{}\", cert: \"{cert}\", key: \"{cert}\" }}\nupstreams:\n  u: {{ targets: [\"127.0.0.1:9\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n",
            free_port()
        )
    };
    for cert in [dir.join("bad.pem"), dir.join("missing.pem")] {
        let (code, out) = validate(&yaml(&cert.display().to_string()));
        assert_eq!(code, 1, "{out}");
        assert!(out.starts_with("error: listen.https"), "{out}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tls_to_upstreams_is_verified_against_the_ca_file_over_http1_and_http2() {
    let dir = temp_dir();
    make_certs(&dir);
    let other = temp_dir();
    make_certs(&other); // a second, unrelated CA
    let u = Upstream::start("u");
    // The TLS upstream: a gateway with an https listener in front of the echo server.
    let front = Gateway::start_with_listen(
        &format!(
            "  https: {{ addr: \"127.0.0.1:$PORT\", cert: \"{}\", key: \"{}\" }}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
        &format!("upstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n", u.addr),
    );
    let upstream = |protocol: &str, ca: &Path| {
        format!(
            "upstreams:\n  secure: {{ targets: [\"127.0.0.1:{}\"], protocol: {protocol}, tls: {{ sni: localhost, ca_file: \"{}\" }} }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: secure\n    auth: none\n",
            front.extra_port,
            ca.display()
        )
    };
    for protocol in ["http1", "http2"] {
        let gw = Gateway::start(&upstream(protocol, &dir.join("ca.pem")));
        let r = gw.get("/x");
        assert_eq!(
            r.status,
            200,
            "{protocol}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(
            r.json()["headers"]["x-forwarded-proto"],
            "https",
            "{protocol}"
        );
    }
    // A certificate from another CA is refused: no request reaches the upstream.
    let gw = Gateway::start(&upstream("http1", &other.join("ca.pem")));
    assert_eq!(gw.get("/x").status, 502);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other);
}

#[test]
fn a_bad_ca_file_is_a_config_error() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("bad.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    for ca in [dir.join("bad.pem"), dir.join("missing.pem")] {
        let (code, out) = validate(&format!(
            "upstreams:\n  u: {{ targets: [\"127.0.0.1:9\"], tls: {{ ca_file: \"{}\" }} }}\nroutes:\n  - name: r\n    match: {{ path: /* }}\n    upstream: u\n    auth: none\n",
            ca.display()
        ));
        assert_eq!(code, 1, "{out}");
        assert!(out.starts_with("error: upstreams.u.tls"), "{out}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
