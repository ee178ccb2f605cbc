//! The request path's upstream client: HTTP/1.1 connections kept per host and
//! handed to one request at a time.
//!
//! Why not hyper's pooled client: it is built for any URL and any protocol, and
//! pays for that on every request (its own host header and URI rewriting, a pool
//! checkout future, a task spawned per request to notice the connection is idle
//! again). Counted with callgrind, it was about 25,000 instructions of a
//! pass-through's 81,000. Warmline knows each upstream's address when the
//! configuration is read (`upstream::Endpoint`), and an HTTP/1.1 connection is reusable
//! exactly when its response body has ended, which the body itself can tell:
//!
//! ```text
//!  request ─▶ checkout: the newest idle connection of the host, or a new one
//!          ─▶ send on it ─▶ response head ─▶ body … end ─▶ connection back to idle
//! ```
//!
//! A connection the upstream closed while idle is noticed at checkout (or when
//! sending on it fails before the request left, which is retried once on a new
//! connection, as hyper's own pool does). Connections idle longer than
//! `pool.idle_timeout` are dropped, at most `pool.max_idle_per_host` are kept.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::config::Config;
use crate::upstream::{Endpoint, Target};

/// Why an exchange with an upstream failed before its response head.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// No connection could be made: refused, unreachable, timed out, a name that
    /// does not resolve, or a URL Warmline cannot connect to (not `http://`).
    Connect(std::io::Error),
    /// The connection failed during the exchange (or the request's own body did).
    Exchange(hyper::Error),
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
            ClientError::Exchange(err) => Some(err),
        }
    }
}

/// The pooled client, shared by every request (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient {
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    idle: Mutex<HashMap<Arc<str>, Vec<Idle>, foldhash::fast::RandomState>>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    /// New connections opened (for `/warmline/stats`: how well the pool is reused).
    connects: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Idle {
    sender: SendRequest<Body>,
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
        let (mut sender, reused) = match self.pool.checkout(endpoint.key()).await {
            Some(sender) => (sender, true),
            None => (self.pool.connect(endpoint).await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            // An idle connection the upstream had closed, found only now: the
            // request never left, so it goes once more on a new connection.
            Err(mut err) if reused && err.message().is_some() => {
                let Some(request) = err.take_message() else {
                    return Err(ClientError::Exchange(err.into_error()));
                };
                sender = self.pool.connect(endpoint).await?;
                sender
                    .try_send_request(request)
                    .await
                    .map_err(|err| ClientError::Exchange(err.into_error()))?
            }
            Err(err) => return Err(ClientError::Exchange(err.into_error())),
        };
        let give_back = GiveBack {
            sender,
            pool: Arc::clone(&self.pool),
            key: Arc::clone(endpoint.key()),
        };
        Ok(response.map(|body| PooledBody::new(body, give_back)))
    }
}

impl Pool {
    /// The most recently used idle connection of `key` that is still open and
    /// ready, dropping the ones that are not.
    async fn checkout(&self, key: &str) -> Option<SendRequest<Body>> {
        loop {
            let idle = {
                let mut hosts = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                hosts.get_mut(key)?.pop()?
            };
            if idle.since.elapsed() > self.idle_timeout || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            // Ready unless the connection is still finishing the previous
            // exchange, which takes no more than a turn of its task.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// A new connection to `endpoint`, its task spawned.
    async fn connect(&self, endpoint: &Endpoint) -> Result<SendRequest<Body>, ClientError> {
        self.connects.fetch_add(1, Relaxed);
        endpoint.opened_one();
        let connect = async {
            match endpoint.target() {
                Target::Addr(addr) => tokio::net::TcpStream::connect(addr).await,
                Target::Name(name, port) => {
                    tokio::net::TcpStream::connect((name.as_str(), *port)).await
                }
            }
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(ClientError::Connect(err)),
            Err(_) => {
                return Err(ClientError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )));
            }
        };
        // Small requests and streamed tokens go out at once.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Exchange)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::trace!("upstream connection ended: {err}");
            }
        });
        Ok(sender)
    }

    /// Keeps a connection whose exchange ended, within the per-host limit.
    fn give_back(&self, key: Arc<str>, sender: SendRequest<Body>) {
        if sender.is_closed() || self.max_idle_per_host == 0 {
            return;
        }
        let now = Instant::now();
        let mut hosts = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let idle = hosts.entry(key).or_default();
        idle.retain(|i| now.duration_since(i.since) <= self.idle_timeout && !i.sender.is_closed());
        if idle.len() < self.max_idle_per_host {
            idle.push(Idle { sender, since: now });
        }
    }
}

/// The connection of an exchange whose body has not ended yet.
#[derive(Debug)]
struct GiveBack {
    sender: SendRequest<Body>,
    pool: Arc<Pool>,
    key: Arc<str>,
}

/// An upstream's response body: when it ends, its connection goes back to the
/// pool (a body dropped before its end takes the connection with it: hyper
/// closes a connection whose response was not read).
#[derive(Debug)]
pub(crate) struct PooledBody {
    body: Incoming,
    give_back: Option<GiveBack>,
}

impl PooledBody {
    fn new(body: Incoming, give_back: GiveBack) -> PooledBody {
        let mut pooled = PooledBody {
            body,
            give_back: Some(give_back),
        };
        // A response without a body (204, 304, `Content-Length: 0`) has ended.
        if http_body::Body::is_end_stream(&pooled.body) {
            pooled.release();
        }
        pooled
    }

    fn release(&mut self) {
        if let Some(GiveBack { sender, pool, key }) = self.give_back.take() {
            pool.give_back(key, sender);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => self.release(),
            Some(Ok(_)) if self.body.is_end_stream() => self.release(),
            // A broken body: the connection is not reused.
            Some(Err(_)) => self.give_back = None,
            Some(Ok(_)) => {}
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
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A raw HTTP/1.1 server: answers each request on a connection with `hello`,
    /// and closes the connection after `per_connection` answers.
    async fn server(per_connection: usize) -> (Endpoint, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..per_connection {
                        let mut seen = Vec::new();
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let url = url::Url::parse(&format!("http://{addr}")).expect("url");
        (Endpoint::of(&url).expect("endpoint"), accepted)
    }

    fn client() -> (UpstreamClient, Arc<AtomicU64>) {
        let connects = Arc::new(AtomicU64::new(0));
        let client = UpstreamClient::new(
            4,
            Duration::from_secs(30),
            Duration::from_secs(2),
            Arc::clone(&connects),
        );
        (client, connects)
    }

    fn get(endpoint: &Endpoint) -> http::Request<Body> {
        let mut request = http::Request::new(Body::empty());
        request
            .headers_mut()
            .insert(http::header::HOST, endpoint.host().clone());
        *request.uri_mut() = http::Uri::from_static("/api/tags");
        request
    }

    async fn text(client: &UpstreamClient, endpoint: &Endpoint) -> String {
        let response = client
            .request(Some(endpoint), get(endpoint))
            .await
            .expect("an answer");
        let body = response.into_body().collect().await.expect("a body");
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_body_has_ended() {
        let (endpoint, accepted) = server(usize::MAX).await;
        let (client, connects) = client();
        for _ in 0..5 {
            assert_eq!(text(&client, &endpoint).await, "hello");
        }
        assert_eq!(connects.load(Relaxed), 1);
        assert_eq!(accepted.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
        let (endpoint, _) = server(usize::MAX).await;
        let (client, connects) = client();
        let unread = client
            .request(Some(&endpoint), get(&endpoint))
            .await
            .expect("an answer");
        drop(unread);
        assert_eq!(text(&client, &endpoint).await, "hello");
        assert_eq!(connects.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_an_error() {
        // One answer per connection, closed without saying so.
        let (endpoint, accepted) = server(1).await;
        let (client, connects) = client();
        for _ in 0..5 {
            assert_eq!(text(&client, &endpoint).await, "hello");
            // Let the closed connection's task notice the close, or not: both
            // paths (dropped at checkout, retried after a failed send) must hold.
            tokio::task::yield_now().await;
        }
        assert_eq!(accepted.load(Relaxed), 5);
        assert!(connects.load(Relaxed) >= 5);
    }

    #[tokio::test]
    async fn no_listener_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let url = url::Url::parse(&format!("http://{addr}")).expect("url");
        let endpoint = Endpoint::of(&url).expect("endpoint");
        let (client, _) = client();
        let err = client
            .request(Some(&endpoint), get(&endpoint))
            .await
            .expect_err("nothing listens");
        assert!(err.is_connect());
        assert_eq!(crate::wire::describe(&err), "connection refused");
    }

    #[test]
    fn endpoints_name_their_host_as_requests_must() {
        let of = |url: &str| Endpoint::of(&url::Url::parse(url).expect("url"));
        let local = of("http://127.0.0.1:11434/").expect("http");
        assert_eq!(local.host(), "127.0.0.1:11434");
        assert_eq!(local.key().as_ref(), "127.0.0.1:11434");
        let named = of("http://ollama.lan").expect("http");
        assert_eq!(named.host(), "ollama.lan");
        assert_eq!(named.key().as_ref(), "ollama.lan:80");
        assert_eq!(of("http://[::1]:8080").expect("v6").host(), "[::1]:8080");
        assert!(of("https://example.com").is_none());
    }
}
