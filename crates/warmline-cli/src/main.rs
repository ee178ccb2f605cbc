//! `warmline`: the headless front end of Warmline's gateway, for servers and for
//! anyone who wants the gateway without the desktop app. Wiring only: every
//! behaviour lives in the `warmline` library crate.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod bench;
mod ollama;
mod report;
mod run;
mod shell;
#[cfg(unix)]
mod systemd;
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
    /// List the models loaded now on the gateway's hosts (as `ollama ps`).
    Ps(admin::Target),
    /// List the models installed on the gateway's hosts (as `ollama list`).
    #[command(visible_alias = "ls")]
    List(admin::Target),
    /// Installed models with Warmline's view: warm, loaded, memory, cold starts.
    Models(admin::Target),
    /// Download a model through the gateway, with a progress bar.
    Pull {
        /// The model to download, e.g. "llama3.2" or "qwen3:0.6b"
        model: String,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Chat with a model through the gateway; after each reply, the time to the
    /// first token, tokens/s and the cache outcome.
    Run {
        /// The model to chat with
        model: String,
        /// Ask this once and exit (also read from stdin when it is not a
        /// terminal); without it, chat one line at a time until /bye
        prompt: Option<String>,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Keep a model loaded (on every host that has it).
    Warm {
        /// The model to keep loaded
        model: String,
        /// Answer at once instead of when the model is loaded
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        target: admin::Target,
    },
    /// Stop keeping a model loaded, and unload it (as `ollama stop`).
    #[command(visible_alias = "cool")]
    Stop {
        /// The model to unload
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
    /// Print a shell completion script, e.g. `warmline completions bash >
    /// ~/.local/share/bash-completion/completions/warmline`.
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Write the man pages (warmline.1 and one per command) into a directory.
    #[command(hide = true)]
    Manpages {
        /// Where to write them
        dir: PathBuf,
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
    /// [default: $XDG_CONFIG_HOME/warmline/config.toml, when it exists]
    #[arg(long, value_name = "FILE", env = "WARMLINE_CONFIG")]
    config: Option<PathBuf>,
    /// Supervise `ollama serve` at the first upstream's address: adopt one that
    /// runs, or start one (and restart it when it crashes)
    #[arg(long)]
    supervise: bool,
    /// Where the warm set is kept [default: $XDG_STATE_HOME/warmline/state.json]
    #[arg(long, value_name = "FILE")]
    state_file: Option<String>,
    /// How log lines are written to stderr; the ready line stays on stdout
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    };
    warmline::sys::logging::init_with(format.into());
    // Neither needs a runtime, nor a gateway.
    match &cli.command {
        Command::Completions { shell } => return shell::completions::<Cli>(*shell),
        Command::Manpages { dir } => return shell::manpages::<Cli>(dir),
        _ => {}
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warmline: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Bench(args) => bench::run(*args).await,
            Command::Report(args) => report::run(args).await,
            Command::Status(target) => admin::status(target).await,
            Command::Ps(target) => ollama::ps(target).await,
            Command::List(target) => ollama::list(target).await,
            Command::Models(target) => admin::models(target).await,
            Command::Pull { model, target } => ollama::pull(target, model).await,
            Command::Run {
                model,
                prompt,
                target,
            } => run::run(target, model, prompt).await,
            Command::Warm {
                model,
                no_wait,
                target,
            } => admin::warmth(target, "warm", model, !no_wait).await,
            Command::Stop { model, target } => admin::warmth(target, "cool", model, false).await,
            Command::Daemon { command, target } => admin::daemon(target, command).await,
            Command::Completions { .. } | Command::Manpages { .. } => ExitCode::SUCCESS,
        }
    })
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
enum LogFormat {
    /// Lines of text (no timestamps when journald is the sink)
    #[default]
    Text,
    /// One JSON object per line
    Json,
}

impl From<LogFormat> for warmline::sys::logging::LogFormat {
    fn from(format: LogFormat) -> Self {
        match format {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
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
    // Whatever still sits where an older version kept it moves first.
    warmline::state::adopt_old_state_file();
    let mut source = ConfigSource::new(args.config, overrides);
    if let Some(file) = source.file_in_use() {
        tracing::info!("configuration: {}", file.display());
    }
    let config = match source.load() {
        Ok(mut config) => {
            // Neither the file nor a flag says where the warm set lives: under the
            // user's state directory, for this run and every reload.
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

    // Under systemd (Type=notify): ready once listening, stopping once draining.
    #[cfg(unix)]
    let notifier = systemd::Notifier::from_env();
    #[cfg(unix)]
    if let Some(notifier) = &notifier {
        notifier.notify(&format!("READY=1\nSTATUS=listening on {}", gateway.url()));
    }

    wait_for_signal(&gateway).await;
    #[cfg(unix)]
    if let Some(notifier) = &notifier {
        notifier.notify("STOPPING=1\nSTATUS=draining");
    }
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
