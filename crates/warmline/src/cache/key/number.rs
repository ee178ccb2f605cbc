//! Numbers as Go decodes them into Ollama's fields (`int`, `float32`, `float64`),
//! and the canonical text each kind is keyed as.

/// Go `int` field: integer literal only (`1.0` and `1e0` are decode errors in Go).
pub(super) fn go_int(text: &str) -> Option<i64> {
    if text.contains(['.', 'e', 'E']) {
        return None;
    }
    text.parse().ok()
}

/// Go `float64`: out-of-range literals are decode errors.
pub(super) fn go_f64(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Go `float32` struct field: the literal is rounded straight to float32.
pub(super) fn go_f32(text: &str) -> Option<f32> {
    text.parse::<f32>().ok().filter(|f| f.is_finite())
}

/// Canonical text of an option value that Ollama holds as `float32`.
/// `-0` is folded into `0` (Ollama's samplers compare, never divide by, these),
/// except for `repeat_penalty`, which llama.cpp divides by.
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
