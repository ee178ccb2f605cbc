//! `warmline report`: fetch a running gateway's history and draw it as one image
//! (PNG or SVG, by the file's extension); also used by `warmline bench --report`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use warmline::metrics::History;

/// Arguments of `warmline report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The gateway [env: WARMLINE_URL]
    #[arg(long, env = "WARMLINE_URL", default_value = "http://127.0.0.1:11435")]
    url: String,
    /// Where to write the image (.png or .svg)
    #[arg(long, value_name = "FILE")]
    out: std::path::PathBuf,
    /// How far back (per second up to 1h, per minute up to 24h)
    #[arg(long, default_value = "15m")]
    window: String,
    /// Bearer token, when the gateway needs one [env: WARMLINE_TOKEN]
    #[arg(long, env = "WARMLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

pub async fn run(args: ReportArgs) -> ExitCode {
    if humantime::parse_duration(&args.window).is_err() {
        eprintln!(
            "warmline report: --window {:?} is not a duration such as 15m or 1h",
            args.window
        );
        return ExitCode::from(2);
    }
    let url = format!(
        "{}/warmline/history?window={}",
        args.url.trim_end_matches('/'),
        args.window
    );
    let mut request = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
        .get(&url);
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let history: History = match request.send().await {
        Ok(response) if response.status().is_success() => {
            match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(history)) => history,
                _ => {
                    eprintln!("warmline report: {url} did not answer with a history");
                    return ExitCode::FAILURE;
                }
            }
        }
        Ok(response) => {
            eprintln!("warmline report: {url} answered {}", response.status());
            return ExitCode::FAILURE;
        }
        Err(err) => {
            eprintln!(
                "warmline report: cannot reach Warmline at {}: {}",
                args.url,
                warmline::wire::describe(&err)
            );
            return ExitCode::FAILURE;
        }
    };
    let title = format!("Warmline at {}, last {}", args.url, args.window);
    match write(&args.out, &history, &title) {
        Ok(()) => {
            println!("wrote {}", args.out.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("warmline report: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Draws `history` into `path`, as PNG or SVG by its extension.
pub fn write(path: &Path, history: &History, title: &str) -> Result<(), String> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let bytes = match extension.as_deref() {
        Some("png") => warmline::charts::report_png(history, title),
        Some("svg") => warmline::charts::report_svg(history, title).map(String::into_bytes),
        _ => {
            return Err(format!(
                "{}: the file must end in .png or .svg",
                path.display()
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
