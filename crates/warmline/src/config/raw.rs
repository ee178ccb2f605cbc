//! The serde shape of the configuration: what a TOML file, the environment, the
//! command line and a settings change write, before validation.
//!
//! Every field is optional (a missing one takes its default during validation) and
//! unknown fields are refused, so a typo is an error and not a setting silently
//! ignored. The same shape serializes back out ([`RawConfig`] is what
//! `GET /warmline/settings` returns), and a settings change is a JSON merge patch
//! (RFC 7386) on it: objects merge key by key, `null` removes a key (back to its
//! default), anything else replaces.
//!
//! # Where it sits
//!
//! ```text
//!   load:    TOML file -> from_file -> apply_env -> apply_overrides -> validate -> Config
//!   change:  Config -> Config::to_raw -> patched(patch) -> validate -> new Config
//! ```
//!
//! `Config::load` runs the top row: file, then `WARMLINE_*` variables, then
//! command-line flags, each overriding the one before. A settings change (the
//! desktop app, or `PUT /warmline/settings`) goes round the loop: the configuration
//! in force is written back out with every value explicit (`Config::to_raw`), the
//! patch is merged into it, and the result is validated as a whole, so it applies
//! completely or not at all.
//!
//! # Design
//!
//! - **Every field is an `Option`** so that "not set" and "set to the default" stay
//!   apart until validation, the one place that holds the defaults (the docs below
//!   repeat them).
//! - **Durations and sizes are strings** (`"5m"`, `"64MiB"`) so the file reads the way
//!   people write them; `values` parses them and `validate` names the field when one
//!   does not parse.
//! - **Nothing is checked here** beyond the shape: types, and field names. A value
//!   that parses but is out of range (`limits.max_header = "1GiB"`) is caught by
//!   validation, with the dotted field name in the error.
//! - **Secrets** (`auth`) serialize like everything else, because `to_raw` must
//!   round-trip; they are masked only in `Debug` output and by
//!   `Config::to_raw_redacted`, which is what is shown to anyone.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::values::split_list;
use super::{
    ConfigError, ENV_LISTEN, ENV_OLLAMA_ORIGINS, ENV_REDIS, ENV_TOKEN, ENV_UPSTREAMS, Overrides,
};

/// The whole configuration, as written.
///
/// `RawConfig::default()` is "nothing set", which validates to the built-in
/// defaults. Each section is a TOML table (`[cache]`); a missing table is a section
/// with nothing set. Unknown keys, at the top level and in every section, are
/// errors.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The address to serve on, in the forms `OLLAMA_HOST` takes: `IP:port`, an
    /// address alone (port 11435), `:port` (every interface), `localhost[:port]`,
    /// each optionally as an `http://` URL; default `127.0.0.1:11435`. An address
    /// other machines can reach requires an `auth` token. Also `WARMLINE_LISTEN` and
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The Ollama hosts; default one, `http://127.0.0.1:11434`. An empty list and a
    /// host listed twice are errors. With `daemon.supervise`, the first host is where
    /// Warmline runs `ollama serve`. Also `WARMLINE_UPSTREAMS` and `--upstream`,
    /// which replace the list rather than extend it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Vec<RawUpstream>>,
    /// Extra browser origins allowed to call the API, as patterns that may contain
    /// `*`, on top of Ollama's built-in list; the entries of `OLLAMA_ORIGINS` are
    /// added to them. An empty pattern is an error.
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
    #[serde(default)]
    pub monitoring: RawMonitoring,
    /// One line per finished request is appended here (none when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<String>,
    /// Where the warm set is kept between runs (`warmline serve` and the app
    /// default it to `$XDG_STATE_HOME/warmline/state.json`; unset in a library =
    /// in memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
}

/// An upstream: a URL, or a table with its weight and parallelism.
///
/// Untagged: a TOML/JSON string is the `Url` form, a table the `Table` form. Written
/// back out (`Config::to_raw`), a host with weight 1 and no stated parallelism is a
/// plain string, any other a table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum RawUpstream {
    /// `"http://10.0.0.5:11434"`, optionally followed by space-separated `weight=N`,
    /// `parallel=N`, `kind=openai` and `api_key=KEY` (`"http://10.0.0.5:11434
    /// weight=2"`), the form `--upstream` and `WARMLINE_UPSTREAMS` take. A bare
    /// `host:port` gets `http://`; only plain HTTP is accepted.
    Url(String),
    /// `{ url = "...", weight = 2, parallel = 4, kind = "openai", api_key = "..." }`.
    Table {
        /// The host's base URL, as in the string form (without options).
        url: String,
        /// Share of the traffic relative to the other hosts; default 1, at least 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        /// The host's `OLLAMA_NUM_PARALLEL`, when it differs from
        /// `concurrency.per_model`; at least 1, at most `MAX_PARALLEL`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parallel: Option<usize>,
        /// `ollama` (the default) or `openai` (an engine with only the
        /// OpenAI-compatible API).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        /// A bearer token the host wants; shown masked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
    },
}

impl RawUpstream {
    /// The URL text as written. For the string form this is the whole string,
    /// including any inline `weight=`/`parallel=` options (validation splits them
    /// off).
    pub fn url(&self) -> &str {
        match self {
            RawUpstream::Url(url) | RawUpstream::Table { url, .. } => url,
        }
    }
}

/// Marks the optional fields of the sections below.
///
/// Declares one section struct: every field an `Option`, left out when serialising
/// while unset, unknown fields refused. The macro's pattern takes no per-field
/// attributes, so each section's own doc lists its fields with their defaults and
/// bounds (as applied by validation).
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
    /// `[pool]`: the pooled keep-alive connections to the upstreams.
    ///
    /// - `max_idle_per_host`: idle connections kept per host (default 256, at most
    ///   `MAX_CONNECTIONS`).
    /// - `idle_timeout`: how long an idle one is kept (default `"90s"`).
    RawPool { max_idle_per_host: usize, idle_timeout: String }
);
section!(
    /// `[timeouts]`: every deadline the gateway applies, as duration strings. All must
    /// be greater than zero except `drain`.
    ///
    /// - `connect`: TCP connect to an upstream (default `"500ms"`).
    /// - `first_byte`: from sending a request to the upstream's response headers
    ///   (default `"5m"`: a cold model load can take minutes).
    /// - `idle`: longest silence between two chunks of an upstream response
    ///   (default `"5m"`).
    /// - `header`: a client's request line and headers, from its first byte (default
    ///   `"10s"`, then 408).
    /// - `body`: longest silence between two chunks of a request body (default
    ///   `"30s"`, then 408).
    /// - `drain`: how long shutdown waits for requests in flight (default `"10s"`).
    /// - `health_interval`: how often each upstream is probed (default `"1s"`).
    /// - `client_idle`: how long an idle keep-alive client connection is kept
    ///   (default `"5m"`).
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
    /// `[limits]`: request sizes and connection counts. Sizes are a number of bytes or
    /// a string with a unit (`"64MiB"`).
    ///
    /// - `max_body`: largest request body, blob uploads excepted (default `"64MiB"`,
    ///   more than 0; then 413).
    /// - `max_blob_body`: largest `/api/blobs` upload (default 0, meaning unlimited).
    /// - `retry_body`: bodies up to this size are held so they can be re-sent to
    ///   another host (default `"1MiB"`).
    /// - `max_header`: request line plus headers (default `"64KiB"`, between 1 KiB and
    ///   `MAX_HEADER_LIMIT`; then 431).
    /// - `max_connections`: client connections at once (default derived from the
    ///   process's file-descriptor limit; at least 1, at most `MAX_CONNECTIONS`).
    RawLimits {
        max_body: ByteSize,
        max_blob_body: ByteSize,
        retry_body: ByteSize,
        max_header: ByteSize,
        max_connections: usize,
    }
);
section!(
    /// `[compression]`: `enabled` (default true) compresses whole (non-streaming)
    /// answers when the client accepts it.
    RawCompression { enabled: bool }
);
section!(
    /// `[failover]`: `enabled` (default true) retries a request once on another host
    /// when the first fails before anything reached the client.
    RawFailover { enabled: bool }
);
section!(
    /// `[cache]`: the response cache.
    ///
    /// - `enabled` (default true; `--no-cache` sets false).
    /// - `max_size`: byte budget of the in-process tier (default `"256MiB"`).
    /// - `ttl_generation`, `ttl_embedding`, `ttl_show`: entry lifetimes by kind
    ///   (defaults `"5m"`, `"1h"`, `"1m"`; each more than zero).
    /// - `sampled`: also cache sampled generations (temperature above 0, no seed);
    ///   default false, as they are random draws.
    /// - `coalesce_sampled`: let identical sampled requests share one generation;
    ///   default false (N identical sampled requests usually want N answers).
    /// - `redis`: URL of the shared second tier (`redis://`, `redis+unix://` or
    ///   `unix://`; no TLS, so `rediss://` is refused); unset or blank for none. Also `WARMLINE_REDIS`
    ///   and `--redis`.
    /// - `redis_timeout`: longest Redis read before going upstream (default `"5ms"`).
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
    /// `[breaker]`: the per-host circuit breaker. `enabled` (default true);
    /// `failures`, consecutive failures that open it (default 5, at least 1);
    /// `open_for`, how long it stays open before a probe (default `"60s"`).
    RawBreaker { enabled: bool, failures: u32, open_for: String }
);
section!(
    /// `[concurrency]`: the per-(host, model) limit and Warmline's queue in front of it.
    ///
    /// - `enabled` (default true).
    /// - `per_model`: requests each host runs at once per model, its
    ///   `OLLAMA_NUM_PARALLEL`; unset (the default) finds it per host. 1 to
    ///   `MAX_PARALLEL`.
    /// - `staged`: further requests per model that may wait at the host itself
    ///   (default `DEFAULT_STAGED`, 0).
    /// - `queue`: requests per model that may wait in Warmline beyond that (default
    ///   64; then 503).
    /// - `max_wait`: longest wait in that queue (default `"30s"`).
    /// - `discover`: read a local daemon's `OLLAMA_NUM_PARALLEL` from its environment
    ///   (default true).
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
    ///
    /// - `supervise`: start (or adopt) and watch a daemon at the first upstream's
    ///   address, which must then be on this machine (default false; `--supervise`).
    /// - `executable`: the `ollama` binary (default: found on `PATH`).
    /// - `keep_alive`, `num_parallel`, `max_loaded_models`: the daemon's
    ///   `OLLAMA_KEEP_ALIVE` (default `"30m"`), `OLLAMA_NUM_PARALLEL` (default 2) and
    ///   `OLLAMA_MAX_LOADED_MODELS` (default 0: Ollama decides).
    /// - `env`: any other variables for it; names of letters, digits and `_`, and not
    ///   one of the four Warmline sets itself (`OLLAMA_HOST` and the three above).
    /// - `ready_timeout`: longest wait for a started daemon to answer (default `"60s"`).
    /// - `stop_grace`: between SIGTERM and SIGKILL (default `"10s"`).
    /// - `restart_backoff`, `restart_backoff_max`: first delay before a restart,
    ///   doubling up to the max (defaults `"500ms"`, `"30s"`; max not below first).
    /// - `crash_loop_restarts`, `crash_loop_window`: this many unexpected exits within
    ///   the window stop the restarts (defaults 5, `"60s"`; 0 restarts counts as 1).
    /// - `log_file`: a rotated copy of its output (default none).
    /// - `log_lines`: lines of output kept in memory (default 1000, at most
    ///   `MAX_LOG_LINES`; fewer than 10 counts as 10).
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
    ///
    /// - `models`: the warm set until the state file has one (model names,
    ///   normalised; duplicates dropped).
    /// - `keep_alive`: sent with warm loads (default `"-1"`, for ever).
    /// - `pin`: add that `keep_alive` to requests for warm models that omit it
    ///   (default true).
    /// - `mask_cold_starts`: send a stream's headers at once while its model loads
    ///   (default true).
    /// - `auto`: also keep loaded, by prediction, the models the person is likely
    ///   to use next, learned from the requests served (default true).
    /// - `budget`: the memory the warm models (chosen and predicted) may take:
    ///   `"auto"` (the default: what the machine can spare, with headroom), a size
    ///   (`"12GiB"`), or a share of the machine's memory (`"50%"`).
    RawWarmth {
        models: Vec<String>,
        keep_alive: String,
        pin: bool,
        mask_cold_starts: bool,
        auto: bool,
        budget: ByteSize,
    }
);
section!(
    /// `[alerts]`: the thresholds of `/warmline/health`'s alerts
    ///
    /// Judged over the last `window` (default `"60s"`): average `latency` above
    /// (default `"1s"`) and `error_rate` above (default 0.05), both once
    /// `min_requests` (default 20) were seen; cache `hit_rate` below (default 0.5)
    /// once `min_lookups` (default 100) were seen. Rates are shares from 0 to 1.
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
    ///
    /// `token_file`: where the admin credential is kept (default
    /// `$XDG_STATE_HOME/warmline/admin-token`, created on first start); `""` closes
    /// the control plane to HTTP. `origins`: browser origins that may use it (none by
    /// default; `"*"` and empty patterns are refused).
    RawAdmin { token_file: String, origins: Vec<String> }
);
section!(
    /// `[monitoring]`: a second listener for load balancers and Prometheus
    ///
    /// `listen`: an address (the forms of `listen`) that serves only
    /// `/warmline/health`, `/warmline/ready` and `/metrics`, without any credential,
    /// and nothing else; unset (the default) for none. It stays open through a
    /// drain, so a balancer sees `/warmline/ready` turn 503 before the port closes.
    RawMonitoring { listen: String }
);
section!(
    /// `[rate_limit]`: a token bucket per client IP (then 429). `enabled` (default
    /// true), `per_second` (default 10) and `burst` (default 20), both at least 1;
    /// `loopback`: also limit clients on this machine (default false).
    RawRateLimit { enabled: bool, per_second: u32, burst: u32, loopback: bool }
);

/// `[auth]`. Secrets never appear in `Debug` output.
///
/// Bearer tokens clients must send; none means no authentication, which is only
/// accepted while listening on a loopback address. Each token is an identity, and
/// the cache never shares answers between identities. The gateway's settings
/// changes refuse this section: tokens come from the file or `WARMLINE_TOKEN`.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// One token, identity "default" (also `WARMLINE_TOKEN`).
    ///
    /// At least 8 characters after trimming; blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Named tokens, one identity each; names and secrets must be unique.
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
    /// The identity, which also partitions the cache; not blank.
    pub name: String,
    /// The secret, at least 8 characters. Masked in `Debug` output.
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
///
/// Units are decimal (`KB`, `MB`, `GB`, `TB`, or just `K`...) or binary (`KiB`,
/// `MiB`, `GiB`, `TiB`), case-insensitive, after a whole number; at most 1 TiB.
/// Written back out in the largest binary unit that divides the value exactly, else
/// as a plain number of bytes.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ByteSize {
    /// A plain number of bytes: `max_blob_body = 0`.
    Bytes(u64),
    /// A number with a unit: `max_body = "64MiB"` (a bare `"1024"` is bytes too).
    Text(String),
}

impl RawConfig {
    /// Reads and parses a TOML config file.
    ///
    /// Errors: `ConfigError::Read` when the file cannot be read, `ConfigError::Parse`
    /// (with TOML's message) when it is not valid TOML or not this shape; both name
    /// the path. Values are not validated yet.
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
    ///
    /// Four variables, each overriding the file: `WARMLINE_LISTEN`,
    /// `WARMLINE_UPSTREAMS` (comma-separated; replaces the whole list),
    /// `WARMLINE_REDIS` and `WARMLINE_TOKEN` (the "default" identity's token); and
    /// Ollama's `OLLAMA_ORIGINS` (comma-separated), whose entries are added to
    /// `origins`. A variable that is unset or blank leaves the setting alone.
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
        if let Some(list) = set(ENV_OLLAMA_ORIGINS) {
            let origins = self.origins.get_or_insert_with(Vec::new);
            for origin in split_list(&list) {
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        }
    }

    /// Applies command-line settings.
    ///
    /// They win over the file and the environment. `--upstream` may be repeated, and
    /// each value may itself be comma-separated; together they replace the list.
    /// `--no-cache` and `--supervise` can only switch their setting one way (off
    /// and on respectively); leaving them out keeps what the file says.
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
    ///
    /// `self` is not changed. The error is a `ConfigError::Invalid` for the field
    /// `settings` (an unknown key, or a value of the wrong type). The result is still
    /// raw: call `validate` on it before using it.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<RawConfig, ConfigError> {
        let mut merged = serde_json::to_value(self)
            .map_err(|e| ConfigError::invalid("settings", e.to_string()))?;
        merge_patch(&mut merged, patch);
        serde_json::from_value(merged).map_err(|e| ConfigError::invalid("settings", e.to_string()))
    }
}

/// RFC 7386: objects merge recursively, `null` deletes, anything else replaces.
///
/// Arrays are values like any other, so a patch replaces a list whole (there is no
/// "append"). A patch that is not an object replaces `target` entirely; a patch
/// object applied to a non-object first turns it into `{}`.
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
