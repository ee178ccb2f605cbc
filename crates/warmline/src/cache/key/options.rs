//! `options`: which keys Ollama reads and as what Go type, which of them change
//! the output (and so are keyed), and whether the given ones pin a deterministic
//! answer.

use super::KeyError;
use super::field::{Field, Path, go_map, object, string_array};
use super::json::J;
use super::number::{f32_text, go_f64};
use super::tree::{C, go_any, obj, strs};

/// How Ollama reads one `options` key.
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
    IgnoredBool,
}

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
#[derive(Default)]
pub(super) struct Options<'j> {
    pub(super) members: Vec<(&'static str, C<'j>)>,
    temperature: Option<f32>,
    seed: Option<i64>,
}

impl<'j> Options<'j> {
    pub(super) fn int(&mut self, key: &'static str, v: i64) {
        if key == "seed" {
            self.seed = Some(v);
        }
        self.members.push((key, C::Int(v)));
    }

    pub(super) fn float(&mut self, key: &'static str, v: f32) {
        if key == "temperature" {
            self.temperature = Some(v);
        }
        self.members
            .push((key, C::Num(f32_text(v, key == "repeat_penalty"))));
    }

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
    pub(super) fn deterministic(&self) -> bool {
        self.temperature == Some(0.0) || self.seed.is_some_and(|s| s as u32 != u32::MAX)
    }

    pub(super) fn into_c(self) -> C<'j> {
        obj(self.members)
    }
}
