//! The serde shape of the configuration: what a TOML file, the environment, the
//! command line and a settings change write, before validation.
//!
//! Every field is optional (a missing one takes its default during validation) and
//! unknown fields are refused, so a typo is an error and not a setting silently
//! ignored. The same shape serializes back out ([`RawConfig`] is what
//! `GET /warmline/settings` returns), and a settings change is a JSON merge patch
//! (RFC 7386) on it: objects merge key by key, `null` removes a key (back to its
//! default), anything else replaces.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::values::split_list;
use super::{ConfigError, ENV_LISTEN, ENV_REDIS, ENV_TOKEN, ENV_UPSTREAMS, Overrides};

/// The whole configuration, as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Vec<RawUpstream>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
    #[serde(default)]
    pub pool: RawPool,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub compression: RawCompression,
    #[serde(default)]
    pub failover: RawFailover,
    #[serde(default)]
    pub cache: RawCache,
    #[serde(default)]
    pub breaker: RawBreaker,
    #[serde(default)]
    pub concurrency: RawConcurrency,
    #[serde(default)]
    pub rate_limit: RawRateLimit,
    #[serde(default)]
    pub auth: RawAuth,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub warmth: RawWarmth,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub admin: RawAdmin,
    /// One line per finished request is appended here (none when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<String>,
    /// Where the warm set is kept between runs (`warmline serve` defaults it to
    /// `$XDG_CONFIG_HOME/warmline/state.json`; unset in a library = in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
}

/// An upstream: a URL, or a table with its weight and parallelism.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawUpstream {
    Url(String),
    Table {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parallel: Option<usize>,
    },
}

impl RawUpstream {
    pub fn url(&self) -> &str {
        match self {
            RawUpstream::Url(url) | RawUpstream::Table { url, .. } => url,
        }
    }
}

/// Marks the optional fields of the sections below.
macro_rules! section {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

section!(
    /// `[pool]`
    RawPool { max_idle_per_host: usize, idle_timeout: String }
);
section!(
    /// `[timeouts]`
    RawTimeouts {
        connect: String,
        first_byte: String,
        idle: String,
        header: String,
        body: String,
        drain: String,
        health_interval: String,
        client_idle: String,
    }
);
section!(
    /// `[limits]`
    RawLimits {
        max_body: ByteSize,
        max_blob_body: ByteSize,
        retry_body: ByteSize,
        max_header: ByteSize,
        max_connections: usize,
    }
);
section!(
    /// `[compression]`
    RawCompression { enabled: bool }
);
section!(
    /// `[failover]`
    RawFailover { enabled: bool }
);
section!(
    /// `[cache]`
    RawCache {
        enabled: bool,
        max_size: ByteSize,
        ttl_generation: String,
        ttl_embedding: String,
        ttl_show: String,
        sampled: bool,
        coalesce_sampled: bool,
        redis: String,
        redis_timeout: String,
    }
);
section!(
    /// `[breaker]`
    RawBreaker { enabled: bool, failures: u32, open_for: String }
);
section!(
    /// `[concurrency]`
    RawConcurrency {
        enabled: bool,
        per_model: usize,
        staged: usize,
        queue: usize,
        max_wait: String,
        discover: bool,
    }
);
section!(
    /// `[daemon]`: supervision of `ollama serve`
    RawDaemon {
        supervise: bool,
        executable: String,
        keep_alive: String,
        num_parallel: usize,
        max_loaded_models: usize,
        env: std::collections::BTreeMap<String, String>,
        ready_timeout: String,
        stop_grace: String,
        restart_backoff: String,
        restart_backoff_max: String,
        crash_loop_restarts: u32,
        crash_loop_window: String,
        log_file: String,
        log_lines: usize,
    }
);
section!(
    /// `[warmth]`: models kept loaded
    RawWarmth {
        models: Vec<String>,
        keep_alive: String,
        pin: bool,
        mask_cold_starts: bool,
    }
);
section!(
    /// `[alerts]`: the thresholds of `/warmline/health`'s alerts
    RawAlerts {
        latency: String,
        error_rate: f64,
        hit_rate: f64,
        min_requests: u64,
        min_lookups: u64,
        window: String,
    }
);
section!(
    /// `[admin]`: the control plane's credential and browser origins
    RawAdmin { token_file: String, origins: Vec<String> }
);
section!(
    /// `[rate_limit]`
    RawRateLimit { enabled: bool, per_second: u32, burst: u32, loopback: bool }
);

/// `[auth]`. Secrets never appear in `Debug` output.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// One token, identity "default" (also `WARMLINE_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<RawToken>,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAuth")
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field(
                "tokens",
                &self.tokens.iter().map(|t| &t.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One named token of `auth.tokens`.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawToken {
    pub name: String,
    pub token: String,
}

impl std::fmt::Debug for RawToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawToken")
            .field("name", &self.name)
            .field("token", &"***")
            .finish()
    }
}

/// A byte count written either as an integer or as a string such as `"64MiB"`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

impl RawConfig {
    /// Reads and parses a TOML config file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        RawConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses TOML text; the error is TOML's own message (it names line and key).
    pub fn from_toml(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Applies `WARMLINE_*` variables, read through `var` so tests need no real env.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) {
        let set = |name| var(name).filter(|v: &String| !v.trim().is_empty());
        if let Some(listen) = set(ENV_LISTEN) {
            self.listen = Some(listen);
        }
        if let Some(list) = set(ENV_UPSTREAMS) {
            self.upstreams = Some(
                split_list(&list)
                    .into_iter()
                    .map(RawUpstream::Url)
                    .collect(),
            );
        }
        if let Some(redis) = set(ENV_REDIS) {
            self.cache.redis = Some(redis);
        }
        if let Some(token) = set(ENV_TOKEN) {
            self.auth.token = Some(token);
        }
    }

    /// Applies command-line settings.
    pub fn apply_overrides(&mut self, overrides: &Overrides) {
        if let Some(listen) = &overrides.listen {
            self.listen = Some(listen.clone());
        }
        if !overrides.upstreams.is_empty() {
            self.upstreams = Some(
                overrides
                    .upstreams
                    .iter()
                    .flat_map(|u| split_list(u))
                    .map(RawUpstream::Url)
                    .collect(),
            );
        }
        if let Some(redis) = &overrides.redis {
            self.cache.redis = Some(redis.clone());
        }
        if overrides.no_cache {
            self.cache.enabled = Some(false);
        }
        if overrides.supervise {
            self.daemon.supervise = Some(true);
        }
        if let Some(path) = &overrides.state_file {
            self.state_file = Some(path.clone());
        }
    }

    /// Applies a JSON merge patch (RFC 7386) and re-reads the result; the error names
    /// the offending field the way serde does.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<RawConfig, ConfigError> {
        let mut merged = serde_json::to_value(self)
            .map_err(|e| ConfigError::invalid("settings", e.to_string()))?;
        merge_patch(&mut merged, patch);
        serde_json::from_value(merged).map_err(|e| ConfigError::invalid("settings", e.to_string()))
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(
                    target.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}
