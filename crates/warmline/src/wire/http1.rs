//! HTTP/1.1 pieces both of Warmline's own connection loops use: the server's
//! (`edge::server::http1`) and the upstream client's (`pipeline::pool`).
//!
//! - [`Fields`]: a parsed head's headers as offsets into the bytes read, turned
//!   into a `HeaderMap` whose values share those bytes (no copy);
//! - [`content_length`] and [`has_token`]: reading the framing headers;
//! - [`chunk_size`]: a chunk's size line as hyper writes it;
//! - [`fill`]: one read from a socket into a growing buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpStream;

/// Headers a head may carry (hyper's limit too): more is refused or handed on.
pub const MAX_HEADERS: usize = 100;

/// A parsed head's headers as offsets (name start, name length, value start,
/// value length) into the bytes it was parsed from. Kept while the parser
/// borrows the read buffer; [`Fields::headers`] builds the map once the bytes
/// are frozen.
#[derive(Debug)]
pub struct Fields {
    offsets: [[u32; 4]; MAX_HEADERS],
    count: usize,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            offsets: [[0; 4]; MAX_HEADERS],
            count: 0,
        }
    }
}

impl Fields {
    /// Records `headers`, parsed from `buf` (which must not exceed `u32::MAX`
    /// bytes); replaces what was recorded before.
    pub fn record(&mut self, buf: &[u8], headers: &[httparse::Header<'_>]) {
        let base = buf.as_ptr() as usize;
        let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
        self.count = 0;
        for (slot, h) in self.offsets.iter_mut().zip(headers) {
            *slot = [
                offset(h.name.as_bytes()),
                h.name.len() as u32,
                offset(h.value),
                h.value.len() as u32,
            ];
            self.count += 1;
        }
    }

    /// How many headers were recorded.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers, their values sharing `bytes` (the buffer they were parsed
    /// from, frozen). httparse allows exactly what `http` allows, so no header
    /// is lost; one that were refused would be skipped.
    pub fn headers(&self, bytes: &Bytes) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.count);
        for &[name, name_len, value, value_len] in &self.offsets[..self.count] {
            let (name, value) = (name as usize, value as usize);
            let name = HeaderName::from_bytes(&bytes[name..name + name_len as usize]);
            let value =
                HeaderValue::from_maybe_shared(bytes.slice(value..value + value_len as usize));
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        headers
    }
}

/// A `Content-Length` value: digits only, as hyper reads it (no sign, no
/// spaces); `None` for anything else or past `u64`.
pub fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 {
        return None;
    }
    value.iter().try_fold(0u64, |n, d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .flatten()
    })
}

/// Whether a comma-separated header value (`Connection`, `Transfer-Encoding`)
/// lists `token`, in any case.
pub fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Appends a chunk's size line, `{len:X}\r\n` (upper-case hex, as hyper writes).
pub fn chunk_size(out: &mut Vec<u8>, mut len: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789ABCDEF"[len & 15];
        len >>= 4;
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// One read from `tcp` into `buf`, growing it when less than 1 KiB is free:
/// how many bytes came (0 at the end of the stream).
pub fn fill(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(8 << 10);
    }
    tokio_util::io::poll_read_buf(Pin::new(tcp), cx, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_digits_only() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"12345"), Some(12345));
        assert_eq!(content_length(b"18446744073709551615"), None, "20 digits");
        assert_eq!(
            content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1 ", b"0x10", b"1,1"] {
            assert_eq!(
                content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn tokens_are_found_in_lists_in_any_case() {
        assert!(has_token(b"keep-alive, Close", b"close"));
        assert!(has_token(b"gzip,chunked", b"chunked"));
        assert!(!has_token(b"closed", b"close"));
        assert!(!has_token(b"", b"close"));
    }

    #[test]
    fn chunk_sizes_are_upper_case_hex_as_hypers() {
        for (len, line) in [
            (0, &b"0\r\n"[..]),
            (255, b"FF\r\n"),
            (4096, b"1000\r\n"),
            (usize::MAX, b"FFFFFFFFFFFFFFFF\r\n"),
        ] {
            let mut out = Vec::new();
            chunk_size(&mut out, len);
            assert_eq!(out, line);
        }
    }

    #[test]
    fn fields_share_the_bytes_they_were_parsed_from() {
        let text = b"GET / HTTP/1.1\r\nHost: a\r\nX-Two: b c\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 4];
        let mut request = httparse::Request::new(&mut slots);
        assert!(request.parse(text).expect("parses").is_complete());
        let mut fields = Fields::default();
        fields.record(text, request.headers);
        assert_eq!(fields.len(), 2);
        let headers = fields.headers(&Bytes::from_static(text));
        assert_eq!(headers["host"], "a");
        assert_eq!(headers["x-two"], "b c");
    }
}
