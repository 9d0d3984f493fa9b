//! The verification path end to end, with keys made here: HS256 from a secret, ES256 from a
//! JWK file, and the classic forgeries against them.

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::build::Context;

const NOW: i64 = 1_900_000_000;
const SECRET: &str = "0123456789abcdef0123456789abcdef";

struct NoEvents;
impl remote::Events for NoEvents {
    fn fetched(&self, _: &str, _: &'static str, _: usize) {}
}

fn authenticator(auth_yaml: &str) -> Result<Authenticator, String> {
    authenticator_reading(auth_yaml, Vec::new())
}

fn authenticator_reading(
    auth_yaml: &str,
    claims_read: Vec<ClaimPath>,
) -> Result<Authenticator, String> {
    let yaml = format!(
        "{auth_yaml}\nupstreams: {{ u: {{ targets: [\"127.0.0.1:1\"] }} }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u, auth: none }}\n"
    );
    let loaded = tollgate_config::parse(&yaml).map_err(|p| p.to_string())?;
    let mut report = loaded.report();
    let auth = build(
        &loaded.file.auth,
        &mut report,
        Context {
            runtime: None,
            events: Arc::new(NoEvents),
            previous: None,
            claims_read,
        },
    );
    report.finish(auth).map_err(|p| p.to_string())
}

fn hs256(claims: &Value) -> String {
    encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn claims() -> Value {
    json!({ "iss": "https://hs.example", "sub": "alice", "exp": NOW + 600, "iat": NOW,
            "aud": "https://api.example", "roles": ["admin"], "scope": "read write" })
}

fn hs_auth() -> Authenticator {
    authenticator(&format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.example, secret: {SECRET}, audiences: [https://api.example] }}"
    ))
    .unwrap()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn check(auth: &Authenticator, token: &str) -> Result<Arc<Identity>, AuthError> {
    run(auth.authenticate(&Credentials::Bearer(token), NOW))
}

#[test]
fn a_good_token_gives_the_identity_and_is_cached() {
    let auth = hs_auth();
    let token = hs256(&claims());
    let id = check(&auth, &token).unwrap();
    assert_eq!(&*id.provider, "hs");
    assert_eq!(id.subject.as_deref(), Some("alice"));
    assert_eq!(id.roles, ["admin"]);
    assert_eq!(id.scopes, ["read", "write"]);
    assert_eq!(auth.cache().len(), 1);
    let again = check(&auth, &token).unwrap();
    assert!(Arc::ptr_eq(&id, &again), "second check is a cache hit");
    // Expiry is checked on a hit too.
    let later = run(auth.authenticate(&Credentials::Bearer(&token), NOW + 3600));
    assert_eq!(later.unwrap_err().description, "token expired");
}

#[test]
fn the_claims_a_config_reads_are_resolved_at_verification() {
    let path = |p: &str| ClaimPath::parse(p).unwrap();
    let read = ["plan", "org.name", "missing", "plan", "roles"];
    let auth = authenticator_reading(
        &format!(
            "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.example, secret: {SECRET}, audiences: [https://api.example] }}"
        ),
        read.iter().map(|p| path(p)).collect(),
    )
    .unwrap();
    let mut with_more = claims();
    with_more["plan"] = json!("pro");
    with_more["org"] = json!({ "name": "acme" });
    let id = check(&auth, &hs256(&with_more)).unwrap();
    let Value::Object(map) = with_more else {
        unreachable!()
    };
    for p in read {
        assert_eq!(id.resolved.get(&path(p)), Some(map.claim(&path(p))), "{p}");
        assert_eq!(id.claim(&path(p)), map.claim(&path(p)), "{p}");
    }
    assert_eq!(id.claim(&path("org.name")), Some(&json!("acme")));
    // A path the config does not read is looked up in the claims.
    assert_eq!(id.resolved.get(&path("sub")), None);
    assert_eq!(id.claim(&path("sub")), Some(&json!("alice")));
}

#[test]
fn claim_checks() {
    let auth = hs_auth();
    let with = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = claims();
        edit(c.as_object_mut().unwrap());
        check(&auth, &hs256(&c))
            .unwrap_err()
            .description
            .into_owned()
    };
    assert_eq!(
        with(&|c| {
            c.remove("exp");
        }),
        "token has no exp"
    );
    assert_eq!(
        with(&|c| {
            c.insert("exp".into(), json!(NOW - 61));
        }),
        "token expired"
    );
    assert_eq!(
        with(&|c| {
            c.insert("exp".into(), json!("soon"));
        }),
        "a time claim is not a number"
    );
    assert_eq!(
        with(&|c| {
            c.insert("nbf".into(), json!(NOW + 120));
        }),
        "token not valid yet"
    );
    assert_eq!(
        with(&|c| {
            c.insert("iat".into(), json!(NOW + 120));
        }),
        "token issued in the future"
    );
    assert_eq!(
        with(&|c| {
            c.insert("aud".into(), json!("https://other"));
        }),
        "token audience not accepted"
    );
    assert_eq!(
        with(&|c| {
            c.insert("aud".into(), json!(["x", 1]));
        }),
        "token audience not accepted"
    );
    assert_eq!(
        with(&|c| {
            c.remove("aud");
        }),
        "token has no aud"
    );
    assert_eq!(
        with(&|c| {
            c.insert("iss".into(), json!("https://evil"));
        }),
        "token issuer is not accepted"
    );
    // Within the skew: accepted.
    let mut c = claims();
    c["exp"] = json!(NOW - 30);
    c["aud"] = json!(["x", "https://api.example"]);
    assert!(check(&auth, &hs256(&c)).is_ok());
}

#[test]
fn forgeries_are_refused() {
    let auth = hs_auth();
    let token = hs256(&claims());
    let (head, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    // Tampered payload, original signature.
    let mut evil = claims();
    evil["roles"] = json!(["root"]);
    let forged = format!("{head}.{}.{sig}", URL_SAFE_NO_PAD.encode(evil.to_string()));
    assert_eq!(
        check(&auth, &forged).unwrap_err().description,
        "bad signature"
    );
    // alg none, with and without a signature part.
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims().to_string());
    assert_eq!(
        check(&auth, &format!("{none}.{body}."))
            .unwrap_err()
            .description,
        "token is not signed"
    );
    assert_eq!(
        check(&auth, &format!("{none}.{body}.{sig}"))
            .unwrap_err()
            .description,
        "alg none is never accepted"
    );
    // Every refusal is a 401 invalid_token.
    let e = check(&auth, &forged).unwrap_err();
    assert_eq!((e.status, e.code), (401, "invalid_token"));
}

/// An ES256 provider from a JWKS file, and a token signed by its key.
fn es256_setup() -> (Authenticator, EcdsaKeyPair, tempdir::Dir) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({ "kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]) });
    let dir = tempdir::Dir::new();
    let path = dir.file("jwks.json", &json!({ "keys": [jwk] }).to_string());
    let auth = authenticator(&format!(
        "auth:\n  providers:\n    - {{ name: ec, issuer: https://ec.example, jwks_file: {path} }}"
    ))
    .unwrap();
    (auth, pair, dir)
}

fn es256(pair: &EcdsaKeyPair, kid: &str, claims: &Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(json!({ "alg": "ES256", "kid": kid }).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{head}.{body}");
    let sig = pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[test]
fn es256_from_a_jwks_file_and_the_key_confusions() {
    let (auth, pair, _dir) = es256_setup();
    let mut c = claims();
    c["iss"] = json!("https://ec.example");
    assert!(check(&auth, &es256(&pair, "ec1", &c)).is_ok());
    assert_eq!(
        check(&auth, &es256(&pair, "other", &c))
            .unwrap_err()
            .description,
        "no key of this issuer matches the token"
    );
    // HS256 "signed" with the public key as the secret (CVE-2016-10555): HMAC is not in the
    // provider's algorithms, and the key is not an HMAC key either.
    let point = pair.public_key().as_ref();
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("ec1".into());
    let confused = encode(&header, &c, &EncodingKey::from_secret(point)).unwrap();
    assert_eq!(
        check(&auth, &confused).unwrap_err().description,
        "algorithm not allowed for this issuer"
    );
    // ECDSA r = s = 0 (CVE-2022-21449).
    let good = es256(&pair, "ec1", &c);
    let input = &good[..good.rfind('.').unwrap()];
    let zero = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
    assert_eq!(
        check(&auth, &zero).unwrap_err().description,
        "bad signature"
    );
    // A DER-encoded signature is not the JWS form (RFC 7518 §3.4).
    let der = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode([0x30u8, 0x06, 2, 1, 1, 2, 1, 1])
    );
    assert_eq!(check(&auth, &der).unwrap_err().description, "bad signature");
    // The EC issuer's token claiming the HS issuer is checked with the HS issuer's keys only.
    c["iss"] = json!("https://hs.example");
    assert_eq!(
        check(&auth, &es256(&pair, "ec1", &c))
            .unwrap_err()
            .description,
        "token issuer is not accepted"
    );
}

#[test]
fn credentials_from_headers() {
    let name = HeaderName::from_static("x-api-key");
    let headers = |pairs: &[(&str, &str)]| {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    };
    let h = headers(&[("authorization", "bEaReR  abc")]);
    assert_eq!(credentials(&h, Some(&name)), Ok(Credentials::Bearer("abc")));
    let h = headers(&[("x-api-key", "k")]);
    assert_eq!(credentials(&h, Some(&name)), Ok(Credentials::ApiKey(b"k")));
    let h = headers(&[]);
    assert_eq!(credentials(&h, Some(&name)), Ok(Credentials::None));
    let status = |pairs: &[(&str, &str)]| {
        credentials(&headers(pairs), Some(&name))
            .unwrap_err()
            .status
    };
    assert_eq!(
        status(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]),
        400
    );
    assert_eq!(
        status(&[("authorization", "Bearer a"), ("x-api-key", "k")]),
        400
    );
    assert_eq!(status(&[("x-api-key", "a"), ("x-api-key", "b")]), 400);
    assert_eq!(status(&[("authorization", "Basic dTpw")]), 401);
    assert_eq!(status(&[("authorization", "Bearer ")]), 401);
}

#[test]
fn api_keys_by_plain_text_or_hash() {
    let hash: String = sha256(b"k2").iter().map(|b| format!("{b:02x}")).collect();
    let auth = authenticator(&format!(
        "auth:\n  api_keys:\n    keys:\n      - {{ id: one, key: k1, subject: bot, claims: {{ roles: [deployer], plan: pro }} }}\n      - {{ id: two, sha256: {hash} }}"
    ))
    .unwrap();
    let id = run(auth.authenticate(&Credentials::ApiKey(b"k1"), NOW)).unwrap();
    assert_eq!(
        (&*id.provider, id.subject.as_deref()),
        ("api_key", Some("bot"))
    );
    assert_eq!(id.roles, ["deployer"]);
    assert_eq!(id.claims["plan"], "pro");
    let id = run(auth.authenticate(&Credentials::ApiKey(b"k2"), NOW)).unwrap();
    assert_eq!(id.subject.as_deref(), Some("two"));
    let e = run(auth.authenticate(&Credentials::ApiKey(b"k3"), NOW)).unwrap_err();
    assert_eq!((e.status, &*e.description), (401, "unknown API key"));
}

#[test]
fn config_problems_name_their_path() {
    let cases = [
        (
            "    - { name: a, issuer: https://a, secret: s, jwks_uri: https://a/k }",
            "auth.providers[0]",
        ),
        (
            "    - { name: a, issuer: https://a, secret: s, algorithms: [RS256] }",
            "auth.providers[0].algorithms[0]",
        ),
        (
            "    - { name: a, issuer: https://a, algorithms: [HS256] }",
            "auth.providers[0].algorithms[0]",
        ),
        (
            "    - { name: a, issuer: https://a, algorithms: [none] }",
            "auth.providers[0].algorithms[0]",
        ),
        (
            "    - { name: a, issuer: https://a, jwks_file: /nonexistent/jwks.json }",
            "auth.providers[0].jwks_file",
        ),
        (
            "    - { name: a, issuer: https://a, claims: { roles: 'a..b' } }",
            "auth.providers[0].claims.roles",
        ),
        (
            "    - { name: a, issuer: https://a }\n    - { name: b, issuer: https://a }",
            "auth.providers[1].issuer",
        ),
        (
            "    - { name: a, issuer: https://a }\n    - { name: a, issuer: https://b }",
            "auth.providers[1].name",
        ),
        (
            "    - { name: a, issuer: 'https://{tenant}.a' }",
            "auth.providers[0].tenants",
        ),
        (
            "    - { name: a, issuer: 'https://a/r-{tenant}', tenants: any }",
            "auth.providers[0].issuer",
        ),
        (
            "    - { name: a, issuer: 'https://a/{tenant}', tenants: [ok, 'b.c'] }",
            "auth.providers[0].tenants[1]",
        ),
        (
            "    - { name: a, issuer: 'https://a/{tenant}', tenants: [xa, yb], max_tenants: 1 }",
            "auth.providers[0].max_tenants",
        ),
        (
            "    - { name: a, issuer: 'https://a/{tenant}', tenants: some }",
            "auth.providers[0].tenants",
        ),
        (
            "    - { name: a, issuer: https://a/main, tenants: any }",
            "auth.providers[0].tenants",
        ),
        (
            "    - { name: a, issuer: https://a/main, jwks_uri: 'https://a/{tenant}/keys' }",
            "auth.providers[0].jwks_uri",
        ),
        (
            "    - { name: a, issuer: 'ftp://a/{tenant}', tenants: any }",
            "auth.providers[0].issuer",
        ),
        (
            "    - { name: a, issuer: https://a/main }\n    - { name: b, issuer: 'https://a/{tenant}', tenants: any }",
            "auth.providers[1].issuer",
        ),
        (
            "    - { name: a, issuer: 'https://a/{tenant}', tenants: [x] }\n    - { name: b, issuer: 'https://a/{tenant}', tenants: [yb, x] }",
            "auth.providers[1].issuer",
        ),
    ];
    for (providers, path) in cases {
        let Err(e) = authenticator(&format!("auth:\n  providers:\n{providers}")) else {
            panic!("{providers} was accepted");
        };
        assert!(
            e.contains(&format!("error: {path} (line")),
            "{providers}\n{e}"
        );
    }
}

/// A temporary directory removed on drop.
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!("tollgate-auth-{}", uuid()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn file(&self, name: &str, text: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn uuid() -> String {
        let mut bytes = [0u8; 8];
        aws_lc_rs::rand::fill(&mut bytes).unwrap();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[test]
fn a_reload_with_stricter_rules_does_not_reuse_cached_verifications() {
    let loose = authenticator(&format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.example, secret: {SECRET} }}"
    ))
    .unwrap();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    let token = hs256(&c);
    assert!(check(&loose, &token).is_ok());
    assert_eq!(loose.cache().len(), 1);

    let yaml = format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.example, secret: {SECRET}, audiences: [https://api.example] }}\nupstreams: {{ u: {{ targets: [\"127.0.0.1:1\"] }} }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u, auth: none }}\n"
    );
    let loaded = tollgate_config::parse(&yaml).unwrap();
    let mut report = loaded.report();
    let strict = build(
        &loaded.file.auth,
        &mut report,
        Context {
            runtime: None,
            events: Arc::new(NoEvents),
            previous: Some(&loose),
            claims_read: Vec::new(),
        },
    );
    assert!(report.is_empty());
    assert_eq!(
        strict.cache().len(),
        1,
        "the cache is kept across the reload"
    );
    assert_eq!(
        check(&strict, &token).unwrap_err().description,
        "token has no aud"
    );
}

#[test]
fn max_stale_shorter_than_a_refresh_is_an_error() {
    let Err(e) = authenticator("auth:\n  jwks: { refresh_interval: 10m, max_stale: 1m }\n  api_keys: { keys: [{ id: a, key: k }] }") else {
        panic!("accepted");
    };
    assert!(
        e.contains("error: auth.jwks.max_stale (line 2): must be at least refresh_interval"),
        "{e}"
    );
}

#[test]
fn a_template_provider_names_the_tenant_and_accepts_only_its_tenants() {
    let auth = authenticator(&format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.example, secret: {SECRET} }}\n    - {{ name: kc, issuer: 'https://kc.example/realms/{{tenant}}', tenants: [acme, globex], secret: {SECRET} }}"
    ))
    .unwrap();
    let token = |iss: &str| {
        let mut c = claims();
        c["iss"] = json!(iss);
        hs256(&c)
    };
    let acme = check(&auth, &token("https://kc.example/realms/acme")).unwrap();
    assert_eq!(&*acme.provider, "kc");
    assert_eq!(acme.tenant.as_deref(), Some("acme"));
    // A cache hit keeps the tenant.
    let again = check(&auth, &token("https://kc.example/realms/acme")).unwrap();
    assert_eq!(again.tenant.as_deref(), Some("acme"));
    let plain = check(&auth, &token("https://hs.example")).unwrap();
    assert_eq!(
        plain.tenant, None,
        "a provider without a template has no tenant"
    );
    for refused in [
        "https://kc.example/realms/initech",
        "https://kc.example/realms/acme/",
        "https://kc.example/realms/x/../acme",
        "https://kc.example/realms/acme%2F..%2Fglobex",
        "https://kc.example/realms/",
    ] {
        let e = check(&auth, &token(refused)).unwrap_err();
        assert_eq!(
            (e.status, &*e.description),
            (401, "token issuer is not accepted"),
            "{refused}"
        );
    }
}

mod forged;
mod jwks;
mod tokens;

#[test]
fn two_templates_with_disjoint_tenants_each_take_their_own() {
    let auth = authenticator(&format!(
        "auth:\n  providers:\n    - {{ name: one, issuer: 'https://kc.example/realms/{{tenant}}', tenants: [acme], secret: {SECRET} }}\n    - {{ name: two, issuer: 'https://kc.example/realms/{{tenant}}', tenants: [globex], secret: {SECRET} }}"
    ))
    .unwrap();
    let token = |tenant: &str| {
        let mut c = claims();
        c["iss"] = json!(format!("https://kc.example/realms/{tenant}"));
        hs256(&c)
    };
    assert_eq!(&*check(&auth, &token("acme")).unwrap().provider, "one");
    assert_eq!(&*check(&auth, &token("globex")).unwrap().provider, "two");
    assert_eq!(check(&auth, &token("initech")).unwrap_err().status, 401);
}
