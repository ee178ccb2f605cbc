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
//! And it closes connections that hold a descriptor without using it: a new
//! connection that sends nothing within `timeouts.header` of being accepted, and a
//! keep-alive connection idle for `timeouts.client_idle` between two requests.
//! At most `limits.max_connections` are open at once: at the cap, the connection
//! idle the longest is shed to make room, and only when none is idle is the new
//! one refused (503 in Ollama's shape). So ten thousand idle sockets cannot keep
//! `/warmline/health` or a real client out.
//!
//! The guard sits in the connection's IO ([`Guarded`]) because that is the only
//! place that sees a head before hyper has parsed it. It knows the phase of the
//! connection from the service: [`Peer`] marks the head complete when hyper hands the
//! request over, and the response body marks the connection idle again when it ends,
//! so the next bytes read are the next request's head. Request *bodies* are not this
//! module's business (the proxy times out a stalled body, see `timeouts.body`).
//! An HTTP/2 connection (prior knowledge, no TLS) is guarded until its whole
//! 24-byte preface has arrived — a client sending `P` and nothing more is still
//! timed out — and not after: its frames interleave streams, and hyper's h2 has
//! its own limits. Recognising a head ([`HeadReader`]) is a pure function of the
//! bytes, fuzzed in `fuzz/`.
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
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

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
use tokio::time::Sleep;
use tower::ServiceExt as _;

use crate::error::{ConnectionError, Error};
use crate::wire::peer::{HEAD, HTTP2, IDLE, Peer, SERVING};
use crate::wire::{Flavor, error_body};

/// How long a refused connection keeps reading (and dropping) what the client still
/// sends before it closes, and how much it reads at most.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// What the connection guard enforces; read for each new connection, so a reload
/// applies to connections accepted after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// From a request's first byte to its complete head; also from accept to a
    /// new connection's first byte.
    pub timeout: Duration,
    /// Bytes of head (request line and headers).
    pub max_bytes: usize,
    /// Longest pause between two requests of a keep-alive connection.
    pub idle: Duration,
    /// Client connections open at once.
    pub max_connections: usize,
}

/// Told the metric kind (`header_timeout`, `header_too_large`) of each request
/// head the guard refuses.
pub type Refused = Arc<dyn Fn(&'static str) + Send + Sync>;

/// What the server serves: any cloneable service from requests to responses that
/// never fails (errors are answers). The gateway's is `gateway::router::Front`; an
/// axum `Router` is one too.
pub trait App:
    tower::Service<
        Request<Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: tower::Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Serves `app` on `listener` until `stop` turns true, then lets open connections
/// finish. Abort the returned task to cut them.
pub fn spawn(
    listener: TcpListener,
    router: impl App,
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
        let open = Arc::new(Registry::default());
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        let limits = limits();
                        let peer = Peer::connected(addr);
                        let Some(slot) = open.admit(&peer.phase, limits.max_connections) else {
                            (refused)("too_many_connections");
                            refuse_connection(tcp);
                            continue;
                        };
                        // Streams are many small writes: never let Nagle hold a token back.
                        let _ = tcp.set_nodelay(true);
                        let io = Guarded::new(tcp, Arc::clone(&peer.phase), limits, refused.clone());
                        serve_connection(&builder, io, peer, &router, &stop, slot, &mut connections);
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
    router: &impl App,
    stop: &watch::Receiver<bool>,
    slot: Slot,
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
        let shed = Arc::clone(&slot.shed);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            // Idle and the oldest at the cap: closed to make room (dropping an
            // idle HTTP/1 connection is an orderly close).
            () = shed.notified() => Ok(()),
        };
        drop(slot);
        if let Err(err) = result {
            tracing::trace!("connection ended: {err}");
        }
    });
}

/// An open connection: its phase, and how to tell it to close.
type Open = (Arc<AtomicU8>, Arc<tokio::sync::Notify>);

/// The open connections, for the cap and for shedding idle ones.
#[derive(Debug, Default)]
struct Registry {
    open: std::sync::Mutex<std::collections::BTreeMap<u64, Open>>,
    next: std::sync::atomic::AtomicU64,
}

/// A connection's place in the [`Registry`]; dropping it frees the place.
struct Slot {
    id: u64,
    registry: Arc<Registry>,
    shed: Arc<tokio::sync::Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.registry.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Registry {
    /// A place for a new connection whose phase is `phase`: at once under `max`;
    /// at the cap, after shedding the oldest idle connection; `None` when every
    /// connection is busy.
    fn admit(self: &Arc<Self>, phase: &Arc<AtomicU8>, max: usize) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        if open.len() >= max.max(1) {
            // Ids grow with time, so the first idle one found is the oldest.
            let victim = open
                .iter()
                .find(|(_, (phase, _))| phase.load(Relaxed) == IDLE)
                .map(|(id, _)| *id)?;
            if let Some((_, shed)) = open.remove(&victim) {
                shed.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Relaxed);
        let shed = Arc::new(tokio::sync::Notify::new());
        open.insert(id, (Arc::clone(phase), Arc::clone(&shed)));
        Some(Slot {
            id,
            registry: Arc::clone(self),
            shed,
        })
    }
}

/// Answers a connection over the cap with 503 and closes it.
fn refuse_connection(tcp: TcpStream) {
    let bytes = raw_response(&ConnectionError::TooManyConnections.into());
    let _ = tcp.try_write(&bytes);
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
    /// When the current head (or idle spell) runs out.
    due: tokio::time::Instant,
    /// The timer behind `due`, allocated when first needed and reused. It may
    /// be set earlier than `due` (a deadline since pushed back): it is reset
    /// only when it fires early or must fire sooner, not for every request.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Set once the connection was refused: the lingering close.
    lingering: Option<Lingering>,
    /// Recognises the current request head (and an HTTP/2 preface).
    reader: HeadReader,
    /// Whether the idle deadline is armed for the current idle spell.
    idle_armed: bool,
    /// No request has begun on this connection yet.
    fresh: bool,
    refused: Refused,
}

struct Lingering {
    until: Pin<Box<Sleep>>,
    read: usize,
}

/// The HTTP/2 connection preface a prior-knowledge client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the bytes of a request head amount to so far (see [`HeadReader`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Part of a head, within the limit: keep the deadline armed.
    Head,
    /// The whole HTTP/2 preface: not an HTTP/1 head; stop guarding.
    Http2,
    /// More than the limit of head bytes.
    TooLarge,
}

/// Recognises one request head as its bytes arrive: counts them against the
/// limit, and tells a complete HTTP/2 preface from an HTTP/1 head that merely
/// starts with `P`. Pure, so it can be fuzzed without sockets.
#[derive(Debug, Clone)]
pub struct HeadReader {
    max_bytes: usize,
    bytes: usize,
    /// How much of [`H2_PREFACE`] the connection's first bytes matched; `None`
    /// once they cannot be a preface (or this is not the connection's first head).
    preface: Option<usize>,
}

impl HeadReader {
    /// A reader for a connection's first head (which may be an HTTP/2 preface).
    pub fn first(max_bytes: usize) -> HeadReader {
        HeadReader {
            max_bytes,
            bytes: 0,
            preface: Some(0),
        }
    }

    /// Starts the next head of an HTTP/1 keep-alive connection.
    pub fn next_head(&mut self) {
        self.bytes = 0;
        self.preface = None;
    }

    /// Takes the next bytes read from the client.
    pub fn observe(&mut self, read: &[u8]) -> Seen {
        self.bytes = self.bytes.saturating_add(read.len());
        if let Some(matched) = self.preface {
            let want = &H2_PREFACE[matched..];
            let n = want.len().min(read.len());
            if read[..n] == want[..n] {
                let matched = matched + n;
                if matched == H2_PREFACE.len() {
                    self.preface = None;
                    return Seen::Http2;
                }
                self.preface = Some(matched);
            } else {
                self.preface = None;
            }
        }
        if self.bytes > self.max_bytes {
            Seen::TooLarge
        } else {
            Seen::Head
        }
    }

    /// Bytes of the current head read so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Guarded {
    fn new(tcp: TcpStream, phase: Arc<AtomicU8>, limits: HeadLimits, refused: Refused) -> Guarded {
        let mut guarded = Guarded {
            tcp,
            phase,
            limits,
            due: tokio::time::Instant::now(),
            deadline: None,
            lingering: None,
            reader: HeadReader::first(limits.max_bytes),
            idle_armed: true,
            fresh: true,
            refused,
        };
        // From accept: a connection that never sends a byte is closed too.
        guarded.arm(limits.timeout);
        guarded
    }

    fn arm(&mut self, after: Duration) {
        self.due = crate::sys::clock::after(after);
    }

    /// Answers the request whose head is being read with `err`, then lingers.
    fn refuse(&mut self, err: ConnectionError, cx: &mut Context<'_>) {
        let err = Error::from(err);
        let kind = err.kind();
        (self.refused)(kind);
        tracing::debug!(status = err.status().as_u16(), kind, "{err}");
        let bytes = raw_response(&err);
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
            HEAD => this.poll_head(cx, buf),
            IDLE => this.poll_idle(cx, buf),
            _ => Pin::new(&mut this.tcp).poll_read(cx, buf),
        }
    }
}

impl Guarded {
    /// Whether the armed deadline has passed (registering for its wake-up if not).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let due = self.due;
        let sleep = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if sleep.deadline() > due {
            sleep.as_mut().reset(due);
        }
        // A timer that fires before `due` was set for an earlier deadline: wait
        // on until `due` itself.
        while sleep.as_mut().poll(cx).is_ready() {
            if tokio::time::Instant::now() >= due {
                return true;
            }
            sleep.as_mut().reset(due);
        }
        false
    }

    /// Reading a request head: 431 past the size limit, 408 past the deadline.
    fn poll_head(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.reader.bytes() > self.limits.max_bytes {
            let limit = self.limits.max_bytes;
            self.refuse(ConnectionError::HeadTooLarge { limit }, cx);
            return self.poll_linger(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                self.observe(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                if !self.expired(cx) {
                    return Poll::Pending;
                }
                let after = self.limits.timeout;
                self.refuse(ConnectionError::HeadTimeout { after }, cx);
                self.poll_linger(cx)
            }
        }
    }

    /// Between requests (or before the first): the first byte starts a head; a
    /// connection that stays silent past its deadline is closed quietly.
    fn poll_idle(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if !self.idle_armed {
            // A response just ended: the keep-alive idle spell starts now.
            self.idle_armed = true;
            self.arm(self.limits.idle);
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Pending => {
                if self.expired(cx) {
                    // End of stream for hyper: it closes the connection.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if read.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                if self.fresh {
                    // The first head's deadline runs from accept, already armed.
                    self.fresh = false;
                } else {
                    self.reader.next_head();
                    self.arm(self.limits.timeout);
                }
                self.idle_armed = false;
                self.phase.store(HEAD, Relaxed);
                self.observe(read);
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Feeds bytes of a head to the reader; a complete HTTP/2 preface ends the
    /// guarding of this connection.
    fn observe(&mut self, read: &[u8]) {
        if !read.is_empty() && self.reader.observe(read) == Seen::Http2 {
            self.phase.store(HTTP2, Relaxed);
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
fn raw_response(err: &Error) -> Vec<u8> {
    let status = err.status();
    let body = error_body(status, &err.to_string(), Flavor::Ollama);
    let mut bytes = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

#[cfg(test)]
mod tests;
