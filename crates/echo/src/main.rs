//! `tollgate-echo [ADDR] [NAME]`: serve the echo upstream (default 127.0.0.1:9001, "echo").

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let name = args.next().unwrap_or_else(|| "echo".to_owned());
    let addr: std::net::SocketAddr = addr
        .parse()
        .with_context(|| format!("bad address {addr:?}"))?;
    let threads: usize = std::env::var("ECHO_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind {addr}"))?;
        eprintln!(
            "tollgate-echo {name} listening on {}",
            listener.local_addr()?
        );
        tollgate_echo::serve(listener, name).await;
        Ok(())
    })
}
