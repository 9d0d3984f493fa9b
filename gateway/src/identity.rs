//! Forwarded identity: the `forward_headers` of a route (its own over the auth-wide defaults,
//! header by header; `null` removes one), compiled at load and filled from the caller's
//! [`Identity`] for each request.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde_json::Value;
use tollgate_auth::claims::ClaimPath;
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

pub type Forwarded = Vec<(HeaderName, Source)>;

/// A route's headers: the defaults merged with its own.
pub fn compile(
    defaults: &BTreeMap<String, Text>,
    route: Option<&BTreeMap<String, Option<Text>>>,
    route_index: usize,
    report: &mut Report<'_>,
) -> Forwarded {
    let mut merged: BTreeMap<String, (String, Option<&Text>)> = defaults
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                ("forward_headers".to_owned(), Some(v)),
            )
        })
        .collect();
    for (k, v) in route.into_iter().flatten() {
        let at = format!("routes[{route_index}].forward_headers");
        merged.insert(k.to_ascii_lowercase(), (at, v.as_ref()));
    }
    let mut out = Vec::new();
    for (name, (at, value)) in merged {
        let Some(value) = value else { continue };
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            continue; // reported with the identity headers
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
                    format!("unknown computed value {} ($provider $subject $tenant $roles $scopes $client $tier)", value.quoted()),
                );
                continue;
            }
            v => match ClaimPath::parse(v) {
                Ok(path) => Source::Claim(path),
                Err(e) => {
                    report.error(at, e);
                    continue;
                }
            },
        };
        out.push((header, source));
    }
    out
}

/// The value of one forwarded header for this caller; `None` sends nothing.
pub fn value(source: &Source, identity: &Identity) -> Option<HeaderValue> {
    let text = match source {
        Source::Provider => identity.provider.to_string(),
        Source::Subject => identity.subject.clone()?,
        Source::Client => identity.client.clone()?,
        Source::Roles if !identity.roles.is_empty() => identity.roles.join(","),
        Source::Scopes if !identity.scopes.is_empty() => identity.scopes.join(","),
        Source::Roles | Source::Scopes | Source::Tenant | Source::Tier => return None,
        Source::Claim(path) => match path.lookup(&identity.claims)? {
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
    if text.chars().any(char::is_control) {
        return None;
    }
    HeaderValue::from_bytes(text.as_bytes()).ok()
}
