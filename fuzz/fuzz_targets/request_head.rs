//! The connection guard's head reader on any bytes, split into any reads: it never
//! panics, calls a connection HTTP/2 only when its first 24 bytes are exactly the
//! preface, and says "too large" exactly when more than the limit arrived.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warmline::edge::server::{HeadReader, Seen};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else {
        return;
    };
    let Some((&limit, bytes)) = rest.split_first() else {
        return;
    };
    let max = usize::from(limit) * 4;
    let mut reader = HeadReader::first(max);
    let mut seen = 0;
    // Reads of varying length, chosen by the first byte.
    let mut chunks = bytes.chunks(usize::from(cuts % 31) + 1);
    for chunk in chunks.by_ref() {
        seen += chunk.len();
        match reader.observe(chunk) {
            Seen::Http2 => {
                assert!(seen >= PREFACE.len() && bytes.starts_with(PREFACE), "{bytes:?}");
                return;
            }
            Seen::TooLarge => {
                assert!(seen > max);
                return;
            }
            Seen::Head => assert!(seen <= max),
        }
        assert_eq!(reader.bytes(), seen);
    }
});
