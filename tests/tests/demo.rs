//! `tollgate demo`: one command, no files. The test runs the binary, then every `curl` line it
//! printed, with the tokens it printed, and checks each answer against the line's comment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use tollgate_tests::{binary, free_port, wait_until, Process};

/// The printed guide: `export` lines and (comment, command) pairs, up to "Press Ctrl-C".
struct Guide {
    exports: Vec<String>,
    steps: Vec<(String, String)>,
}

fn start() -> (Process, Guide, u16) {
    let (http, admin) = (free_port(), free_port());
    let mut child = Command::new(binary())
        .args([
            "demo",
            "--port",
            &http.to_string(),
            "--admin-port",
            &admin.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let process = Process(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut guide = Guide {
            exports: Vec::new(),
            steps: Vec::new(),
        };
        let mut comment = String::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.starts_with("Press Ctrl-C") {
                let _ = tx.send(guide);
                break;
            }
            if let Some(c) = line.strip_prefix("# ") {
                comment = c.to_owned();
            } else if line.starts_with("export ") {
                guide.exports.push(line);
            } else if !line.trim().is_empty() && !comment.is_empty() {
                guide.steps.push((std::mem::take(&mut comment), line));
            }
        }
        // Keep reading: the access log follows on stdout.
        for _ in lines {}
    });
    let guide = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tollgate demo printed its guide");
    (process, guide, admin)
}

/// Runs one printed command in bash with the printed exports; stdout.
fn run(guide: &Guide, command: &str) -> String {
    let script = format!("{}\n{command}\n", guide.exports.join("\n"));
    let out = Command::new("bash")
        .args(["-c", &script])
        .env(
            "PATH",
            format!(
                "{}:{}",
                binary().parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_demo_answers_every_printed_curl_line_as_its_comment_says() {
    let (_demo, guide, admin) = start();
    assert_eq!(
        guide.exports.len(),
        3,
        "tokens for an admin, a free and a pro user"
    );
    let ready = format!("curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{admin}/readyz");
    wait_until(Duration::from_secs(20), "the demo issuer's keys", || {
        run(&guide, &ready) == "200"
    });

    let mut seen = Vec::new();
    for (comment, command) in &guide.steps {
        let out = run(&guide, command);
        if command.starts_with("curl -i") {
            // `curl -i`: the status line first; the comment starts with the expected status.
            let status = out.split_whitespace().nth(1).unwrap_or("").to_owned();
            let expected = &comment[..3];
            assert_eq!(status, expected, "{command}\n{out}");
            if comment.contains("X-User-ID") {
                for header in ["x-user-id", "x-user-roles", "x-plan", "x-tier"] {
                    assert!(out.contains(&format!("\"{header}\"")), "{header} in {out}");
                }
                assert!(out.to_lowercase().contains("ratelimit-remaining:"), "{out}");
            }
            seen.push(status);
        } else if command.starts_with("for ") {
            let codes: Vec<&str> = out.lines().collect();
            if comment.contains("free plan") {
                // One of the free user's 5 went to the line before: 4 more, then 429s.
                assert_eq!(
                    codes,
                    ["200", "200", "200", "200", "429", "429"],
                    "{command}"
                );
                seen.push("429".to_owned());
            } else {
                assert!(codes.iter().all(|c| *c == "200"), "{command}: {codes:?}");
            }
        } else if command.starts_with("tollgate explain") {
            assert!(out.contains("authorize: refused: 403"), "{out}");
        } else if command.contains("/metrics") {
            assert!(out.contains("tollgate_ratelimit_total"), "{out}");
        }
    }
    for status in ["200", "401", "403", "429"] {
        assert!(
            seen.iter().any(|s| s == status),
            "the guide shows a {status}"
        );
    }
}
