//! Simulator configuration: Ollama's own environment variables plus the
//! simulator's `SIM_*` knobs.
//!
//! [`SimConfig::from_env`] reads the process environment once at start, the
//! way `ollama serve` does (values trimmed of spaces and quotes, unparsable
//! numbers fall back to the default with a warning, unparsable booleans count
//! as true). [`SimConfig::default`] is the in-process configuration used by
//! tests: Ollama's defaults, the default models, fast knobs and no access log.
//!
//! | variable | default | effect |
//! |---|---|---|
//! | `OLLAMA_HOST` | `127.0.0.1:11434` | listen address (`host`, `host:port`, `:port`, `scheme://host:port`) |
//! | `OLLAMA_KEEP_ALIVE` | `5m` | keep-alive given to newly loaded models |
//! | `OLLAMA_NUM_PARALLEL` | `1` | parallel slots per loaded model |
//! | `OLLAMA_MAX_LOADED_MODELS` | `0` ⇒ 3 | models resident at once |
//! | `OLLAMA_MAX_QUEUE` | `512` | pending (needs-a-load) requests before 503 |
//! | `OLLAMA_CONTEXT_LENGTH` | `0` ⇒ 4096 | default `num_ctx` |
//! | `OLLAMA_ORIGINS` | — | extra CORS origins |
//! | `OLLAMA_NO_CLOUD` | false | reported by `/api/status` |
//! | `SIM_LOAD_DELAY_MS`, `SIM_TOKEN_DELAY_MS`, `SIM_PREFILL_DELAY_MS`, `SIM_STALL_MS` | 0 | timing knobs |
//! | `SIM_TOKENS` | 8 | tokens per reply |
//! | `SIM_ERROR_RATE`, `SIM_ABORT_RATE`, `SIM_DROP_RATE` | 0 | fault injection |
//! | `SIM_MODELS` | the three defaults | installed catalog models, comma-separated |
//! | `SIM_QUIET` | false | `1` turns the Gin-style access log off |
//! | `SIM_READY_DELAY_MS` | 0 | `serve` holds its bound port this long before answering |

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use crate::catalog;
use crate::keepalive::{self, KeepAlive};
use crate::knobs::Knobs;

/// Everything a simulator instance needs to start.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Initial timing and fault knobs (changeable at run time).
    pub knobs: Knobs,
    /// The daemon settings Ollama takes from `OLLAMA_*`.
    pub ollama: OllamaEnv,
    /// Catalog names installed at start.
    pub models: Vec<String>,
    /// Write a Gin-style access line per request to stdout.
    pub access_log: bool,
    /// The `OLLAMA_*` variables the process saw at start (for `/_sim/counters`).
    pub env: BTreeMap<String, String>,
    /// The command line the process was started with (for `/_sim/counters`,
    /// so a supervisor's tests can see exactly how it was run).
    pub argv: Vec<String>,
    /// How long `serve` holds its bound port before answering
    /// (`SIM_READY_DELAY_MS`): Ollama binds first, then discovers GPUs and
    /// cleans up model files, and only then serves; connections wait meanwhile.
    pub ready_delay: std::time::Duration,
}

/// Ollama's daemon settings (`envconfig/config.go`).
#[derive(Clone, Debug, PartialEq)]
pub struct OllamaEnv {
    /// Where `serve` listens.
    pub host: ListenAddr,
    /// Keep-alive applied when a model is first loaded.
    pub keep_alive: KeepAlive,
    /// Parallel request slots per loaded model (≥ 1).
    pub num_parallel: u32,
    /// Maximum resident models (0 = automatic, i.e. 3 on a CPU-only box).
    pub max_loaded_models: u32,
    /// Capacity of the pending-load queue.
    pub max_queue: u32,
    /// Default `num_ctx` (0 = automatic, 4096 without VRAM).
    pub context_length: u32,
    /// Extra allowed CORS origins.
    pub origins: Vec<String>,
    /// `OLLAMA_NO_CLOUD`, surfaced by `/api/status`.
    pub no_cloud: bool,
}

impl Default for OllamaEnv {
    fn default() -> Self {
        Self {
            host: ListenAddr::default(),
            keep_alive: KeepAlive::DEFAULT,
            num_parallel: 1,
            max_loaded_models: 0,
            max_queue: 512,
            context_length: 0,
            origins: Vec::new(),
            no_cloud: false,
        }
    }
}

impl OllamaEnv {
    /// Resident-model limit after resolving "automatic".
    pub fn effective_max_loaded(&self) -> usize {
        match self.max_loaded_models {
            0 => 3,
            n => n as usize,
        }
    }

    /// Default context after resolving "automatic".
    pub fn effective_context_length(&self) -> u32 {
        match self.context_length {
            0 => 4096,
            n => n,
        }
    }
}

/// A host and port as `OLLAMA_HOST` describes them; the host may be a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    /// IP literal or host name; empty means every interface.
    pub host: String,
    pub port: u16,
}

impl Default for ListenAddr {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 11434,
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ListenAddr {
    /// Parses `OLLAMA_HOST` exactly like `envconfig.Host()`: `host`,
    /// `host:port`, `:port`, `[v6]:port`, `scheme://host[:port][/path]`;
    /// `http://` without a port means 80, `https://` 443, an invalid port
    /// falls back to the default.
    pub fn parse(value: &str) -> ListenAddr {
        let s = clean(value).trim();
        let (mut default_port, hostport) = match s.split_once("://") {
            None => (11434, s),
            Some(("http", rest)) => (80, rest),
            Some(("https", rest)) => (443, rest),
            Some((_, rest)) => (11434, rest),
        };
        if s.is_empty() {
            default_port = 11434;
        }
        let hostport = hostport.split_once('/').map_or(hostport, |(hp, _path)| hp);
        let (host, port) = match split_host_port(hostport) {
            Some((h, p)) => (h.to_owned(), p.to_owned()),
            None => {
                let bare = hostport.trim_start_matches('[').trim_end_matches(']');
                let host = if bare.parse::<std::net::IpAddr>().is_ok() {
                    bare.to_owned()
                } else if !hostport.is_empty() {
                    hostport.to_owned()
                } else {
                    "127.0.0.1".to_owned()
                };
                (host, String::new())
            }
        };
        let port = match port.parse::<u32>() {
            Ok(p) if p <= 65535 => p as u16,
            _ => {
                if !port.is_empty() {
                    tracing::warn!(port = %port, default = default_port, "invalid port, using default");
                }
                default_port
            }
        };
        ListenAddr { host, port }
    }

    /// Whether the host names the loopback interface (Host checks apply).
    pub fn is_loopback(&self) -> bool {
        match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }
}

/// Go's `net.SplitHostPort`, minus its error details.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    if host.contains(':') {
        return None; // bare IPv6 without brackets
    }
    Some((host, port))
}

/// `envconfig.Var`: trim spaces, then quotes.
fn clean(value: &str) -> &str {
    value.trim().trim_matches(|c| c == '"' || c == '\'')
}

/// Go's `strconv.ParseBool`, with Ollama's "unparsable non-empty is true".
fn env_bool(value: &str) -> bool {
    match clean(value) {
        "" => false,
        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
        "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
        _ => true,
    }
}

fn env_num<T: FromStr>(key: &str, value: &str, default: T) -> T {
    match clean(value).parse() {
        Ok(v) => v,
        Err(_) => {
            tracing::warn!(key, value, "invalid value, using default");
            default
        }
    }
}

fn env_millis(key: &str, value: &str, default: Duration) -> Duration {
    let ms: f64 = env_num(key, value, default.as_secs_f64() * 1000.0);
    if ms.is_finite() && ms >= 0.0 {
        Duration::from_secs_f64(ms / 1000.0)
    } else {
        default
    }
}

fn env_rate(key: &str, value: &str) -> f64 {
    let r: f64 = env_num(key, value, 0.0);
    if (0.0..=1.0).contains(&r) {
        r
    } else {
        tracing::warn!(key, value, "rate must be between 0 and 1, using 0");
        0.0
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            knobs: Knobs::default(),
            ollama: OllamaEnv::default(),
            models: catalog::default_models(),
            access_log: false,
            env: BTreeMap::new(),
            argv: Vec::new(),
            ready_delay: std::time::Duration::ZERO,
        }
    }
}

impl SimConfig {
    /// Reads `OLLAMA_*` and `SIM_*` from the process environment. The access
    /// log is on unless `SIM_QUIET` is set, as for a real `ollama serve`.
    pub fn from_env() -> SimConfig {
        SimConfig {
            argv: std::env::args().collect(),
            ..SimConfig::from_vars(std::env::vars())
        }
    }

    /// [`SimConfig::from_env`] over an explicit variable list (testable).
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> SimConfig
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut cfg = SimConfig {
            access_log: true,
            ..SimConfig::default()
        };
        let mut quiet = false;
        for (key, value) in vars {
            let (key, value): (String, String) = (key.into(), value.into());
            let o = &mut cfg.ollama;
            let k = &mut cfg.knobs;
            match key.as_str() {
                "OLLAMA_HOST" => o.host = ListenAddr::parse(&value),
                "OLLAMA_KEEP_ALIVE" => o.keep_alive = keepalive::parse_env(&value),
                "OLLAMA_NUM_PARALLEL" => o.num_parallel = env_num(&key, &value, 1u32).max(1),
                "OLLAMA_MAX_LOADED_MODELS" => o.max_loaded_models = env_num(&key, &value, 0),
                "OLLAMA_MAX_QUEUE" => o.max_queue = env_num(&key, &value, 512),
                "OLLAMA_CONTEXT_LENGTH" => o.context_length = env_num(&key, &value, 0),
                "OLLAMA_ORIGINS" => {
                    o.origins = clean(&value)
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "OLLAMA_NO_CLOUD" => o.no_cloud = env_bool(&value),
                "SIM_LOAD_DELAY_MS" => k.load_delay = env_millis(&key, &value, k.load_delay),
                "SIM_TOKEN_DELAY_MS" => k.token_delay = env_millis(&key, &value, k.token_delay),
                "SIM_PREFILL_DELAY_MS" => {
                    k.prefill_delay = env_millis(&key, &value, k.prefill_delay);
                }
                "SIM_STALL_MS" => {
                    k.first_byte_stall = env_millis(&key, &value, k.first_byte_stall);
                }
                "SIM_TOKENS" => k.tokens_per_reply = env_num(&key, &value, k.tokens_per_reply),
                "SIM_ERROR_RATE" => k.error_rate = env_rate(&key, &value),
                "SIM_ABORT_RATE" => k.abort_rate = env_rate(&key, &value),
                "SIM_DROP_RATE" => k.drop_rate = env_rate(&key, &value),
                "SIM_MODELS" => {
                    cfg.models = clean(&value)
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "SIM_QUIET" => quiet = env_bool(&value),
                "SIM_READY_DELAY_MS" => {
                    cfg.ready_delay = env_millis(&key, &value, cfg.ready_delay);
                }
                _ => {}
            }
            if key.starts_with("OLLAMA_") {
                cfg.env.insert(key, value);
            }
        }
        cfg.access_log = !quiet;
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> String {
        ListenAddr::parse(s).to_string()
    }

    #[test]
    fn ollama_host_forms() {
        assert_eq!(addr(""), "127.0.0.1:11434");
        assert_eq!(addr("0.0.0.0"), "0.0.0.0:11434");
        assert_eq!(addr("127.0.0.1:0"), "127.0.0.1:0");
        assert_eq!(addr(":1234"), ":1234");
        assert_eq!(addr("[::1]:9000"), "[::1]:9000");
        assert_eq!(addr("::1"), "[::1]:11434");
        assert_eq!(addr("http://example.local"), "example.local:80");
        assert_eq!(addr("https://10.0.0.1"), "10.0.0.1:443");
        assert_eq!(addr("http://127.0.0.1:7777/prefix"), "127.0.0.1:7777");
        assert_eq!(addr("localhost:99999"), "localhost:11434");
        assert_eq!(addr("\" 127.0.0.1:5 \""), "127.0.0.1:5");
    }

    #[test]
    fn env_is_parsed_and_snapshotted() {
        let cfg = SimConfig::from_vars([
            ("OLLAMA_NUM_PARALLEL", "4"),
            ("OLLAMA_MAX_QUEUE", "oops"),
            ("OLLAMA_KEEP_ALIVE", "-1"),
            ("OLLAMA_ORIGINS", "https://a.example, chrome-extension://*"),
            ("SIM_TOKEN_DELAY_MS", "25"),
            ("SIM_TOKENS", "3"),
            ("SIM_MODELS", "tinyllama,llama3.2"),
            ("SIM_QUIET", "1"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(cfg.ollama.num_parallel, 4);
        assert_eq!(cfg.ollama.max_queue, 512);
        assert_eq!(cfg.ollama.keep_alive, KeepAlive::Forever);
        assert_eq!(
            cfg.ollama.origins,
            ["https://a.example", "chrome-extension://*"]
        );
        assert_eq!(cfg.knobs.token_delay, Duration::from_millis(25));
        assert_eq!(cfg.knobs.tokens_per_reply, 3);
        assert_eq!(cfg.models, ["tinyllama", "llama3.2"]);
        assert!(!cfg.access_log);
        assert_eq!(cfg.env.len(), 4);
        assert_eq!(
            cfg.env.get("OLLAMA_MAX_QUEUE").map(String::as_str),
            Some("oops")
        );
    }

    #[test]
    fn booleans_follow_go() {
        assert!(env_bool("1"));
        assert!(env_bool("yes"));
        assert!(!env_bool("false"));
        assert!(!env_bool(""));
    }
}
