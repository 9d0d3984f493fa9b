//! No secret leaks: a full run with an HMAC secret, API keys, a Redis password and bearer
//! tokens, through good requests, refusals of every kind, a refused reload and a Redis that
//! refuses the password; then every output (the access log, the operational log, `/metrics`,
//! `/readyz`, every response's head and body, `validate`'s output) is searched for them.

use std::process::Command;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tollgate_tests::{binary, temp_dir, wait_until, Gateway, Redis, Upstream};

const HS_SECRET: &str = "hs-secret-Zq8vN3xL0pWm7Rt2Yc5Kd9Hf4Jb6Gs1Ae";
const API_KEY: &str = "api-key-Vt7Qw2Er9Ty4Ui1Op6As3Df8Gh5Jk0Lz";
const REDIS_PASSWORD: &str = "redis-pw-Mn4Bv7Cx1Zl8Kj5Hg2Fd9Sa6Qw3Er0";

fn token(sub: &str, exp: u64, secret: &str) -> String {
    let claims = json!({ "iss": "https://hs.test", "sub": sub, "exp": exp, "roles": ["user"] });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn config(up: &Upstream, redis_port: u16, password: &str) -> String {
    format!(
        r#"upstreams:
  u: {{ targets: ["{up}"] }}
auth:
  providers:
    - {{ name: hs, issuer: https://hs.test, secret: "${{HS_SECRET}}" }}
  api_keys:
    keys:
      - {{ id: ci, key: "${{API_KEY}}", claims: {{ roles: [user] }} }}
redis:
  url: "redis://gateway:{password}@127.0.0.1:{redis_port}"
  timeout: 100ms
  on_error: local
rate_limits:
  shared:
    key: subject
    backend: redis
    tiers: [ {{ name: all, limit: 2/minute }} ]
routes:
  - {{ name: api, match: {{ path: /api/* }}, upstream: u, allow: {{ roles: [user] }}, rate_limit: shared }}
  - {{ name: admin, match: {{ path: /admin/* }}, upstream: u, allow: {{ roles: [admin] }} }}
"#,
        up = up.addr
    )
}

#[test]
fn no_secret_or_token_appears_in_any_output() {
    let acl = Redis::gateway_user(REDIS_PASSWORD);
    let redis = Redis::start_with(&acl.iter().map(String::as_str).collect::<Vec<_>>());
    let up = Upstream::start("u");
    let env = [("HS_SECRET", HS_SECRET), ("API_KEY", API_KEY)];
    let gw = Gateway::start_with_env(&config(&up, redis.port, REDIS_PASSWORD), &env);
    let good = token("alice", 9_999_999_999, HS_SECRET);
    let forged = token(
        "mallory",
        9_999_999_999,
        "not-the-secret-but-long-enough-0123456789",
    );
    let expired = token("bob", 1_000, HS_SECRET);
    let tokens = [&good, &forged, &expired];

    let mut outputs = Vec::new();
    let mut send = |raw: String| {
        let r = gw.send(&raw);
        outputs.push(format!(
            "{:?}\n{}",
            r.headers,
            String::from_utf8_lossy(&r.body)
        ));
        r.status
    };
    let bearer = |t: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {t}\r\nConnection: close\r\n\r\n")
    };
    let key = |k: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-API-Key: {k}\r\nConnection: close\r\n\r\n")
    };
    // Admitted, rate-limited (on Redis), refused by role, by signature, by expiry, by key.
    let statuses = [
        send(bearer(&good, "/api/x")),
        send(bearer(&good, "/api/x")),
        send(bearer(&good, "/api/x")),
        send(bearer(&good, "/admin/x")),
        send(bearer(&forged, "/api/x")),
        send(bearer(&expired, "/api/x")),
        send(key(API_KEY, "/api/x")),
        send(key(&format!("{API_KEY}x"), "/api/x")),
        send(format!("GET /api/x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {good}\r\nX-API-Key: {API_KEY}\r\nConnection: close\r\n\r\n")),
        send(format!("GET /api/x HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {API_KEY}\r\nConnection: close\r\n\r\n")),
    ];
    assert_eq!(statuses, [200, 200, 429, 403, 401, 401, 200, 401, 400, 401]);
    assert_eq!(
        redis.keys("tollgate:rl:*").len(),
        2,
        "counted in Redis with the password"
    );

    // A reload refused for a secret in the wrong place, and one with a Redis password that is
    // wrong (Redis refuses it: errors are logged, on_error: local keeps serving).
    std::fs::write(
        gw.config_path(),
        std::fs::read_to_string(gw.config_path()).unwrap().replace(
            "secret: \"${HS_SECRET}\"",
            "secret: \"${HS_SECRET}\", algorithms: [\"${API_KEY}\"]",
        ),
    )
    .unwrap();
    gw.signal("HUP");
    wait_until(
        std::time::Duration::from_secs(5),
        "the refused reload",
        || gw.metric("tollgate_config_reloads_total{result=\"error\"}") == Some(1.0),
    );
    gw.rewrite_config(&config(&up, redis.port, "wrong-password-Pq9"));
    gw.signal("HUP");
    wait_until(std::time::Duration::from_secs(5), "the reload", || {
        gw.metric("tollgate_config_reloads_total{result=\"ok\"}") == Some(1.0)
    });
    assert_eq!(send(bearer(&good, "/api/y")), 200, "on_error: local");
    wait_until(
        std::time::Duration::from_secs(5),
        "a Redis error counted",
        || {
            gw.metric("tollgate_ratelimit_redis_errors_total")
                .unwrap_or(0.0)
                >= 1.0
        },
    );

    // `validate` on the same kinds of mistakes.
    let dir = temp_dir();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "{}\nlisten: {{ http: \"127.0.0.1:1\" }}\n",
            config(&up, redis.port, REDIS_PASSWORD)
                .replace(
                    "secret: \"${HS_SECRET}\"",
                    "secret: \"${HS_SECRET}\", algorithms: [\"${API_KEY}\"]"
                )
                .replace("redis://gateway:", "rediss//gateway:")
        ),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["validate", "-c"])
        .arg(&bad)
        .envs(env)
        .output()
        .unwrap();
    assert!(!out.status.success());
    outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
    outputs.push(String::from_utf8_lossy(&out.stderr).into_owned());

    outputs.push(String::from_utf8_lossy(&gw.admin_get("/metrics").body).into_owned());
    outputs.push(String::from_utf8_lossy(&gw.admin_get("/readyz").body).into_owned());
    outputs.push(std::fs::read_to_string(gw.dir.join("stdout")).unwrap());
    outputs.push(gw.stderr());
    let everything = outputs.join("\n");
    assert!(
        everything.contains("rate_limited") && everything.contains("\"status\":403"),
        "the outputs were collected"
    );

    let mut secrets = vec![HS_SECRET, API_KEY, REDIS_PASSWORD, "wrong-password-Pq9"];
    let signatures: Vec<&str> = tokens
        .iter()
        .map(|t| t.rsplit('.').next().unwrap())
        .collect();
    secrets.extend(tokens.iter().map(|t| t.as_str()));
    secrets.extend(signatures);
    for secret in secrets {
        assert!(
            !everything.contains(secret),
            "{secret} leaked:\n{everything}"
        );
    }
}
