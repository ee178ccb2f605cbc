//! `options`: which keys Ollama reads and as what Go type, which of them change
//! the output (and so are keyed), and whether the given ones pin a deterministic
//! answer.
//!
//! Two ways in. The native decoders pass the request's `options` object to
//! [`Options::native`] (generate, chat, embed and embeddings; `/api/show` keys its
//! options as a plain Go `any` instead). The `/v1` decoders have no `options` object:
//! they build an `Options` by hand from the top-level OpenAI fields, with
//! [`Options::int`], [`Options::float`] and by pushing `stop`, exactly as Ollama's
//! middleware fills the native `options` map.
//!
//! # What is keyed
//!
//! Ollama decodes `options` into a `map[string]any` and copies it onto its `Options`
//! struct (`FromMap`), so keys match exactly (case-sensitive) and:
//!
//! - **Unknown keys are dropped**: Ollama logs "invalid option provided" and ignores
//!   them, so they cannot change the output.
//! - **`null` values are dropped**: `FromMap` skips them, so `{"seed": null}` is `{}`.
//! - **Placement and speed** (`num_batch`, `num_gpu`, `main_gpu`, `num_thread`,
//!   `use_mmap`) are type-checked, because a wrong type is Ollama's 400, but not keyed:
//!   they change where and how fast the tokens are computed, not which tokens.
//! - **Everything else Ollama reads is keyed, and only when given.** An absent option
//!   means "this model's Modelfile value, else Ollama's default", which differs by
//!   model and by release, so it is never filled in (see the `key` module doc).
//! - **Values are keyed as the Go type they end up in**: `int` options are read as a
//!   `float64` and truncated toward zero (`2.9` is `2`, `-2.9` is `-2`), `float32`
//!   options are rounded to `f32` and printed by `number::f32_text`.
//!
//! # Determinism
//!
//! A generation is a faithful replay when sampling cannot vary: temperature 0
//! (greedy decoding) or a fixed seed. [`Options::deterministic`] answers that from the
//! options *given*; an absent temperature is not assumed to be 0, since the model's
//! Modelfile or Ollama's default (0.8) decides it.

use super::KeyError;
use super::field::{Field, Path, go_map, object, string_array};
use super::json::J;
use super::number::{f32_text, go_f64};
use super::tree::{C, go_any, obj, strs};

/// How Ollama reads one `options` key, and so how it is validated and keyed.
#[derive(Clone, Copy)]
enum OptionKind {
    /// Go `int`, decoded through float64 and truncated toward zero.
    Int,
    /// Go `float32`.
    F32,
    /// Go `[]string`.
    Strings,
    /// Keys of older releases (mirostat, tfs_z, ...): keyed as given, unchecked.
    Legacy,
    /// Placement and speed only: validated, not keyed.
    IgnoredInt,
    /// Placement and speed only (`use_mmap`): must be a boolean, not keyed.
    IgnoredBool,
}

/// Looks up `key` (exact spelling) in the table of options Ollama reads; `None` for
/// an option it would ignore. The name comes back as `&'static str` so the keyed
/// members never borrow the client's spelling.
fn option_kind(key: &str) -> Option<(&'static str, OptionKind)> {
    use OptionKind::*;
    const TABLE: [(&str, OptionKind); 25] = [
        ("num_keep", Int),
        ("seed", Int),
        ("num_predict", Int),
        ("top_k", Int),
        ("top_p", F32),
        ("min_p", F32),
        ("typical_p", F32),
        ("repeat_last_n", Int),
        ("temperature", F32),
        ("repeat_penalty", F32),
        ("presence_penalty", F32),
        ("frequency_penalty", F32),
        ("stop", Strings),
        // Can change output: num_ctx through truncation, draft_num_predict through
        // how speculative decoding consumes a seeded random stream.
        ("num_ctx", Int),
        ("draft_num_predict", Int),
        ("tfs_z", Legacy),
        ("mirostat", Legacy),
        ("mirostat_tau", Legacy),
        ("mirostat_eta", Legacy),
        ("penalize_newline", Legacy),
        ("num_batch", IgnoredInt),
        ("num_gpu", IgnoredInt),
        ("main_gpu", IgnoredInt),
        ("num_thread", IgnoredInt),
        ("use_mmap", IgnoredBool),
    ];
    TABLE.iter().find(|(name, _)| *name == key).copied()
}

/// The output-affecting options that were given, canonicalised; absent stays absent.
///
/// `Options::default()` is "no options", which the `/v1` decoders start from.
#[derive(Default)]
pub(super) struct Options<'j> {
    /// The keyed options, by Ollama's name, in the order they were added (written
    /// sorted). Each name appears at most once: `native` reads a map whose duplicate
    /// keys are refused, and the `/v1` decoders add each option once.
    pub(super) members: Vec<(&'static str, C<'j>)>,
    /// The `temperature` given, if any (for [`Options::deterministic`]).
    temperature: Option<f32>,
    /// The `seed` given, if any (for [`Options::deterministic`]).
    seed: Option<i64>,
}

impl<'j> Options<'j> {
    /// Adds an integer option (`num_predict`, `seed`, ...), already truncated to the
    /// Go `int` Ollama holds. A `seed` is also remembered for `deterministic`.
    pub(super) fn int(&mut self, key: &'static str, v: i64) {
        if key == "seed" {
            self.seed = Some(v);
        }
        self.members.push((key, C::Int(v)));
    }

    /// Adds a `float32` option, printed canonically (`-0` folded into `0` except for
    /// `repeat_penalty`). A `temperature` is also remembered for `deterministic`.
    pub(super) fn float(&mut self, key: &'static str, v: f32) {
        if key == "temperature" {
            self.temperature = Some(v);
        }
        self.members
            .push((key, C::Num(f32_text(v, key == "repeat_penalty"))));
    }

    /// Reads a native request's `options` field (`p` is its path, for errors).
    ///
    /// Absent or `null` gives no options; anything but an object is a
    /// `KeyError::WrongType`. Each member is then handled by its `OptionKind`: unknown
    /// and `null` members are skipped, a value of the wrong JSON type is an error
    /// naming `options.<key>` (Ollama answers such a request with 400), an integer
    /// option beyond about 9.2e18 is a `KeyError::InvalidValue` (Go's conversion
    /// would be undefined there), and a key given twice is a
    /// `KeyError::DuplicateField`.
    pub(super) fn native(v: Field<'j>, p: &Path<'_>) -> Result<Self, KeyError> {
        let mut opts = Options::default();
        let Some(members) = object(v, p)? else {
            return Ok(opts);
        };
        for (key, value) in go_map(members, p)? {
            let Some((name, kind)) = option_kind(key) else {
                continue; // Ollama logs "invalid option provided" and ignores it
            };
            let p = p.field(name);
            if matches!(value, J::Null) {
                continue; // Options.FromMap skips nil values
            }
            match (kind, value) {
                (OptionKind::Int, J::Num(t)) => {
                    let f = go_f64(t).ok_or_else(|| p.wrong("finite number"))?;
                    let t = f.trunc();
                    if t.abs() >= 9.2e18 {
                        return Err(p.invalid("integer option out of range"));
                    }
                    opts.int(name, t as i64);
                }
                (OptionKind::F32, J::Num(t)) => {
                    let f = go_f64(t).ok_or_else(|| p.wrong("finite number"))?;
                    opts.float(name, f as f32);
                }
                (OptionKind::Strings, J::Arr(_)) => {
                    let items = string_array(Some(value), &p)?;
                    opts.members.push((name, strs(&items)));
                }
                (OptionKind::Legacy, _) => opts.members.push((name, go_any(value, &p)?)),
                (OptionKind::IgnoredInt, J::Num(t)) if go_f64(t).is_some() => {}
                (OptionKind::IgnoredBool, J::Bool(_)) => {}
                (OptionKind::Int | OptionKind::IgnoredInt, _) => return Err(p.wrong("integer")),
                (OptionKind::F32, _) => return Err(p.wrong("float32")),
                (OptionKind::Strings, _) => return Err(p.wrong("array of strings")),
                (OptionKind::IgnoredBool, _) => return Err(p.wrong("boolean")),
            }
        }
        Ok(opts)
    }

    /// Temperature 0 (greedy) or a fixed seed. Seed -1 means random; llama.cpp reads the
    /// seed as a uint32, so 4294967295 is the same "random" sentinel.
    ///
    /// Judged on the given options only: with no temperature and no seed the answer
    /// is `false`, whatever the model's default. A temperature that rounds to `0.0`
    /// in `f32` (including `-0`) counts as 0.
    pub(super) fn deterministic(&self) -> bool {
        self.temperature == Some(0.0) || self.seed.is_some_and(|s| s as u32 != u32::MAX)
    }

    /// The canonical `options` object: the keyed members, sorted by name; `{}` when
    /// none were given.
    pub(super) fn into_c(self) -> C<'j> {
        obj(self.members)
    }
}
