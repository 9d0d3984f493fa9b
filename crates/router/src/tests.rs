use super::*;

fn spec<'a>(path: &'a str, host: Option<&'a str>, methods: &[&str]) -> RouteSpec<'a> {
    RouteSpec {
        path,
        host,
        methods: (!methods.is_empty()).then(|| methods.iter().map(|m| m.to_string()).collect()),
    }
}

fn route(router: &Router, host: Option<&str>, path: &str, method: &str) -> Option<usize> {
    match router.find(host, path, method) {
        Lookup::Found(f) => Some(f.route),
        _ => None,
    }
}

#[test]
fn literal_beats_param_beats_wildcard_whatever_the_order() {
    let routes = [
        spec("/api/*", None, &[]),
        spec("/api/users/{id}", None, &[]),
        spec("/api/users/me", None, &[]),
        spec("/api/users/*", None, &[]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(route(&r, None, "/api/users/me", "GET"), Some(2));
    assert_eq!(route(&r, None, "/api/users/42", "GET"), Some(1));
    assert_eq!(route(&r, None, "/api/users/42/posts", "GET"), Some(3));
    assert_eq!(route(&r, None, "/api/users", "GET"), Some(3));
    assert_eq!(route(&r, None, "/api/users/", "GET"), Some(3));
    assert_eq!(route(&r, None, "/api/other", "GET"), Some(0));
    assert_eq!(route(&r, None, "/api", "GET"), Some(0));
    assert_eq!(route(&r, None, "/apix", "GET"), None);
    assert_eq!(route(&r, None, "/", "GET"), None);
}

#[test]
fn param_beside_wildcard_backtracks() {
    let routes = [
        spec("/a/{x}", None, &[]),
        spec("/a/*", None, &[]),
        spec("/a/{x}/b", None, &[]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(route(&r, None, "/a/1", "GET"), Some(0));
    assert_eq!(route(&r, None, "/a/1/b", "GET"), Some(2));
    assert_eq!(route(&r, None, "/a/1/c", "GET"), Some(1));
    assert_eq!(route(&r, None, "/a", "GET"), Some(1));
    // An empty segment never fills a parameter.
    assert_eq!(route(&r, None, "/a/", "GET"), Some(1));
}

#[test]
fn longer_wildcard_prefix_wins() {
    let routes = [
        spec("/*", None, &[]),
        spec("/api/*", None, &[]),
        spec("/api/admin/*", None, &[]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(route(&r, None, "/api/admin/x", "GET"), Some(2));
    assert_eq!(route(&r, None, "/api/admin", "GET"), Some(2));
    assert_eq!(route(&r, None, "/api/adminx", "GET"), Some(1));
    assert_eq!(route(&r, None, "/", "GET"), Some(0));
    assert_eq!(route(&r, None, "/other", "GET"), Some(0));
}

#[test]
fn params_are_captured() {
    let r = Router::build(&[spec("/t/{tenant}/users/{id}", None, &[])]).unwrap();
    match r.find(None, "/t/acme/users/7", "GET") {
        Lookup::Found(f) => assert_eq!(f.params, vec![("tenant", "acme"), ("id", "7")]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn method_mismatch_is_405_and_never_falls_through() {
    let routes = [
        spec("/api/*", None, &[]),
        spec("/api/admin/*", None, &["GET", "DELETE"]),
        spec("/api/admin/*", None, &["POST"]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(route(&r, None, "/api/admin/x", "POST"), Some(2));
    assert_eq!(route(&r, None, "/api/admin/x", "DELETE"), Some(1));
    assert_eq!(
        r.find(None, "/api/admin/x", "PUT"),
        Lookup::MethodNotAllowed {
            allow: "DELETE, GET, POST"
        }
    );
    assert_eq!(route(&r, None, "/api/x", "PUT"), Some(0));
}

#[test]
fn methods_are_case_sensitive() {
    let r = Router::build(&[spec("/a", None, &["GET"])]).unwrap();
    assert_eq!(
        r.find(None, "/a", "get"),
        Lookup::MethodNotAllowed { allow: "GET" }
    );
}

#[test]
fn host_precedence_exact_then_tenant_then_wildcard_then_none() {
    let routes = [
        spec("/x", None, &[]),
        spec("/x", Some("*.example.com"), &[]),
        spec("/x", Some("{tenant}.example.com"), &[]),
        spec("/x", Some("api.example.com"), &[]),
        spec("/y", Some("api.example.com"), &[]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(route(&r, Some("api.example.com"), "/x", "GET"), Some(3));
    assert_eq!(route(&r, Some("acme.example.com"), "/x", "GET"), Some(2));
    assert_eq!(route(&r, Some("a.b.example.com"), "/x", "GET"), Some(1));
    assert_eq!(route(&r, Some("other.org"), "/x", "GET"), Some(0));
    assert_eq!(route(&r, None, "/x", "GET"), Some(0));
    assert_eq!(route(&r, Some("other.org"), "/y", "GET"), None);
    match r.find(Some("acme.example.com"), "/x", "GET") {
        Lookup::Found(f) => assert_eq!(f.host_tenant, Some("acme")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_host_without_its_path_falls_back_to_less_specific_hosts() {
    let routes = [
        spec("/only-here", Some("api.example.com"), &[]),
        spec("/*", None, &[]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(
        route(&r, Some("api.example.com"), "/elsewhere", "GET"),
        Some(1)
    );
    assert_eq!(
        route(&r, Some("api.example.com"), "/only-here", "GET"),
        Some(0)
    );
}

#[test]
fn longer_wildcard_host_wins() {
    let routes = [
        spec("/*", Some("*.com"), &[]),
        spec("/*", Some("*.example.com"), &[]),
    ];
    let r = Router::build(&routes).unwrap();
    assert_eq!(route(&r, Some("a.example.com"), "/", "GET"), Some(1));
    assert_eq!(route(&r, Some("a.other.com"), "/", "GET"), Some(0));
}

#[test]
fn ambiguous_routes_are_refused() {
    let err = Router::build(&[
        spec("/a/{x}", None, &["GET"]),
        spec("/a/{y}", None, &["GET", "POST"]),
    ])
    .unwrap_err();
    assert_eq!(err, vec![BuildError::Ambiguous { route: 1, other: 0 }]);
    let err = Router::build(&[
        spec("/a", Some("API.example.com"), &[]),
        spec("/a", Some("api.example.com"), &["GET"]),
    ])
    .unwrap_err();
    assert_eq!(err, vec![BuildError::Ambiguous { route: 1, other: 0 }]);
    // Same path, disjoint methods, or different hosts: fine.
    assert!(Router::build(&[spec("/a", None, &["GET"]), spec("/a", None, &["POST"])]).is_ok());
    assert!(Router::build(&[spec("/a", Some("x.com"), &[]), spec("/a", None, &[])]).is_ok());
    assert!(Router::build(&[spec("/a", None, &[]), spec("/a/*", None, &[])]).is_ok());
}

#[test]
fn bad_patterns_name_their_route() {
    let err = Router::build(&[
        spec("/ok", None, &[]),
        spec("nope", None, &[]),
        spec("/x", Some("a b"), &[]),
    ])
    .unwrap_err();
    assert!(
        matches!(err[0], BuildError::Path { route: 1, .. }),
        "{err:?}"
    );
    assert!(
        matches!(err[1], BuildError::Host { route: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn host_of_strips_port_and_case() {
    assert_eq!(host_of("API.Example.com:8080"), "api.example.com");
    assert_eq!(host_of("example.com."), "example.com");
    assert_eq!(host_of("[::1]:80"), "::1");
    assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
}
