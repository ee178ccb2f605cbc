//! Route kinds: a fixed, low-cardinality classification of Ollama's endpoints.
//!
//! Metrics, logs and (later) cache and routing policy are keyed by [`RouteKind`]
//! rather than by raw paths, so an arbitrary path sent by a client can never create
//! a new metric series. Classification is a match on the path, no allocation.

/// What an Ollama request is, as far as the gateway cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Generate,
    Chat,
    Embed,
    Embeddings,
    Show,
    Tags,
    Ps,
    Pull,
    Push,
    Create,
    Copy,
    Delete,
    Blobs,
    Version,
    Root,
    OpenAiChat,
    OpenAiCompletions,
    OpenAiEmbeddings,
    OpenAiModels,
    OpenAiOther,
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

    /// Classifies a request path.
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

    /// The metric label for this kind.
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

    /// This kind's position in [`RouteKind::ALL`].
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
