//! `tollgate run`: load the config, build the first `Gate`, and serve it with Pingora.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;
use tollgate_admin::Metrics;

use crate::access_log::AccessLog;
use crate::admin::AdminApp;
use crate::gate::Gate;
use crate::lifecycle::{exit_when_drained, InFlight};
use crate::proxy::Gateway;
use crate::reload::Reloader;

const DEFAULT_HTTP: &str = "0.0.0.0:8080";
const DEFAULT_ADMIN: &str = "127.0.0.1:9901";

/// `watch`: also reload when the file changes (`run --watch`).
pub fn run(path: PathBuf, upgrade: bool, watch: bool) -> ExitCode {
    let metrics = Arc::new(Metrics::new());
    let loaded = match tollgate_config::load(&path) {
        Ok(loaded) => loaded,
        Err(problems) => return refuse(&problems),
    };
    // Background work of the gate (health checks, later key refreshes) runs here, beside
    // Pingora's own runtimes.
    let background = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tollgate-bg")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the background runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gate = match Gate::build(&loaded, &metrics, Some(background.handle()), None) {
        Ok(gate) => gate,
        Err(problems) => return refuse(&problems),
    };
    let file = &loaded.file;
    let gate = Arc::new(ArcSwap::from_pointee(gate));
    let http = file.listen.http.as_deref().unwrap_or(DEFAULT_HTTP);
    let admin_addr = file.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN);
    // Pingora retries a busy port for half a minute and then serves without that listener;
    // a port we cannot have is a start-up error. (An upgrade inherits the sockets instead.)
    if !upgrade {
        let https = file
            .listen
            .https
            .as_ref()
            .map(|h| ("listen.https.addr", h.addr.as_str()));
        let listeners = [("listen.http", http), ("admin.listen", admin_addr)]
            .into_iter()
            .chain(https);
        for (key, addr) in listeners {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                eprintln!("error: {key}: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let grace_period = file
        .server
        .grace_period
        .map_or(Duration::from_secs(30), |d| d.0);
    // Pingora's own wait, a fallback: `exit_when_drained` ends the process sooner.
    let grace = grace_period.as_secs_f64().ceil() as u64;
    let mut conf = ServerConf {
        threads: file
            .server
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace.min(5)),
        // One runtime per thread, each connection staying on the thread that accepted it
        // (Envoy's and nginx's model): no cross-thread scheduling on the request path, about 5%
        // more requests a second on one core (docs/benchmarks.md).
        work_stealing: file.server.work_stealing.unwrap_or(false),
        ..ServerConf::default()
    };
    if let Some(sock) = &file.server.upgrade_sock {
        conf.upgrade_sock = sock.to_string();
    }
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let access_log = match AccessLog::start(metrics.clone()) {
        Ok(log) => Arc::new(log),
        Err(e) => {
            eprintln!("error: cannot start the access log writer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let retired = match crate::reload::Retired::start() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the thread that drops replaced configs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reloader = Arc::new(Reloader {
        path: path.clone(),
        gate: gate.clone(),
        metrics: metrics.clone(),
        runtime: background.handle().clone(),
        restart_only: crate::reload::restart_only(file),
        last: std::sync::Mutex::new(None),
        retired,
    });
    if let Err(e) = reloader.on_sighup() {
        eprintln!("error: cannot install the SIGHUP handler: {e}");
        return ExitCode::FAILURE;
    }
    let _watcher = if watch {
        match reloader.watch() {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("error: --watch: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    // Local rate-limit buckets that are full again hold no information: drop them now and
    // then, so that memory follows the callers of the last minutes, not of all time.
    let swept = gate.clone();
    let counted = metrics.clone();
    background.spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            for policy in swept.load().policies.values() {
                for bucket in policy.tiers().filter_map(|t| t.bucket()) {
                    bucket.sweep();
                    let evicted = bucket.take_evicted();
                    counted.ratelimit_evicted(evicted);
                }
            }
        }
    });

    let in_flight = InFlight(metrics.in_flight());
    let drained = exit_when_drained(
        server.watch_execution_phase(),
        in_flight.clone(),
        grace_period,
        access_log.clone(),
    );
    if let Err(e) = drained {
        eprintln!("error: cannot start the shutdown watcher: {e}");
        return ExitCode::FAILURE;
    }
    let gateway = Gateway {
        gate: gate.clone(),
        access_log: access_log.clone(),
        in_flight,
        metrics: metrics.clone(),
        idle_timeout_secs: crate::deadline::idle_timeout(file).as_secs(),
    };
    let mut app = pingora::proxy::http_proxy(&server.configuration, gateway);
    if file.listen.h2c {
        // Cleartext HTTP/2 beside HTTP/1.1 on the same port, told apart by the first bytes
        // (peeked under the header deadline by `Guarded`).
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = true;
        app.server_options = Some(options);
    }
    let guarded = crate::deadline::Guarded {
        proxy: Arc::new(app),
        header_timeout: file
            .server
            .header_timeout
            .map_or(crate::deadline::DEFAULT_HEADER_TIMEOUT, |d| d.0),
        idle_timeout: crate::deadline::idle_timeout(file),
        h2c: file.listen.h2c,
    };
    let mut proxy = Service::new("tollgate".to_owned(), guarded);
    proxy.add_tcp(http);
    if let Some(https) = &file.listen.https {
        // HTTP/1.1 and HTTP/2 by ALPN. Pingora's rustls listener takes one certificate chain:
        // no SNI-based choice among several, and a new certificate needs a restart or a
        // graceful upgrade.
        let mut tls =
            match pingora::listeners::tls::TlsSettings::intermediate(&https.cert, &https.key) {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("error: listen.https: {e}");
                    return ExitCode::FAILURE;
                }
            };
        tls.enable_h2();
        proxy.add_tls_with_settings(&https.addr, None, tls);
    }

    let mut admin = Service::new("tollgate admin".to_owned(), AdminApp { gate, metrics });
    admin.add_tcp(admin_addr);

    server.add_service(proxy);
    server.add_service(admin);
    tracing::info!(config = %path.display(), http, admin = admin_addr, "tollgate starting");
    server.run(RunArgs::default());
    access_log.flush();
    ExitCode::SUCCESS
}

fn refuse(problems: &tollgate_config::Problems) -> ExitCode {
    eprintln!("{problems}");
    ExitCode::FAILURE
}
