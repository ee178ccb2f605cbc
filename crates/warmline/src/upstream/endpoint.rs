//! Where an upstream's connections go, read once from its URL: the address (or a
//! name to resolve at each connect), the `Host` header its requests carry, and
//! the key its pooled connections are kept under.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http::HeaderValue;

/// Where one upstream's connections go, read once from its URL.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`: the pool's key.
    key: Arc<str>,
    /// What to connect to.
    target: Target,
    /// The `Host` header every request to it carries.
    host: HeaderValue,
    /// Connections opened to it (shared by its clones).
    opened: Arc<AtomicU64>,
}

/// What an endpoint's connections connect to.
#[derive(Debug, Clone)]
pub enum Target {
    Addr(SocketAddr),
    /// A name, resolved at each connect.
    Name(String, u16),
}

impl Endpoint {
    /// The endpoint of an `http://` URL; `None` for any other scheme or a URL
    /// without a host (the request then fails as unreachable, saying why).
    pub fn of(url: &url::Url) -> Option<Endpoint> {
        if url.scheme() != "http" {
            return None;
        }
        let port = url.port_or_known_default()?;
        let target = match url.host()? {
            url::Host::Ipv4(ip) => Target::Addr(SocketAddr::from((ip, port))),
            url::Host::Ipv6(ip) => Target::Addr(SocketAddr::from((ip, port))),
            url::Host::Domain(name) => Target::Name(name.to_owned(), port),
        };
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str()?),
            None => url.host_str()?.to_owned(),
        };
        Some(Endpoint {
            key: format!("{}:{port}", url.host_str()?).into(),
            target,
            host: HeaderValue::from_str(&authority).ok()?,
            opened: Arc::default(),
        })
    }

    /// The `Host` header for requests to this endpoint.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// `host:port`, which keys the connection pool.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// What to connect to.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Counts a new connection to this endpoint.
    pub fn opened_one(&self) {
        self.opened.fetch_add(1, Relaxed);
    }

    /// Connections opened to this endpoint so far.
    pub fn opened(&self) -> u64 {
        self.opened.load(Relaxed)
    }
}
