//! The canonical tree: the native request as a value (`C`) whose strings borrow
//! from the parsed body, its compact serialisation (sorted members, minimal
//! escapes), and the copies of untyped JSON (schemas, tools, Go `any`) put into it.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::KeyError;
use super::field::{Path, go_map};
use super::json::J;
use super::number::{exact_number_text, f64_text, go_f64};

/// The canonical form before serialisation. Strings borrow from the parsed body.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum C<'j> {
    Null,
    Bool(bool),
    Int(i64),
    /// A number already rendered canonically.
    Num(String),
    Str(Cow<'j, str>),
    Arr(Vec<C<'j>>),
    /// An object whose members are written sorted by key (keys are unique).
    Sorted(Vec<(Cow<'j, str>, C<'j>)>),
    /// An object whose member order is meaningful to Ollama: written as given.
    Ordered(Vec<(Cow<'j, str>, C<'j>)>),
}

/// A fixed-schema object; members are sorted when written.
pub(super) fn obj<'j>(members: Vec<(&'static str, C<'j>)>) -> C<'j> {
    C::Sorted(
        members
            .into_iter()
            .map(|(k, v)| (Cow::Borrowed(k), v))
            .collect(),
    )
}

pub(super) fn strs<'j>(items: &[&'j str]) -> C<'j> {
    C::Arr(items.iter().map(|s| C::Str(Cow::Borrowed(*s))).collect())
}

impl C<'_> {
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
