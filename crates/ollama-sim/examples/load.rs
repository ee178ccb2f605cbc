//! A tiny closed-loop load generator for the simulator (no external tools).
//!
//! ```text
//! ollama-sim serve --listen 127.0.0.1:11500 --quiet &
//! cargo run --release -p ollama-sim --example load -- 127.0.0.1:11500 32 5 chat
//! ```
//!
//! Arguments: address, connections, seconds, and the request kind: `chat`
//! (non-stream `/api/chat`), `stream` (streamed `/api/chat`), `v1` (non-stream
//! `/v1/chat/completions`) or `tags` (`GET /api/tags`). It runs on one thread
//! so that, on a two-core machine, the simulator gets the other core.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

fn request(kind: &str, addr: SocketAddr) -> Request<Full<Bytes>> {
    let (method, path, body) = match kind {
        "stream" => (
            "POST",
            "/api/chat",
            r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}]}"#,
        ),
        "v1" => (
            "POST",
            "/v1/chat/completions",
            r#"{"model":"llama3.2","messages":[{"role":"user","content":"hello"}]}"#,
        ),
        "tags" => ("GET", "/api/tags", ""),
        _ => (
            "POST",
            "/api/chat",
            r#"{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hello"}]}"#,
        ),
    };
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

async fn worker(addr: SocketAddr, kind: String, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        eprintln!("connect to {addr} failed");
        return;
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return;
    };
    tokio::spawn(conn);
    while !stop.load(Ordering::Relaxed) {
        let Ok(resp) = sender.send_request(request(&kind, addr)).await else {
            return;
        };
        let ok = resp.status().is_success();
        if resp.into_body().collect().await.is_ok() && ok {
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 11434)));
    let conns: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let secs: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5)
        .min(60);
    let kind = args.get(3).cloned().unwrap_or_else(|| "chat".to_owned());
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        eprintln!("cannot build runtime");
        return;
    };
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        // Warm the model so the measurement excludes the first load.
        worker_once(addr, &kind).await;
        let start = Instant::now();
        let tasks: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(worker(addr, kind.clone(), stop.clone(), done.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let n = done.load(Ordering::Relaxed);
        let rate = n as f64 / start.elapsed().as_secs_f64();
        println!("{kind}: {n} requests in {secs}s over {conns} connections = {rate:.0} req/s");
    });
}

/// One request on its own connection (warms the model up).
async fn worker_once(addr: SocketAddr, kind: &str) {
    if let Ok(stream) = tokio::net::TcpStream::connect(addr).await
        && let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        tokio::spawn(conn);
        if let Ok(resp) = sender.send_request(request(kind, addr)).await {
            let _ = resp.into_body().collect().await;
        }
    }
}
