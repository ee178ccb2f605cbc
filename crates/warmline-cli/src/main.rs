//! `warmline`: the headless front end of Warmline's gateway, for servers and for
//! anyone who wants the gateway without the desktop app. Wiring only: every
//! behaviour lives in the `warmline` library crate.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod bench;
mod report;
use warmline::{ConfigSource, Gateway, Overrides};

/// mimalloc rather than glibc malloc: a proxied request allocates a few hundred
/// times (hyper, reqwest, tower), and glibc's malloc/free were about a quarter of
/// its instructions (tests/bench/callgrind.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "warmline",
    version,
    about = "Makes a local Ollama stack fast: a drop-in gateway in front of Ollama"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway in the foreground until SIGINT or SIGTERM (SIGHUP reloads).
    Serve(ServeArgs),
    /// Load-test an Ollama-compatible endpoint (open or closed loop), or replay
    /// a usage trace.
    Bench(Box<bench::BenchArgs>),
    /// Draw a running gateway's recent history as one image (PNG or SVG).
    Report(report::ReportArgs),
    /// Show a running gateway's health, daemon and warm models.
    Status(admin::Target),
    /// List the models installed on a running gateway's hosts.
    Models(admin::Target),
    /// Keep a model loaded (on every host that has it).
    Warm {
        model: String,
        /// Answer at once instead of when the model is loaded
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Stop keeping a model loaded, and unload it.
    Cool {
        model: String,
        #[command(flatten)]
        target: admin::Target,
    },
    /// The Ollama daemon a running gateway supervises.
    Daemon {
        #[command(subcommand)]
        command: admin::DaemonCommand,
        #[command(flatten)]
        target: admin::Target,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on [env: WARMLINE_LISTEN] [default: 127.0.0.1:11435]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Upstream base URL, optionally followed by "weight=N", "parallel=N" (its
    /// OLLAMA_NUM_PARALLEL), "kind=openai" (an engine with only the
    /// OpenAI-compatible API: llama.cpp's server, vLLM, LM Studio) and
    /// "api_key=KEY", e.g. "http://10.0.0.5:11434 weight=2 parallel=4"; repeat
    /// for several hosts [env: WARMLINE_UPSTREAMS, comma-separated] [default:
    /// http://127.0.0.1:11434]
    #[arg(long = "upstream", value_name = "URL")]
    upstreams: Vec<String>,
    /// Shared Redis cache tier, e.g. redis://127.0.0.1:6379 [env: WARMLINE_REDIS]
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Turn the response cache and request coalescing off
    #[arg(long)]
    no_cache: bool,
    /// TOML config file; flags override the environment, which overrides the file
    #[arg(long, value_name = "FILE", env = "WARMLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Supervise `ollama serve` at the first upstream's address: adopt one that
    /// runs, or start one (and restart it when it crashes)
    #[arg(long)]
    supervise: bool,
    /// Where the warm set is kept [default: $XDG_CONFIG_HOME/warmline/state.json]
    #[arg(long, value_name = "FILE")]
    state_file: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    warmline::sys::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warmline: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Bench(args) => runtime.block_on(bench::run(*args)),
        Command::Report(args) => runtime.block_on(report::run(args)),
        Command::Status(target) => runtime.block_on(admin::status(target)),
        Command::Models(target) => runtime.block_on(admin::models(target)),
        Command::Warm {
            model,
            no_wait,
            target,
        } => runtime.block_on(admin::warmth(target, "warm", model, !no_wait)),
        Command::Cool { model, target } => {
            runtime.block_on(admin::warmth(target, "cool", model, false))
        }
        Command::Daemon { command, target } => runtime.block_on(admin::daemon(target, command)),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    // Before the configuration is read: the default connection cap follows it.
    warmline::sys::os::raise_fd_limit();
    let overrides = Overrides {
        listen: args.listen,
        upstreams: args.upstreams,
        redis: args.redis,
        no_cache: args.no_cache,
        supervise: args.supervise,
        state_file: args.state_file,
    };
    let mut source = ConfigSource {
        file: args.config,
        overrides,
    };
    let config = match source.load() {
        Ok(mut config) => {
            // Neither the file nor a flag says where the warm set lives: under the
            // user's config directory, for this run and every reload.
            if config.state_file.is_none()
                && let Some(path) = warmline::state::default_state_file()
            {
                source.overrides.state_file = Some(path.display().to_string());
                config.state_file = Some(path);
            }
            config
        }
        Err(err) => {
            eprintln!("warmline: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let gateway = match Gateway::start(config).await {
        Ok(gateway) => gateway,
        Err(err) => {
            eprintln!("warmline: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(file) = &gateway.config().admin.token_file {
        tracing::info!(
            "control plane: admin credential in {} (the warmline CLI reads it)",
            file.display()
        );
    }
    gateway.set_source(source);
    // One machine-readable line, so scripts and tests can find a port-0 gateway.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "warmline listening on {}", gateway.url());
    let _ = stdout.flush();
    drop(stdout);

    wait_for_signal(&gateway).await;
    gateway.shutdown().await;
    ExitCode::SUCCESS
}

/// Resolves on Ctrl-C (the only signal elsewhere than Unix).
#[cfg(not(unix))]
async fn wait_for_signal(_gateway: &warmline::GatewayHandle) {
    let _ = tokio::signal::ctrl_c().await;
}

/// Resolves on SIGINT or SIGTERM; reloads the configuration on every SIGHUP.
#[cfg(unix)]
async fn wait_for_signal(gateway: &warmline::GatewayHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(term), Ok(hup)) => (term, hup),
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!("cannot listen for SIGTERM/SIGHUP: {err}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = hup.recv() => match gateway.reload().await {
                Ok(applied) if applied.changed.is_empty() => {
                    tracing::info!("SIGHUP: configuration unchanged");
                }
                Ok(applied) => tracing::info!(changed = ?applied.changed, "SIGHUP: configuration reloaded"),
                Err(err) => tracing::error!("SIGHUP: configuration refused, the old one stays: {err}"),
            },
        }
    }
    tracing::info!("shutting down");
}
