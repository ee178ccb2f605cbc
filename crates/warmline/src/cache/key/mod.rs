//! Cache keys: one canonical, hashed form per Ollama generation.
//!
//! The gateway calls [`canonical`] once it has read a request body and before it
//! looks in the cache. Two requests get the same [`CacheKey`] exactly when Ollama
//! would run the same generation for them; a request that could produce different
//! output never shares a key. `Ok(None)` (model digest unknown) and `Err(_)` (a body
//! Ollama would reject, or one whose meaning we cannot pin down) both mean: bypass
//! the cache and forward the bytes unchanged, so Ollama answers with its own error.
//!
//! # What is hashed
//!
//! BLAKE3 (derive-key mode, context [`DERIVE_CONTEXT`]) over [`Canonical::canonical`]:
//! compact JSON, object keys sorted bytewise, of
//! `{"digest","family","model","partition","request","v"}` where `request` is the
//! *native* Ollama request that the route turns into, with every field that can
//! change the output spelled out and every field that cannot left out.
//!
//! # Shared across routes, and why
//!
//! | family       | routes                                   | why they may share |
//! |--------------|------------------------------------------|--------------------|
//! | `chat`       | `/api/chat`, `/v1/chat/completions`      | Ollama's `/v1` middleware rewrites the body into an `api.ChatRequest` and runs the native handler |
//! | `generate`   | `/api/generate`, `/v1/completions`       | same, into an `api.GenerateRequest` |
//! | `embed`      | `/api/embed`, `/v1/embeddings`           | `/v1/embeddings` calls the embed handler; `encoding_format` only re-encodes the same float32 vectors, so it is validated but not keyed |
//! | `embeddings` | `/api/embeddings`                        | legacy handler: vectors are not normalised, so never shared with `embed` |
//! | `show`       | `/api/show`                              | — |
//!
//! The key holds the family, never the route; [`Canonical::route`] tells the gateway
//! which API shape to answer in. Sharing one stored answer across routes would need
//! the cache to store the *native* response (a `/v1` answer lacks native-only fields
//! such as generate's `context` and the durations) and convert it. The cache does not
//! do that today: it stores and coalesces per route (`StoreKey` in `cache/mod.rs`
//! adds the route and the `/v1` fields that shape the answer's bytes), so the shared
//! key is a property of the canonical form, not yet a source of hits.
//!
//! Within one route, requests that differ only in how the model is spelled
//! (`llama3` and `LLAMA3:latest`) do share a stored answer, and it carries the
//! `model` field as the first caller spelled it (Ollama echoes the name as typed);
//! nothing rewrites it on a hit.
//!
//! # Rules (one line each)
//!
//! - Key = version, family, partition, normalised model, model digest, canonical request.
//! - Model names follow Ollama: `[host/][namespace/]model[:tag]`, defaults `registry.ollama.ai`, `library`, `latest`, ASCII case-insensitive, `http(s)://` prefix dropped; nothing is trimmed (Ollama rejects `" llama3"`, so we must not map it onto `llama3`).
//! - `/api/show` falls back to the deprecated `name` when `model` is empty.
//! - Top-level and message fields are matched like Go's `encoding/json`: case-insensitively; a field given twice is an error.
//! - `null` means "absent" wherever Go treats it so; `""`, `false`, `0` equal absent for plain Go fields.
//! - `stream`, `keep_alive`, `stream_options`, `encoding_format` and unknown top-level fields are excluded (validated where Ollama would reject a bad value).
//! - `truncate` and `shift` default to true; `think` absent stays distinct from `false` (thinking models default on).
//! - generate keys: prompt, suffix, system, template, raw, format, images (ordered), context (`[]` ≠ absent), think, options, truncate, shift, logprobs, top_logprobs, `_debug_render_only`, width/height/steps.
//! - chat keys: messages (role lower-cased, content, thinking, images, tool_calls, tool_name, tool_call_id), tools, format, think, options, truncate, shift, logprobs, top_logprobs, `_debug_render_only`.
//! - embed keys: input (`"a"` ≡ `["a"]`, `""` ≡ `[]` ≡ absent), truncate, dimensions, options; embeddings keys: prompt, options; show keys: verbose, system, template, options.
//! - Options: only keys Ollama reads; absent stays absent (see below); present values are canonicalised as the Go types Ollama decodes them into (`float32`, `int` truncated toward zero), so `0`, `0.0`, `-0.0`, `0e0` are one value (except in `repeat_penalty`, which llama.cpp divides by).
//! - Strings are kept byte for byte after JSON unescaping: no Unicode normalisation, different bytes are different prompts.
//! - Options excluded: `num_batch`, `num_gpu`, `main_gpu`, `use_mmap`, `num_thread` (placement and speed, not tokens) and unknown keys (Ollama ignores them); `num_ctx` and `draft_num_predict` are keyed when present.
//! - `format`, `tools` and tool-call `arguments` keep their key order (Ollama preserves it into the grammar and the prompt) and number class (`1` ≠ `1.0` in a schema).
//! - `/v1` mapping: temperature and top_p default 1.0, `max_tokens`→`num_predict`, `stop` string→array, `response_format`→`format`, `reasoning(_effort)`→`think`, content parts→one native message each, `data:` image URIs→`images`, tool-call argument strings→objects.
//! - `deterministic`: effective temperature 0 or an explicit non-random seed; always true for embed, embeddings and show.
//! - `load_only`: empty prompt / messages / input (which includes `keep_alive: 0` unloads); such requests are keyed but must not be cached.
//! - Refused (a bypass, never a wrong key): bodies Go would reject, and a few it would accept but whose meaning is murky (trailing bytes after the value, invalid UTF-8, lone surrogates, a field given twice, nesting deeper than 128, `/v1` content parts other than text and images).
//!
//! # Why absent options are not filled in with Ollama's defaults
//!
//! Ollama computes the effective options as `DefaultOptions()`, then the model's
//! Modelfile `PARAMETER`s, then the request (`server/routes.go`, `modelOptions`).
//! An omitted `temperature` therefore means "whatever this model's Modelfile says"
//! (several reasoning models ship 0.6), and the built-in defaults themselves move
//! between releases (`repeat_penalty` is 1.1 in some releases' `api/types.go`, 1.0 in
//! the v0.33 notes). Writing `{}` as `{"temperature":0.8,...}` would make a request that
//! means "model default" share a key with one that pins 0.8, which can produce
//! different output. So an absent option is keyed as absent, and `{}` and
//! `{"temperature":0.8}` get different keys: a rare missed hit, never a wrong one.
//! The `/v1` layer is unaffected: it always sends `temperature` and `top_p`
//! explicitly, so `/v1` requests still share with the native request that spells
//! those values out.
//!
//! # Cost
//!
//! About 7 µs per key for a typical 1 KB chat body (6 messages, 3 options), measured
//! with `cargo test --lib -- --ignored --nocapture cost_of_a_typical_chat_key` on the
//! 2-core development machine under other build load, this crate and blake3 at
//! opt-level 3: ~1.3 µs reading the JSON, ~3 µs decoding and writing the canonical
//! form, ~2.3 µs hashing its ~1.6 KB. Re-measure with a criterion bench before
//! optimising; the cheapest wins would be hashing while writing, and not
//! materialising the canonical string when nobody logs it.
//!
//! # Layout
//!
//! This file holds the public API, the envelope and the hash. The body is read by
//! `json` (a strict reader that keeps what Go can see), picked apart with Go's
//! decoding rules by `field` and `number`, decoded per route by `native` and
//! `openai` into the native request types of `request` (with `options`), and
//! written out through the canonical tree of `tree`.

mod field;
mod json;
mod native;
mod number;
mod openai;
mod options;
mod request;
mod tree;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use json::J;
use tree::{C, obj};

/// Version of the canonical form; bump it whenever the form changes so that a new
/// build can never hit entries written by an old one.
///
/// It is the `v` member of the hashed envelope, so a bump changes every key. Entries
/// in a shared Redis tier written by an older build then simply stop matching and
/// expire on their TTL.
pub const KEY_FORMAT_VERSION: i64 = 1;

/// BLAKE3 derive-key context: separates these hashes from any other use of BLAKE3.
///
/// Changing it changes every key, like bumping [`KEY_FORMAT_VERSION`].
pub const DERIVE_CONTEXT: &str = "warmline cache key v1";

/// Which endpoint a body was sent to.
///
/// The subset of the gateway's routes whose answers can be cached (`cache::key_route`
/// maps a `RouteKind` onto it). The variant's `Debug` name is part of the Redis key
/// (`StoreKey::redis_key` in `cache/mod.rs`), so renaming a variant orphans the
/// entries a shared Redis tier holds for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRoute {
    /// `POST /api/generate`.
    Generate,
    /// `POST /api/chat`.
    Chat,
    /// `POST /api/embed`.
    Embed,
    /// `POST /api/embeddings`, the legacy embedding endpoint.
    Embeddings,
    /// `POST /api/show`.
    Show,
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/completions`.
    OpenAiCompletions,
    /// `POST /v1/embeddings`.
    OpenAiEmbeddings,
}

impl KeyRoute {
    /// The generation family: the part of the route that goes into the key.
    ///
    /// Each `/v1` route maps onto the native family its middleware rewrites into;
    /// see the table in the module doc.
    pub fn family(self) -> Family {
        match self {
            KeyRoute::Generate | KeyRoute::OpenAiCompletions => Family::Generate,
            KeyRoute::Chat | KeyRoute::OpenAiChat => Family::Chat,
            KeyRoute::Embed | KeyRoute::OpenAiEmbeddings => Family::Embed,
            KeyRoute::Embeddings => Family::Embeddings,
            KeyRoute::Show => Family::Show,
        }
    }

    /// True for the OpenAI-compatible `/v1` routes.
    pub fn is_openai(self) -> bool {
        matches!(
            self,
            KeyRoute::OpenAiChat | KeyRoute::OpenAiCompletions | KeyRoute::OpenAiEmbeddings
        )
    }
}

/// Routes that become the same native Ollama request share a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `/api/generate` and `/v1/completions`.
    Generate,
    /// `/api/chat` and `/v1/chat/completions`.
    Chat,
    /// `/api/embed` and `/v1/embeddings`.
    Embed,
    /// `/api/embeddings` alone: its vectors are not normalised.
    Embeddings,
    /// `/api/show` alone.
    Show,
}

impl Family {
    /// Static label, also used inside the canonical form.
    ///
    /// These strings are hashed: changing one changes every key of that family.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Generate => "generate",
            Family::Chat => "chat",
            Family::Embed => "embed",
            Family::Embeddings => "embeddings",
            Family::Show => "show",
        }
    }
}

/// A 256-bit BLAKE3 hash of the canonical form.
///
/// 256 bits make an accidental collision (two different requests sharing an answer)
/// practically impossible, so the cache compares keys only, never canonical texts.
/// `Copy` and `Hash`, so it is cheap to use in the in-process tier and in the
/// in-flight table; [`CacheKey::to_hex`] is its form in Redis and in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex, 64 characters (also what `Display` prints).
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The key of one request, plus what the gateway needs to decide whether to cache it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// The hash of `canonical`: the generation's identity.
    pub key: CacheKey,
    /// Which endpoint the body came from: the API shape to answer in.
    pub route: KeyRoute,
    /// Normalised model name in Ollama's short display form, e.g. `llama3.2:latest`.
    pub model: String,
    /// Whether the client asked for a stream (native default true, `/v1` default false).
    pub stream: bool,
    /// Temperature 0 or a fixed seed (or a non-sampling family): a replay is a faithful answer.
    pub deterministic: bool,
    /// The request only loads or unloads the model: keyed, but never to be cached.
    pub load_only: bool,
    /// The request sets its own `keep_alive` (native routes).
    pub keep_alive: bool,
    /// The canonical JSON that was hashed. It contains the prompt: log with care.
    pub canonical: String,
}

/// Why a body has no key. The gateway forwards such a request unchanged.
///
/// None of these is an error for the client: the request goes to Ollama as sent, and
/// if Ollama refuses it too, the client gets Ollama's own error. The cache logs the
/// message at debug level and counts the request as a bypass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not UTF-8, not JSON, or JSON the reader refuses (trailing bytes, lone
    /// surrogates, nesting deeper than 128); the text says what and at which byte.
    #[error("request body is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object at the top level.
    #[error("request body is not a JSON object")]
    NotAnObject,
    /// No model named (`model` absent, `null` or `""`, and for `/api/show` no `name`
    /// either).
    #[error("request names no model")]
    NoModel,
    /// A model name Ollama would not resolve; holds (the start of) the name as sent.
    #[error("invalid model name {0:?}")]
    InvalidModel(String),
    /// A field whose JSON type Go could not decode into the field's type: Ollama
    /// answers 400, which a cached answer must not pre-empt.
    #[error("field `{field}` has the wrong type (expected {expected})")]
    WrongType {
        /// Dotted path, e.g. `messages[0].content`.
        field: String,
        /// The expected type, in words.
        expected: &'static str,
    },
    /// A field of the right type whose value Ollama refuses, or whose meaning the
    /// cache does not pin down (e.g. a `/v1` content part other than text or image).
    #[error("field `{field}` has a value the cache cannot key: {reason}")]
    InvalidValue {
        /// Dotted path, e.g. `options.num_predict`.
        field: String,
        /// Why the value cannot be keyed.
        reason: &'static str,
    },
    /// A member given twice (after Go's case folding for struct fields): Go would
    /// keep the last one, but mirroring that is not worth the risk.
    #[error("field `{0}` is given more than once")]
    DuplicateField(String),
}

impl KeyError {
    /// Low-cardinality label for metrics: one fixed string per variant.
    pub fn kind(&self) -> &'static str {
        match self {
            KeyError::NotJson(_) => "not_json",
            KeyError::NotAnObject => "not_an_object",
            KeyError::NoModel => "no_model",
            KeyError::InvalidModel(_) => "invalid_model",
            KeyError::WrongType { .. } => "wrong_type",
            KeyError::InvalidValue { .. } => "invalid_value",
            KeyError::DuplicateField(_) => "duplicate_field",
        }
    }

    /// The dotted path of the offending field, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            KeyError::WrongType { field, .. }
            | KeyError::InvalidValue { field, .. }
            | KeyError::DuplicateField(field) => Some(field),
            _ => None,
        }
    }
}

/// Computes the cache key of `body` sent to `route`.
///
/// `digest(model)` is called with the normalised display name (as returned in
/// [`Canonical::model`]) and returns the installed model's digest from `/api/tags`,
/// or `None` if unknown. `partition` separates identities (e.g. a bearer-token id,
/// `""` for none): different partitions never share keys.
///
/// `Ok(None)`: not cacheable because the model's digest is unknown.
///
/// The digest is in the key so that a model re-pulled under the same name never
/// serves answers its previous weights produced. `digest` is called at most once,
/// after the whole body has been decoded, so a body that is refused never costs a
/// lookup. The function is pure apart from that call: same inputs, same result. It
/// never panics; every problem with the body is a [`KeyError`].
///
/// The steps: UTF-8 check, strict JSON read, the route's decoder (native or `/v1`)
/// into the native request's canonical tree, model normalisation, digest lookup,
/// then the envelope written as compact sorted JSON and hashed.
pub fn canonical(
    route: KeyRoute,
    body: &[u8],
    partition: &str,
    digest: impl Fn(&str) -> Option<String>,
) -> Result<Option<Canonical>, KeyError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| KeyError::NotJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let root = json::parse(text).map_err(KeyError::NotJson)?;
    let J::Obj(fields) = &root else {
        return Err(KeyError::NotAnObject);
    };
    let decoded = match route {
        KeyRoute::Generate => native::generate(fields)?,
        KeyRoute::Chat => native::chat(fields)?,
        KeyRoute::Embed => native::embed(fields)?,
        KeyRoute::Embeddings => native::embeddings(fields)?,
        KeyRoute::Show => native::show(fields)?,
        KeyRoute::OpenAiChat => openai::chat(fields)?,
        KeyRoute::OpenAiCompletions => openai::completions(fields)?,
        KeyRoute::OpenAiEmbeddings => openai::embeddings(fields)?,
    };
    if decoded.model.is_empty() {
        return Err(KeyError::NoModel);
    }
    let model = normalise_model_name(decoded.model)?;
    let Some(digest) = digest(&model) else {
        return Ok(None);
    };
    let envelope = obj(vec![
        ("digest", C::Str(Cow::Borrowed(&digest))),
        ("family", C::Str(Cow::Borrowed(route.family().as_str()))),
        ("model", C::Str(Cow::Borrowed(&model))),
        ("partition", C::Str(Cow::Borrowed(partition))),
        ("request", decoded.request),
        ("v", C::Int(KEY_FORMAT_VERSION)),
    ]);
    let mut canonical = String::with_capacity(body.len() + 160);
    envelope.write(&mut canonical);
    let hash = blake3::Hasher::new_derive_key(DERIVE_CONTEXT)
        .update(canonical.as_bytes())
        .finalize();
    Ok(Some(Canonical {
        key: CacheKey(*hash.as_bytes()),
        route,
        model,
        stream: decoded.stream,
        deterministic: decoded.deterministic,
        load_only: decoded.load_only,
        keep_alive: decoded.keep_alive,
        canonical,
    }))
}

/// Normalises a model name the way Ollama resolves it, into the short display form
/// (`llama3.2:latest`, `ns/model:tag`, `host/ns/model:tag`). The gateway should pass
/// the names it reads from `/api/tags` through this too, so that its digest lookup
/// and this module agree.
///
/// The steps: an `http://` or `https://` prefix is dropped; the name is split into
/// host, namespace, model and tag; missing parts take Ollama's defaults
/// (`registry.ollama.ai`, `library`, `latest`); every part is lower-cased (ASCII);
/// default host and namespace are then left out again. So `llama3`,
/// `LLAMA3:latest` and `registry.ollama.ai/library/llama3:latest` all give
/// `llama3:latest`.
///
/// Errors: `KeyError::NoModel` for `""`; `KeyError::InvalidModel` for a name longer
/// than 128 bytes, containing `..`, with more than three `/`-separated parts, an
/// empty part, or a character outside the part's alphabet (letters, digits, `_`,
/// `-`; `.` also in the model and tag, `.` and `:` also in the host). Nothing is
/// trimmed: `" llama3"` is invalid, as it is to Ollama. Also used outside the key
/// (warm set, purge by model, upstream inventories), wherever a model is named.
pub fn normalise_model_name(raw: &str) -> Result<String, KeyError> {
    const MAX_LEN: usize = 128; // Ollama's MaxNamePartLen, applied to the whole name
    let invalid = || {
        let shown: String = raw.chars().take(MAX_LEN + 8).collect();
        KeyError::InvalidModel(shown)
    };
    if raw.is_empty() {
        return Err(KeyError::NoModel);
    }
    let s = raw
        .strip_prefix("http://")
        .or_else(|| raw.strip_prefix("https://"))
        .unwrap_or(raw);
    if s.is_empty() || s.len() > MAX_LEN || s.contains("..") {
        return Err(invalid());
    }
    let (path, last) = match s.rsplit_once('/') {
        Some((path, last)) => (Some(path), last),
        None => (None, s),
    };
    let (model, tag) = match last.split_once(':') {
        Some((model, tag)) => (model, Some(tag)),
        None => (last, None),
    };
    let (host, namespace) = match path {
        None => (None, None),
        Some(p) => match p.split_once('/') {
            None => (None, Some(p)),
            Some((_, ns)) if ns.contains('/') => return Err(invalid()),
            Some((host, ns)) => (Some(host), Some(ns)),
        },
    };
    let part_ok = |part: &str, extra: &[u8]| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || extra.contains(&b))
    };
    if !part_ok(model, b".")
        || !tag.is_none_or(|t| part_ok(t, b"."))
        || !namespace.is_none_or(|n| part_ok(n, b""))
        || !host.is_none_or(|h| part_ok(h, b".:"))
    {
        return Err(invalid());
    }
    // Written part by part and lowered once: this runs for every request that
    // names a model. The default host and namespace are left out.
    let host = host.filter(|h| !h.eq_ignore_ascii_case("registry.ollama.ai"));
    let namespace = namespace.filter(|n| host.is_some() || !n.eq_ignore_ascii_case("library"));
    let mut name = String::with_capacity(s.len() + 32);
    if let Some(host) = host {
        name.push_str(host);
        name.push('/');
        name.push_str(namespace.unwrap_or("library"));
        name.push('/');
    } else if let Some(namespace) = namespace {
        name.push_str(namespace);
        name.push('/');
    }
    name.push_str(model);
    name.push(':');
    name.push_str(tag.unwrap_or("latest"));
    name.make_ascii_lowercase();
    Ok(name)
}
