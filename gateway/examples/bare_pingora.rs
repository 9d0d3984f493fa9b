//! The floor under Tollgate: a Pingora proxy that does nothing but forward, for `bench/run.sh`
//! (the `pingora` row). No routing, no auth, no access log, no metrics; one worker thread,
//! connections kept on the thread that accepted them and the same allocator as Tollgate, so the
//! difference between the two rows is what Tollgate adds.
//!
//! ```sh
//! cargo run --release --example bare_pingora -- 127.0.0.1:8080 127.0.0.1:9000
//! ```

use std::process::ExitCode;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Forward {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Forward {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR");
        return ExitCode::FAILURE;
    };
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        // A benchmark target: SIGTERM ends it at once, without Pingora's graceful wait.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Forward { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever()
}
