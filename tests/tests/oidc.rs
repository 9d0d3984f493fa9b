//! Real issuers (npm `oidc-provider` and `oauth2-mock-server`, started here on loopback): OIDC
//! discovery, `jwks_uri`, key rotation, floods of unknown `kid`s, and issuer outages.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use tollgate_tests::{free_port, temp_dir, wait_until, Gateway, Idp, Response, Upstream};

fn get(gw: &Gateway, token: &str) -> Response {
    gw.send(&format!(
        "GET /api/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ))
}

fn config(up: &Upstream, jwks: &str, providers: &str) -> String {
    format!(
        "auth:\n{jwks}  providers:\n{providers}upstreams:\n  u: {{ targets: [\"{}\"] }}\nforward_headers:\n  X-User-ID: $subject\n  X-Provider: $provider\n  X-Roles: $roles\n  X-Client: $client\n  X-Plan: plan\nroutes:\n  - {{ name: api, match: {{ path: /api/* }}, upstream: u }}\n",
        up.addr
    )
}

/// A metric's value from `/metrics` (0 when the series does not exist yet).
fn metric(gw: &Gateway, series: &str) -> f64 {
    let text = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn wait_ready(gw: &Gateway) {
    wait_until(Duration::from_secs(20), "every provider has keys", || {
        gw.admin_get("/readyz").status == 200
    });
}

/// A token for `issuer` with a `kid` nobody published and a signature that is not one.
fn unknown_kid_token(issuer: &str, kid: &str) -> String {
    let head = URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "kid": kid }).to_string());
    let body = URL_SAFE_NO_PAD
        .encode(json!({ "iss": issuer, "sub": "x", "exp": 9_999_999_999u64 }).to_string());
    format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]))
}

#[test]
fn three_real_issuers_by_discovery_jwks_uri_and_namespaced_claims() {
    let keys = temp_dir();
    let rs = Idp::oidc(0, "RS256", "rs-1", &keys.join("rs.jwk"));
    let es = Idp::oidc(0, "ES256", "es-1", &keys.join("es.jwk"));
    let mock = Idp::mock(0, "mock-1");
    let up = Upstream::start("u");
    let providers = format!(
        "    - {{ name: kc, issuer: \"{}\", audiences: [https://api.example.test], claims: {{ roles: realm_access.roles }} }}\n    - {{ name: es, issuer: \"{}\", jwks_uri: \"{}/jwks\", algorithms: [ES256] }}\n    - {{ name: auth0, issuer: \"{}\", audiences: [https://api.example.test], claims: {{ roles: \"https://example.com/roles\" }} }}\n",
        rs.issuer, es.issuer, es.issuer, mock.issuer
    );
    let gw = Gateway::start(&config(&up, "", &providers));
    wait_ready(&gw);

    let r = get(&gw, &rs.token("svc-admin", "svc-admin-secret"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let h = &r.json()["headers"];
    assert_eq!(
        (
            &h["x-provider"],
            &h["x-user-id"],
            &h["x-roles"],
            &h["x-client"],
            &h["x-plan"]
        ),
        (
            &json!("kc"),
            &json!("svc-admin"),
            &json!("admin,user"),
            &json!("svc-admin"),
            &json!("pro")
        )
    );
    let r = get(&gw, &es.token("svc-user", "svc-user-secret"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-provider"], "es");
    let r = get(&gw, &mock.token("reporting", "any"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-roles"], "admin");

    // Cross-issuer: the ES256 issuer's token rewritten to claim the RS256 issuer never
    // validates (its key is not among that issuer's keys).
    let token = es.token("svc-user", "svc-user-secret");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    payload["iss"] = json!(rs.issuer);
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(get(&gw, &parts.join(".")).status, 401);

    assert!(metric(&gw, r#"tollgate_jwks_keys{provider="kc"}"#) >= 1.0);
    assert!(
        metric(
            &gw,
            r#"tollgate_jwks_refresh_total{provider="kc",result="ok"}"#
        ) >= 1.0
    );
}

#[test]
fn a_rotated_key_is_accepted_on_the_first_request() {
    let keys = temp_dir();
    let port = free_port();
    let idp = Idp::oidc(port, "RS256", "old", &keys.join("old.jwk"));
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(
        &up,
        "",
        &format!("    - {{ name: kc, issuer: \"{}\" }}\n", idp.issuer),
    ));
    wait_ready(&gw);
    let old = idp.token("svc-user", "svc-user-secret");
    assert_eq!(get(&gw, &old).status, 200);

    // The issuer restarts with a new key (a new kid): a real rotation.
    drop(idp);
    let idp = Idp::oidc(port, "RS256", "new", &keys.join("new.jwk"));
    let new = idp.token("svc-user", "svc-user-secret");
    let r = get(&gw, &new);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The old key is no longer published: its tokens stop at once, cached or not.
    assert_eq!(get(&gw, &old).status, 401);
}

#[test]
fn a_flood_of_unknown_kids_fetches_the_keys_at_most_twice() {
    let keys = temp_dir();
    let idp = Idp::oidc(0, "RS256", "k1", &keys.join("k.jwk"));
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(
        &up,
        "",
        &format!("    - {{ name: kc, issuer: \"{}\" }}\n", idp.issuer),
    ));
    wait_ready(&gw);
    let series = r#"tollgate_jwks_refresh_total{provider="kc",result="ok"}"#;
    let before = metric(&gw, series);
    std::thread::scope(|s| {
        for t in 0..10 {
            let (gw, issuer) = (&gw, &idp.issuer);
            s.spawn(move || {
                for i in 0..30 {
                    let token = unknown_kid_token(issuer, &format!("attacker-{t}-{i}"));
                    assert_eq!(get(gw, &token).status, 401);
                }
            });
        }
    });
    let fetches = metric(&gw, series) - before;
    assert!(
        fetches <= 2.0,
        "{fetches} JWKS fetches for 300 unknown kids"
    );
    assert_eq!(
        get(&gw, &idp.token("svc-user", "svc-user-secret")).status,
        200
    );
}

#[test]
fn keys_outlive_an_issuer_outage_of_several_refresh_intervals() {
    let keys = temp_dir();
    let idp = Idp::oidc(0, "ES256", "k1", &keys.join("k.jwk"));
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(
        &up,
        "  jwks:\n    refresh_interval: 1s\n    max_stale: 1h\n",
        &format!("    - {{ name: kc, issuer: \"{}\" }}\n", idp.issuer),
    ));
    wait_ready(&gw);
    let seen = idp.token("svc-user", "svc-user-secret");
    let unseen = idp.token("svc-admin", "svc-admin-secret");
    assert_eq!(get(&gw, &seen).status, 200);
    drop(idp);
    let errors = r#"tollgate_jwks_refresh_total{provider="kc",result="error"}"#;
    wait_until(Duration::from_secs(20), "three failed refreshes", || {
        metric(&gw, errors) >= 3.0
    });
    assert_eq!(get(&gw, &seen).status, 200);
    assert_eq!(get(&gw, &unseen).status, 200, "verified with the kept keys");
    assert_eq!(gw.admin_get("/readyz").status, 200);
}

#[test]
fn an_issuer_down_since_start_gets_503_then_works_once_it_is_up() {
    let keys = temp_dir();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}/realms/main");
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(
        &up,
        "",
        &format!("    - {{ name: kc, issuer: \"{issuer}\" }}\n"),
    ));
    let r = get(&gw, &unknown_kid_token(&issuer, "k1"));
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(gw.admin_get("/readyz").status, 503);

    let idp = Idp::oidc(port, "RS256", "k1", &keys.join("k.jwk"));
    assert_eq!(idp.issuer, issuer);
    wait_ready(&gw);
    assert_eq!(
        get(&gw, &idp.token("svc-user", "svc-user-secret")).status,
        200
    );
}

#[test]
fn a_reload_keeps_the_keys_of_unchanged_providers_and_fetches_only_new_ones() {
    let keys = temp_dir();
    let kc = Idp::oidc(0, "RS256", "k1", &keys.join("kc.jwk"));
    let mock = Idp::mock(0, "m1");
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(
        &up,
        "",
        &format!("    - {{ name: kc, issuer: \"{}\" }}\n", kc.issuer),
    ));
    wait_ready(&gw);
    let fetched = |name: &str| {
        metric(
            &gw,
            &format!(r#"tollgate_jwks_refresh_total{{provider="{name}",result="ok"}}"#),
        )
    };
    assert_eq!(fetched("kc"), 1.0);
    let token = kc.token("svc-user", "svc-user-secret");
    assert_eq!(get(&gw, &token).status, 200);

    // A second provider and a second route arrive by SIGHUP.
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "upstreams:",
        &format!(
            "    - {{ name: auth0, issuer: \"{}\", audiences: [https://api.example.test] }}\nupstreams:",
            mock.issuer
        ),
    );
    let text = format!("{text}  - {{ name: more, match: {{ path: /more/* }}, upstream: u }}\n");
    std::fs::write(&path, text).unwrap();
    gw.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload", || {
        metric(&gw, r#"tollgate_config_reloads_total{result="ok"}"#) == 1.0
    });
    // The unchanged provider kept its keys: usable at once, not fetched again.
    assert_eq!(get(&gw, &token).status, 200);
    assert_eq!(fetched("kc"), 1.0);
    wait_ready(&gw);
    assert_eq!(fetched("auth0"), 1.0);
    assert_eq!(get(&gw, &mock.token("c", "s")).status, 200);
}

/// A JWKS served over HTTPS by Python's standard library, with a certificate for `localhost`
/// from a CA the test makes: `tls.ca_file` is what makes it trusted.
#[test]
fn a_jwks_over_https_is_trusted_through_tls_ca_file_only() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let dir = temp_dir();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let tls_key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&tls_key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), tls_key.serialize_pem()).unwrap();

    let signing = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = signing.public_key_raw();
    let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "tls-1",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]) }] });
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/jwks.json"), jwks.to_string()).unwrap();
    let port = free_port();
    let script = format!(
        "import functools, http.server, ssl\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         ctx.load_cert_chain('{d}/cert.pem', '{d}/key.pem')\n\
         handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory='{d}/www')\n\
         httpd = http.server.HTTPServer(('127.0.0.1', {port}), handler)\n\
         httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)\n\
         httpd.serve_forever()\n",
        d = dir.display()
    );
    let _server = tollgate_tests::Process(
        std::process::Command::new("python3")
            .args(["-c", &script])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(10), "the HTTPS JWKS server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let up = Upstream::start("u");
    let uri = format!("https://localhost:{port}/jwks.json");
    let gw = Gateway::start(&format!(
        "auth:\n  providers:\n    - {{ name: trusted, issuer: https://trusted.test, jwks_uri: \"{uri}\", tls: {{ ca_file: \"{}\" }} }}\n    - {{ name: untrusted, issuer: https://untrusted.test, jwks_uri: \"{uri}\" }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: api, match: {{ path: /api/* }}, upstream: u }}\n",
        dir.join("ca.pem").display(),
        up.addr
    ));
    let token = |iss: &str| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("tls-1".into());
        let claims = json!({ "iss": iss, "sub": "s", "exp": 9_999_999_999u64 });
        encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(signing.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    wait_until(
        Duration::from_secs(20),
        "the trusted provider's keys",
        || get(&gw, &token("https://trusted.test")).status == 200,
    );
    // The same server, without the CA: its certificate is not trusted, so no keys.
    wait_until(
        Duration::from_secs(20),
        "the untrusted provider's failed fetch",
        || {
            metric(
                &gw,
                r#"tollgate_jwks_refresh_total{provider="untrusted",result="error"}"#,
            ) >= 1.0
        },
    );
    assert_eq!(get(&gw, &token("https://untrusted.test")).status, 503);
}

#[test]
fn a_claim_forwarded_after_a_reload_is_sent_for_a_token_cached_before_it() {
    // Claims a config reads are resolved when a token is verified; a token verified under the
    // old config, and answered from the cache after the reload, finds the new claim too.
    let keys = temp_dir();
    let rs = Idp::oidc(0, "RS256", "rs-1", &keys.join("rs.jwk"));
    let up = Upstream::start("u");
    let auth = format!(
        "auth:\n  providers:\n    - {{ name: kc, issuer: \"{}\", audiences: [https://api.example.test], claims: {{ roles: realm_access.roles }} }}\n",
        rs.issuer
    );
    // What follows `auth`: the part a reload rewrites (Gateway::rewrite_config keeps the rest).
    let body = |forward: &str| {
        format!(
            "upstreams:\n  u: {{ targets: [\"{}\"] }}\nforward_headers:\n  X-User-ID: $subject\n{forward}routes:\n  - {{ name: api, match: {{ path: /api/* }}, upstream: u }}\n",
            up.addr
        )
    };
    let gw = Gateway::start(&format!("{auth}{}", body("")));
    wait_ready(&gw);
    let token = rs.token("svc-admin", "svc-admin-secret");
    let before = get(&gw, &token);
    assert_eq!(
        before.status,
        200,
        "{}",
        String::from_utf8_lossy(&before.body)
    );
    let h = &before.json()["headers"];
    assert_eq!(h["x-user-id"], "svc-admin");
    assert!(h.get("x-plan").is_none(), "not forwarded yet: {h}");

    gw.rewrite_config(&body(
        "  X-Plan: plan\n  X-Realm-Roles: realm_access.roles\n",
    ));
    gw.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload", || {
        metric(&gw, r#"tollgate_config_reloads_total{result="ok"}"#) == 1.0
    });
    let after = get(&gw, &token);
    assert_eq!(
        after.status,
        200,
        "{}",
        String::from_utf8_lossy(&after.body)
    );
    let h = &after.json()["headers"];
    assert_eq!(
        (&h["x-user-id"], &h["x-plan"], &h["x-realm-roles"]),
        (&json!("svc-admin"), &json!("pro"), &json!("admin,user"))
    );
    assert_eq!(
        (
            metric(&gw, r#"tollgate_token_cache_total{result="miss"}"#),
            metric(&gw, r#"tollgate_token_cache_total{result="hit"}"#)
        ),
        (1.0, 1.0),
        "verified once, before the reload; answered from the cache after it"
    );
}
