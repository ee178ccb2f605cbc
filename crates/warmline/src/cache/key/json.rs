//! The body reader: a strict RFC 8259 parser that keeps what `serde_json::Value` loses.
//!
//! `canonical` (in `mod.rs`) calls [`parse`] once on the whole body, after checking
//! that it is UTF-8 and before any field is looked at (`openai` calls it again on each
//! `/v1` tool call's `arguments` string). Every other part of the key (`field`,
//! `native`, `openai`, `options`, `tree`) reads the resulting [`J`] tree, whose
//! strings and numbers borrow from the body wherever they can.
//!
//! # What it keeps, and why the key needs it
//!
//! - **Member order.** `format` schemas, `tools` and tool-call arguments are keyed in
//!   document order, because Ollama carries that order into the grammar and the prompt.
//! - **Duplicate members.** Go keeps the last of two members with the same name (with
//!   merge rules for maps). Rather than mirror that, the field readers see both members
//!   and refuse the body (`KeyError::DuplicateField`).
//! - **The exact text of numbers.** Go decodes `1` into an `int` field but fails on
//!   `1.0`, and llama.cpp's schema converter prints `1` and `1.0` differently, so a
//!   number stays text here and is interpreted per field by `number`.
//! - **Whether a string had escapes.** Ollama compares `format` with the raw bytes
//!   `"json"`, so `"js\u006fn"` is an error there and must not be keyed as JSON mode.
//!   A string without escapes is `Cow::Borrowed`, one with escapes `Cow::Owned`.
//!
//! Owning the reader also makes the key immune to serde_json's `preserve_order` or
//! `arbitrary_precision` features being switched on elsewhere in the build.
//!
//! # Strictness
//!
//! Exactly the RFC 8259 grammar: no comments, no trailing commas, no leading zeros,
//! no `NaN`/`Infinity`, whitespace only space, tab, LF and CR, nothing after the value.
//! Beyond the grammar it refuses nesting deeper than [`MAX_DEPTH`] and lone surrogates
//! in `\u` escapes (Go would substitute U+FFFD). Refusing is always safe: the request
//! bypasses the cache and Ollama answers it, in its own words. The property tests
//! below check that the reader accepts only what serde_json accepts and reads the
//! same values.
//!
//! Errors are plain strings, `"<what> at byte <offset>"`, which the caller wraps in
//! `KeyError::NotJson`. The parser never panics: every read goes through `peek` or a
//! checked `get`, and the depth limit also bounds its recursion, so a hostile body
//! cannot overflow the stack.

use std::borrow::Cow;

/// The deepest nesting of arrays and objects accepted: 128 levels parse, 129 do not.
///
/// Deeper documents are refused (Go allows 10 000; refusing only costs a bypass). No
/// real request comes close, and the limit keeps the recursive descent's stack small.
pub(super) const MAX_DEPTH: usize = 128;

/// One JSON value as written, borrowing from the body text (`'a`).
///
/// Unlike `serde_json::Value` it keeps member order, duplicate members, the text of
/// numbers and whether a string had escapes; see the module doc for why each matters.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum J<'a> {
    /// `null`. The readers treat it as absent, as Go's decoder does: it leaves the
    /// field at its zero value (or sets a pointer, slice or map to nil).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// The number exactly as written (already checked against the JSON grammar).
    ///
    /// Not interpreted here: whether `1.0` is an integer, a `float32` or a schema
    /// literal depends on the field, and is decided by the functions of `number`.
    Num(&'a str),
    /// Borrowed when the string had no escapes, owned otherwise.
    ///
    /// The content is always the unescaped text; the `Cow` variant is information in
    /// its own right (`request::Format::from_raw` matches on `Cow::Borrowed("json")`).
    Str(Cow<'a, str>),
    /// Elements in document order.
    Arr(Vec<J<'a>>),
    /// Members in document order, duplicates kept.
    ///
    /// Names are unescaped like strings. Nothing is looked up here; `field::go_struct`
    /// and `field::go_map` decide how names match and refuse duplicates.
    Obj(Vec<(Cow<'a, str>, J<'a>)>),
}

/// Parses one complete JSON document.
///
/// Leading and trailing whitespace is allowed; anything else after the value is an
/// error. (Ollama's streaming decoder would read the first value and ignore the rest;
/// such a body is refused as murky, which makes it a bypass.) On success the tree
/// borrows from `text`. On failure the error is a short description with the byte
/// offset where reading stopped, e.g. `"expected ',' or '}' at byte 17"`.
pub(super) fn parse(text: &str) -> Result<J<'_>, String> {
    let mut p = Parser {
        text,
        s: text.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("trailing characters after the JSON value"));
    }
    Ok(v)
}

/// The recursive-descent reader's state. One parser reads one document.
struct Parser<'a> {
    /// The whole body, for borrowing slices as `&str`.
    text: &'a str,
    /// The same bytes, for scanning. Every token boundary is an ASCII byte, so every
    /// slice taken at a boundary is also a `char` boundary of `text`.
    s: &'a [u8],
    /// The offset of the next unread byte.
    i: usize,
    /// Arrays and objects currently open (checked against [`MAX_DEPTH`]).
    depth: usize,
}

impl<'a> Parser<'a> {
    /// An error message naming the current offset.
    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.i)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips JSON whitespace: space, tab, LF and CR only (not form feed or NBSP).
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// `text[from..to]`, borrowed. Cannot fail for the offsets the parser passes (they
    /// sit next to ASCII bytes); the error exists only so that no path can panic.
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, String> {
        self.text
            .get(from..to)
            .ok_or_else(|| self.err("internal error: not a character boundary"))
    }

    /// Reads the value starting at the current byte (whitespace already skipped).
    fn value(&mut self) -> Result<J<'a>, String> {
        match self.peek() {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(J::Str(self.string()?)),
            Some(b't') => self.literal("true", J::Bool(true)),
            Some(b'f') => self.literal("false", J::Bool(false)),
            Some(b'n') => self.literal("null", J::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    /// Reads `true`, `false` or `null`, spelled exactly (JSON literals are lower-case).
    fn literal(&mut self, word: &str, v: J<'a>) -> Result<J<'a>, String> {
        if self
            .s
            .get(self.i..)
            .is_some_and(|rest| rest.starts_with(word.as_bytes()))
        {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    /// Steps over `{` or `[`, counting one more level of nesting, and skips the
    /// whitespace after it. The matching close decrements `depth`.
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        self.i += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.ws();
        Ok(())
    }

    /// Reads an object; members are kept in order, duplicates included.
    fn object(&mut self) -> Result<J<'a>, String> {
        self.enter()?;
        let mut members = Vec::new();
        if self.peek() == Some(b'}') {
            self.i += 1;
            self.depth -= 1;
            return Ok(J::Obj(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a member name"));
            }
            let name = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected ':'"));
            }
            self.i += 1;
            self.ws();
            members.push((name, self.value()?));
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(J::Obj(members));
                }
                _ => return Err(self.err("expected ',' or '}'")),
            }
        }
    }

    /// Reads an array.
    fn array(&mut self) -> Result<J<'a>, String> {
        self.enter()?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.i += 1;
            self.depth -= 1;
            return Ok(J::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b']') => {
                    self.i += 1;
                    self.depth -= 1;
                    return Ok(J::Arr(items));
                }
                _ => return Err(self.err("expected ',' or ']'")),
            }
        }
    }

    /// Steps over one or more ASCII digits; none is an error.
    fn digits(&mut self) -> Result<(), String> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.err("invalid number"));
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        Ok(())
    }

    /// Checks a number against the grammar (`-? (0 | [1-9][0-9]*) (. [0-9]+)?
    /// ([eE] [+-]? [0-9]+)?`) and returns its text, unconverted.
    fn number(&mut self) -> Result<J<'a>, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(self.err("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.digits()?;
        }
        Ok(J::Num(self.slice(start, self.i)?))
    }

    /// Reads a string (the current byte is its opening quote).
    ///
    /// Fast path: a string without escapes is returned borrowed. At the first
    /// backslash it switches to building an owned copy. Raw control characters
    /// (below U+0020) are refused, as the grammar requires; bytes of multi-byte UTF-8
    /// characters are copied through untouched.
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.i += 1; // opening quote
        let start = self.i;
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    let s = self.slice(start, self.i)?;
                    self.i += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(b) if b < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.i += 1,
            }
        }
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(self.slice(start, self.i)?);
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.i += 1;
                            out.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => return Err(self.err("invalid escape")),
                    };
                    self.i += 1;
                    out.push(c);
                }
                Some(b) if b < 0x20 => return Err(self.err("control character in string")),
                Some(_) => {
                    let run = self.i;
                    while let Some(b) = self.peek() {
                        if b == b'"' || b == b'\\' || b < 0x20 {
                            break;
                        }
                        self.i += 1;
                    }
                    out.push_str(self.slice(run, self.i)?);
                }
            }
        }
    }

    /// Reads the four hex digits of a `\u` escape (either case).
    fn hex4(&mut self) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    /// Decodes `XXXX` (after `\u`), joining surrogate pairs. Lone surrogates are
    /// refused (Go would substitute U+FFFD; refusing only costs a bypass).
    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.peek() != Some(b'\\') || self.s.get(self.i + 1) != Some(&b'u') {
                    return Err(self.err("lone surrogate in \\u escape"));
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.err("lone surrogate in \\u escape"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.err("lone surrogate in \\u escape")),
            _ => hi,
        };
        char::from_u32(code).ok_or_else(|| self.err("invalid \\u escape"))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use crate::cache::key::json::{self, J};
    use crate::cache::key::number::go_int;

    fn to_serde(v: &J<'_>) -> serde_json::Value {
        use serde_json::Value;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Num(t) => {
                if let Some(i) = go_int(t) {
                    Value::from(i)
                } else if let Ok(u) = t.parse::<u64>() {
                    Value::from(u)
                } else {
                    Value::from(t.parse::<f64>().expect("number"))
                }
            }
            J::Str(s) => Value::String(s.to_string()),
            J::Arr(items) => Value::Array(items.iter().map(to_serde).collect()),
            J::Obj(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), to_serde(v)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn reader_keeps_order_duplicates_and_number_text() {
        let v = json::parse(r#"{"b":1.50,"a":[1e2,-0],"b":"x\u00e9"}"#).expect("parses");
        let J::Obj(m) = v else { panic!("object") };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(m[0].1, J::Num("1.50"));
        assert_eq!(m[1].1, J::Arr(vec![J::Num("1e2"), J::Num("-0")]));
        assert!(matches!(&m[2].1, J::Str(Cow::Owned(s)) if s == "x\u{e9}"));
        assert!(matches!(
            json::parse(r#""plain""#),
            Ok(J::Str(Cow::Borrowed("plain")))
        ));
        let nested = format!(
            "{}{}",
            "[".repeat(json::MAX_DEPTH),
            "]".repeat(json::MAX_DEPTH)
        );
        assert!(json::parse(&nested).is_ok());
        let deeper = format!(
            "{}{}",
            "[".repeat(json::MAX_DEPTH + 1),
            "]".repeat(json::MAX_DEPTH + 1)
        );
        assert!(json::parse(&deeper).is_err());
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn reader_agrees_with_serde_json(v in arb_json(), pretty in any::<bool>()) {
            let text = if pretty { serde_json::to_string_pretty(&v) } else { serde_json::to_string(&v) }.expect("serialises");
            let ours = json::parse(&text).map_err(TestCaseError::fail)?;
            // Compared with the source value: serde_json's own reader is not correctly
            // rounded for long mantissas (without its float_roundtrip feature); ours is.
            prop_assert_eq!(to_serde(&ours), v);
        }

        #[test]
        fn reader_accepts_only_what_serde_json_accepts(bytes in prop::collection::vec(prop::sample::select(b"{}[]\",:0123456789.eE+-tfnrulas \\u\n".to_vec()), 0..40)) {
            let text = String::from_utf8(bytes).expect("ascii");
            if json::parse(&text).is_ok() {
                let theirs = serde_json::from_str::<serde_json::Value>(&text);
                prop_assert!(theirs.is_ok(), "we accepted what serde_json refuses: {:?}", text);
            }
        }
    }
}
