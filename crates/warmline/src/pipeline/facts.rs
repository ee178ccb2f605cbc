//! What the pipeline learns from a request body before it goes upstream, and the
//! one change it may make to it.
//!
//! [`Facts`] are read from the body the pipeline already holds (it needed it whole
//! for the cache key): the model (for slots, warmth and metrics), whether the
//! answer streams (for cold-start masking), whether the request sets its own
//! `keep_alive`, and whether it only loads a model. [`pin_keep_alive`] adds a warm
//! model's pinned `keep_alive` to a native request that sets none, so Ollama keeps
//! the model loaded instead of unloading it after its default five minutes.

use std::sync::Arc;

use bytes::Bytes;

use super::state::Pipeline;
use crate::cache::{Lookup, Read};
use crate::wire::route::RouteKind;

/// What the gateway needs to know of a generation's body before sending it.
#[derive(Debug, Default)]
pub struct Facts {
    /// The model, normalised (for its upstream slot); `None` if the body names
    /// none (Ollama will answer with its own error).
    pub model: Option<Arc<str>>,
    /// Whether the answer streams (native: unless `"stream": false`; `/v1`: only
    /// with `"stream": true`; embeddings never).
    pub stream: bool,
    /// Whether the request sets its own `keep_alive`.
    pub keep_alive: bool,
    /// No prompt or messages: Ollama only loads (or unloads) the model.
    pub load_only: bool,
}

impl From<Read> for Facts {
    /// The facts the cache read while making the body's key.
    fn from(read: Read) -> Facts {
        Facts {
            model: Some(read.model),
            stream: read.stream,
            keep_alive: read.keep_alive,
            load_only: read.load_only,
        }
    }
}

impl Facts {
    /// The facts of a request the cache will look up (which never only loads).
    pub fn of_lookup(lookup: &Lookup) -> Facts {
        Facts {
            model: Some(Arc::clone(&lookup.model)),
            stream: lookup.stream,
            keep_alive: lookup.keep_alive,
            load_only: false,
        }
    }

    /// The facts of `body` for a route of `kind`, for a body the cache did not
    /// read (cache off, `no-store`, an unknown model, a body it refuses); a body
    /// that is not a JSON object has none (the upstream answers it with its own
    /// error).
    pub fn of(kind: RouteKind, body: &[u8]) -> Facts {
        #[derive(serde::Deserialize)]
        struct Probe<'a> {
            #[serde(borrow)]
            model: Option<std::borrow::Cow<'a, str>>,
            stream: Option<MaybeBool>,
            keep_alive: Option<serde::de::IgnoredAny>,
            #[serde(borrow)]
            prompt: Option<std::borrow::Cow<'a, str>>,
            messages: Option<NonEmpty>,
        }
        let Ok(probe) = serde_json::from_slice::<Probe<'_>>(body) else {
            return Facts::default();
        };
        let model = probe.model.map(|model| {
            crate::cache::key::normalise_model_name(&model)
                .map_or_else(|_| Arc::from(model), Arc::from)
        });
        let explicit = probe.stream.and_then(|s| s.0);
        let stream = match kind {
            RouteKind::Generate | RouteKind::Chat => explicit.unwrap_or(true),
            RouteKind::OpenAiChat | RouteKind::OpenAiCompletions => explicit.unwrap_or(false),
            _ => false,
        };
        let load_only = match kind {
            RouteKind::Generate => probe.prompt.as_deref().is_none_or(str::is_empty),
            RouteKind::Chat => probe.messages.is_none_or(|m| !m.0),
            _ => false,
        };
        Facts {
            model,
            stream,
            keep_alive: probe.keep_alive.is_some(),
            load_only,
        }
    }
}

/// A JSON value read only for whether it is a boolean, and which (the field's
/// other values are the upstream's to refuse): no value tree is built.
struct MaybeBool(Option<bool>);

impl<'de> serde::Deserialize<'de> for MaybeBool {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(MaybeBool(value.as_bool()))
    }
}

/// A JSON array read only for whether it has an element: no element is kept.
struct NonEmpty(bool);

impl<'de> serde::Deserialize<'de> for NonEmpty {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NonEmpty;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NonEmpty, A::Error> {
                let mut any = false;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
        }
        deserializer.deserialize_seq(Visitor)
    }
}

/// Adds the pinned `keep_alive` to a native generation or embedding request for a
/// warm model that sets none (see `warmth`). The body is a JSON object, so the
/// field goes right after its opening brace; everything else stays byte for byte.
pub(crate) fn pin_keep_alive(
    pipeline: &Pipeline,
    kind: RouteKind,
    facts: &Facts,
    body: Bytes,
) -> Bytes {
    // Only Ollama's generation and embedding routes take a `keep_alive`.
    let loads = matches!(
        kind,
        RouteKind::Generate | RouteKind::Chat | RouteKind::Embed | RouteKind::Embeddings
    );
    if !loads || facts.keep_alive {
        return body;
    }
    let Some(pinned) = facts
        .model
        .as_deref()
        .and_then(|m| pipeline.warmth.pinned(m))
    else {
        return body;
    };
    let Some(open) = body.iter().position(|b| !b.is_ascii_whitespace()) else {
        return body;
    };
    if body[open] != b'{' {
        return body;
    }
    let empty = body[open + 1..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let field = format!(
        "\"keep_alive\":{}{}",
        pinned.to_json(),
        if empty { "" } else { "," }
    );
    let mut pinned_body = Vec::with_capacity(body.len() + field.len());
    pinned_body.extend_from_slice(&body[..=open]);
    pinned_body.extend_from_slice(field.as_bytes());
    pinned_body.extend_from_slice(&body[open + 1..]);
    Bytes::from(pinned_body)
}
