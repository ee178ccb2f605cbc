//! The command line: `ollama-sim serve [flags]`, or `ollama serve` when the
//! binary is invoked through a file (symlink) named `ollama`.
//!
//! * Configuration is [`SimConfig::from_env`] (`OLLAMA_*`, `SIM_*`), then
//!   flags override it; `--listen` takes the same forms as `OLLAMA_HOST`.
//! * On start it prints Ollama-style `slog` lines to stderr, including
//!   `msg="Listening on 127.0.0.1:PORT (version 0.33.0)"` with the real bound
//!   port, which supervisors parse to find a port-0 daemon.
//! * SIGINT and SIGTERM close the listener and every connection at once and
//!   exit 0. A failed bind prints `Error: …` and exits 1, as Ollama does.
//! * `--threads 1` (the default) runs a current-thread runtime, the fastest
//!   choice for a benchmark backend on a small machine; `N > 1` runs a
//!   multi-thread runtime with N workers.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use tokio::net::TcpListener;

use crate::api::VERSION;
use crate::clock::rfc3339;
use crate::config::{ListenAddr, SimConfig};
use crate::{SimHandle, Simulator};

/// A fast, API-faithful Ollama simulator.
#[derive(Debug, Parser)]
#[command(name = "ollama-sim", version = VERSION)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the simulated Ollama server.
    #[command(alias = "start")]
    Serve(ServeArgs),
}

/// Flags of `serve`; each overrides the matching environment variable.
#[derive(Debug, Clone, Default, Args)]
struct ServeArgs {
    /// Listen address, same forms as OLLAMA_HOST (e.g. 127.0.0.1:0).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Runtime worker threads (1 = current-thread runtime).
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,
    /// Model load time in ms (SIM_LOAD_DELAY_MS).
    #[arg(long, value_name = "MS")]
    load_delay_ms: Option<f64>,
    /// Time per generated token in ms (SIM_TOKEN_DELAY_MS).
    #[arg(long, value_name = "MS")]
    token_delay_ms: Option<f64>,
    /// Prompt processing time in ms (SIM_PREFILL_DELAY_MS).
    #[arg(long, value_name = "MS")]
    prefill_delay_ms: Option<f64>,
    /// Tokens per reply (SIM_TOKENS).
    #[arg(long, value_name = "N")]
    tokens: Option<u32>,
    /// Fraction of generations answered 500 (SIM_ERROR_RATE).
    #[arg(long, value_name = "RATE")]
    error_rate: Option<f64>,
    /// Fraction of streams cut mid-way (SIM_ABORT_RATE).
    #[arg(long, value_name = "RATE")]
    abort_rate: Option<f64>,
    /// Fraction of generations whose connection is closed before any answer
    /// (SIM_DROP_RATE).
    #[arg(long, value_name = "RATE")]
    drop_rate: Option<f64>,
    /// Delay before response headers in ms (SIM_STALL_MS).
    #[arg(long, value_name = "MS")]
    stall_ms: Option<f64>,
    /// Installed models, comma-separated (SIM_MODELS).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    models: Option<Vec<String>>,
    /// No access log on stdout (SIM_QUIET=1).
    #[arg(long)]
    quiet: bool,
}

fn millis(ms: f64) -> Option<Duration> {
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
}

impl ServeArgs {
    fn apply(&self, cfg: &mut SimConfig) -> Result<(), String> {
        if let Some(l) = &self.listen {
            cfg.ollama.host = ListenAddr::parse(l);
        }
        let k = &mut cfg.knobs;
        let ms = |v: Option<f64>, name: &str| match v.map(millis) {
            Some(None) => Err(format!("--{name} must be a non-negative number")),
            other => Ok(other.flatten()),
        };
        if let Some(d) = ms(self.load_delay_ms, "load-delay-ms")? {
            k.load_delay = d;
        }
        if let Some(d) = ms(self.token_delay_ms, "token-delay-ms")? {
            k.token_delay = d;
        }
        if let Some(d) = ms(self.prefill_delay_ms, "prefill-delay-ms")? {
            k.prefill_delay = d;
        }
        if let Some(d) = ms(self.stall_ms, "stall-ms")? {
            k.first_byte_stall = d;
        }
        if let Some(n) = self.tokens {
            k.tokens_per_reply = n;
        }
        if let Some(r) = self.error_rate {
            k.error_rate = r;
        }
        if let Some(r) = self.abort_rate {
            k.abort_rate = r;
        }
        if let Some(r) = self.drop_rate {
            k.drop_rate = r;
        }
        k.validate()?;
        if let Some(m) = &self.models {
            cfg.models = m
                .iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if self.quiet {
            cfg.access_log = false;
        }
        Ok(())
    }
}

/// Whether argv[0] names the binary `ollama` (a symlink or a copy).
fn invoked_as_ollama(argv0: Option<&OsString>) -> bool {
    argv0
        .and_then(|a| Path::new(a).file_stem())
        .is_some_and(|s| s == "ollama")
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let as_ollama = invoked_as_ollama(args.first());
    let mut cmd = <Cli as clap::CommandFactory>::command();
    if as_ollama {
        cmd = cmd.name("ollama").bin_name("ollama");
    }
    let matches = match cmd.try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            if as_ollama && e.kind() == clap::error::ErrorKind::DisplayVersion {
                println!("ollama version is {VERSION}");
                return ExitCode::SUCCESS;
            }
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    let Some(Command::Serve(serve)) = cli.command else {
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return ExitCode::SUCCESS;
    };
    init_tracing();
    let mut config = SimConfig::from_env();
    if let Err(e) = serve.apply(&mut config) {
        eprintln!("Error: {e}");
        return ExitCode::from(1);
    }
    let runtime = if serve.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(serve.threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(run(config));
    // Nothing left to wait for: idle blocking-pool threads (DNS) must not delay exit.
    runtime.shutdown_background();
    code
}

fn init_tracing() {
    let level = match std::env::var("OLLAMA_DEBUG").ok().as_deref().map(str::trim) {
        Some("1" | "true" | "TRUE" | "True" | "t" | "T") => "debug",
        Some(n) if n.parse::<u32>().is_ok_and(|n| n >= 2) => "trace",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("ollama_sim={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// An Ollama `slog` text line on stderr.
fn slog(source: &str, msg: &str, extra: &str) {
    let time = rfc3339(SystemTime::now());
    if extra.is_empty() {
        eprintln!("time={time} level=INFO source={source} msg=\"{msg}\"");
    } else {
        eprintln!("time={time} level=INFO source={source} msg=\"{msg}\" {extra}");
    }
}

async fn bind(listen: &ListenAddr) -> std::io::Result<TcpListener> {
    if listen.host.is_empty() {
        return TcpListener::bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen.port,
        ))
        .await;
    }
    TcpListener::bind((listen.host.as_str(), listen.port)).await
}

async fn run(config: SimConfig) -> ExitCode {
    let listen = config.ollama.host.clone();
    let listener = match bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            // Go's wording, e.g. "bind: address already in use".
            let reason = match e.kind() {
                std::io::ErrorKind::AddrInUse => "address already in use".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => e.to_string(),
            };
            eprintln!("Error: listen tcp {listen}: bind: {reason}");
            return ExitCode::from(1);
        }
    };
    // Like Ollama's envconfig.AsMap: the effective value of each setting (defaults
    // included, durations in Go's notation), then any other OLLAMA_* variable seen.
    let o = &config.ollama;
    let mut effective = std::collections::BTreeMap::from([
        ("OLLAMA_HOST".to_owned(), format!("http://{}", o.host)),
        ("OLLAMA_KEEP_ALIVE".to_owned(), o.keep_alive.go_string()),
        (
            "OLLAMA_MAX_LOADED_MODELS".to_owned(),
            o.max_loaded_models.to_string(),
        ),
        ("OLLAMA_MAX_QUEUE".to_owned(), o.max_queue.to_string()),
        ("OLLAMA_NUM_PARALLEL".to_owned(), o.num_parallel.to_string()),
        (
            "OLLAMA_CONTEXT_LENGTH".to_owned(),
            o.context_length.to_string(),
        ),
        (
            "OLLAMA_ORIGINS".to_owned(),
            format!("[{}]", o.origins.join(" ")),
        ),
    ]);
    for (k, v) in &config.env {
        effective.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let env: Vec<String> = effective.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    slog(
        "routes.go:1471",
        "server config",
        &format!("env=\"map[{}]\"", env.join(" ")),
    );
    if !config.ready_delay.is_zero() {
        // The port is bound (connections queue in the backlog) but nothing is
        // answered yet, as while Ollama discovers GPUs after binding.
        slog("routes.go:1500", "discovering available GPUs...", "");
        tokio::time::sleep(config.ready_delay).await;
    }
    let handle = match Simulator::serve(listener, config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    slog(
        "routes.go:1524",
        &format!("Listening on {} (version {VERSION})", handle.local_addr()),
        "",
    );
    wait_for_signal().await;
    stop(handle).await;
    ExitCode::SUCCESS
}

async fn stop(handle: SimHandle) {
    // Ollama closes the server without draining; so do we.
    handle.shutdown().await;
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_decides_the_personality() {
        assert!(invoked_as_ollama(Some(&OsString::from(
            "/usr/local/bin/ollama"
        ))));
        assert!(invoked_as_ollama(Some(&OsString::from("ollama"))));
        assert!(!invoked_as_ollama(Some(&OsString::from("/x/ollama-sim"))));
        assert!(!invoked_as_ollama(None));
    }

    #[test]
    fn flags_override_env() {
        let mut cfg = SimConfig::from_vars([("SIM_TOKENS", "3"), ("OLLAMA_HOST", "0.0.0.0:1")]);
        let args = ServeArgs {
            listen: Some("127.0.0.1:0".to_owned()),
            tokens: Some(5),
            token_delay_ms: Some(2.5),
            quiet: true,
            ..ServeArgs::default()
        };
        assert_eq!(args.apply(&mut cfg), Ok(()));
        assert_eq!(cfg.ollama.host.to_string(), "127.0.0.1:0");
        assert_eq!(cfg.knobs.tokens_per_reply, 5);
        assert_eq!(cfg.knobs.token_delay, Duration::from_micros(2500));
        assert!(!cfg.access_log);
        let bad = ServeArgs {
            error_rate: Some(3.0),
            ..ServeArgs::default()
        };
        assert!(bad.apply(&mut cfg).is_err());
    }
}
