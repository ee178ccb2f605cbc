//! JSON request-body binding with Go's error messages.
//!
//! Ollama binds every JSON body with Gin's `ShouldBindJSON`, i.e. Go's
//! `json.Decoder`: an empty body is `io.EOF` (reported as `missing request
//! body`), a syntax error is reported with the scanner's wording (`unexpected
//! EOF`, `invalid character 'x' looking for beginning of value`, …) and a
//! type mismatch names the Go struct field (`json: cannot unmarshal string
//! into Go struct field GenerateRequest.stream of type bool`). Data after the
//! first value is never read, and unknown fields are ignored.
//!
//! The fast path is a plain serde decode of the first value. Only when it
//! fails does [`bind`] work out which message Go would have produced: first a
//! scan that mirrors Go's scanner states, then a walk of the value against a
//! small [`GoStruct`] description of the request type.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a body could not be bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindError {
    /// Empty or whitespace-only body (Go's `io.EOF`).
    Empty,
    /// Go's decoder message for a malformed or mistyped body.
    Decode(String),
}

/// The Go type of a request field, as far as error messages need it.
#[derive(Debug)]
pub(crate) enum GoType {
    /// A scalar: which JSON kind it accepts and its Go name.
    Scalar(Kind, &'static str),
    /// `[]T`, with its Go name (`[]string`, `[]api.Message`).
    Slice(&'static GoType, &'static str),
    /// A nested struct.
    Struct(&'static GoStruct),
    /// Anything goes (`json.RawMessage`, `any`, custom unmarshalers).
    Any,
}

/// Which JSON values a Go scalar accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    Float,
    /// `map[string]T`: any JSON object.
    Map,
}

/// A Go struct: its qualified name and JSON field names with types.
#[derive(Debug)]
pub(crate) struct GoStruct {
    /// Qualified name as `reflect.Type.String()` prints it (`api.ChatRequest`).
    pub name: &'static str,
    pub fields: &'static [(&'static str, GoType)],
}

impl GoStruct {
    fn short_name(&self) -> &'static str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }
}

pub(crate) const STRING: GoType = GoType::Scalar(Kind::Str, "string");
pub(crate) const BOOL: GoType = GoType::Scalar(Kind::Bool, "bool");
pub(crate) const INT: GoType = GoType::Scalar(Kind::Int, "int");
pub(crate) const FLOAT64: GoType = GoType::Scalar(Kind::Float, "float64");
pub(crate) const MAP: GoType = GoType::Scalar(Kind::Map, "map[string]interface {}");

/// Decodes the first JSON value of `body` into `T`, or explains the failure
/// the way Go's `encoding/json` would for the struct described by `schema`.
pub(crate) fn bind<T: DeserializeOwned>(body: &[u8], schema: &GoStruct) -> Result<T, BindError> {
    if body.iter().all(|b| is_space(*b)) {
        return Err(BindError::Empty);
    }
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<T>();
    match values.next() {
        Some(Ok(v)) => Ok(v),
        // Go decodes `null` into a struct as a no-op: every field stays zero.
        Some(Err(_)) if body.trim_ascii_start().starts_with(b"null") => {
            serde_json::from_slice(b"{}").map_err(|e| BindError::Decode(e.to_string()))
        }
        Some(Err(e)) => Err(BindError::Decode(explain(body, schema, &e))),
        None => Err(BindError::Empty),
    }
}

fn explain(body: &[u8], schema: &GoStruct, serde_err: &serde_json::Error) -> String {
    if let Err(e) = Scanner::new(body).document() {
        return e.message();
    }
    let first = serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .next();
    if let Some(Ok(value)) = first
        && let Some(msg) = check_top(&value, schema)
    {
        return msg;
    }
    // A custom unmarshaler refused the value; serde's text is the best we have.
    let text = serde_err.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

// ---------------------------------------------------------------------------
// Type errors: walk the value like Go's decoder, first error wins.

fn kind_name(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "bool".to_owned(),
        Value::Number(_) => "number".to_owned(),
        Value::String(_) => "string".to_owned(),
        Value::Array(_) => "array".to_owned(),
        Value::Object(_) => "object".to_owned(),
    }
}

fn check_top(v: &Value, schema: &GoStruct) -> Option<String> {
    match v {
        Value::Object(_) => {
            let mut path = Vec::new();
            check_struct(v, schema, &mut path)
        }
        Value::Null => None,
        other => Some(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            kind_name(other),
            schema.name
        )),
    }
}

fn check_struct(v: &Value, schema: &GoStruct, path: &mut Vec<&'static str>) -> Option<String> {
    let Value::Object(map) = v else { return None };
    for (key, value) in map {
        let Some((name, ty)) = schema
            .fields
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
        else {
            continue;
        };
        path.push(name);
        let err = check(value, ty, schema, path);
        path.pop();
        if err.is_some() {
            return err;
        }
    }
    None
}

fn check(v: &Value, ty: &GoType, owner: &GoStruct, path: &mut Vec<&'static str>) -> Option<String> {
    let mismatch = |what: String, type_name: &str, path: &[&str]| {
        Some(format!(
            "json: cannot unmarshal {what} into Go struct field {}.{} of type {type_name}",
            owner.short_name(),
            path.join(".")
        ))
    };
    match (ty, v) {
        (_, Value::Null) | (GoType::Any, _) => None,
        (GoType::Scalar(kind, name), v) => match (kind, v) {
            (Kind::Str, Value::String(_))
            | (Kind::Bool, Value::Bool(_))
            | (Kind::Float, Value::Number(_))
            | (Kind::Map, Value::Object(_)) => None,
            (Kind::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => None,
            (Kind::Int, Value::Number(n)) => mismatch(format!("number {n}"), name, path),
            (_, other) => mismatch(kind_name(other), name, path),
        },
        (GoType::Slice(elem, _), Value::Array(items)) => {
            for item in items {
                let err = match (elem, item) {
                    (_, Value::Null) => None,
                    (GoType::Struct(s), Value::Object(_)) => check_struct(item, s, path),
                    (GoType::Struct(s), other) => mismatch(kind_name(other), s.name, path),
                    (elem, item) => check(item, elem, owner, path),
                };
                if err.is_some() {
                    return err;
                }
            }
            None
        }
        (GoType::Slice(_, name), other) => mismatch(kind_name(other), name, path),
        (GoType::Struct(s), Value::Object(_)) => check_struct(v, s, path),
        (GoType::Struct(s), other) => mismatch(kind_name(other), s.name, path),
    }
}

// ---------------------------------------------------------------------------
// Syntax errors: a recursive scanner with the wording of Go's scanner.go.

enum ScanError {
    Eof,
    Char(u8, &'static str),
    CharOwned(u8, String),
}

impl ScanError {
    fn message(&self) -> String {
        match self {
            ScanError::Eof => "unexpected EOF".to_owned(),
            ScanError::Char(c, ctx) => format!("invalid character {} {ctx}", quote_char(*c)),
            ScanError::CharOwned(c, ctx) => format!("invalid character {} {ctx}", quote_char(*c)),
        }
    }
}

/// Go's `quoteChar`.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_owned(),
        b'"' => "'\"'".to_owned(),
        b'\\' => "'\\\\'".to_owned(),
        b'\n' => "'\\n'".to_owned(),
        b'\r' => "'\\r'".to_owned(),
        b'\t' => "'\\t'".to_owned(),
        0x07 => "'\\a'".to_owned(),
        0x08 => "'\\b'".to_owned(),
        0x0b => "'\\v'".to_owned(),
        0x0c => "'\\f'".to_owned(),
        c if c < 0x20 || c == 0x7f => format!("'\\x{c:02x}'"),
        c if c < 0x80 => format!("'{}'", char::from(c)),
        c if c < 0xa0 => format!("'\\u{:04x}'", u32::from(c)),
        c => format!("'{}'", char::from(c)),
    }
}

/// The deepest nesting the scanner follows. Go's scanner stops at 10,000 with
/// "exceeded max depth"; this one is recursive, so it stops far sooner (a
/// 100,000-deep body would otherwise overflow a server thread's stack), with Go's
/// wording. No real request nests more than a few levels.
const MAX_DEPTH: usize = 512;

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

type Scan = Result<(), ScanError>;

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0, depth: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Result<u8, ScanError> {
        let c = self.peek().ok_or(ScanError::Eof)?;
        self.i += 1;
        Ok(c)
    }

    /// The first value of the document; what follows it is never read.
    fn document(&mut self) -> Scan {
        self.value()
    }

    fn value(&mut self) -> Scan {
        self.skip_space();
        match self.peek() {
            None => Err(ScanError::Eof),
            Some(c @ (b'{' | b'[')) => {
                if self.depth >= MAX_DEPTH {
                    return Err(ScanError::Char(c, "exceeded max depth"));
                }
                self.depth += 1;
                let scanned = if c == b'{' {
                    self.object()
                } else {
                    self.array()
                };
                self.depth -= 1;
                scanned
            }
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(c) => Err(ScanError::Char(c, "looking for beginning of value")),
        }
    }

    fn object(&mut self) -> Scan {
        self.i += 1;
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip_space();
            match self.peek() {
                None => return Err(ScanError::Eof),
                Some(b'"') => self.string()?,
                Some(c) => {
                    return Err(ScanError::Char(
                        c,
                        "looking for beginning of object key string",
                    ));
                }
            }
            self.skip_space();
            match self.next()? {
                b':' => {}
                c => return Err(ScanError::Char(c, "after object key")),
            }
            self.value()?;
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(()),
                c => return Err(ScanError::Char(c, "after object key:value pair")),
            }
        }
    }

    fn array(&mut self) -> Scan {
        self.i += 1;
        self.skip_space();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.value()?;
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(()),
                c => return Err(ScanError::Char(c, "after array element")),
            }
        }
    }

    fn string(&mut self) -> Scan {
        self.i += 1;
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            let c = self.next()?;
                            if !c.is_ascii_hexdigit() {
                                return Err(ScanError::Char(
                                    c,
                                    "in \\u hexadecimal character escape",
                                ));
                            }
                        }
                    }
                    c => return Err(ScanError::Char(c, "in string escape code")),
                },
                c if c < 0x20 => return Err(ScanError::Char(c, "in string literal")),
                _ => {}
            }
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn number(&mut self) -> Scan {
        if self.peek() == Some(b'-') {
            self.i += 1;
            match self.peek() {
                None => return Err(ScanError::Eof),
                Some(b'0'..=b'9') => {}
                Some(c) => return Err(ScanError::Char(c, "in numeric literal")),
            }
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            match self.peek() {
                None => return Err(ScanError::Eof),
                Some(b'0'..=b'9') => self.digits(),
                Some(c) => {
                    return Err(ScanError::Char(c, "after decimal point in numeric literal"));
                }
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            match self.peek() {
                None => return Err(ScanError::Eof),
                Some(b'0'..=b'9') => self.digits(),
                Some(c) => return Err(ScanError::Char(c, "in exponent of numeric literal")),
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Scan {
        self.i += 1;
        for &expected in &word[1..] {
            let c = self.next()?;
            if c != expected {
                let name = std::str::from_utf8(word).unwrap_or("literal");
                return Err(ScanError::CharOwned(
                    c,
                    format!("in literal {name} (expecting {})", quote_char(expected)),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Req {
        model: Option<String>,
        stream: Option<bool>,
        messages: Option<Vec<Msg>>,
        n: Option<i64>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Msg {
        role: Option<String>,
        content: Option<String>,
    }

    static MSG: GoStruct = GoStruct {
        name: "api.Message",
        fields: &[("role", STRING), ("content", STRING)],
    };
    static MSGS: GoType = GoType::Struct(&MSG);
    static REQ: GoStruct = GoStruct {
        name: "api.GenerateRequest",
        fields: &[
            ("model", STRING),
            ("stream", BOOL),
            ("messages", GoType::Slice(&MSGS, "[]api.Message")),
            ("n", INT),
        ],
    };

    fn err(body: &str) -> String {
        match bind::<Req>(body.as_bytes(), &REQ) {
            Ok(r) => format!("ok: {r:?}"),
            Err(BindError::Empty) => "EMPTY".to_owned(),
            Err(BindError::Decode(m)) => m,
        }
    }

    #[test]
    fn a_hundred_thousand_deep_body_is_refused_not_a_stack_overflow() {
        let body = format!("{{\"model\":{}", "[".repeat(100_000));
        // Run on a thread with a small stack, as a server's worker has.
        let message = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(move || err(&body))
            .expect("thread")
            .join()
            .expect("no stack overflow");
        assert_eq!(message, "invalid character '[' exceeded max depth");
    }

    #[test]
    fn empty_bodies_are_missing() {
        assert_eq!(err(""), "EMPTY");
        assert_eq!(err(" \n"), "EMPTY");
    }

    #[test]
    fn syntax_errors_use_go_wording() {
        assert_eq!(err("{\"model\":"), "unexpected EOF");
        assert_eq!(err("{\"model\""), "unexpected EOF");
        assert_eq!(
            err("x"),
            "invalid character 'x' looking for beginning of value"
        );
        assert_eq!(
            err("{model:1}"),
            "invalid character 'm' looking for beginning of object key string"
        );
        assert_eq!(err("{\"a\" 1}"), "invalid character '1' after object key");
        assert_eq!(
            err("{\"a\":1 \"b\":2}"),
            "invalid character '\"' after object key:value pair"
        );
        assert_eq!(
            err("{\"a\":tru}"),
            "invalid character '}' in literal true (expecting 'e')"
        );
        assert_eq!(
            err("{\"a\":\"\n\"}"),
            "invalid character '\\n' in string literal"
        );
        assert_eq!(
            err("{\"a\":1.}"),
            "invalid character '}' after decimal point in numeric literal"
        );
    }

    #[test]
    fn type_errors_name_the_go_field() {
        assert_eq!(
            err("{\"stream\":\"yes\"}"),
            "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool"
        );
        assert_eq!(
            err("{\"n\":1.5}"),
            "json: cannot unmarshal number 1.5 into Go struct field GenerateRequest.n of type int"
        );
        assert_eq!(
            err("{\"messages\":[{\"content\":5}]}"),
            "json: cannot unmarshal number into Go struct field Message.messages.content of type string"
        );
        assert_eq!(
            err("{\"messages\":\"hi\"}"),
            "json: cannot unmarshal string into Go struct field GenerateRequest.messages of type []api.Message"
        );
        assert_eq!(
            err("[1]"),
            "json: cannot unmarshal array into Go value of type api.GenerateRequest"
        );
    }

    #[test]
    fn trailing_data_and_unknown_fields_are_ignored() {
        assert!(err("{\"model\":\"m\",\"extra\":[1]} trailing").starts_with("ok"));
        assert!(err("{\"model\":null}").starts_with("ok"));
    }
}
