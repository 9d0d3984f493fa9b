//! The Docker quickstart (`docker/`, `docs/quickstart-docker.md`), checked without Docker: no
//! daemon runs where these tests run, so the stack itself is never started here. What is
//! checked instead: the files parse and refer to one another consistently (compose services,
//! mounts, ports, the issuer, the audience, the scrape target, the dashboard's datasource), the
//! realm has what the guide relies on, the gateway config validates, the Dockerfile's build
//! context is enough for a `--locked` build of `tollgate`, the dashboard only queries metrics
//! that exist, and the gateway config, run against loopback stand-ins for the compose services
//! (tokens shaped like Keycloak's, a real Redis), answers the statuses the guide promises.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tollgate_tests::{
    binary, free_port, temp_dir, validate, wait_until, Gateway, Process, Redis, Response, Upstream,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_file(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("not a string: {s}"))
                .to_owned()
        })
        .collect()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_object(), "docker-compose.yml has no service {name}");
    s
}

/// The `HOST:CONTAINER` volume of a service whose container side is `container` (`:ro` aside);
/// its host side, relative to `docker/`, must exist.
fn mount(svc: &Value, container: &str) -> String {
    let volumes = strings(&svc["volumes"]);
    let found = volumes
        .iter()
        .find_map(|v| {
            let v = v.strip_suffix(":ro").unwrap_or(v);
            let (host, inside) = v.split_once(':')?;
            (inside == container).then(|| host.to_owned())
        })
        .unwrap_or_else(|| panic!("nothing mounted at {container}: {volumes:?}"));
    let host = found.strip_prefix("./").unwrap_or(&found).to_owned();
    assert!(
        repo().join("docker").join(&host).exists(),
        "docker/{host} (mounted at {container}) is missing"
    );
    host
}

/// The published host port of a container port, from `127.0.0.1:HOST:CONTAINER`; every port
/// of the service must be published on 127.0.0.1 only.
fn published(svc: &Value, container_port: u16) -> u16 {
    let ports = strings(&svc["ports"]);
    let mut found = None;
    for p in &ports {
        let parts: Vec<&str> = p.split(':').collect();
        assert!(
            parts.len() == 3 && parts[0] == "127.0.0.1",
            "{p}: publish on 127.0.0.1 only (127.0.0.1:HOST:CONTAINER)"
        );
        if parts[2] == container_port.to_string() {
            found = Some(parts[1].parse().unwrap());
        }
    }
    found.unwrap_or_else(|| panic!("container port {container_port} is not published: {ports:?}"))
}

fn env_var(svc: &Value, name: &str) -> String {
    svc["environment"][name]
        .as_str()
        .unwrap_or_else(|| panic!("environment {name} is not set: {}", svc["environment"]))
        .to_owned()
}

fn dependencies(svc: &Value) -> BTreeSet<String> {
    match &svc["depends_on"] {
        Value::Array(_) => strings(&svc["depends_on"]).into_iter().collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        _ => BTreeSet::new(),
    }
}

/// The text of `docker/tollgate.yaml` with each `(from, to)` replaced; every `from` must occur.
fn localized(replacements: &[(&str, &str)]) -> String {
    let mut text = read("docker/tollgate.yaml");
    for (from, to) in replacements {
        assert!(text.contains(from), "docker/tollgate.yaml has no {from:?}");
        text = text.replace(from, to);
    }
    text
}

/// Drops these top-level sections (the key's line and every indented line after it).
fn without_sections(text: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let top_level = !line.is_empty() && !line.starts_with([' ', '#']);
        if top_level {
            skipping = names
                .iter()
                .any(|n| line.strip_prefix(n).is_some_and(|r| r.starts_with(':')));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn compose_runs_the_six_services_wired_to_each_other() {
    let compose = yaml("docker/docker-compose.yml");
    let names: BTreeSet<String> = compose["services"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for name in [
        "keycloak",
        "redis",
        "upstream",
        "tollgate",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(name), "no service {name}: {names:?}");
    }
    let config = yaml("docker/tollgate.yaml");

    // Keycloak imports the realm at start.
    let kc = service(&compose, "keycloak");
    assert!(kc["image"]
        .as_str()
        .unwrap()
        .starts_with("quay.io/keycloak/keycloak:"));
    let command = strings(&kc["command"]);
    assert!(command.contains(&"start-dev".to_owned()), "{command:?}");
    assert!(
        command.contains(&"--import-realm".to_owned()),
        "{command:?}"
    );
    assert_eq!(
        mount(kc, "/opt/keycloak/data/import/tollgate-realm.json"),
        "keycloak/tollgate-realm.json"
    );

    assert!(service(&compose, "redis")["image"]
        .as_str()
        .unwrap()
        .starts_with("redis:7"));

    // The upstream is our echo server, built from the same Dockerfile, on the port the
    // gateway's upstream targets.
    let up = service(&compose, "upstream");
    assert_eq!(up["build"]["context"], "..");
    assert_eq!(up["build"]["dockerfile"], "docker/Dockerfile");
    assert_eq!(up["build"]["target"], "echo");
    assert_eq!(strings(&up["command"])[0], "0.0.0.0:8080");
    assert_eq!(
        strings(&config["upstreams"]["echo"]["targets"]),
        ["upstream:8080"]
    );

    // The gateway: the runtime stage, this config mounted where its command reads it.
    let tg = service(&compose, "tollgate");
    assert_eq!(tg["build"]["context"], "..");
    assert_eq!(tg["build"]["dockerfile"], "docker/Dockerfile");
    assert_eq!(tg["build"]["target"], "runtime");
    assert_eq!(
        strings(&tg["command"]),
        ["run", "-c", "/etc/tollgate/tollgate.yaml"]
    );
    assert_eq!(mount(tg, "/etc/tollgate/tollgate.yaml"), "tollgate.yaml");
    assert_eq!(config["listen"]["http"], "0.0.0.0:8080");
    assert_eq!(config["admin"]["listen"], "0.0.0.0:9901");
    assert_eq!(published(tg, 8080), 8080);
    assert_eq!(published(tg, 9901), 9901);
    let deps = dependencies(tg);
    for d in ["keycloak", "redis", "upstream"] {
        assert!(
            deps.contains(d),
            "tollgate does not depend on {d}: {deps:?}"
        );
    }
    assert_eq!(config["redis"]["url"], "redis://redis:6379");

    // Prometheus scrapes the admin listener inside the network.
    let prom = service(&compose, "prometheus");
    assert_eq!(
        mount(prom, "/etc/prometheus/prometheus.yml"),
        "prometheus.yml"
    );
    let scrape = yaml("docker/prometheus.yml");
    let job = scrape["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == "tollgate")
        .expect("a tollgate scrape job");
    assert_eq!(job["metrics_path"], "/metrics");
    assert_eq!(
        strings(&job["static_configs"][0]["targets"]),
        ["tollgate:9901"]
    );
    published(prom, 9090);

    // Grafana: the datasource points at Prometheus under the uid the dashboard uses, and the
    // dashboard file is mounted where the provider looks.
    let graf = service(&compose, "grafana");
    let ds_dir = mount(graf, "/etc/grafana/provisioning/datasources");
    let dash_dir = mount(graf, "/etc/grafana/provisioning/dashboards");
    let ds = yaml(&format!("docker/{ds_dir}/prometheus.yml"));
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    assert_eq!(ds["datasources"][0]["url"], "http://prometheus:9090");
    let provider = yaml(&format!("docker/{dash_dir}/tollgate.yml"));
    let path = provider["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert_eq!(
        mount(graf, &format!("{path}/tollgate-dashboard.json")),
        "grafana/tollgate-dashboard.json"
    );
    let dashboard = json_file("docker/grafana/tollgate-dashboard.json");
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], ds["datasources"][0]["uid"],
            "{}",
            panel["title"]
        );
    }
    published(graf, 3000);
}

#[test]
fn tokens_and_the_gateway_agree_on_the_keycloak_issuer() {
    let compose = yaml("docker/docker-compose.yml");
    let kc = service(&compose, "keycloak");
    let realm = json_file("docker/keycloak/tollgate-realm.json");
    let realm_name = realm["realm"].as_str().unwrap();
    let config = yaml("docker/tollgate.yaml");
    let provider = &config["auth"]["providers"][0];

    // Keycloak's fixed hostname is the address the host reaches it at ...
    let hostname = env_var(kc, "KC_HOSTNAME");
    assert_eq!(
        hostname,
        format!("http://localhost:{}", published(kc, 8080))
    );
    // ... so every token's `iss` is this, and that is the issuer Tollgate accepts.
    assert_eq!(
        provider["issuer"].as_str().unwrap(),
        format!("{hostname}/realms/{realm_name}")
    );
    // The keys come from inside the network, explicitly (discovery would send Tollgate to
    // localhost:8081, which inside its container is itself).
    assert_eq!(
        provider["jwks_uri"].as_str().unwrap(),
        format!("http://keycloak:8080/realms/{realm_name}/protocol/openid-connect/certs")
    );
    assert_eq!(provider["claims"]["roles"], "realm_access.roles");

    // The audience the realm's mapper adds is the one Tollgate requires, on both clients.
    let audiences = strings(&provider["audiences"]);
    for client in realm["clients"].as_array().unwrap() {
        let mapper = client["protocolMappers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["protocolMapper"] == "oidc-audience-mapper")
            .unwrap_or_else(|| panic!("{}: no audience mapper", client["clientId"]));
        let audience = mapper["config"]["included.custom.audience"]
            .as_str()
            .unwrap();
        assert_eq!(audiences, [audience]);
        assert_eq!(mapper["config"]["access.token.claim"], "true");
    }
}

#[test]
fn the_realm_has_the_roles_clients_mappers_and_users_the_guide_uses() {
    let realm = json_file("docker/keycloak/tollgate-realm.json");
    assert_eq!(realm["realm"], "tollgate");
    assert_eq!(realm["enabled"], true);
    let roles: BTreeSet<String> = realm["roles"]["realm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        roles,
        BTreeSet::from(["admin".to_owned(), "user".to_owned()])
    );
    // With `clientScopes` in the file, Keycloak would create none of its default scopes, and
    // tokens would lose `realm_access` (scope `roles`) and `sub` (scope `basic`): the mappers
    // sit on the clients instead.
    assert!(realm.get("clientScopes").is_none());

    let client = |id: &str| {
        realm["clients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["clientId"] == id)
            .unwrap_or_else(|| panic!("no client {id}"))
            .clone()
    };
    let cli = client("tollgate-cli");
    assert_eq!(cli["publicClient"], true);
    assert_eq!(cli["directAccessGrantsEnabled"], true);
    assert_eq!(cli["serviceAccountsEnabled"], false);
    let bot = client("ci-bot");
    assert_eq!(bot["publicClient"], false);
    assert_eq!(bot["serviceAccountsEnabled"], true);
    assert_eq!(bot["standardFlowEnabled"], false);
    assert_eq!(bot["directAccessGrantsEnabled"], false);
    assert_eq!(bot["clientAuthenticatorType"], "client-secret");
    let secret = bot["secret"].as_str().unwrap().to_owned();

    for c in [&cli, &bot] {
        let plan = c["protocolMappers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["protocolMapper"] == "oidc-usermodel-attribute-mapper")
            .unwrap_or_else(|| panic!("{}: no plan mapper", c["clientId"]));
        assert_eq!(plan["config"]["user.attribute"], "plan");
        assert_eq!(plan["config"]["claim.name"], "plan");
        assert_eq!(plan["config"]["access.token.claim"], "true");
        assert_eq!(plan["config"]["jsonType.label"], "String");
        assert_eq!(plan["config"]["multivalued"], "false");
    }

    let user = |name: &str| {
        realm["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == name)
            .unwrap_or_else(|| panic!("no user {name}"))
            .clone()
    };
    let mut passwords = BTreeMap::new();
    for (name, role, plan) in [("alice", "admin", "pro"), ("bob", "user", "free")] {
        let u = user(name);
        assert_eq!(u["enabled"], true);
        assert_eq!(strings(&u["realmRoles"]), [role], "{name}");
        assert_eq!(strings(&u["attributes"]["plan"]), [plan], "{name}");
        // Keycloak's default user profile requires these for a login without a
        // "complete your profile" step, which a password grant cannot do.
        for field in ["email", "firstName", "lastName"] {
            assert!(
                u[field].as_str().is_some_and(|v| !v.is_empty()),
                "{name}: {field}"
            );
        }
        assert_eq!(u["emailVerified"], true);
        assert_eq!(u["requiredActions"], json!([]));
        let cred = &u["credentials"][0];
        assert_eq!(cred["type"], "password");
        assert_eq!(cred["temporary"], false);
        passwords.insert(name, cred["value"].as_str().unwrap().to_owned());
    }
    let sa = user("service-account-ci-bot");
    assert_eq!(sa["serviceAccountClientId"], "ci-bot");
    assert_eq!(strings(&sa["realmRoles"]), ["user"]);
    assert_eq!(strings(&sa["attributes"]["plan"]), ["pro"]);

    // `plan` is declared in the user profile (Keycloak 24+ drops undeclared attributes from
    // every context unless unmanaged attributes are enabled), and only admins may edit it.
    let profile = &realm["components"]["org.keycloak.userprofile.UserProfileProvider"][0];
    assert_eq!(profile["providerId"], "declarative-user-profile");
    let upconfig: Value = serde_json::from_str(
        profile["config"]["kc.user.profile.config"][0]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let plan = upconfig["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "plan")
        .expect("plan is declared in the user profile");
    assert_eq!(strings(&plan["permissions"]["edit"]), ["admin"]);
    let names: Vec<&str> = upconfig["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for builtin in ["username", "email", "firstName", "lastName"] {
        assert!(names.contains(&builtin), "{names:?}");
    }

    // The guide's commands use these credentials and this token endpoint.
    let guide = read("docs/quickstart-docker.md");
    assert!(guide.contains(&format!("ci-bot:{secret}")));
    for (name, password) in &passwords {
        assert!(
            guide.contains(&format!("{name} {password}"))
                || guide.contains(&format!("password={password}")),
            "the guide does not show {name}'s password"
        );
    }
    assert!(guide.contains("http://localhost:8081/realms/tollgate/protocol/openid-connect/token"));
}

/// `validate` resolves upstream host names, and `upstream` is a compose service, unknown
/// outside the compose network: the file is validated with the service names replaced by
/// 127.0.0.1, and unmodified it may fail only on that resolution.
#[test]
fn the_docker_config_validates_with_the_compose_host_names_on_loopback() {
    let (code, out) = validate(&localized(&[
        ("upstream:8080", "127.0.0.1:8080"),
        ("keycloak:8080", "127.0.0.1:8080"),
        ("redis:6379", "127.0.0.1:6379"),
    ]));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(3 routes, 1 upstreams)"), "{out}");

    let (code, out) = validate(&read("docker/tollgate.yaml"));
    if code != 0 {
        for line in out.lines() {
            assert!(
                line.starts_with("error: upstreams.echo.targets (line ")
                    && line.contains("cannot resolve targets"),
                "docker/tollgate.yaml fails for another reason than DNS: {out}"
            );
        }
    }
}

/// One Dockerfile instruction: the stage it belongs to, its keyword, its arguments.
struct Instruction {
    stage: String,
    keyword: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = read("docker/Dockerfile");
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stage = String::new();
    let mut out = Vec::new();
    for line in joined {
        let (keyword, args) = line.split_once(' ').unwrap_or((&line, ""));
        let keyword = keyword.to_uppercase();
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            stage = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                _ => words[0].to_owned(),
            };
        }
        out.push(Instruction {
            stage: stage.clone(),
            keyword,
            args: args.trim().to_owned(),
        });
    }
    out
}

fn stage_image(instructions: &[Instruction], stage: &str) -> String {
    instructions
        .iter()
        .find(|i| i.keyword == "FROM" && i.stage == stage)
        .unwrap_or_else(|| panic!("no stage {stage}"))
        .args
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// The `(sources, destination)` of the COPY instructions of a stage without `--from`.
fn copies(instructions: &[Instruction], stage: &str) -> Vec<(Vec<String>, String)> {
    instructions
        .iter()
        .filter(|i| i.stage == stage && i.keyword == "COPY" && !i.args.contains("--from"))
        .map(|i| {
            let mut words: Vec<String> = i
                .args
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .map(str::to_owned)
                .collect();
            let dest = words.pop().unwrap();
            (words, dest)
        })
        .collect()
}

fn exec_form(instructions: &[Instruction], stage: &str, keyword: &str) -> Vec<String> {
    let found: Vec<&Instruction> = instructions
        .iter()
        .filter(|i| i.stage == stage && i.keyword == keyword)
        .collect();
    assert_eq!(found.len(), 1, "{stage}: one {keyword}");
    serde_json::from_str::<Vec<String>>(&found[0].args)
        .unwrap_or_else(|e| panic!("{keyword} {} is not exec form: {e}", found[0].args))
}

/// The workspace members of the root Cargo.toml, with `dir/*` expanded to its packages.
fn workspace_members() -> Vec<String> {
    let manifest = read("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("[workspace] members");
    let list = line.split_once('[').unwrap().1.split_once(']').unwrap().0;
    let mut members = Vec::new();
    for m in list.split(',').map(|m| m.trim().trim_matches('"')) {
        if m.is_empty() {
            continue;
        }
        match m.strip_suffix("/*") {
            Some(dir) => {
                for e in std::fs::read_dir(repo().join(dir)).unwrap() {
                    let e = e.unwrap();
                    if e.path().join("Cargo.toml").exists() {
                        members.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
                    }
                }
            }
            None => members.push(m.to_owned()),
        }
    }
    members.sort();
    members
}

/// The patterns of the repository's `.dockerignore`.
fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/').to_owned())
        .collect()
}

/// Whether a pattern excludes `path` (relative to the context, with `/`), as `docker build`
/// reads them: a pattern matches whole components, `*` within one and `**` across any number;
/// a matched directory excludes everything under it.
fn ignored(patterns: &[String], path: &str) -> bool {
    fn glob(pattern: &str, name: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern == name,
            Some((head, tail)) => {
                name.starts_with(head)
                    && (0..=name.len() - head.len()).any(|i| glob(tail, &name[head.len() + i..]))
            }
        }
    }
    fn matches(pattern: &[&str], path: &[&str]) -> bool {
        match (pattern.first(), path.first()) {
            (None, _) => true, // a matched directory excludes what is under it
            (Some(&"**"), _) => (0..=path.len()).any(|i| matches(&pattern[1..], &path[i..])),
            (Some(_), None) => false,
            (Some(p), Some(c)) => glob(p, c) && matches(&pattern[1..], &path[1..]),
        }
    }
    let path: Vec<&str> = path.split('/').collect();
    patterns
        .iter()
        .any(|p| matches(&p.split('/').collect::<Vec<_>>(), &path))
}

/// Copies `rel` (a path relative to the repository) to the same path under `dest`, leaving
/// out what `.dockerignore` excludes, as `docker build` sends the context.
fn copy_context(patterns: &[String], rel: &str, dest: &Path) {
    if ignored(patterns, rel) {
        return;
    }
    let from = repo().join(rel);
    if from.is_dir() {
        std::fs::create_dir_all(dest.join(rel)).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let name = e.unwrap().file_name();
            copy_context(patterns, &format!("{rel}/{}", name.to_string_lossy()), dest);
        }
    } else {
        std::fs::copy(&from, dest.join(rel)).unwrap();
    }
}

#[test]
fn the_dockerfile_builds_tollgate_from_every_workspace_member() {
    let df = dockerfile();
    assert!(stage_image(&df, "builder").starts_with("rust:"));
    assert!(stage_image(&df, "builder").ends_with("-bookworm"));
    assert!(df.iter().any(|i| i.stage == "builder"
        && i.keyword == "RUN"
        && i.args.contains("apt-get install")
        && i.args.contains("cmake")));

    // What the builder copies covers the manifest, the lock file and every member; each lands
    // at the same path under WORKDIR.
    let patterns = dockerignore();
    let mut copied = Vec::new();
    for (sources, dest) in copies(&df, "builder") {
        for s in sources {
            let s = s.trim_end_matches('/').to_owned();
            assert!(repo().join(&s).exists(), "COPY {s}: no such path");
            assert!(
                !ignored(&patterns, &s),
                "COPY {s}: excluded by .dockerignore"
            );
            let dest = dest.trim_start_matches("./").trim_end_matches('/');
            assert!(
                dest.is_empty() || dest == "." || dest == s,
                "COPY {s} {dest}"
            );
            copied.push(s);
        }
    }
    let covered = |path: &str| {
        copied
            .iter()
            .any(|c| path == c || path.starts_with(&format!("{c}/")))
    };
    assert!(covered("Cargo.toml") && covered("Cargo.lock"), "{copied:?}");
    let members = workspace_members();
    assert!(members.contains(&"gateway".to_owned()), "{members:?}");
    assert!(members.contains(&"tests".to_owned()), "{members:?}");
    for m in &members {
        assert!(covered(m), "the builder does not copy workspace member {m}");
        assert!(
            !ignored(&patterns, &format!("{m}/Cargo.toml")),
            ".dockerignore excludes {m}/Cargo.toml"
        );
    }
    for p in ["target", ".git", "tests/idp/node_modules", "bench/results"] {
        assert!(ignored(&patterns, p), ".dockerignore should exclude {p}");
    }

    let build = df
        .iter()
        .find(|i| i.stage == "builder" && i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("a cargo build in the builder");
    for flag in ["--release", "--locked", "-p tollgate ", "-p tollgate-echo"] {
        assert!(
            build.args.contains(flag),
            "cargo build without {flag}: {}",
            build.args
        );
    }
    assert!(build.args.contains("/usr/local/bin"));

    // The runtime stage is the last one (the default target), as compose's `target` says.
    let last = &df.last().unwrap().stage;
    assert_eq!(last, "runtime");
    assert_eq!(stage_image(&df, "runtime"), "debian:bookworm-slim");
    assert_eq!(stage_image(&df, "echo"), "debian:bookworm-slim");
    let runtime = |keyword: &str| -> Vec<String> {
        df.iter()
            .filter(|i| i.stage == "runtime" && i.keyword == keyword)
            .map(|i| i.args.clone())
            .collect()
    };
    assert_eq!(runtime("USER"), ["10001:10001"]);
    assert!(runtime("RUN")[0].contains("--uid 10001"));
    assert!(runtime("RUN")[0].contains("ca-certificates"));
    assert_eq!(runtime("EXPOSE"), ["8080 9901"]);
    assert!(
        runtime("COPY").contains(&"docker/tollgate.yaml /etc/tollgate/tollgate.yaml".to_owned())
    );
    let health = runtime("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].contains("http://127.0.0.1:9901/healthz"),
        "{health:?}"
    );
    // The health check's curl is installed in the slim image.
    assert!(runtime("RUN")[0].contains("curl"));
    assert_eq!(exec_form(&df, "runtime", "ENTRYPOINT"), ["tollgate"]);
    let cmd = exec_form(&df, "runtime", "CMD");
    assert_eq!(cmd, ["run", "-c", "/etc/tollgate/tollgate.yaml"]);

    // The CLI takes those arguments.
    let help = Command::new(binary())
        .args(["help", "run"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("-c, --config"), "{help}");

    // The echo stage runs `tollgate-echo ADDR NAME` on the port compose's gateway targets.
    assert_eq!(exec_form(&df, "echo", "ENTRYPOINT"), ["tollgate-echo"]);
    let echo = exec_form(&df, "echo", "CMD");
    assert!(echo[0].parse::<std::net::SocketAddr>().is_ok(), "{echo:?}");
    assert!(echo[0].ends_with(":8080"));
}

/// `cargo build --release --locked -p tollgate` in the image needs a workspace that Cargo can
/// load from what the Dockerfile copies, and a Cargo.lock in step with the manifests: both are
/// checked by loading a copy of exactly that build context (`cargo metadata`, offline).
#[test]
fn the_build_context_loads_as_a_locked_workspace() {
    let df = dockerfile();
    let patterns = dockerignore();
    let context = temp_dir();
    for (sources, _) in copies(&df, "builder") {
        for s in sources {
            copy_context(&patterns, s.trim_end_matches('/'), &context);
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .current_dir(&context)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&context);
    assert!(
        out.status.success(),
        "cargo metadata --locked in the build context: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|id| {
            let id = id.as_str()?;
            meta["packages"]
                .as_array()?
                .iter()
                .find(|p| p["id"] == id)?["name"]
                .as_str()
        })
        .collect();
    assert!(packages.contains("tollgate"), "{packages:?}");
    assert!(packages.contains("tollgate-echo"), "{packages:?}");
}

/// Every `"tollgate_..."` metric name in crates/admin/src/metrics.rs, with the label names of
/// its definition.
fn defined_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let src = read("crates/admin/src/metrics.rs");
    let starts: Vec<usize> = src.match_indices("\"tollgate_").map(|(i, _)| i).collect();
    let mut out = BTreeMap::new();
    for (n, &start) in starts.iter().enumerate() {
        let name_end = src[start + 1..].find('"').unwrap() + start + 1;
        let name = src[start + 1..name_end].to_owned();
        let region = &src[name_end..starts.get(n + 1).copied().unwrap_or(src.len())];
        let mut labels = BTreeSet::new();
        // The label list, `&["a", "b"]`, follows the name within its definition.
        if let Some(open) = region.find("&[") {
            if region[..open].contains(".expect(") {
                // the definition ended before: no labels
            } else {
                let list = &region[open + 2..open + region[open..].find(']').unwrap()];
                for l in list.split(',') {
                    let l = l.trim().trim_matches('"');
                    if !l.is_empty() {
                        labels.insert(l.to_owned());
                    }
                }
            }
        }
        out.entry(name).or_insert(labels);
    }
    out
}

#[test]
fn the_dashboard_queries_only_metrics_and_labels_that_exist() {
    let metrics = defined_metrics();
    for core in [
        "tollgate_requests_total",
        "tollgate_request_duration_seconds",
        "tollgate_auth_total",
        "tollgate_ratelimit_total",
    ] {
        assert!(
            metrics.contains_key(core),
            "{core} not found in metrics.rs: {metrics:?}"
        );
    }
    let dashboard = json_file("docker/grafana/tollgate-dashboard.json");
    assert_eq!(dashboard["uid"], "tollgate");
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let mut in_expr = Vec::new();
            for (i, _) in expr.match_indices("tollgate_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| metrics.contains_key(*b)))
                    .unwrap_or(&name)
                    .to_owned();
                assert!(
                    metrics.contains_key(&base),
                    "{title}: {name} is not a metric of crates/admin/src/metrics.rs"
                );
                in_expr.push(base);
            }
            assert!(!in_expr.is_empty(), "{title}: {expr}");
            // Labels named in `by (...)` and in `{label="..."}` matchers.
            let mut labels = Vec::new();
            for (i, _) in expr.match_indices("by (") {
                let list = &expr[i + 4..i + expr[i..].find(')').unwrap()];
                labels.extend(list.split(',').map(|l| l.trim().to_owned()));
            }
            for (i, _) in expr.match_indices('{') {
                let inner = &expr[i + 1..i + expr[i..].find('}').unwrap()];
                labels.extend(
                    inner
                        .split(',')
                        .filter_map(|m| m.split_once('=').map(|(l, _)| l.trim().to_owned())),
                );
            }
            for l in labels.iter().filter(|l| *l != "le") {
                assert!(
                    in_expr.iter().any(|m| metrics[m].contains(l)),
                    "{title}: label {l} is not a label of {in_expr:?}"
                );
            }
            queried.extend(in_expr);
        }
    }
    for wanted in [
        "tollgate_requests_total",
        "tollgate_request_duration_seconds",
        "tollgate_auth_total",
        "tollgate_jwks_refresh_total",
        "tollgate_jwks_keys",
        "tollgate_ratelimit_total",
        "tollgate_ratelimit_redis_errors_total",
        "tollgate_requests_in_flight",
        "tollgate_config_reloads_total",
        "tollgate_access_log_dropped_total",
    ] {
        assert!(
            queried.contains(wanted),
            "the dashboard has no panel on {wanted}"
        );
    }
}

/// An ES256 key and its JWKS, as Keycloak's certs endpoint would serve one (Keycloak signs
/// with RS256 by default; the algorithm is not what this test is about).
struct Signer {
    key: rcgen::KeyPair,
}

impl Signer {
    const KID: &'static str = "quickstart-test";

    fn new() -> Signer {
        Signer {
            key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        }
    }

    fn jwks(&self) -> Value {
        let point = self.key.public_key_raw();
        json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": Self::KID, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]) }] })
    }

    /// An access token shaped like the quickstart realm's: its issuer, the audience mapper's
    /// `tollgate-api` beside Keycloak's `account`, realm roles, the plan mapper's claim.
    fn token(&self, sub: &str, client: &str, roles: &[&str], plan: &str, aud: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(Self::KID.to_owned());
        let claims = json!({
            "iss": "http://localhost:8081/realms/tollgate",
            "sub": sub, "azp": client, "typ": "Bearer",
            "aud": [aud, "account"],
            "iat": now, "exp": now + 600,
            "realm_access": { "roles": roles },
            "scope": "profile email",
            "plan": plan,
        });
        encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

fn call(gw: &Gateway, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    gw.request("GET", path, &headers)
}

/// docker/tollgate.yaml as the gateway runs it in compose, with loopback stand-ins for the
/// other services: the echo upstream, a real Redis, and Keycloak's certs endpoint served as a
/// file at the same path. The statuses and headers are the ones docs/quickstart-docker.md
/// shows.
#[test]
fn the_docker_config_answers_as_the_quickstart_says() {
    let signer = Signer::new();
    let www = temp_dir();
    let certs = www.join("realms/tollgate/protocol/openid-connect");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("certs"), signer.jwks().to_string()).unwrap();
    let kc_port = free_port();
    let _keycloak = Process(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &kc_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs"),
    );
    wait_until(
        Duration::from_secs(10),
        "the stand-in certs endpoint",
        || std::net::TcpStream::connect(("127.0.0.1", kc_port)).is_ok(),
    );
    let redis = Redis::start();
    let up = Upstream::start("upstream");

    let config = localized(&[
        ("upstream:8080", &up.addr.to_string()),
        ("keycloak:8080", &format!("127.0.0.1:{kc_port}")),
        ("redis://redis:6379", &redis.url()),
    ]);
    // The harness supplies its own listeners on free ports.
    let gw = Gateway::start(&without_sections(&config, &["listen", "admin", "server"]));
    wait_until(
        Duration::from_secs(20),
        "the keycloak provider's keys",
        || gw.admin_get("/readyz").status == 200,
    );

    let alice = signer.token(
        "alice-id",
        "tollgate-cli",
        &["admin"],
        "pro",
        "tollgate-api",
    );
    let bob = signer.token("bob-id", "tollgate-cli", &["user"], "free", "tollgate-api");
    let ci = signer.token("ci-bot-id", "ci-bot", &["user"], "pro", "tollgate-api");
    let other_api = signer.token("bob-id", "tollgate-cli", &["user"], "free", "another-api");

    // Public: no token needed, no identity forwarded.
    let r = call(&gw, "/api/public/hello", None);
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"]["x-user-id"].is_null());
    // Anything else under /api needs a token of the realm, for this API.
    assert_eq!(call(&gw, "/api/orders/1", None).status, 401);
    assert_eq!(call(&gw, "/api/orders/1", Some(&other_api)).status, 401);

    // bob: role user, plan free.
    let r = call(&gw, "/api/orders/1", Some(&bob));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert_eq!(r.header("ratelimit-remaining"), Some("4"));
    assert_eq!(r.header("ratelimit-policy"), Some("5;w=60;burst=5"));
    let seen = &r.json()["headers"];
    assert_eq!(seen["x-user-id"], "bob-id");
    assert_eq!(seen["x-user-roles"], "user");
    assert_eq!(seen["x-plan"], "free");
    assert_eq!(seen["x-tier"], "free");
    assert_eq!(seen["x-client-id"], "tollgate-cli");
    assert!(seen["authorization"].is_null());
    let r = call(&gw, "/api/admin/stats", Some(&bob));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    assert!(r.header("ratelimit-limit").is_none());

    // alice: role admin, plan pro.
    let r = call(&gw, "/api/admin/stats", Some(&alice));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("100"));
    assert_eq!(r.json()["headers"]["x-tier"], "pro");
    assert_eq!(call(&gw, "/api/orders/1", Some(&alice)).status, 200);

    // ci-bot's service account: role user, plan pro.
    let r = call(&gw, "/api/orders/1", Some(&ci));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("100"));
    let seen = &r.json()["headers"];
    assert_eq!(
        (&seen["x-client-id"], &seen["x-tier"]),
        (&json!("ci-bot"), &json!("pro"))
    );
    assert_eq!(call(&gw, "/api/admin/stats", Some(&ci)).status, 403);

    // bob's four other requests of the minute pass; the sixth is refused.
    for remaining in ["3", "2", "1", "0"] {
        let r = call(&gw, "/api/orders/1", Some(&bob));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("ratelimit-remaining"), Some(remaining));
    }
    let r = call(&gw, "/api/orders/1", Some(&bob));
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"], "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "{retry}");

    // The counts are in Redis (backend: redis), one key per caller and tier.
    let keys = redis.keys("tollgate:rl:per-plan:*");
    assert!(
        keys.contains(&"tollgate:rl:per-plan:free:{sub:keycloak:bob-id}".to_owned()),
        "{keys:?}"
    );
    let metrics = String::from_utf8(gw.admin_get("/metrics").body).unwrap();
    assert!(
        metrics.contains(
            r#"tollgate_ratelimit_total{policy="per-plan",result="limited",tier="free"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("tollgate_ratelimit_redis_errors_total 0"),
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(&www);
}
