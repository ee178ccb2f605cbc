//! Warmline's own HTTP/1.1 connection loop: the requests API clients send, served
//! without hyper.
//!
//! Counted with callgrind, hyper's server spent about 13,000 instructions on each
//! request (reading and parsing the head, its dispatcher's state machine, encoding
//! the answer), more than nginx's whole cache hit (23,000 with everything). An API
//! client's request is a simple thing: a head, a small JSON body with a
//! `Content-Length`, usually in one segment, and an answer that is either whole or
//! an NDJSON/SSE stream. This loop serves exactly that:
//!
//! ```text
//!  wait for bytes (idle deadline) ─▶ read the head (head deadline, size limit)
//!   ─▶ the whole body at hand? ─▶ request ─▶ service ─▶ response head + body
//!          │ no (or anything unusual)                         (watching for the
//!          ▼                                                   client leaving)
//!   hand the connection, with every byte read, to hyper for the rest of its life
//! ```
//!
//! Everything else goes to hyper, whose correctness is not worth re-deriving: an
//! HTTP/2 preface, HTTP/1.0, `Transfer-Encoding`, `Expect`, upgrades, a head
//! httparse cannot read (hyper answers it 400 as before), more than 100 headers
//! (hyper's 431), and a body that has not arrived within a moment of its head (a
//! blob upload, a slow client: hyper streams it into the service, and the
//! pipeline's `timeouts.body` applies). Once handed over, the connection stays
//! with hyper, its later heads guarded by [`super::guard::Guarded`].
//!
//! The answers are byte for byte what hyper wrote: the same status line, the
//! service's headers in order, then `content-length` or `transfer-encoding:
//! chunked`, then `date`. While the service works and while a body streams, the
//! socket is read too: a client that hangs up ends (drops) its request at once,
//! which is how a disconnected client cancels an upstream generation.

use std::future::{Future, poll_fn};
use std::mem::MaybeUninit;
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use http_body::Body as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tower::ServiceExt as _;

use super::guard::{Deadline, H2_PREFACE, refuse_and_linger};
use super::{App, HeadLimits, Refused, Slot};
use crate::error::{ConnectionError, Error};
use crate::wire::http1::{Fields, MAX_HEADERS, chunk_size, content_length, fill, has_token};
use crate::wire::peer::{HEAD, IDLE, Peer, SERVING};

/// How long the rest of a body may take to follow its head before the request
/// goes to hyper (whose streaming body the pipeline's stall limit watches).
const BODY_GRACE: Duration = Duration::from_millis(20);
/// The largest body this loop waits for; a larger one goes to hyper as a stream.
const MAX_WHOLE_BODY: usize = 1 << 20;
/// Bytes of a pipelined next request read while one is served, at most.
const MAX_AHEAD: usize = 64 << 10;
/// A streamed answer's bytes gathered before they are written.
const WRITE_BATCH: usize = 64 << 10;

/// How a connection's own loop ended.
pub(super) enum Ended {
    /// The connection is closed (or to be dropped).
    Closed,
    /// hyper serves the rest: `prefix` is every byte read and not yet served.
    HandOver {
        tcp: TcpStream,
        prefix: Bytes,
        http2: bool,
    },
}

/// A client connection served by this loop.
pub(super) struct Connection<A> {
    pub(super) tcp: TcpStream,
    pub(super) peer: Peer,
    pub(super) app: A,
    pub(super) limits: HeadLimits,
    pub(super) refused: Refused,
}

/// What one read from the client brought.
enum Read {
    Data,
    Closed,
    Expired,
}

/// One request's head as offsets into the bytes read (which are shared by the
/// request, not copied), filled by [`parse`].
struct Head {
    method: Method,
    /// The request target.
    path: (usize, usize),
    /// Each header's name and value.
    fields: Fields,
    /// Bytes of head.
    len: usize,
    /// Bytes of body (`Content-Length`).
    body: usize,
    /// The client asked to close after this request.
    close: bool,
}

impl Head {
    fn new() -> Head {
        Head {
            method: Method::GET,
            path: (0, 0),
            fields: Fields::default(),
            len: 0,
            body: 0,
            close: false,
        }
    }
}

impl<A: App> Connection<A> {
    /// Serves requests until the connection closes, its `slot` is told to shed
    /// it (heeded while idle) or the server drains (heeded between requests), or
    /// a request is handed to hyper.
    pub(super) async fn serve(mut self, slot: &Slot) -> Ended {
        let mut shed = pin!(slot.shed.notified());
        let mut buf = BytesMut::with_capacity(8 << 10);
        let mut out = Vec::with_capacity(1 << 10);
        let mut deadline = Deadline::default();
        // The first head's deadline runs from accept.
        deadline.arm(self.limits.timeout);
        let mut first = true;
        // Filled anew by each head (kept across requests: it is 1.6 KB).
        let mut head = Head::new();
        loop {
            // Between requests: the first byte starts a head; a connection silent
            // past its deadline, or told to stop or make room, closes quietly.
            self.peer.phase.store(IDLE, Relaxed);
            if buf.is_empty() {
                if !first {
                    deadline.arm(self.limits.idle);
                }
                let waited = poll_fn(|cx| {
                    match poll_read(&mut self.tcp, &mut buf, cx) {
                        Poll::Ready(read) => return Poll::Ready(read),
                        Poll::Pending => {}
                    }
                    if shed.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Read::Closed);
                    }
                    if deadline.expired(cx) {
                        return Poll::Ready(Read::Expired);
                    }
                    Poll::Pending
                })
                .await;
                if !matches!(waited, Read::Data) {
                    return Ended::Closed;
                }
                if !first {
                    deadline.arm(self.limits.timeout);
                }
            } else if !first {
                deadline.arm(self.limits.timeout);
            }
            self.peer.phase.store(HEAD, Relaxed);

            // The head: 431 past the size limit, 408 past the deadline.
            loop {
                if first && H2_PREFACE.starts_with(&buf[..buf.len().min(H2_PREFACE.len())]) {
                    if buf.len() >= H2_PREFACE.len() {
                        return hand_over(self.tcp, buf, true);
                    }
                } else {
                    match parse(&buf, &mut head) {
                        Parsed::Head if head.len <= self.limits.max_bytes => break,
                        Parsed::Head => return self.refuse_too_large().await,
                        Parsed::Partial if buf.len() > self.limits.max_bytes => {
                            return self.refuse_too_large().await;
                        }
                        Parsed::Partial => {}
                        Parsed::Unusual => return hand_over(self.tcp, buf, false),
                    }
                }
                let read = poll_fn(|cx| match poll_read(&mut self.tcp, &mut buf, cx) {
                    Poll::Pending if deadline.expired(cx) => Poll::Ready(Read::Expired),
                    other => other,
                })
                .await;
                match read {
                    Read::Data => {}
                    Read::Closed => return Ended::Closed,
                    Read::Expired => {
                        let after = self.limits.timeout;
                        return self.refuse(ConnectionError::HeadTimeout { after }).await;
                    }
                }
            }
            first = false;

            // The body, whole: usually it came with the head.
            let wanted = head.len + head.body;
            if buf.len() < wanted && !self.wait_for_body(&mut buf, wanted).await {
                return hand_over(self.tcp, buf, false);
            }
            self.peer.phase.store(SERVING, Relaxed);
            let bytes = buf.split_to(wanted).freeze();
            let close = head.close;
            let is_head = head.method == Method::HEAD;
            let Some(request) = self.request(&head, bytes) else {
                // As hyper answers a head it cannot read: a bare 400, then close.
                let mut bad = http::Response::new(Body::empty());
                *bad.status_mut() = StatusCode::BAD_REQUEST;
                let _ = self.respond(bad, false, true, &mut out, &mut buf).await;
                let _ = self.tcp.shutdown().await;
                return Ended::Closed;
            };

            // The service, watching for the client leaving.
            let mut answer = pin!(self.app.clone().oneshot(request));
            let response = poll_fn(|cx| {
                if let Poll::Ready(Ok(response)) = answer.as_mut().poll(cx) {
                    return Poll::Ready(Some(response));
                }
                match watch(&mut self.tcp, &mut buf, cx) {
                    Poll::Ready(()) => Poll::Ready(None),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            let Some(response) = response else {
                return Ended::Closed;
            };

            // The answer.
            let keep = self
                .respond(response, is_head, close, &mut out, &mut buf)
                .await
                .unwrap_or(false);
            if !keep || close || slot.registry.draining.load(Relaxed) {
                let _ = self.tcp.shutdown().await;
                return Ended::Closed;
            }
        }
    }

    /// Reads until `buf` holds `wanted` bytes, each read within [`BODY_GRACE`];
    /// false when the body is too large to wait for or does not follow in time.
    async fn wait_for_body(&mut self, buf: &mut BytesMut, wanted: usize) -> bool {
        if wanted > MAX_WHOLE_BODY {
            return false;
        }
        buf.reserve(wanted - buf.len());
        while buf.len() < wanted {
            let read = poll_fn(|cx| poll_read(&mut self.tcp, buf, cx));
            match tokio::time::timeout(BODY_GRACE, read).await {
                Ok(Read::Data) => {}
                _ => return false,
            }
        }
        true
    }

    /// The request for the service: the head's parts and the body, sharing
    /// `bytes` (the head and body as read) without copying. `None` only for a
    /// target `http::Uri` refuses where httparse did not.
    fn request(&self, head: &Head, bytes: Bytes) -> Option<Request<Body>> {
        let uri =
            Uri::from_maybe_shared(bytes.slice(head.path.0..head.path.0 + head.path.1)).ok()?;
        let headers = head.fields.headers(&bytes);
        let body = if head.body == 0 {
            Body::empty()
        } else {
            Body::from(bytes.slice(head.len..))
        };
        let mut request = Request::new(body);
        *request.method_mut() = head.method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;
        request.extensions_mut().insert(self.peer.clone());
        Some(request)
    }

    /// Writes `response` (its body streamed as it comes, the client watched
    /// meanwhile); whether the connection can serve another request.
    async fn respond(
        &mut self,
        response: http::Response<Body>,
        is_head: bool,
        close: bool,
        out: &mut Vec<u8>,
        buf: &mut BytesMut,
    ) -> std::io::Result<bool> {
        let (mut parts, body) = response.into_parts();
        if close {
            // As hyper does when the client asked to close: say so.
            match parts.headers.entry(header::CONNECTION) {
                header::Entry::Occupied(mut entry) => {
                    if !entry.iter().any(|v| has_token(v.as_bytes(), b"close")) {
                        entry.append(HeaderValue::from_static("close"));
                    }
                }
                header::Entry::Vacant(entry) => {
                    entry.insert(HeaderValue::from_static("close"));
                }
            }
        }
        out.clear();
        let (mut framing, closes) = write_head(out, &parts, &body, is_head);
        if framing == Framing::None {
            drop(body);
            self.tcp.write_all(out).await?;
            return Ok(!closes);
        }
        let mut body = pin!(body);
        loop {
            // Frames ready now are gathered; before waiting for more, what is
            // gathered goes out.
            let frame = if out.is_empty() {
                let next = poll_fn(|cx| match body.as_mut().poll_frame(cx) {
                    Poll::Ready(frame) => Poll::Ready(Some(frame)),
                    Poll::Pending => match watch(&mut self.tcp, buf, cx) {
                        Poll::Ready(()) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    },
                })
                .await;
                let Some(frame) = next else {
                    return Ok(false);
                };
                frame
            } else {
                match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => {
                        self.tcp.write_all(out).await?;
                        out.clear();
                        continue;
                    }
                }
            };
            match frame {
                Some(Ok(frame)) => {
                    // More than its Content-Length said: hyper closes too.
                    if let Ok(data) = frame.into_data()
                        && !framing.encode(out, &data)
                    {
                        return Ok(false);
                    }
                    if out.len() >= WRITE_BATCH {
                        self.tcp.write_all(out).await?;
                        out.clear();
                    }
                }
                Some(Err(err)) => {
                    // A broken body ends the connection without its last chunk,
                    // so the client sees the answer is incomplete.
                    tracing::debug!("response body failed: {err}");
                    if !out.is_empty() {
                        let _ = self.tcp.write_all(out).await;
                    }
                    return Ok(false);
                }
                None => {
                    let whole = framing.finish(out);
                    self.tcp.write_all(out).await?;
                    out.clear();
                    return Ok(whole && !closes);
                }
            }
        }
    }

    async fn refuse_too_large(self) -> Ended {
        let limit = self.limits.max_bytes;
        self.refuse(ConnectionError::HeadTooLarge { limit }).await
    }

    /// Answers the head being read with `err` and closes (see [`refuse_and_linger`]).
    async fn refuse(mut self, err: ConnectionError) -> Ended {
        let err = Error::from(err);
        let kind = err.kind();
        (self.refused)(kind);
        tracing::debug!(status = err.status().as_u16(), kind, "{err}");
        refuse_and_linger(&mut self.tcp, &err).await;
        Ended::Closed
    }
}

fn hand_over(tcp: TcpStream, buf: BytesMut, http2: bool) -> Ended {
    Ended::HandOver {
        tcp,
        prefix: buf.freeze(),
        http2,
    }
}

/// One read into `buf`.
fn poll_read(tcp: &mut TcpStream, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<Read> {
    match fill(tcp, buf, cx) {
        Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Read::Closed),
        Poll::Ready(Ok(_)) => Poll::Ready(Read::Data),
        Poll::Pending => Poll::Pending,
    }
}

/// Reads what the client sends while its request is served: ready when it has
/// hung up. Bytes of a pipelined next request are kept (up to [`MAX_AHEAD`]).
fn watch(tcp: &mut TcpStream, buf: &mut BytesMut, cx: &mut Context<'_>) -> Poll<()> {
    while buf.len() < MAX_AHEAD {
        match poll_read(tcp, buf, cx) {
            Poll::Ready(Read::Data) => {}
            Poll::Ready(_) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Pending
}

/// What reading a head from the start of a buffer found.
enum Parsed {
    /// A whole head, served here.
    Head,
    Partial,
    /// A head (or bytes) for hyper: see the module docs.
    Unusual,
}

/// Parses the request head at the start of `buf` into `head`.
fn parse(buf: &[u8], head: &mut Head) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        // A malformed head, or more than MAX_HEADERS: hyper answers as before.
        Err(_) => return Parsed::Unusual,
    };
    let (Some(1), Some(method), Some(path)) = (parsed.version, parsed.method, parsed.path) else {
        return Parsed::Unusual;
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Unusual;
    };
    if method == Method::CONNECT || u32::try_from(len).is_err() {
        return Parsed::Unusual;
    }
    let base = buf.as_ptr() as usize;
    let offset = |part: &[u8]| part.as_ptr() as usize - base;
    head.method = method;
    head.path = (offset(path.as_bytes()), path.len());
    head.len = len;
    head.body = 0;
    head.close = false;
    let mut length = None;
    for h in parsed.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            match content_length(h.value).and_then(|n| usize::try_from(n).ok()) {
                Some(n) if length.is_none_or(|l| l == n) => length = Some(n),
                _ => return Parsed::Unusual,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
        {
            return Parsed::Unusual;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if has_token(h.value, b"upgrade") {
                return Parsed::Unusual;
            }
            head.close |= has_token(h.value, b"close");
        }
    }
    // Every offset is within the head, whose length fits in u32 (checked above).
    head.fields.record(buf, parsed.headers);
    head.body = length.unwrap_or(0);
    Parsed::Head
}

/// How an answer's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 204, 304, 1xx).
    None,
    /// Exactly this many bytes still to come.
    Length(u64),
    Chunked,
}

impl Framing {
    /// Appends `data` as this framing sends it; false past a declared length.
    fn encode(&mut self, out: &mut Vec<u8>, data: &[u8]) -> bool {
        match self {
            Framing::None => true,
            Framing::Length(left) => {
                let n = data.len() as u64;
                if n > *left {
                    return false;
                }
                *left -= n;
                out.extend_from_slice(data);
                true
            }
            Framing::Chunked => {
                if !data.is_empty() {
                    chunk_size(out, data.len());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
                true
            }
        }
    }

    /// Ends the body; false when it ended short of its declared length.
    fn finish(&mut self, out: &mut Vec<u8>) -> bool {
        match self {
            Framing::Chunked => {
                out.extend_from_slice(b"0\r\n\r\n");
                true
            }
            Framing::Length(left) => *left == 0,
            Framing::None => true,
        }
    }
}

/// Writes the status line and headers as hyper does (see the module docs) and
/// returns how the body follows, and whether the answer asks to close the
/// connection.
fn write_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    body: &Body,
    is_head: bool,
) -> (Framing, bool) {
    let status = parts.status;
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = is_head
        || status.is_informational()
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let may_have_length = !status.is_informational()
        && !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let mut framing = None;
    let mut wrote_date = false;
    let mut previous: Option<&HeaderName> = None;
    let mut closes = false;
    for (name, value) in &parts.headers {
        // Several values of `connection` go on one line, as hyper writes them.
        if *name == header::CONNECTION {
            closes |= has_token(value.as_bytes(), b"close");
            if previous == Some(name) {
                out.truncate(out.len() - 2);
                out.extend_from_slice(b", ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
                continue;
            }
            previous = Some(name);
        } else {
            previous = None;
        }
        match *name {
            header::CONTENT_LENGTH => {
                if !may_have_length {
                    continue;
                }
                let declared = std::str::from_utf8(value.as_bytes())
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
                framing = Some(declared.map_or(Framing::Chunked, Framing::Length));
            }
            header::TRANSFER_ENCODING => {
                if bodiless {
                    continue;
                }
                framing = Some(Framing::Chunked);
            }
            header::DATE => wrote_date = true,
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let framing = match framing {
        Some(framing) => framing,
        None => match body.size_hint().exact() {
            Some(0) => {
                if may_have_length && !is_head {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Some(len) if may_have_length => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                out.extend_from_slice(b"\r\n");
                Framing::Length(len)
            }
            Some(_) => Framing::None,
            None if bodiless => Framing::None,
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
        },
    };
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if bodiless || framing == Framing::Length(0) {
        (Framing::None, closes)
    } else {
        (framing, closes)
    }
}

/// The `Date` header's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static CACHED: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn extend(out: &mut Vec<u8>) {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        CACHED.with_borrow_mut(|(at, text)| {
            if *at != secs {
                *at = secs;
                *text = httpdate::fmt_http_date(now);
            }
            out.extend_from_slice(text.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests;
