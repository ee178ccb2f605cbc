//! The canonical tree: the native request as a value (`C`) whose strings borrow
//! from the parsed body, its compact serialisation (sorted members, minimal
//! escapes), and the copies of untyped JSON (schemas, tools, Go `any`) put into it.
//!
//! The route decoders build a `C` for the native request; `canonical` (in `mod.rs`)
//! wraps it in the envelope and calls [`C::write`], and the resulting string is what
//! BLAKE3 hashes. So this module decides what "the same request" looks like byte for
//! byte, and it has three jobs:
//!
//! - **One spelling per meaning.** Objects with a fixed schema (the native request,
//!   messages, options) are written with members sorted bytewise by key, so the
//!   client's member order never matters there. Whitespace is dropped. Strings are
//!   written with the fewest escapes, so `"\u0041"` and `"A"` in the body give the
//!   same bytes. Numbers arrive already rendered by `number`.
//!   Every field of the native request is written, defaults included, so leaving a
//!   field out and spelling out its default give the same bytes (`options` are the
//!   deliberate exception; see `options`).
//! - **Different meanings never meet.** The output is unambiguous JSON; strings are
//!   copied as UTF-8 without Unicode normalisation (different bytes are a different
//!   prompt); and values Ollama tells apart stay apart (`null` and `[]` for
//!   `context`, an absent option and one set to its default value).
//! - **Order where Ollama keeps it.** A JSON schema in `format`, a tool definition or
//!   tool-call arguments reach the model in the order the client wrote them (as grammar
//!   rules or prompt text), so [`exact`] copies them as `C::Ordered`. A Go `any`
//!   (legacy options, `/api/show` options) is a Go map, which Go re-encodes sorted, so
//!   [`go_any`] copies it as `C::Sorted`.
//!
//! Writing is infallible and allocation-light: one output `String`, plus a small
//! vector of references per sorted object.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::KeyError;
use super::field::{Path, go_map};
use super::json::J;
use super::number::{exact_number_text, f64_text, go_f64};

/// The canonical form before serialisation. Strings borrow from the parsed body.
///
/// `'j` is the lifetime of the parsed body; [`C::into_owned`] cuts the tie where a
/// value outlives it (tool-call arguments parsed from a string).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum C<'j> {
    /// `null`: e.g. an unset `format`, `think`, `tools` or `context`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer (typed `int` fields and integer options), written in decimal.
    Int(i64),
    /// A number already rendered canonically.
    ///
    /// Produced only by the printers of `number`; written out verbatim.
    Num(String),
    /// A string, unescaped; [`C::write`] escapes it.
    Str(Cow<'j, str>),
    /// A list, in its given order (never sorted: `messages`, `images` and `stop` are
    /// keyed as sent).
    Arr(Vec<C<'j>>),
    /// An object whose members are written sorted by key (keys are unique).
    Sorted(Vec<(Cow<'j, str>, C<'j>)>),
    /// An object whose member order is meaningful to Ollama: written as given.
    Ordered(Vec<(Cow<'j, str>, C<'j>)>),
}

/// A fixed-schema object; members are sorted when written.
///
/// Keys are `&'static str` because they are field names chosen by this crate, never
/// by the client. Callers list them alphabetically for readability, but correctness
/// does not depend on it.
pub(super) fn obj<'j>(members: Vec<(&'static str, C<'j>)>) -> C<'j> {
    C::Sorted(
        members
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

/// A list of strings, in order, borrowed (`images`, `stop`, embed `input`).
pub(super) fn strs<'j>(items: &[&'j str]) -> C<'j> {
    C::Arr(items.iter().map(|s| C::Str(Cow::Borrowed(*s))).collect())
}

impl C<'_> {
    /// The same value with every string owned, so it no longer borrows from the body.
    ///
    /// Needed only for `/v1` tool-call arguments, which arrive as a JSON string that
    /// is parsed separately and dropped before the tree is written.
    pub(super) fn into_owned(self) -> C<'static> {
        let own = |k: Cow<'_, str>| Cow::Owned(k.into_owned());
        match self {
            C::Null => C::Null,
            C::Bool(b) => C::Bool(b),
            C::Int(i) => C::Int(i),
            C::Num(n) => C::Num(n),
            C::Str(s) => C::Str(own(s)),
            C::Arr(items) => C::Arr(items.into_iter().map(C::into_owned).collect()),
            C::Sorted(m) => C::Sorted(
                m.into_iter()
                    .map(|(k, v)| (own(k), v.into_owned()))
                    .collect(),
            ),
            C::Ordered(m) => C::Ordered(
                m.into_iter()
                    .map(|(k, v)| (own(k), v.into_owned()))
                    .collect(),
            ),
        }
    }

    /// Compact JSON: no whitespace, sorted members where order is not meaningful.
    ///
    /// Appends to `out`. The output is valid JSON. `Sorted` members are ordered by
    /// the bytes of their keys (their UTF-8 bytes; the decoders make keys unique, so
    /// the unstable sort is deterministic); `Ordered` members are written as given.
    pub(super) fn write(&self, out: &mut String) {
        match self {
            C::Null => out.push_str("null"),
            C::Bool(true) => out.push_str("true"),
            C::Bool(false) => out.push_str("false"),
            C::Int(i) => {
                let _ = write!(out, "{i}");
            }
            C::Num(n) => out.push_str(n),
            C::Str(s) => write_str(s, out),
            C::Arr(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            C::Sorted(members) => {
                let mut sorted: Vec<&(Cow<'_, str>, C<'_>)> = members.iter().collect();
                sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                write_members(sorted.into_iter(), out);
            }
            C::Ordered(members) => write_members(members.iter(), out),
        }
    }
}

/// Writes `{"k":v,...}` for members already in the order to write.
fn write_members<'a, 'j: 'a>(
    members: impl Iterator<Item = &'a (Cow<'j, str>, C<'j>)>,
    out: &mut String,
) {
    out.push('{');
    for (n, (k, v)) in members.enumerate() {
        if n > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        v.write(out);
    }
    out.push('}');
}

/// JSON string with the minimal escapes; every other character is copied as UTF-8,
/// so different bytes stay different (no Unicode normalisation).
///
/// Escaped: `"` and `\` (as `\"` and `\\`), LF, CR and tab (as `\n`, `\r`, `\t`), and
/// the other control characters below U+0020 (as `\u00xx`, lower-case hex). Nothing
/// else, not even `/`, U+2028 or `<`, so each string has exactly one spelling.
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(plain..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        plain = i + 1;
    }
    out.push_str(s.get(plain..).unwrap_or_default());
    out.push('"');
}

// ---------------------------------------------------------------------------
// Value canonicalisers for untyped parts
// ---------------------------------------------------------------------------

/// An order- and class-preserving copy (format schemas, tools, tool-call arguments).
///
/// Objects keep their member order (`C::Ordered`) and numbers their integer or float
/// class (`exact_number_text`), because both survive into what the model sees.
/// Duplicate member names are kept as written, which is safe: the copy is only ever
/// hashed. Errors only for a number that overflows `f64`.
pub(super) fn exact<'j>(v: &'j J<'j>, p: &Path<'_>) -> Result<C<'j>, KeyError> {
    Ok(match v {
        J::Null => C::Null,
        J::Bool(b) => C::Bool(*b),
        J::Num(t) => C::Num(exact_number_text(t).ok_or_else(|| p.wrong("finite number"))?),
        J::Str(s) => C::Str(Cow::Borrowed(s.as_ref())),
        J::Arr(items) => C::Arr(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| exact(item, &p.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        J::Obj(members) => C::Ordered(
            members
                .iter()
                .map(|(k, v)| Ok((Cow::Borrowed(k.as_ref()), exact(v, &p.field(k))?)))
                .collect::<Result<_, KeyError>>()?,
        ),
    })
}

/// A Go `any`: maps re-encode sorted, numbers are float64 values.
///
/// This is what Ollama holds after decoding into `any` or `map[string]any`: maps
/// lose member order (sorted here), every number is a `float64` (`1` and `1.0`
/// meet, `-0` is kept), and a map key given twice is refused, as in [`go_map`].
pub(super) fn go_any<'j>(v: &'j J<'j>, p: &Path<'_>) -> Result<C<'j>, KeyError> {
    Ok(match v {
        J::Null => C::Null,
        J::Bool(b) => C::Bool(*b),
        J::Num(t) => C::Num(f64_text(go_f64(t).ok_or_else(|| p.wrong("finite number"))?)),
        J::Str(s) => C::Str(Cow::Borrowed(s.as_ref())),
        J::Arr(items) => C::Arr(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| go_any(item, &p.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        J::Obj(members) => C::Sorted(
            go_map(members, p)?
                .iter()
                .map(|(k, v)| Ok((Cow::Borrowed(k.as_ref()), go_any(v, &p.field(k))?)))
                .collect::<Result<_, KeyError>>()?,
        ),
    })
}
