//! HTTP/2 abuse against an h2c listener (`listen.h2c: true`): a hostile client
//! (`tests/grpc/h2_abuse.py`, on PyPI's h2) runs each attack on connections of its own for at
//! least a second, while this test sends normal HTTP/1.1 and h2c requests on other connections;
//! each must be answered 200 within 2 s, during the attack and after it. What the gateway did
//! to the attacking connection (GOAWAY and its code, RST_STREAM codes, a close) is asserted per
//! attack, its memory is bounded, and after all of them the process is alive and answers.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tollgate_tests::{python, Conn, Gateway, Process, Upstream};

/// The longest a normal request may take while an attack runs (behaviour, not a benchmark).
const LIMIT: Duration = Duration::from_secs(2);
/// The most the gateway's memory may grow over the whole test.
const MEMORY_GROWTH_KIB: u64 = 200 * 1024;

/// (VmRSS, VmHWM) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A normal HTTP/1.1 request on a connection of its own: its time, or what went wrong.
fn http1(gw: &Gateway) -> Result<Duration, String> {
    let start = Instant::now();
    let r = Conn::open(gw.http)
        .try_request(b"GET /ok/probe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("HTTP/1.1: {e}"))?;
    match r.status {
        200 => Ok(start.elapsed()),
        s => Err(format!("HTTP/1.1: status {s}")),
    }
}

/// A normal h2c request (curl, HTTP/2 with prior knowledge) on a connection of its own.
fn h2c(gw: &Gateway) -> Result<Duration, String> {
    let start = Instant::now();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--http2-prior-knowledge"])
        .args(["-o", "/dev/null", "-w", "%{http_version} %{http_code}"])
        .arg(format!("http://{}/ok/probe", gw.http))
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout);
    match got.as_ref() {
        "2 200" => Ok(start.elapsed()),
        _ => Err(format!(
            "h2c: {got:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

/// Both normal requests, each answered 200 within [`LIMIT`]; their slower time.
fn others_are_served(gw: &Gateway, when: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for (what, took) in [("HTTP/1.1", http1(gw)), ("h2c", h2c(gw))] {
        let took = took.unwrap_or_else(|e| panic!("{when}: a normal request failed: {e}"));
        assert!(
            took < LIMIT,
            "{when}: a normal {what} request took {took:?}"
        );
        slowest = slowest.max(took);
    }
    slowest
}

/// Runs one attack of `h2_abuse.py` against the gateway; normal requests run on other
/// connections while it lasts and once it is over. Returns the script's report, with
/// `probes_during` (pairs of normal requests sent while the attack ran) and `slowest_ms`.
fn attack(gw: &Gateway, name: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("grpc/h2_abuse.py");
    let mut child = Process(
        Command::new(python())
            .arg(&script)
            .args([name, &gw.http.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut stderr = child.0.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let failed = |what: &str, child: Process| -> ! {
        drop(child);
        panic!(
            "{name}: {what}\n{}\n(h2_abuse.py needs PyPI's h2 in the test venv: \
             target/test-venv/bin/pip install -r tests/grpc/requirements.txt)",
            errors.join().unwrap_or_default()
        )
    };
    match lines.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.contains("attacking") => {}
        _ => failed("the attack did not start", child),
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut during = 0;
    let mut slowest = Duration::ZERO;
    let report = loop {
        match lines.try_recv() {
            Ok(line) => break line,
            Err(mpsc::TryRecvError::Disconnected) => {
                failed("the script ended without a report", child)
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if Instant::now() > deadline {
            failed("no report within 20 s", child);
        }
        slowest = slowest.max(others_are_served(gw, &format!("during {name}")));
        during += 1;
    };
    let mut report: Value = serde_json::from_str(&report)
        .unwrap_or_else(|e| panic!("{name}: not a JSON report ({e}): {report}"));
    let exit = Instant::now() + Duration::from_secs(5);
    while child.0.try_wait().unwrap().is_none() && Instant::now() < exit {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    assert!(
        during > 0,
        "{name}: no normal request was sent while it ran"
    );
    slowest = slowest.max(others_are_served(gw, &format!("after {name}")));
    report["probes_during"] = during.into();
    report["slowest_ms"] = (slowest.as_millis() as u64).into();
    eprintln!("{report}");
    report
}

fn goaway(r: &Value) -> &str {
    r["goaway"]["code"].as_str().unwrap_or("none")
}

/// The connection was closed with a GOAWAY of `code`, or reset with the GOAWAY lost: the
/// gateway closes with the flood still unread in its socket, and the kernel answers that with a
/// reset that drops what was in flight.
fn cut_off(r: &Value, code: &str) -> bool {
    goaway(r) == code || (goaway(r) == "none" && r["close_kind"] == "reset")
}

#[test]
fn http2_abuse_neither_takes_the_gateway_down_nor_starves_other_clients() {
    let started = Instant::now();
    let u = Upstream::start("echo");
    let mut gw = Gateway::start_with_listen(
        "  h2c: true\n",
        &format!(
            "upstreams:\n  echo: {{ targets: [\"{}\"] }}\nroutes:\n  - name: ok\n    match: {{ path: /ok/* }}\n    upstream: echo\n    auth: none\n",
            u.addr
        ),
    );
    others_are_served(&gw, "before the attacks");
    let (rss_before, _) = memory_kib(gw.pid());
    let mut rss_after = Vec::new();
    let mut run = |gw: &Gateway, name: &str| -> Value {
        let r = attack(gw, name);
        let (rss, _) = memory_kib(gw.pid());
        assert!(
            rss.saturating_sub(rss_before) < MEMORY_GROWTH_KIB,
            "{name}: the gateway grew from {rss_before} KiB to {rss} KiB"
        );
        rss_after.push(format!("{name} {rss}"));
        r
    };

    // 1. Rapid reset (CVE-2023-44487): h2 counts streams reset before they were taken up, and
    // answers GOAWAY ENHANCE_YOUR_CALM ("too_many_resets") long before the 10,000th.
    let r = run(&gw, "rapid_reset");
    assert!(cut_off(&r, "ENHANCE_YOUR_CALM"), "{r}");
    // Cut before the 10,000th stream: by the GOAWAY's last stream, or, when the connection was
    // reset before the client read a GOAWAY (a loaded machine), by the streams it got to send.
    match r["goaway"]["last_stream"].as_u64() {
        Some(last) => assert!(last < 2 * 10_000, "{r}"),
        None => assert!(
            r["streams_reset"].as_u64().is_some_and(|n| n < 10_000),
            "{r}"
        ),
    }
    assert_eq!(r["closed"], true, "{r}");
    // The same with resets sent once the gateway has started on the requests (and forwarded
    // them): cut as well, unless the gateway finished every stream before its reset arrived
    // (a slow, loaded machine): then the resets cost it nothing, and it keeps the connection.
    let r = run(&gw, "rapid_reset_paced");
    if cut_off(&r, "ENHANCE_YOUR_CALM") {
        assert!(r["streams_reset"].as_u64().unwrap() < 10_000, "{r}");
        assert_eq!(r["closed"], true, "{r}");
    } else {
        let answered = r["statuses"]["200"].as_u64().unwrap_or(0);
        assert!(answered > 5_000, "neither cut off nor answered: {r}");
    }

    // 2. CONTINUATION floods (CVE-2024-27316 family): cut after a few frames, not buffered.
    for name in ["continuation_flood", "continuation_empty"] {
        let r = run(&gw, name);
        assert!(cut_off(&r, "ENHANCE_YOUR_CALM"), "{r}");
        assert!(
            r["continuation_frames"].as_u64().unwrap()
                < r["continuation_frames_planned"].as_u64().unwrap(),
            "{r}"
        );
        assert_eq!(r["closed"], true, "{r}");
        assert!(r["statuses"].as_object().unwrap().is_empty(), "{r}");
    }

    // 3. Header lists too large. Over the gateway's `max_header_bytes` (32 KiB): its own 431.
    let r = run(&gw, "header_list_40kib");
    assert_eq!(r["stream_status"], 431, "{r}");
    // 1 MiB, and 50 MB (an HPACK bomb: one 16 KiB frame that refers to its table again and
    // again): refused while decoding, before any request is made: GOAWAY ENHANCE_YOUR_CALM
    // ("header_list_way_too_large") and the connection closed.
    for name in ["header_list_1mib", "hpack_bomb"] {
        let r = run(&gw, name);
        assert!(cut_off(&r, "ENHANCE_YOUR_CALM"), "{r}");
        assert_eq!(r["closed"], true, "{r}");
        assert!(r["statuses"].as_object().unwrap().is_empty(), "{r}");
    }
    // A HEADERS frame past SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR (RFC 9113 §4.2).
    let r = run(&gw, "oversized_frame");
    assert_eq!(goaway(&r), "FRAME_SIZE_ERROR", "{r}");
    assert_eq!(r["closed"], true, "{r}");

    // 4. Flow control. A client that opens no window gets response headers and not one byte
    // of DATA, and holds nothing of other clients'.
    let r = run(&gw, "zero_window");
    assert_eq!(r["data_bytes"], 0, "{r}");
    assert_eq!(r["streams"], 100, "{r}");
    // A window pushed past 2^31-1: a stream error on a stream (the connection goes on), a
    // connection error on the connection (RFC 9113 §6.9.1).
    let r = run(&gw, "window_overflow_stream");
    assert_eq!(r["stream_rst"], "FLOW_CONTROL_ERROR", "{r}");
    assert_eq!(r["next_stream_status"], 200, "{r}");
    let r = run(&gw, "window_overflow_connection");
    assert_eq!(goaway(&r), "FLOW_CONTROL_ERROR", "{r}");
    assert_eq!(r["closed"], true, "{r}");

    // 5. SETTINGS and PING floods: each frame is answered (an ACK), in order, and the
    // connection is not closed; the point is that others are served meanwhile.
    for name in ["settings_flood", "ping_flood"] {
        let r = run(&gw, name);
        assert!(
            r["flood_frames"] == 100_000 || r["goaway"].is_object() || r["closed"] == true,
            "{r}"
        );
    }

    // 6. Twice SETTINGS_MAX_CONCURRENT_STREAMS at once: the streams over the limit are
    // refused with REFUSED_STREAM (safe to retry), the others answered.
    let r = run(&gw, "too_many_streams");
    let limit = r["max_concurrent_streams"].as_u64().unwrap();
    let streams = r["streams"].as_u64().unwrap();
    let answered = r["answered"].as_u64().unwrap();
    assert_eq!(streams, 2 * limit, "{r}");
    assert!((1..streams).contains(&answered), "{r}");
    assert_eq!(
        r["rst"],
        serde_json::json!({ "REFUSED_STREAM": streams - answered }),
        "{r}"
    );
    assert_eq!(r["statuses"], serde_json::json!({ "200": answered }), "{r}");
    assert_eq!(r["unfinished"], 0, "{r}");
    assert!(r["goaway"].is_null(), "{r}");

    // After all of them: the same process, healthy, serving.
    assert!(!gw.exited(), "the gateway exited:\n{}", gw.stderr());
    assert_eq!(gw.admin_get("/healthz").status, 200);
    assert_eq!(gw.get("/ok/after-all").status, 200);
    others_are_served(&gw, "after all attacks");
    let (rss, hwm) = memory_kib(gw.pid());
    assert!(
        hwm.saturating_sub(rss_before) < MEMORY_GROWTH_KIB,
        "peak memory {hwm} KiB, {rss_before} KiB before the attacks"
    );
    eprintln!(
        "memory (KiB): {rss_before} before, after each attack: {}; {rss} at the end, peak {hwm}; \
         {:?} in all",
        rss_after.join(", "),
        started.elapsed()
    );
}

#[test]
fn a_client_that_never_reads_loses_its_streams_after_the_idle_timeout() {
    let u = Upstream::start("echo");
    let gw = Gateway::start_with_listen(
        "  h2c: true\n",
        &format!(
            "server:\n  grace_period: 0s\n  idle_timeout: 1s\nupstreams:\n  echo: {{ targets: [\"{}\"] }}\nroutes:\n  - name: ok\n    match: {{ path: /ok/* }}\n    upstream: echo\n    auth: none\n",
            u.addr
        ),
    );
    // The script holds 100 streams on a zero window for 2 s: with a write timeout of 1 s
    // (server.idle_timeout) every one is cancelled, freeing its upstream connection.
    let r = attack(&gw, "zero_window");
    assert_eq!(r["data_bytes"], 0, "{r}");
    assert_eq!(r["rst"]["CANCEL"], r["streams"], "{r}");
}
