//! Headers: the ones Warmline adds to answers, and the rules for the ones it
//! forwards.
//!
//! A proxy forwards the headers that belong to the message and drops the ones that
//! belong to the connection (hop-by-hop, RFC 9110 §7.6.1), plus `Host` (rewritten to
//! the upstream's address, since Ollama refuses foreign hosts on loopback) and
//! `Origin` (Warmline checked it; Ollama's own check would refuse browser origins it
//! does not know). [`Framing`] reads from a response's `Content-Type` how its body
//! is delimited, which decides how a broken stream is ended.

use http::{HeaderMap, HeaderName, header};

/// The response header that tells how the cache treated a request: `hit`, `miss`,
/// `coalesced` or `bypass`.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-warmline-cache");

/// The standard header (RFC 9211) that says the same as [`CACHE_HEADER`], for
/// tools that read it.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The response header with the request's phases (milliseconds): Warmline's own
/// time, the queue wait, the upstream's time to its headers, and a model load
/// Warmline waited for itself.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// The response header on a stream whose headers were sent before its model had
/// loaded (see `pipeline::coldstart`).
pub const COLD_START_HEADER: HeaderName = HeaderName::from_static("x-warmline-cold-start");

/// Appends `name;dur=<milliseconds with three decimals>` to a `Server-Timing`
/// value, after a separator if it is not the first metric.
pub fn push_timing(value: &mut Vec<u8>, name: &str, took: Option<std::time::Duration>) {
    let Some(took) = took else { return };
    if !value.is_empty() {
        value.extend_from_slice(b", ");
    }
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let mut digits = itoa::Buffer::new();
    value.extend_from_slice(name.as_bytes());
    value.extend_from_slice(b";dur=");
    value.extend_from_slice(digits.format(micros / 1000).as_bytes());
    let fraction = micros % 1000;
    value.extend_from_slice(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
}

/// Copies the headers that belong to the message rather than to the connection.
pub fn forwardable(headers: &HeaderMap) -> HeaderMap {
    // A clone keeps the map's layout (no rehashing); the few hop-by-hop headers
    // are then taken out of it.
    let mut out = headers.clone();
    retain_forwardable(&mut out);
    out
}

/// [`forwardable`] in place, for a message Warmline owns (an upstream's answer):
/// removes the hop-by-hop headers instead of copying the others.
pub fn retain_forwardable(headers: &mut HeaderMap) {
    // One pass over the names finds which are present (most messages carry one
    // or two: `Host`, `Connection`); only those are removed.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(at) = hop_by_hop(name) {
            present[at] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    let named = if present[0] {
        connection_named(headers)
    } else {
        Vec::new()
    };
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
    for name in &named {
        headers.remove(name);
    }
}

/// The connection's own headers, plus `Host` and `Origin` (see the module docs).
/// `Connection` comes first: [`retain_forwardable`] reads the names it lists.
static HOP_BY_HOP: [HeaderName; 11] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
    header::HOST,
    header::ORIGIN,
];

/// The place of `name` in [`HOP_BY_HOP`], if it is there: one match on the name
/// (the names are lower case), not a comparison with each.
fn hop_by_hop(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "upgrade" => 7,
        "transfer-encoding" => 8,
        "host" => 9,
        "origin" => 10,
        _ => return None,
    })
}

/// The headers a message's `Connection:` names: hop-by-hop too (RFC 9110 §7.6.1).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// How a response body is framed, which decides how a broken stream is ended and
/// when a recorded answer is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Ollama's native streams: one JSON object per line, the last with
    /// `"done": true`.
    Ndjson,
    /// OpenAI-style server-sent events, ending with `data: [DONE]`.
    Sse,
    /// Anything else: a whole body, delimited by its length or the connection.
    Other,
}

impl Framing {
    /// The framing a response's `Content-Type` announces.
    pub fn of(headers: &HeaderMap) -> Framing {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/x-ndjson") {
            Framing::Ndjson
        } else if content_type.starts_with("text/event-stream") {
            Framing::Sse
        } else {
            Framing::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::Duration;

    #[test]
    fn timings_are_milliseconds_with_three_decimals() {
        let mut value = Vec::new();
        push_timing(&mut value, "overhead", Some(Duration::from_micros(42)));
        push_timing(&mut value, "queue", None);
        push_timing(
            &mut value,
            "upstream",
            Some(Duration::from_micros(12_345_678)),
        );
        push_timing(&mut value, "load", Some(Duration::from_nanos(999)));
        assert_eq!(
            std::str::from_utf8(&value).expect("ASCII"),
            "overhead;dur=0.042, upstream;dur=12345.678, load;dur=0.000"
        );
    }

    #[test]
    fn the_hop_by_hop_match_agrees_with_the_list() {
        for (at, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop(name), Some(at), "{name}");
        }
        assert_eq!(hop_by_hop(&header::CONTENT_TYPE), None);
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(header::HOST, HeaderValue::from_static("localhost:11435"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        let out = forwardable(&headers);
        assert_eq!(out.len(), 1);
        assert!(out.contains_key(header::CONTENT_TYPE));
        let mut owned = headers.clone();
        retain_forwardable(&mut owned);
        assert_eq!(owned, out);
    }

    #[test]
    fn framing_follows_content_type() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        assert_eq!(Framing::of(&headers), Framing::Ndjson);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        assert_eq!(Framing::of(&headers), Framing::Sse);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(Framing::of(&headers), Framing::Other);
    }
}
