//! The file's shape, one struct per section of the contract. Parsed once, validated, then
//! compiled by each stage into its runtime form; nothing reads these per request.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::units::{Duration, Rate, Size, Text};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    #[serde(default)]
    pub auth: Auth,
    pub routes: Vec<Route>,
    #[serde(default)]
    pub forward_headers: BTreeMap<String, Text>,
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitPolicy>,
    pub redis: Option<Redis>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub threads: Option<usize>,
    /// Pingora's work-stealing runtime instead of one runtime per thread.
    pub work_stealing: Option<bool>,
    pub grace_period: Option<Duration>,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Option<Duration>,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout: Option<Duration>,
    #[serde(default)]
    pub trusted_proxies: Vec<Text>,
    pub max_header_bytes: Option<Size>,
    pub upgrade_sock: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub http: Option<Text>,
    #[serde(default)]
    pub h2c: bool,
    pub https: Option<Https>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Https {
    pub addr: Text,
    pub cert: Text,
    pub key: Text,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: Option<Text>,
    #[serde(default)]
    pub readiness: Readiness,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    #[default]
    AllProviders,
    Listener,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub targets: Vec<Text>,
    #[serde(default)]
    pub balance: Balance,
    #[serde(default)]
    pub protocol: Protocol,
    pub tls: Option<UpstreamTls>,
    pub health_check: Option<HealthCheck>,
    pub timeouts: Option<Timeouts>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    Random,
    Hash,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Http1,
    Http2,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    pub sni: Option<Text>,
    pub ca_file: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub path: Option<Text>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub unhealthy_after: Option<u32>,
    pub healthy_after: Option<u32>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub connect: Option<Duration>,
    pub read: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub clock_skew: Option<Duration>,
    #[serde(default)]
    pub jwks: Jwks,
    #[serde(default)]
    pub providers: Vec<Provider>,
    pub api_keys: Option<ApiKeys>,
    #[serde(default)]
    pub forward_authorization: bool,
    pub resource_metadata: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    pub refresh_interval: Option<Duration>,
    pub max_stale: Option<Duration>,
    pub min_refetch_interval: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: Text,
    pub issuer: Text,
    pub tenants: Option<Tenants>,
    pub max_tenants: Option<usize>,
    pub jwks_uri: Option<Text>,
    pub jwks_file: Option<Text>,
    pub public_key_file: Option<Text>,
    pub secret: Option<Text>,
    pub audiences: Option<Vec<Text>>,
    pub algorithms: Option<Vec<Text>>,
    pub claims: Option<ClaimMapping>,
    pub tls: Option<ClientTls>,
}

/// `tenants: [acme, globex]` or `tenants: any`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Tenants {
    List(Vec<Text>),
    Keyword(Text),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMapping {
    pub subject: Option<Text>,
    pub roles: Option<Text>,
    pub scopes: Option<Text>,
    pub client: Option<Text>,
}

#[derive(PartialEq, Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    pub ca_file: Option<Text>,
    pub cert_file: Option<Text>,
    pub key_file: Option<Text>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeys {
    pub header: Option<Text>,
    #[serde(default)]
    pub keys: Vec<ApiKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub id: Text,
    pub key: Option<Text>,
    pub sha256: Option<Text>,
    pub subject: Option<Text>,
    pub tenant: Option<Text>,
    pub claims: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub name: Text,
    #[serde(rename = "match")]
    pub matches: Match,
    pub upstream: Text,
    #[serde(default)]
    pub auth: AuthMode,
    pub allow: Option<Allow>,
    pub rate_limit: Option<OneOrMany>,
    pub rewrite: Option<Rewrite>,
    pub timeouts: Option<Timeouts>,
    pub retries: Option<Retries>,
    pub max_body: Option<Size>,
    pub cors: Option<Cors>,
    /// Header name to claim path or computed value; `null` removes an auth-wide default.
    pub forward_headers: Option<BTreeMap<String, Option<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub path: Text,
    pub host: Option<Text>,
    pub methods: Option<Vec<Text>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    None,
    Optional,
    #[default]
    Required,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    pub roles: Option<Vec<Text>>,
    pub scopes: Option<Vec<Text>>,
    pub claims: Option<Text>,
}

/// `rate_limit: per-user` or `rate_limit: [per-user, per-tenant]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(Text),
    Many(Vec<Text>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<&Text> {
        match self {
            OneOrMany::One(name) => vec![name],
            OneOrMany::Many(names) => names.iter().collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub strip_prefix: Option<Text>,
    pub prefix: Option<Text>,
    pub host: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    pub attempts: u32,
    #[serde(default)]
    pub on: Vec<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    pub origins: Vec<Text>,
    pub methods: Option<Vec<Text>>,
    pub headers: Option<Vec<Text>>,
    pub max_age: Option<Duration>,
    #[serde(default)]
    pub credentials: bool,
}

#[derive(PartialEq, Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    pub key: Text,
    #[serde(default)]
    pub backend: Backend,
    pub tiers: Vec<Tier>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Local,
    Redis,
}

#[derive(PartialEq, Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: Text,
    pub when: Option<Text>,
    pub limit: Rate,
    pub burst: Option<u64>,
}

#[derive(PartialEq, Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redis {
    pub url: Option<Text>,
    pub cluster_nodes: Option<Vec<Text>>,
    /// For `rediss://`: a private CA, a client certificate (mutual TLS).
    pub tls: Option<ClientTls>,
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub on_error: OnError,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Local,
    Allow,
    Deny,
}
