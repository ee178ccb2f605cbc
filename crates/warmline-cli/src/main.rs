//! `warmline`: the headless front end of Warmline's gateway, for servers and for
//! anyone who wants the gateway without the desktop app. Wiring only: every
//! behaviour lives in the `warmline` library crate.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
use warmline::{ConfigSource, Gateway, Overrides};

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
    /// Run the gateway in the foreground until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Load-test an Ollama-compatible endpoint (open or closed loop).
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on [env: WARMLINE_LISTEN] [default: 127.0.0.1:11435]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Ollama base URL; repeat for several hosts [env: WARMLINE_UPSTREAMS, comma-separated]
    /// [default: http://127.0.0.1:11434]
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    warmline::logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warmline: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Bench(args) => runtime.block_on(bench::run(args)),
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let overrides = Overrides {
        listen: args.listen,
        upstreams: args.upstreams,
        redis: args.redis,
        no_cache: args.no_cache,
    };
    let source = ConfigSource {
        file: args.config,
        overrides,
    };
    let config = match source.load() {
        Ok(config) => config,
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
