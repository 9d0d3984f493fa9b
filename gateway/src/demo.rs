//! `tollgate demo`: the whole pipeline with nothing to set up. A demo issuer (a fresh ES256
//! key each start, its discovery document and JWKS on loopback), an echo upstream, a built-in
//! config with RBAC, a tiered rate limit and forwarded headers, and `curl` lines with minted
//! tokens for an admin, a free-plan user and a pro-plan user. Runs until Ctrl-C like `run`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The audience of the demo's tokens and its provider.
const AUDIENCE: &str = "tollgate-demo";
/// How long the printed tokens stay valid.
const TOKEN_HOURS: u64 = 12;

/// Where the demo listens.
pub struct Ports {
    pub http: u16,
    pub admin: u16,
}

pub fn demo(ports: &Ports) -> ExitCode {
    match start(ports) {
        Ok((config, tokens, _background)) => {
            print_guide(ports, &config, &tokens);
            let code = crate::server::run(config.clone(), false, false);
            if let Some(dir) = config.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
            code
        }
        Err(e) => {
            eprintln!("error: tollgate demo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The demo's callers: (shell variable, who, token).
type Tokens = Vec<(&'static str, &'static str, String)>;

/// Starts the issuer and the upstream on a runtime of their own, writes the config; the
/// runtime must be kept for as long as the gateway runs.
fn start(ports: &Ports) -> Result<(PathBuf, Tokens, tokio::runtime::Runtime), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tollgate-demo")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    let key = Key::generate()?;
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let (issuer, echo) = runtime.block_on(async {
        let issuer = tokio::net::TcpListener::bind(loopback)
            .await
            .map_err(|e| format!("cannot bind the demo issuer: {e}"))?;
        let issuer_addr = issuer
            .local_addr()
            .map_err(|e| format!("demo issuer: {e}"))?;
        let issuer_url = format!("http://{issuer_addr}/realms/demo");
        let documents = HashMap::from([
            (
                "/realms/demo/.well-known/openid-configuration".to_owned(),
                Bytes::from(
                    json!({ "issuer": issuer_url, "jwks_uri": format!("{issuer_url}/jwks") })
                        .to_string(),
                ),
            ),
            (
                "/realms/demo/jwks".to_owned(),
                Bytes::from(json!({ "keys": [key.jwk()] }).to_string()),
            ),
        ]);
        tokio::spawn(tollgate_echo::serve_documents(issuer, documents));
        let (echo, _) = tollgate_echo::spawn(loopback, "demo-echo")
            .await
            .map_err(|e| format!("cannot bind the echo upstream: {e}"))?;
        Ok::<_, String>((issuer_url, echo))
    })?;

    let tokens = vec![
        (
            "ADMIN",
            "alice, an admin on the pro plan",
            key.token(&issuer, "alice", &["admin", "user"], "pro")?,
        ),
        (
            "FREE",
            "bob, a user on the free plan",
            key.token(&issuer, "bob", &["user"], "free")?,
        ),
        (
            "PRO",
            "carol, a user on the pro plan",
            key.token(&issuer, "carol", &["user"], "pro")?,
        ),
    ];
    // A new directory of our own (a random name, created here, only ours to read): nobody can
    // have put a file or a link there first.
    let dir = std::env::temp_dir().join(format!("tollgate-demo-{}", uuid::Uuid::new_v4().simple()));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let path = dir.join("tollgate.yaml");
    std::fs::write(&path, config(ports, &issuer, echo))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok((path, tokens, runtime))
}

/// The built-in config: every stage of the pipeline on two kinds of routes.
fn config(ports: &Ports, issuer: &str, echo: SocketAddr) -> String {
    format!(
        r#"# Written by `tollgate demo`: a starting point for your own config.
listen: {{ http: "127.0.0.1:{http}" }}
admin: {{ listen: "127.0.0.1:{admin}" }}

auth:
  providers:
    - name: demo                     # the demo issuer: a fresh key at every start
      issuer: {issuer}
      audiences: [{AUDIENCE}]
      claims: {{ roles: realm_access.roles }}

upstreams:
  echo: {{ targets: ["{echo}"] }}    # answers with the request it received, as JSON

forward_headers:                     # what the upstream learns about the caller
  X-User-ID: sub
  X-User-Roles: $roles
  X-Plan: plan
  X-Tier: $tier

rate_limits:
  per-plan:
    key: subject
    tiers:
      - {{ name: free, when: 'Equals(`plan`, `free`)', limit: 5/minute }}
      - {{ name: pro, limit: 100/minute }}

routes:
  - name: public
    match: {{ path: /api/public/* }}
    upstream: echo
    auth: none
  - name: admin
    match: {{ path: /api/admin/* }}
    upstream: echo
    allow: {{ roles: [admin] }}
    rate_limit: per-plan
  - name: items
    match: {{ path: /api/* }}
    upstream: echo
    allow: {{ roles: [admin, user] }}
    rate_limit: per-plan
"#,
        http = ports.http,
        admin = ports.admin,
    )
}

fn print_guide(ports: &Ports, config: &std::path::Path, tokens: &Tokens) {
    let base = format!("http://127.0.0.1:{}", ports.http);
    let mut out = String::new();
    out.push_str(&format!(
        "\nTollgate demo: the gateway on {base}, admin on http://127.0.0.1:{}\n",
        ports.admin
    ));
    out.push_str(&format!(
        "Config: {} (copy it to start your own)\n\n",
        config.display()
    ));
    out.push_str(&format!(
        "Tokens from the demo issuer (valid {TOKEN_HOURS} h; paste these into a shell):\n\n"
    ));
    for (var, who, token) in tokens {
        out.push_str(&format!("# {who}\nexport {var}={token}\n"));
    }
    let auth = |var: &str| format!("-H \"Authorization: Bearer ${var}\"");
    let lines = [
        ("200: no token needed".to_owned(), format!("curl -i {base}/api/public/hello")),
        ("401: this route needs a token".to_owned(), format!("curl -i {base}/api/items")),
        (
            "200: the upstream sees X-User-ID, X-User-Roles, X-Plan, X-Tier; RateLimit-* headers"
                .to_owned(),
            format!("curl -i {} {base}/api/items", auth("FREE")),
        ),
        ("403: admins only".to_owned(), format!("curl -i {} {base}/api/admin/stats", auth("FREE"))),
        ("200: alice is an admin".to_owned(), format!("curl -i {} {base}/api/admin/stats", auth("ADMIN"))),
        (
            "the free plan allows 5 a minute: 200s, then 429 with Retry-After".to_owned(),
            format!(
                "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}}\\n' {} {base}/api/items; done",
                auth("FREE")
            ),
        ),
        (
            "the pro plan allows 100 a minute".to_owned(),
            format!(
                "for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}}\\n' {} {base}/api/items; done",
                auth("PRO")
            ),
        ),
        (
            "why a request is allowed or refused, stage by stage".to_owned(),
            format!(
                "tollgate explain -c {} --path /api/admin/stats --token $FREE",
                config.display()
            ),
        ),
        ("metrics".to_owned(), format!("curl -s http://127.0.0.1:{}/metrics | grep tollgate_", ports.admin)),
    ];
    out.push_str("\nThen try:\n\n");
    for (what, line) in lines {
        out.push_str(&format!("# {what}\n{line}\n"));
    }
    out.push_str("\nPress Ctrl-C to stop. The access log follows on stdout.\n\n");
    print!("{out}");
}

/// The demo issuer's signing key.
struct Key {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    kid: String,
}

impl Key {
    fn generate() -> Result<Key, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a key".to_owned())?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| "cannot use the generated key".to_owned())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(Key {
            pair,
            pkcs8: pkcs8.as_ref().to_vec(),
            kid: format!("demo-{now}"),
        })
    }

    /// The public key as a JWK: the uncompressed point 0x04 || x || y.
    fn jwk(&self) -> serde_json::Value {
        let point = self.pair.public_key().as_ref();
        let (x, y) = point
            .get(1..)
            .unwrap_or_default()
            .split_at(point.len().saturating_sub(1) / 2);
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    fn token(&self, issuer: &str, sub: &str, roles: &[&str], plan: &str) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = json!({
            "iss": issuer, "sub": sub, "aud": AUDIENCE, "iat": now, "exp": now + TOKEN_HOURS * 3600,
            "realm_access": { "roles": roles }, "plan": plan,
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8))
            .map_err(|e| format!("cannot sign a token: {e}"))
    }
}
