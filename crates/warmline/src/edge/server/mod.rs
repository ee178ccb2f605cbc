//! The HTTP server: the accept loop, one task per client connection, graceful
//! drain, and the limits that cut off slow or oversized request heads.
//!
//! ```text
//!  accept ─▶ cap (shed the oldest idle, else 503) ─▶ task:
//!      http1::Connection::serve  (Warmline's own HTTP/1.1 loop: nearly every request)
//!        └─ hands over ─▶ hyper (HTTP/2, HTTP/1.0, chunked or late bodies, …),
//!                          its later heads guarded by guard::Guarded
//! ```
//!
//! `axum::serve` would do most of this, but it answers neither a request head that
//! trickles in (a slowloris client holds a connection for ever) nor one that is too
//! large with a body: hyper closes the first silently and answers the second with a
//! bare 431. Warmline answers both itself, in Ollama's error shape:
//!
//! - **408** when a request's line and headers have not all arrived within
//!   `timeouts.header` of their first byte;
//! - **431** when more than `limits.max_header` bytes of head arrive (whole or not).
//!
//! And it closes connections that hold a descriptor without using it: a new
//! connection that sends nothing within `timeouts.header` of being accepted, and a
//! keep-alive connection idle for `timeouts.client_idle` between two requests.
//! At most `limits.max_connections` are open at once: at the cap, the connection
//! idle the longest is shed to make room, and only when none is idle is the new
//! one refused (503 in Ollama's shape). So ten thousand idle sockets cannot keep
//! `/warmline/health` or a real client out.
//!
//! The own loop ([`http1`]) reads heads itself and enforces all of this directly.
//! On a connection handed to hyper, the guard sits in the connection's IO
//! ([`Guarded`]), the only place that sees a head before hyper has parsed it. It
//! knows the phase of the connection from the service: [`Peer`] marks the head
//! complete when hyper hands the request over, and the response body marks the
//! connection idle again when it ends, so the next bytes read are the next
//! request's head. Request *bodies* are not this module's business (the proxy
//! times out a stalled body, see `timeouts.body`). An HTTP/2 connection (prior
//! knowledge, no TLS) is guarded until its whole 24-byte preface has arrived — a
//! client sending `P` and nothing more is still timed out — and not after: its
//! frames interleave streams, and hyper's h2 has its own limits. Recognising a
//! head ([`HeadReader`]) is a pure function of the bytes, fuzzed in `fuzz/`.
//!
//! A refused head gets its response written straight to the socket, then the write
//! side is shut and whatever the client still sends is read and dropped for a moment
//! (a lingering close): closing with unread data would reset the connection and could
//! destroy the response before the client reads it.
//!
//! Shutdown: the accept loop stops when told and tells every connection through
//! the registry; each finishes the request it is serving and closes (idle
//! keep-alive connections at once), and the task ends when the last connection
//! does. Aborting the task drops the connection set, which cuts every connection
//! still open: that is how the gateway enforces `timeouts.drain`.

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
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::error::ConnectionError;
use crate::wire::peer::{HTTP2, IDLE, Peer, SERVING};

mod guard;
mod http1;

use guard::{Guarded, raw_response};
pub use guard::{HeadReader, Seen};

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
                        let connection = http1::Connection {
                            tcp,
                            peer,
                            app: router.clone(),
                            limits,
                            refused: refused.clone(),
                        };
                        serve_connection(&builder, connection, slot, &mut connections);
                    }
                    Err(err) => accept_failed(err).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = stopped(&mut stop) => {
                    open.drain();
                    break;
                }
            }
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    })
}

/// Serves one connection in a task of `connections`: Warmline's own HTTP/1.1
/// loop first, then hyper if the loop hands the connection over. Once the
/// server drains, the connection finishes its current request and closes.
fn serve_connection<A: App>(
    builder: &auto::Builder<TokioExecutor>,
    connection: http1::Connection<A>,
    slot: Slot,
    connections: &mut JoinSet<()>,
) {
    let builder = builder.clone();
    connections.spawn(async move {
        let (peer, router) = (connection.peer.clone(), connection.app.clone());
        let (limits, refused) = (connection.limits, Arc::clone(&connection.refused));
        let ended = connection.serve(&slot).await;
        if let http1::Ended::HandOver { tcp, prefix, http2 } = ended {
            peer.phase
                .store(if http2 { HTTP2 } else { SERVING }, Relaxed);
            let io = Guarded::handed_over(tcp, prefix, Arc::clone(&peer.phase), limits, refused);
            serve_with_hyper(&builder, io, peer, router, &slot).await;
        }
        drop(slot);
    });
}

/// Serves the rest of a connection with hyper (see [`http1`] for when).
async fn serve_with_hyper(
    builder: &auto::Builder<TokioExecutor>,
    io: Guarded,
    peer: Peer,
    router: impl App,
    slot: &Slot,
) {
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
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = slot.shed.notified() => {
            if slot.registry.draining.load(Relaxed) {
                conn.as_mut().graceful_shutdown();
                conn.await
            } else {
                // Idle and the oldest at the cap: closed to make room (dropping
                // an idle HTTP/1 connection is an orderly close).
                Ok(())
            }
        }
    };
    if let Err(err) = result {
        tracing::trace!("connection ended: {err}");
    }
}

/// An open connection: its phase, and how to tell it to close.
type Open = (Arc<AtomicU8>, Arc<tokio::sync::Notify>);

/// The open connections, for the cap and for shedding idle ones.
#[derive(Debug, Default)]
struct Registry {
    open: std::sync::Mutex<std::collections::BTreeMap<u64, Open>>,
    next: std::sync::atomic::AtomicU64,
    /// The server stopped accepting: each connection finishes the request it
    /// serves and closes (told through its `shed`).
    draining: std::sync::atomic::AtomicBool,
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
    /// Starts the drain: every open connection is told to close once idle.
    fn drain(&self) {
        self.draining.store(true, Relaxed);
        if let Ok(open) = self.open.lock() {
            for (_, shed) in open.values() {
                shed.notify_one();
            }
        }
    }

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

#[cfg(test)]
mod tests;
