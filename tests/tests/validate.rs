//! `tollgate validate` and `tollgate run` refusing configs: messages name the YAML path and line.

use tollgate_tests::{validate, Gateway};

const UPSTREAMS: &str = "upstreams:\n  users:\n    targets: [\"127.0.0.1:9001\"]\n";

#[test]
fn a_valid_config_prints_ok_and_exits_0() {
    let (code, out) = validate(&format!("{UPSTREAMS}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: users\n    auth: none\n"));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn every_example_config_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let (code, out) = validate(&std::fs::read_to_string(&path).unwrap());
            assert_eq!(code, 0, "{}: {out}", path.display());
            seen += 1;
        }
    }
    assert!(seen > 0, "no example configs in {}", dir.display());
}

#[test]
fn errors_name_yaml_path_and_line_and_exit_1() {
    let cases: &[(&str, &str)] = &[
        (
            "routes:\n  - name: a\n    match: { path: /a }\n    upstream: nope\n    auth: none\n",
            r#"error: routes[0].upstream (line 7): unknown upstream "nope""#,
        ),
        (
            "routes:\n  - name: a\n    match: { path: /a }\n    upstream: users\n    auth: none\n    colour: red\n",
            "error: routes[0].colour (line 9): unknown field",
        ),
        (
            "routes:\n  - name: a\n    match: { path: /a }\n    upstream: users\n",
            "error: routes[0].auth (line 5): route needs authentication",
        ),
        (
            "routes:\n  - name: a\n    match: { path: \"/a/{x}\" }\n    upstream: users\n    auth: none\n  - name: b\n    match: { path: \"/a/{y}\", methods: [GET] }\n    upstream: users\n    auth: none\n",
            "error: routes[1].match (line 10): ambiguous",
        ),
        (
            "routes:\n  - name: a\n    match: { path: a/b }\n    upstream: users\n    auth: none\n",
            "error: routes[0].match.path (line 6): path pattern must start with /",
        ),
        (
            "routes:\n  - name: a\n    match: { path: /a }\n    upstream: users\n    auth: none\n    timeouts: { read: soon }\n",
            "error: routes[0].timeouts.read (line 9): expected a duration",
        ),
        (
            "routes:\n  - name: a\n    match: { path: /a }\n    upstream: users\n    auth: none\n    allow: { roles: [admin] }\n",
            "error: routes[0].allow (line 9): allow rules need an authenticated caller",
        ),
        (
            "routes:\n  - name: a\n    match: { path: /a, host: \"{tenant}.example.com\" }\n    upstream: users\n    auth: none\n",
            "error: routes[0].auth (line 8): a route that captures {tenant} admits only that tenant's callers",
        ),
    ];
    for (body, want) in cases {
        let (code, out) = validate(&format!("{UPSTREAMS}{body}"));
        assert_eq!(code, 1, "{body}\n{out}");
        assert!(
            out.lines().any(|l| l.starts_with(want)),
            "want {want:?}\ngot {out}"
        );
    }
}

#[test]
fn unresolvable_and_malformed_targets_are_errors() {
    let (code, out) = validate(
        "upstreams:\n  u:\n    targets: [\"no-such-host.invalid:80\", \"127.0.0.1\"]\nroutes: []\n",
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("error: upstreams.u.targets[1] (line 3): expected host:port"),
        "{out}"
    );
}

#[test]
fn unreadable_file_is_an_error() {
    let out = std::process::Command::new(tollgate_tests::binary())
        .args(["validate", "-c", "/nonexistent/tollgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read config file"));
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_messages() {
    let err = match Gateway::try_start(&format!("{UPSTREAMS}routes:\n  - name: a\n    match: {{ path: /a }}\n    upstream: nope\n    auth: none\n")) {
        Ok(_) => panic!("tollgate ran an invalid config"),
        Err(stderr) => stderr,
    };
    assert!(
        err.contains(r#"routes[0].upstream (line "#) && err.contains(r#"unknown upstream "nope""#),
        "{err}"
    );
}
