//! Multi-tenant issuers against real issuers: one `oidc-provider` realm per tenant under
//! `/realms/{tenant}` (tests/idp/tenants.mjs). Tenant isolation by host and by path, `$tenant`
//! forwarded, a rate limit per tenant, unlisted and made-up tenants, `max_tenants`, and a key
//! rotation in one tenant that leaves the others alone.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use tollgate_tests::{wait_until, Gateway, Idp, Response, Upstream};

const ADMIN: (&str, &str) = ("svc-admin", "svc-admin-secret");
const USER: (&str, &str) = ("svc-user", "svc-user-secret");

fn get(gw: &Gateway, host: &str, path: &str, token: &str) -> Response {
    gw.send(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ))
}

/// One multi-tenant provider (`tenants` is `[a, b]` or `any`, with more keys after it), routes
/// isolated by host and by path, and one shared route limited per tenant.
fn config(idp: &Idp, up: &Upstream, tenants: &str) -> String {
    format!(
        r#"auth:
  jwks: {{ min_refetch_interval: 30s }}
  providers:
    - name: customers
      issuer: "{issuer}"
      tenants: {tenants}
      audiences: [https://api.example.test]
      claims: {{ roles: realm_access.roles }}
  api_keys:
    keys:
      - {{ id: acme-ci, key: acme-ci-key-0123456789, tenant: acme }}
      - {{ id: plain-ci, key: plain-ci-key-0123456789 }}
upstreams:
  u: {{ targets: ["{up}"] }}
forward_headers:
  X-Tenant: $tenant
  X-Provider: $provider
rate_limits:
  per-tenant:
    key: tenant
    tiers:
      - {{ name: org, limit: 3/minute }}
routes:
  - {{ name: by-host, match: {{ path: /api/*, host: "{{tenant}}.api.test" }}, upstream: u }}
  - {{ name: by-path, match: {{ path: "/t/{{tenant}}/*" }}, upstream: u }}
  - {{ name: shared, match: {{ path: /shared/* }}, upstream: u, rate_limit: per-tenant }}
"#,
        issuer = idp.issuer,
        up = up.addr
    )
}

fn tenants_doc(gw: &Gateway) -> serde_json::Value {
    let r = gw.admin_get("/tenants");
    assert_eq!(r.status, 200);
    r.json()["providers"][0].clone()
}

/// A token for `issuer` whose signature is not one: enough to make the gateway look the
/// issuer up.
fn forged(issuer: &str) -> String {
    let head = URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "kid": "k" }).to_string());
    let body = URL_SAFE_NO_PAD
        .encode(json!({ "iss": issuer, "sub": "x", "exp": 9_999_999_999u64 }).to_string());
    format!("{head}.{body}.{}", URL_SAFE_NO_PAD.encode([7u8; 256]))
}

#[test]
fn listed_tenants_are_isolated_by_host_and_path_and_limited_per_tenant() {
    let idp = Idp::tenants(&["acme", "globex", "initech"]);
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&idp, &up, "[acme, globex]"));
    // Listed tenants are fetched at start and count for readiness.
    wait_until(Duration::from_secs(20), "both tenants have keys", || {
        gw.admin_get("/readyz").status == 200
    });
    let acme = idp.token_in("acme", ADMIN.0, ADMIN.1);
    let globex = idp.token_in("globex", ADMIN.0, ADMIN.1);

    let r = get(&gw, "acme.api.test", "/api/x", &acme);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-tenant"], "acme");
    assert_eq!(r.json()["headers"]["x-provider"], "customers");
    // Hosts are compared lowercased, with the port.
    assert_eq!(get(&gw, "ACME.api.test:8080", "/api/x", &acme).status, 200);

    // A token of one tenant on another tenant's host or path: 403, not naming the tenant.
    let r = get(&gw, "globex.api.test", "/api/x", &acme);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    assert!(!String::from_utf8_lossy(&r.body).contains("acme"));
    assert_eq!(get(&gw, "t", "/t/globex/x", &globex).status, 200);
    assert_eq!(get(&gw, "t", "/t/globex/x", &acme).status, 403);

    // An API key with a tenant is that tenant's caller; one without a tenant is no tenant's.
    let with_key = |host: &str, key: &str| {
        gw.send(&format!(
            "GET /api/x HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
        ))
    };
    let r = with_key("acme.api.test", "acme-ci-key-0123456789");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-tenant"], "acme");
    assert_eq!(
        with_key("globex.api.test", "acme-ci-key-0123456789").status,
        403
    );
    assert_eq!(
        with_key("acme.api.test", "plain-ci-key-0123456789").status,
        403
    );

    // A real realm of the same server, but not listed: 401 like any unknown issuer.
    let initech = idp.token_in("initech", ADMIN.0, ADMIN.1);
    let r = get(&gw, "initech.api.test", "/api/x", &initech);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["error_description"],
        "token issuer is not accepted"
    );

    // One count for all users of a tenant.
    let acme_user = idp.token_in("acme", USER.0, USER.1);
    let statuses: Vec<u16> = [&acme, &acme_user, &acme, &acme_user]
        .iter()
        .map(|t| get(&gw, "t", "/shared/x", t).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429]);
    assert_eq!(get(&gw, "t", "/shared/x", &globex).status, 200);

    // The admin API lists the concrete issuers; metrics count them without names.
    let doc = tenants_doc(&gw);
    assert_eq!(doc["tenants"], json!(["acme", "globex"]));
    let issuers = doc["issuers"].as_array().unwrap();
    assert_eq!(issuers.len(), 2);
    assert_eq!(issuers[0]["issuer"], idp.issuer_of("acme"));
    assert_eq!(issuers[0]["ready"], true);
    assert_eq!(
        gw.metric("tollgate_tenants{provider=\"customers\",state=\"with_keys\"}"),
        Some(2.0)
    );

    // `explain` says which tenant a route admits, and why a caller is refused.
    let (code, out) = gw.explain(&[
        "--host",
        "acme.api.test",
        "--path",
        "/api/x",
        "--token",
        &acme,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("provider customers, tenant acme"), "{out}");
    assert!(out.contains("captures tenant \"acme\""), "{out}");
    let (code, out) = gw.explain(&[
        "--host",
        "globex.api.test",
        "--path",
        "/api/x",
        "--token",
        &acme,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("authorize: refused: 403 forbidden"), "{out}");
}

#[test]
fn any_tenant_fetches_on_first_use_bounded_by_max_tenants_and_forgets_made_up_names() {
    let idp = Idp::tenants(&["acme", "globex", "initech"]);
    let up = Upstream::start("u");
    let gw = Gateway::start(&config(&idp, &up, "any\n      max_tenants: 2"));
    // Under `any`, nothing blocks readiness.
    assert_eq!(gw.admin_get("/readyz").status, 200);

    // A flood of made-up tenants: one discovery request per name, then remembered.
    let names: Vec<String> = (0..20).map(|i| format!("made-up-{i}")).collect();
    for _ in 0..3 {
        for name in &names {
            let r = get(&gw, "t", "/shared/x", &forged(&idp.issuer_of(name)));
            assert_eq!(r.status, 401, "{name}");
        }
    }
    assert_eq!(
        idp.stats()["unknown"],
        json!(names.len()),
        "one fetch per made-up name"
    );
    // Many callers of one new name at once share one lookup.
    let burst = forged(&idp.issuer_of("burst"));
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| assert_eq!(get(&gw, "t", "/shared/x", &burst).status, 401));
        }
    });
    assert_eq!(
        idp.stats()["unknown"],
        json!(names.len() + 1),
        "one lookup for the burst"
    );
    assert_eq!(tenants_doc(&gw)["issuers"], json!([]));

    // Real tenants are created on first use; a third evicts the least recently used.
    for tenant in ["acme", "globex", "initech"] {
        let token = idp.token_in(tenant, ADMIN.0, ADMIN.1);
        let r = get(&gw, &format!("{tenant}.api.test"), "/api/x", &token);
        assert_eq!(
            r.status,
            200,
            "{tenant}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let doc = tenants_doc(&gw);
    let kept: Vec<&str> = doc["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["globex", "initech"], "acme was used least recently");
    assert_eq!(
        gw.metric("tollgate_tenants{provider=\"customers\",state=\"in_use\"}"),
        Some(2.0)
    );
    // An evicted tenant comes back on its next use (with a fresh token: a cached verification
    // needs its issuer in use), fetching its keys again.
    let before = idp.stats()["acme"]["discovery"].as_u64().unwrap();
    let fresh = idp.token_in("acme", USER.0, USER.1);
    assert_eq!(get(&gw, "acme.api.test", "/api/x", &fresh).status, 200);
    assert_eq!(
        idp.stats()["acme"]["discovery"].as_u64().unwrap(),
        before + 1
    );
}

#[test]
fn a_key_rotation_in_one_tenant_leaves_the_others_alone() {
    let idp = Idp::tenants(&["acme", "globex"]);
    let up = Upstream::start("u");
    // Keys from a jwks_uri with {tenant} this time, rather than by discovery.
    let tenants = format!("[acme, globex]\n      jwks_uri: \"{}/jwks\"", idp.issuer);
    let gw = Gateway::start(&config(&idp, &up, &tenants));
    wait_until(Duration::from_secs(20), "both tenants have keys", || {
        gw.admin_get("/readyz").status == 200
    });
    let old_acme = idp.token_in("acme", ADMIN.0, ADMIN.1);
    let globex = idp.token_in("globex", ADMIN.0, ADMIN.1);
    assert_eq!(get(&gw, "acme.api.test", "/api/x", &old_acme).status, 200);
    assert_eq!(get(&gw, "globex.api.test", "/api/x", &globex).status, 200);
    let globex_fetches = idp.stats()["globex"]["jwks"].clone();

    assert_eq!(idp.rotate("acme"), "acme-k2");
    let new_acme = idp.token_in("acme", ADMIN.0, ADMIN.1);
    let r = get(&gw, "acme.api.test", "/api/x", &new_acme);
    assert_eq!(
        r.status, 200,
        "the unknown kid made acme's keys be fetched again"
    );
    assert_eq!(get(&gw, "globex.api.test", "/api/x", &globex).status, 200);
    assert_eq!(
        idp.stats()["globex"]["jwks"],
        globex_fetches,
        "globex's keys were not fetched again"
    );
    assert_eq!(
        idp.stats()["acme"]["discovery"],
        0,
        "no discovery with a jwks_uri"
    );
}
