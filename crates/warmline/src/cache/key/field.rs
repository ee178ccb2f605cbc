//! Go-style field access: reading the parsed body the way Go's `encoding/json`
//! decodes it into Ollama's structs and maps (case-folded names, `null` as absent,
//! Go's number and duration rules), naming the dotted path of any field that does
//! not fit.
//!
//! The route decoders (`native`, `openai`) read typed fields through this module:
//! they pick a struct's members with [`go_struct`] or a map's with [`go_map`], then
//! convert each member with one of the readers below (only untyped values, such as
//! `format`, content parts or Go `any`, are matched on directly). Every reader
//! answers the question "what would Go hold in this field after decoding?":
//!
//! - **Absent and `null` are the same**, and give the Go zero value: `""`, `false`,
//!   `0`, an empty list. Where Ollama uses a pointer (`*bool` for `stream`,
//!   `truncate`, `shift`) or tells a nil slice from an empty one (`context`), the
//!   `opt_*` readers and [`array`] keep `None` apart from a value.
//! - **A wrong JSON type is an error** (`KeyError::WrongType`), because Ollama answers
//!   it with a 400, and a cached 200 must never pre-empt that. The same goes for
//!   fields that are not keyed at all (`keep_alive`, `stream_options`), which are
//!   checked here and then dropped.
//! - **Where Go's behaviour is murky, refuse.** A member given twice, a `null` inside
//!   a list of strings: Go has an answer for each, but mirroring it buys nothing, and a
//!   refusal only costs a bypass.
//!
//! Errors carry the dotted path of the field (`messages[2].tool_calls[0].function`),
//! built as a linked list of [`Path`] segments on the stack, so the happy path
//! allocates nothing for it; the string is rendered only when an error is returned.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::KeyError;
use super::json::J;
use super::number::{go_f32, go_f64, go_int};

/// The members of one JSON object, in document order, duplicates kept (as `J::Obj`
/// holds them).
pub(super) type Obj<'j> = &'j [(Cow<'j, str>, J<'j>)];
/// One member picked out of an object: `None` when the object does not have it.
pub(super) type Field<'j> = Option<&'j J<'j>>;

/// Where a value sits in the body, rendered only when an error needs it.
///
/// Each `Path` points at its parent, so a decoder deep inside `messages[3]` builds
/// its path from borrowed pieces as it descends, with no allocation.
#[derive(Clone, Copy)]
pub(super) struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    seg: Seg<'p>,
}

/// One step of a [`Path`].
#[derive(Clone, Copy)]
enum Seg<'p> {
    /// The body itself; renders as nothing.
    Root,
    /// A member, by name (a struct field's canonical lower-case name, not the
    /// client's spelling).
    Field(&'p str),
    /// An element of a list; renders as `[i]`.
    Index(usize),
}

impl<'p> Path<'p> {
    /// The top level of the body. Errors about it have an empty field name.
    pub(super) const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    /// The member `name` of the object at this path (`messages[0]` → `messages[0].role`).
    pub(super) fn field(&'p self, name: &'p str) -> Path<'p> {
        Path {
            parent: Some(self),
            seg: Seg::Field(name),
        }
    }

    /// Element `i` of the list at this path (`images` → `images[2]`).
    pub(super) fn index(&'p self, i: usize) -> Path<'p> {
        Path {
            parent: Some(self),
            seg: Seg::Index(i),
        }
    }

    /// The dotted form, e.g. `messages[0].tool_calls[1].function.arguments`.
    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            segs.push(p.seg);
            at = p.parent;
        }
        let mut out = String::new();
        for seg in segs.into_iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Seg::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }

    /// `KeyError::WrongType` for the value at this path: Go could not decode it into
    /// the field's type. `expected` names that type in words ("string", "integer").
    pub(super) fn wrong(&self, expected: &'static str) -> KeyError {
        KeyError::WrongType {
            field: self.render(),
            expected,
        }
    }

    /// `KeyError::InvalidValue` for the value at this path: the type is right but
    /// Ollama (or the cache) cannot accept this value; `reason` says why.
    pub(super) fn invalid(&self, reason: &'static str) -> KeyError {
        KeyError::InvalidValue {
            field: self.render(),
            reason,
        }
    }
}

/// Go's `encoding/json` key folding: ASCII case-insensitive, plus the two non-ASCII
/// letters that fold onto ASCII ones (KELVIN SIGN → k, LONG S → s).
///
/// `name` must be the lower-case ASCII spelling of the field; `key` is the member
/// name as the client wrote it. So `"Prompt"`, `"PROMPT"` and `"\u212Aeep_alive"`
/// (with the Kelvin sign) all match, as they do in Go.
fn go_fold_eq(key: &str, name: &str) -> bool {
    let mut chars = key.chars();
    for want in name.bytes() {
        let folded = match chars.next() {
            Some('\u{212A}') => b'k',
            Some('\u{17F}') => b's',
            Some(c) if c.is_ascii() => (c as u8).to_ascii_lowercase(),
            _ => return false,
        };
        if folded != want {
            return false;
        }
    }
    chars.next().is_none()
}

/// Picks the members of a Go struct out of a JSON object: unknown members are
/// ignored (as Go does); a field given twice is refused (Go keeps the last one, with
/// merge rules for maps that are not worth mirroring).
///
/// `names` are the struct's JSON field names, each in lower-case ASCII (the folding
/// relies on it). The result has one slot per name, in the same order, so callers
/// destructure it: `let [model, prompt, ..] = go_struct(members, &names, &root)?`.
/// "Given twice" is judged after folding: `"model"` and `"Model"` together are a
/// `KeyError::DuplicateField` naming `model`.
pub(super) fn go_struct<'j, const N: usize>(
    members: Obj<'j>,
    names: &[&'static str; N],
    path: &Path<'_>,
) -> Result<[Field<'j>; N], KeyError> {
    let mut out: [Field<'j>; N] = [None; N];
    for (key, value) in members {
        if let Some(i) = names.iter().position(|name| go_fold_eq(key, name)) {
            if out[i].is_some() {
                return Err(KeyError::DuplicateField(path.field(names[i]).render()));
            }
            out[i] = Some(value);
        }
    }
    Ok(out)
}

/// A JSON object decoded into a Go map: exact keys, a repeated key is refused.
///
/// Map keys are matched byte for byte (Go does not fold map keys), so `"Temperature"`
/// is just another, unknown, option. The members come back unchanged, in document
/// order. Small maps are checked pairwise without allocating; larger ones (over 16
/// members) by sorting a list of the keys.
pub(super) fn go_map<'j>(members: Obj<'j>, path: &Path<'_>) -> Result<Obj<'j>, KeyError> {
    let dup = if members.len() <= 16 {
        members
            .iter()
            .enumerate()
            .find(|(i, (k, _))| members[..*i].iter().any(|(k2, _)| k2 == k))
            .map(|(_, (k, _))| k)
    } else {
        let mut keys: Vec<&Cow<'_, str>> = members.iter().map(|(k, _)| k).collect();
        keys.sort_unstable();
        keys.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    };
    match dup {
        Some(k) => Err(KeyError::DuplicateField(path.field(k).render())),
        None => Ok(members),
    }
}

/// A Go `string` field: absent or `null` is `""`, a string is its unescaped text.
/// The result borrows from the body.
pub(super) fn string<'j>(v: Field<'j>, p: &Path<'_>) -> Result<&'j str, KeyError> {
    match v {
        None | Some(J::Null) => Ok(""),
        Some(J::Str(s)) => Ok(s.as_ref()),
        Some(_) => Err(p.wrong("string")),
    }
}

/// A Go `bool` field: absent or `null` is `false`.
pub(super) fn boolean(v: Field<'_>, p: &Path<'_>) -> Result<bool, KeyError> {
    Ok(opt_bool(v, p)?.unwrap_or(false))
}

/// A Go `*bool` field: absent or `null` is `None` (nil), so the caller can apply
/// Ollama's default (`stream`, `truncate` and `shift` default to true).
pub(super) fn opt_bool(v: Field<'_>, p: &Path<'_>) -> Result<Option<bool>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(p.wrong("boolean")),
    }
}

/// A Go `int` field: absent or `null` is `0`; only integer literals are accepted.
pub(super) fn integer(v: Field<'_>, p: &Path<'_>) -> Result<i64, KeyError> {
    Ok(opt_integer(v, p)?.unwrap_or(0))
}

/// A Go `*int` field: absent or `null` is `None`; `1.0` and `1e0` are wrong types,
/// as in Go.
pub(super) fn opt_integer(v: Field<'_>, p: &Path<'_>) -> Result<Option<i64>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Num(t)) => go_int(t).map(Some).ok_or_else(|| p.wrong("integer")),
        Some(_) => Err(p.wrong("integer")),
    }
}

/// A Go `int32` field (`width`, `height`, `steps`): like [`integer`], and a value
/// outside `i32` is the error Go reports for it. Returned widened, as the tree keys
/// every integer as `i64`.
pub(super) fn int32(v: Field<'_>, p: &Path<'_>) -> Result<i64, KeyError> {
    let n = integer(v, p)?;
    if i32::try_from(n).is_err() {
        return Err(p.wrong("32-bit integer"));
    }
    Ok(n)
}

/// A Go `*float64` field: absent or `null` is `None`; a literal that overflows
/// `f64` is a wrong type ("finite number").
pub(super) fn opt_f64(v: Field<'_>, p: &Path<'_>) -> Result<Option<f64>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Num(t)) => go_f64(t).map(Some).ok_or_else(|| p.wrong("finite number")),
        Some(_) => Err(p.wrong("number")),
    }
}

/// A Go `*float32` field: absent or `null` is `None`; the literal is rounded
/// straight to `f32`, and one that does not fit is a wrong type.
pub(super) fn opt_f32(v: Field<'_>, p: &Path<'_>) -> Result<Option<f32>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Num(t)) => go_f32(t).map(Some).ok_or_else(|| p.wrong("float32")),
        Some(_) => Err(p.wrong("number")),
    }
}

/// A Go slice field, elements unconverted: absent or `null` is `None` (a nil slice),
/// `[]` is `Some` of nothing. The two differ where Ollama checks for nil (`context`,
/// `/v1` `tool_calls`); elsewhere callers fold them with `unwrap_or_default`.
pub(super) fn array<'j>(v: Field<'j>, p: &Path<'_>) -> Result<Option<&'j [J<'j>]>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Arr(items)) => Ok(Some(items)),
        Some(_) => Err(p.wrong("array")),
    }
}

/// A Go struct or map field, members unread: absent or `null` is `None`.
pub(super) fn object<'j>(v: Field<'j>, p: &Path<'_>) -> Result<Option<Obj<'j>>, KeyError> {
    match v {
        None | Some(J::Null) => Ok(None),
        Some(J::Obj(members)) => Ok(Some(members)),
        Some(_) => Err(p.wrong("object")),
    }
}

/// A Go `[]string` field: absent or `null` is empty; every element must be a string.
///
/// A `null` element is refused, although Go would decode it as `""`: rare, murky,
/// and refusing only costs a bypass. The error names the element (`images[1]`).
pub(super) fn string_array<'j>(v: Field<'j>, p: &Path<'_>) -> Result<Vec<&'j str>, KeyError> {
    let Some(items) = array(v, p)? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            J::Str(s) => Ok(s.as_ref()),
            _ => Err(p.index(i).wrong("string")),
        })
        .collect()
}

/// Excluded fields are still type-checked: a bad one makes Ollama answer 400, which
/// a cached 200 must not pre-empt.
///
/// Checks that an unkeyed field (`/v1` `stream_options`) is absent, `null` or an
/// object; its content is not looked at.
pub(super) fn check_object(v: Field<'_>, p: &Path<'_>) -> Result<(), KeyError> {
    object(v, p).map(drop)
}

/// `keep_alive`: a number of seconds or a Go duration string (`"300"` is refused by
/// Ollama). Not keyed, only validated.
///
/// Not keyed because it only says how long the model stays loaded afterwards, never
/// what it generates; a request with `keep_alive: 0` and an empty prompt is an unload,
/// which `load_only` keeps out of the cache anyway. Any finite number is accepted
/// (negative means "for ever" to Ollama). True when the request sets one (`null`
/// is unset, as in Go).
pub(super) fn check_keep_alive(v: Field<'_>, p: &Path<'_>) -> Result<bool, KeyError> {
    match v {
        None | Some(J::Null) => Ok(false),
        Some(J::Num(t)) if go_f64(t).is_some() => Ok(true),
        Some(J::Str(s)) if go_duration_ok(s) => Ok(true),
        Some(J::Str(_)) => Err(p.invalid("not a Go duration")),
        Some(_) => Err(p.wrong("number or duration string")),
    }
}

/// Mirrors Go's `time.ParseDuration` acceptance: `[-+]?([0-9]*(\.[0-9]*)?unit)+` or `0`.
///
/// Units are `ns`, `us` (also `µs` with either mu), `ms`, `s`, `m` and `h`; each
/// number needs digits before or after its dot; a bare number other than `0` has no
/// unit and is refused. Like Go it refuses totals beyond about 292 years (the
/// `int64` nanosecond range); the check is done in `f64`, so a value within a few
/// hundred nanoseconds of that limit may be judged differently from Go.
fn go_duration_ok(s: &str) -> bool {
    const UNITS: [(&str, f64); 8] = [
        ("ns", 1.0),
        ("us", 1e3),
        ("\u{b5}s", 1e3),
        ("\u{3bc}s", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    let mut rest = s.as_bytes();
    if rest.is_empty() {
        return false;
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.split_first() {
            Some((b'.', tail)) => {
                let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
                tail.split_at(n)
            }
            _ => (&after[..0], after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return false;
        }
        let unit_len = after
            .iter()
            .take_while(|b| **b != b'.' && !b.is_ascii_digit())
            .count();
        let (unit, tail) = after.split_at(unit_len);
        let Some(scale) = UNITS
            .iter()
            .find(|(name, _)| name.as_bytes() == unit)
            .map(|(_, scale)| *scale)
        else {
            return false;
        };
        let number: f64 = std::str::from_utf8(int_part)
            .ok()
            .and_then(|i| {
                let f = std::str::from_utf8(frac_part).ok()?;
                format!("{}.{}", if i.is_empty() { "0" } else { i }, f)
                    .parse()
                    .ok()
            })
            .unwrap_or(f64::INFINITY);
        total += number * scale;
        if total > 9.223_372_036_854_775e18 {
            return false;
        }
        rest = tail;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::go_duration_ok;
    #[test]
    fn go_durations() {
        for ok in [
            "0",
            "-0",
            "+5s",
            "1h2m3s",
            "1.5h",
            ".5s",
            "5.s",
            "300ms",
            "1us",
            "1\u{3bc}s",
            "1ns",
        ] {
            assert!(go_duration_ok(ok), "{ok}");
        }
        for bad in [
            "", "300", "5", "s", ".s", "5 s", "1x", "1h-1m", "--1s", "1e3s",
        ] {
            assert!(!go_duration_ok(bad), "{bad}");
        }
    }
}
