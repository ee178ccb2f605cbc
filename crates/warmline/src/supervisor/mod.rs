//! Supervision of `ollama serve`: adopt a daemon that already runs, otherwise
//! start one with tuned settings, restart it when it crashes, and never leave it
//! behind.
//!
//! ```text
//!                 answers HEAD /                       stops answering (3 probes)
//!   ┌───────┐ ───────────────────────▶ ┌──────────┐ ─────────────────────────┐
//!   │ start │                          │ external │                          │
//!   └───────┘ ◀────────────────────────┴──────────┘ ◀── someone else started ┤
//!     │  │        executable not found                 one (idle probes)     │
//!     │  └─────────────────────────────▶ ┌──────────────────────────────┐    │
//!     │ spawned, answers HEAD /          │ idle: stopped, not_found,    │◀───┘
//!     ▼                                  │ crash_loop, failed           │
//!   ┌─────────┐   exit, or hung          └──────────────────────────────┘
//!   │ running │ ──────────────▶ crashed ──▶ restarting (backoff) ──▶ start
//!   └─────────┘                    └── too many within the window ──▶ crash_loop
//! ```
//!
//! The state machine runs on its own task and owns the daemon; the rest of
//! Warmline reads a status snapshot (a `watch`), is told through `ready` each
//! time a daemon becomes available (so warm models are loaded again), and sends
//! commands that are answered once the daemon settles. An adopted daemon is
//! never stopped or restarted: its owner is someone else.
//!
//! Ollama opens its port before it is ready (GPU discovery runs after the bind),
//! so readiness is `HEAD /` answering, probed with a timeout until
//! `daemon.ready_timeout`. What the daemon runs with is read back from its
//! `server config` log line and compared with what was asked for.

mod backoff;
mod logs;
mod process;
mod resources;

pub use logs::{LogLine, Logs};
pub use resources::Resources;

/// Where `ollama` would be started from: `configured` if given (it must be an
/// executable file), else the first `ollama` on `PATH`. The error says how to
/// install Ollama.
pub fn find_ollama(configured: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    process::find_executable(configured)
}

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::config::{DaemonConfig, KeepAlive};
use backoff::{Backoff, Verdict};
use logs::ServerConfig;
use process::{Daemon, Exit};

/// How often a running daemon is probed and measured.
const TICK: Duration = Duration::from_secs(2);
/// Failed probes in a row after which a running daemon counts as hung.
const HUNG_AFTER: u32 = 3;
/// How often an idle supervisor looks for a daemon someone else started.
const IDLE_TICK: Duration = Duration::from_secs(5);
/// Timeout of one readiness or liveness probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What to supervise: a daemon at `url` (the first upstream) run with `config`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub url: Url,
    pub config: DaemonConfig,
}

impl Target {
    /// The environment a started daemon gets on top of Warmline's own.
    fn env(&self) -> Vec<(String, String)> {
        let host = format!(
            "{}:{}",
            self.url.host_str().unwrap_or("127.0.0.1"),
            self.url.port_or_known_default().unwrap_or(11434)
        );
        let mut env = vec![
            ("OLLAMA_HOST".to_owned(), host),
            (
                "OLLAMA_KEEP_ALIVE".to_owned(),
                self.config.keep_alive.to_env(),
            ),
            (
                "OLLAMA_NUM_PARALLEL".to_owned(),
                self.config.num_parallel.to_string(),
            ),
            (
                "OLLAMA_MAX_LOADED_MODELS".to_owned(),
                self.config.max_loaded_models.to_string(),
            ),
        ];
        env.extend(self.config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    /// Whether a daemon started for `self` must be restarted to serve `other`.
    fn needs_restart_for(&self, other: &Target) -> bool {
        self.url != other.url
            || self.env() != other.env()
            || self.config.executable != other.config.executable
    }

    fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }
}

/// Where the daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaemonState {
    /// Warmline does not supervise a daemon (`daemon.supervise` is off).
    Disabled,
    /// Started, not answering yet.
    Starting,
    /// Started by Warmline and answering.
    Running,
    /// Started by someone else and answering; Warmline only watches it.
    External,
    /// Exited unexpectedly; a restart is due after `retry_in_ms`.
    Restarting,
    /// Stopped on request.
    Stopped,
    /// Exited too often in a short time; Warmline stopped restarting it.
    CrashLoop,
    /// No `ollama` executable was found.
    NotFound,
    /// Could not be started (see `message`).
    Failed,
}

/// What the daemon said it runs with, next to what Warmline asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmed {
    /// `OLLAMA_KEEP_ALIVE`, `OLLAMA_NUM_PARALLEL`, `OLLAMA_MAX_LOADED_MODELS` as
    /// the daemon reported them.
    pub reported: std::collections::BTreeMap<String, String>,
    /// Settings that differ from what was asked for (empty: all took effect).
    pub mismatched: Vec<String>,
}

/// A snapshot of the supervisor, as `/warmline/daemon` and the app show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub state: DaemonState,
    /// The address it serves on (the first upstream).
    pub url: String,
    /// Whether Warmline started it (and so stops it when it stops).
    pub managed: bool,
    pub pid: Option<u32>,
    pub executable: Option<String>,
    /// `/api/version` of the daemon answering.
    pub version: Option<String>,
    /// When it last became ready, in milliseconds since the Unix epoch.
    pub up_since_ms: Option<u64>,
    /// Restarts after unexpected exits.
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// What a person should know about the state, in a sentence.
    pub message: Option<String>,
    /// Until the next restart attempt, while restarting.
    pub retry_in_ms: Option<u64>,
    pub settings: Option<Confirmed>,
    pub resources: Option<Resources>,
}

impl DaemonStatus {
    /// The status when nothing is supervised.
    pub fn disabled(url: &str) -> DaemonStatus {
        DaemonStatus {
            state: DaemonState::Disabled,
            url: url.to_owned(),
            managed: false,
            pid: None,
            executable: None,
            version: None,
            up_since_ms: None,
            restarts: 0,
            last_exit: None,
            message: Some(
                "Warmline does not supervise Ollama here (daemon.supervise is off)".to_owned(),
            ),
            retry_in_ms: None,
            settings: None,
            resources: None,
        }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "the Ollama at {0} was started outside Warmline; Warmline watches it but never stops \
         or restarts it"
    )]
    External(String),
    #[error("Warmline does not supervise Ollama here: set daemon.supervise = true")]
    NotSupervised,
    #[error("the supervisor has stopped")]
    Gone,
}

#[derive(Debug)]
enum Command {
    Start,
    Stop,
    Restart,
    Configure(Box<Target>),
    Shutdown,
}

struct Request {
    command: Command,
    reply: oneshot::Sender<Result<DaemonStatus, DaemonError>>,
}

/// The handle: commands in, status out. Dropping every handle stops the daemon.
#[derive(Debug)]
pub struct Supervisor {
    commands: mpsc::Sender<Request>,
    status: watch::Receiver<DaemonStatus>,
    ready: watch::Receiver<u64>,
    logs: Arc<Logs>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Supervisor {
    /// Starts supervising `target` (adopting or starting its daemon at once).
    pub fn spawn(target: Target, client: reqwest::Client) -> Supervisor {
        let logs = Arc::new(Logs::new(
            target.config.log_lines,
            target.config.log_file.clone(),
        ));
        let (commands, requests) = mpsc::channel(16);
        let (status_tx, status) = watch::channel(DaemonStatus {
            state: DaemonState::Starting,
            ..DaemonStatus::disabled(&target.base())
        });
        let (ready_tx, ready) = watch::channel(0);
        let machine = Machine {
            backoff: Backoff::new(&target.config),
            target,
            requests,
            status: Arc::new(status_tx),
            ready: ready_tx,
            logs: Arc::clone(&logs),
            sampler: resources::Sampler::new(),
            client,
            waiters: Vec::new(),
            restarts: 0,
            settings: Arc::new(std::sync::Mutex::new(None)),
        };
        let task = tokio::spawn(machine.run());
        Supervisor {
            commands,
            status,
            ready,
            logs,
            task: std::sync::Mutex::new(Some(task)),
        }
    }

    pub fn status(&self) -> DaemonStatus {
        self.status.borrow().clone()
    }

    /// Bumped each time a daemon becomes ready (started, restarted or adopted).
    pub fn ready(&self) -> watch::Receiver<u64> {
        self.ready.clone()
    }

    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Starts the daemon if it is not running; answers once it is (or failed).
    pub async fn start(&self) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Start).await
    }

    /// Stops a daemon Warmline started.
    pub async fn stop(&self) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Stop).await
    }

    /// Stops and starts again a daemon Warmline started.
    pub async fn restart(&self) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Restart).await
    }

    /// New settings: a daemon Warmline started is restarted if they change its
    /// environment; an adopted one keeps running as it is.
    pub async fn configure(&self, target: Target) -> Result<DaemonStatus, DaemonError> {
        self.send(Command::Configure(Box::new(target))).await
    }

    /// Stops a daemon Warmline started (never an adopted one) and ends the task.
    pub async fn shutdown(&self) {
        let _ = self.send(Command::Shutdown).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn send(&self, command: Command) -> Result<DaemonStatus, DaemonError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Request { command, reply })
            .await
            .map_err(|_| DaemonError::Gone)?;
        answer.await.map_err(|_| DaemonError::Gone)?
    }
}

/// The state machine's next step.
enum Next {
    Start,
    Adopt,
    Run(Daemon, Instant),
    Crashed(Exit),
    Idle,
    Exit,
}

struct Machine {
    target: Target,
    requests: mpsc::Receiver<Request>,
    status: Arc<watch::Sender<DaemonStatus>>,
    ready: watch::Sender<u64>,
    logs: Arc<Logs>,
    backoff: Backoff,
    sampler: resources::Sampler,
    client: reqwest::Client,
    /// Replies due when the daemon next settles (running, external, or idle).
    waiters: Vec<oneshot::Sender<Result<DaemonStatus, DaemonError>>>,
    restarts: u32,
    /// The daemon's `server config` line, once its output reader saw it.
    settings: Arc<std::sync::Mutex<Option<ServerConfig>>>,
}

impl Machine {
    async fn run(mut self) {
        let mut next = Next::Start;
        loop {
            next = match next {
                Next::Start => self.start().await,
                Next::Adopt => self.adopted().await,
                Next::Run(daemon, since) => self.running(daemon, since).await,
                Next::Crashed(exit) => self.crashed(exit).await,
                Next::Idle => self.idle().await,
                Next::Exit => break,
            };
        }
        self.settle();
    }

    // ── states ──────────────────────────────────────────────────────────────

    async fn start(&mut self) -> Next {
        self.update(|s| {
            s.state = DaemonState::Starting;
            s.message = None;
            s.retry_in_ms = None;
        });
        if self.answers().await {
            return Next::Adopt;
        }
        let executable = match process::find_executable(self.target.config.executable.as_deref()) {
            Ok(path) => path,
            Err(message) => {
                self.logs.note(&message);
                self.update(|s| {
                    s.state = DaemonState::NotFound;
                    s.message = Some(message);
                    s.pid = None;
                });
                return Next::Idle;
            }
        };
        let env = self.target.env();
        // Only Warmline's own settings are shown with their values: `daemon.env`
        // may carry credentials (a proxy URL with a password, an API key).
        let shown: Vec<String> = env
            .iter()
            .map(|(k, v)| {
                if k.starts_with("OLLAMA_") && !self.target.config.env.contains_key(k) {
                    format!("{k}={v}")
                } else {
                    format!("{k}=***")
                }
            })
            .collect();
        self.logs.note(&format!(
            "starting {} serve with {}",
            executable.display(),
            shown.join(" ")
        ));
        let (mut daemon, (stdout, stderr)) = match process::spawn(&executable, &env) {
            Ok(spawned) => spawned,
            Err(err) => {
                let message = format!("cannot start {}: {err}", executable.display());
                self.logs.note(&message);
                self.update(|s| {
                    s.state = DaemonState::Failed;
                    s.message = Some(message);
                });
                return Next::Idle;
            }
        };
        if let Ok(mut seen) = self.settings.lock() {
            *seen = None;
        }
        self.read_output(stdout, "stdout");
        self.read_output(stderr, "stderr");
        let pid = daemon.pid;
        self.update(|s| {
            s.pid = Some(pid);
            s.managed = true;
            s.executable = Some(executable.display().to_string());
            s.settings = None;
        });
        let started = Instant::now();
        loop {
            if let Some(exit) = daemon.exit_status() {
                process::reap_group(pid);
                return Next::Crashed(exit);
            }
            if self.answers().await {
                break;
            }
            if started.elapsed() >= self.target.config.ready_timeout {
                let after = humantime::format_duration(self.target.config.ready_timeout);
                self.logs
                    .note(&format!("not answering after {after}: stopping it"));
                process::stop(&mut daemon, self.target.config.stop_grace).await;
                return Next::Crashed(Exit(format!("did not answer within {after}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let version = self.version().await;
        self.logs
            .note(&format!("ready after {} ms", started.elapsed().as_millis()));
        self.update(|s| {
            s.state = DaemonState::Running;
            s.version = version;
            s.up_since_ms = Some(now_ms());
            s.message = None;
        });
        self.ready.send_modify(|n| *n += 1);
        self.settle();
        Next::Run(daemon, Instant::now())
    }

    async fn running(&mut self, mut daemon: Daemon, since: Instant) -> Next {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_probes = 0;
        let mut watch_exit = Daemon {
            pid: daemon.pid,
            exit: daemon.exit.clone(),
        };
        loop {
            tokio::select! {
                exit = watch_exit.exited() => {
                    process::reap_group(daemon.pid);
                    self.backoff.running_since(since);
                    return Next::Crashed(exit);
                }
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else {
                        self.stop_daemon(&mut daemon).await;
                        return Next::Exit;
                    };
                    match command {
                        Command::Shutdown => {
                            self.stop_daemon(&mut daemon).await;
                            self.waiters.push(reply);
                            return Next::Exit;
                        }
                        Command::Stop => {
                            self.stop_daemon(&mut daemon).await;
                            self.waiters.push(reply);
                            return Next::Idle;
                        }
                        Command::Restart => {
                            self.logs.note("restart requested");
                            self.stop_daemon(&mut daemon).await;
                            self.backoff.reset();
                            self.waiters.push(reply);
                            return Next::Start;
                        }
                        Command::Start => self.answer(reply),
                        Command::Configure(target) => {
                            let restart = self.target.needs_restart_for(&target);
                            self.retarget(*target);
                            if restart {
                                self.logs.note("settings changed: restarting with the new ones");
                                self.stop_daemon(&mut daemon).await;
                                self.waiters.push(reply);
                                return Next::Start;
                            }
                            self.answer(reply);
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.answers().await {
                        failed_probes = 0;
                    } else {
                        failed_probes += 1;
                        if failed_probes >= HUNG_AFTER {
                            self.logs.note("stopped answering HEAD /: killing it");
                            process::stop(&mut daemon, Duration::ZERO).await;
                            self.backoff.running_since(since);
                            return Next::Crashed(Exit(format!(
                                "stopped answering ({HUNG_AFTER} health checks in a row)"
                            )));
                        }
                    }
                    self.measure(Some(daemon.pid));
                }
            }
        }
    }

    async fn crashed(&mut self, exit: Exit) -> Next {
        self.restarts += 1;
        let restarts = self.restarts;
        self.logs.note(&format!("exited unexpectedly: {}", exit.0));
        let jitter = rand::random::<f64>() * 2.0 - 1.0;
        let delay = match self.backoff.crashed(jitter) {
            Verdict::CrashLoop { crashes, window } => {
                let last = self
                    .logs
                    .last_daemon_line()
                    .map(|line| format!(" Its last output: {line}"))
                    .unwrap_or_default();
                let message = format!(
                    "ollama serve exited {crashes} times within {}, so Warmline stopped \
                     restarting it. Last exit: {}.{last} Fix the cause, then start it again.",
                    humantime::format_duration(window),
                    exit.0
                );
                self.logs.note(&message);
                self.update(|s| {
                    s.state = DaemonState::CrashLoop;
                    s.message = Some(message);
                    s.last_exit = Some(exit.0.clone());
                    s.restarts = restarts;
                    s.pid = None;
                    s.retry_in_ms = None;
                });
                return Next::Idle;
            }
            Verdict::RestartIn(delay) => delay,
        };
        self.update(|s| {
            s.state = DaemonState::Restarting;
            s.last_exit = Some(exit.0.clone());
            s.restarts = restarts;
            s.pid = None;
            s.retry_in_ms = Some(delay.as_millis() as u64);
            s.message = Some(format!(
                "ollama serve exited ({}); restarting in {}",
                exit.0,
                humantime::format_duration(Duration::from_millis(delay.as_millis() as u64))
            ));
        });
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => return Next::Start,
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else { return Next::Exit };
                    match command {
                        Command::Shutdown => { self.waiters.push(reply); return Next::Exit }
                        Command::Stop => { self.waiters.push(reply); return Next::Idle }
                        Command::Start | Command::Restart => {
                            self.backoff.reset();
                            self.waiters.push(reply);
                            return Next::Start;
                        }
                        Command::Configure(target) => {
                            self.retarget(*target);
                            self.answer(reply);
                        }
                    }
                }
            }
        }
    }

    async fn adopted(&mut self) -> Next {
        let version = self.version().await;
        let url = self.target.base();
        self.logs.note(&format!(
            "an Ollama already answers at {url}: watching it, not starting another"
        ));
        self.update(|s| {
            s.state = DaemonState::External;
            s.managed = false;
            s.pid = None;
            s.executable = None;
            s.version = version;
            s.up_since_ms = Some(now_ms());
            s.settings = None;
            s.message = Some(format!(
                "Ollama at {url} was started outside Warmline; daemon settings apply only to \
                 a daemon Warmline starts"
            ));
        });
        self.ready.send_modify(|n| *n += 1);
        self.settle();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed_probes = 0;
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else { return Next::Exit };
                    match command {
                        Command::Shutdown => { self.waiters.push(reply); return Next::Exit }
                        Command::Stop | Command::Restart => {
                            let _ = reply.send(Err(DaemonError::External(self.target.base())));
                        }
                        Command::Start => self.answer(reply),
                        Command::Configure(target) => {
                            let moved = target.url != self.target.url;
                            self.retarget(*target);
                            if moved {
                                self.waiters.push(reply);
                                return Next::Start;
                            }
                            self.answer(reply);
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.answers().await {
                        failed_probes = 0;
                        self.measure(None);
                    } else {
                        failed_probes += 1;
                        if failed_probes >= HUNG_AFTER {
                            self.logs.note("the Ollama started outside Warmline is gone: starting one");
                            return Next::Start;
                        }
                    }
                }
            }
        }
    }

    async fn idle(&mut self) -> Next {
        if self.status.borrow().state == DaemonState::Running {
            self.update(|s| {
                s.state = DaemonState::Stopped;
                s.pid = None;
                s.message = Some(
                    "stopped; start it from the tray, the dashboard or POST /warmline/daemon/start"
                        .into(),
                );
            });
        }
        self.settle();
        let mut tick = tokio::time::interval(IDLE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(Request { command, reply }) = request else { return Next::Exit };
                    match command {
                        Command::Shutdown => { self.waiters.push(reply); return Next::Exit }
                        Command::Start | Command::Restart => {
                            self.backoff.reset();
                            self.waiters.push(reply);
                            return Next::Start;
                        }
                        Command::Stop => self.answer(reply),
                        Command::Configure(target) => {
                            let retry = self.status.borrow().state == DaemonState::NotFound
                                && target.config.executable != self.target.config.executable;
                            self.retarget(*target);
                            if retry {
                                self.waiters.push(reply);
                                return Next::Start;
                            }
                            self.answer(reply);
                        }
                    }
                }
                _ = tick.tick() => {
                    if self.answers().await {
                        return Next::Adopt;
                    }
                }
            }
        }
    }

    // ── helpers ─────────────────────────────────────────────────────────────

    async fn stop_daemon(&mut self, daemon: &mut Daemon) {
        self.logs.note("stopping it");
        let exit = process::stop(daemon, self.target.config.stop_grace).await;
        self.logs.note(&format!("stopped: {}", exit.0));
        self.update(|s| {
            s.state = DaemonState::Stopped;
            s.pid = None;
            s.last_exit = Some(exit.0.clone());
            s.resources = None;
            s.message = None;
        });
    }

    fn retarget(&mut self, target: Target) {
        self.backoff = Backoff::new(&target.config);
        self.update(|s| s.url = target.base());
        self.target = target;
    }

    /// Whether a daemon answers `HEAD /` at the target address.
    async fn answers(&self) -> bool {
        let request = self
            .client
            .head(self.target.url.as_str())
            .timeout(PROBE_TIMEOUT)
            .send();
        matches!(request.await, Ok(r) if !r.status().is_server_error())
    }

    async fn version(&self) -> Option<String> {
        let url = format!("{}/api/version", self.target.base());
        let response = self
            .client
            .get(url)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
        body.get("version")?.as_str().map(str::to_owned)
    }

    fn measure(&mut self, pid: Option<u32>) {
        let resources = self.sampler.sample(pid);
        self.update(|s| s.resources = resources);
    }

    /// Copies one output stream into the log tail, and reads the settings line.
    fn read_output<R>(&self, stream: R, name: &'static str)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let logs = Arc::clone(&self.logs);
        let status = Arc::clone(&self.status);
        let settings = Arc::clone(&self.settings);
        let asked = self.target.config.clone();
        tokio::spawn(async move {
            // Bytes, not `String` lines: one line that is not UTF-8 must neither
            // stop the reader nor close the pipe (the daemon's next write would
            // then fail, and a real Ollama dies of SIGPIPE). Read to the end,
            // whatever comes, decoded lossily.
            let mut reader = tokio::io::BufReader::new(stream);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // A read error on a pipe: nothing more will come.
                    Err(_) => break,
                }
                let text = String::from_utf8_lossy(&raw);
                let line = text.trim_end_matches(['\n', '\r']);
                if let Some(config) = ServerConfig::parse(line) {
                    let confirmed = confirm(&asked, &config);
                    if !confirmed.mismatched.is_empty() {
                        logs.note(&format!(
                            "the daemon runs with other settings than asked for: {}",
                            confirmed.mismatched.join(", ")
                        ));
                    }
                    status.send_modify(|s| s.settings = Some(confirmed));
                    if let Ok(mut seen) = settings.lock() {
                        *seen = Some(config);
                    }
                }
                logs.push(name, line);
            }
        });
    }

    fn update(&self, change: impl FnOnce(&mut DaemonStatus)) {
        self.status.send_modify(change);
    }

    fn answer(&self, reply: oneshot::Sender<Result<DaemonStatus, DaemonError>>) {
        let _ = reply.send(Ok(self.status.borrow().clone()));
    }

    /// Answers every command waiting for the daemon to settle.
    fn settle(&mut self) {
        let status = self.status.borrow().clone();
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Ok(status.clone()));
        }
    }
}

/// Compares the settings a daemon reported with those it was started with.
fn confirm(asked: &DaemonConfig, reported: &ServerConfig) -> Confirmed {
    let mut mismatched = Vec::new();
    let mut shown = std::collections::BTreeMap::new();
    type Check<'a> = (&'static str, Box<dyn Fn(&str) -> bool + 'a>);
    let checks: [Check<'_>; 3] = [
        (
            "OLLAMA_KEEP_ALIVE",
            Box::new(|value: &str| match (asked.keep_alive, go_duration(value)) {
                (KeepAlive::Forever, Some(d)) => d > Duration::from_secs(100 * 365 * 86_400),
                (KeepAlive::For(want), Some(d)) => d.as_secs() == want.as_secs(),
                (_, None) => false,
            }),
        ),
        (
            "OLLAMA_NUM_PARALLEL",
            Box::new(|value: &str| value == asked.num_parallel.to_string()),
        ),
        (
            "OLLAMA_MAX_LOADED_MODELS",
            Box::new(|value: &str| value == asked.max_loaded_models.to_string()),
        ),
    ];
    for (key, matches) in checks {
        if let Some(value) = reported.get(key) {
            shown.insert(key.to_owned(), value.to_owned());
            if !matches(value) {
                mismatched.push(format!("{key}={value}"));
            }
        }
    }
    Confirmed {
        reported: shown,
        mismatched,
    }
}

/// Parses a Go duration as Ollama prints it (`30m0s`, `2562047h47m16.854775807s`).
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    // A bare number is seconds (how OLLAMA_KEEP_ALIVE may be given).
    if let Ok(seconds) = rest.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(split);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = next;
    }
    Some(Duration::from_secs_f64(total))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration("30m0s"), Some(Duration::from_secs(1800)));
        assert_eq!(go_duration("5m0s"), Some(Duration::from_secs(300)));
        assert_eq!(go_duration("1h30m0s"), Some(Duration::from_secs(5400)));
        assert!(
            go_duration("2562047h47m16.854775807s").is_some_and(|d| d.as_secs() > 9_000_000_000)
        );
        assert_eq!(go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(go_duration("soon"), None);
    }

    #[test]
    fn reported_settings_are_compared_with_the_asked_ones() {
        let asked = crate::Config::default().daemon;
        let line = |ka: &str, np: &str| {
            ServerConfig::parse(&format!(
                "msg=\"server config\" env=\"map[OLLAMA_KEEP_ALIVE:{ka} OLLAMA_MAX_LOADED_MODELS:0 OLLAMA_NUM_PARALLEL:{np}]\""
            ))
            .expect("line")
        };
        assert!(confirm(&asked, &line("30m0s", "2")).mismatched.is_empty());
        assert_eq!(
            confirm(&asked, &line("5m0s", "1")).mismatched,
            ["OLLAMA_KEEP_ALIVE=5m0s", "OLLAMA_NUM_PARALLEL=1"]
        );
        let mut forever = asked.clone();
        forever.keep_alive = KeepAlive::Forever;
        assert!(
            confirm(&forever, &line("2562047h47m16.854775807s", "2"))
                .mismatched
                .is_empty()
        );
    }

    #[test]
    fn the_daemon_environment_names_the_address_and_the_settings() {
        let config = crate::Config::default();
        let target = Target {
            url: config.upstreams[0].url.clone(),
            config: config.daemon.clone(),
        };
        let env = target.env();
        assert_eq!(env[0], ("OLLAMA_HOST".into(), "127.0.0.1:11434".into()));
        assert_eq!(env[1], ("OLLAMA_KEEP_ALIVE".into(), "1800".into()));
        assert_eq!(env[2], ("OLLAMA_NUM_PARALLEL".into(), "2".into()));
        let mut other = target.clone();
        other.config.stop_grace = Duration::from_secs(1);
        assert!(
            !target.needs_restart_for(&other),
            "only the environment matters"
        );
        other.config.num_parallel = std::num::NonZeroUsize::new(4).expect("4");
        assert!(target.needs_restart_for(&other));
    }
}
