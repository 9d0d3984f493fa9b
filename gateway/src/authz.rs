//! Stage 3, authorize (403): tenant isolation, then the route's `allow` rules.
//!
//! A route whose `match.host` or `match.path` captures `{tenant}` admits only callers of that
//! tenant: a token of `acme` on `globex.api.example.com` is refused, and so is a caller with
//! no tenant (an anonymous caller of an `optional` route, a provider without a template, an
//! API key without `tenant`).

use tollgate_auth::Identity;

use crate::denial::Denial;
use crate::gate::Route;

/// What a route's `{tenant}` captured for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// The route captures no tenant.
    Nothing,
    Tenant(String),
    /// Host and path captured two different tenants: nobody is of both.
    Conflict,
}

impl Captured {
    /// From the host label and the path parameter named `tenant`.
    pub fn of(host: Option<&str>, path: Option<&str>) -> Captured {
        match (host, path) {
            (None, None) => Captured::Nothing,
            (Some(t), None) | (None, Some(t)) => Captured::Tenant(t.to_owned()),
            (Some(a), Some(b)) if a == b => Captured::Tenant(a.to_owned()),
            _ => Captured::Conflict,
        }
    }
}

/// Refuses a caller who is not of the route's tenant.
pub fn isolate(captured: &Captured, identity: Option<&Identity>) -> Result<(), Denial> {
    let wanted = match captured {
        Captured::Nothing => return Ok(()),
        Captured::Tenant(t) => t.as_str(),
        Captured::Conflict => {
            return Err(refuse(
                "the host and the path name different tenants".into(),
            ))
        }
    };
    match identity.and_then(|id| id.tenant.as_deref()) {
        Some(tenant) if tenant == wanted => Ok(()),
        // The caller's tenant is not named back: it is the caller's own business.
        Some(_) => Err(refuse(format!(
            "the caller belongs to another tenant than {wanted:?}"
        ))),
        None => Err(refuse(format!(
            "only callers of tenant {wanted:?} are admitted, and the caller has no tenant"
        ))),
    }
}

/// The whole stage: isolation for every caller, `allow` for an authenticated one (an anonymous
/// caller of an `optional` route is not checked against `allow`).
pub fn authorize(
    route: &Route,
    captured: &Captured,
    identity: Option<&Identity>,
) -> Result<(), Denial> {
    isolate(captured, identity)?;
    if let (Some(allow), Some(identity)) = (&route.allow, identity) {
        allow.check(identity).map_err(crate::authn::forbidden)?;
    }
    Ok(())
}

fn refuse(description: String) -> Denial {
    Denial::new(403, "forbidden", description)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn caller(tenant: Option<&str>) -> Identity {
        Identity {
            provider: Arc::from("kc"),
            tenant: tenant.map(Arc::from),
            subject: Some("s".into()),
            client: None,
            roles: vec![],
            scopes: vec![],
            claims: serde_json::Map::new(),
            resolved: Default::default(),
        }
    }

    #[test]
    fn only_callers_of_the_captured_tenant_pass() {
        let acme = Captured::of(Some("acme"), None);
        assert!(isolate(&acme, Some(&caller(Some("acme")))).is_ok());
        for refused in [Some(caller(Some("globex"))), Some(caller(None)), None] {
            let d = isolate(&acme, refused.as_ref()).unwrap_err();
            assert_eq!((d.status, d.code), (403, "forbidden"));
        }
        assert!(isolate(&Captured::Nothing, None).is_ok());
        assert_eq!(
            Captured::of(Some("a"), Some("a")),
            Captured::Tenant("a".into())
        );
        let both = Captured::of(Some("a"), Some("b"));
        assert!(isolate(&both, Some(&caller(Some("a")))).is_err());
    }
}
