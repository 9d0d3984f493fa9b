//! A small HTTP upstream that answers every request with what it received, as JSON:
//! `{"server": NAME, "method": .., "uri": .., "version": .., "peer": ADDR, "headers": {..},
//! "body_bytes": N}` (`peer`: the connection it came on).
//!
//! Used by the end-to-end tests, the benchmark, the runnable example and `tollgate demo`
//! (which also serves its demo issuer's two documents with [`serve_documents`]). Two request headers
//! steer it: `x-echo-status: 503` picks the status, `x-echo-delay-ms: 2000` waits first; a
//! path `/echo-status/503` picks the status as well.
#![deny(clippy::unwrap_used)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

/// Serves `listener` until the task is dropped or aborted.
pub async fn serve(listener: TcpListener, name: String) {
    let name: Arc<str> = name.into();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let name = name.clone();
        let peer: Arc<str> = peer.to_string().into();
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(req, name.clone(), peer.clone()));
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds `addr` (port 0 for any free port) and serves it in the background.
pub async fn spawn(
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let handle = tokio::spawn(serve(listener, name.to_owned()));
    Ok((local, handle))
}

/// Serves fixed JSON documents by path (404 for any other path) until the task is dropped.
pub async fn serve_documents(listener: TcpListener, documents: HashMap<String, Bytes>) {
    let documents = Arc::new(documents);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let documents = documents.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let found = documents.get(req.uri().path()).cloned();
                async move {
                    let (status, body) = match found {
                        Some(body) => (StatusCode::OK, body),
                        None => (
                            StatusCode::NOT_FOUND,
                            Bytes::from_static(b"{\"error\":\"not_found\"}"),
                        ),
                    };
                    let mut resp = Response::new(Full::new(body));
                    *resp.status_mut() = status;
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    name: Arc<str>,
    peer: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    // `/echo-status/503` answers 503 too: for health checks, which send no headers of ours.
    let path_status = req
        .uri()
        .path()
        .strip_prefix("/echo-status/")
        .and_then(|s| s.parse::<u64>().ok());
    let status = header("x-echo-status")
        .or(path_status)
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if let Some(ms) = header("x-echo-delay-ms") {
        tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
    }
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let v = serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned());
        match headers.get_mut(k.as_str()) {
            Some(serde_json::Value::Array(list)) => list.push(v),
            Some(first) => *first = serde_json::Value::Array(vec![first.clone(), v]),
            None => {
                headers.insert(k.as_str().to_owned(), v);
            }
        }
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let version = format!("{:?}", req.version());
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => 0,
    };
    let body = serde_json::json!({
        "server": &*name,
        "method": method,
        "uri": uri,
        "version": version,
        // The connection it came on: requests that share one show the same address.
        "peer": &*peer,
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
