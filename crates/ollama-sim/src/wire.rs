//! Response framing shared by every handler.
//!
//! * JSON bodies are the bytes Go's `encoding/json` would write: serde output
//!   post-processed with Go's HTML-safe escaping (`<`, `>`, `&`, U+2028 and
//!   U+2029 as `\u003c`…), which only ever occurs inside strings, so the
//!   rewrite is a byte scan that allocates only when one of them is present.
//! * Gin's `c.JSON` sends `application/json; charset=utf-8` without a
//!   trailing newline; native streams are `application/x-ndjson`, one object
//!   plus `\n` per frame; OpenAI streams are `text/event-stream` with
//!   `data: …\n\n` frames.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");
pub(crate) const NDJSON: HeaderValue = HeaderValue::from_static("application/x-ndjson");
pub(crate) const SSE: HeaderValue = HeaderValue::from_static("text/event-stream");
pub(crate) const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Serialises `value` as Go would, appending to `out`.
pub(crate) fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        // Only a failing Serialize impl could get here; ours cannot fail.
        out.truncate(start);
        out.extend_from_slice(b"{}");
        return;
    }
    go_escape_from(out, start);
}

/// `value` as Go JSON bytes.
pub(crate) fn json_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_json(&mut out, value);
    out
}

/// One NDJSON frame: the object and a newline.
pub(crate) fn ndjson_line<T: Serialize + ?Sized>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(192);
    write_json(&mut out, value);
    out.push(b'\n');
    Bytes::from(out)
}

/// One SSE frame: `data: <json>\n\n`.
pub(crate) fn sse_frame<T: Serialize + ?Sized>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    write_json(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// The SSE terminator.
pub(crate) const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

/// A complete response with a body and content type.
pub(crate) fn response(
    status: StatusCode,
    content_type: HeaderValue,
    body: impl Into<Body>,
) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    resp
}

/// `c.JSON(status, value)`.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    response(status, JSON, json_bytes(value))
}

/// Pre-serialised JSON bytes (catalog snapshots).
pub(crate) fn json_raw(status: StatusCode, bytes: Bytes) -> Response {
    response(status, JSON, bytes)
}

/// `c.Status(200)`: an empty body and no content type.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// Rewrites `out[start..]` with Go's HTML-safe string escapes.
fn go_escape_from(out: &mut Vec<u8>, start: usize) {
    let needs = out[start..]
        .iter()
        .any(|&b| matches!(b, b'<' | b'>' | b'&' | 0xE2));
    if !needs {
        return;
    }
    let tail = out.split_off(start);
    let mut i = 0;
    while i < tail.len() {
        match tail[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xE2 if tail.get(i + 1) == Some(&0x80) && tail.get(i + 2) == Some(&0xA8) => {
                out.extend_from_slice(b"\\u2028");
                i += 2;
            }
            0xE2 if tail.get(i + 1) == Some(&0x80) && tail.get(i + 2) == Some(&0xA9) => {
                out.extend_from_slice(b"\\u2029");
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_characters_are_escaped_like_go() {
        let bytes = json_bytes(&serde_json::json!({"t": "<|eot_id|> & \u{2028}"}));
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"t":"\u003c|eot_id|\u003e \u0026 \u2028"}"#
        );
    }

    #[test]
    fn plain_output_is_untouched() {
        assert_eq!(
            json_bytes(&serde_json::json!({"a": "é"})),
            "{\"a\":\"é\"}".as_bytes()
        );
        assert_eq!(
            &ndjson_line(&serde_json::json!({"a":1}))[..],
            b"{\"a\":1}\n"
        );
        assert_eq!(
            &sse_frame(&serde_json::json!({"a":1}))[..],
            b"data: {\"a\":1}\n\n"
        );
    }
}
