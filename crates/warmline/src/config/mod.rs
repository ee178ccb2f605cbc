//! Configuration: a TOML file, `WARMLINE_*` environment variables and command-line
//! flags, merged in that order (flags win), then validated into typed values.
//!
//! The raw, serde-facing shape ([`RawConfig`], in `raw`) rejects unknown fields so a
//! typo in a config file is an error rather than a silently ignored setting.
//! Validation (`validate`) turns it into [`Config`], whose fields are already
//! `SocketAddr`, `Url`, `Duration` and byte counts; every validation error names the
//! dotted path of the offending field. [`Config::to_raw`] goes back the other way
//! with every default spelled out, which is what `GET /warmline/settings` shows and
//! what a settings change is merged into.
//!
//! A running gateway holds its `Config` in one swap (see `gateway`): a reload
//! validates the whole new configuration first and either applies all of it or
//! none of it.
//!
//! Every duration setting is at most 30 days ([`MAX_DURATION`]) and every size at
//! most 1 TiB ([`MAX_SIZE`]); counts are bounded too ([`MAX_COUNT`],
//! [`MAX_PARALLEL`], [`MAX_CONNECTIONS`], [`MAX_LOG_LINES`]).
//!
//! ```toml
//! listen = "127.0.0.1:11435"
//! upstreams = [
//!   "http://127.0.0.1:11434",
//!   { url = "http://10.0.0.5:11434", weight = 2, parallel = 4 },  # weight, its OLLAMA_NUM_PARALLEL
//! ]
//! origins = ["https://my-app.example"]   # extra browser origins, as OLLAMA_ORIGINS
//! state_file = "/home/me/.local/state/warmline/state.json"   # the warm set between runs
//! access_log = ""       # a file to append one line per request to
//!
//! [pool]
//! max_idle_per_host = 256
//! idle_timeout = "90s"
//!
//! [timeouts]
//! connect = "500ms"
//! first_byte = "5m"     # a cold model load can take minutes
//! idle = "5m"           # longest gap between two chunks of a response stream
//! header = "10s"        # a request's line and headers, from its first byte (408);
//!                       # also a new connection's first byte, from accept
//! body = "30s"          # longest gap between two chunks of a request body (408)
//! drain = "10s"         # how long shutdown waits for in-flight requests
//! health_interval = "1s"
//! client_idle = "5m"    # a keep-alive client connection idle this long is closed
//!
//! [limits]
//! max_body = "64MiB"    # request bodies, except blob uploads (413)
//! max_blob_body = 0     # /api/blobs uploads; 0 means unlimited
//! retry_body = "1MiB"   # bodies held for a retry on another upstream
//! max_header = "64KiB"  # request line and headers (431)
//! max_connections = 6048   # client connections; default from the fd limit (6048 of 8192)
//!
//! [compression]         # gzip/brotli of whole answers when the client asks
//! enabled = true
//!
//! [failover]            # retry once on another host before anything reached the client
//! enabled = true
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
//! enabled = true
//! failures = 5          # consecutive failures (connect error, timeout, 5xx) to open
//! open_for = "60s"      # then one probe request decides
//!
//! [concurrency]         # per upstream host and model
//! enabled = true
//! per_model = 4         # every host's OLLAMA_NUM_PARALLEL; unset: found per host (see parallelism)
//! discover = true       # read a local daemon's OLLAMA_NUM_PARALLEL from its environment
//! staged = 0            # may also wait at the host itself (in Ollama's queue)
//! queue = 64            # requests that may wait in Warmline beyond that (then 503)
//! max_wait = "30s"
//!
//! [rate_limit]          # per client IP, token bucket (then 429)
//! enabled = true
//! per_second = 10
//! burst = 20
//! loopback = false      # also limit loopback clients
//!
//! [auth]                # required when listening on a non-loopback address
//! token = "..."         # identity "default" (also WARMLINE_TOKEN)
//! tokens = [{ name = "alice", token = "..." }]   # one identity each; the cache keeps them apart
//!
//! [admin]               # the control plane (see `auth`); token_file = "" closes it to HTTP
//! token_file = "/home/me/.local/state/warmline/admin-token"   # made (0600) on first start
//! origins = []          # browser origins that may use it ("*" is refused)
//!
//! [daemon]              # `ollama serve` at the first upstream's address
//! supervise = false     # `warmline serve --supervise`; the desktop app supervises
//! executable = ""       # default: `ollama` on PATH
//! keep_alive = "30m"    # OLLAMA_KEEP_ALIVE (-1 = for ever)
//! num_parallel = 2      # OLLAMA_NUM_PARALLEL, also that host's `parallel`
//! max_loaded_models = 0 # OLLAMA_MAX_LOADED_MODELS (0 = Ollama decides)
//! env = { OLLAMA_FLASH_ATTENTION = "1" }   # any other variables for the daemon
//! ready_timeout = "60s"
//! stop_grace = "10s"    # SIGTERM, then SIGKILL of its whole process group
//! restart_backoff = "500ms"        # doubling, with jitter, up to
//! restart_backoff_max = "30s"
//! crash_loop_restarts = 5          # exits within the window before giving up
//! crash_loop_window = "60s"
//! log_file = ""         # rotated copy of its output; the last log_lines stay in memory
//! log_lines = 1000
//!
//! [warmth]
//! models = ["llama3.2"] # the warm set until the state file has one
//! keep_alive = "-1"     # sent with warm loads and pinned into requests that omit it
//! pin = true
//! mask_cold_starts = true   # stream headers at once while a known model loads
//!
//! [alerts]              # judged over the last `window` (/warmline/health)
//! latency = "1s"        # average latency above
//! error_rate = 0.05     # share of failed requests above
//! hit_rate = 0.5        # cache hit rate below (once min_lookups were seen)
//! min_requests = 20
//! min_lookups = 100
//! window = "60s"
//!
//! [monitoring]
//! listen = "10.0.0.2:9435"  # health, ready and /metrics only, no credential
//! ```

mod raw;
mod validate;
mod values;
mod written;

/// Breaker settings for one upstream host (`[breaker]`), enforced by `breaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Off: the breaker never opens (outcomes are not even counted).
    pub enabled: bool,
    /// Consecutive failures that open the breaker.
    pub failures: NonZeroU32,
    /// How long it stays open before letting a probe through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            enabled: true,
            failures: const { NonZeroU32::new(5).expect("5 is not zero") },
            open_for: Duration::from_secs(60),
        }
    }
}

/// Per-client-IP rate limit (`[rate_limit]`), enforced by `admission::ClientLimiter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    /// Off: no client is limited.
    pub enabled: bool,
    /// Sustained requests per second per client (default 10).
    pub per_second: NonZeroU32,
    /// Requests a client may send at once after a quiet spell (default 20).
    pub burst: NonZeroU32,
    /// Loopback clients skip the limit (default true).
    pub exempt_loopback: bool,
    /// IPv6 clients share a bucket per prefix of this length (default 64; 128 keys
    /// every address on its own).
    pub ipv6_prefix: u8,
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            enabled: true,
            per_second: NonZeroU32::new(10).expect("non-zero"),
            burst: NonZeroU32::new(20).expect("non-zero"),
            exempt_loopback: true,
            ipv6_prefix: 64,
        }
    }
}

/// Thresholds (`[alerts]`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    pub latency: Duration,
    pub error_rate: f64,
    pub hit_rate: f64,
    pub min_requests: u64,
    pub min_lookups: u64,
    /// How far back the rates look.
    pub window: Duration,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        AlertConfig {
            latency: Duration::from_secs(1),
            error_rate: 0.05,
            hit_rate: 0.5,
            min_requests: 20,
            min_lookups: 100,
            window: Duration::from_secs(60),
        }
    }
}

/// A named bearer token of the data plane.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("name", &self.name)
            .field("secret", &"***")
            .finish()
    }
}

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

pub use raw::{
    ByteSize, RawAdmin, RawAlerts, RawAuth, RawBreaker, RawCache, RawCompression, RawConcurrency,
    RawConfig, RawDaemon, RawFailover, RawLimits, RawMonitoring, RawPool, RawRateLimit,
    RawTimeouts, RawToken, RawUpstream, RawWarmth, merge_patch,
};
pub use values::redacted;
pub use values::{KeepAlive, MAX_DURATION, MAX_SIZE};

/// The address the gateway listens on when nothing else is configured: Ollama's
/// port plus one, so clients change only the port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11435";
/// Where Ollama listens by default.
pub const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:11434";

/// Requests per model that may wait at an upstream itself beyond what it runs at
/// once. None by default: a host gets exactly its `OLLAMA_NUM_PARALLEL` requests
/// per model and the rest wait in Warmline's bounded, ordered queue, where they
/// can still go to another host or be refused with a clear answer (Ollama does
/// not bound its own queue for a loaded model). Staging a few at the host only
/// pays off for a host that answers in a fraction of a millisecond, which then
/// idles while each answer travels back; a model generating for hundreds of
/// milliseconds does not notice the hand-over.
pub const DEFAULT_STAGED: usize = 0;

/// The largest `limits.max_header` accepted: the connection guard must see an
/// oversized head before hyper's own read buffer (about 400 KiB) is full.
pub const MAX_HEADER_LIMIT: u64 = 256 * 1024;

/// The most client connections, and idle upstream connections per host, accepted.
pub const MAX_CONNECTIONS: usize = 1 << 20;
/// The largest count accepted for queues, rates, weights and failure counts.
pub const MAX_COUNT: u32 = 1_000_000;
/// The largest per-host or per-model parallelism accepted.
pub const MAX_PARALLEL: usize = 1024;
/// The most lines of the daemon's output kept in memory.
pub const MAX_LOG_LINES: usize = 100_000;
/// The shortest bearer token accepted (`auth.token`, `auth.tokens[]`).
pub const MIN_TOKEN_LEN: usize = 8;
/// The admin credential's file name in Warmline's state directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Where `admin.token_file` is when not set: `$XDG_STATE_HOME/warmline/admin-token`
/// (`~/.local/state/...`). The gateway writes it; the CLI reads it.
pub fn default_admin_token_file() -> Option<PathBuf> {
    crate::sys::os::state_dir().map(|dir| dir.join(ADMIN_TOKEN_FILE))
}

/// Environment variable naming the listen address.
pub const ENV_LISTEN: &str = "WARMLINE_LISTEN";
/// Environment variable naming the upstreams, comma-separated.
pub const ENV_UPSTREAMS: &str = "WARMLINE_UPSTREAMS";
/// Environment variable holding a bearer token (identity "default").
pub const ENV_TOKEN: &str = "WARMLINE_TOKEN";
/// Environment variable naming the shared Redis cache tier.
pub const ENV_REDIS: &str = "WARMLINE_REDIS";
/// Ollama's own variable of extra browser origins, comma-separated: read too, so a
/// user's allow-list keeps working behind Warmline. It adds to `origins` (Ollama's
/// API only): it never admits a page to the control plane, not even `*`.
pub const ENV_OLLAMA_ORIGINS: &str = "OLLAMA_ORIGINS";

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
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The dotted name of the setting at fault (`cache.max_size`), when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            ConfigError::Read { .. } | ConfigError::Parse { .. } => None,
        }
    }
}

/// The validated configuration the gateway runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub upstreams: Vec<UpstreamConfig>,
    /// Extra allowed browser origins (patterns with `*`), on top of Ollama's built-ins.
    pub origins: Vec<String>,
    pub pool: PoolConfig,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Compress whole (non-streaming) answers when the client accepts it.
    pub compression: bool,
    /// Retry once on another host when the first fails before answering.
    pub failover: bool,
    pub cache: CacheConfig,
    /// Per-upstream circuit breaker.
    pub breaker: BreakerConfig,
    /// Per-(host, model) concurrency limit and queue.
    pub concurrency: Concurrency,
    /// Per-client-IP rate limit.
    pub rate_limit: RateConfig,
    /// Bearer tokens; empty = no authentication (loopback only).
    pub tokens: Vec<Token>,
    /// Supervision of `ollama serve`.
    pub daemon: DaemonConfig,
    /// Models kept loaded.
    pub warmth: WarmthConfig,
    /// Alert thresholds.
    pub alerts: AlertConfig,
    /// Where the warm set is kept between runs; `None` keeps it in memory.
    pub state_file: Option<PathBuf>,
    /// The access log (one line per request), if any.
    pub access_log: Option<PathBuf>,
    /// The control plane: its credential's file and the browser origins it admits.
    pub admin: AdminConfig,
    /// The monitoring listener (health, readiness and metrics only), if any.
    pub monitoring: Option<SocketAddr>,
}

/// Who may use the control plane (`/warmline/*` routes that change anything or
/// show prompts, logs or settings; see `auth`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// The file holding the admin credential, created (0600) on first start;
    /// `None` closes the control plane to HTTP (only the in-process handle may
    /// use it).
    pub token_file: Option<PathBuf>,
    /// Browser origins allowed to call the control plane (none by default).
    pub origins: Vec<String>,
}

/// How Warmline runs `ollama serve` when it supervises (see `supervisor`).
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Start (or adopt) and watch a daemon at the first upstream's address.
    pub supervise: bool,
    /// The `ollama` executable; `None` searches `PATH`.
    pub executable: Option<PathBuf>,
    /// `OLLAMA_KEEP_ALIVE` of a daemon Warmline starts.
    pub keep_alive: KeepAlive,
    /// `OLLAMA_NUM_PARALLEL`; also the supervised host's per-model parallelism.
    pub num_parallel: NonZeroUsize,
    /// `OLLAMA_MAX_LOADED_MODELS` (0: Ollama decides, 3 per GPU).
    pub max_loaded_models: usize,
    /// Further variables for the daemon (`OLLAMA_FLASH_ATTENTION`, GPU selection...).
    pub env: std::collections::BTreeMap<String, String>,
    /// Longest wait for a started daemon to answer `HEAD /`.
    pub ready_timeout: Duration,
    /// Between SIGTERM and SIGKILL when stopping it.
    pub stop_grace: Duration,
    /// First delay before a restart after a crash; doubles (with jitter) per
    /// consecutive crash up to `restart_backoff_max`.
    pub restart_backoff: Duration,
    pub restart_backoff_max: Duration,
    /// This many unexpected exits within `crash_loop_window` stop the restarts.
    pub crash_loop_restarts: u32,
    pub crash_loop_window: Duration,
    /// The daemon's output, rotated; `None` keeps only the in-memory tail.
    pub log_file: Option<PathBuf>,
    /// Lines of the daemon's output kept in memory.
    pub log_lines: usize,
}

/// Which models stay loaded, and how (see `warmth`).
#[derive(Debug, Clone, PartialEq)]
pub struct WarmthConfig {
    /// The warm set when no state file has one yet (normalised names).
    pub models: Vec<String>,
    /// `keep_alive` sent with warm loads, and injected into requests for warm
    /// models that do not set their own.
    pub keep_alive: KeepAlive,
    /// Inject `keep_alive` into requests for warm models that omit it.
    pub pin: bool,
    /// Send a stream's response headers at once while its model still loads.
    pub mask_cold_starts: bool,
    /// Keep loaded, by prediction, the models likely to be used next.
    pub auto: bool,
    /// The memory the warm models may take together.
    pub budget: Budget,
}

/// `warmth.budget`: how much memory warm models may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// What the machine can spare (see `warmth::budget`).
    Auto,
    /// This many bytes.
    Bytes(u64),
    /// This share of the machine's memory, in percent (more than 0, at most 100).
    Percent(f64),
}

/// One inference host: an Ollama daemon, or an engine with only the
/// OpenAI-compatible API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub url: Url,
    /// Share of the traffic relative to the other hosts: least outstanding requests
    /// per unit of weight wins (default 1).
    pub weight: NonZeroU32,
    /// The host's `OLLAMA_NUM_PARALLEL`, when it differs from `concurrency.per_model`.
    pub parallel: Option<NonZeroUsize>,
    /// The API the host speaks (default Ollama's).
    pub kind: UpstreamKind,
    /// A bearer token the host wants (vLLM, LM Studio may): sent with every
    /// request to it, never logged or shown.
    pub api_key: Option<ApiKey>,
}

impl From<Url> for UpstreamConfig {
    fn from(url: Url) -> UpstreamConfig {
        UpstreamConfig {
            url,
            weight: NonZeroU32::MIN,
            parallel: None,
            kind: UpstreamKind::Ollama,
            api_key: None,
        }
    }
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamKind {
    /// Ollama: `/api/*` and `/v1/*`, models from `/api/tags` and `/api/ps`.
    #[default]
    Ollama,
    /// An OpenAI-compatible engine (llama.cpp's server, llama-cpp-python, vLLM,
    /// LM Studio): `/v1/*` only, models from `/v1/models`.
    OpenAi,
}

impl UpstreamKind {
    /// The name used in settings: `ollama` or `openai`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Ollama => "ollama",
            UpstreamKind::OpenAi => "openai",
        }
    }

    /// The kind a setting names; `None` for anything else.
    pub fn parse(text: &str) -> Option<UpstreamKind> {
        match text {
            "ollama" => Some(UpstreamKind::Ollama),
            "openai" => Some(UpstreamKind::OpenAi),
            _ => None,
        }
    }
}

/// An upstream's API key: a secret, so its `Debug` form is masked.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the `Authorization` header and the settings file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl UpstreamConfig {
    /// The URL as shown in logs, errors and health: any password masked.
    pub fn name(&self) -> String {
        redacted(&self.url)
    }
}

/// Per-(host, model) concurrency settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Off: requests go upstream without waiting for a slot.
    pub enabled: bool,
    /// Requests each host runs at once per model (its `OLLAMA_NUM_PARALLEL`), when
    /// stated for every host; `None`: found per host (see `parallelism`).
    pub per_model: Option<NonZeroUsize>,
    /// Requests per model that may also wait at the host itself.
    pub staged: usize,
    /// Read the parallelism of daemons on this machine from their environment
    /// (see `upstream::discover`); off: learn it for every host.
    pub discover: bool,
    /// Requests per model that may wait in Warmline beyond that.
    pub queue: usize,
    /// Longest wait in Warmline's queue.
    pub max_wait: Duration,
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
    /// From a request's first byte to its complete line and headers.
    pub header: Duration,
    /// Longest silence between two chunks of a client's request body.
    pub body: Duration,
    /// How long a graceful shutdown waits for in-flight requests.
    pub drain: Duration,
    /// How often each upstream is probed with `HEAD /`.
    pub health_interval: Duration,
    /// How long a client's keep-alive connection may stay idle between requests.
    pub client_idle: Duration,
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
    /// Largest accepted request line plus headers, in bytes.
    pub max_header: usize,
    /// Client connections open at once; beyond it idle ones are shed, then new
    /// ones refused (see `server`).
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        RawConfig::default()
            .validate()
            .unwrap_or_else(|e| unreachable!("built-in defaults are valid: {e}"))
    }
}

/// Settings given on the command line; they override the file and the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub listen: Option<String>,
    pub upstreams: Vec<String>,
    pub redis: Option<String>,
    pub no_cache: bool,
    /// Supervise `ollama serve` (`--supervise`).
    pub supervise: bool,
    /// Where the warm set is kept (`--state-file`).
    pub state_file: Option<String>,
}

/// Where a gateway's configuration comes from, so a reload can read it again: the
/// file (if any), the environment, and the command line's overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSource {
    pub file: Option<PathBuf>,
    /// `file` is the default one ([`default_config_file`]): while it does not
    /// exist, nothing is read from it (a reload reads it once it does).
    pub optional: bool,
    pub overrides: Overrides,
}

impl ConfigSource {
    /// `file` when one is named (`--config`, `WARMLINE_CONFIG`), else the default
    /// file, read only when present.
    pub fn new(file: Option<PathBuf>, overrides: Overrides) -> ConfigSource {
        let optional = file.is_none();
        ConfigSource {
            file: file.or_else(default_config_file),
            optional,
            overrides,
        }
    }

    /// Reads and validates the configuration from this source, now.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let file = self
            .file
            .as_deref()
            .filter(|path| !self.optional || path.exists());
        Config::load(file, &self.overrides)
    }

    /// The file that is read, if any (the default one only while it exists).
    pub fn file_in_use(&self) -> Option<&Path> {
        self.file
            .as_deref()
            .filter(|path| !self.optional || path.exists())
    }
}

/// `$XDG_CONFIG_HOME/warmline/config.toml` (`~/.config/warmline/config.toml`):
/// the configuration `warmline serve` and the desktop app read when it exists and
/// no other file is named.
pub fn default_config_file() -> Option<PathBuf> {
    crate::sys::os::config_dir().map(|dir| dir.join("config.toml"))
}

impl Config {
    /// Loads the configuration the way both binaries do: the TOML `file` if given,
    /// then `WARMLINE_*` variables, then `overrides`.
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

    /// The upstream a supervised daemon listens on: the first one.
    pub fn supervised_upstream(&self) -> Option<&UpstreamConfig> {
        self.daemon
            .supervise
            .then(|| self.upstreams.first())
            .flatten()
    }

    /// A configuration for `upstreams` with every other setting at its default.
    pub fn with_upstreams(upstreams: impl IntoIterator<Item = Url>) -> Config {
        Config {
            upstreams: upstreams.into_iter().map(UpstreamConfig::from).collect(),
            ..Config::default()
        }
    }
}
