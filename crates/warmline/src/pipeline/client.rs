//! The HTTP clients the gateway talks to its upstreams with.
//!
//! Requests on the request path go through the pool in `pool` (HTTP/1.1
//! connections per host, nothing else on the way: see there why not reqwest or
//! hyper's pooled client). Background work (health probes, model inventories,
//! warm loads) uses the reqwest client from [`build_client`]. Both keep
//! connections per host (the report's "a new connection per request" is gone),
//! and both count the connections they open so `/warmline/stats` shows how well
//! the pools are reused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use crate::config::Config;

/// One pooled, keep-alive HTTP client for every upstream. No automatic
/// decompression (bodies pass through as encoded), no proxies from the environment
/// (an `HTTP_PROXY` meant for pulls must not capture loopback traffic), no redirects
/// followed (a redirect is the client's to see).
pub(crate) fn build_client(
    config: &Config,
    connects: Arc<AtomicU64>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(config.timeouts.connect)
        .pool_max_idle_per_host(config.pool.max_idle_per_host)
        .pool_idle_timeout(config.pool.idle_timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connector_layer(CountConnects(connects))
        .build()
}

/// A connector layer that counts new upstream connections, so `/warmline/stats`
/// can show how well the pool is reused.
#[derive(Debug, Clone)]
struct CountConnects(Arc<AtomicU64>);

impl<S> tower::Layer<S> for CountConnects {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            count: Arc::clone(&self.0),
        }
    }
}

/// A connector that counts the connections it opens.
#[derive(Debug, Clone)]
struct Counted<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.count.fetch_add(1, Relaxed);
        self.inner.call(request)
    }
}
