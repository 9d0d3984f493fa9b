//! Rate limits shared through a real `redis-server`: two gateways hold one count; Redis going
//! away falls back to `on_error` without making requests wait; shared counting resumes.

use std::time::{Duration, Instant};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use tollgate_tests::{
    make_certs, temp_dir, validate, wait_until, Gateway, Redis, Response, Upstream,
};

const SECRET: &str = "redis-rate-limit-secret-0123456789abcdef";

fn token(sub: &str) -> String {
    let claims = json!({ "iss": "https://hs.test", "sub": sub, "exp": 9_999_999_999u64 });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn config(up: &Upstream, redis: &str, on_error: &str, limit: &str) -> String {
    format!(
        "auth:\n  providers:\n    - {{ name: hs, issuer: https://hs.test, secret: {SECRET} }}\nredis:\n  url: {redis}\n  timeout: 50ms\n  on_error: {on_error}\nupstreams:\n  u: {{ targets: [\"{}\"] }}\nrate_limits:\n  shared:\n    key: subject\n    backend: redis\n    tiers:\n      - {{ name: all, limit: {limit} }}\nroutes:\n  - {{ name: api, match: {{ path: /* }}, upstream: u, rate_limit: shared }}\n",
        up.addr
    )
}

fn get(gw: &Gateway, token: &str) -> Response {
    gw.send(&format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ))
}

#[test]
fn two_gateways_on_one_redis_hold_one_count() {
    let redis = Redis::start();
    let up = Upstream::start("u");
    let a = Gateway::start(&config(&up, &redis.url(), "local", "3/minute"));
    let b = Gateway::start(&config(&up, &redis.url(), "local", "3/minute"));
    let t = token("shared-user");
    let statuses: Vec<u16> = [&a, &b, &a, &b]
        .iter()
        .map(|gw| get(gw, &t).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    let r = get(&a, &t);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Another subject is counted apart.
    assert_eq!(get(&b, &token("other-user")).status, 200);
    assert_eq!(
        redis.keys("tollgate:rl:shared:all:*").len(),
        2,
        "one key per caller, with the hash tag"
    );
}

#[test]
fn redis_down_falls_back_to_local_quickly_and_sharing_resumes() {
    let mut redis = Redis::start();
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&up, &redis.url(), "local", "1000/minute"));
    let t = token("resilient");
    assert_eq!(get(&gw, &t).status, 200);
    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let r = get(&gw, &t);
        assert_eq!(r.status, 200, "on_error: local keeps serving");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "waited {:?} on a dead Redis",
            started.elapsed()
        );
    }
    let metrics = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tollgate_ratelimit_redis_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(errors >= 5, "{errors} Redis errors counted");

    redis.restart();
    // Counting goes back to Redis on its own (the contract: within 5 s).
    wait_until(Duration::from_secs(5), "counts back in Redis", || {
        get(&gw, &t);
        !redis.keys("tollgate:rl:*").is_empty()
    });
}

#[test]
fn on_error_deny_answers_503_and_allow_admits_uncounted() {
    let mut redis = Redis::start();
    let url = redis.url();
    redis.stop();
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&up, &url, "deny", "10/minute"));
    let r = get(&gw, &token("denied"));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));

    // `on_error: allow` admits without counting: past the limit, and with no RateLimit-*.
    let gw = Gateway::start(&config(&up, &url, "allow", "1/minute"));
    for _ in 0..3 {
        let r = get(&gw, &token("allowed"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-limit"), None);
    }
}

#[test]
fn a_redis_cluster_holds_one_count_for_two_gateways() {
    let cluster = tollgate_tests::RedisCluster::start();
    let up = Upstream::start("u");
    let nodes = cluster.nodes().join(", ");
    let yaml = config(&up, "unused", "deny", "3/minute")
        .replace("  url: unused\n", &format!("  cluster_nodes: [{nodes}]\n"));
    let a = Gateway::start(&yaml);
    let b = Gateway::start(&yaml);
    // The first connection is made in the background: wait until it counts.
    let mut attempt = 0;
    wait_until(Duration::from_secs(10), "the cluster connection", || {
        attempt += 1;
        let warm = token(&format!("warm-up-{attempt}"));
        get(&a, &warm).status == 200 && get(&b, &warm).status == 200
    });
    let t = token("cluster-user");
    let statuses: Vec<u16> = [&a, &b, &a, &b]
        .iter()
        .map(|gw| get(gw, &t).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    // Many callers spread over the slots of all three masters and still count.
    for i in 0..30 {
        assert_eq!(get(&a, &token(&format!("spread-{i}"))).status, 200);
    }
}

#[test]
fn rediss_with_a_private_ca_and_a_user_and_password_from_the_url() {
    let dir = temp_dir();
    make_certs(&dir);
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let acl = Redis::gateway_user("s3cret-pass");
    let redis = Redis::start_tls(&dir, &acl.iter().map(String::as_str).collect::<Vec<_>>());
    let tls_port = redis.tls_port.unwrap();
    let up = Upstream::start("u");
    let with_tls = |url: &str, on_error: &str, ca: bool| {
        let tls = if ca {
            format!("  tls: {{ ca_file: \"{}\" }}\n", path("ca.pem"))
        } else {
            String::new()
        };
        config(&up, url, on_error, "3/minute")
            .replace("  timeout: 50ms\n", &format!("{tls}  timeout: 500ms\n"))
    };
    let url = format!("rediss://gateway:s3cret-pass@127.0.0.1:{tls_port}");
    let gw = Gateway::start(&with_tls(&url, "deny", true));
    let t = token("over-tls");
    let statuses: Vec<u16> = (0..4).map(|_| get(&gw, &t).status).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "counted in Redis over TLS");
    assert_eq!(redis.keys("tollgate:rl:shared:all:*").len(), 1);

    // A wrong password, or a server certificate the public roots do not vouch for: Redis
    // cannot count, and `on_error: deny` says so.
    let wrong = format!("rediss://gateway:wrong@127.0.0.1:{tls_port}");
    let gw = Gateway::start(&with_tls(&wrong, "deny", true));
    assert_eq!(get(&gw, &token("wrong-password")).status, 503);
    let gw = Gateway::start(&with_tls(&url, "deny", false));
    assert_eq!(get(&gw, &token("untrusted")).status, 503);
}

#[test]
fn redis_tls_problems_are_config_errors_naming_the_path() {
    let up = Upstream::start("u");
    let cases = [
        (
            "redis://127.0.0.1:6379",
            "  tls: { ca_file: /nonexistent/ca.pem }\n",
            "redis.tls",
        ),
        (
            "rediss://127.0.0.1:6379",
            "  tls: { ca_file: /nonexistent/ca.pem }\n",
            "redis.tls.ca_file",
        ),
        (
            "rediss://127.0.0.1:6379",
            "  tls: { insecure_skip_verify: true }\n",
            "redis.tls.insecure_skip_verify",
        ),
        (
            "rediss://127.0.0.1:6379",
            "  tls: { cert_file: /etc/hostname }\n",
            "cert_file and key_file go together",
        ),
    ];
    for (url, tls, expected) in cases {
        let yaml = config(&up, url, "local", "3/minute")
            .replace("  timeout: 50ms\n", &format!("{tls}  timeout: 50ms\n"));
        let (code, output) = validate(&yaml);
        assert_ne!(code, 0, "accepted: {tls}");
        assert!(output.contains(expected), "{expected:?} not in {output}");
    }
}
