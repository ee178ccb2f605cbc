//! Numbers as Go decodes them into Ollama's fields (`int`, `float32`, `float64`),
//! and the canonical text each kind is keyed as.
//!
//! The reader (`json`) hands numbers over as their literal text. What a literal
//! *means* depends on the Go type of the field it lands in, so this module has one
//! reader per type and one canonical printer per kind of value:
//!
//! | where the number lands                     | read with | keyed as          |
//! |--------------------------------------------|-----------|-------------------|
//! | typed `int` fields (`top_logprobs`, `context`, `/v1` `seed`, ...) | `go_int` | `C::Int` |
//! | `options` values Ollama holds as `int`     | `go_f64`, truncated | `C::Int` |
//! | `float32` options (and `/v1` chat's sampling fields) | `go_f64`, then `as f32` | `f32_text` |
//! | `/v1` completions' `float32` fields        | `go_f32`  | `f32_text`        |
//! | Go `any` (legacy options, `/api/show` options) | `go_f64` | `f64_text`    |
//! | schemas, tools, tool-call arguments        | none      | `exact_number_text` |
//!
//! The rule behind every printer: two literals get the same text when Ollama ends up
//! holding the same value, and different texts otherwise (`-0` is the one judgement
//! call, see `f32_text`), so `0.5`, `5e-1` and `0.50` are one temperature.
//! Where the literal's *spelling* survives into what the model sees (a JSON schema
//! becomes a grammar, tool definitions become prompt text), the class of the number
//! is kept as well: `1` and `1.0` stay different there.
//!
//! Every reader returns `None` for what Go could not decode into that type (the
//! caller turns it into `KeyError::WrongType`); nothing here panics. Non-finite
//! values never come from a literal, because Go refuses out-of-range literals; the
//! one way to get an infinity is an option that fits a `float64` but overflows the
//! `float32` it is converted to, which `f32_text` keys as a signed `1e999`.

/// Go `int` field: integer literal only (`1.0` and `1e0` are decode errors in Go).
///
/// `None` for a fraction, an exponent, or a value outside `i64` (Go's 64-bit `int`
/// overflows there too). `-0` reads as `0`.
pub(super) fn go_int(text: &str) -> Option<i64> {
    if text.contains(['.', 'e', 'E']) {
        return None;
    }
    text.parse().ok()
}

/// Go `float64`: out-of-range literals are decode errors.
///
/// Rust's parser is correctly rounded, as Go's is, so both see the same `f64` for any
/// literal. `None` when the literal overflows to an infinity (`1e999`).
pub(super) fn go_f64(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Go `float32` struct field: the literal is rounded straight to float32.
///
/// Used where Ollama's own struct has a `float32` field (the `/v1` completions
/// request), as opposed to `options`, which Go first decodes into a `float64` and only
/// then converts; the two roundings can differ in the last bit, so they are kept
/// apart. `None` when the literal does not fit a `float32`.
pub(super) fn go_f32(text: &str) -> Option<f32> {
    text.parse::<f32>().ok().filter(|f| f.is_finite())
}

/// Canonical text of an option value that Ollama holds as `float32`.
/// `-0` is folded into `0` (Ollama's samplers compare, never divide by, these),
/// except for `repeat_penalty`, which llama.cpp divides by.
///
/// Integral values of magnitude below 9e15 print as integers (`1`, not `1.0`), any
/// other finite value in Rust's shortest round-trip `Debug` form (`0.8`), infinities
/// as `1e999` or `-1e999`. Apart from the `-0` folding, different `f32` values always
/// give different texts.
pub(super) fn f32_text(v: f32, keep_negative_zero: bool) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "1e999" } else { "-1e999" }.to_owned();
    }
    if v == 0.0 {
        return if keep_negative_zero && v.is_sign_negative() {
            "-0"
        } else {
            "0"
        }
        .to_owned();
    }
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return format!("{}", v as i64);
    }
    format!("{v:?}")
}

/// Canonical text of a Go `any` number (a float64): Go re-encodes `-0` as `-0`.
///
/// Same shape as `f32_text` (integral values below 9e15 as integers, else the
/// shortest round-trip form), but `-0` is always kept. Callers pass finite values only
/// (`go_f64` has filtered the rest).
pub(super) fn f64_text(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        return format!("{}", v as i64);
    }
    format!("{v:?}")
}

/// Canonical text of a number inside an order- and class-preserving value (schemas,
/// tools): integer literals stay integers, anything with `.`/`e` stays a float
/// (llama.cpp's schema converter prints `1` and `1.0` differently).
///
/// Within a class, spellings of one value still meet: `1e2`, `100.0` and `1.0e2` all
/// become `100.0`; `-0` (an integer literal) stays `-0`, distinct from `0`. An
/// integer literal too large for `u64` is read as a float, as every decoder would.
/// `None` for a literal that overflows `f64`.
pub(super) fn exact_number_text(text: &str) -> Option<String> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(i) = text.parse::<i64>() {
            return Some(if i == 0 && text.starts_with('-') {
                "-0".to_owned()
            } else {
                i.to_string()
            });
        }
        if let Ok(u) = text.parse::<u64>() {
            return Some(u.to_string());
        }
    }
    // Floats, and integers too large for 64 bits (which every decoder reads as floats).
    go_f64(text).map(|f| format!("{f:?}"))
}
