//! The request path's upstream client: HTTP/1.1 connections kept per host,
//! handed to one request at a time, and driven by the request's own task.
//!
//! Why not hyper's client: it is built for any URL and any protocol, and runs
//! each connection in a task of its own, so every request crosses from the
//! request's task to the connection's and back, and its dispatcher's state
//! machine runs on both sides. Counted with callgrind, that was about 13,000
//! instructions of a pass-through. Warmline knows each upstream's address when
//! the configuration is read (`upstream::Endpoint`), and speaks to daemons and
//! engines that answer plain HTTP/1.1, so the request's task writes the request
//! and reads the answer itself ([`codec`]):
//!
//! ```text
//!  request ─▶ checkout: the newest idle connection of the host, or a new one
//!          ─▶ write head (+ body) ─▶ read the response head
//!          ─▶ body, decoded as the consumer polls it … end ─▶ connection back to idle
//! ```
//!
//! An HTTP/1.1 connection is reusable exactly when its response body has ended,
//! which the body itself can tell. A body dropped before its end takes its
//! connection with it (closing it is how an upstream learns that its client
//! left, and cancels a generation). A connection the upstream closed while idle
//! is noticed at checkout, or when the request fails on it before any byte of an
//! answer came back: then the request goes once more on a new connection, as
//! hyper's pool did, if its body can be sent again. Connections idle longer than
//! `pool.idle_timeout` are dropped, at most `pool.max_idle_per_host` are kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::config::Config;
use crate::upstream::{Endpoint, Target};
use crate::wire::http1::Fields;

mod codec;

pub(crate) use codec::PooledBody;
use codec::{Outgoing, Sent};

/// Why an exchange with an upstream failed before its response head.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// No connection could be made: refused, unreachable, timed out, a name that
    /// does not resolve, or a URL Warmline cannot connect to (not `http://`).
    Connect(std::io::Error),
    /// The connection failed during the exchange, the answer was not HTTP, or the
    /// request's own body failed (its error is the cause).
    Exchange(codec::BoxError),
}

impl ClientError {
    /// Whether no connection was made (nothing was sent).
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, ClientError::Connect(_))
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(_) => f.write_str("could not connect"),
            ClientError::Exchange(_) => f.write_str("the exchange failed"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(err) => Some(err),
            ClientError::Exchange(err) => Some(err.as_ref()),
        }
    }
}

/// The pooled client, shared by every request (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient {
    pool: Arc<Pool>,
}

#[derive(Debug)]
pub(super) struct Pool {
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    /// New connections opened (for `/warmline/stats`: how well the pool is reused).
    connects: Arc<AtomicU64>,
}

/// An open connection to an upstream, and the bytes read from it not yet used.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) tcp: TcpStream,
    pub(super) buf: BytesMut,
    /// Where an answer's head is parsed (1.6 KB, allocated once per connection
    /// and boxed: the connection moves with every response body).
    pub(super) fields: Box<Fields>,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

/// The request path's client, with the pool settings and connect timeout of the
/// configuration; `TCP_NODELAY` on every connection.
pub(crate) fn build_upstream_client(config: &Config, connects: Arc<AtomicU64>) -> UpstreamClient {
    UpstreamClient::new(
        config.pool.max_idle_per_host,
        config.pool.idle_timeout,
        config.timeouts.connect,
        connects,
    )
}

impl UpstreamClient {
    fn new(
        max_idle_per_host: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
        connects: Arc<AtomicU64>,
    ) -> UpstreamClient {
        UpstreamClient {
            pool: Arc::new(Pool {
                idle: Mutex::default(),
                max_idle_per_host,
                idle_timeout,
                connect_timeout,
                connects,
            }),
        }
    }

    /// Sends `request` (its URI in origin form, its `Host` set) to `endpoint`
    /// and waits for the response head.
    pub(crate) async fn request(
        &self,
        endpoint: Option<&Endpoint>,
        request: http::Request<Body>,
    ) -> Result<http::Response<PooledBody>, ClientError> {
        let Some(endpoint) = endpoint else {
            return Err(ClientError::Connect(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "only http:// upstreams can be reached",
            )));
        };
        let mut outgoing = Outgoing::new(request);
        let (mut conn, mut reused) = match self.pool.checkout(endpoint.key()) {
            Some(conn) => (conn, true),
            None => (self.pool.connect(endpoint).await?, false),
        };
        let head = loop {
            match outgoing.exchange(&mut conn).await {
                Ok(head) => break head,
                // An idle connection the upstream had closed, found only now:
                // nothing came back, so the request goes once more on a new one.
                Err(Sent::Stale(_)) if reused && outgoing.can_resend() => {
                    conn = self.pool.connect(endpoint).await?;
                    reused = false;
                }
                Err(Sent::Stale(err) | Sent::Failed(err)) => {
                    return Err(ClientError::Exchange(err));
                }
            }
        };
        let give_back = (Arc::clone(&self.pool), Arc::clone(endpoint.key()));
        Ok(PooledBody::response(head, conn, give_back))
    }
}

impl Pool {
    /// The most recently used idle connection of `key` that is still open,
    /// dropping the ones that are not.
    fn checkout(&self, key: &str) -> Option<Conn> {
        loop {
            let idle = {
                let mut hosts = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                hosts.get_mut(key)?.pop()?
            };
            if idle.since.elapsed() <= self.idle_timeout && idle.conn.is_open() {
                return Some(idle.conn);
            }
        }
    }

    /// A new connection to `endpoint`.
    async fn connect(&self, endpoint: &Endpoint) -> Result<Conn, ClientError> {
        self.connects.fetch_add(1, Relaxed);
        endpoint.opened_one();
        let connect = async {
            match endpoint.target() {
                Target::Addr(addr) => TcpStream::connect(addr).await,
                Target::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await,
            }
        };
        let tcp = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(err)) => return Err(ClientError::Connect(err)),
            Err(_) => {
                return Err(ClientError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        // Small requests and streamed tokens go out at once.
        let _ = tcp.set_nodelay(true);
        Ok(Conn {
            tcp,
            buf: BytesMut::with_capacity(8 << 10),
            fields: Box::default(),
        })
    }

    /// Keeps a connection whose exchange ended, within the per-host limit.
    pub(super) fn give_back(&self, key: Arc<str>, conn: Conn) {
        if self.max_idle_per_host == 0 || !conn.buf.is_empty() || !conn.is_open() {
            return;
        }
        let now = Instant::now();
        let mut hosts = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let idle = hosts.entry(key).or_default();
        idle.retain(|i| now.duration_since(i.since) <= self.idle_timeout);
        if idle.len() < self.max_idle_per_host {
            idle.push(Idle { conn, since: now });
        }
    }
}

impl Conn {
    /// Whether the upstream has neither closed the connection nor sent anything
    /// unasked (as far as the runtime has seen: a close not yet noticed is caught
    /// when the next request fails on it, see the module docs).
    fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.tcp.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

#[cfg(test)]
mod tests;
