//! Who sent a request: the client's address and its connection's phase, attached
//! by the server to every request it serves.
//!
//! The phase is shared between the connection's IO (which reads heads and bodies)
//! and the service (which serves requests): the server's head guard arms itself
//! only while a head is being read, and marks the connection idle again when a
//! response ends. Layers above read only [`Peer::addr`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;

/// The connection's phase: waiting for a request's first byte.
pub(crate) const IDLE: u8 = 0;
/// Reading a request head: the guard is armed.
pub(crate) const HEAD: u8 = 1;
/// A request is being served (its body, if any, is being read; its response sent).
pub(crate) const SERVING: u8 = 2;
/// An HTTP/2 connection (or none at all): never guarded.
pub(crate) const HTTP2: u8 = 3;

/// Who sent a request: the client's address, and the connection's phase. Every
/// request served by the server carries one as an extension.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address (IPv4-mapped IPv6 as the socket reported it).
    pub addr: SocketAddr,
    pub(crate) phase: Arc<AtomicU8>,
}

impl Peer {
    /// A peer on a new connection, waiting for its first request.
    pub(crate) fn connected(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            phase: Arc::new(AtomicU8::new(IDLE)),
        }
    }

    /// A peer with no connection behind it (for requests made in-process).
    pub fn detached(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            phase: Arc::new(AtomicU8::new(HTTP2)),
        }
    }

    /// Whether the request came from this machine's loopback interface.
    pub fn is_loopback(&self) -> bool {
        self.addr.ip().to_canonical().is_loopback()
    }
}
