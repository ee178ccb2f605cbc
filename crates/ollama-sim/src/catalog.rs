//! The fake model library: built-in model specs, name resolution and the
//! registry of installed models.
//!
//! Seven models exist in the fake registry (see [`CATALOG`]); three are
//! installed by default (`SIM_MODELS` overrides the set). Installed models can
//! change at run time through pull, create, copy and delete, so the registry is
//! a read-mostly [`ArcSwap`] snapshot: a request resolves a model name with a
//! lock-free load, and every mutation (rare) rebuilds the snapshot — including
//! the pre-serialised `/api/tags`, `/v1/models` and `/api/show` bodies, so
//! those endpoints cost one `Bytes` clone per request.
//!
//! Names follow Ollama's `[host/][namespace/]model[:tag]` rules: defaults
//! `registry.ollama.ai`, `library`, `latest`; matching is case-insensitive
//! and the stored casing is what responses show.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::api::{ListModel, ModelDetails, ModelList, ShowResponse};
use crate::clock::{Timestamp, unix_secs};
use crate::sha256::hex_digest;
use crate::wire::json_bytes;

pub(crate) const DEFAULT_HOST: &str = "registry.ollama.ai";
pub(crate) const DEFAULT_NAMESPACE: &str = "library";

/// Static description of a fake model.
#[derive(Debug)]
pub(crate) struct ModelSpec {
    /// Canonical short name, e.g. `llama3.2:latest`.
    pub name: &'static str,
    pub family: &'static str,
    pub arch: &'static str,
    pub parameter_size: &'static str,
    pub parameter_count: u64,
    pub quantization_level: &'static str,
    pub file_type: u32,
    /// Bytes on disk.
    pub size: u64,
    /// Manifest digest (64 hex).
    pub digest: &'static str,
    /// Trained context length.
    pub context_length: u32,
    pub embedding_length: u32,
    pub block_count: u32,
    pub head_count: u32,
    pub capabilities: &'static [&'static str],
    pub template: &'static str,
    pub parameters: &'static [(&'static str, &'static str)],
    pub license: &'static str,
    pub tokenizer: &'static str,
    /// Installed when `SIM_MODELS` is not set.
    pub default_installed: bool,
}

impl ModelSpec {
    pub(crate) fn has(&self, capability: &str) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Bytes of KV cache per token of context, for `/api/ps` sizes.
    pub(crate) fn kv_bytes_per_token(&self) -> u64 {
        u64::from(self.block_count) * u64::from(self.embedding_length) * 2 * 2 / 4
    }
}

const LLAMA_TEMPLATE: &str = "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n\n{{ if .System }}{{ .System }}\n{{- end }}<|eot_id|>\n{{- range $i, $_ := .Messages }}\n{{- $last := eq (len (slice $.Messages $i)) 1 }}\n<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}{{ if $last }}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}\n{{- end }}";
const QWEN3_TEMPLATE: &str = "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";
const TINYLLAMA_TEMPLATE: &str =
    "<|system|>\n{{ .System }}</s>\n<|user|>\n{{ .Prompt }}</s>\n<|assistant|>\n";
const PROMPT_TEMPLATE: &str = "{{ .Prompt }}";

/// Every model the fake registry knows.
pub(crate) static CATALOG: [ModelSpec; 7] = [
    ModelSpec {
        name: "llama3.2:latest",
        family: "llama",
        arch: "llama",
        parameter_size: "3.2B",
        parameter_count: 3_212_749_888,
        quantization_level: "Q4_K_M",
        file_type: 15,
        size: 2_019_393_189,
        digest: "a903a5f9d2f11a117a47c570d2e1ea9404695d6a7ae2580a964c239cda373e81",
        context_length: 131_072,
        embedding_length: 3072,
        block_count: 28,
        head_count: 24,
        capabilities: &["completion", "tools"],
        template: LLAMA_TEMPLATE,
        parameters: &[
            ("stop", "\"<|start_header_id|>\""),
            ("stop", "\"<|end_header_id|>\""),
            ("stop", "\"<|eot_id|>\""),
        ],
        license: "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "gpt2",
        default_installed: true,
    },
    ModelSpec {
        name: "qwen3:0.6b",
        family: "qwen3",
        arch: "qwen3",
        parameter_size: "751.63M",
        parameter_count: 751_632_384,
        quantization_level: "Q4_K_M",
        file_type: 15,
        size: 522_653_767,
        digest: "7a46cc6882fc4c25ace829bc5e247335189248f9c0747c98827ee4fc55ba8ea7",
        context_length: 40_960,
        embedding_length: 1024,
        block_count: 28,
        head_count: 16,
        capabilities: &["completion", "tools", "thinking"],
        template: QWEN3_TEMPLATE,
        parameters: &[
            ("repeat_penalty", "1"),
            ("stop", "\"<|im_start|>\""),
            ("stop", "\"<|im_end|>\""),
            ("temperature", "0.6"),
            ("top_k", "20"),
            ("top_p", "0.95"),
        ],
        license: "Apache License\nVersion 2.0, January 2004\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "gpt2",
        default_installed: true,
    },
    ModelSpec {
        name: "nomic-embed-text:latest",
        family: "nomic-bert",
        arch: "nomic-bert",
        parameter_size: "137M",
        parameter_count: 136_727_040,
        quantization_level: "F16",
        file_type: 1,
        size: 274_302_450,
        digest: "5373d72b11d75dd4a22d89225d560731a763657c9db59b18bbbe6f7926d9a1d6",
        context_length: 2048,
        embedding_length: 768,
        block_count: 12,
        head_count: 12,
        capabilities: &["embedding"],
        template: PROMPT_TEMPLATE,
        parameters: &[("num_ctx", "8192")],
        license: "Apache License\nVersion 2.0, January 2004\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "bert",
        default_installed: true,
    },
    ModelSpec {
        name: "tinyllama:latest",
        family: "llama",
        arch: "llama",
        parameter_size: "1B",
        parameter_count: 1_100_048_384,
        quantization_level: "Q4_0",
        file_type: 2,
        size: 637_700_138,
        digest: "b2fb25a1da73bdc212e43849428f38a799da1e8dca814e04e7518fba5139e581",
        context_length: 2048,
        embedding_length: 2048,
        block_count: 22,
        head_count: 32,
        capabilities: &["completion"],
        template: TINYLLAMA_TEMPLATE,
        parameters: &[
            ("stop", "\"<|system|>\""),
            ("stop", "\"<|user|>\""),
            ("stop", "\"</s>\""),
        ],
        license: "Apache License\nVersion 2.0, January 2004\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "llama",
        default_installed: false,
    },
    ModelSpec {
        name: "all-minilm:latest",
        family: "bert",
        arch: "bert",
        parameter_size: "23M",
        parameter_count: 22_565_376,
        quantization_level: "F16",
        file_type: 1,
        size: 45_960_996,
        digest: "79437a6bf1f001e1590659fbc469f2aed231f3a41024ed5e02b8f8275ce4e1de",
        context_length: 512,
        embedding_length: 384,
        block_count: 6,
        head_count: 12,
        capabilities: &["embedding"],
        template: PROMPT_TEMPLATE,
        parameters: &[],
        license: "Apache License\nVersion 2.0, January 2004\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "bert",
        default_installed: false,
    },
    ModelSpec {
        name: "gemma3:1b",
        family: "gemma3",
        arch: "gemma3",
        parameter_size: "999.89M",
        parameter_count: 999_885_952,
        quantization_level: "Q4_K_M",
        file_type: 15,
        size: 815_319_791,
        digest: "54325494f0213107be87f6bb6d3be6a2ac2cf71ae4a941d1aeea199e92b59b10",
        context_length: 32_768,
        embedding_length: 1152,
        block_count: 26,
        head_count: 4,
        capabilities: &["completion"],
        template: PROMPT_TEMPLATE,
        parameters: &[("stop", "\"<end_of_turn>\""), ("temperature", "1")],
        license: "Gemma Terms of Use\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "llama",
        default_installed: false,
    },
    ModelSpec {
        name: "phi3:mini",
        family: "phi3",
        arch: "phi3",
        parameter_size: "3.8B",
        parameter_count: 3_821_079_552,
        quantization_level: "Q4_0",
        file_type: 2,
        size: 2_176_178_913,
        digest: "69695f0a366b9db13ae80f4230fd021ca03555bf095d8e0df7a61aceb8df7cbd",
        context_length: 131_072,
        embedding_length: 3072,
        block_count: 32,
        head_count: 32,
        capabilities: &["completion"],
        template: PROMPT_TEMPLATE,
        parameters: &[("stop", "\"<|end|>\""), ("stop", "\"<|user|>\"")],
        license: "MIT License\n(simulated licence text for the Warmline demo backend)",
        tokenizer: "llama",
        default_installed: false,
    },
];

/// Looks a catalog entry up by any spelling of its name (`llama3.2`, `Llama3.2:latest`).
pub(crate) fn catalog_spec(name: &str) -> Option<&'static ModelSpec> {
    let parsed = ModelName::parse(name)?;
    if !parsed.host.eq_ignore_ascii_case(DEFAULT_HOST)
        || !parsed.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE)
    {
        return None;
    }
    let short = parsed.display();
    CATALOG.iter().find(|s| s.name.eq_ignore_ascii_case(&short))
}

/// The names installed when `SIM_MODELS` is not set.
pub fn default_models() -> Vec<String> {
    CATALOG
        .iter()
        .filter(|s| s.default_installed)
        .map(|s| s.name.to_owned())
        .collect()
}

/// Every name the fake registry can serve, installed by default or not.
pub fn catalog_names() -> Vec<&'static str> {
    CATALOG.iter().map(|s| s.name).collect()
}

// ---------------------------------------------------------------------------
// Names

/// A parsed model reference (`types/model/name.go`, simplified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModelName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

impl ModelName {
    /// Parses and validates; `None` for an invalid name (including empty).
    pub(crate) fn parse(raw: &str) -> Option<ModelName> {
        let s = raw.split_once('@').map_or(raw, |(name, _digest)| name);
        let (path, tag) = match (s.rfind(':'), s.rfind('/')) {
            (Some(colon), slash) if slash.is_none_or(|sl| colon > sl) => {
                (&s[..colon], &s[colon + 1..])
            }
            _ => (s, ""),
        };
        let mut parts = path.rsplit('/');
        let model = parts.next().unwrap_or_default();
        let namespace = parts.next().unwrap_or(DEFAULT_NAMESPACE);
        let host = parts.next().unwrap_or(DEFAULT_HOST);
        if parts.next().is_some() {
            return None;
        }
        let tag = if tag.is_empty() { "latest" } else { tag };
        let ok = part_ok(model, 80, false)
            && part_ok(namespace, 80, false)
            && part_ok(host, 350, true)
            && tag.len() <= 80
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| ModelName {
            host: host.to_owned(),
            namespace: namespace.to_owned(),
            model: model.to_owned(),
            tag: tag.to_owned(),
        })
    }

    /// Shortest display form: `llama3.2:latest`, `me/m:tag`, `host/ns/m:tag`.
    pub(crate) fn display(&self) -> String {
        if !self.host.eq_ignore_ascii_case(DEFAULT_HOST) {
            format!(
                "{}/{}/{}:{}",
                self.host, self.namespace, self.model, self.tag
            )
        } else if !self.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
            format!("{}/{}:{}", self.namespace, self.model, self.tag)
        } else {
            format!("{}:{}", self.model, self.tag)
        }
    }

    /// Full form used in some errors: `registry.ollama.ai/library/llama3.2:latest`.
    pub(crate) fn full(&self) -> String {
        format!(
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }

    /// Case-insensitive lookup key.
    fn key(&self) -> String {
        self.full().to_ascii_lowercase()
    }
}

fn part_ok(part: &str, max: usize, host: bool) -> bool {
    !part.is_empty()
        && part.len() <= max
        && part
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b) || (host && b == b':'))
}

// ---------------------------------------------------------------------------
// Installed models

/// A model present in the local store.
#[derive(Debug)]
pub(crate) struct Installed {
    /// Display name in stored casing (`llama3.2:latest`).
    pub name: String,
    pub namespace: String,
    pub spec: &'static ModelSpec,
    pub digest: String,
    pub size: u64,
    pub modified_at: SystemTime,
    /// System prompt set by `/api/create`.
    pub system: Option<String>,
    /// Pre-serialised `/api/show` bodies.
    pub show: Bytes,
    pub show_verbose: Bytes,
}

impl Installed {
    fn new(
        name: &ModelName,
        spec: &'static ModelSpec,
        digest: String,
        system: Option<String>,
        modified_at: SystemTime,
    ) -> Installed {
        let mut m = Installed {
            name: name.display(),
            namespace: name.namespace.clone(),
            spec,
            digest,
            size: spec.size,
            modified_at,
            system,
            show: Bytes::new(),
            show_verbose: Bytes::new(),
        };
        m.show = m.show_bytes(false);
        m.show_verbose = m.show_bytes(true);
        m
    }

    pub(crate) fn details(&self) -> ModelDetails<'static> {
        let spec = self.spec;
        ModelDetails {
            parent_model: "",
            format: "gguf",
            family: spec.family,
            families: std::slice::from_ref(&spec.family),
            parameter_size: spec.parameter_size,
            quantization_level: spec.quantization_level,
        }
    }

    fn parameters_text(&self) -> String {
        let mut lines: Vec<String> = self
            .spec
            .parameters
            .iter()
            .map(|(k, v)| format!("{k:<30} {v}"))
            .collect();
        lines.sort();
        lines.join("\n")
    }

    fn modelfile(&self) -> String {
        let spec = self.spec;
        let mut s = format!(
            "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM {}\n\nFROM /root/.ollama/models/blobs/sha256-{}\nTEMPLATE \"\"\"{}\"\"\"\n",
            self.name,
            layer_digest(spec, "model"),
            spec.template
        );
        if let Some(system) = &self.system {
            s.push_str(&format!("SYSTEM \"\"\"{system}\"\"\"\n"));
        }
        for (k, v) in spec.parameters {
            s.push_str(&format!("PARAMETER {k} {}\n", v.trim_matches('"')));
        }
        s.push_str(&format!("LICENSE \"\"\"{}\"\"\"\n", spec.license));
        s
    }

    /// `api.ShowResponse` bytes.
    fn show_bytes(&self, verbose: bool) -> Bytes {
        let spec = self.spec;
        let arch = spec.arch;
        let mut info = BTreeMap::new();
        info.insert("general.architecture".to_owned(), json!(arch));
        info.insert(
            "general.basename".to_owned(),
            json!(spec.name.split(':').next()),
        );
        info.insert("general.file_type".to_owned(), json!(spec.file_type));
        info.insert(
            "general.parameter_count".to_owned(),
            json!(spec.parameter_count),
        );
        info.insert("general.quantization_version".to_owned(), json!(2));
        info.insert(
            format!("{arch}.attention.head_count"),
            json!(spec.head_count),
        );
        info.insert(format!("{arch}.block_count"), json!(spec.block_count));
        info.insert(format!("{arch}.context_length"), json!(spec.context_length));
        info.insert(
            format!("{arch}.embedding_length"),
            json!(spec.embedding_length),
        );
        info.insert("tokenizer.ggml.model".to_owned(), json!(spec.tokenizer));
        // Ollama nulls the large tokenizer arrays unless `verbose` is set.
        let (tokens, types) = if verbose {
            (
                json!(["<unk>", "<s>", "</s>", "the", "llama"]),
                json!([2, 3, 3, 1, 1]),
            )
        } else {
            (Value::Null, Value::Null)
        };
        info.insert("tokenizer.ggml.token_type".to_owned(), types);
        info.insert("tokenizer.ggml.tokens".to_owned(), tokens);
        let modelfile = self.modelfile();
        let parameters = self.parameters_text();
        let show = ShowResponse {
            license: spec.license,
            modelfile: &modelfile,
            parameters: &parameters,
            template: spec.template,
            system: self.system.as_deref().unwrap_or_default(),
            details: self.details(),
            model_info: &info,
            capabilities: spec.capabilities,
            modified_at: Timestamp(self.modified_at),
        };
        Bytes::from(json_bytes(&show))
    }
}

/// Stable fake digest of one layer of a catalog model.
pub(crate) fn layer_digest(spec: &ModelSpec, layer: &str) -> String {
    hex_digest(format!("warmline-sim/{}/{layer}", spec.name).as_bytes())
}

/// The layers of a model as the registry would list them: (kind, digest, size).
pub(crate) fn layers(spec: &ModelSpec) -> Vec<(&'static str, String, u64)> {
    let template = spec.template.len() as u64;
    let license = spec.license.len() as u64;
    let params = 30 * spec.parameters.len() as u64 + 2;
    vec![
        (
            "model",
            layer_digest(spec, "model"),
            spec.size.saturating_sub(template + license + params),
        ),
        ("template", layer_digest(spec, "template"), template),
        ("license", layer_digest(spec, "license"), license),
        ("params", layer_digest(spec, "params"), params),
    ]
}

/// The store snapshot requests read from.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    models: HashMap<String, Arc<Installed>>,
    /// `/api/tags` body.
    pub tags: Bytes,
    /// `/v1/models` body.
    pub v1_models: Bytes,
}

impl Snapshot {
    fn build(models: HashMap<String, Arc<Installed>>) -> Snapshot {
        let mut sorted: Vec<&Arc<Installed>> = models.values().collect();
        sorted.sort_by(|a, b| b.modified_at.cmp(&a.modified_at).then(a.name.cmp(&b.name)));
        let tags = ModelList {
            models: sorted
                .iter()
                .map(|m| ListModel {
                    name: &m.name,
                    model: &m.name,
                    modified_at: Timestamp(m.modified_at),
                    size: m.size,
                    digest: &m.digest,
                    details: m.details(),
                    capabilities: m.spec.capabilities,
                })
                .collect(),
        };
        let data: Option<Vec<Value>> =
            (!sorted.is_empty()).then(|| sorted.iter().map(|m| v1_model_object(m)).collect());
        let v1 = json!({"object": "list", "data": data});
        Snapshot {
            tags: Bytes::from(json_bytes(&tags)),
            v1_models: Bytes::from(json_bytes(&v1)),
            models,
        }
    }

    /// Resolves a client-supplied name (any casing, short or full).
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Installed>> {
        let parsed = ModelName::parse(name)?;
        self.models.get(&parsed.key()).cloned()
    }
}

/// `{"id","object":"model","created","owned_by"}` for `/v1/models`.
pub(crate) fn v1_model_object(m: &Installed) -> Value {
    json!({
        "id": m.name,
        "object": "model",
        "created": unix_secs(m.modified_at),
        "owned_by": m.namespace,
    })
}

/// Installed models plus uploaded blobs.
#[derive(Debug)]
pub(crate) struct Registry {
    snapshot: ArcSwap<Snapshot>,
    /// Serialises writers so concurrent pulls do not lose each other's update.
    writer: Mutex<()>,
    blobs: Mutex<HashSet<String>>,
}

/// Why a store mutation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreError {
    InvalidName,
    NotFound,
}

impl Registry {
    /// A store holding the named catalog models; unknown names are skipped
    /// (with a warning) so a typo in `SIM_MODELS` does not kill the daemon.
    pub(crate) fn new(installed: &[String]) -> Registry {
        let now = SystemTime::now();
        let mut models = HashMap::new();
        for (i, name) in installed.iter().enumerate() {
            let Some(spec) = catalog_spec(name) else {
                tracing::warn!(model = %name, "SIM_MODELS names a model the simulator does not know; skipped");
                continue;
            };
            let Some(parsed) = ModelName::parse(spec.name) else {
                continue;
            };
            // Distinct mtimes keep /api/tags ordering stable: first listed is newest.
            let mtime = now - Duration::from_secs(60 * i as u64);
            let m = Installed::new(&parsed, spec, spec.digest.to_owned(), None, mtime);
            models.insert(parsed.key(), Arc::new(m));
        }
        Registry {
            snapshot: ArcSwap::from_pointee(Snapshot::build(models)),
            writer: Mutex::new(()),
            blobs: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Installed>> {
        self.snapshot.load().get(name)
    }

    fn mutate(
        &self,
        f: impl FnOnce(&mut HashMap<String, Arc<Installed>>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut models = self.snapshot.load().models.clone();
        f(&mut models)?;
        self.snapshot.store(Arc::new(Snapshot::build(models)));
        Ok(())
    }

    /// Installs (or refreshes) a model under `name`.
    pub(crate) fn install(
        &self,
        name: &str,
        spec: &'static ModelSpec,
        digest: String,
        system: Option<String>,
    ) -> Result<(), StoreError> {
        let parsed = ModelName::parse(name).ok_or(StoreError::InvalidName)?;
        let m = Installed::new(&parsed, spec, digest, system, SystemTime::now());
        self.mutate(|models| {
            models.insert(parsed.key(), Arc::new(m));
            Ok(())
        })
    }

    /// `/api/copy`.
    pub(crate) fn copy(&self, source: &str, destination: &str) -> Result<(), StoreError> {
        let dest = ModelName::parse(destination).ok_or(StoreError::InvalidName)?;
        let src = self.get(source).ok_or(StoreError::NotFound)?;
        let m = Installed::new(
            &dest,
            src.spec,
            src.digest.clone(),
            src.system.clone(),
            SystemTime::now(),
        );
        self.mutate(|models| {
            models.insert(dest.key(), Arc::new(m));
            Ok(())
        })
    }

    /// `/api/delete`.
    pub(crate) fn delete(&self, name: &str) -> Result<(), StoreError> {
        let parsed = ModelName::parse(name).ok_or(StoreError::InvalidName)?;
        self.mutate(|models| {
            models
                .remove(&parsed.key())
                .map(|_| ())
                .ok_or(StoreError::NotFound)
        })
    }

    pub(crate) fn has_blob(&self, digest: &str) -> bool {
        self.blobs
            .lock()
            .map(|b| b.contains(digest))
            .unwrap_or(false)
    }

    /// Records an uploaded blob; `true` if it was new.
    pub(crate) fn add_blob(&self, digest: String) -> bool {
        self.blobs
            .lock()
            .map(|mut b| b.insert(digest))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_like_ollama() {
        let n = ModelName::parse("llama3.2").unwrap_or_else(|| panic!("valid"));
        assert_eq!(n.display(), "llama3.2:latest");
        assert_eq!(n.full(), "registry.ollama.ai/library/llama3.2:latest");
        let n = ModelName::parse("me/model:v1").unwrap_or_else(|| panic!("valid"));
        assert_eq!(n.display(), "me/model:v1");
        let n = ModelName::parse("localhost:5000/me/model").unwrap_or_else(|| panic!("valid"));
        assert_eq!(n.display(), "localhost:5000/me/model:latest");
        assert!(ModelName::parse("").is_none());
        assert!(ModelName::parse("a/b/c/d").is_none());
        assert!(ModelName::parse("bad name").is_none());
    }

    #[test]
    fn lookups_are_case_insensitive_and_keep_stored_casing() {
        let reg = Registry::new(&default_models());
        let m = reg.get("LLAMA3.2").unwrap_or_else(|| panic!("installed"));
        assert_eq!(m.name, "llama3.2:latest");
        assert!(reg.get("registry.ollama.ai/library/qwen3:0.6b").is_some());
        assert!(reg.get("tinyllama").is_none());
        assert!(catalog_spec("tinyllama").is_some());
    }

    #[test]
    fn tags_are_newest_first_and_include_details() {
        let reg = Registry::new(&default_models());
        let tags: Value = serde_json::from_slice(&reg.snapshot().tags).unwrap_or_default();
        let names: Vec<&str> = tags["models"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            names,
            ["llama3.2:latest", "qwen3:0.6b", "nomic-embed-text:latest"]
        );
        assert_eq!(tags["models"][2]["details"]["family"], "nomic-bert");
    }

    #[test]
    fn copy_and_delete() {
        let reg = Registry::new(&default_models());
        assert_eq!(reg.copy("nope", "x"), Err(StoreError::NotFound));
        assert_eq!(reg.copy("llama3.2", "mine"), Ok(()));
        assert_eq!(
            reg.get("mine:latest").map(|m| m.spec.name),
            Some("llama3.2:latest")
        );
        assert_eq!(reg.delete("mine"), Ok(()));
        assert_eq!(reg.delete("mine"), Err(StoreError::NotFound));
    }
}
