//! Properties of [`parse`] over generated YAML: random trees of the schema's keys and of
//! scalars in block and flow style, with anchors, aliases, tabs and stray characters, very
//! deep nesting, and configs shaped like the schema with good and bad values. It never panics,
//! and every problem it reports names a path and a line of the file.

use proptest::prelude::*;
use proptest::sample::Index;

use super::parse;
use crate::problem::Problems;

/// Every key of the schema (crates/config/src/schema.rs), and a few that YAML treats specially.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "server", "listen", "admin", "upstreams", "auth", "routes", "forward_headers", "rate_limits",
    "redis", "threads", "work_stealing", "grace_period", "header_timeout", "idle_timeout",
    "trusted_proxies", "max_header_bytes", "upgrade_sock", "http", "h2c", "https", "addr", "cert",
    "key", "readiness", "targets", "balance", "protocol", "tls", "health_check", "timeouts", "sni",
    "ca_file", "path", "interval", "timeout", "unhealthy_after", "healthy_after", "connect",
    "read", "clock_skew", "jwks", "providers", "api_keys", "forward_authorization",
    "resource_metadata", "refresh_interval", "max_stale", "min_refetch_interval", "name", "issuer",
    "tenants", "max_tenants", "jwks_uri", "jwks_file", "public_key_file", "secret", "audiences",
    "algorithms", "claims", "subject", "roles", "scopes", "client", "cert_file", "key_file",
    "insecure_skip_verify", "header", "keys", "id", "sha256", "tenant", "match", "upstream",
    "allow", "rate_limit", "rewrite", "retries", "max_body", "cors", "host", "methods",
    "strip_prefix", "prefix", "attempts", "on", "origins", "headers", "max_age", "credentials",
    "backend", "tiers", "when", "limit", "burst", "url", "cluster_nodes", "on_error", "<<", "? x",
    "\"quoted key\"", "'k'", "a.b", "x[0]", "1", "~",
];

/// Scalars as they are written in YAML: good and bad values of every type the schema reads,
/// YAML's special forms, quoting, and `${VAR}` references.
#[rustfmt::skip]
const SCALARS: &[&str] = &[
    "0", "1", "-1", "64", "18446744073709551616", "1.5", ".inf", ".nan", "0x1F", "0o17", "true",
    "false", "yes", "no", "on", "off", "~", "null", "''", "\"\"", "30s", "500ms", "1h", "0s",
    "-5s", "32KiB", "1MiB", "99999999999GiB", "100/minute", "0/s", "unlimited", "10/fortnight",
    "127.0.0.1:8080", "[::1]:9901", "0.0.0.0:0", "localhost:80", "nowhere", "10.0.0.0/8", "/api/*",
    "/", "\"/users/{id}\"", "/a/../b", "*.example.com", "GET", "G3T", "none", "optional",
    "required", "round_robin", "hash", "http2", "listener", "redis", "local", "deny", "RS256",
    "HS256", "https://idp.example", "redis://127.0.0.1:6379", "X-User",
    "\"Equals(`plan`, `pro`)\"", "'it''s'", "\"esc \\\" \\n \\u00e9 \\x41\"", "\"\\q\"", "|", ">",
    "|-\n  text", "!!str 5", "!!int x", "!custom v", "&", "*", "*a", "@", "`", "%x", "#", "-",
    "- x", ": x", "a: b", "[", "]", "{", "}", ",", "\"${TOLLGATE_PROPTEST_SECRET}\"",
    "\"x${TOLLGATE_PROPTEST_SECRET}y\"", "\"${TOLLGATE_PROPTEST_UNSET}\"", "\"${}\"", "\"${A B}\"",
    "\"${TOLLGATE_PROPTEST_UNSET:-30s}\"", "\"$${x}\"", "\"${unterminated\"", "caf\u{e9}",
    "\u{1F600}", "\u{feff}x",
];

/// The value of `TOLLGATE_PROPTEST_SECRET`: no error may ever print it.
const SECRET: &str = "pr0p-s3cret-v4lue";

#[derive(Debug, Clone)]
enum Node {
    Scalar(String),
    Alias(&'static str),
    Map {
        flow: bool,
        anchor: Option<&'static str>,
        entries: Vec<(String, Node)>,
    },
    Seq {
        flow: bool,
        anchor: Option<&'static str>,
        items: Vec<Node>,
    },
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{0,8}",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(SCALARS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9 ._/:-]{1,12}",
        1 => "\\PC{1,8}",
    ]
}

fn anchor() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![4 => Just(None), 1 => prop::sample::select(vec!["a", "b"]).prop_map(Some)]
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        8 => scalar().prop_map(Node::Scalar),
        1 => prop::sample::select(vec!["a", "b", "c"]).prop_map(Node::Alias),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            (
                any::<bool>(),
                anchor(),
                prop::collection::vec((key(), inner.clone()), 0..6)
            )
                .prop_map(|(flow, anchor, entries)| Node::Map {
                    flow,
                    anchor,
                    entries
                }),
            (any::<bool>(), anchor(), prop::collection::vec(inner, 0..5)).prop_map(
                |(flow, anchor, items)| Node::Seq {
                    flow,
                    anchor,
                    items
                }
            ),
        ]
    })
}

/// A top-level mapping of schema keys, so that most documents get past the first key.
fn document() -> impl Strategy<Value = Node> {
    prop::collection::vec(
        (
            prop::sample::select(&KEYS[..9]).prop_map(str::to_owned),
            node(),
        ),
        0..6,
    )
    .prop_map(|entries| Node::Map {
        flow: false,
        anchor: None,
        entries,
    })
}

fn anchored(anchor: &Option<&'static str>) -> String {
    anchor.map(|a| format!("&{a} ")).unwrap_or_default()
}

/// One line's worth of a node: a scalar, an alias or a flow collection.
fn inline(node: &Node) -> String {
    match node {
        Node::Scalar(s) => s.clone(),
        Node::Alias(a) => format!("*{a}"),
        Node::Map {
            anchor, entries, ..
        } => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", inline(v)))
                .collect();
            format!("{}{{{}}}", anchored(anchor), entries.join(", "))
        }
        Node::Seq { anchor, items, .. } => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("{}[{}]", anchored(anchor), items.join(", "))
        }
    }
}

/// A node in block style at `depth`, each level indented by `indent`.
fn block(node: &Node, depth: usize, indent: &str, out: &mut String) {
    let pad = indent.repeat(depth);
    let child = |value: &Node, out: &mut String| match value {
        Node::Map {
            flow: false,
            anchor,
            entries,
        } if !entries.is_empty() => {
            out.push_str(&format!(" {}\n", anchored(anchor).trim_end()));
            block(value, depth + 1, indent, out);
        }
        Node::Seq {
            flow: false,
            anchor,
            items,
        } if !items.is_empty() => {
            out.push_str(&format!(" {}\n", anchored(anchor).trim_end()));
            block(value, depth + 1, indent, out);
        }
        _ => out.push_str(&format!(" {}\n", inline(value))),
    };
    match node {
        Node::Map {
            flow: false,
            entries,
            ..
        } if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&format!("{pad}{k}:"));
                child(v, out);
            }
        }
        Node::Seq {
            flow: false, items, ..
        } if !items.is_empty() => {
            for item in items {
                out.push_str(&format!("{pad}-"));
                child(item, out);
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", inline(node))),
    }
}

/// A rendered document, with an indentation of 1 to 4 spaces or a tab, and stray characters
/// inserted anywhere.
fn yaml() -> impl Strategy<Value = String> {
    (
        document(),
        prop::sample::select(vec![" ", "  ", "   ", "    ", "\t", " \t"]),
        prop::collection::vec(
            (
                any::<Index>(),
                prop::sample::select(vec![
                    ' ', ' ', '\t', '\n', ':', '-', '#', '&', '*', '[', ']', '{', '}', '"', '\'',
                    '|', '>', '!', '%', '?', ',', '\r', '\u{0}', '\u{85}',
                ]),
            ),
            0..4,
        ),
    )
        .prop_map(|(doc, indent, noise)| {
            let mut text = String::new();
            block(&doc, 0, indent, &mut text);
            for (at, c) in noise {
                let mut chars: Vec<char> = text.chars().collect();
                chars.insert(at.index(chars.len() + 1), c);
                text = chars.into_iter().collect();
            }
            text
        })
}

/// Nesting far beyond the parsers' limits (serde-saphyr's 64 levels, granit-parser's 255), in
/// every style YAML has; indented styles stop at 400 levels, their text grows as its square.
fn deep() -> impl Strategy<Value = String> {
    (0..6usize, 1..3000usize).prop_map(|(style, depth)| match style {
        0 => format!("routes: {}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("routes: {}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
        2 => format!(
            "auth: {{ api_keys: {{ keys: [{{ id: a, key: k, claims: {}1{} }}] }} }}\nroutes: []",
            "[".repeat(depth),
            "]".repeat(depth)
        ),
        3 => (0..depth % 400)
            .map(|i| format!("{}- \n", " ".repeat(i)))
            .collect(),
        4 => (0..depth % 400)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect(),
        _ => format!("routes:\n{}", "- ".repeat(depth)),
    })
}

/// One of `values`, the first (a good one) half of the time.
fn pick(values: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    prop_oneof![Just(values[0]), prop::sample::select(values)]
}

fn maybe(values: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> + Clone {
    prop::option::of(pick(values))
}

/// A config shaped like the schema, every value good or bad at random.
fn config() -> impl Strategy<Value = String> {
    let route = (
        pick(&[
            "a",
            "b",
            "users",
            "a b",
            "\"\"",
            "\"${TOLLGATE_PROPTEST_SECRET}\"",
        ]),
        pick(&[
            "/a",
            "/a/*",
            "\"/u/{id}\"",
            "a",
            "/a/../b",
            "/x%2F",
            "\"/t/{tenant}/*\"",
        ]),
        maybe(&[
            "api.example",
            "*.example",
            "\"{tenant}.example\"",
            "bad host",
        ]),
        maybe(&["[GET]", "[G3T]", "[]", "GET", "[GET, get]"]),
        pick(&["users", "nope", "\"${TOLLGATE_PROPTEST_SECRET}\""]),
        maybe(&["none", "optional", "required", "maybe"]),
        maybe(&[
            "{ roles: [admin] }",
            "{ claims: \"Equals(`a`, `b`)\" }",
            "{ claims: \"((\" }",
        ]),
        maybe(&["per-user", "[per-user, nope]", "nope"]),
        maybe(&[
            "{ read: 30s }",
            "{ read: \"${TOLLGATE_PROPTEST_SECRET}\" }",
            "{ read: 0s }",
        ]),
        maybe(&[
            "{ X-User: sub }",
            "{ \"bad header\": sub }",
            "{ X-Plan: null }",
        ]),
    );
    (
        maybe(&["\"127.0.0.1:8080\"", "nowhere", "\"${TOLLGATE_PROPTEST_SECRET}\"", ":80"]),
        maybe(&["{ threads: 2 }", "{ threads: 0 }", "{ header_timeout: 10ms }", "{ trusted_proxies: [10.0.0.0/8, bad] }"]),
        pick(&["[\"127.0.0.1:9001\"]", "[]", "[\"127.0.0.1\", \"127.0.0.1\"]", "[\"h:0\"]", "[\"${TOLLGATE_PROPTEST_SECRET}\"]"]),
        maybe(&[
            "{ providers: [{ name: p, issuer: \"https://idp\", secret: s }] }",
            "{ providers: [{ name: p, issuer: \"https://idp\", jwks_uri: \"https://idp/k\", secret: s }] }",
            "{ api_keys: { keys: [{ id: k, key: abc }] } }",
            "{ api_keys: { keys: [{ id: k, sha256: xyz }] }, clock_skew: forever }",
        ]),
        maybe(&[
            "{ per-user: { key: sub, tiers: [{ name: t, limit: 10/minute }] } }",
            "{ per-user: { key: sub, backend: redis, tiers: [{ name: t, limit: 0/s }] } }",
            "{ per-user: { key: sub, tiers: [] } }",
        ]),
        maybe(&["{ url: \"redis://127.0.0.1\" }", "{}", "{ url: \"redis://x\", cluster_nodes: [\"a:1\"] }"]),
        prop::collection::vec(route, 0..4),
    )
        .prop_map(|(http, server, targets, auth, limits, redis, routes)| {
            let mut text = String::new();
            if let Some(http) = http {
                text.push_str(&format!("listen:\n  http: {http}\n"));
            }
            if let Some(server) = server {
                text.push_str(&format!("server: {server}\n"));
            }
            text.push_str(&format!("upstreams:\n  users:\n    targets: {targets}\n"));
            for (name, value) in [("auth", auth), ("rate_limits", limits), ("redis", redis)] {
                if let Some(value) = value {
                    text.push_str(&format!("{name}: {value}\n"));
                }
            }
            text.push_str(if routes.is_empty() { "routes: []\n" } else { "routes:\n" });
            for (name, path, host, methods, upstream, auth, allow, limit, timeouts, headers) in routes {
                text.push_str(&format!("  - name: {name}\n    match:\n      path: {path}\n"));
                for (key, value) in [("host", host), ("methods", methods)] {
                    if let Some(value) = value {
                        text.push_str(&format!("      {key}: {value}\n"));
                    }
                }
                text.push_str(&format!("    upstream: {upstream}\n"));
                for (key, value) in [
                    ("auth", auth),
                    ("allow", allow),
                    ("rate_limit", limit),
                    ("timeouts", timeouts),
                    ("forward_headers", headers),
                ] {
                    if let Some(value) = value {
                        text.push_str(&format!("    {key}: {value}\n"));
                    }
                }
            }
            text
        })
}

fn set_secret() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("TOLLGATE_PROPTEST_SECRET", SECRET));
}

/// What every refusal must be: at least one problem, each with a path, a message and a line
/// within the file, printed as `error: <path> (line N): <message>`, never quoting a value
/// that came from the environment.
fn assert_reported(text: &str, problems: &Problems) {
    // An empty (or blank) file has no line to name: `error: config: the file is empty`.
    if text.trim().is_empty() {
        assert_eq!(problems.iter().count(), 1);
        return;
    }
    assert!(!problems.is_empty(), "{text:?}");
    // YAML breaks lines at `\r` too (and YAML 1.1 at NEL, LS and PS), not only at `\n`.
    let lines = 1 + text
        .replace("\r\n", "\n")
        .matches(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .count();
    for p in problems.iter() {
        let shown = p.to_string();
        assert!(!p.path.is_empty(), "{shown}\n{text:?}");
        assert!(!p.message.is_empty(), "{shown}\n{text:?}");
        match p.line {
            Some(line) => assert!((1..=lines).contains(&line), "{shown}\n{text:?}"),
            None => panic!("no line: {shown}\n{text:?}"),
        }
        assert!(
            shown.starts_with(&format!("error: {} (line ", p.path)),
            "{shown}"
        );
        assert!(!shown.contains(SECRET), "{shown}\n{text:?}");
    }
}

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_text_is_parsed_or_reported(text in "\\PC{0,200}") {
        set_secret();
        if let Err(problems) = parse(&text) {
            if !text.trim().is_empty() {
                assert_reported(&text, &problems);
            }
        }
    }

    #[test]
    fn yaml_of_schema_keys_is_parsed_or_reported(text in yaml()) {
        set_secret();
        if let Err(problems) = parse(&text) {
            if !text.trim().is_empty() {
                assert_reported(&text, &problems);
            }
        }
    }

    #[test]
    fn configs_shaped_like_the_schema_are_parsed_or_reported(text in config()) {
        set_secret();
        if let Err(problems) = parse(&text) {
            assert_reported(&text, &problems);
        }
    }
}

proptest::proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deep_nesting_is_reported(text in deep()) {
        if let Err(problems) = parse(&text) {
            assert_reported(&text, &problems);
        }
    }
}

#[test]
fn hostile_documents_are_reported_quickly() {
    // Each level of anchors refers ten times to the one before: 10^9 nodes if expanded.
    let mut laughs = String::from(
        "auth:\n  api_keys:\n    keys:\n      - id: a\n        key: k\n        claims:\n          a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("          a{i}: &a{i} [{refs}]\n"));
    }
    laughs.push_str("routes: []\n");
    let cases = [
        laughs,
        format!("routes: {}{}", "[".repeat(200_000), "]".repeat(200_000)),
        format!("routes: {}1{}", "{a: ".repeat(200_000), "}".repeat(200_000)),
        (0..2000)
            .map(|i| format!("{}- \n", " ".repeat(i)))
            .collect(),
        format!("routes: [{}]", vec!["*a"; 100_000].join(", ")),
        format!("routes: &a [{}]", vec!["x"; 20_000].join(", ")),
        "k: v\n".repeat(20_000),
    ];
    for text in cases {
        let started = std::time::Instant::now();
        let problems = parse(&text).expect_err("hostile");
        assert_reported(&text, &problems);
        let took = started.elapsed();
        assert!(took.as_secs() < 10, "{took:?}: {problems}");
    }
}

#[test]
fn an_empty_key_is_named_in_the_path() {
    for (text, path) in [
        ("\"\": 1\n", "config"),
        ("routes:\n  - { \"\": 1 }\n", "routes[0].\"\""),
    ] {
        let Err(problems) = crate::parse(text) else {
            panic!("accepted: {text}")
        };
        let shown = problems.to_string();
        assert!(
            shown.starts_with(&format!("error: {path} (line")),
            "{shown}"
        );
    }
}
