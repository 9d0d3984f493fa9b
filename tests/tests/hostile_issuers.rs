//! Hostile key servers: a JWKS endpoint that answers HTML, an `oct` key for an EC provider, a
//! document for another issuer, a redirect elsewhere, a body over the size cap, or trickles its
//! answer (slowloris). None may replace the good keys, and none may stall the requests of the
//! other provider, or those of its own tokens whose keys are known.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tollgate_tests::{wait_until, Gateway, Response, Upstream};

/// What the key server does now.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Good,
    Html,
    OctKey,
    Redirect,
    Huge,
    Slow,
}

/// A key server whose behaviour the test switches; it counts the requests it got.
struct KeyServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<u32>>,
}

impl KeyServer {
    fn start(jwks: String) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Good));
        let requests = Arc::new(Mutex::new(0));
        let (m, n) = (mode.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (mode, jwks) = (*m.lock().unwrap(), jwks.clone());
                *n.lock().unwrap() += 1;
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = conn.read(&mut buf);
                    let answer = |status: &str, ctype: &str, body: &str| {
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    };
                    let text = match mode {
                        Mode::Good => answer("200 OK", "application/json", &jwks),
                        Mode::Html => answer("200 OK", "text/html", "<html><body>Sign in</body></html>"),
                        Mode::OctKey => answer(
                            "200 OK",
                            "application/json",
                            &json!({ "keys": [{ "kty": "oct", "kid": "evil", "k": "c2VjcmV0", "alg": "HS256" }] })
                                .to_string(),
                        ),
                        Mode::Redirect => "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/jwks\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                        Mode::Huge => {
                            let pad = "x".repeat(2 * 1024 * 1024);
                            answer("200 OK", "application/json", &format!("{{\"keys\":[],\"pad\":\"{pad}\"}}"))
                        }
                        Mode::Slow => {
                            // Headers promised, then a byte every 200 ms: past the 5 s limit.
                            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n");
                            for _ in 0..100 {
                                if conn.write_all(b" ").is_err() {
                                    return;
                                }
                                std::thread::sleep(Duration::from_millis(200)); // the slowloris itself
                            }
                            return;
                        }
                    };
                    let _ = conn.write_all(text.as_bytes());
                });
            }
        });
        KeyServer {
            addr,
            mode,
            requests,
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> u32 {
        *self.requests.lock().unwrap()
    }
}

/// An ES256 key: (private PEM, its JWKS with `kid`).
fn es256(kid: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = key.public_key_raw();
    let (x, y) = point[1..].split_at(32);
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }] });
    (key.serialize_pem(), jwks.to_string())
}

fn token(pem: &str, kid: &str, iss: &str) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = json!({ "iss": iss, "sub": "s", "exp": 9_999_999_999u64 });
    encode(
        &header,
        &claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn get(gw: &Gateway, token: &str) -> (Response, Duration) {
    let started = Instant::now();
    let r = gw.send(&format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ));
    (r, started.elapsed())
}

#[test]
fn a_hostile_key_server_never_replaces_good_keys_or_stalls_other_callers() {
    let (a_pem, a_jwks) = es256("a-1");
    let (b_pem, b_jwks) = es256("b-1");
    let a = KeyServer::start(a_jwks);
    let b = KeyServer::start(b_jwks);
    let up = Upstream::start("u");
    let gw = Gateway::start(&format!(
        "auth:\n  jwks: {{ refresh_interval: 1h, max_stale: 2h, min_refetch_interval: 1s }}\n  providers:\n    - {{ name: a, issuer: https://a.test, jwks_uri: \"http://{}/jwks\", algorithms: [ES256] }}\n    - {{ name: b, issuer: https://b.test, jwks_uri: \"http://{}/jwks\" }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u }}\n",
        a.addr, b.addr, up.addr
    ));
    wait_until(Duration::from_secs(10), "both providers' keys", || {
        gw.admin_get("/readyz").status == 200
    });
    let good_a = token(&a_pem, "a-1", "https://a.test");
    let good_b = token(&b_pem, "b-1", "https://b.test");
    // A token naming a kid nobody has: it makes the gateway fetch a's keys again.
    let (stranger, _) = es256("a-unknown");
    let probe = token(&stranger, "a-unknown", "https://a.test");
    // What a forger holding the `oct` key would send.
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("evil".into());
    let forged = encode(
        &hs,
        &json!({ "iss": "https://a.test", "sub": "evil", "exp": 9_999_999_999u64 }),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();

    for mode in [
        Mode::Html,
        Mode::OctKey,
        Mode::Redirect,
        Mode::Huge,
        Mode::Slow,
    ] {
        a.set(mode);
        let before = a.requests();
        // Refetches are at most one a second: ask until one has reached the server.
        let mut probe_took = Duration::ZERO;
        wait_until(Duration::from_secs(10), "a refetch of a's keys", || {
            let (r, took) = get(&gw, &probe);
            probe_took = took;
            assert_eq!(r.status, 401, "{mode:?}");
            a.requests() > before
        });
        // While (or after) a's key server misbehaves: a's known keys and b are untouched and
        // fast; a slow key server delays only the probe that waits for the refetch.
        for (t, who) in [(&good_a, "a"), (&good_b, "b")] {
            let (r, took) = get(&gw, t);
            assert_eq!(r.status, 200, "{mode:?}: {who}'s good token");
            assert!(
                took < Duration::from_secs(1),
                "{mode:?}: {who} waited {took:?}"
            );
        }
        let (r, _) = get(&gw, &forged);
        assert_eq!(r.status, 401, "{mode:?}: a token keyed with the oct key");
        if mode != Mode::Slow {
            assert!(
                probe_took < Duration::from_secs(6),
                "{mode:?}: {probe_took:?}"
            );
        }
    }
    assert_eq!(
        gw.metric("tollgate_jwks_keys{provider=\"a\"}"),
        Some(1.0),
        "a still has its one good key"
    );
    assert_eq!(b.requests(), 1, "b's key server was asked once, at start");
}

/// A discovery endpoint that starts naming another issuer: OpenID Connect Discovery §4.3 says
/// its keys are not this issuer's. The fetch fails and the keys fetched before stay.
#[test]
fn a_discovery_document_that_changes_its_issuer_replaces_nothing() {
    let (pem, jwks) = es256("d-1");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let named = Arc::new(Mutex::new(issuer.clone()));
    let requests = Arc::new(Mutex::new(0u32));
    {
        let (named, requests, issuer) = (named.clone(), requests.clone(), issuer.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let body = if head.starts_with("GET /.well-known/openid-configuration") {
                    *requests.lock().unwrap() += 1;
                    let named = named.lock().unwrap().clone();
                    json!({ "issuer": named, "jwks_uri": format!("{issuer}/jwks") }).to_string()
                } else {
                    jwks.clone()
                };
                let _ = conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
    }
    let up = Upstream::start("u");
    let gw = Gateway::start(&format!(
        "auth:\n  jwks: {{ refresh_interval: 1h, max_stale: 2h, min_refetch_interval: 1s }}\n  providers:\n    - {{ name: d, issuer: \"{issuer}\" }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u }}\n",
        up.addr
    ));
    wait_until(Duration::from_secs(10), "the provider's keys", || {
        gw.admin_get("/readyz").status == 200
    });
    let good = token(&pem, "d-1", &issuer);
    assert_eq!(get(&gw, &good).0.status, 200);

    *named.lock().unwrap() = "https://evil.test".to_owned();
    let (stranger, _) = es256("d-unknown");
    let probe = token(&stranger, "d-unknown", &issuer);
    let before = *requests.lock().unwrap();
    wait_until(
        Duration::from_secs(10),
        "a refetch of the discovery document",
        || {
            assert_eq!(get(&gw, &probe).0.status, 401);
            *requests.lock().unwrap() > before
        },
    );
    assert_eq!(
        get(&gw, &good).0.status,
        200,
        "the keys fetched before stay"
    );
    assert_eq!(gw.metric("tollgate_jwks_keys{provider=\"d\"}"), Some(1.0));
    assert!(
        gw.metric("tollgate_jwks_refresh_total{provider=\"d\",result=\"error\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
}
