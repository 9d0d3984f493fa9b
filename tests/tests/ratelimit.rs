//! Rate limits by subject and plan tier (local backend), with tokens from a real issuer whose
//! `plan` claim picks the tier.

use std::time::Duration;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tollgate_tests::{temp_dir, wait_until, Gateway, Idp, Response, Upstream};

const SECRET: &str = "rate-limit-test-secret-0123456789abcdef";

fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Response {
    gw.request("GET", path, headers)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An HS256 token of the test's own issuer.
fn hs(sub: &str, plan: &str, roles: &[&str]) -> String {
    let claims = json!({ "iss": "https://hs.test", "sub": sub, "plan": plan, "roles": roles, "exp": 9_999_999_999u64 });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn setup(idp: &Idp, up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        r#"
auth:
  providers:
    - {{ name: kc, issuer: "{issuer}", claims: {{ roles: realm_access.roles }} }}
    - {{ name: hs, issuer: https://hs.test, secret: {SECRET} }}
upstreams:
  u: {{ targets: ["{up}"] }}
forward_headers:
  X-Tier: $tier
rate_limits:
  per-user:
    key: subject
    tiers:
      - {{ name: free, when: 'Equals(`plan`, `free`)', limit: 3/minute }}
      - {{ name: pro, when: 'Equals(`plan`, `pro`)', limit: 100/minute, burst: 10 }}
      - {{ name: enterprise, limit: unlimited }}
routes:
  - name: api
    match: {{ path: /api/* }}
    upstream: u
    allow: {{ roles: [user, admin] }}
    rate_limit: per-user
  - name: anon
    match: {{ path: /anon/* }}
    upstream: u
    auth: optional
    rate_limit: [per-user]
"#,
        issuer = idp.issuer,
        up = up.addr
    ))
}

#[test]
fn the_free_tier_allows_three_a_minute_and_answers_429_with_the_headers() {
    let keys = temp_dir();
    let idp = Idp::oidc(0, "RS256", "k1", &keys.join("k.jwk"));
    let up = Upstream::start("u");
    let gw = setup(&idp, &up);
    let free = idp.token("svc-user", "svc-user-secret");

    for remaining in ["2", "1", "0"] {
        let r = get(&gw, "/api/x", &[("Authorization", &bearer(&free))]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-remaining"), Some(remaining));
        assert_eq!(r.header("ratelimit-policy"), Some("3;w=60;burst=3"));
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert_eq!(r.json()["headers"]["x-tier"], "free");
    }
    let r = get(
        &gw,
        "/api/x",
        &[
            ("Authorization", &bearer(&free)),
            ("X-Request-Id", "limited-1"),
        ],
    );
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(gw.access_log_line("limited-1")["tier"], "free");

    // gRPC callers get RESOURCE_EXHAUSTED.
    let r = get(
        &gw,
        "/api/x",
        &[
            ("Authorization", &bearer(&free)),
            ("Content-Type", "application/grpc"),
        ],
    );
    assert_eq!(r.header("grpc-status"), Some("8"));

    // Another subject on the free tier has a bucket of its own.
    let other = hs("someone-else", "free", &["user"]);
    assert_eq!(
        get(&gw, "/api/x", &[("Authorization", &bearer(&other))]).status,
        200
    );
    // The pro tier, from the real issuer's plan claim.
    let pro = idp.token("svc-admin", "svc-admin-secret");
    let r = get(&gw, "/api/x", &[("Authorization", &bearer(&pro))]);
    assert_eq!((r.status, r.header("ratelimit-limit")), (200, Some("10")));
    // Enterprise: never limited, no headers.
    let corp = hs("corp", "enterprise", &["user"]);
    for _ in 0..20 {
        let r = get(&gw, "/api/x", &[("Authorization", &bearer(&corp))]);
        assert_eq!(r.status, 200);
        assert!(r.header("ratelimit-limit").is_none());
    }
    let metrics = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    assert!(
        metrics.contains(
            r#"tollgate_ratelimit_total{policy="per-user",result="limited",tier="free"} 2"#
        ),
        "{metrics}"
    );
    // Every decision is counted in its own tier's series (the unlimited tier's too), and a
    // tier nobody reached has none.
    assert!(
        metrics.contains(
            r#"tollgate_ratelimit_total{policy="per-user",result="allowed",tier="enterprise"} 20"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"tollgate_ratelimit_total{policy="per-user",result="allowed",tier="pro"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        !metrics
            .contains(r#"tollgate_ratelimit_total{policy="per-user",result="limited",tier="pro"}"#),
        "{metrics}"
    );
}

#[test]
fn refusals_before_the_limit_carry_no_headers_and_consume_nothing() {
    let keys = temp_dir();
    let idp = Idp::oidc(0, "RS256", "k1", &keys.join("k.jwk"));
    let up = Upstream::start("u");
    let gw = setup(&idp, &up);
    // 403: no role. Its subject's bucket is untouched.
    let no_role = hs("carol", "free", &[]);
    for _ in 0..5 {
        let r = get(&gw, "/api/x", &[("Authorization", &bearer(&no_role))]);
        assert_eq!(r.status, 403);
        assert!(r.header("ratelimit-limit").is_none());
    }
    let r = get(&gw, "/api/x", &[]);
    assert_eq!(r.status, 401);
    assert!(r.header("ratelimit-limit").is_none());
    let with_role = hs("carol", "free", &["user"]);
    let r = get(&gw, "/api/x", &[("Authorization", &bearer(&with_role))]);
    assert_eq!(r.header("ratelimit-remaining"), Some("2"));
}

#[test]
fn anonymous_callers_are_limited_by_address_and_counts_survive_a_reload() {
    let keys = temp_dir();
    let idp = Idp::oidc(0, "RS256", "k1", &keys.join("k.jwk"));
    let up = Upstream::start("u");
    let gw = setup(&idp, &up);
    // Anonymous callers fall in the default tier (unlimited here): no headers.
    let r = get(&gw, "/anon/x", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("ratelimit-limit").is_none());

    let free = hs("dave", "free", &["user"]);
    for _ in 0..2 {
        assert_eq!(
            get(&gw, "/api/x", &[("Authorization", &bearer(&free))]).status,
            200
        );
    }
    // A reload that leaves the policy as it is keeps its counts.
    let path = gw.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!(
            "{text}  - {{ name: more, match: {{ path: /more/* }}, upstream: u, auth: none }}\n"
        ),
    )
    .unwrap();
    gw.signal("HUP");
    wait_until(Duration::from_secs(10), "the reload", || {
        gw.get("/more/x").status == 200
    });
    let r = get(&gw, "/api/x", &[("Authorization", &bearer(&free))]);
    assert_eq!(
        (r.status, r.header("ratelimit-remaining")),
        (200, Some("0"))
    );
    assert_eq!(
        get(&gw, "/api/x", &[("Authorization", &bearer(&free))]).status,
        429
    );
}

#[test]
fn a_413_after_the_limit_carries_its_headers() {
    let up = Upstream::start("u");
    let gw = Gateway::start(&format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.test, secret: {SECRET} }}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nrate_limits:\n  small:\n    key: subject\n    tiers:\n      - {{ name: all, limit: 5/minute }}\nroutes:\n  - {{ name: r, match: {{ path: /* }}, upstream: u, max_body: 1KiB, rate_limit: small }}\n",
        up.addr
    ));
    let t = hs("erin", "free", &[]);
    let r = gw.send(&format!(
        "POST /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {t}\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 413);
    assert_eq!(r.header("ratelimit-remaining"), Some("4"));
}
