//! Stage 3 of the pipeline, authorize: a route's `allow` rules against the caller's identity.
//! Default deny: an authenticated caller passes a route with `allow` only when every rule given
//! there holds (`roles`: any of them; `scopes`: all of them; `claims`: the expression).

pub mod expr;

use tollgate_auth::claims::ClaimPath;
use tollgate_auth::Identity;
use tollgate_config::Report;

use expr::Expr;

#[derive(Debug)]
pub struct Allow {
    roles: Vec<String>,
    scopes: Vec<String>,
    claims: Option<Expr>,
}

/// Why a caller may not pass: a 403.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `insufficient_scope` (RFC 6750 §3.1) or `forbidden`.
    pub code: &'static str,
    pub description: &'static str,
    /// For `insufficient_scope`: the scopes the route needs, space-separated.
    pub scope: Option<String>,
}

impl Allow {
    /// The claim paths its `claims` rule reads, into `out`.
    pub fn claim_paths<'a>(&'a self, out: &mut Vec<&'a ClaimPath>) {
        if let Some(e) = &self.claims {
            e.claim_paths(out);
        }
    }

    /// Compiles `routes[route].allow`; every problem is reported with its path.
    pub fn compile(
        config: &tollgate_config::Allow,
        route: usize,
        report: &mut Report<'_>,
    ) -> Option<Allow> {
        let at = format!("routes[{route}].allow");
        let list =
            |key: &str, items: &Option<Vec<tollgate_config::Text>>, report: &mut Report<'_>| {
                if items.as_ref().is_some_and(|v| v.is_empty()) {
                    report.error(
                        format!("{at}.{key}"),
                        "an empty list: leave the key out, or name at least one",
                    );
                }
                let items: Vec<String> = items.iter().flatten().map(|t| t.to_string()).collect();
                for (i, item) in items.iter().enumerate() {
                    // RFC 6750 §3 scope tokens: visible ASCII except `"` and `\`.
                    let token = |c: char| c.is_ascii_graphic() && c != '"' && c != '\\';
                    if item.is_empty() || !item.chars().all(token) {
                        report.error(
                            format!("{at}.{key}[{i}]"),
                            "must be one word of visible ASCII, without spaces, \" or \\",
                        );
                    }
                }
                items
            };
        let roles = list("roles", &config.roles, report);
        let scopes = list("scopes", &config.scopes, report);
        let claims = match &config.claims {
            None => None,
            Some(text) => match Expr::parse(text) {
                Ok(e) => Some(e),
                Err(e) => {
                    report.error(format!("{at}.claims"), expr::describe(&e, text));
                    return None;
                }
            },
        };
        Some(Allow {
            roles,
            scopes,
            claims,
        })
    }

    /// The scopes this rule asks for (for RFC 9728's `scopes_supported`).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    pub fn check(&self, identity: &Identity) -> Result<(), Refusal> {
        // Scopes first, so that a token that lacks one is told which (RFC 6750 §3.1).
        if !self.scopes.iter().all(|s| identity.scopes.contains(s)) {
            return Err(Refusal {
                code: "insufficient_scope",
                description: "the token lacks a scope this route needs",
                scope: Some(self.scopes.join(" ")),
            });
        }
        if !self.roles.is_empty() && !self.roles.iter().any(|r| identity.roles.contains(r)) {
            return Err(Refusal {
                code: "forbidden",
                description: "the caller has none of the roles this route needs",
                scope: None,
            });
        }
        if self.claims.as_ref().is_some_and(|e| !e.eval(identity)) {
            return Err(Refusal {
                code: "forbidden",
                description: "the caller's claims do not satisfy this route's rule",
                scope: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn identity(roles: &[&str], scopes: &[&str], claims: serde_json::Value) -> Identity {
        let serde_json::Value::Object(claims) = claims else {
            unreachable!()
        };
        Identity {
            provider: Arc::from("p"),
            tenant: None,
            subject: Some("s".into()),
            client: None,
            roles: roles.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            claims,
            resolved: Default::default(),
        }
    }

    fn allow(roles: &[&str], scopes: &[&str], claims: Option<&str>) -> Allow {
        Allow {
            roles: roles.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            claims: claims.map(|c| Expr::parse(c).unwrap()),
        }
    }

    #[test]
    fn roles_any_scopes_all_claims_and_together() {
        let rule = allow(
            &["admin", "billing"],
            &["api:read", "api:write"],
            Some("Equals(`plan`, `pro`)"),
        );
        let ok = identity(
            &["billing"],
            &["api:write", "api:read", "x"],
            json!({ "plan": "pro" }),
        );
        assert_eq!(rule.check(&ok), Ok(()));
        let one_scope = identity(&["admin"], &["api:read"], json!({ "plan": "pro" }));
        let e = rule.check(&one_scope).unwrap_err();
        assert_eq!(
            (e.code, e.scope.as_deref()),
            ("insufficient_scope", Some("api:read api:write"))
        );
        let no_role = identity(
            &["user"],
            &["api:read", "api:write"],
            json!({ "plan": "pro" }),
        );
        assert_eq!(rule.check(&no_role).unwrap_err().code, "forbidden");
        let free = identity(
            &["admin"],
            &["api:read", "api:write"],
            json!({ "plan": "free" }),
        );
        assert_eq!(rule.check(&free).unwrap_err().code, "forbidden");
        // An empty rule: any authenticated caller.
        assert_eq!(
            allow(&[], &[], None).check(&identity(&[], &[], json!({}))),
            Ok(())
        );
    }
}
