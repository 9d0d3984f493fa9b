//! Stage 2 of the pipeline, authenticate: the route's `auth` mode applied to the request's
//! credentials. A refusal is a [`Denial`] in RFC 6750's terms.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pingora::http::RequestHeader;
use tollgate_admin::Metrics;
use tollgate_auth::{AuthError, Credentials, Identity};
use tollgate_config::AuthMode;

use crate::denial::Denial;
use crate::gate::{Gate, Route};

/// Who is calling, once this stage has passed.
pub struct Caller {
    pub identity: Option<Arc<Identity>>,
    /// The access log's `auth`: `none`, `ok` or `anonymous`.
    pub result: &'static str,
}

pub async fn authenticate(
    gate: &Gate,
    route: &Route,
    req: &RequestHeader,
    metrics: &Metrics,
) -> Result<Caller, (Denial, &'static str)> {
    if route.auth == AuthMode::None {
        // Credentials are not even read; forwarded-identity headers are still stripped.
        return Ok(Caller {
            identity: None,
            result: "none",
        });
    }
    let metadata = gate.resource_metadata.as_ref().map(|m| m.url.as_str());
    let refused = |e: AuthError| {
        let provider = e.provider.as_deref().unwrap_or("none");
        metrics.auth(provider, e.code);
        let code = e.code;
        (denial(e, metadata), code)
    };
    let credentials =
        tollgate_auth::credentials(&req.headers, gate.auth.api_key_header()).map_err(refused)?;
    if credentials == Credentials::None {
        return match route.auth {
            AuthMode::Optional => Ok(Caller {
                identity: None,
                result: "anonymous",
            }),
            _ => {
                metrics.auth("none", "unauthorized");
                Err((missing(metadata), "unauthorized"))
            }
        };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Bad credentials are refused on `optional` routes too: never downgraded to anonymous.
    let identity = gate
        .auth
        .authenticate(&credentials, now)
        .await
        .map_err(refused)?;
    gate.count_auth_ok(&identity.provider, metrics);
    Ok(Caller {
        identity: Some(identity),
        result: "ok",
    })
}

const REALM: &str = "Bearer realm=\"tollgate\"";

/// A caller that may not pass a route's `allow` rules: 403, with RFC 6750's
/// `insufficient_scope` challenge when a scope is missing.
pub fn forbidden(refusal: tollgate_policy::Refusal) -> Denial {
    let denial = Denial::new(403, refusal.code, refusal.description);
    match refusal.scope {
        Some(scope) => denial.header(
            "www-authenticate",
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                scope.replace(['"', '\\'], "'")
            ),
        ),
        None => denial,
    }
}

/// `Bearer realm="tollgate"`, with `resource_metadata` (RFC 9728 §5.1) when configured.
fn challenge(metadata: Option<&str>) -> String {
    match metadata {
        Some(url) => format!("{REALM}, resource_metadata=\"{url}\""),
        None => REALM.to_owned(),
    }
}

/// No credentials on a route that needs them (RFC 6750 §3.1: no error code then).
fn missing(metadata: Option<&str>) -> Denial {
    Denial::new(
        401,
        "unauthorized",
        "this route needs a bearer token or an API key",
    )
    .header("www-authenticate", challenge(metadata))
}

fn denial(e: AuthError, metadata: Option<&str>) -> Denial {
    let mut d = Denial::new(e.status, e.code, e.description.clone());
    if e.status == 503 {
        let wait = e.retry_after.unwrap_or(1).max(1);
        d = d.header("retry-after", wait.to_string());
    } else {
        d = d.header(
            "www-authenticate",
            format!(
                "{}, error=\"{}\", error_description=\"{}\"",
                challenge(metadata),
                e.code,
                e.description.replace(['"', '\\'], "'")
            ),
        );
    }
    d
}
