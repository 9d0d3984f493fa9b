//! Checks that need the whole file: references between sections, duplicate names, addresses.
//! Stage-specific checks (route patterns, expressions, keys) belong to the stage that compiles
//! them and report through the same [`Report`].

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::load::Loaded;
use crate::problem::{Problems, Report};
use crate::schema::{AuthMode, File, Route};
use crate::units::Text;

pub fn check(loaded: &Loaded) -> Result<(), Problems> {
    let mut report = loaded.report();
    let file = &loaded.file;
    listeners(file, &mut report);
    upstreams(file, &mut report);
    routes(file, &mut report);
    headers(file, &mut report);
    redis(file, &mut report);
    report.finish(())
}

fn listeners(file: &File, report: &mut Report<'_>) {
    if let Some(addr) = &file.listen.http {
        socket_addr(addr, "listen.http", report);
    }
    if let Some(https) = &file.listen.https {
        socket_addr(&https.addr, "listen.https.addr", report);
    }
    if let Some(addr) = &file.admin.listen {
        socket_addr(addr, "admin.listen", report);
    }
    for (key, value) in [
        ("server.header_timeout", file.server.header_timeout),
        ("server.idle_timeout", file.server.idle_timeout),
    ] {
        if value.is_some_and(|d| d.0 < std::time::Duration::from_secs(1)) {
            report.error(key, "must be at least 1s");
        }
    }
    if file.server.threads == Some(0) {
        report.error("server.threads", "must be at least 1");
    }
    for (i, cidr) in file.server.trusted_proxies.iter().enumerate() {
        let ok = cidr.parse::<ipnet::IpNet>().is_ok() || cidr.parse::<std::net::IpAddr>().is_ok();
        if !ok {
            report.error(
                format!("server.trusted_proxies[{i}]"),
                format!(
                    "expected an IP address or CIDR range, got {}",
                    cidr.quoted()
                ),
            );
        }
    }
}

fn socket_addr(addr: &Text, path: &str, report: &mut Report<'_>) {
    if addr.parse::<SocketAddr>().is_err() {
        report.error(
            path,
            format!(
                "expected an address such as 127.0.0.1:8080 or [::1]:8080, got {}",
                addr.quoted()
            ),
        );
    }
}

/// `host:port` with a port; the host is resolved when the upstream pool is built.
pub fn target_error(target: &str) -> Option<String> {
    let bad = || Some("expected host:port".to_owned());
    if target.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let Some((host, port)) = target.rsplit_once(':') else {
        return bad();
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return bad();
    }
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if host_ok {
        None
    } else {
        bad()
    }
}

fn upstreams(file: &File, report: &mut Report<'_>) {
    for (name, upstream) in &file.upstreams {
        let path = format!("upstreams.{name}");
        if !is_name(name) {
            report.error(
                &path,
                format!("upstream name {name:?} may use only letters, digits, '-', '_' and '.'"),
            );
        }
        if upstream.targets.is_empty() {
            report.error(
                format!("{path}.targets"),
                "an upstream needs at least one target",
            );
        }
        if let Some(check) = &upstream.health_check {
            let hpath = format!("{path}.health_check");
            if check.path.as_ref().is_some_and(|p| !p.starts_with('/')) {
                report.error(format!("{hpath}.path"), "expected a path starting with /");
            }
            for (key, value) in [("interval", check.interval), ("timeout", check.timeout)] {
                if value.is_some_and(|d| d.0.is_zero()) {
                    report.error(format!("{hpath}.{key}"), "must be longer than 0s");
                }
            }
            for (key, value) in [
                ("unhealthy_after", check.unhealthy_after),
                ("healthy_after", check.healthy_after),
            ] {
                if value == Some(0) {
                    report.error(format!("{hpath}.{key}"), "must be at least 1");
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, target) in upstream.targets.iter().enumerate() {
            let tpath = format!("{path}.targets[{i}]");
            if let Some(e) = target_error(target) {
                report.error(&tpath, format!("{e}, got {}", target.quoted()));
            } else if !seen.insert(target.as_str()) {
                report.error(&tpath, format!("duplicate target {}", target.quoted()));
            }
        }
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn routes(file: &File, report: &mut Report<'_>) {
    let has_credentials = !file.auth.providers.is_empty()
        || file
            .auth
            .api_keys
            .as_ref()
            .is_some_and(|k| !k.keys.is_empty());
    let mut names = HashSet::new();
    for (i, route) in file.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        if !is_name(&route.name) {
            report.error(
                format!("{path}.name"),
                format!(
                    "route name {} may use only letters, digits, '-', '_' and '.'",
                    route.name.quoted()
                ),
            );
        } else if !names.insert(route.name.as_str()) {
            report.error(
                format!("{path}.name"),
                format!("duplicate route name {}", route.name.quoted()),
            );
        }
        if !file.upstreams.contains_key(route.upstream.as_str()) {
            report.error(
                format!("{path}.upstream"),
                format!("unknown upstream {}", route.upstream.quoted()),
            );
        }
        if route.auth != AuthMode::None && !has_credentials {
            report.error(
                format!("{path}.auth"),
                "route needs authentication (auth: required is the default) but no auth.providers or auth.api_keys are configured; use auth: none for a public route",
            );
        }
        methods(route, &path, report);
        if let Some(limits) = &route.rate_limit {
            for (j, name) in limits.names().into_iter().enumerate() {
                if !file.rate_limits.contains_key(name.as_str()) {
                    let p = match limits {
                        crate::schema::OneOrMany::One(_) => format!("{path}.rate_limit"),
                        crate::schema::OneOrMany::Many(_) => format!("{path}.rate_limit[{j}]"),
                    };
                    report.error(p, format!("unknown rate limit policy {}", name.quoted()));
                }
            }
        }
        if let Some(headers) = &route.forward_headers {
            for name in headers.keys() {
                header_name(name, &format!("{path}.forward_headers.{name}"), report);
            }
        }
    }
}

fn methods(route: &Route, path: &str, report: &mut Report<'_>) {
    let Some(methods) = &route.matches.methods else {
        return;
    };
    if methods.is_empty() {
        report.error(
            format!("{path}.match.methods"),
            "list at least one method, or leave methods out to match all",
        );
    }
    for (j, m) in methods.iter().enumerate() {
        let token = !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic());
        if !token {
            report.error(
                format!("{path}.match.methods[{j}]"),
                format!("not an HTTP method: {}", m.quoted()),
            );
        }
    }
}

fn headers(file: &File, report: &mut Report<'_>) {
    for name in file.forward_headers.keys() {
        header_name(name, &format!("forward_headers.{name}"), report);
    }
}

/// RFC 9110 §5.1: a field name is a token.
fn header_name(name: &str, path: &str, report: &mut Report<'_>) {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        report.error(path, format!("not a valid header name: {name:?}"));
    }
}

fn redis(file: &File, report: &mut Report<'_>) {
    if let Some(redis) = &file.redis {
        if redis.url.is_some() && redis.cluster_nodes.is_some() {
            report.error(
                "redis.cluster_nodes",
                "give either redis.url or redis.cluster_nodes, not both",
            );
        }
        if redis.url.is_none() && redis.cluster_nodes.is_none() {
            report.error("redis", "give redis.url or redis.cluster_nodes");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load::parse;

    fn errors(yaml: &str) -> Vec<String> {
        match parse(yaml) {
            Ok(_) => vec![],
            Err(p) => p.iter().map(|p| p.to_string()).collect(),
        }
    }

    const BASE: &str = "upstreams:\n  users:\n    targets: [\"127.0.0.1:9001\"]\n";

    #[test]
    fn minimal_config_parses() {
        let yaml = format!("{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: users\n    auth: none\n");
        assert_eq!(errors(&yaml), Vec::<String>::new());
    }

    #[test]
    fn unknown_upstream_names_path_and_line() {
        let yaml = format!("{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: nope\n    auth: none\n");
        assert_eq!(
            errors(&yaml),
            vec![r#"error: routes[0].upstream (line 7): unknown upstream "nope""#]
        );
    }

    #[test]
    fn unknown_field_names_path_and_line() {
        let yaml = format!("{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: users\n    colour: red\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("error: routes[0].colour (line 8): unknown field"),
            "{e:?}"
        );
    }

    #[test]
    fn type_error_names_path_and_line() {
        let yaml = format!("{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: users\n    auth: maybe\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("error: routes[0].auth (line 8): "),
            "{e:?}"
        );
    }

    #[test]
    fn auth_required_without_credentials_is_an_error() {
        let yaml =
            format!("{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: users\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("error: routes[0].auth (line 5): route needs authentication"),
            "{e:?}"
        );
    }

    #[test]
    fn several_problems_are_all_reported_in_file_order() {
        let yaml = "listen:\n  http: nowhere\nupstreams:\n  users:\n    targets: [\"127.0.0.1\", \"127.0.0.1:9001\", \"127.0.0.1:9001\"]\nroutes:\n  - name: a\n    match: { path: /a, methods: [G3T] }\n    upstream: users\n    auth: none\n  - name: a\n    match: { path: /b }\n    upstream: users\n    auth: none\n";
        let e = errors(yaml);
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("error: listen.http (line 2)"), "{e:?}");
        assert!(
            e[1].starts_with("error: upstreams.users.targets[0] (line 5)"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("error: upstreams.users.targets[2] (line 5): duplicate"),
            "{e:?}"
        );
        assert!(
            e[3].starts_with("error: routes[0].match.methods[0] (line 8)"),
            "{e:?}"
        );
        assert!(
            e[4].starts_with("error: routes[1].name (line 11): duplicate route name"),
            "{e:?}"
        );
    }

    #[test]
    fn unset_variable_is_named_and_its_value_never_echoed() {
        std::env::set_var("TOLLGATE_TEST_SECRET_TIMEOUT", "hunter2");
        let yaml = format!("{BASE}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: users\n    auth: none\n    timeouts: {{ read: \"${{TOLLGATE_TEST_SECRET_TIMEOUT}}\" }}\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(!e[0].contains("hunter2"), "{e:?}");
        assert!(e[0].contains("${TOLLGATE_TEST_SECRET_TIMEOUT}"), "{e:?}");
        let yaml = format!("{BASE}routes:\n  - name: a\n    match: {{ path: \"${{TOLLGATE_TEST_UNSET_VAR}}\" }}\n    upstream: users\n    auth: none\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("routes[0].match.path (line 6)")
                && e[0].contains("TOLLGATE_TEST_UNSET_VAR is not set"),
            "{e:?}"
        );
    }

    #[test]
    fn substituted_values_are_never_echoed_in_any_error() {
        std::env::set_var("TOLLGATE_TEST_SECRET_ADDR", "s3cr3t-value");
        let yaml = format!("listen:\n  http: \"${{TOLLGATE_TEST_SECRET_ADDR}}\"\n{BASE}routes:\n  - name: \"${{TOLLGATE_TEST_SECRET_ADDR}}\"\n    match: {{ path: /a }}\n    upstream: \"${{TOLLGATE_TEST_SECRET_ADDR}}\"\n    auth: none\n");
        let e = errors(&yaml);
        assert_eq!(e.len(), 2, "{e:?}");
        for line in &e {
            assert!(!line.contains("s3cr3t"), "{line}");
            assert!(line.contains("${TOLLGATE_TEST_SECRET_ADDR}"), "{line}");
        }
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = errors("routes: [\n  - a: b\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("error: ") && e[0].contains("(line "),
            "{e:?}"
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let yaml = format!("{BASE}routes:\n  - name: a\n    name: b\n    match: {{ path: /a }}\n    upstream: users\n    auth: none\n");
        assert_eq!(errors(&yaml).len(), 1);
    }
}
