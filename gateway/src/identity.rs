//! Forwarded identity: the `forward_headers` of a route (its own over the auth-wide defaults,
//! header by header; `null` removes one), compiled at load and filled from the caller's
//! [`Identity`] for each request.

use std::collections::BTreeMap;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use tollgate_auth::claims::{ClaimPath, Claims};
use tollgate_auth::Identity;
use tollgate_config::{Report, Text};

#[derive(Debug, Clone)]
pub enum Source {
    Claim(ClaimPath),
    Provider,
    Subject,
    Tenant,
    Roles,
    Scopes,
    Client,
    Tier,
}

pub type Forwarded = Vec<(Name, Source)>;

/// A forwarded header's name: lower case for lookups, and as configured for the wire. Made once
/// at load: given a `HeaderName`, Pingora's `insert_header` would title-case it into a new
/// buffer on every request (an HTTP/1 request keeps the case of its names).
#[derive(Debug, Clone)]
pub struct Name {
    pub lower: HeaderName,
    pub wire: Bytes,
}

/// The top-level `forward_headers`: the defaults of every authenticated route.
pub fn defaults(map: &BTreeMap<String, Text>, report: &mut Report<'_>) -> Forwarded {
    map.iter()
        .filter_map(|(name, value)| entry(name, value, &format!("forward_headers.{name}"), report))
        .collect()
}

/// A route's headers: its own over the defaults, header by header; `null` removes one.
pub fn compile(
    defaults: &Forwarded,
    route: Option<&BTreeMap<String, Option<Text>>>,
    route_index: usize,
    report: &mut Report<'_>,
) -> Forwarded {
    let Some(own) = route else {
        return defaults.clone();
    };
    let mut out: Forwarded = defaults
        .iter()
        .filter(|(name, _)| {
            !own.keys()
                .any(|k| k.eq_ignore_ascii_case(name.lower.as_str()))
        })
        .cloned()
        .collect();
    for (name, value) in own {
        let at = format!("routes[{route_index}].forward_headers.{name}");
        if let Some(e) = value.as_ref().and_then(|v| entry(name, v, &at, report)) {
            out.push(e);
        }
    }
    out
}

fn entry(name: &str, value: &Text, at: &str, report: &mut Report<'_>) -> Option<(Name, Source)> {
    // A bad name is reported with the identity headers.
    let header = Name {
        lower: HeaderName::from_bytes(name.as_bytes()).ok()?,
        wire: Bytes::copy_from_slice(name.as_bytes()),
    };
    let source = match value.as_str() {
        "$provider" => Source::Provider,
        "$subject" => Source::Subject,
        "$tenant" => Source::Tenant,
        "$roles" => Source::Roles,
        "$scopes" => Source::Scopes,
        "$client" => Source::Client,
        "$tier" => Source::Tier,
        v if v.starts_with('$') => {
            report.error(
                at,
                format!(
                    "unknown computed value {} ($provider $subject $tenant $roles $scopes $client $tier)",
                    value.quoted()
                ),
            );
            return None;
        }
        v => match ClaimPath::parse(v) {
            Ok(path) => Source::Claim(path),
            Err(e) => {
                let e = if value.substituted() {
                    format!("not a claim path: {}", value.quoted())
                } else {
                    e
                };
                report.error(at, e);
                return None;
            }
        },
    };
    Some((header, source))
}

/// The value of one forwarded header for this caller; `None` sends nothing.
pub fn value(source: &Source, identity: &Identity, tier: Option<&str>) -> Option<HeaderValue> {
    let text = match source {
        Source::Tier => tier?.to_owned(),
        Source::Provider => identity.provider.to_string(),
        Source::Subject => identity.subject.clone()?,
        Source::Client => identity.client.clone()?,
        Source::Roles if !identity.roles.is_empty() => identity.roles.join(","),
        Source::Scopes if !identity.scopes.is_empty() => identity.scopes.join(","),
        Source::Tenant => identity.tenant.as_deref()?.to_owned(),
        Source::Roles | Source::Scopes => return None,
        Source::Claim(path) => match identity.claim(path)? {
            Value::String(s) => s.clone(),
            Value::Null => return None,
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        },
    };
    // Control characters would split or smuggle headers: such a value is not sent.
    if text.is_empty() || text.chars().any(char::is_control) {
        return None;
    }
    HeaderValue::try_from(text).ok()
}
