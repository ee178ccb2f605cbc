//! Route kinds: a fixed, low-cardinality classification of Ollama's endpoints.
//!
//! Metrics, logs and (later) cache and routing policy are keyed by [`RouteKind`]
//! rather than by raw paths, so an arbitrary path sent by a client can never create
//! a new metric series. Classification is a match on the path, no allocation.
//!
//! Used on the request path by the router (metrics of every request), the proxy
//! (the blob body limit, OpenAI-specific handling) and the cache (which routes
//! have a key). Matching is exact and case-sensitive: `/api/chat/` and
//! `/API/chat` are `Other`. The query string is not part of the path and plays
//! no part.
//!
//! Invariant: the declaration order of [`RouteKind`], [`RouteKind::ALL`] and the
//! indices from [`RouteKind::index`] agree (a test checks it); per-route arrays in
//! `metrics` are indexed by it, and a new kind must be added to all three.

/// What an Ollama request is, as far as the gateway cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// `/api/generate`: a completion, streamed by default.
    Generate,
    /// `/api/chat`: a chat completion, streamed by default.
    Chat,
    /// `/api/embed`: embeddings of one or more inputs.
    Embed,
    /// `/api/embeddings`: the older, single-prompt embeddings endpoint.
    Embeddings,
    /// `/api/show`: a model's details.
    Show,
    /// `/api/tags`: the installed models.
    Tags,
    /// `/api/ps`: the loaded models.
    Ps,
    /// `/api/pull`: downloads a model (streams progress).
    Pull,
    /// `/api/push`: uploads a model to a registry.
    Push,
    /// `/api/create`: creates a model from a Modelfile or blobs.
    Create,
    /// `/api/copy`: copies a model under a new name.
    Copy,
    /// `/api/delete`: removes a model.
    Delete,
    /// `/api/blobs/<digest>`: checks for or uploads a blob (possibly gigabytes).
    Blobs,
    /// `/api/version`: the daemon's version.
    Version,
    /// `/`: Ollama's "Ollama is running" page.
    Root,
    /// `/v1/chat/completions`: OpenAI-compatible chat.
    OpenAiChat,
    /// `/v1/completions`: OpenAI-compatible completions.
    OpenAiCompletions,
    /// `/v1/embeddings`: OpenAI-compatible embeddings.
    OpenAiEmbeddings,
    /// `/v1/models` and `/v1/models/<name>`: OpenAI-compatible model listing.
    OpenAiModels,
    /// Any other path under `/v1/` (for example `/v1/responses`).
    OpenAiOther,
    /// Anything else: unknown `/api/*` paths and every other path.
    Other,
}

impl RouteKind {
    /// Every kind, in a stable order (the index of each is [`RouteKind::index`]).
    pub const ALL: [RouteKind; 21] = [
        RouteKind::Generate,
        RouteKind::Chat,
        RouteKind::Embed,
        RouteKind::Embeddings,
        RouteKind::Show,
        RouteKind::Tags,
        RouteKind::Ps,
        RouteKind::Pull,
        RouteKind::Push,
        RouteKind::Create,
        RouteKind::Copy,
        RouteKind::Delete,
        RouteKind::Blobs,
        RouteKind::Version,
        RouteKind::Root,
        RouteKind::OpenAiChat,
        RouteKind::OpenAiCompletions,
        RouteKind::OpenAiEmbeddings,
        RouteKind::OpenAiModels,
        RouteKind::OpenAiOther,
        RouteKind::Other,
    ];

    /// Classifies a request path (without its query). Total: every path maps to
    /// some kind, falling back to `OpenAiOther` under `/v1/` and `Other` elsewhere.
    pub fn of(path: &str) -> RouteKind {
        if let Some(rest) = path.strip_prefix("/api/") {
            return match rest {
                "generate" => RouteKind::Generate,
                "chat" => RouteKind::Chat,
                "embed" => RouteKind::Embed,
                "embeddings" => RouteKind::Embeddings,
                "show" => RouteKind::Show,
                "tags" => RouteKind::Tags,
                "ps" => RouteKind::Ps,
                "pull" => RouteKind::Pull,
                "push" => RouteKind::Push,
                "create" => RouteKind::Create,
                "copy" => RouteKind::Copy,
                "delete" => RouteKind::Delete,
                "version" => RouteKind::Version,
                _ if rest.starts_with("blobs/") => RouteKind::Blobs,
                _ => RouteKind::Other,
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/") {
            return match rest {
                "chat/completions" => RouteKind::OpenAiChat,
                "completions" => RouteKind::OpenAiCompletions,
                "embeddings" => RouteKind::OpenAiEmbeddings,
                "models" => RouteKind::OpenAiModels,
                _ if rest.starts_with("models/") => RouteKind::OpenAiModels,
                _ => RouteKind::OpenAiOther,
            };
        }
        if path == "/" {
            RouteKind::Root
        } else {
            RouteKind::Other
        }
    }

    /// The metric label for this kind: lower-case `snake_case`, stable (dashboards
    /// and alert rules depend on it), and the key of `/warmline/stats` routes.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Generate => "generate",
            RouteKind::Chat => "chat",
            RouteKind::Embed => "embed",
            RouteKind::Embeddings => "embeddings",
            RouteKind::Show => "show",
            RouteKind::Tags => "tags",
            RouteKind::Ps => "ps",
            RouteKind::Pull => "pull",
            RouteKind::Push => "push",
            RouteKind::Create => "create",
            RouteKind::Copy => "copy",
            RouteKind::Delete => "delete",
            RouteKind::Blobs => "blobs",
            RouteKind::Version => "version",
            RouteKind::Root => "root",
            RouteKind::OpenAiChat => "openai_chat",
            RouteKind::OpenAiCompletions => "openai_completions",
            RouteKind::OpenAiEmbeddings => "openai_embeddings",
            RouteKind::OpenAiModels => "openai_models",
            RouteKind::OpenAiOther => "openai_other",
            RouteKind::Other => "other",
        }
    }

    /// This kind's position in [`RouteKind::ALL`]: the index of its counters and
    /// distributions in `metrics`. Always below `RouteKind::ALL.len()`.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether this is one of the OpenAI-compatible generation or embedding routes,
    /// whose bodies Ollama re-encodes from a fixed struct (dropping `keep_alive`).
    pub fn is_openai(self) -> bool {
        matches!(
            self,
            RouteKind::OpenAiChat | RouteKind::OpenAiCompletions | RouteKind::OpenAiEmbeddings
        )
    }

    /// Whether requests of this kind may carry large bodies (blob uploads) that the
    /// general body limit must not apply to.
    pub fn is_blob_upload(self) -> bool {
        self == RouteKind::Blobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_position_in_all() {
        for (i, kind) in RouteKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
        }
    }

    #[test]
    fn classifies_ollama_and_openai_paths() {
        assert_eq!(RouteKind::of("/api/chat"), RouteKind::Chat);
        assert_eq!(RouteKind::of("/api/blobs/sha256:abc"), RouteKind::Blobs);
        assert_eq!(RouteKind::of("/v1/chat/completions"), RouteKind::OpenAiChat);
        assert_eq!(
            RouteKind::of("/v1/models/llama3.2"),
            RouteKind::OpenAiModels
        );
        assert_eq!(RouteKind::of("/v1/responses"), RouteKind::OpenAiOther);
        assert_eq!(RouteKind::of("/"), RouteKind::Root);
        assert_eq!(RouteKind::of("/api/chat/"), RouteKind::Other);
        assert_eq!(RouteKind::of("/nonsense"), RouteKind::Other);
    }
}
