//! CORS (the Fetch standard's CORS protocol) for routes with `cors`: preflights are answered
//! by the gateway before authentication, and answers to allowed origins carry
//! `Access-Control-Allow-Origin`.

use std::time::Duration;

use pingora::http::RequestHeader;
use tollgate_config::Report;

use crate::denial::Denial;

pub struct Cors {
    /// Exact origins (`https://app.example.com`); `any` for `"*"`.
    origins: Vec<String>,
    any: bool,
    methods: String,
    allowed_methods: Vec<String>,
    headers: Option<String>,
    max_age: Option<Duration>,
    credentials: bool,
}

impl Cors {
    pub fn compile(config: &tollgate_config::Cors, route: usize, report: &mut Report<'_>) -> Cors {
        let path = format!("routes[{route}].cors");
        let mut origins = Vec::new();
        let mut any = false;
        for (i, origin) in config.origins.iter().enumerate() {
            let origin = origin.trim_end_matches('/');
            if origin == "*" {
                any = true;
            } else if origin.starts_with("http://") || origin.starts_with("https://") {
                origins.push(origin.to_ascii_lowercase());
            } else {
                report.error(
                    format!("{path}.origins[{i}]"),
                    "expected \"*\" or an origin such as https://app.example.com",
                );
            }
        }
        if any && config.credentials {
            // Fetch standard: a credentialed request is never allowed for "*".
            report.error(
                format!("{path}.credentials"),
                "credentials: true needs listed origins, not \"*\"",
            );
        }
        let allowed_methods: Vec<String> = config
            .methods
            .as_ref()
            .map(|ms| ms.iter().map(|m| m.to_ascii_uppercase()).collect())
            .unwrap_or_else(|| ["GET", "HEAD", "POST"].map(str::to_owned).to_vec());
        let headers = config
            .headers
            .as_ref()
            .map(|hs| hs.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", "));
        Cors {
            origins,
            any,
            methods: allowed_methods.join(", "),
            allowed_methods,
            headers,
            max_age: config.max_age.map(|d| d.0),
            credentials: config.credentials,
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// `Some(origin)` for a preflight: `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`.
    pub fn preflight_method(req: &RequestHeader) -> Option<&str> {
        if req.method != http::Method::OPTIONS || !req.headers.contains_key(http::header::ORIGIN) {
            return None;
        }
        req.headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
    }

    /// The answer to a preflight: 204 with what is allowed, or 403.
    pub fn preflight(&self, req: &RequestHeader) -> Denial {
        let origin = origin(req).unwrap_or_default();
        let method = Cors::preflight_method(req).unwrap_or_default();
        if !self.allows(origin) {
            return Denial::new(
                403,
                "cors_origin_not_allowed",
                "this origin may not call this route",
            );
        }
        if !self.allowed_methods.iter().any(|m| m == method) {
            return Denial::new(
                403,
                "cors_method_not_allowed",
                "this method is not allowed cross-origin",
            );
        }
        let mut answer = Denial::new(204, "", "")
            .header("access-control-allow-origin", self.origin_value(origin))
            .header("access-control-allow-methods", self.methods.clone())
            .header("vary", "Origin");
        let requested = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok());
        match (&self.headers, requested) {
            (Some(headers), _) => {
                answer = answer.header("access-control-allow-headers", headers.clone())
            }
            // Without a list, the headers asked for are allowed, as most gateways do.
            (None, Some(asked)) => {
                answer = answer.header("access-control-allow-headers", asked.to_owned())
            }
            (None, None) => {}
        }
        if let Some(age) = self.max_age {
            answer = answer.header("access-control-max-age", age.as_secs().to_string());
        }
        if self.credentials {
            answer = answer.header("access-control-allow-credentials", "true");
        }
        answer
    }

    /// Headers for an actual response to `req`, when its origin is allowed.
    pub fn response_headers(&self, req: &RequestHeader) -> Vec<(&'static str, String)> {
        let Some(origin) = origin(req).filter(|o| self.allows(o)) else {
            return Vec::new();
        };
        let mut headers = vec![
            ("access-control-allow-origin", self.origin_value(origin)),
            ("vary", "Origin".to_owned()),
        ];
        if self.credentials {
            headers.push(("access-control-allow-credentials", "true".to_owned()));
        }
        // The gateway's own headers, which a browser script may read only when exposed.
        headers.push(("access-control-expose-headers", EXPOSED.to_owned()));
        headers
    }

    fn origin_value(&self, origin: &str) -> String {
        if self.any && !self.credentials {
            "*".to_owned()
        } else {
            origin.to_owned()
        }
    }
}

/// What Tollgate adds to responses that a browser client has reason to read.
const EXPOSED: &str =
    "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, Retry-After, X-Request-Id";

fn origin(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
}
