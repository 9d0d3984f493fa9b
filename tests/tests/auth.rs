//! Authentication on the wire with keys a real user holds themselves: an HS256 secret from the
//! environment, an ES256 PEM public key, API keys; and what the gateway answers to missing,
//! bad and forged credentials.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tollgate_tests::{free_port, temp_dir, validate, Gateway, Upstream};

const SECRET: &str = "a-long-enough-test-secret-0123456789";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn claims(iss: &str) -> Value {
    json!({ "iss": iss, "sub": "alice", "exp": now() + 600, "iat": now(),
            "email": "alice@example.test", "plan": "pro", "roles": ["admin", "user"] })
}

fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> tollgate_tests::Response {
    gw.request("GET", path, headers)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn hs_gateway(up: &Upstream) -> Gateway {
    Gateway::start_with_env(
        &format!(
            r#"
auth:
  providers:
    - name: hs
      issuer: https://hs.example.test
      secret: ${{HS_SECRET}}
  api_keys:
    keys:
      - {{ id: ci, key: "${{CI_KEY}}", subject: ci-bot, claims: {{ roles: [deployer] }} }}
upstreams:
  u: {{ targets: ["{}"] }}
forward_headers:
  X-User-ID: sub
  X-Auth-Provider: $provider
routes:
  - name: open
    match: {{ path: /open/* }}
    upstream: u
    auth: none
  - name: maybe
    match: {{ path: /maybe/* }}
    upstream: u
    auth: optional
  - name: private
    match: {{ path: /private/* }}
    upstream: u
    forward_headers:
      X-User-Email: email
      X-Plan: plan
      X-Roles: $roles
      X-Auth-Provider: null
"#,
            up.addr
        ),
        &[("HS_SECRET", SECRET), ("CI_KEY", "ci-key-value-123")],
    )
}

#[test]
fn a_valid_hs256_token_passes_and_its_identity_is_forwarded() {
    let up = Upstream::start("u");
    let gw = hs_gateway(&up);
    let token = hs256(&claims("https://hs.example.test"));
    let r = get(
        &gw,
        "/private/x",
        &[
            ("Authorization", &bearer(&token)),
            ("X-User-ID", "forged"),
            ("X-Request-Id", "auth-ok-1"),
        ],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let headers = &r.json()["headers"];
    assert_eq!(
        headers["x-user-id"], "alice",
        "the client's X-User-ID is replaced"
    );
    assert_eq!(headers["x-user-email"], "alice@example.test");
    assert_eq!(headers["x-plan"], "pro");
    assert_eq!(headers["x-roles"], "admin,user");
    assert!(
        headers.get("x-auth-provider").is_none(),
        "null removes a default"
    );
    assert!(
        headers.get("authorization").is_none(),
        "credentials are not forwarded"
    );

    let line = gw.access_log_line("auth-ok-1");
    assert_eq!(line["provider"], "hs");
    assert_eq!(line["subject"], "alice");
    assert_eq!(line["auth"], "ok");
    let metrics = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    assert!(
        metrics.contains(r#"tollgate_auth_total{provider="hs",result="ok"} 1"#),
        "{metrics}"
    );

    // The same token again is answered from the verified-token cache.
    let again = get(&gw, "/private/x", &[("Authorization", &bearer(&token))]);
    assert_eq!(again.status, 200);
    assert_eq!(
        gw.metric(r#"tollgate_token_cache_total{result="miss"}"#),
        Some(1.0)
    );
    assert_eq!(
        gw.metric(r#"tollgate_token_cache_total{result="hit"}"#),
        Some(1.0)
    );
}

#[test]
fn missing_bad_and_doubled_credentials() {
    let up = Upstream::start("u");
    let gw = hs_gateway(&up);

    let r = get(&gw, "/private/x", &[("X-Request-Id", "auth-missing")]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="tollgate""#)
    );
    assert_eq!(r.json()["error"], "unauthorized");
    assert_eq!(gw.access_log_line("auth-missing")["auth"], "unauthorized");

    let mut expired = claims("https://hs.example.test");
    expired["exp"] = json!(now() - 3600);
    let token = hs256(&expired);
    let r = get(&gw, "/private/x", &[("Authorization", &bearer(&token))]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            r#"Bearer realm="tollgate", error="invalid_token", error_description="token expired""#
        )
    );
    assert_eq!(
        r.json(),
        json!({ "error": "invalid_token", "error_description": "token expired" })
    );
    assert!(!String::from_utf8_lossy(&r.body).contains(&token));

    let good = hs256(&claims("https://hs.example.test"));
    let two = get(
        &gw,
        "/private/x",
        &[
            ("Authorization", &bearer(&good)),
            ("Authorization", &bearer(&good)),
        ],
    );
    assert_eq!(two.status, 400);
    let both = get(
        &gw,
        "/private/x",
        &[
            ("Authorization", &bearer(&good)),
            ("X-API-Key", "ci-key-value-123"),
        ],
    );
    assert_eq!(both.status, 400);

    // Not strict base64url: padding, '+' or '/'.
    let (head, rest) = good.split_once('.').unwrap();
    for bad in [
        format!("{head}=.{rest}"),
        format!("{head}+.{rest}"),
        format!("{head}/.{rest}"),
    ] {
        let r = get(&gw, "/private/x", &[("Authorization", &bearer(&bad))]);
        assert_eq!(r.status, 401, "{bad}");
    }
    // Another issuer, and a token signed with another secret.
    let other = hs256(&claims("https://other.example.test"));
    assert_eq!(
        get(&gw, "/private/x", &[("Authorization", &bearer(&other))]).status,
        401
    );
    let wrong = encode(
        &Header::new(Algorithm::HS256),
        &claims("https://hs.example.test"),
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-123"),
    )
    .unwrap();
    let r = get(&gw, "/private/x", &[("Authorization", &bearer(&wrong))]);
    assert_eq!(
        (r.status, r.json()["error_description"].clone()),
        (401, json!("bad signature"))
    );
    // Still serving.
    assert_eq!(
        get(&gw, "/private/x", &[("Authorization", &bearer(&good))]).status,
        200
    );
}

#[test]
fn auth_modes_none_and_optional() {
    let up = Upstream::start("u");
    let gw = hs_gateway(&up);
    // `none`: credentials are not read, identity headers are still stripped.
    let r = get(
        &gw,
        "/open/x",
        &[("Authorization", "Bearer garbage"), ("X-User-ID", "forged")],
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-user-id").is_none());
    // `optional`: nothing is anonymous, something bad is still 401.
    let r = get(&gw, "/maybe/x", &[("X-Request-Id", "anon-1")]);
    assert_eq!(r.status, 200);
    assert_eq!(gw.access_log_line("anon-1")["auth"], "anonymous");
    assert_eq!(
        get(&gw, "/maybe/x", &[("Authorization", "Bearer garbage")]).status,
        401
    );
    let token = hs256(&claims("https://hs.example.test"));
    let r = get(&gw, "/maybe/x", &[("Authorization", &bearer(&token))]);
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");
}

#[test]
fn api_keys_authenticate_and_are_stripped() {
    let up = Upstream::start("u");
    let gw = hs_gateway(&up);
    let r = get(&gw, "/private/x", &[("X-API-Key", "ci-key-value-123")]);
    assert_eq!(r.status, 200);
    let headers = &r.json()["headers"];
    assert_eq!(headers["x-user-id"], "ci-bot");
    assert_eq!(headers["x-roles"], "deployer");
    assert!(headers.get("x-api-key").is_none());
    let r = get(&gw, "/private/x", &[("X-API-Key", "wrong")]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_description"], "unknown API key");
}

#[test]
fn grpc_requests_get_grpc_statuses() {
    let up = Upstream::start("u");
    let gw = hs_gateway(&up);
    let r = get(&gw, "/private/x", &[("Content-Type", "application/grpc")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("grpc-status"), Some("16"));
}

/// An ES256 key pair whose public half is the provider's `public_key_file`.
fn es256_pem() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    (key.serialize_pem(), key.public_key_pem())
}

#[test]
fn a_pem_public_key_and_the_classic_forgeries() {
    let up = Upstream::start("u");
    let (private, public) = es256_pem();
    let dir = temp_dir();
    let pem_path = dir.join("pub.pem");
    std::fs::write(&pem_path, &public).unwrap();
    let gw = Gateway::start(&format!(
        "auth:\n  providers:\n    - {{ name: pem, issuer: https://pem.example.test, public_key_file: {}, audiences: [https://api.example.test] }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u }}\n",
        pem_path.display(),
        up.addr
    ));
    let mut c = claims("https://pem.example.test");
    c["aud"] = json!(["https://api.example.test"]);
    let sign = |alg: Algorithm, claims: &Value| {
        encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let good = sign(Algorithm::ES256, &c);
    let status = |token: &str| get(&gw, "/x", &[("Authorization", &bearer(token))]).status;
    assert_eq!(status(&good), 200);

    // HS256 keyed with the public key PEM (CVE-2016-10555).
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(status(&confused), 401);
    // alg none, in several spellings, with the original signature or none.
    let body = URL_SAFE_NO_PAD.encode(c.to_string());
    let sig = good.rsplit('.').next().unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let head = URL_SAFE_NO_PAD.encode(json!({ "alg": alg }).to_string());
        assert_eq!(status(&format!("{head}.{body}.")), 401, "{alg}");
        assert_eq!(status(&format!("{head}.{body}.{sig}")), 401, "{alg}");
    }
    // Keys carried by the token itself: refused before anyone is contacted.
    let attacker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    attacker.set_nonblocking(true).unwrap();
    let jku = format!("http://{}/jwks.json", attacker.local_addr().unwrap());
    for extra in [
        json!({ "jku": jku }),
        json!({ "x5u": jku }),
        json!({ "jwk": { "kty": "EC" } }),
        json!({ "x5c": ["AAAA"] }),
        json!({ "crit": ["exp"] }),
    ] {
        let mut head = json!({ "alg": "ES256" });
        head.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let head = URL_SAFE_NO_PAD.encode(head.to_string());
        assert_eq!(status(&format!("{head}.{body}.{sig}")), 401, "{extra}");
    }
    assert!(
        attacker.accept().is_err(),
        "the attacker's key server was contacted"
    );
    // Tampered payload, wrong audience, missing exp, future nbf, nested claims, huge token.
    let mut evil = c.clone();
    evil["sub"] = json!("root");
    let head = good.split('.').next().unwrap();
    let tampered = format!("{head}.{}.{sig}", URL_SAFE_NO_PAD.encode(evil.to_string()));
    assert_eq!(status(&tampered), 401);
    let mut other_aud = c.clone();
    other_aud["aud"] = json!("https://elsewhere.example.test");
    assert_eq!(status(&sign(Algorithm::ES256, &other_aud)), 401);
    let mut no_exp = c.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(status(&sign(Algorithm::ES256, &no_exp)), 401);
    let mut future = c.clone();
    future["nbf"] = json!(now() + 3600);
    assert_eq!(status(&sign(Algorithm::ES256, &future)), 401);
    let mut deep = c.clone();
    let mut nested = json!(1);
    for _ in 0..100 {
        nested = json!([nested]);
    }
    deep["deep"] = nested;
    assert_eq!(status(&sign(Algorithm::ES256, &deep)), 401);
    let mut big = c.clone();
    big["pad"] = json!("x".repeat(20_000));
    let r = get(
        &gw,
        "/x",
        &[("Authorization", &bearer(&sign(Algorithm::ES256, &big)))],
    );
    assert!(r.status == 401 || r.status == 431, "{}", r.status);
    // JWE-shaped, and wrong part counts.
    for shape in ["a.b.c.d.e", "a.b", "a", "..", "a.b.c.d"] {
        assert_eq!(status(shape), 401, "{shape}");
    }
    assert_eq!(status(&good), 200, "still serving");
}

#[test]
fn an_issuer_without_keys_answers_503_and_others_keep_working() {
    let up = Upstream::start("u");
    let closed = free_port();
    let gw = Gateway::start_with_env(
        &format!(
            "auth:\n  providers:\n    - {{ name: down, issuer: https://down.example.test, jwks_uri: \"http://127.0.0.1:{closed}/jwks\" }}\n    - {{ name: hs, issuer: https://hs.example.test, secret: \"${{HS_SECRET}}\" }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u }}\n",
            up.addr
        ),
        &[("HS_SECRET", SECRET)],
    );
    let (private, _) = es256_pem();
    let token = encode(
        &Header::new(Algorithm::ES256),
        &claims("https://down.example.test"),
        &EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
    )
    .unwrap();
    let r = get(&gw, "/x", &[("Authorization", &bearer(&token))]);
    assert_eq!(r.status, 503);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert_eq!(r.json()["error"], "temporarily_unavailable");

    let hs = hs256(&claims("https://hs.example.test"));
    assert_eq!(
        get(&gw, "/x", &[("Authorization", &bearer(&hs))]).status,
        200
    );

    let ready = gw.admin_get("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json()["waiting_for"],
        json!(["provider down: no keys yet"])
    );
    let grpc = get(
        &gw,
        "/x",
        &[
            ("Authorization", &bearer(&token)),
            ("Content-Type", "application/grpc"),
        ],
    );
    assert_eq!(grpc.header("grpc-status"), Some("14"));
}

#[test]
fn provider_config_errors_name_their_path() {
    let base = "upstreams:\n  u: { targets: [\"127.0.0.1:1\"] }\nroutes:\n  - { name: r, match: { path: /* }, upstream: u }\n";
    let cases = [
        (
            "    - { name: a, issuer: https://a.test, secret: s, jwks_uri: \"https://a.test/k\" }",
            "error: auth.providers[0] (line 3): give at most one key source",
        ),
        (
            "    - { name: a, issuer: https://a.test, secret: s, algorithms: [RS256] }",
            "error: auth.providers[0].algorithms[0] (line 3): a secret verifies only HS256",
        ),
        (
            "    - { name: a, issuer: https://a.test, algorithms: [HS256] }",
            "error: auth.providers[0].algorithms[0] (line 3): HS256 needs a secret",
        ),
        (
            "    - { name: a, issuer: https://a.test, public_key_file: /nonexistent.pem }",
            "error: auth.providers[0].public_key_file (line 3): cannot read",
        ),
    ];
    for (provider, expected) in cases {
        let (code, out) = validate(&format!("auth:\n  providers:\n{provider}\n{base}"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(expected), "{out}");
    }
}

#[test]
fn resource_metadata_is_served_and_named_in_challenges() {
    let up = Upstream::start("u");
    let gw = Gateway::start_with_env(
        &format!(
            "auth:\n  resource_metadata: https://api.example.test/.well-known/oauth-protected-resource\n  providers:\n    - {{ name: hs, issuer: https://hs.example.test, secret: \"${{HS_SECRET}}\" }}\n    - {{ name: hs2, issuer: https://hs2.example.test, secret: \"${{HS_SECRET}}\" }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u }}\n",
            up.addr
        ),
        &[("HS_SECRET", SECRET)],
    );
    let r = get(&gw, "/x", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(
            r#"Bearer realm="tollgate", resource_metadata="https://api.example.test/.well-known/oauth-protected-resource""#
        )
    );
    let r = get(&gw, "/x", &[("Authorization", "Bearer x.y.z")]);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains(r#"resource_metadata="https://api.example.test/.well-known/oauth-protected-resource", error="invalid_token""#));
    let doc = get(&gw, "/.well-known/oauth-protected-resource", &[]);
    assert_eq!(doc.status, 200);
    assert_eq!(
        doc.json(),
        json!({
            "resource": "https://api.example.test",
            "authorization_servers": ["https://hs.example.test", "https://hs2.example.test"],
            "bearer_methods_supported": ["header"],
        })
    );
    let (code, out) = validate("auth:\n  resource_metadata: https://api.example.test/meta\n  api_keys: { keys: [{ id: a, key: k }] }\nupstreams:\n  u: { targets: [\"127.0.0.1:1\"] }\nroutes:\n  - { name: r, match: { path: /* }, upstream: u }\n");
    assert_eq!(code, 1);
    assert!(
        out.contains("error: auth.resource_metadata (line 2): expected an http(s) URL"),
        "{out}"
    );
}

#[test]
fn forwarded_values_are_encoded_as_the_contract_says() {
    let up = Upstream::start("u");
    let gw = Gateway::start_with_env(
        &format!(
            r#"
auth:
  providers:
    - name: hs
      issuer: https://hs.example.test
      secret: ${{HS_SECRET}}
      claims: {{ roles: 'resource_access."my.client".roles' }}
upstreams:
  u: {{ targets: ["{}"] }}
forward_headers:
  X-Level: level
  X-Verified: verified
  X-Org: org
  X-Groups: groups
  X-Mixed: mixed
  X-Evil: evil
  X-Missing: nope
  X-Client-Roles: $roles
  X-Namespaced: "https://example.com/roles"
routes:
  - {{ name: r, match: {{ path: /* }}, upstream: u }}
"#,
            up.addr
        ),
        &[("HS_SECRET", SECRET)],
    );
    let mut c = claims("https://hs.example.test");
    let extra = json!({
        "level": 3, "verified": true, "org": { "id": 7, "name": "acme" },
        "groups": ["a", "b"], "mixed": ["a", 1], "evil": "x\r\nX-Injected: yes",
        "resource_access": { "my.client": { "roles": ["reader", "writer"] } },
        "https://example.com/roles": ["editor"],
    });
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = get(
        &gw,
        "/x",
        &[
            ("Authorization", &bearer(&hs256(&c))),
            ("X-Missing", "spoofed"),
            ("X-Evil", "spoofed"),
        ],
    );
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-level"], "3");
    assert_eq!(h["x-verified"], "true");
    assert_eq!(h["x-org"], r#"{"id":7,"name":"acme"}"#);
    assert_eq!(h["x-groups"], "a,b");
    assert_eq!(h["x-mixed"], r#"["a",1]"#);
    assert_eq!(h["x-client-roles"], "reader,writer");
    assert_eq!(h["x-namespaced"], "editor");
    assert!(h.get("x-evil").is_none(), "control characters: not sent");
    assert!(h.get("x-injected").is_none());
    assert!(
        h.get("x-missing").is_none(),
        "absent claim: no header, spoofed one removed"
    );
}
