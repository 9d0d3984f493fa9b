//! Authorization against tokens from a real issuer (npm `oidc-provider`): `allow` roles (any
//! of), scopes (all of, with the `insufficient_scope` challenge), claim expressions, method-
//! specific rules, and `optional` routes.

use tollgate_tests::{temp_dir, validate, Gateway, Idp, Response, Upstream};

fn request(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    gw.request(method, path, headers)
}

fn with_token(gw: &Gateway, method: &str, path: &str, token: &str) -> Response {
    request(
        gw,
        method,
        path,
        &[("Authorization", &format!("Bearer {token}"))],
    )
}

struct Setup {
    idp: Idp,
    gw: Gateway,
    _up: Upstream,
}

fn setup() -> Setup {
    let keys = temp_dir();
    let idp = Idp::oidc(0, "RS256", "k1", &keys.join("k.jwk"));
    let up = Upstream::start("u");
    let gw = Gateway::start(&format!(
        r#"
auth:
  providers:
    - name: kc
      issuer: "{issuer}"
      audiences: [https://api.example.test]
      claims: {{ roles: realm_access.roles }}
upstreams:
  users: {{ targets: ["{up}"] }}
routes:
  - name: public
    match: {{ path: /api/public/* }}
    upstream: users
    auth: none
  - name: admin
    match: {{ path: /api/admin/*, methods: [GET, POST, DELETE] }}
    upstream: users
    allow: {{ roles: [admin] }}
  - name: billing
    match: {{ path: /api/billing/* }}
    upstream: users
    allow:
      roles: [admin, billing_admin]
      scopes: ["api:write"]
      claims: 'Equals(`plan`, `pro`) || Equals(`plan`, `enterprise`)'
  - name: users-read
    match: {{ path: /api/users/*, methods: [GET] }}
    upstream: users
    allow: {{ roles: [admin, user] }}
  - name: users-delete
    match: {{ path: /api/users/*, methods: [DELETE] }}
    upstream: users
    allow: {{ roles: [admin] }}
  - name: maybe
    match: {{ path: /api/maybe/* }}
    upstream: users
    auth: optional
    allow: {{ claims: '!Equals(`plan`, `free`)' }}
"#,
        issuer = idp.issuer,
        up = up.addr
    ));
    Setup { idp, gw, _up: up }
}

#[test]
fn roles_any_of_and_method_specific_rules() {
    let s = setup();
    let admin = s.idp.token("svc-admin", "svc-admin-secret");
    let user = s.idp.token("svc-user", "svc-user-secret");
    assert_eq!(with_token(&s.gw, "GET", "/api/admin/x", &admin).status, 200);
    let r = with_token(&s.gw, "GET", "/api/admin/x", &user);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(request(&s.gw, "GET", "/api/admin/x", &[]).status, 401);

    assert_eq!(with_token(&s.gw, "GET", "/api/users/1", &user).status, 200);
    assert_eq!(with_token(&s.gw, "GET", "/api/users/1", &admin).status, 200);
    assert_eq!(
        with_token(&s.gw, "DELETE", "/api/users/1", &user).status,
        403
    );
    assert_eq!(
        with_token(&s.gw, "DELETE", "/api/users/1", &admin).status,
        200
    );
    assert_eq!(request(&s.gw, "GET", "/api/public/x", &[]).status, 200);
}

#[test]
fn scopes_all_of_with_the_insufficient_scope_challenge_and_claim_expressions() {
    let s = setup();
    let full = s.idp.token("svc-admin", "svc-admin-secret");
    assert_eq!(
        with_token(&s.gw, "GET", "/api/billing/x", &full).status,
        200
    );

    let read_only = s
        .idp
        .token_with_scope("svc-admin", "svc-admin-secret", "api:read");
    let r = with_token(&s.gw, "GET", "/api/billing/x", &read_only);
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="api:write""#)
    );
    assert_eq!(r.json()["error"], "insufficient_scope");

    // svc-user has the scopes but neither role nor plan.
    let user = s.idp.token("svc-user", "svc-user-secret");
    assert_eq!(
        with_token(&s.gw, "GET", "/api/billing/x", &user).status,
        403
    );

    // gRPC callers get PERMISSION_DENIED.
    let r = request(
        &s.gw,
        "POST",
        "/api/billing/x",
        &[
            ("Authorization", &format!("Bearer {user}")),
            ("Content-Type", "application/grpc"),
        ],
    );
    assert_eq!(r.header("grpc-status"), Some("7"));
}

#[test]
fn optional_routes_check_rules_only_for_callers_with_credentials() {
    let s = setup();
    assert_eq!(request(&s.gw, "GET", "/api/maybe/x", &[]).status, 200);
    let free = s.idp.token("svc-user", "svc-user-secret");
    assert_eq!(with_token(&s.gw, "GET", "/api/maybe/x", &free).status, 403);
    let pro = s.idp.token("svc-admin", "svc-admin-secret");
    assert_eq!(with_token(&s.gw, "GET", "/api/maybe/x", &pro).status, 200);
    assert_eq!(
        with_token(&s.gw, "GET", "/api/maybe/x", "not.a.token").status,
        401
    );
}

#[test]
fn bad_rules_are_config_errors_with_path_line_and_column() {
    let base = "auth:\n  api_keys: { keys: [{ id: a, key: k }] }\nupstreams:\n  u: { targets: [\"127.0.0.1:1\"] }\nroutes:\n";
    let cases = [
        (
            "  - name: r\n    match: { path: /* }\n    upstream: u\n    allow:\n      claims: 'Equals(`plan`, `pro`'\n",
            "error: routes[0].allow.claims (line 10): expected ',' or ')' at column 21",
        ),
        (
            "  - name: r\n    match: { path: /* }\n    upstream: u\n    allow:\n      claims: 'Equal(`plan`, `pro`)'\n",
            "error: routes[0].allow.claims (line 10): unknown function \"Equal\"",
        ),
        (
            "  - name: r\n    match: { path: /* }\n    upstream: u\n    auth: none\n    allow: { roles: [admin] }\n",
            "error: routes[0].allow (line 10): allow rules need an authenticated caller",
        ),
        (
            "  - name: r\n    match: { path: /* }\n    upstream: u\n    allow: { roles: [] }\n",
            "error: routes[0].allow.roles (line 9): an empty list",
        ),
    ];
    for (routes, expected) in cases {
        let (code, out) = validate(&format!("{base}{routes}"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains(expected), "expected {expected:?} in:\n{out}");
    }
}

#[test]
fn explain_walks_one_request_through_every_stage() {
    let s = setup();
    let admin = s.idp.token("svc-admin", "svc-admin-secret");
    let user = s.idp.token("svc-user", "svc-user-secret");

    let (code, out) = s.gw.explain(&["--path", "/api/admin/x", "--token", &admin]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("route: ok: \"admin\" (upstream users, auth required)"),
        "{out}"
    );
    assert!(
        out.contains("authenticate: ok: provider kc, subject svc-admin, roles [admin, user]"),
        "{out}"
    );
    assert!(out.contains("authorize: ok"), "{out}");
    assert!(out.trim_end().ends_with("result: allowed"), "{out}");

    let (code, out) = s.gw.explain(&[
        "--method",
        "DELETE",
        "--path",
        "/api/users/1",
        "--token",
        &user,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("authorize: refused: 403 forbidden: the caller has none of the roles"),
        "{out}"
    );

    let (code, out) = s.gw.explain(&["--path", "/api/admin/x"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("authenticate: refused: 401 unauthorized"),
        "{out}"
    );

    let (code, out) = s.gw.explain(&["--path", "/nowhere"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("route: refused: 404 not_found"), "{out}");
}

#[test]
fn an_expression_from_the_environment_is_never_quoted_in_errors() {
    let dir = temp_dir();
    let path = dir.join("tollgate.yaml");
    std::fs::write(
        &path,
        "auth:\n  api_keys: { keys: [{ id: a, key: k }] }\nupstreams:\n  u: { targets: [\"127.0.0.1:1\"] }\nroutes:\n  - name: r\n    match: { path: /* }\n    upstream: u\n    allow:\n      claims: ${RULE}\n",
    )
    .unwrap();
    let out = std::process::Command::new(tollgate_tests::binary())
        .args(["validate", "-c"])
        .arg(&path)
        .env("RULE", "Equals(`plan`, `s3cr3t-value`")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("routes[0].allow.claims (line 10): syntax error at column"),
        "{stdout}"
    );
    assert!(stdout.contains("${RULE}"), "{stdout}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}
