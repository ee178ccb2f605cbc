//! The HTTP server: the accept loop, one hyper connection per client, graceful
//! drain, and the guard that cuts off slow or oversized request heads.
//!
//! `axum::serve` would do most of this, but it answers neither a request head that
//! trickles in (a slowloris client holds a connection for ever) nor one that is too
//! large with a body: hyper closes the first silently and answers the second with a
//! bare 431. Warmline answers both itself, in Ollama's error shape:
//!
//! - **408** when a request's line and headers have not all arrived within
//!   `timeouts.header` of their first byte;
//! - **431** when more than `limits.max_header` bytes of head arrive without the head
//!   being complete.
//!
//! The guard sits in the connection's IO ([`Guarded`]) because that is the only
//! place that sees a head before hyper has parsed it. It knows the phase of the
//! connection from the service: [`Peer`] marks the head complete when hyper hands the
//! request over, and the response body marks the connection idle again when it ends,
//! so the next bytes read are the next request's head. Request *bodies* are not this
//! module's business (the proxy times out a stalled body, see `timeouts.body`), and
//! HTTP/2 connections (prior knowledge, no TLS) are not guarded: their frames
//! interleave streams, and hyper's h2 has its own limits.
//!
//! A refused head gets its response written straight to the socket, then the write
//! side is shut and whatever the client still sends is read and dropped for a moment
//! (a lingering close): closing with unread data would reset the connection and could
//! destroy the response before the client reads it.
//!
//! Shutdown: the accept loop stops when told, each connection finishes the request
//! it is serving (hyper's graceful shutdown closes idle keep-alive connections at
//! once), and the task ends when the last connection does. Aborting the task drops
//! the connection set, which cuts every connection still open: that is how the
//! gateway enforces `timeouts.drain`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::error::{Flavor, error_response};

/// How long a refused connection keeps reading (and dropping) what the client still
/// sends before it closes, and how much it reads at most.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// What the head guard enforces; read for each new connection, so a reload applies
/// to connections accepted after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// From a request's first byte to its complete head.
    pub timeout: Duration,
    /// Bytes of head (request line and headers).
    pub max_bytes: usize,
}

/// Told the metric kind (`header_timeout`, `header_too_large`) of each request
/// head the guard refuses.
pub type Refused = Arc<dyn Fn(&'static str) + Send + Sync>;

/// Who sent a request: the client's address, and the connection's head guard. Every
/// request served by [`run`] carries one as an extension.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    phase: Arc<AtomicU8>,
}

impl Peer {
    /// A peer with no connection behind it (for requests made in-process).
    pub fn detached(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            phase: Arc::new(AtomicU8::new(HTTP2)),
        }
    }
}

/// The connection's phase, shared by its IO (reads) and its service (requests).
/// Waiting for a request's first byte.
const IDLE: u8 = 0;
/// Reading a request head: the guard is armed.
const HEAD: u8 = 1;
/// A request is being served (its body, if any, is being read; its response sent).
const SERVING: u8 = 2;
/// An HTTP/2 connection (or none at all): never guarded.
const HTTP2: u8 = 3;

/// Serves `router` on `listener` until `stop` turns true, then lets open connections
/// finish. Abort the returned task to cut them.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    limits: impl Fn() -> HeadLimits + Send + 'static,
    refused: Refused,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // hyper's defaults, deliberately: raising its header count (100) makes it
        // allocate and zero a header table per request, which measurably cost
        // ~80 µs of CPU per request. More than 100 headers get hyper's own 431.
        let builder = auto::Builder::new(TokioExecutor::new());
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        // Streams are many small writes: never let Nagle hold a token back.
                        let _ = tcp.set_nodelay(true);
                        let peer = Peer { addr, phase: Arc::new(AtomicU8::new(IDLE)) };
                        let io = Guarded::new(tcp, Arc::clone(&peer.phase), limits(), refused.clone());
                        serve_connection(&builder, io, peer, &router, &stop, &mut connections);
                    }
                    Err(err) => accept_failed(err).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = stopped(&mut stop) => break,
            }
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    })
}

/// Serves one connection in a task of `connections`; once `stop` turns true, the
/// connection finishes its current request and closes.
fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    io: Guarded,
    peer: Peer,
    router: &Router,
    stop: &watch::Receiver<bool>,
    connections: &mut JoinSet<()>,
) {
    let router = router.clone();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        // The head is complete: from here on, reads are this request's body.
        let _ = peer
            .phase
            .fetch_update(Relaxed, Relaxed, |p| (p != HTTP2).then_some(SERVING));
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(peer.clone());
        let phase = Arc::clone(&peer.phase);
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| EndOfResponse {
                body,
                phase: Some(phase),
            }))
        }
    });
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .into_owned();
    let mut stop = stop.clone();
    connections.spawn(async move {
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = result {
            tracing::trace!("connection ended: {err}");
        }
    });
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accept errors: a connection that failed before we took it is the client's
/// problem; anything else (out of file descriptors, most often) is ours, and
/// retrying at once would spin.
async fn accept_failed(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("cannot accept connections: {err}; retrying in 1s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A response body that marks its connection idle when it ends, so the next bytes
/// read are treated as the next request's head.
struct EndOfResponse {
    body: Body,
    phase: Option<Arc<AtomicU8>>,
}

impl EndOfResponse {
    fn ended(&mut self) {
        if let Some(phase) = self.phase.take() {
            let _ = phase.compare_exchange(SERVING, IDLE, Relaxed, Relaxed);
        }
    }
}

impl Drop for EndOfResponse {
    fn drop(&mut self) {
        self.ended();
    }
}

impl HttpBody for EndOfResponse {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        if frame.is_none() {
            self.ended();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client connection whose request heads are guarded (see the module docs).
struct Guarded {
    tcp: TcpStream,
    phase: Arc<AtomicU8>,
    limits: HeadLimits,
    /// Head bytes read so far for the current request.
    head_bytes: usize,
    /// The head deadline; allocated with the first head and reused.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set once the connection was refused: the lingering close.
    lingering: Option<Lingering>,
    /// Whether the first bytes have been looked at (to tell HTTP/2 apart).
    sniffed: bool,
    refused: Refused,
}

struct Lingering {
    until: Pin<Box<Sleep>>,
    read: usize,
}

/// The HTTP/2 connection preface a prior-knowledge client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl Guarded {
    fn new(tcp: TcpStream, phase: Arc<AtomicU8>, limits: HeadLimits, refused: Refused) -> Guarded {
        Guarded {
            tcp,
            phase,
            limits,
            head_bytes: 0,
            deadline: None,
            lingering: None,
            sniffed: false,
            refused,
        }
    }

    fn arm(&mut self) {
        let at = Instant::now() + self.limits.timeout;
        match &mut self.deadline {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// Answers the request whose head is being read with `status`, then lingers.
    fn refuse(&mut self, status: http::StatusCode, message: &str, cx: &mut Context<'_>) {
        let kind = if status == http::StatusCode::REQUEST_TIMEOUT {
            "header_timeout"
        } else {
            "header_too_large"
        };
        (self.refused)(kind);
        tracing::debug!(status = status.as_u16(), kind, "{message}");
        let bytes = raw_response(status, message);
        // Best effort and without waiting: the answer is small and the socket's send
        // buffer empty (nothing else is written while a head is read).
        let _ = self.tcp.try_write(&bytes);
        let _ = Pin::new(&mut self.tcp).poll_shutdown(cx);
        self.lingering = Some(Lingering {
            until: Box::pin(tokio::time::sleep(LINGER)),
            read: 0,
        });
    }

    /// Reads and drops what the client still sends, until it closes, `LINGER` has
    /// passed or `LINGER_BYTES` were read; then reports end of stream to hyper.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(lingering) = &mut self.lingering else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 4096];
        loop {
            if lingering.read >= LINGER_BYTES || lingering.until.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.tcp).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => lingering.read += buf.filled().len(),
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

use std::future::Future;

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.lingering.is_some() {
            return this.poll_linger(cx);
        }
        match this.phase.load(Relaxed) {
            HEAD => {
                if this.head_bytes > this.limits.max_bytes {
                    let message = format!(
                        "request headers are larger than the configured limit of {} bytes \
                         (limits.max_header)",
                        this.limits.max_bytes
                    );
                    this.refuse(
                        http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                        &message,
                        cx,
                    );
                    return this.poll_linger(cx);
                }
                let before = buf.filled().len();
                match Pin::new(&mut this.tcp).poll_read(cx, buf) {
                    Poll::Ready(result) => {
                        this.head_bytes += buf.filled().len() - before;
                        Poll::Ready(result)
                    }
                    Poll::Pending => {
                        let expired = this
                            .deadline
                            .as_mut()
                            .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                        if !expired {
                            return Poll::Pending;
                        }
                        let message = format!(
                            "the request's headers did not arrive within {} (timeouts.header)",
                            humantime::format_duration(this.limits.timeout)
                        );
                        this.refuse(http::StatusCode::REQUEST_TIMEOUT, &message, cx);
                        this.poll_linger(cx)
                    }
                }
            }
            IDLE => {
                let before = buf.filled().len();
                ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
                let read = &buf.filled()[before..];
                if read.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if !this.sniffed {
                    this.sniffed = true;
                    if read.starts_with(&H2_PREFACE[..read.len().min(H2_PREFACE.len())]) {
                        this.phase.store(HTTP2, Relaxed);
                        return Poll::Ready(Ok(()));
                    }
                }
                this.head_bytes = read.len();
                this.phase.store(HEAD, Relaxed);
                this.arm();
                Poll::Ready(Ok(()))
            }
            _ => Pin::new(&mut this.tcp).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A whole HTTP/1.1 response in Ollama's error shape, for a request hyper never saw.
/// The request line was not parsed, so which API the client speaks is unknown:
/// Ollama's native shape, which OpenAI clients also surface as the message.
fn raw_response(status: http::StatusCode, message: &str) -> Vec<u8> {
    let response = error_response(status, message, Flavor::Ollama);
    let body = serde_json::json!({ "error": message }).to_string();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json; charset=utf-8");
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(limits: HeadLimits) -> (SocketAddr, watch::Sender<bool>) {
        let router = Router::new().route(
            "/",
            axum::routing::any(|request: axum::extract::Request| async move {
                let peer = request.extensions().get::<Peer>().map(|p| p.addr.ip());
                format!("hello {peer:?}")
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stop_rx) = watch::channel(false);
        spawn(listener, router, move || limits, Arc::new(|_| {}), stop_rx);
        (addr, stop)
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    const LIMITS: HeadLimits = HeadLimits {
        timeout: Duration::from_millis(300),
        max_bytes: 1024,
    };

    #[tokio::test]
    async fn keep_alive_requests_are_served_and_see_their_peer() {
        let (addr, _stop) = server(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        for _ in 0..3 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .expect("write");
            let mut buf = [0u8; 512];
            let n = stream.read(&mut buf).await.expect("read");
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.contains("hello Some(127.0.0.1)"), "{text}");
        }
    }

    #[tokio::test]
    async fn a_head_that_trickles_in_gets_408_in_ollamas_shape() {
        let (addr, _stop) = server(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"POST /api/chat HTTP/1.1\r\nHost: loc")
            .await
            .expect("write");
        let text = read_all(&mut stream).await;
        assert!(
            text.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{text}"
        );
        assert!(text.contains("connection: close"), "{text}");
        assert!(
            text.ends_with(
                "{\"error\":\"the request's headers did not arrive within 300ms (timeouts.header)\"}"
            ),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_oversized_head_gets_431_in_ollamas_shape() {
        let (addr, _stop) = server(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head = b"GET / HTTP/1.1\r\nHost: localhost\r\n".to_vec();
        for i in 0..200 {
            head.extend_from_slice(format!("x-filler-{i}: {}\r\n", "y".repeat(20)).as_bytes());
        }
        // Sent in pieces, as a real client's large head arrives.
        for piece in head.chunks(512) {
            if stream.write_all(piece).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let text = read_all(&mut stream).await;
        assert!(
            text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{text}"
        );
        assert!(text.contains("(limits.max_header)"), "{text}");
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_not_timed_out() {
        let (addr, _stop) = server(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf).await.expect("read");
        // Longer than the head timeout between two requests: still served.
        tokio::time::sleep(Duration::from_millis(600)).await;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let n = stream.read(&mut buf).await.expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn stop_refuses_new_connections_and_finishes_open_ones() {
        let (addr, stop) = server(LIMITS).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stop.send(true).expect("stop");
        // The accept loop is gone: a new connection is refused (or never answered).
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(TcpStream::connect(addr).await.is_err());
        // The open, idle connection was closed gracefully.
        assert_eq!(read_all(&mut stream).await, "");
    }
}
