//! Configuration: a TOML file, `WARMLINE_*` environment variables and command-line
//! flags, merged in that order (flags win), then validated into typed values.
//!
//! The raw, serde-facing shape ([`RawConfig`]) rejects unknown fields so a typo in a
//! config file is an error rather than a silently ignored setting. Validation turns it
//! into [`Config`], whose fields are already `SocketAddr`, `Url`, `Duration` and byte
//! counts; every validation error names the dotted path of the offending field.
//!
//! ```toml
//! listen = "127.0.0.1:11435"
//! upstreams = ["http://127.0.0.1:11434"]
//! origins = ["https://my-app.example"]   # extra browser origins, as OLLAMA_ORIGINS
//!
//! [pool]
//! max_idle_per_host = 256
//! idle_timeout = "90s"
//!
//! [timeouts]
//! connect = "500ms"
//! first_byte = "5m"     # a cold model load can take minutes
//! idle = "5m"           # longest gap between two chunks of a stream
//! drain = "10s"         # how long shutdown waits for in-flight requests
//! health_interval = "2s"
//!
//! [limits]
//! max_body = "64MiB"    # request bodies, except blob uploads
//! max_blob_body = 0     # /api/blobs uploads; 0 means unlimited
//! retry_body = "1MiB"   # bodies held for a retry on another upstream
//!
//! [cache]
//! enabled = true
//! max_size = "256MiB"   # byte budget of the in-process cache
//! ttl_generation = "5m"
//! ttl_embedding = "1h"
//! ttl_show = "1m"
//! sampled = false       # also cache sampled generations (temperature > 0, no seed)
//! coalesce_sampled = false
//! redis = "redis://127.0.0.1:6379"   # optional shared second tier
//! redis_timeout = "5ms"
//!
//! [breaker]             # per upstream host
//! failures = 5          # consecutive failures (connect error, timeout, 5xx) to open
//! open_for = "60s"      # then one probe request decides
//!
//! [concurrency]         # per upstream host and model
//! per_model = 1         # the host's OLLAMA_NUM_PARALLEL
//! staged = 8            # may also wait at the host, so it never idles between
//!                       # answers; 0 = strict
//! queue = 64            # requests that may wait in Warmline beyond that (then 503)
//! max_wait = "30s"
//!
//! [rate_limit]          # per client IP, token bucket (then 429)
//! per_second = 10
//! burst = 20
//! loopback = false      # also limit loopback clients
//!
//! [auth]                # required when listening on a non-loopback address
//! token = "..."         # identity "default" (also WARMLINE_TOKEN)
//! tokens = [{ name = "alice", token = "..." }]   # one identity each; the cache keeps them apart
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

/// The address the gateway listens on when nothing else is configured: Ollama's
/// port plus one, so clients change only the port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11435";
/// Where Ollama listens by default.
pub const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:11434";

/// Requests per model that may wait at an upstream itself beyond what it runs at
/// once: enough to keep a fast host busy between answers (with fewer, a host that
/// answers in a fraction of a millisecond idles while each answer travels back
/// and the next request travels out), few enough that Ollama's own queue per
/// model stays bounded.
pub const DEFAULT_STAGED: usize = 8;

/// Environment variable naming the listen address.
pub const ENV_LISTEN: &str = "WARMLINE_LISTEN";
/// Environment variable naming the upstreams, comma-separated.
pub const ENV_UPSTREAMS: &str = "WARMLINE_UPSTREAMS";
/// Environment variable holding a bearer token (identity "default").
pub const ENV_TOKEN: &str = "WARMLINE_TOKEN";
/// Environment variable naming the shared Redis cache tier.
pub const ENV_REDIS: &str = "WARMLINE_REDIS";

/// A configuration error. The message always names the field it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstreams: Vec<Url>,
    /// Extra allowed browser origins (patterns with `*`), on top of Ollama's built-ins.
    pub origins: Vec<String>,
    pub pool: PoolConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub cache: CacheConfig,
    /// Per-upstream circuit breaker.
    pub breaker: crate::breaker::BreakerConfig,
    /// Per-(host, model) concurrency limit and queue.
    pub concurrency: crate::admission::ConcurrencyConfig,
    /// Per-client-IP rate limit.
    pub rate_limit: crate::admission::RateConfig,
    /// Bearer tokens; empty = no authentication (loopback only).
    pub tokens: Vec<crate::auth::Token>,
}

/// Response cache and coalescing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Byte budget of the in-process tier.
    pub max_bytes: u64,
    pub ttl_generation: Duration,
    pub ttl_embedding: Duration,
    pub ttl_show: Duration,
    /// Cache sampled generations too (off: they are random draws).
    pub sampled: bool,
    /// Coalesce identical sampled requests too (off: N identical sampled requests
    /// usually mean "give me N different answers").
    pub coalesce_sampled: bool,
    /// Shared second tier, e.g. `redis://127.0.0.1:6379`.
    pub redis: Option<Url>,
    /// Longest a Redis read may take before the request goes upstream instead.
    pub redis_timeout: Duration,
}

/// Upstream connection pool settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub max_idle_per_host: usize,
    pub idle_timeout: Duration,
}

/// Every timeout the gateway applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// TCP connect to an upstream.
    pub connect: Duration,
    /// From sending the request to receiving the upstream's response headers.
    pub first_byte: Duration,
    /// Longest silence between two body chunks of an upstream response.
    pub idle: Duration,
    /// How long a graceful shutdown waits for in-flight requests.
    pub drain: Duration,
    /// How often each upstream is probed with `HEAD /`.
    pub health_interval: Duration,
}

/// Request size limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest accepted request body, in bytes (blob uploads excepted).
    pub max_body: u64,
    /// Largest accepted `/api/blobs/*` upload, in bytes; `None` means unlimited.
    pub max_blob_body: Option<u64>,
    /// Request bodies up to this size are held so they can be re-sent to another
    /// upstream if the first fails; larger ones stream through and are not retried.
    pub retry_body: u64,
}

impl Default for Config {
    fn default() -> Self {
        RawConfig::default()
            .validate()
            .unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }
}

/// The file/serde shape of the configuration. Every field is optional; missing ones
/// take their defaults during [`RawConfig::validate`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub upstreams: Option<Vec<String>>,
    pub origins: Option<Vec<String>>,
    #[serde(default)]
    pub pool: RawPool,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub limits: RawLimits,
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
}

#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// One token, identity "default" (also `WARMLINE_TOKEN`, `--token`).
    pub token: Option<String>,
    #[serde(default)]
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

#[derive(Clone, Deserialize, PartialEq)]
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

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrency {
    pub per_model: Option<usize>,
    pub staged: Option<usize>,
    pub queue: Option<usize>,
    pub max_wait: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub per_second: Option<u32>,
    pub burst: Option<u32>,
    pub loopback: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub failures: Option<u32>,
    pub open_for: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub enabled: Option<bool>,
    pub max_size: Option<ByteSize>,
    pub ttl_generation: Option<String>,
    pub ttl_embedding: Option<String>,
    pub ttl_show: Option<String>,
    pub sampled: Option<bool>,
    pub coalesce_sampled: Option<bool>,
    pub redis: Option<String>,
    pub redis_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_idle_per_host: Option<usize>,
    pub idle_timeout: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<String>,
    pub first_byte: Option<String>,
    pub idle: Option<String>,
    pub drain: Option<String>,
    pub health_interval: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body: Option<ByteSize>,
    pub max_blob_body: Option<ByteSize>,
    pub retry_body: Option<ByteSize>,
}

/// A byte count written either as an integer or as a string such as `"64MiB"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

/// Settings given on the command line; they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstreams: Vec<String>,
    pub redis: Option<String>,
    pub no_cache: bool,
}

impl Config {
    /// Loads the configuration the way both binaries do: the TOML `file` if given,
    /// then `WARMLINE_LISTEN` / `WARMLINE_UPSTREAMS`, then `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut raw = match file {
            Some(path) => RawConfig::from_file(path)?,
            None => RawConfig::default(),
        };
        raw.apply_env(|name| std::env::var(name).ok());
        raw.apply_overrides(overrides);
        raw.validate()
    }

    /// [`Config::load`] without command-line overrides.
    pub fn from_env_and_file(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, &Overrides::default())
    }
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
        if let Some(listen) = var(ENV_LISTEN).filter(|v| !v.trim().is_empty()) {
            self.listen = Some(listen);
        }
        if let Some(list) = var(ENV_UPSTREAMS).filter(|v| !v.trim().is_empty()) {
            self.upstreams = Some(split_list(&list));
        }
        if let Some(redis) = var(ENV_REDIS).filter(|v| !v.trim().is_empty()) {
            self.cache.redis = Some(redis);
        }
        if let Some(token) = var(ENV_TOKEN).filter(|v| !v.trim().is_empty()) {
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
                    .collect(),
            );
        }
        if let Some(redis) = &overrides.redis {
            self.cache.redis = Some(redis.clone());
        }
        if overrides.no_cache {
            self.cache.enabled = Some(false);
        }
    }

    /// Turns the raw settings into a [`Config`], filling defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen =
            parse_listen(listen_text).map_err(|message| ConfigError::invalid("listen", message))?;

        let upstream_texts = self
            .upstreams
            .unwrap_or_else(|| vec![DEFAULT_UPSTREAM.to_owned()]);
        if upstream_texts.is_empty() {
            return Err(ConfigError::invalid(
                "upstreams",
                "at least one upstream is required",
            ));
        }
        let mut upstreams = Vec::with_capacity(upstream_texts.len());
        for (i, text) in upstream_texts.iter().enumerate() {
            let url = parse_upstream(text)
                .map_err(|message| ConfigError::invalid(format!("upstreams[{i}]"), message))?;
            if upstreams.contains(&url) {
                return Err(ConfigError::invalid(
                    format!("upstreams[{i}]"),
                    format!("{url} is listed twice"),
                ));
            }
            upstreams.push(url);
        }

        let origins = self.origins.unwrap_or_default();
        for (i, origin) in origins.iter().enumerate() {
            if origin.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("origins[{i}]"),
                    "an origin pattern cannot be empty",
                ));
            }
        }

        let pool = PoolConfig {
            max_idle_per_host: self.pool.max_idle_per_host.unwrap_or(256),
            idle_timeout: duration(
                "pool.idle_timeout",
                self.pool.idle_timeout.as_deref(),
                "90s",
            )?,
        };
        let t = &self.timeouts;
        let timeouts = Timeouts {
            connect: nonzero_duration("timeouts.connect", t.connect.as_deref(), "500ms")?,
            first_byte: nonzero_duration("timeouts.first_byte", t.first_byte.as_deref(), "5m")?,
            idle: nonzero_duration("timeouts.idle", t.idle.as_deref(), "5m")?,
            drain: duration("timeouts.drain", t.drain.as_deref(), "10s")?,
            health_interval: nonzero_duration(
                "timeouts.health_interval",
                t.health_interval.as_deref(),
                "2s",
            )?,
        };
        let max_body = match &self.limits.max_body {
            Some(size) => parse_size("limits.max_body", size)?,
            None => 64 * 1024 * 1024,
        };
        if max_body == 0 {
            return Err(ConfigError::invalid(
                "limits.max_body",
                "must be greater than 0",
            ));
        }
        let max_blob_body = match &self.limits.max_blob_body {
            Some(size) => Some(parse_size("limits.max_blob_body", size)?).filter(|&n| n > 0),
            None => None,
        };
        let retry_body = match &self.limits.retry_body {
            Some(size) => parse_size("limits.retry_body", size)?,
            None => 1024 * 1024,
        };
        let cache = self.cache.validate()?;
        let breaker = crate::breaker::BreakerConfig {
            failures: std::num::NonZeroU32::new(self.breaker.failures.unwrap_or(5))
                .ok_or_else(|| ConfigError::invalid("breaker.failures", "must be at least 1"))?,
            open_for: nonzero_duration(
                "breaker.open_for",
                self.breaker.open_for.as_deref(),
                "60s",
            )?,
        };
        let per_model = self.concurrency.per_model.unwrap_or(1);
        // Slots = what the host runs at once plus what may wait at the host itself.
        let staged = self.concurrency.staged.unwrap_or(DEFAULT_STAGED);
        let concurrency = crate::admission::ConcurrencyConfig {
            per_model: std::num::NonZeroUsize::new(per_model)
                .and_then(|n| n.checked_add(staged))
                .ok_or_else(|| {
                    ConfigError::invalid("concurrency.per_model", "must be at least 1")
                })?,
            queue: self.concurrency.queue.unwrap_or(64),
            max_wait: nonzero_duration(
                "concurrency.max_wait",
                self.concurrency.max_wait.as_deref(),
                "30s",
            )?,
        };
        let rate_defaults = crate::admission::RateConfig::default();
        let rate_limit = crate::admission::RateConfig {
            per_second: std::num::NonZeroU32::new(self.rate_limit.per_second.unwrap_or(10))
                .ok_or_else(|| {
                    ConfigError::invalid("rate_limit.per_second", "must be at least 1")
                })?,
            burst: std::num::NonZeroU32::new(self.rate_limit.burst.unwrap_or(20))
                .ok_or_else(|| ConfigError::invalid("rate_limit.burst", "must be at least 1"))?,
            exempt_loopback: !self.rate_limit.loopback.unwrap_or(false),
            ..rate_defaults
        };
        let mut tokens: Vec<crate::auth::Token> = Vec::new();
        if let Some(token) = self
            .auth
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            tokens.push(crate::auth::Token {
                name: "default".into(),
                secret: token.to_owned(),
            });
        }
        for (i, raw) in self.auth.tokens.iter().enumerate() {
            let field = format!("auth.tokens[{i}]");
            if raw.name.trim().is_empty() || raw.token.trim().len() < 8 {
                return Err(ConfigError::invalid(
                    field,
                    "each token needs a name and a secret of at least 8 characters",
                ));
            }
            if tokens
                .iter()
                .any(|t| t.name == raw.name || t.secret == raw.token)
            {
                return Err(ConfigError::invalid(
                    field,
                    "token names and secrets must be unique",
                ));
            }
            tokens.push(crate::auth::Token {
                name: raw.name.clone(),
                secret: raw.token.clone(),
            });
        }
        if !listen.ip().is_loopback() && tokens.is_empty() {
            return Err(ConfigError::invalid(
                "listen",
                format!(
                    "{listen} is reachable from other machines, so a bearer token is required: \
                     set auth.token (or WARMLINE_TOKEN), or listen on 127.0.0.1"
                ),
            ));
        }
        Ok(Config {
            listen,
            upstreams,
            origins,
            pool,
            timeouts,
            limits: Limits {
                max_body,
                max_blob_body,
                retry_body,
            },
            cache,
            breaker,
            concurrency,
            rate_limit,
            tokens,
        })
    }
}

impl RawCache {
    fn validate(self) -> Result<CacheConfig, ConfigError> {
        let max_bytes = match &self.max_size {
            Some(size) => parse_size("cache.max_size", size)?,
            None => 256 * 1024 * 1024,
        };
        let redis = match self
            .redis
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            None => None,
            Some(text) => {
                let url = Url::parse(text).map_err(|e| {
                    ConfigError::invalid("cache.redis", format!("{text:?} is not a URL: {e}"))
                })?;
                if !matches!(url.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                    return Err(ConfigError::invalid(
                        "cache.redis",
                        format!("{text:?}: expected a redis:// URL"),
                    ));
                }
                Some(url)
            }
        };
        Ok(CacheConfig {
            enabled: self.enabled.unwrap_or(true),
            max_bytes,
            ttl_generation: nonzero_duration(
                "cache.ttl_generation",
                self.ttl_generation.as_deref(),
                "5m",
            )?,
            ttl_embedding: nonzero_duration(
                "cache.ttl_embedding",
                self.ttl_embedding.as_deref(),
                "1h",
            )?,
            ttl_show: nonzero_duration("cache.ttl_show", self.ttl_show.as_deref(), "1m")?,
            sampled: self.sampled.unwrap_or(false),
            coalesce_sampled: self.coalesce_sampled.unwrap_or(false),
            redis,
            redis_timeout: nonzero_duration(
                "cache.redis_timeout",
                self.redis_timeout.as_deref(),
                "5ms",
            )?,
        })
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let text = text.strip_prefix("http://").unwrap_or(text);
    text.trim_end_matches('/')
        .parse::<SocketAddr>()
        .map_err(|_| format!("{text:?} is not an IP:port address (e.g. 127.0.0.1:11435)"))
}

/// Parses an upstream base URL. A bare `host:port` (the `OLLAMA_HOST` habit) gets
/// `http://`; only plain HTTP is supported, as Ollama itself serves only HTTP.
fn parse_upstream(text: &str) -> Result<Url, String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{text:?}: only http:// upstreams are supported (Ollama serves plain HTTP)"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{text:?} must not have a query or fragment"));
    }
    Ok(url)
}

fn duration(field: &str, text: Option<&str>, default: &str) -> Result<Duration, ConfigError> {
    let text = text.unwrap_or(default);
    humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError::invalid(
            field,
            format!("{text:?} is not a duration such as \"500ms\" or \"5m\": {e}"),
        )
    })
}

fn nonzero_duration(
    field: &str,
    text: Option<&str>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let value = duration(field, text, default)?;
    if value.is_zero() {
        return Err(ConfigError::invalid(field, "must be greater than 0"));
    }
    Ok(value)
}

fn parse_size(field: &str, size: &ByteSize) -> Result<u64, ConfigError> {
    let text = match size {
        ByteSize::Bytes(n) => return Ok(*n),
        ByteSize::Text(text) => text.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(ConfigError::invalid(
                field,
                format!("{text:?}: unknown unit (use B, KiB, MiB, GiB, KB, MB or GB)"),
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| ConfigError::invalid(field, format!("{text:?} is not a byte size")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.upstreams[0].as_str(), "http://127.0.0.1:11434/");
        assert_eq!(config.timeouts.connect, Duration::from_millis(500));
        assert_eq!(config.limits.max_body, 64 << 20);
        assert_eq!(config.limits.max_blob_body, None);
    }

    #[test]
    fn flags_override_env_which_overrides_file() {
        let mut raw = RawConfig::from_toml(
            "listen = \"127.0.0.1:1\"\nupstreams = [\"http://10.0.0.1:11434\"]",
        )
        .expect("valid toml");
        raw.apply_env(|name| match name {
            ENV_LISTEN => Some("127.0.0.1:2".into()),
            ENV_UPSTREAMS => Some("127.0.0.1:3, http://127.0.0.1:4".into()),
            _ => None,
        });
        let from_env = raw.clone().validate().expect("valid");
        assert_eq!(from_env.listen.port(), 2);
        assert_eq!(from_env.upstreams.len(), 2);
        assert_eq!(from_env.upstreams[0].as_str(), "http://127.0.0.1:3/");

        raw.apply_overrides(&Overrides {
            listen: Some("127.0.0.1:0".into()),
            upstreams: vec!["http://127.0.0.1:5".into()],
            ..Overrides::default()
        });
        let config = raw.validate().expect("valid");
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.upstreams.len(), 1);
        assert_eq!(config.upstreams[0].port(), Some(5));
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        let err = RawConfig::from_toml("[timeouts]\nconect = \"1s\"").expect_err("typo");
        assert!(err.contains("conect"), "{err}");
    }

    #[test]
    fn validation_errors_name_the_dotted_field() {
        let raw = RawConfig::from_toml("[timeouts]\nconnect = \"soon\"").expect("toml");
        let err = raw.validate().expect_err("bad duration").to_string();
        assert!(err.starts_with("timeouts.connect: "), "{err}");

        let raw =
            RawConfig::from_toml("upstreams = [\"http://a:1\", \"https://b:2\"]").expect("toml");
        let err = raw.validate().expect_err("https").to_string();
        assert!(err.starts_with("upstreams[1]: "), "{err}");

        let raw = RawConfig::from_toml("listen = \"localhost\"").expect("toml");
        assert!(
            raw.validate()
                .expect_err("no port")
                .to_string()
                .starts_with("listen: ")
        );

        let raw = RawConfig::from_toml("[limits]\nmax_body = \"12 parsecs\"").expect("toml");
        let err = raw.validate().expect_err("unit").to_string();
        assert!(err.starts_with("limits.max_body: "), "{err}");
    }

    #[test]
    fn a_non_loopback_listener_needs_a_token() {
        let raw = RawConfig::from_toml("listen = \"0.0.0.0:11435\"").expect("toml");
        let err = raw.validate().expect_err("no token").to_string();
        assert!(
            err.starts_with("listen: ") && err.contains("token"),
            "{err}"
        );
        let mut raw = RawConfig::from_toml("listen = \"0.0.0.0:11435\"").expect("toml");
        raw.apply_env(|name| (name == ENV_TOKEN).then(|| "a-long-secret".to_owned()));
        let config = raw.validate().expect("valid with a token");
        assert_eq!(config.tokens[0].name, "default");
        assert!(
            !format!("{config:?}").contains("a-long-secret"),
            "secrets never in Debug"
        );
    }

    #[test]
    fn cache_settings_validate() {
        let config = Config::default();
        assert!(config.cache.enabled);
        assert_eq!(config.cache.max_bytes, 256 << 20);
        assert_eq!(config.cache.ttl_embedding, Duration::from_secs(3600));
        assert_eq!(config.cache.redis, None);
        let raw = RawConfig::from_toml("[cache]\nredis = \"http://x\"").expect("toml");
        let err = raw.validate().expect_err("not redis").to_string();
        assert!(err.starts_with("cache.redis: "), "{err}");
        let raw = RawConfig::from_toml("[cache]\nttl_show = \"0s\"").expect("toml");
        assert!(
            raw.validate()
                .expect_err("zero")
                .to_string()
                .starts_with("cache.ttl_show: ")
        );
    }

    #[test]
    fn sizes_accept_integers_and_units() {
        let raw = RawConfig::from_toml("[limits]\nmax_body = \"2MiB\"\nmax_blob_body = 1000")
            .expect("toml");
        let config = raw.validate().expect("valid");
        assert_eq!(config.limits.max_body, 2 << 20);
        assert_eq!(config.limits.max_blob_body, Some(1000));
    }
}
