//! The own HTTP/1.1 loop against hyper's server, byte for byte: the same router
//! behind both, the same raw requests, the same bytes back (the `date` value
//! aside). And what it hands over to hyper, served as before.

use super::*;
use crate::edge::server::{HeadLimits, spawn};
use axum::Router;
use axum::routing::{any, get};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

fn router(dropped: Arc<AtomicBool>) -> Router {
    let stream = || {
        let chunks = ["{\"a\":1}\n", "{\"b\":2}\n", "{\"done\":true}\n"]
            .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from_static(c.as_bytes())));
        Body::from_stream(futures_util::stream::iter(chunks))
    };
    Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                    "{\"ok\":true}",
                )
            }),
        )
        .route("/stream", get(move || async move { stream() }))
        .route("/none", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/odd",
            get(|| async {
                (
                    StatusCode::from_u16(599).expect("status"),
                    [("x-one", "1"), ("x-two", "2")],
                    "odd",
                )
            }),
        )
        .route(
            "/close",
            get(|| async { ([(header::CONNECTION, "close")], "bye") }),
        )
        .route("/echo", any(|body: Bytes| async move { body }))
        .route(
            "/slow",
            get(move || {
                let flag = DropFlag(Arc::clone(&dropped));
                async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    drop(flag);
                    "late"
                }
            }),
        )
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

const LIMITS: HeadLimits = HeadLimits {
    timeout: Duration::from_secs(5),
    max_bytes: 16 << 10,
    idle: Duration::from_secs(5),
    max_connections: 100,
};

/// Warmline's server (own loop first) on the router.
async fn own(dropped: Arc<AtomicBool>) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stop_rx) = watch::channel(false);
    spawn(
        listener,
        router(dropped),
        || LIMITS,
        Arc::new(|_| {}),
        stop_rx,
    );
    (addr, stop)
}

/// hyper's server alone on the same router: what the own loop must match.
async fn hyper_only() -> SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = router(Arc::new(AtomicBool::new(false)));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `request` (raw bytes, possibly several pipelined requests, the last
/// asking to close) and reads until the server closes.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server did not close: {}",
        String::from_utf8_lossy(&out)
    );
    undated(&String::from_utf8_lossy(&out))
}

/// `text` with every `date` header's value blanked.
fn undated(text: &str) -> String {
    text.split("\r\n")
        .map(|line| {
            if line.starts_with("date: ") {
                "date: -"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

const CASES: &[&str] = &[
    "GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "HEAD /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /odd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "GET /close HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    // Pipelined: three answers on one connection, in order.
    "GET /json HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    // Handed to hyper: a chunked body, Expect, HTTP/1.0, a malformed head.
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    "GET /json HTTP/1.0\r\nHost: x\r\n\r\n",
    "GET /json HTTP/1.1\r\nHost x\r\n\r\n",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
];

#[tokio::test]
async fn answers_are_byte_for_byte_hypers() {
    let (own, _stop) = own(Arc::new(AtomicBool::new(false))).await;
    let hyper = hyper_only().await;
    for case in CASES {
        let ours = exchange(own, case.as_bytes()).await;
        let theirs = exchange(hyper, case.as_bytes()).await;
        assert_eq!(ours, theirs, "for {case:?}");
        assert!(!ours.is_empty(), "no answer to {case:?}");
    }
}

#[tokio::test]
async fn every_answer_carries_a_date() {
    let (own, _stop) = own(Arc::new(AtomicBool::new(false))).await;
    let mut tcp = TcpStream::connect(own).await.expect("connect");
    tcp.write_all(CASES[0].as_bytes()).await.expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.expect("read");
    let date = out
        .lines()
        .find_map(|line| line.strip_prefix("date: "))
        .expect("a date header");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
}

#[tokio::test]
async fn a_body_that_follows_its_head_later_is_still_served() {
    let (own, _stop) = own(Arc::new(AtomicBool::new(false))).await;
    for pause in [Duration::from_millis(1), BODY_GRACE * 5] {
        let mut tcp = TcpStream::connect(own).await.expect("connect");
        let head =
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.expect("head");
        tokio::time::sleep(pause).await;
        tcp.write_all(b"hello ").await.expect("body");
        tokio::time::sleep(pause).await;
        tcp.write_all(b"world").await.expect("body");
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.expect("read");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nhello world"), "{out}");
    }
}

#[tokio::test]
async fn a_client_that_hangs_up_ends_its_request() {
    let dropped = Arc::new(AtomicBool::new(false));
    let (own, _stop) = own(Arc::clone(&dropped)).await;
    let mut tcp = TcpStream::connect(own).await.expect("connect");
    tcp.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!dropped.load(SeqCst));
    drop(tcp);
    for _ in 0..100 {
        if dropped.load(SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the request outlived its client");
}

#[test]
fn heads_are_read_or_left_to_hyper() {
    let mut head = Head::new();
    let text = b"POST /api/chat?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nConnection: keep-alive, close\r\n\r\n{}";
    assert!(matches!(parse(text, &mut head), Parsed::Head));
    assert_eq!(head.method, Method::POST);
    assert_eq!(
        &text[head.path.0..head.path.0 + head.path.1],
        b"/api/chat?x=1"
    );
    assert_eq!((head.body, head.close, head.fields.len()), (12, true, 3));
    assert_eq!(&text[head.len..], b"{}");
    assert!(matches!(parse(&text[..20], &mut head), Parsed::Partial));
    for unusual in [
        &b"GET / HTTP/1.0\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        b"CONNECT a:1 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header\r\n\r\n",
    ] {
        assert!(
            matches!(parse(unusual, &mut head), Parsed::Unusual),
            "{}",
            String::from_utf8_lossy(unusual)
        );
    }
    // Equal duplicates are one length.
    let twice = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab";
    assert!(matches!(parse(twice, &mut head), Parsed::Head));
    assert_eq!(head.body, 2);
}
