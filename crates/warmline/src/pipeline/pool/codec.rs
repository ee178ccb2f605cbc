//! HTTP/1.1 on an upstream connection, written and read by the request's task:
//! the request's head and body out ([`Outgoing`]), the response head in, and
//! the response body decoded as its consumer polls it ([`PooledBody`]).
//!
//! The request is framed as hyper's client framed it: a body held whole gets a
//! `content-length`, a stream without one is sent chunked (never for GET or
//! HEAD), an empty body gets neither. A whole body of up to 64 KiB leaves in the
//! same write as the head. The response body is delimited by RFC 9112's rules:
//! none for HEAD, 1xx, 204 and 304; `Transfer-Encoding: chunked`; a
//! `Content-Length`; else the connection's end (which is then not reused).
//! Interim 1xx answers are skipped.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{Buf, Bytes};
use futures_util::FutureExt as _;
use http::{HeaderMap, HeaderName, Method, StatusCode, Version, header};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use tokio::io::AsyncWriteExt as _;

use super::{Conn, Pool};
use crate::wire::http1::{MAX_HEADERS, chunk_size, content_length, fill, has_token};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest response head read.
const MAX_HEAD: usize = 64 << 10;
/// A whole body up to this size leaves in the head's write.
const SAME_WRITE: usize = 64 << 10;
/// The longest chunk-size line, or trailer section, read.
const MAX_LINE: usize = 4 << 10;

/// How an exchange failed.
pub(super) enum Sent {
    /// Before any byte of an answer came back, with the request's body (if
    /// any) still whole: on a reused connection, the upstream had closed it.
    Stale(BoxError),
    Failed(BoxError),
}

/// A request on its way to an upstream.
pub(super) struct Outgoing {
    /// The request line and headers, and a small whole body after them.
    wire: Vec<u8>,
    /// A whole body too large for the head's write.
    whole: Option<Bytes>,
    /// A body streamed as it arrives (sent once: it cannot be sent again).
    stream: Option<Body>,
    chunked: bool,
    is_head: bool,
}

/// An answer's head.
pub(super) struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    decode: Decode,
    keep_alive: bool,
}

impl Outgoing {
    pub(super) fn new(request: http::Request<Body>) -> Outgoing {
        let (parts, mut body) = request.into_parts();
        let declared = parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        let mut whole = None;
        let mut stream = None;
        let mut length = None;
        let mut chunked = false;
        if !body.is_end_stream() {
            let exact = body.size_hint().exact();
            // A body held whole (`Body::from(Bytes)`) gives its one frame at once.
            let first = match exact {
                Some(_) => body.frame().now_or_never(),
                None => None,
            };
            match first {
                Some(Some(Ok(frame)))
                    if body.is_end_stream()
                        && frame.data_ref().map(Bytes::len) == exact.map(|n| n as usize) =>
                {
                    let bytes = frame.into_data().unwrap_or_default();
                    length = (!declared).then_some(bytes.len() as u64);
                    whole = Some(bytes);
                }
                Some(taken) => {
                    // Not a whole body after all: what was taken (a part, or the
                    // body's error) leads the stream.
                    let lead = match taken {
                        Some(Ok(frame)) => Ok(frame.into_data().unwrap_or_default()),
                        Some(Err(err)) => Err(err),
                        None => Ok(Bytes::new()),
                    };
                    let rest = body.into_data_stream();
                    let lead = futures_util::stream::once(async move { lead });
                    stream = Some(Body::from_stream(futures_util::StreamExt::chain(
                        lead, rest,
                    )));
                }
                None => stream = Some(body),
            }
            if stream.is_some() {
                if let Some(te) = parts.headers.get(header::TRANSFER_ENCODING) {
                    chunked = te
                        .as_bytes()
                        .trim_ascii_end()
                        .to_ascii_lowercase()
                        .ends_with(b"chunked");
                } else if !parts.headers.contains_key(header::CONTENT_LENGTH) {
                    if let Some(n) = exact {
                        length = Some(n);
                    } else if matches!(parts.method, Method::GET | Method::HEAD) {
                        // As hyper: GET and HEAD are sent without a body.
                        stream = None;
                    } else {
                        chunked = true;
                    }
                }
            }
        }
        let mut wire = Vec::with_capacity(256 + whole.as_ref().map_or(0, Bytes::len));
        wire.extend_from_slice(parts.method.as_str().as_bytes());
        wire.push(b' ');
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        wire.extend_from_slice(target.as_bytes());
        wire.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &parts.headers {
            wire.extend_from_slice(name.as_str().as_bytes());
            wire.extend_from_slice(b": ");
            wire.extend_from_slice(value.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        if let Some(n) = length {
            wire.extend_from_slice(b"content-length: ");
            wire.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        if chunked && !parts.headers.contains_key(header::TRANSFER_ENCODING) {
            wire.extend_from_slice(b"transfer-encoding: chunked\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        if let Some(bytes) = whole.take_if(|b| b.len() <= SAME_WRITE) {
            wire.extend_from_slice(&bytes);
        }
        Outgoing {
            wire,
            whole,
            stream,
            chunked,
            is_head: parts.method == Method::HEAD,
        }
    }

    /// Whether the request can be sent again (its body was not streamed).
    pub(super) fn can_resend(&self) -> bool {
        self.stream.is_none()
    }

    /// Sends the request on `conn` and reads the answer's head.
    pub(super) async fn exchange(&mut self, conn: &mut Conn) -> Result<Head, Sent> {
        let stale = |err: io::Error| Sent::Stale(Box::new(err));
        conn.tcp.write_all(&self.wire).await.map_err(stale)?;
        if let Some(whole) = &self.whole {
            conn.tcp.write_all(whole).await.map_err(stale)?;
        }
        if let Some(body) = self.stream.take() {
            send_stream(conn, body, self.chunked)
                .await
                .map_err(Sent::Failed)?;
        }
        read_head(conn, self.is_head).await
    }
}

/// Streams `body` (chunked, or as its declared length).
async fn send_stream(conn: &mut Conn, mut body: Body, chunked: bool) -> Result<(), BoxError> {
    while let Some(frame) = body.frame().await {
        // The client's body failing is its own error (the cause, as sent).
        let frame = frame.map_err(|err| Box::new(err) as BoxError)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            let mut chunk = Vec::with_capacity(data.len() + 20);
            chunk_size(&mut chunk, data.len());
            chunk.extend_from_slice(&data);
            chunk.extend_from_slice(b"\r\n");
            conn.tcp.write_all(&chunk).await?;
        } else {
            conn.tcp.write_all(&data).await?;
        }
    }
    if chunked {
        conn.tcp.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// Reads an answer's head (skipping interim 1xx answers).
async fn read_head(conn: &mut Conn, is_head: bool) -> Result<Head, Sent> {
    let mut answered = false;
    loop {
        match parse_head(conn, is_head).map_err(Sent::Failed)? {
            Parsed::Head(head) => return Ok(head),
            // An interim answer, taken: what follows may be read already.
            Parsed::Interim => continue,
            Parsed::Partial => {}
        }
        if conn.buf.len() > MAX_HEAD {
            return Err(Sent::Failed(
                "the upstream's answer head is too large".into(),
            ));
        }
        let read = std::future::poll_fn(|cx| fill(&mut conn.tcp, &mut conn.buf, cx)).await;
        match read {
            Ok(0) if !answered && conn.buf.is_empty() => {
                return Err(Sent::Stale(closed_before_answer().into()));
            }
            Ok(0) => return Err(Sent::Failed(closed_before_answer().into())),
            Err(err) if !answered && conn.buf.is_empty() => return Err(Sent::Stale(err.into())),
            Err(err) => return Err(Sent::Failed(err.into())),
            Ok(_) => answered = true,
        }
    }
}

fn closed_before_answer() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed before message completed",
    )
}

/// What the start of `conn.buf` held.
enum Parsed {
    /// An answer's head, taken from the buffer.
    Head(Head),
    /// An interim (1xx) answer's head, taken and dropped.
    Interim,
    Partial,
}

/// Reads the answer's head at the start of `conn.buf`.
fn parse_head(conn: &mut Conn, is_head: bool) -> Result<Parsed, BoxError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let buf = &conn.buf[..];
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(err) => return Err(format!("the upstream's answer is not HTTP/1.1: {err}").into()),
    };
    let code = parsed.code.unwrap_or(0);
    let Ok(status) = StatusCode::from_u16(code) else {
        return Err(format!("the upstream answered with status {code}").into());
    };
    let version = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    if len > MAX_HEAD {
        return Err("the upstream's answer head is too large".into());
    }
    conn.fields.record(buf, parsed.headers);
    let bytes = conn.buf.split_to(len).freeze();
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(Parsed::Interim);
    }
    let headers = conn.fields.headers(&bytes);
    let has_token = |name: HeaderName, token: &[u8]| {
        headers
            .get_all(name)
            .iter()
            .any(|v| has_token(v.as_bytes(), token))
    };
    let mut keep_alive = match version {
        Version::HTTP_10 => has_token(header::CONNECTION, b"keep-alive"),
        _ => !has_token(header::CONNECTION, b"close"),
    };
    let decode = if is_head
        || status.is_informational()
        || matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)
    {
        Decode::Done
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        if has_token(header::TRANSFER_ENCODING, b"chunked") {
            Decode::Chunked(Chunk::Size)
        } else {
            Decode::Eof
        }
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        let mut length = None;
        for value in headers.get_all(header::CONTENT_LENGTH) {
            let n = content_length(value.as_bytes())
                .filter(|n| length.is_none_or(|l| l == *n))
                .ok_or("the upstream's answer has an invalid content-length")?;
            length = Some(n);
        }
        Decode::Length(length.unwrap_or(0))
    } else {
        Decode::Eof
    };
    if decode == Decode::Eof {
        keep_alive = false;
    }
    Ok(Parsed::Head(Head {
        status,
        version,
        headers,
        decode,
        keep_alive,
    }))
}

/// Where a response body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Eof,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// A chunk-size line.
    Size,
    /// This many bytes of chunk data.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines, up to the empty line (this many bytes of them so far).
    Trailer(usize),
}

/// An upstream's response body: decoded from its connection as it is polled;
/// when it ends, the connection goes back to the pool (a body dropped before its
/// end closes its connection).
#[derive(Debug)]
pub(crate) struct PooledBody {
    conn: Option<Conn>,
    decode: Decode,
    keep_alive: bool,
    give_back: Option<(Arc<Pool>, Arc<str>)>,
}

impl PooledBody {
    /// The answer whose head is `head`, its body to be read from `conn`.
    pub(super) fn response(
        head: Head,
        conn: Conn,
        give_back: (Arc<Pool>, Arc<str>),
    ) -> http::Response<PooledBody> {
        let mut body = PooledBody {
            conn: Some(conn),
            decode: head.decode,
            keep_alive: head.keep_alive,
            give_back: Some(give_back),
        };
        // A response without a body (204, 304, `Content-Length: 0`) has ended.
        if matches!(body.decode, Decode::Done | Decode::Length(0)) {
            body.finish();
        }
        let mut response = http::Response::new(body);
        *response.status_mut() = head.status;
        *response.version_mut() = head.version;
        *response.headers_mut() = head.headers;
        response
    }

    /// The body has ended: its connection goes back to the pool if it can serve
    /// another request.
    fn finish(&mut self) {
        self.decode = Decode::Done;
        if let (Some(conn), Some((pool, key))) = (self.conn.take(), self.give_back.take())
            && self.keep_alive
        {
            pool.give_back(key, conn);
        }
    }

    /// A broken body: the connection is not reused.
    fn fail(&mut self, err: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.decode = Decode::Done;
        self.conn = None;
        self.give_back = None;
        Poll::Ready(Some(Err(err)))
    }

    /// A body that is not what its framing said.
    fn malformed(&mut self, what: &'static str) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.fail(io::Error::new(io::ErrorKind::InvalidData, what))
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buf = &mut conn.buf;
            match this.decode {
                Decode::Done => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decode::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decode::Length(left) if !buf.is_empty() => {
                    let n = (buf.len() as u64).min(left);
                    let data = buf.split_to(n as usize).freeze();
                    this.decode = Decode::Length(left - n);
                    if left == n {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decode::Eof if !buf.is_empty() => {
                    let data = buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decode::Chunked(Chunk::Size) => match find_crlf(buf) {
                    Some(end) => {
                        let line = &buf[..end];
                        let digits = line
                            .split(|b| *b == b';')
                            .next()
                            .unwrap_or(b"")
                            .trim_ascii();
                        let size = std::str::from_utf8(digits)
                            .ok()
                            .filter(|d| !d.is_empty() && d.len() <= 15)
                            .and_then(|d| u64::from_str_radix(d, 16).ok());
                        let Some(size) = size else {
                            return this.malformed("the upstream sent an invalid chunk size");
                        };
                        buf.advance(end + 2);
                        this.decode = Decode::Chunked(if size == 0 {
                            Chunk::Trailer(0)
                        } else {
                            Chunk::Data(size)
                        });
                        continue;
                    }
                    None if buf.len() > MAX_LINE => {
                        return this.malformed("the upstream sent an invalid chunk size");
                    }
                    None => {}
                },
                Decode::Chunked(Chunk::Data(left)) if !buf.is_empty() => {
                    let n = (buf.len() as u64).min(left);
                    let data = buf.split_to(n as usize).freeze();
                    this.decode = Decode::Chunked(if left == n {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n)
                    });
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decode::Chunked(Chunk::DataEnd) if buf.len() >= 2 => {
                    if &buf[..2] != b"\r\n" {
                        return this.malformed("the upstream's chunk did not end where it said");
                    }
                    buf.advance(2);
                    this.decode = Decode::Chunked(Chunk::Size);
                    continue;
                }
                Decode::Chunked(Chunk::Trailer(seen)) => match find_crlf(buf) {
                    Some(0) => {
                        buf.advance(2);
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Some(end) if seen + end <= MAX_LINE => {
                        buf.advance(end + 2);
                        this.decode = Decode::Chunked(Chunk::Trailer(seen + end + 2));
                        continue;
                    }
                    Some(_) => return this.malformed("the upstream's trailers are too large"),
                    None if seen + buf.len() > MAX_LINE => {
                        return this.malformed("the upstream's trailers are too large");
                    }
                    None => {}
                },
                _ => {}
            }
            // More bytes are needed.
            match fill(&mut conn.tcp, &mut conn.buf, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return this.fail(err),
                Poll::Ready(Ok(0)) if this.decode == Decode::Eof => {
                    // Close-delimited: the end of the stream is the end of the body.
                    this.keep_alive = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection before the answer's end",
                    ));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decode, Decode::Done | Decode::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decode {
            Decode::Done => SizeHint::with_exact(0),
            Decode::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}
