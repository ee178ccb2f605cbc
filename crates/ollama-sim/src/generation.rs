//! What the fake models say: deterministic text, thinking, tool calls and
//! structured output, planned up front as a [`Reply`].
//!
//! * **Determinism.** With `temperature: 0` or a `seed` (≠ -1) the reply is a
//!   pure function of the model, the whole prompt (system, prompt or every
//!   message, suffix, format, tools) and the sampling options; otherwise a
//!   fresh random seed makes every reply different. The hash is FNV-1a and
//!   the generator SplitMix64, both spelled out here so the text is stable
//!   across Rust versions and platforms.
//! * **Shape.** A reply is `tokens_per_reply` words in sentences; thinking
//!   models (think on, the default for them) first think for half as many
//!   tokens; `num_predict` caps the total and turns `done_reason` into
//!   `length`. With `tools` and a user turn last, the model calls the first
//!   tool with arguments filled from its JSON schema; with `format`, the
//!   content is JSON (matching the schema when one is given).
//! * **Cost.** One `String` per part plus token spans; streaming slices it.

use serde_json::{Map, Number, Value};

use crate::api::{ToolCall, ToolCallFunction};

/// Sampling options the simulator looks at (others are accepted and ignored).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Options {
    pub temperature: Option<f64>,
    pub seed: Option<i64>,
    pub num_predict: Option<i64>,
    pub num_ctx: Option<i64>,
    pub top_k: Option<i64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
}

/// Option names by Go type (`api.Options` / `api.Runner`).
const INT_OPTIONS: &[&str] = &[
    "num_keep",
    "seed",
    "num_predict",
    "top_k",
    "repeat_last_n",
    "num_ctx",
    "num_batch",
    "num_gpu",
    "main_gpu",
    "num_thread",
];
const FLOAT_OPTIONS: &[&str] = &[
    "top_p",
    "min_p",
    "typical_p",
    "temperature",
    "repeat_penalty",
    "presence_penalty",
    "frequency_penalty",
];
const BOOL_OPTIONS: &[&str] = &["use_mmap", "numa"];

impl Options {
    /// `api.Options.FromMap`: type errors use Ollama's wording (a 500).
    pub(crate) fn from_map(map: Option<&Map<String, Value>>) -> Result<Options, String> {
        let mut o = Options::default();
        let Some(map) = map else { return Ok(o) };
        for (key, val) in map {
            if val.is_null() {
                continue;
            }
            let k = key.as_str();
            if INT_OPTIONS.contains(&k) {
                let Some(n) = val.as_f64() else {
                    return Err(format!("option \"{k}\" must be of type integer"));
                };
                let n = n as i64;
                match k {
                    "seed" => o.seed = Some(n),
                    "num_predict" => o.num_predict = Some(n),
                    "num_ctx" => o.num_ctx = Some(n),
                    "top_k" => o.top_k = Some(n),
                    _ => {}
                }
            } else if FLOAT_OPTIONS.contains(&k) {
                let Some(f) = val.as_f64() else {
                    return Err(format!("option \"{k}\" must be of type float32"));
                };
                match k {
                    "temperature" => o.temperature = Some(f),
                    "top_p" => o.top_p = Some(f),
                    _ => {}
                }
            } else if BOOL_OPTIONS.contains(&k) {
                if !val.is_boolean() {
                    return Err(format!("option \"{k}\" must be of type boolean"));
                }
            } else if k == "stop" {
                let Some(items) = val.as_array() else {
                    return Err(format!("option \"{k}\" must be of type array"));
                };
                for item in items {
                    let Some(s) = item.as_str() else {
                        return Err(format!("option \"{k}\" must be of an array of strings"));
                    };
                    o.stop.push(s.to_owned());
                }
            }
        }
        Ok(o)
    }

    /// Greedy decoding or a fixed seed ⇒ reproducible output.
    pub(crate) fn deterministic(&self) -> bool {
        self.temperature == Some(0.0) || self.seed.is_some_and(|s| s != -1)
    }

    /// Explicit `num_ctx` for the scheduler (positive values only).
    pub(crate) fn explicit_num_ctx(&self) -> Option<u32> {
        self.num_ctx
            .filter(|n| *n > 0)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// FNV-1a, 64 bit: stable everywhere, unlike `std`'s `DefaultHasher`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        self
    }
    pub(crate) fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }
    pub(crate) fn u64(&mut self, n: u64) -> &mut Self {
        self.bytes(&n.to_le_bytes())
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

/// SplitMix64: tiny, fast, good enough for fake words and vectors.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Uniform in [-1, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

const WORDS: &[&str] = &[
    "the",
    "warm",
    "llama",
    "line",
    "gateway",
    "model",
    "answers",
    "quietly",
    "through",
    "local",
    "cache",
    "tokens",
    "stream",
    "steady",
    "bright",
    "river",
    "mountain",
    "signal",
    "patient",
    "gentle",
    "engine",
    "keeps",
    "every",
    "request",
    "close",
    "ready",
    "light",
    "small",
    "clear",
    "morning",
    "wool",
    "valley",
    "path",
    "listens",
    "returns",
    "carefully",
    "simple",
    "fast",
    "honest",
    "window",
    "lamp",
    "harbor",
    "story",
    "thread",
    "follows",
    "echo",
    "kind",
    "open",
    "measured",
    "calm",
    "field",
    "north",
    "bridge",
    "silver",
    "orchard",
    "notes",
    "drifts",
    "waits",
    "holds",
    "shares",
    "and",
    "of",
    "with",
    "a",
];

/// Appends `n` words as sentences; returns each token's byte span.
fn words(rng: &mut Rng, n: usize, out: &mut String, spans: &mut Vec<(u32, u32)>) {
    let mut left_in_sentence = 0;
    for i in 0..n {
        let start = out.len();
        if i > 0 {
            out.push(' ');
        }
        let word = WORDS[rng.below(WORDS.len())];
        if left_in_sentence == 0 {
            left_in_sentence = 4 + rng.below(7);
            let mut chars = word.chars();
            if let Some(c) = chars.next() {
                out.push(c.to_ascii_uppercase());
                out.push_str(chars.as_str());
            }
        } else {
            out.push_str(word);
        }
        left_in_sentence -= 1;
        if left_in_sentence == 0 || i + 1 == n {
            out.push('.');
            left_in_sentence = 0;
        }
        spans.push((start as u32, out.len() as u32));
    }
}

/// Splits `text` into ~4-byte tokens on char boundaries.
fn chunk_spans(text: &str) -> Vec<(u32, u32)> {
    let mut spans = Vec::with_capacity(text.len() / 4 + 1);
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 4).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        spans.push((start as u32, end as u32));
        start = end;
    }
    spans
}

/// Everything that shapes a reply.
#[derive(Debug)]
pub(crate) struct ReplyPlan<'a> {
    /// Seed for the words: the prompt hash or a random number.
    pub seed: u64,
    pub tokens: u32,
    pub num_predict: Option<i64>,
    pub think: bool,
    /// Tools offered, if the model should call one now.
    pub tools: Option<&'a [crate::api::Tool]>,
    pub format: Option<&'a Value>,
}

/// A planned reply: text with token spans, tool calls, and token counts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reply {
    pub thinking: String,
    pub thinking_spans: Vec<(u32, u32)>,
    pub content: String,
    pub content_spans: Vec<(u32, u32)>,
    pub tool_calls: Vec<ToolCall>,
    pub done_reason: &'static str,
    pub eval_count: u64,
}

impl Reply {
    pub(crate) fn plan(p: &ReplyPlan<'_>) -> Reply {
        let mut rng = Rng::new(p.seed);
        let mut r = Reply {
            done_reason: "stop",
            ..Reply::default()
        };
        let budget = p.num_predict.filter(|n| *n >= 0).map(|n| n as u64);
        let mut wanted_thinking = if p.think {
            (p.tokens / 2).max(1) as usize
        } else {
            0
        };
        let mut wanted_content = p.tokens as usize;
        if let Some(b) = budget {
            let total = (wanted_thinking + wanted_content) as u64;
            if b < total {
                r.done_reason = "length";
                wanted_thinking = wanted_thinking.min(b as usize);
                wanted_content = (b as usize).saturating_sub(wanted_thinking);
            }
        }
        words(
            &mut rng,
            wanted_thinking,
            &mut r.thinking,
            &mut r.thinking_spans,
        );
        if let Some(tools) = p.tools.filter(|t| !t.is_empty())
            && let Some(call) = tool_call(&mut rng, tools)
        {
            let args_len = serde_json::to_string(&call.function.arguments)
                .map(|s| s.len())
                .unwrap_or(2);
            r.eval_count = wanted_thinking as u64 + 8 + args_len as u64 / 4;
            r.tool_calls.push(call);
            return r;
        }
        if let Some(format) = p.format {
            let value = match format {
                Value::Object(schema) => fill_schema(&mut rng, schema),
                _ => {
                    let mut s = String::new();
                    words(&mut rng, p.tokens.max(1) as usize, &mut s, &mut Vec::new());
                    let mut m = Map::new();
                    m.insert("response".to_owned(), Value::String(s));
                    Value::Object(m)
                }
            };
            r.content = serde_json::to_string(&value).unwrap_or_else(|_| "{}".to_owned());
            let mut spans = chunk_spans(&r.content);
            if let Some(b) = budget {
                let room = (b as usize).saturating_sub(wanted_thinking);
                if room < spans.len() {
                    spans.truncate(room);
                    r.done_reason = "length";
                    let end = spans.last().map_or(0, |s| s.1 as usize);
                    r.content.truncate(end);
                } else {
                    r.done_reason = "stop";
                }
            }
            r.content_spans = spans;
        } else {
            words(
                &mut rng,
                wanted_content,
                &mut r.content,
                &mut r.content_spans,
            );
        }
        r.eval_count = (r.thinking_spans.len() + r.content_spans.len()) as u64;
        r
    }

    pub(crate) fn thinking_token(&self, i: usize) -> &str {
        span(&self.thinking, self.thinking_spans.get(i))
    }

    pub(crate) fn content_token(&self, i: usize) -> &str {
        span(&self.content, self.content_spans.get(i))
    }
}

fn span<'a>(text: &'a str, s: Option<&(u32, u32)>) -> &'a str {
    s.and_then(|&(a, b)| text.get(a as usize..b as usize))
        .unwrap_or_default()
}

/// Calls the first named tool with arguments satisfying its schema.
fn tool_call(rng: &mut Rng, tools: &[crate::api::Tool]) -> Option<ToolCall> {
    let function = tools.iter().find_map(|t| {
        t.function
            .as_ref()
            .filter(|f| f.name.as_deref().is_some_and(|n| !n.is_empty()))
    })?;
    let name = function.name.clone().unwrap_or_default();
    let arguments = match &function.parameters {
        Some(Value::Object(schema)) => match fill_schema(rng, schema) {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    Some(ToolCall {
        id: call_id(rng),
        function: ToolCallFunction {
            index: 0,
            name,
            arguments,
        },
    })
}

/// `call_` and eight lower-case letters or digits.
pub(crate) fn call_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::from("call_");
    for _ in 0..8 {
        id.push(char::from(ALPHABET[rng.below(ALPHABET.len())]));
    }
    id
}

/// A value that satisfies a (simple) JSON schema: objects get their
/// `required` properties (all properties when none are required).
fn fill_schema(rng: &mut Rng, schema: &Map<String, Value>) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.iter().find_map(Value::as_str).unwrap_or("string"),
        _ if schema.contains_key("properties") => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return Value::Object(out);
            };
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (name, sub) in props {
                if !required.is_empty() && !required.contains(&name.as_str()) {
                    continue;
                }
                let empty = Map::new();
                let sub = sub.as_object().unwrap_or(&empty);
                out.insert(name.clone(), fill_schema(rng, sub));
            }
            Value::Object(out)
        }
        "array" => Value::Array(Vec::new()),
        "integer" => Value::Number(Number::from(1 + rng.below(9))),
        "number" => {
            Number::from_f64((rng.below(1000) as f64) / 10.0).map_or(Value::Null, Value::Number)
        }
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => {
            let mut s = String::new();
            words(rng, 2, &mut s, &mut Vec::new());
            s.pop(); // no full stop in a value
            Value::String(s)
        }
    }
}

/// Rough token count of prompt text (~4 bytes a token, at least 1).
pub(crate) fn count_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Deterministic token ids for `/api/generate`'s `context`.
pub(crate) fn context_tokens(seed: u64, n: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed ^ 0x5eed);
    (0..n.min(1 << 20))
        .map(|_| (rng.next_u64() % 128_000) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(seed: u64, tokens: u32) -> Reply {
        Reply::plan(&ReplyPlan {
            seed,
            tokens,
            num_predict: None,
            think: false,
            tools: None,
            format: None,
        })
    }

    #[test]
    fn same_seed_same_text_and_spans_cover_it() {
        let (a, b) = (plan(42, 8), plan(42, 8));
        assert_eq!(a.content, b.content);
        assert_eq!(a.content_spans.len(), 8);
        let joined: String = (0..8).map(|i| a.content_token(i)).collect();
        assert_eq!(joined, a.content);
        assert!(a.content.ends_with('.'));
        assert!(a.content.starts_with(|c: char| c.is_ascii_uppercase()));
        assert_ne!(plan(43, 8).content, a.content);
    }

    #[test]
    fn hash_covers_every_part() {
        let h = |parts: &[&str]| {
            let mut f = Fnv::default();
            for p in parts {
                f.str(p);
            }
            f.finish()
        };
        assert_eq!(h(&["m", "hi"]), h(&["m", "hi"]));
        assert_ne!(h(&["m", "hi"]), h(&["m", "ho"]));
        assert_ne!(h(&["ab", "c"]), h(&["a", "bc"]));
    }

    #[test]
    fn num_predict_truncates_with_length() {
        let r = Reply::plan(&ReplyPlan {
            seed: 1,
            tokens: 8,
            num_predict: Some(3),
            think: false,
            tools: None,
            format: None,
        });
        assert_eq!(
            (r.content_spans.len(), r.done_reason, r.eval_count),
            (3, "length", 3)
        );
    }

    #[test]
    fn thinking_comes_first_and_counts() {
        let r = Reply::plan(&ReplyPlan {
            seed: 1,
            tokens: 8,
            num_predict: None,
            think: true,
            tools: None,
            format: None,
        });
        assert_eq!(
            (r.thinking_spans.len(), r.content_spans.len(), r.eval_count),
            (4, 8, 12)
        );
    }

    #[test]
    fn tools_produce_schema_shaped_calls() {
        let tools: Vec<crate::api::Tool> = serde_json::from_value(json!([{
            "type": "function",
            "function": {"name": "get_weather", "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                               "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"]}}
        }]))
        .unwrap_or_default();
        let r = Reply::plan(&ReplyPlan {
            seed: 9,
            tokens: 8,
            num_predict: None,
            think: false,
            tools: Some(&tools),
            format: None,
        });
        assert_eq!(r.tool_calls.len(), 1);
        let f = &r.tool_calls[0].function;
        assert_eq!(f.name, "get_weather");
        assert!(f.arguments["city"].is_string());
        assert_eq!(f.arguments["unit"], "c");
        assert!(!f.arguments.contains_key("days"));
        assert!(r.content.is_empty());
    }

    #[test]
    fn format_json_yields_parseable_content() {
        let schema =
            json!({"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]});
        let r = Reply::plan(&ReplyPlan {
            seed: 3,
            tokens: 8,
            num_predict: None,
            think: false,
            tools: None,
            format: Some(&schema),
        });
        let v: Value = serde_json::from_str(&r.content).unwrap_or_default();
        assert!(v["n"].is_u64());
        let joined: String = (0..r.content_spans.len())
            .map(|i| r.content_token(i))
            .collect();
        assert_eq!(joined, r.content);
    }

    #[test]
    fn options_type_errors_use_ollama_text() {
        let m = |v: Value| v.as_object().cloned();
        assert_eq!(
            Options::from_map(m(json!({"temperature": "hot"})).as_ref()),
            Err("option \"temperature\" must be of type float32".to_owned())
        );
        assert_eq!(
            Options::from_map(m(json!({"num_ctx": "big"})).as_ref()),
            Err("option \"num_ctx\" must be of type integer".to_owned())
        );
        let o = Options::from_map(m(json!({"seed": 7, "unknown": 1, "num_ctx": 8192})).as_ref());
        assert_eq!(o.as_ref().map(Options::deterministic), Ok(true));
        assert_eq!(o.map(|o| o.explicit_num_ctx()), Ok(Some(8192)));
    }
}
