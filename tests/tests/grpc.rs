//! gRPC end to end with a real stack (Python grpcio client and server): unary and
//! bidirectional streaming through an h2c listener to an h2c upstream, trailers passed
//! through, and the gateway's own answers as gRPC statuses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tollgate_tests::{free_port, python, Gateway, Process};

/// The grpcio test server on a free port: (peer.py, port, its process).
fn grpc_server() -> (std::path::PathBuf, u16, Process) {
    let peer = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc/peer.py");
    let port = free_port();
    let mut server = Process(
        Command::new(python())
            .arg(&peer)
            .args(["server", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Bounded: the server prints one line once it listens, or exits.
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "serving");
    (peer, port, server)
}

/// peer.py as a client with these arguments; it must print "all ok" and exit 0.
fn run_client(peer: &std::path::Path, args: &[&str]) {
    let out = Command::new(python())
        .arg(peer)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all ok"), "{stdout}");
}

#[test]
fn grpc_unary_and_streaming_calls_pass_through_with_trailers() {
    let (peer, port, server) = grpc_server();

    let gw = Gateway::start_with_listen(
        "  h2c: true\n",
        &format!(
            "upstreams:\n  grpc: {{ targets: [\"127.0.0.1:{port}\"], protocol: http2 }}\nroutes:\n  - name: echo\n    match: {{ path: /test.Echo/* }}\n    upstream: grpc\n    auth: none\n"
        ),
    );
    run_client(&peer, &["client", &gw.http.to_string()]);
    drop(server);
}

#[test]
fn a_real_grpc_client_gets_unauthenticated_and_permission_denied() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let (peer, port, _server) = grpc_server();

    let secret = "grpc-test-secret-0123456789abcdef";
    let gw = Gateway::start_with_listen(
        "  h2c: true\n",
        &format!(
            "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.test, secret: {secret} }}\nupstreams:\n  grpc: {{ targets: [\"127.0.0.1:{port}\"], protocol: http2 }}\nroutes:\n  - name: echo\n    match: {{ path: /test.Echo/* }}\n    upstream: grpc\n    allow: {{ roles: [admin] }}\n"
        ),
    );
    let token = |roles: &[&str]| {
        let claims = serde_json::json!({ "iss": "https://hs.test", "sub": "s", "exp": 9_999_999_999u64, "roles": roles });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    run_client(
        &peer,
        &[
            "auth",
            &gw.http.to_string(),
            &token(&["admin"]),
            &token(&["user"]),
        ],
    );
}
