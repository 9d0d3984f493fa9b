//! Harness for the end-to-end tests: start the real `tollgate` binary on a generated config,
//! real upstreams on loopback, and talk to it over raw TCP so that a test controls every byte
//! (an HTTP client library would normalise the very paths the tests attack with).
//!
//! Every process and server a test starts is stopped when its handle drops; every wait polls a
//! condition with a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `tollgate` binary under test: `$TOLLGATE_BIN`, else the workspace's debug build.
pub fn binary() -> PathBuf {
    if let Ok(bin) = std::env::var("TOLLGATE_BIN") {
        return bin.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug/tollgate");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p tollgate` first (make test does)",
        bin.display()
    );
    bin
}

/// A free loopback port (bound, then released for the process under test to take).
///
/// Picked at random below Linux's ephemeral range (32768-60999) rather than by `bind(0)`: the
/// kernel hands a port just released by one test process to the next `bind(0)` of another, so
/// two tests running at once could be given the same port; a random pick among 12,000 rarely
/// collides, and never with the ephemeral ports of outgoing connections.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        h.write_u32(std::process::id());
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found in 20000-31999");
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A real HTTP upstream (the echo server) on a free loopback port.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn start(name: &str) -> Upstream {
        let (addr, task) = runtime()
            .block_on(tollgate_echo::spawn("127.0.0.1:0".parse().unwrap(), name))
            .unwrap();
        Upstream { addr, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running `tollgate run` with its own config file, ports and output files.
pub struct Gateway {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    /// The port that replaced `$PORT` in the extra `listen` lines, if any.
    pub extra_port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Gateway {
    /// Starts the gateway on `yaml` plus `listen` and `admin` sections on free ports (and
    /// `server: {grace_period: 0s}` unless the config has a `server` section), and waits until
    /// both listeners answer.
    pub fn start(yaml: &str) -> Gateway {
        Gateway::try_start(yaml)
            .unwrap_or_else(|stderr| panic!("tollgate did not start:\n{stderr}"))
    }

    /// Like [`Gateway::start`], but returns the process's stderr if it exits instead.
    pub fn try_start(yaml: &str) -> Result<Gateway, String> {
        Gateway::try_start_with_listen("", yaml)
    }

    /// Like [`Gateway::start`] with more lines for the `listen` section (e.g. `  https: ...`);
    /// `$PORT` in them becomes a free port, `extra_port`.
    pub fn start_with_listen(listen: &str, yaml: &str) -> Gateway {
        Gateway::try_start_with_listen(listen, yaml)
            .unwrap_or_else(|stderr| panic!("tollgate did not start:\n{stderr}"))
    }

    /// Like [`Gateway::start`] with these environment variables set for the process.
    pub fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Gateway {
        Gateway::try_start_env("", yaml, env, &[])
            .unwrap_or_else(|stderr| panic!("tollgate did not start:\n{stderr}"))
    }

    /// Like [`Gateway::start`] with `run --watch`: edits of the config file reload it.
    pub fn start_watching(yaml: &str) -> Gateway {
        Gateway::try_start_env("", yaml, &[], &["--watch"])
            .unwrap_or_else(|stderr| panic!("tollgate did not start:\n{stderr}"))
    }

    fn try_start_with_listen(listen: &str, yaml: &str) -> Result<Gateway, String> {
        Gateway::try_start_env(listen, yaml, &[], &[])
    }

    fn try_start_env(
        listen: &str,
        yaml: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Gateway, String> {
        // A free port can be taken by another test between our probe and the gateway's bind:
        // then the gateway refuses to start ("cannot listen on"), and we try other ports.
        let mut attempt = 0;
        loop {
            match Gateway::try_start_once(listen, yaml, env, args) {
                Err(stderr) if stderr.contains("cannot listen on") && attempt < 5 => attempt += 1,
                result => return result,
            }
        }
    }

    fn try_start_once(
        listen: &str,
        yaml: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Gateway, String> {
        let extra_port = free_port();
        let listen = listen.replace("$PORT", &extra_port.to_string());
        let dir = temp_dir();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut config =
            format!("listen:\n  http: \"{http}\"\n{listen}admin:\n  listen: \"{admin}\"\n");
        if !yaml.lines().any(|l| l.starts_with("server:")) {
            config.push_str("server:\n  grace_period: 0s\n");
        }
        config.push_str(yaml);
        std::fs::write(dir.join("tollgate.yaml"), config).unwrap();
        let child = Command::new(binary())
            .arg("run")
            .args(args)
            .arg("-c")
            .arg(dir.join("tollgate.yaml"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap();
        let mut gw = Gateway {
            http,
            admin,
            extra_port,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(_)) = gw.child.try_wait() {
                return Err(gw.stderr());
            }
            let up = |addr| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
            if up(gw.http) && up(gw.admin) && gw.admin_get("/healthz").status == 200 {
                // Someone else may have taken the port between our probe and the gateway's
                // bind (Pingora then retries in the background): what answers is not ours.
                if gw.stderr().contains("is in use") {
                    return Err(format!("cannot listen on {}: taken meanwhile", gw.http));
                }
                return Ok(gw);
            }
            if Instant::now() > deadline {
                return Err(format!("not listening after 15 s\n{}", gw.stderr()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a second gateway with `run --upgrade` on the same config (which must set
    /// `server.upgrade_sock`), waits until it listens on the upgrade socket, then sends this one
    /// SIGQUIT: the new process takes over the listening sockets.
    pub fn upgrade(&self, upgrade_sock: &Path) -> Gateway {
        let child = Command::new(binary())
            .args(["run", "--upgrade", "-c"])
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.join("stdout.new")).unwrap())
            .stderr(std::fs::File::create(self.dir.join("stderr.new")).unwrap())
            .spawn()
            .unwrap();
        wait_until(
            Duration::from_secs(10),
            "the new process's upgrade socket",
            || upgrade_sock.exists(),
        );
        self.signal("QUIT");
        let dir = temp_dir();
        std::fs::copy(self.config_path(), dir.join("tollgate.yaml")).unwrap();
        Gateway {
            http: self.http,
            admin: self.admin,
            extra_port: self.extra_port,
            dir,
            child,
        }
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("tollgate.yaml")
    }

    /// Replaces the config's body (the part after listen/admin/server), written in place.
    pub fn rewrite_config(&self, yaml: &str) {
        std::fs::write(self.config_path(), self.with_head(yaml)).unwrap();
    }

    /// Like [`Gateway::rewrite_config`], as many editors save: a new file renamed over the
    /// old one.
    pub fn replace_config(&self, yaml: &str) {
        let tmp = self.dir.join(".tollgate.yaml.swp");
        std::fs::write(&tmp, self.with_head(yaml)).unwrap();
        std::fs::rename(&tmp, self.config_path()).unwrap();
    }

    fn with_head(&self, yaml: &str) -> String {
        let current = std::fs::read_to_string(self.config_path()).unwrap();
        let head: String = current
            .lines()
            .take_while(|l| !l.starts_with("upstreams:") && !l.starts_with("routes:"))
            .map(|l| format!("{l}\n"))
            .collect();
        format!("{head}{yaml}")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }

    /// The access log so far, one parsed JSON object per line.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("stdout"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Waits until the access log has a line for `request_id`.
    pub fn access_log_line(&self, request_id: &str) -> serde_json::Value {
        let mut found = None;
        wait_until(Duration::from_secs(5), "the access log line", || {
            found = self
                .access_log()
                .into_iter()
                .find(|l| l["request_id"] == request_id);
            found.is_some()
        });
        found.unwrap()
    }

    /// `n` requests for `path` on one keep-alive connection: which echo upstream served each
    /// (an empty name for an answer that is not the echo's).
    pub fn served_by(&self, path: &str, n: usize) -> Vec<String> {
        let mut conn = Conn::open(self.http);
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        (0..n)
            .map(|_| {
                let r = conn.request(req.as_bytes());
                if r.status == 200 {
                    r.served_by()
                } else {
                    String::new()
                }
            })
            .collect()
    }

    /// `method path` with these headers on a fresh connection (closed after the answer).
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let extra: String = headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}\r\n"))
            .collect();
        self.send(&format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ))
    }

    pub fn get(&self, path: &str) -> Response {
        self.send(&format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        ))
    }

    /// Sends raw request bytes on a new connection.
    pub fn send(&self, raw: &str) -> Response {
        Conn::open(self.http).request(raw.as_bytes())
    }

    /// A series' value from `/metrics` (`name{labels}` exactly as printed), if it exists.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let text = String::from_utf8(self.admin_get("/metrics").body).unwrap_or_default();
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// `tollgate explain` on this gateway's own config file: (exit code, stdout).
    pub fn explain(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(binary())
            .arg("explain")
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    pub fn admin_get(&self, path: &str) -> Response {
        Conn::open(self.admin).request(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// Stops the gateway with SIGTERM and waits (bounded) for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "gateway files kept in {}\n--- stderr ---\n{}",
                self.dir.display(),
                self.stderr()
            );
        }
    }
}

/// A fresh directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tollgate-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `tollgate validate` on `yaml`; returns (exit code, stdout).
pub fn validate(yaml: &str) -> (i32, String) {
    let dir = temp_dir();
    let path = dir.join("tollgate.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(binary())
        .args(["validate", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// For echo upstream answers: the upstream's name.
    pub fn served_by(&self) -> String {
        self.json()["server"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One client connection, for keep-alive sequences of raw requests.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn request(&mut self, raw: &[u8]) -> Response {
        self.try_request(raw)
            .unwrap_or_else(|e| panic!("request failed: {e}"))
    }

    pub fn try_request(&mut self, raw: &[u8]) -> std::io::Result<Response> {
        self.stream.write_all(raw)?;
        self.read_response()
    }

    fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn read_response(&mut self) -> std::io::Result<Response> {
        let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed");
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i;
            }
            if self.fill()? == 0 {
                return Err(eof());
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(eof)?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let body = if status == 204 || status == 304 || (100..200).contains(&status) {
            Vec::new()
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            while self.buf.len() < len {
                if self.fill()? == 0 {
                    return Err(eof());
                }
            }
            self.buf.drain(..len).collect()
        } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            self.read_chunked()?
        } else {
            while self.fill()? > 0 {}
            std::mem::take(&mut self.buf)
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn read_chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                if self.fill()? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
                })?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                if self.fill()? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A raw HTTP/1.1 server that answers every request with one fixed status: an upstream that
/// is up (it accepts connections) but not healthy.
pub struct FixedStatusServer {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FixedStatusServer {
    pub fn start(status: u16) -> FixedStatusServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        while find(&buf, b"\r\n\r\n").is_none() {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        if let Some(end) = find(&buf, b"\r\n\r\n") {
                            buf.drain(..end + 4);
                        }
                        let body = format!("{{\"status\":{status}}}");
                        let resp = format!(
                            "HTTP/1.1 {status} Fixed\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FixedStatusServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FixedStatusServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw upstream that accepts an `Upgrade` request with 101 and then echoes every byte: a
/// stand-in for a WebSocket server that checks what a gateway must do (pass the handshake,
/// then both directions of the upgraded connection unchanged).
pub struct UpgradeEchoServer {
    pub addr: SocketAddr,
    /// The request heads the server received.
    pub heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl UpgradeEchoServer {
    pub fn start() -> UpgradeEchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while find(&buf, b"\r\n\r\n").is_none() {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = find(&buf, b"\r\n\r\n").unwrap_or(0) + 4;
                    seen.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..end]).into_owned());
                    let rest = buf.split_off(end);
                    let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
                    if conn.write_all(resp.as_bytes()).is_err() || conn.write_all(&rest).is_err() {
                        return;
                    }
                    loop {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if conn.write_all(&chunk[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        UpgradeEchoServer { addr, heads }
    }
}

/// The Python with the test peers' packages (grpcio): `$TOLLGATE_TEST_PYTHON`, else the venv
/// that `scripts/deps.sh` makes in `target/test-venv`.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TOLLGATE_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/deps.sh (scripts/test.sh does)",
        venv.display()
    );
    venv
}

/// A child process stopped (killed and reaped) when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real identity provider on loopback: `tests/idp/issuer.mjs` (npm `oidc-provider`) or
/// `tests/idp/mock.mjs` (npm `oauth2-mock-server`), set up by `scripts/deps.sh` (`npm ci`).
pub struct Idp {
    pub port: u16,
    /// As the issuer prints it, and as its tokens carry it in `iss`.
    pub issuer: String,
    _process: Process,
}

impl Idp {
    /// `oidc-provider` with one signing key: `alg` (RS256, ES256, EdDSA) and `kid`, kept in
    /// `key_file` (a restart with the same file keeps the key; a new file and kid rotate it).
    /// `port` 0 picks a free one.
    pub fn oidc(port: u16, alg: &str, kid: &str, key_file: &Path) -> Idp {
        let port = port.to_string();
        let key_file = key_file.display().to_string();
        Idp::spawn(
            "issuer.mjs",
            &[
                "--port",
                &port,
                "--issuer-path",
                "/realms/main",
                "--alg",
                alg,
                "--kid",
                kid,
                "--key-file",
                &key_file,
            ],
        )
    }

    /// `tests/idp/tenants.mjs`: one `oidc-provider` realm per tenant under
    /// `/realms/<tenant>`, each with its own RS256 key; `issuer` is the template
    /// `http://127.0.0.1:PORT/realms/{tenant}`.
    pub fn tenants(tenants: &[&str]) -> Idp {
        Idp::spawn(
            "tenants.mjs",
            &["--port", "0", "--tenants", &tenants.join(",")],
        )
    }

    /// The concrete issuer of a tenant of [`Idp::tenants`].
    pub fn issuer_of(&self, tenant: &str) -> String {
        self.issuer.replace("{tenant}", tenant)
    }

    /// A token from one tenant's realm of [`Idp::tenants`].
    pub fn token_in(&self, tenant: &str, client: &str, secret: &str) -> String {
        self.token_from(
            &self.issuer_of(tenant),
            client,
            secret,
            "api:read api:write",
        )
    }

    /// A new signing key for one tenant's realm of [`Idp::tenants`]; returns its kid.
    pub fn rotate(&self, tenant: &str) -> String {
        let r = self.call(&format!("POST /_rotate/{tenant} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
        assert_eq!(r.status, 200);
        r.json()["kid"].as_str().unwrap().to_owned()
    }

    /// Requests per realm of [`Idp::tenants`] (`{"<tenant>": {"discovery": n, "jwks": n},
    /// "unknown": n}`).
    pub fn stats(&self) -> serde_json::Value {
        self.call("GET /_stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .json()
    }

    fn call(&self, request: &str) -> Response {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        Conn::open(addr).request(request.as_bytes())
    }

    /// `oauth2-mock-server`: RS256, a fresh key each start, Auth0-style namespaced roles.
    pub fn mock(port: u16, kid: &str) -> Idp {
        Idp::spawn("mock.mjs", &["--port", &port.to_string(), "--kid", kid])
    }

    /// Starts the script; a start that hangs (seen rarely on a loaded CI machine, with no output
    /// at all) is stopped and tried once more.
    fn spawn(script: &str, args: &[&str]) -> Idp {
        Idp::try_spawn(script, args)
            .or_else(|hung| {
                eprintln!("{hung}; starting it again");
                Idp::try_spawn(script, args)
            })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_spawn(script: &str, args: &[&str]) -> Result<Idp, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("idp");
        assert!(
            dir.join("node_modules").exists(),
            "{}/node_modules is missing: run scripts/deps.sh (scripts/test.sh does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (scripts/deps.sh installs it)");
        let stdout = child.stdout.take().unwrap();
        // Stopped (by its pid) when dropped, including when it did not start.
        let process = Process(child);
        // The one line the script prints once it listens; reading it is the readiness wait
        // (the script exits, closing stdout, if it cannot start).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| format!("{script} did not start within 20 s"))?;
        let mut words = line.split_whitespace();
        let (Some("ready"), Some(port), Some(issuer)) = (words.next(), words.next(), words.next())
        else {
            panic!("{script} did not start: {line:?}");
        };
        Ok(Idp {
            port: port.parse().unwrap(),
            issuer: issuer.to_owned(),
            _process: process,
        })
    }

    /// A `client_credentials` access token from the issuer's token endpoint, with the scopes
    /// `api:read api:write`.
    pub fn token(&self, client: &str, secret: &str) -> String {
        self.token_with_scope(client, secret, "api:read api:write")
    }

    /// Like [`Idp::token`], asking for these (space-separated) scopes.
    pub fn token_with_scope(&self, client: &str, secret: &str, scope: &str) -> String {
        self.token_from(&self.issuer, client, secret, scope)
    }

    fn token_from(&self, issuer: &str, client: &str, secret: &str, scope: &str) -> String {
        let form = format!(
            "grant_type=client_credentials&scope={}",
            scope.replace(':', "%3A").replace(' ', "%20")
        );
        let path = format!(
            "{}/token",
            issuer
                .split_once("//")
                .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                .unwrap_or("")
        );
        let basic = base64_encode(format!("{client}:{secret}").as_bytes());
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let r = Conn::open(addr).request(
            format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                self.port,
                form.len()
            )
            .as_bytes(),
        );
        assert_eq!(
            r.status,
            200,
            "token endpoint: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["access_token"].as_str().unwrap().to_owned()
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A real `redis-server` (Debian's package, installed by `scripts/deps.sh`) on a loopback port,
/// without persistence; stopped when dropped.
pub struct Redis {
    pub port: u16,
    /// The TLS port, for a server started by [`Redis::start_tls`].
    pub tls_port: Option<u16>,
    process: Option<Process>,
    /// Options of the server beyond the test defaults (users; TLS comes from `tls_port`).
    args: Vec<String>,
    /// Where the server's certificate files are, for TLS.
    certs: Option<PathBuf>,
    /// The server's log: shown when it does not come up.
    log: PathBuf,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// The ACL options of a server whose `gateway` user has `password` and what the rate-limit
    /// script needs, and whose default user (no password: the harness) may only PING and SCAN.
    pub fn gateway_user(password: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "--user", "default", "on", "nopass", "~*", "-@all", "+ping", "+scan",
        ]
        .map(str::to_owned)
        .to_vec();
        args.extend([
            "--user".to_owned(),
            "gateway".to_owned(),
            "on".to_owned(),
            format!(">{password}"),
        ]);
        args.extend(["~tollgate:*", "+@scripting", "+get", "+set", "+time"].map(str::to_owned));
        args
    }

    /// A server with more options (users); `PING` on the plain port must still answer without
    /// a password (the readiness check).
    pub fn start_with(args: &[&str]) -> Redis {
        Redis::first_start(args, None)
    }

    /// A server that also listens for TLS on `tls_port`, with `cert.pem`, `key.pem` and
    /// `ca.pem` from `certs` (see [`make_certs`]); clients need no certificate.
    pub fn start_tls(certs: &Path, args: &[&str]) -> Redis {
        Redis::first_start(args, Some(certs.to_owned()))
    }

    /// Starts on free ports; a port another test took between the check and the bind is tried
    /// again with new ones.
    fn first_start(args: &[&str], certs: Option<PathBuf>) -> Redis {
        let mut redis = Redis {
            port: 0,
            tls_port: None,
            process: None,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            log: temp_dir().join("redis.log"),
            certs,
        };
        for _ in 0..5 {
            redis.port = free_port();
            redis.tls_port = redis.certs.as_ref().map(|_| free_port());
            match redis.try_restart() {
                Ok(()) => return redis,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("redis-server did not start:\n{log}"),
            }
        }
        panic!("redis-server found no free port in five tries");
    }

    /// Starts the server again on the same ports (empty: nothing was persisted).
    pub fn restart(&mut self) {
        if let Err(log) = self.try_restart() {
            panic!("redis-server did not start again:\n{log}");
        }
    }

    /// Starts the server and waits until it answers `PING`; the error is its log.
    fn try_restart(&mut self) -> Result<(), String> {
        self.stop();
        let log = std::fs::File::create(&self.log).unwrap();
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"]);
        if let (Some(certs), Some(tls_port)) = (&self.certs, self.tls_port) {
            let file = |f: &str| certs.join(f).to_string_lossy().into_owned();
            command
                .args(["--tls-port", &tls_port.to_string()])
                .args(["--tls-cert-file", &file("cert.pem")])
                .args(["--tls-key-file", &file("key.pem")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        }
        let child = command
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("redis-server runs (scripts/deps.sh installs it)");
        let mut process = Process(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if Redis::pong(addr) {
                self.process = Some(process);
                return Ok(());
            }
            let exited = matches!(process.0.try_wait(), Ok(Some(_)));
            if exited || Instant::now() >= deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let why = if exited {
                    "exited"
                } else {
                    "no PONG after 10s"
                };
                return Err(format!("{why}; its log:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server on `addr` answers `PING`.
    fn pong(addr: SocketAddr) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    pub fn stop(&mut self) {
        self.process = None;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The keys matching a pattern, by `redis-cli`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "--scan", "--pattern", pattern])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Writes ca.pem, and cert.pem with key.pem for `localhost` and `127.0.0.1` signed by that
/// CA, into `dir`.
pub fn make_certs(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "tollgate test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// A Redis Cluster of three masters (no replicas) on loopback, made by `redis-cli --cluster
/// create`; every server is stopped when dropped.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    _servers: Vec<Process>,
    _dir: PathBuf,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = temp_dir();
        // Each node also listens on its port + 10000 (the cluster bus): both must be free.
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let p = free_port();
            if p < 55_000
                && !ports.contains(&p)
                && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
            {
                ports.push(p);
            }
        }
        let servers = ports
            .iter()
            .map(|p| {
                Process(
                    Command::new("redis-server")
                        .args(["--bind", "127.0.0.1", "--port", &p.to_string()])
                        .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                        .arg(format!("nodes-{p}.conf"))
                        .arg("--dir")
                        .arg(&dir)
                        .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("redis-server runs"),
                )
            })
            .collect();
        for p in &ports {
            wait_until(Duration::from_secs(10), "a cluster node to listen", || {
                TcpStream::connect(("127.0.0.1", *p)).is_ok()
            });
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in &ports {
            wait_until(Duration::from_secs(20), "cluster_state:ok", || {
                let out = Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok")
            });
        }
        RedisCluster {
            ports,
            _servers: servers,
            _dir: dir,
        }
    }

    pub fn nodes(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}
