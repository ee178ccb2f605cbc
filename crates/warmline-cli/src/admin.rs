//! `warmline status | models | warm | cool | daemon`: talk to a running gateway's
//! admin routes (the same handle methods the desktop app calls) and print what
//! they say, for people, or as JSON with `--json`.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

/// Where the running gateway is and how to print.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// The gateway's URL
    #[arg(
        long,
        global = true,
        env = "WARMLINE_URL",
        default_value = "http://127.0.0.1:11435"
    )]
    url: String,
    /// Bearer token, when the gateway needs one off this machine
    #[arg(long, global = true, env = "WARMLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The admin credential for Warmline's control plane [default: read from
    /// $XDG_STATE_HOME/warmline/admin-token, else from the system service's
    /// /var/lib/warmline/admin-token]
    #[arg(
        long,
        global = true,
        env = "WARMLINE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Print the gateway's JSON as it is
    #[arg(long, global = true)]
    json: bool,
}

/// `warmline daemon ...`
#[derive(Debug, clap::Subcommand)]
pub enum DaemonCommand {
    /// Show the supervised daemon's state
    Status,
    /// Start it (waits until it answers)
    Start,
    /// Stop a daemon Warmline started
    Stop,
    /// Restart a daemon Warmline started
    Restart,
    /// Print its last output
    Logs {
        /// How many of the last lines to print
        #[arg(long, default_value_t = 50)]
        lines: usize,
    },
}

impl Target {
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20 * 60))
            .build()
            .unwrap_or_default()
    }

    /// Sends a request with the credential its plane needs, and returns the
    /// response once its status says success; otherwise the error's message.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, String> {
        let response = self.request(method, path, body).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        Err(error_message(status, &bytes))
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, String> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let mut request = self.client().request(method, &url);
        let control = warmline::auth::Plane::of(path.split('?').next().unwrap_or(path))
            == warmline::auth::Plane::Control;
        let token = if control {
            self.admin_token.clone().or_else(local_admin_token)
        } else {
            self.token.clone()
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        request.send().await.map_err(|err| {
            format!(
                "cannot reach Warmline at {}: {}; is `warmline serve` (or the app) running?",
                self.url,
                warmline::wire::describe(&err)
            )
        })
    }

    /// [`Target::send`] and the answer's JSON.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let response = self.send(method, path, body).await?;
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// `GET /warmline/health`, whose 503 ("down") is an answer, not a failure.
    async fn health(&self) -> Result<Value, String> {
        let response = self
            .request(reqwest::Method::GET, "/warmline/health", None)
            .await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(health) if status.is_success() || health.get("status").is_some() => Ok(health),
            _ => Err(error_message(status, &bytes)),
        }
    }

    /// The gateway's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Whether to print the gateway's JSON as it is.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    pub(crate) fn print(&self, value: &Value, human: impl FnOnce(&Value) -> String) -> ExitCode {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", human(value));
        }
        ExitCode::SUCCESS
    }
}

/// The admin credential of gateways run by this user on this machine: the file
/// `warmline serve` and the app create (see `warmline::auth`).
fn local_admin_token() -> Option<String> {
    let own = warmline::config::default_admin_token_file();
    own.and_then(|path| warmline::auth::read_admin_token(&path))
        .or_else(|| warmline::auth::read_admin_token(std::path::Path::new(SYSTEM_ADMIN_TOKEN)))
}

/// The system service's credential (packaging/systemd: `StateDirectory=warmline`),
/// readable by members of the `warmline` group.
const SYSTEM_ADMIN_TOKEN: &str = "/var/lib/warmline/admin-token";

/// An error answer's message: Ollama's `{"error": ...}`, else the body as text.
fn error_message(status: reqwest::StatusCode, bytes: &[u8]) -> String {
    let value: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let message = value
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_owned());
    format!("{status}: {message}")
}

/// The lines of a streamed NDJSON answer, each parsed.
pub(crate) struct Lines {
    response: reqwest::Response,
    buffer: Vec<u8>,
    done: bool,
}

impl Lines {
    pub(crate) fn new(response: reqwest::Response) -> Lines {
        Lines {
            response,
            buffer: Vec::new(),
            done: false,
        }
    }

    /// The next line's JSON; `None` at the end of the answer. A line that is not
    /// JSON, or a connection cut mid-answer, is an error.
    pub(crate) async fn next(&mut self) -> Result<Option<Value>, String> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| format!("the gateway sent a line that is not JSON: {e}"));
            }
            if self.done {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                let rest = std::mem::take(&mut self.buffer);
                return serde_json::from_slice(&rest)
                    .map(Some)
                    .map_err(|e| format!("the answer ended in a partial line: {e}"));
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.buffer.extend_from_slice(&chunk),
                Ok(None) => self.done = true,
                Err(err) => {
                    return Err(format!(
                        "the answer broke off: {}",
                        warmline::wire::describe(&err)
                    ));
                }
            }
        }
    }
}

pub(crate) fn failed(err: String) -> ExitCode {
    eprintln!("warmline: {err}");
    ExitCode::FAILURE
}

/// `warmline status`: health, the daemon and the warm models in a few lines.
pub async fn status(target: Target) -> ExitCode {
    let get = reqwest::Method::GET;
    let (health, daemon, models) = match (
        target.health().await,
        target.call(get.clone(), "/warmline/daemon", None).await,
        target.call(get, "/warmline/models", None).await,
    ) {
        (Ok(h), Ok(d), Ok(m)) => (h, d, m),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return failed(e),
    };
    let all = serde_json::json!({ "health": health, "daemon": daemon, "models": models });
    target.print(&all, |all| {
        let health = &all["health"];
        let mut out = format!(
            "Warmline {} at {}: {}\n",
            text(&health["version"]),
            text(&health["listen"]),
            text(&health["status"])
        );
        for upstream in health["upstreams"].as_array().into_iter().flatten() {
            let state = if upstream["reachable"].as_bool() == Some(true) {
                "up".to_owned()
            } else {
                format!("down ({})", text(&upstream["last_error"]))
            };
            out += &format!(
                "  upstream {}: {state}, breaker {}\n",
                text(&upstream["url"]),
                text(&upstream["breaker"]["state"])
            );
        }
        out += &daemon_line(&all["daemon"]);
        let warm: Vec<String> = all["models"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["warm"].as_bool() == Some(true))
            .map(|m| {
                let state = if m["loaded"].as_bool() == Some(true) {
                    "loaded"
                } else if m["loading"].as_bool() == Some(true) {
                    "loading"
                } else {
                    "not loaded"
                };
                format!("{} ({state})", text(&m["name"]))
            })
            .collect();
        out += &format!(
            "warm: {}\n",
            if warm.is_empty() {
                "none".to_owned()
            } else {
                warm.join(", ")
            }
        );
        out
    })
}

fn daemon_line(daemon: &Value) -> String {
    let mut line = format!("daemon: {}", text(&daemon["state"]));
    if let Some(pid) = daemon["pid"].as_u64() {
        line += &format!(" (pid {pid})");
    }
    if let Some(version) = daemon["version"].as_str() {
        line += &format!(", Ollama {version}");
    }
    if let Some(message) = daemon["message"].as_str() {
        line += &format!("\n  {message}");
    }
    line + "\n"
}

/// `warmline models`: a table of installed models.
pub async fn models(target: Target) -> ExitCode {
    match target
        .call(reqwest::Method::GET, "/warmline/models", None)
        .await
    {
        Ok(models) => target.print(&models, |models| {
            let mut out = format!(
                "{:<28} {:>5} {:>8} {:>10} {:>10} {:>6}  {}\n",
                "NAME", "WARM", "LOADED", "SIZE", "MEMORY", "COLD", "UNTIL"
            );
            for m in models.as_array().into_iter().flatten() {
                let loaded = if m["loaded"].as_bool() == Some(true) {
                    "yes"
                } else if m["loading"].as_bool() == Some(true) {
                    "loading"
                } else {
                    "no"
                };
                out += &format!(
                    "{:<28} {:>5} {:>8} {:>10} {:>10} {:>6}  {}\n",
                    text(&m["name"]),
                    if m["warm"].as_bool() == Some(true) {
                        "yes"
                    } else {
                        "no"
                    },
                    loaded,
                    bytes(m["size"].as_u64().unwrap_or(0)),
                    bytes(m["memory"].as_u64().unwrap_or(0)),
                    m["cold_starts"].as_u64().unwrap_or(0),
                    until(&m["expires_at"]),
                );
            }
            out
        }),
        Err(err) => failed(err),
    }
}

/// `warmline warm MODEL` / `warmline cool MODEL`.
pub async fn warmth(target: Target, action: &str, model: String, wait: bool) -> ExitCode {
    let body = serde_json::json!({ "model": model, "wait": wait && action == "warm" });
    let body = if action == "warm" {
        body
    } else {
        serde_json::json!({ "model": model })
    };
    match target
        .call(
            reqwest::Method::POST,
            &format!("/warmline/models/{action}"),
            Some(body),
        )
        .await
    {
        Ok(view) => target.print(&view, |m| {
            let mut out = match action {
                "warm" if m["loaded"].as_bool() == Some(true) => {
                    format!("{} is warm and loaded\n", text(&m["name"]))
                }
                "warm" => format!("{} is warm; it is being loaded\n", text(&m["name"])),
                _ => format!(
                    "{} is no longer warm and is being unloaded\n",
                    text(&m["name"])
                ),
            };
            if let Some(error) = m["error"].as_str() {
                out += &format!("  its last load failed: {error}\n");
            }
            out
        }),
        Err(err) => failed(err),
    }
}

/// `warmline daemon ...`
pub async fn daemon(target: Target, command: DaemonCommand) -> ExitCode {
    let (method, path) = match &command {
        DaemonCommand::Status => (reqwest::Method::GET, "/warmline/daemon".to_owned()),
        DaemonCommand::Start => (reqwest::Method::POST, "/warmline/daemon/start".into()),
        DaemonCommand::Stop => (reqwest::Method::POST, "/warmline/daemon/stop".into()),
        DaemonCommand::Restart => (reqwest::Method::POST, "/warmline/daemon/restart".into()),
        DaemonCommand::Logs { lines } => (
            reqwest::Method::GET,
            format!("/warmline/daemon/logs?lines={lines}"),
        ),
    };
    match target.call(method, &path, None).await {
        Ok(value) => target.print(&value, |value| match command {
            DaemonCommand::Logs { .. } => value
                .as_array()
                .into_iter()
                .flatten()
                .map(|line| format!("[{}] {}\n", text(&line["stream"]), text(&line["text"])))
                .collect(),
            _ => daemon_line(value),
        }),
        Err(err) => failed(err),
    }
}

pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn bytes(n: u64) -> String {
    match n {
        0 => "-".to_owned(),
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n => format!("{:.0} MB", n as f64 / (1u64 << 20) as f64),
    }
}

fn until(expires: &Value) -> String {
    match expires.as_str() {
        None => "-".to_owned(),
        // Ollama's "for ever" is now + 292 years.
        Some(at)
            if at
                .get(..4)
                .and_then(|y| y.parse::<u32>().ok())
                .is_some_and(|y| y > 2100) =>
        {
            "forever".to_owned()
        }
        Some(at) => at.to_owned(),
    }
}
