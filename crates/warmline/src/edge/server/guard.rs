//! The guard of connections served by hyper: request heads read through the
//! connection's IO ([`Guarded`]), the only place that sees a head before hyper
//! has parsed it, with the deadlines and size limit of the module docs.
//!
//! Warmline's own HTTP/1.1 loop ([`super::http1`]) reads heads itself and needs
//! no guard; hyper serves what that loop hands over (an HTTP/2 connection, or a
//! request it does not take: see there), and from then on this guard watches the
//! connection's later heads. [`HeadReader`] recognises a head's size and an
//! HTTP/2 preface for both, as a pure function of the bytes (fuzzed in `fuzz/`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::{HeadLimits, Refused};
use crate::error::{ConnectionError, Error};
use crate::wire::peer::{HEAD, HTTP2, IDLE};
use crate::wire::{Flavor, error_body};

/// How long a refused connection keeps reading (and dropping) what the client still
/// sends before it closes, and how much it reads at most.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// A deadline that moves often and fires rarely: a keep-alive connection's idle
/// and head deadlines move with every request, and resetting a tokio timer each
/// time costs more than the request's own work. The timer is allocated when first
/// polled and reused; it may be set earlier than `due` (a deadline since pushed
/// back), and is reset only when it fires early or must fire sooner.
#[derive(Default)]
pub(super) struct Deadline {
    due: Option<tokio::time::Instant>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Sets the deadline `after` from now.
    pub(super) fn arm(&mut self, after: Duration) {
        self.due = Some(crate::sys::clock::after(after));
    }

    /// Whether the deadline has passed, registering for its wake-up if not. An
    /// unarmed deadline never passes.
    pub(super) fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(due) = self.due else {
            return false;
        };
        let sleep = self
            .sleep
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
}

/// A client connection whose request heads are guarded (see the module docs).
pub(super) struct Guarded {
    tcp: TcpStream,
    /// Bytes read before hyper took the connection over, given to it first.
    prefix: Bytes,
    phase: Arc<AtomicU8>,
    limits: HeadLimits,
    /// When the current head (or idle spell) runs out.
    deadline: Deadline,
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
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
    /// Guards a connection whose current request (or HTTP/2 preface) Warmline's
    /// own loop has read into `prefix` and hands over to hyper; `phase` says
    /// which (`SERVING` or `HTTP2`). The next head is guarded as a keep-alive
    /// connection's.
    pub(super) fn handed_over(
        tcp: TcpStream,
        prefix: Bytes,
        phase: Arc<AtomicU8>,
        limits: HeadLimits,
        refused: Refused,
    ) -> Guarded {
        let mut guarded = Guarded::new(tcp, phase, limits, refused);
        guarded.prefix = prefix;
        guarded.fresh = false;
        guarded.idle_armed = false;
        guarded.reader.next_head();
        guarded
    }

    fn new(tcp: TcpStream, phase: Arc<AtomicU8>, limits: HeadLimits, refused: Refused) -> Guarded {
        let mut guarded = Guarded {
            tcp,
            prefix: Bytes::new(),
            phase,
            limits,
            deadline: Deadline::default(),
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
        self.deadline.arm(after);
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

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
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
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.expired(cx)
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

/// Answers a refused request head with `err` and closes the connection the
/// lingering way (see the module docs of `server`): the response, the write side
/// shut, then whatever the client still sends read and dropped for a moment.
pub(super) async fn refuse_and_linger(tcp: &mut TcpStream, err: &Error) {
    let linger = async {
        if tcp.write_all(&raw_response(err)).await.is_err() {
            return;
        }
        let _ = tcp.shutdown().await;
        let mut scratch = vec![0u8; 4096];
        let mut read = 0;
        while read < LINGER_BYTES {
            match tcp.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, linger).await;
}

/// A whole HTTP/1.1 response in Ollama's error shape, for a request no service saw.
/// The request line was not parsed, so which API the client speaks is unknown:
/// Ollama's native shape, which OpenAI clients also surface as the message.
pub(super) fn raw_response(err: &Error) -> Vec<u8> {
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
