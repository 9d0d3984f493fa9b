//! `tollgate`: the CLI. `run` serves a config; `validate` checks one; `explain` dry-runs one
//! request through it.
#![deny(clippy::unwrap_used)]

mod access_log;
mod admin;
mod authn;
mod authz;
mod cors;
mod deadline;
mod demo;
mod denial;
mod explain;
mod forwarded;
mod gate;
mod identity;
mod lifecycle;
mod limits;
mod proxy;
mod reload;
mod route;
mod server;
mod trace;
mod upstream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc's malloc was ~12% of the proxy core under load (docs/benchmarks.md); mimalloc's
/// thread-local free lists fit a proxy's many short-lived allocations.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "An API gateway on Pingora: route, authenticate, authorize, rate-limit, forward"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file.
    Run {
        #[arg(short, long, default_value = "config/tollgate.yaml")]
        config: PathBuf,
        /// Take over the listening sockets of a running tollgate (SIGQUIT graceful upgrade).
        #[arg(long)]
        upgrade: bool,
        /// Reload when the config file changes, as on SIGHUP.
        #[arg(long)]
        watch: bool,
    },
    /// The embedded default: a demo issuer, an echo upstream and a built-in config, with
    /// ready-to-paste `curl` lines; no files and no network beyond loopback.
    Demo {
        /// The gateway's port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// The admin port on 127.0.0.1.
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
    },
    /// Check a config file fully; exit 0 if it is valid, 1 if not.
    Validate {
        #[arg(short, long, default_value = "config/tollgate.yaml")]
        config: PathBuf,
    },
    /// Dry-run one request through routing, authentication and authorization; print each
    /// step's decision; exit 0 if it would be allowed, 1 if not. It may fetch JWKS.
    Explain {
        #[arg(short, long, default_value = "config/tollgate.yaml")]
        config: PathBuf,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        path: String,
        #[arg(long)]
        host: Option<String>,
        /// A bearer token (JWT).
        #[arg(long, conflicts_with = "api_key")]
        token: Option<String>,
        #[arg(long)]
        api_key: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => {
            // Warnings about a valid config (a short HMAC secret, skipped TLS checks) on stderr.
            init_tracing("warn");
            validate(&config)
        }
        Command::Run {
            config,
            upgrade,
            watch,
        } => {
            init_tracing("info");
            server::run(config, upgrade, watch)
        }
        Command::Demo { port, admin_port } => {
            init_tracing("warn");
            demo::demo(&demo::Ports {
                http: port,
                admin: admin_port,
            })
        }
        Command::Explain {
            config,
            method,
            path,
            host,
            token,
            api_key,
        } => {
            init_tracing("warn");
            explain::explain(
                &config,
                &explain::Request {
                    method: &method,
                    path: &path,
                    host: host.as_deref(),
                    token: token.as_deref(),
                    api_key: api_key.as_deref(),
                },
            )
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    let metrics = std::sync::Arc::new(tollgate_admin::Metrics::new());
    let checked = tollgate_config::load(path).and_then(|loaded| {
        gate::Gate::build(&loaded, &metrics, None, None).map(|gate| (loaded, gate))
    });
    match checked {
        Ok((loaded, gate)) => {
            println!(
                "ok: {} is valid ({} routes, {} upstreams)",
                path.display(),
                gate.routes.len(),
                loaded.file.upstreams.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}
