//! Validation: [`RawConfig`] → [`Config`], filling defaults and naming the dotted
//! field of the first problem. The way back is `written`.

use std::num::{NonZeroU32, NonZeroUsize};

use url::Url;

use super::raw::*;
use super::values::*;
use super::*;

impl RawConfig {
    /// Turns the raw settings into a [`Config`], filling defaults.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen =
            parse_listen(listen_text).map_err(|message| ConfigError::invalid("listen", message))?;
        let upstreams = upstreams(self.upstreams)?;

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
            max_idle_per_host: count(
                "pool.max_idle_per_host",
                self.pool.max_idle_per_host,
                256,
                MAX_CONNECTIONS,
            )?,
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
            header: nonzero_duration("timeouts.header", t.header.as_deref(), "10s")?,
            body: nonzero_duration("timeouts.body", t.body.as_deref(), "30s")?,
            drain: duration("timeouts.drain", t.drain.as_deref(), "10s")?,
            health_interval: nonzero_duration(
                "timeouts.health_interval",
                t.health_interval.as_deref(),
                "1s",
            )?,
            client_idle: nonzero_duration("timeouts.client_idle", t.client_idle.as_deref(), "5m")?,
        };
        let limits = self.limits.validate()?;
        let cache = self.cache.validate()?;
        let breaker = super::BreakerConfig {
            enabled: self.breaker.enabled.unwrap_or(true),
            failures: NonZeroU32::new(count(
                "breaker.failures",
                self.breaker.failures,
                5,
                MAX_COUNT,
            )?)
            .ok_or_else(|| ConfigError::invalid("breaker.failures", "must be at least 1"))?,
            open_for: nonzero_duration(
                "breaker.open_for",
                self.breaker.open_for.as_deref(),
                "60s",
            )?,
        };
        let concurrency = Concurrency {
            enabled: self.concurrency.enabled.unwrap_or(true),
            per_model: match self.concurrency.per_model {
                None => None,
                Some(n) => Some(
                    NonZeroUsize::new(count("concurrency.per_model", Some(n), n, MAX_PARALLEL)?)
                        .ok_or_else(|| {
                            ConfigError::invalid("concurrency.per_model", "must be at least 1")
                        })?,
                ),
            },
            staged: count(
                "concurrency.staged",
                self.concurrency.staged,
                DEFAULT_STAGED,
                MAX_PARALLEL,
            )?,
            discover: self.concurrency.discover.unwrap_or(true),
            queue: count(
                "concurrency.queue",
                self.concurrency.queue,
                64,
                MAX_COUNT as usize,
            )?,
            max_wait: nonzero_duration(
                "concurrency.max_wait",
                self.concurrency.max_wait.as_deref(),
                "30s",
            )?,
        };
        let rate_limit = super::RateConfig {
            enabled: self.rate_limit.enabled.unwrap_or(true),
            per_second: NonZeroU32::new(count(
                "rate_limit.per_second",
                self.rate_limit.per_second,
                10,
                MAX_COUNT,
            )?)
            .ok_or_else(|| ConfigError::invalid("rate_limit.per_second", "must be at least 1"))?,
            burst: NonZeroU32::new(count(
                "rate_limit.burst",
                self.rate_limit.burst,
                20,
                MAX_COUNT,
            )?)
            .ok_or_else(|| ConfigError::invalid("rate_limit.burst", "must be at least 1"))?,
            exempt_loopback: !self.rate_limit.loopback.unwrap_or(false),
            ..super::RateConfig::default()
        };
        let tokens = self.auth.validate()?;
        if !listen.ip().is_loopback() && tokens.is_empty() {
            return Err(ConfigError::invalid(
                "listen",
                format!(
                    "{listen} is reachable from other machines, so a bearer token is required: \
                     set auth.token (or WARMLINE_TOKEN), or listen on 127.0.0.1"
                ),
            ));
        }
        let daemon = self.daemon.validate()?;
        if daemon.supervise
            && let Some(first) = upstreams.first()
            && !is_local(&first.url)
        {
            return Err(ConfigError::invalid(
                "daemon.supervise",
                format!(
                    "the first upstream ({}) must be on this machine (127.0.0.1 or localhost) \
                     for Warmline to start Ollama there",
                    first.name()
                ),
            ));
        }
        let warmth = self.warmth.validate()?;
        let alerts = self.alerts.validate()?;
        let admin = self.admin.validate()?;
        let monitoring = match self.monitoring.listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let addr = parse_listen(text)
                    .map_err(|message| ConfigError::invalid("monitoring.listen", message))?;
                if addr == listen && addr.port() != 0 {
                    return Err(ConfigError::invalid(
                        "monitoring.listen",
                        format!("{addr} is the gateway's own listen address: pick another port"),
                    ));
                }
                Some(addr)
            }
        };
        let path = |text: Option<&str>| {
            text.map(str::trim)
                .filter(|p| !p.is_empty())
                .map(std::path::PathBuf::from)
        };
        let state_file = path(self.state_file.as_deref());
        let access_log = path(self.access_log.as_deref());
        Ok(Config {
            listen,
            upstreams,
            origins,
            pool,
            timeouts,
            limits,
            compression: self.compression.enabled.unwrap_or(true),
            failover: self.failover.enabled.unwrap_or(true),
            cache,
            breaker,
            concurrency,
            rate_limit,
            tokens,
            daemon,
            warmth,
            alerts,
            state_file,
            access_log,
            admin,
            monitoring,
        })
    }
}

impl RawAdmin {
    fn validate(self) -> Result<AdminConfig, ConfigError> {
        let origins = self.origins.unwrap_or_default();
        for (i, origin) in origins.iter().enumerate() {
            if origin.trim().is_empty() || origin.trim() == "*" {
                return Err(ConfigError::invalid(
                    format!("admin.origins[{i}]"),
                    "name each origin that may use the control plane; \"*\" and empty \
                     patterns are not accepted",
                ));
            }
        }
        let token_file = match self.token_file.as_deref().map(str::trim) {
            Some("") => None,
            Some(path) => Some(std::path::PathBuf::from(path)),
            None => default_admin_token_file(),
        };
        Ok(AdminConfig {
            token_file,
            origins,
        })
    }
}

/// Tuned defaults for a daemon Warmline starts: Ollama's 5-minute keep-alive made
/// half an hour (the warm set is pinned separately, this is for everything else),
/// two requests at once per model instead of one, Ollama's own choice of how many
/// models fit.
pub(super) const DAEMON_KEEP_ALIVE: &str = "30m";
pub(super) const DAEMON_NUM_PARALLEL: usize = 2;

/// Variables a daemon gets from Warmline itself, which `daemon.env` cannot set.
const RESERVED_ENV: &[&str] = &[
    "OLLAMA_HOST",
    "OLLAMA_KEEP_ALIVE",
    "OLLAMA_NUM_PARALLEL",
    "OLLAMA_MAX_LOADED_MODELS",
];

impl RawDaemon {
    fn validate(self) -> Result<DaemonConfig, ConfigError> {
        let path = |text: Option<String>| {
            text.map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .map(std::path::PathBuf::from)
        };
        for name in self.env.iter().flatten().map(|(name, _)| name) {
            let field = format!("daemon.env.{name}");
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::invalid(
                    field,
                    "not an environment variable name",
                ));
            }
            if RESERVED_ENV.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    field,
                    "set by Warmline from daemon.keep_alive, daemon.num_parallel, \
                     daemon.max_loaded_models and the first upstream's address",
                ));
            }
        }
        let restart_backoff = nonzero_duration(
            "daemon.restart_backoff",
            self.restart_backoff.as_deref(),
            "500ms",
        )?;
        let restart_backoff_max = nonzero_duration(
            "daemon.restart_backoff_max",
            self.restart_backoff_max.as_deref(),
            "30s",
        )?;
        if restart_backoff_max < restart_backoff {
            return Err(ConfigError::invalid(
                "daemon.restart_backoff_max",
                "must not be shorter than daemon.restart_backoff",
            ));
        }
        Ok(DaemonConfig {
            supervise: self.supervise.unwrap_or(false),
            executable: path(self.executable),
            keep_alive: keep_alive(
                "daemon.keep_alive",
                self.keep_alive.as_deref(),
                DAEMON_KEEP_ALIVE,
            )?,
            num_parallel: NonZeroUsize::new(count(
                "daemon.num_parallel",
                self.num_parallel,
                DAEMON_NUM_PARALLEL,
                MAX_PARALLEL,
            )?)
            .ok_or_else(|| ConfigError::invalid("daemon.num_parallel", "must be at least 1"))?,
            max_loaded_models: count(
                "daemon.max_loaded_models",
                self.max_loaded_models,
                0,
                MAX_PARALLEL,
            )?,
            env: self.env.unwrap_or_default(),
            ready_timeout: nonzero_duration(
                "daemon.ready_timeout",
                self.ready_timeout.as_deref(),
                "60s",
            )?,
            stop_grace: duration("daemon.stop_grace", self.stop_grace.as_deref(), "10s")?,
            restart_backoff,
            restart_backoff_max,
            crash_loop_restarts: count(
                "daemon.crash_loop_restarts",
                self.crash_loop_restarts,
                5,
                MAX_COUNT,
            )?
            .max(1),
            crash_loop_window: nonzero_duration(
                "daemon.crash_loop_window",
                self.crash_loop_window.as_deref(),
                "60s",
            )?,
            log_file: path(self.log_file),
            log_lines: count("daemon.log_lines", self.log_lines, 1000, MAX_LOG_LINES)?.max(10),
        })
    }
}

impl RawAlerts {
    fn validate(self) -> Result<super::AlertConfig, ConfigError> {
        let share = |field: &str, value: Option<f64>, default: f64| {
            let value = value.unwrap_or(default);
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(ConfigError::invalid(
                    field,
                    format!("{value} is not between 0 and 1"),
                ))
            }
        };
        Ok(super::AlertConfig {
            latency: nonzero_duration("alerts.latency", self.latency.as_deref(), "1s")?,
            error_rate: share("alerts.error_rate", self.error_rate, 0.05)?,
            hit_rate: share("alerts.hit_rate", self.hit_rate, 0.5)?,
            min_requests: self.min_requests.unwrap_or(20),
            min_lookups: self.min_lookups.unwrap_or(100),
            window: nonzero_duration("alerts.window", self.window.as_deref(), "60s")?,
        })
    }
}

impl RawWarmth {
    fn validate(self) -> Result<WarmthConfig, ConfigError> {
        let mut models = Vec::new();
        for (i, name) in self.models.iter().flatten().enumerate() {
            let model = crate::cache::key::normalise_model_name(name).map_err(|_| {
                ConfigError::invalid(
                    format!("warmth.models[{i}]"),
                    format!("{name:?} is not a model name"),
                )
            })?;
            if !models.contains(&model) {
                models.push(model);
            }
        }
        Ok(WarmthConfig {
            models,
            keep_alive: keep_alive("warmth.keep_alive", self.keep_alive.as_deref(), "-1")?,
            pin: self.pin.unwrap_or(true),
            mask_cold_starts: self.mask_cold_starts.unwrap_or(true),
            auto: self.auto.unwrap_or(true),
            budget: budget(self.budget.as_ref())?,
        })
    }
}

/// `warmth.budget`: `"auto"`, a byte size, or a share of memory (`"50%"`).
fn budget(value: Option<&ByteSize>) -> Result<super::Budget, ConfigError> {
    const FIELD: &str = "warmth.budget";
    match value {
        None => Ok(super::Budget::Auto),
        Some(ByteSize::Text(text)) if text.trim().eq_ignore_ascii_case("auto") => {
            Ok(super::Budget::Auto)
        }
        Some(ByteSize::Text(text)) if text.trim().ends_with('%') => {
            let number = text.trim().trim_end_matches('%').trim();
            match number.parse::<f64>() {
                Ok(percent) if percent > 0.0 && percent <= 100.0 => {
                    Ok(super::Budget::Percent(percent))
                }
                _ => Err(ConfigError::invalid(
                    FIELD,
                    format!("{text:?}: a share is more than 0 % and at most 100 %"),
                )),
            }
        }
        Some(size) => Ok(super::Budget::Bytes(super::values::size(
            FIELD,
            Some(size),
            0,
        )?)),
    }
}

/// Whether an upstream URL names this machine.
fn is_local(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// An upstream's options, as written (in a table, or after its URL inline).
#[derive(Default)]
struct UpstreamOptions<'a> {
    weight: Option<u32>,
    parallel: Option<usize>,
    kind: Option<&'a str>,
    api_key: Option<&'a str>,
}

/// An upstream written as one string, as `--upstream` and `WARMLINE_UPSTREAMS`
/// take it: the URL, then optional `weight=N`, `parallel=N`, `kind=openai` and
/// `api_key=KEY`, separated by spaces (`"http://10.0.0.5:11434 weight=2
/// parallel=4"`).
fn inline_upstream<'a>(
    text: &'a str,
    field: &str,
) -> Result<(&'a str, UpstreamOptions<'a>), ConfigError> {
    let mut words = text.split_whitespace();
    let url = words.next().unwrap_or_default();
    let mut options = UpstreamOptions::default();
    for word in words {
        let number = |key: &str, value: &str| {
            value.parse::<u32>().map_err(|_| {
                ConfigError::invalid(
                    format!("{field}.{key}"),
                    format!("{value:?} is not a whole number"),
                )
            })
        };
        match word.split_once('=') {
            Some(("weight", value)) => options.weight = Some(number("weight", value)?),
            Some(("parallel", value)) => {
                options.parallel = Some(number("parallel", value)? as usize);
            }
            Some(("kind", value)) => options.kind = Some(value),
            Some(("api_key", value)) => options.api_key = Some(value),
            _ => {
                // The word may be a key given in the wrong place: never echo it.
                let shown = if word.len() > 24 { "an option" } else { word };
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "{shown:?} is not an upstream option (weight=N, parallel=N, kind=ollama|openai, api_key=KEY)"
                    ),
                ));
            }
        }
    }
    Ok((url, options))
}

fn upstreams(raw: Option<Vec<RawUpstream>>) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let raw = raw.unwrap_or_else(|| vec![RawUpstream::Url(DEFAULT_UPSTREAM.to_owned())]);
    if raw.is_empty() {
        return Err(ConfigError::invalid(
            "upstreams",
            "at least one upstream is required",
        ));
    }
    let mut upstreams: Vec<UpstreamConfig> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let field = format!("upstreams[{i}]");
        let (url, options) = match entry {
            RawUpstream::Url(text) => inline_upstream(text, &field)?,
            RawUpstream::Table {
                url,
                weight,
                parallel,
                kind,
                api_key,
            } => (
                url.as_str(),
                UpstreamOptions {
                    weight: *weight,
                    parallel: *parallel,
                    kind: kind.as_deref(),
                    api_key: api_key.as_deref(),
                },
            ),
        };
        let UpstreamOptions {
            weight,
            parallel,
            kind,
            api_key,
        } = options;
        let kind = match kind {
            None => UpstreamKind::Ollama,
            Some(text) => UpstreamKind::parse(text).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{field}.kind"),
                    format!("{text:?} is not an upstream kind (ollama or openai)"),
                )
            })?,
        };
        let api_key = match api_key {
            None => None,
            // Sent as `Authorization: Bearer KEY`: visible ASCII only.
            Some(key) if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(ConfigError::invalid(
                    format!("{field}.api_key"),
                    "must be non-empty printable ASCII without spaces",
                ));
            }
            Some(key) => Some(ApiKey::new(key)),
        };
        let url =
            parse_upstream(url).map_err(|message| ConfigError::invalid(field.clone(), message))?;
        if upstreams.iter().any(|u| u.url == url) {
            return Err(ConfigError::invalid(
                field,
                format!("{} is listed twice", redacted(&url)),
            ));
        }
        let weight = NonZeroU32::new(count(&format!("{field}.weight"), weight, 1, MAX_COUNT)?)
            .ok_or_else(|| ConfigError::invalid(format!("{field}.weight"), "must be at least 1"))?;
        let parallel = match parallel {
            None => None,
            Some(n) => Some(
                NonZeroUsize::new(count(
                    &format!("{field}.parallel"),
                    Some(n),
                    1,
                    MAX_PARALLEL,
                )?)
                .ok_or_else(|| {
                    ConfigError::invalid(format!("{field}.parallel"), "must be at least 1")
                })?,
            ),
        };
        upstreams.push(UpstreamConfig {
            url,
            weight,
            parallel,
            kind,
            api_key,
        });
    }
    Ok(upstreams)
}

impl RawLimits {
    fn validate(&self) -> Result<Limits, ConfigError> {
        let max_body = size("limits.max_body", self.max_body.as_ref(), 64 << 20)?;
        if max_body == 0 {
            return Err(ConfigError::invalid(
                "limits.max_body",
                "must be greater than 0",
            ));
        }
        let max_blob_body = Some(size(
            "limits.max_blob_body",
            self.max_blob_body.as_ref(),
            0,
        )?)
        .filter(|&n| n > 0);
        let retry_body = size("limits.retry_body", self.retry_body.as_ref(), 1 << 20)?;
        let max_header = size("limits.max_header", self.max_header.as_ref(), 64 << 10)?;
        if !(1024..=MAX_HEADER_LIMIT).contains(&max_header) {
            return Err(ConfigError::invalid(
                "limits.max_header",
                format!("must be between 1KiB and {}KiB", MAX_HEADER_LIMIT >> 10),
            ));
        }
        let max_connections = match self.max_connections {
            Some(0) => {
                return Err(ConfigError::invalid(
                    "limits.max_connections",
                    "must be at least 1",
                ));
            }
            Some(n) => count("limits.max_connections", Some(n), n, MAX_CONNECTIONS)?,
            None => crate::sys::os::default_max_connections().min(MAX_CONNECTIONS),
        };
        Ok(Limits {
            max_body,
            max_blob_body,
            retry_body,
            max_header: usize::try_from(max_header).unwrap_or(usize::MAX),
            max_connections,
        })
    }
}

impl RawAuth {
    fn validate(self) -> Result<Vec<super::Token>, ConfigError> {
        let mut tokens: Vec<super::Token> = Vec::new();
        if let Some(token) = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if token.len() < MIN_TOKEN_LEN {
                return Err(ConfigError::invalid(
                    "auth.token",
                    "a token needs at least 8 characters",
                ));
            }
            tokens.push(super::Token {
                name: "default".into(),
                secret: token.to_owned(),
            });
        }
        for (i, raw) in self.tokens.iter().enumerate() {
            let field = format!("auth.tokens[{i}]");
            if raw.name.trim().is_empty() || raw.token.trim().len() < MIN_TOKEN_LEN {
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
            tokens.push(super::Token {
                name: raw.name.clone(),
                secret: raw.token.clone(),
            });
        }
        Ok(tokens)
    }
}

impl RawCache {
    fn validate(self) -> Result<CacheConfig, ConfigError> {
        let max_bytes = size("cache.max_size", self.max_size.as_ref(), 256 << 20)?;
        let redis = match self
            .redis
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            None => None,
            Some(text) => {
                let url = Url::parse(text)
                    .map_err(|e| ConfigError::invalid("cache.redis", format!("not a URL: {e}")))?;
                if url.scheme() == "rediss" {
                    return Err(ConfigError::invalid(
                        "cache.redis",
                        format!(
                            "{}: Warmline speaks to Redis without TLS; use a redis:// URL \
                             (on a trusted network, or through a TLS tunnel such as stunnel)",
                            redacted(&url)
                        ),
                    ));
                }
                if !matches!(url.scheme(), "redis" | "redis+unix" | "unix") {
                    return Err(ConfigError::invalid(
                        "cache.redis",
                        format!("{}: expected a redis:// URL", redacted(&url)),
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
