//! `warmline ps | list | pull`: Ollama's own commands, through the gateway.
//!
//! People who use Ollama type `ollama ps`, `ollama list` and `ollama pull`; these
//! print what those print, in the same columns and units (sizes in decimal GB,
//! "4 minutes from now"), but ask Warmline, so they see every host behind it. All
//! three go through Ollama's API (`/api/ps`, `/api/tags`, `/api/pull` with a
//! progress bar). `warmline stop` is in `admin` (Warmline's `cool`: a stopped
//! model that stayed warm would be loaded again at once).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::admin::{Target, failed, text};

/// `warmline ps`: the models loaded now, as `ollama ps` shows them.
pub async fn ps(target: Target) -> ExitCode {
    let header = ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"];
    listing(target, "/api/ps", &header, |m, now| {
        vec![
            text(&m["name"]),
            short_digest(&m["digest"]),
            human_bytes(m["size"].as_u64().unwrap_or(0)),
            processor(m["size"].as_u64(), m["size_vram"].as_u64()),
            m["context_length"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            until(time(&m["expires_at"]), now),
        ]
    })
    .await
}

/// `warmline list`: the models installed on the gateway's hosts, as `ollama list`.
pub async fn list(target: Target) -> ExitCode {
    listing(
        target,
        "/api/tags",
        &["NAME", "ID", "SIZE", "MODIFIED"],
        |m, now| {
            vec![
                text(&m["name"]),
                short_digest(&m["digest"]),
                human_bytes(m["size"].as_u64().unwrap_or(0)),
                time(&m["modified_at"]).map_or_else(|| "-".to_owned(), |t| human_time(t, now)),
            ]
        },
    )
    .await
}

/// Reads an `/api/ps` or `/api/tags` answer from `path` and prints its models as
/// a table of `header`, one `row` each (or the JSON as it is with `--json`).
async fn listing(
    target: Target,
    path: &str,
    header: &[&str],
    row: impl Fn(&Value, SystemTime) -> Vec<String>,
) -> ExitCode {
    match target.call(reqwest::Method::GET, path, None).await {
        Ok(value) => target.print(&value, |value| {
            let now = SystemTime::now();
            table(header, models(value).map(|m| row(m, now)))
        }),
        Err(err) => failed(err),
    }
}

/// An RFC 3339 time field of Ollama's, if it is one.
fn time(value: &Value) -> Option<SystemTime> {
    value.as_str().and_then(warmline::sys::clock::parse_rfc3339)
}

/// `warmline pull MODEL`: downloads a model through the gateway, with a progress
/// bar on a terminal and one line per step elsewhere.
pub async fn pull(target: Target, model: String) -> ExitCode {
    let body = serde_json::json!({ "model": model, "stream": true });
    let response = match target
        .send(reqwest::Method::POST, "/api/pull", Some(body))
        .await
    {
        Ok(response) => response,
        Err(err) => return failed(format!("pull {model}: {err}")),
    };
    let mut lines = crate::admin::Lines::new(response);
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    loop {
        match lines.next().await {
            Ok(Some(line)) => {
                if let Some(error) = line["error"].as_str() {
                    progress.finish();
                    return failed(format!("pull {model}: {error}"));
                }
                if target.json() {
                    println!("{line}");
                } else {
                    progress.show(&line);
                }
            }
            Ok(None) => break,
            Err(err) => {
                progress.finish();
                return failed(format!("pull {model}: {err}"));
            }
        }
    }
    progress.finish();
    ExitCode::SUCCESS
}

/// The entries of an `/api/ps` or `/api/tags` answer.
fn models(value: &Value) -> impl Iterator<Item = &Value> {
    value["models"].as_array().into_iter().flatten()
}

/// The first 12 hex digits of a digest, as Ollama shows a model's ID.
fn short_digest(digest: &Value) -> String {
    let digest = digest.as_str().unwrap_or("-");
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// Left-aligned columns separated by three spaces, a header first (Ollama's
/// tabwriter layout).
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    all.extend(rows);
    let mut widths = vec![0; header.len()];
    for row in &all {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &all {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line += cell;
            } else {
                line += &format!("{cell:<width$}   ");
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Bytes in decimal units, as Ollama prints them (`format.HumanBytes`): `2.0 GB`
/// is two billion bytes, whole numbers from 10 up, one decimal below.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1_000_000_000_000, "TB"),
        (1_000_000_000, "GB"),
        (1_000_000, "MB"),
        (1_000, "KB"),
    ];
    let Some(&(scale, unit)) = UNITS.iter().find(|(scale, _)| n >= *scale) else {
        return format!("{n} B");
    };
    let value = n as f64 / scale as f64;
    if value >= 10.0 || value.fract() == 0.0 {
        format!("{} {unit}", value as u64)
    } else {
        format!("{value:.1} {unit}")
    }
}

/// Where a loaded model runs, from its size and the part of it in GPU memory.
fn processor(size: Option<u64>, vram: Option<u64>) -> String {
    match (size, vram) {
        (Some(size), Some(vram)) if size > 0 && vram > 0 => {
            if vram >= size {
                "100% GPU".to_owned()
            } else {
                let gpu = (vram as f64 / size as f64 * 100.0).round() as u64;
                format!("{}%/{gpu}% CPU/GPU", 100 - gpu)
            }
        }
        (Some(_), _) => "100% CPU".to_owned(),
        _ => "-".to_owned(),
    }
}

/// `UNTIL`: `Stopping...` once expired, `Forever` for Ollama's far future
/// (a negative keep-alive), else `4 minutes from now`.
fn until(expires: Option<SystemTime>, now: SystemTime) -> String {
    match expires {
        None => "-".to_owned(),
        Some(at) if at <= now => "Stopping...".to_owned(),
        Some(at) => human_time(at, now),
    }
}

/// `4 minutes from now`, `2 weeks ago`, `Forever` (more than 20 years ahead), as
/// Ollama's `format.HumanTime` words them.
pub fn human_time(at: SystemTime, now: SystemTime) -> String {
    const YEAR: u64 = 365 * 24 * 3600;
    match at.duration_since(now) {
        Ok(ahead) if ahead.as_secs() / YEAR >= 20 => "Forever".to_owned(),
        Ok(ahead) if !ahead.is_zero() => format!("{} from now", human_duration(ahead)),
        _ => format!(
            "{} ago",
            human_duration(now.duration_since(at).unwrap_or_default())
        ),
    }
}

/// A duration in Ollama's words (`units.HumanDuration`).
fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    match seconds {
        0 => return "Less than a second".to_owned(),
        1 => return "1 second".to_owned(),
        2..60 => return format!("{seconds} seconds"),
        _ => {}
    }
    let minutes = seconds / 60;
    match minutes {
        1 => return "About a minute".to_owned(),
        2..60 => return format!("{minutes} minutes"),
        _ => {}
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    match hours {
        0 | 1 => "About an hour".to_owned(),
        2..48 => format!("{hours} hours"),
        48..336 => format!("{} days", hours / 24),
        336..1440 => format!("{} weeks", hours / 24 / 7),
        1440..17520 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", seconds / 3600 / 24 / 365),
    }
}

/// What `pull` shows: a bar per layer being downloaded on a terminal (redrawn in
/// place), otherwise each new status once.
struct Progress {
    terminal: bool,
    /// The last status printed, so a repeated one is not printed again.
    last: String,
    /// Whether the cursor is at the end of a bar drawn in place.
    drawing: bool,
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        Progress {
            terminal,
            last: String::new(),
            drawing: false,
        }
    }

    fn show(&mut self, line: &Value) {
        let status = line["status"].as_str().unwrap_or_default();
        let total = line["total"].as_u64().filter(|t| *t > 0);
        let mut err = std::io::stderr().lock();
        match total {
            Some(total) if self.terminal => {
                let done = line["completed"].as_u64().unwrap_or(0).min(total);
                let bar = bar(status, done, total);
                let _ = write!(err, "\r{bar}\x1b[K");
                self.drawing = true;
            }
            _ if status == self.last => {}
            _ => {
                if self.drawing {
                    let _ = writeln!(err);
                    self.drawing = false;
                }
                let _ = writeln!(err, "{status}");
                self.last = status.to_owned();
            }
        }
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.drawing {
            eprintln!();
            self.drawing = false;
        }
    }
}

/// `pulling 8eeb52dfb3bb:  45% ▕███████         ▏ 1.2 GB/2.0 GB`
fn bar(status: &str, done: u64, total: u64) -> String {
    const WIDTH: u64 = 25;
    let filled = (done * WIDTH / total) as usize;
    let percent = done * 100 / total;
    let name: String = status.replace("sha256:", "").chars().take(28).collect();
    format!(
        "{name}: {percent:>3}% ▕{}{}▏ {}/{}",
        "█".repeat(filled),
        " ".repeat(WIDTH as usize - filled),
        human_bytes(done),
        human_bytes(total)
    )
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn sizes_are_decimal_like_ollamas() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_000), "1 KB");
        assert_eq!(human_bytes(986_000_000), "986 MB");
        assert_eq!(human_bytes(2_019_393_189), "2.0 GB");
        assert_eq!(human_bytes(1_500_000_000), "1.5 GB");
        assert_eq!(human_bytes(4_920_753_328), "4.9 GB");
        assert_eq!(human_bytes(40_000_000_000), "40 GB");
    }

    #[test]
    fn times_are_worded_like_ollamas() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ahead = |s| human_time(now + Duration::from_secs(s), now);
        let ago = |s| human_time(now - Duration::from_secs(s), now);
        assert_eq!(ahead(4 * 60 + 59), "4 minutes from now");
        assert_eq!(ahead(60), "About a minute from now");
        assert_eq!(ahead(30), "30 seconds from now");
        assert_eq!(ahead(300 * 365 * 24 * 3600), "Forever");
        assert_eq!(ago(3 * 3600), "3 hours ago");
        assert_eq!(ago(15 * 24 * 3600), "2 weeks ago");
        assert_eq!(ago(90 * 24 * 3600), "3 months ago");
        assert_eq!(
            until(Some(now - Duration::from_secs(1)), now),
            "Stopping..."
        );
        assert_eq!(until(None, now), "-");
    }

    #[test]
    fn processor_and_ids_read_as_in_ollama_ps() {
        assert_eq!(processor(Some(100), Some(100)), "100% GPU");
        assert_eq!(processor(Some(100), Some(0)), "100% CPU");
        assert_eq!(processor(Some(100), None), "100% CPU");
        assert_eq!(processor(Some(100), Some(52)), "48%/52% CPU/GPU");
        assert_eq!(
            short_digest(&Value::from("sha256:a80c4f17acd55265feec")),
            "a80c4f17acd5"
        );
        let out = table(
            &["NAME", "ID"],
            [vec![
                "llama3.2:latest".to_owned(),
                "a80c4f17acd5".to_owned(),
            ]]
            .into_iter(),
        );
        assert_eq!(
            out,
            "NAME              ID\nllama3.2:latest   a80c4f17acd5\n"
        );
    }

    #[test]
    fn a_bar_shows_share_and_sizes() {
        let line = bar("pulling sha256:8eeb52dfb3bb", 1_000_000_000, 2_000_000_000);
        assert!(line.starts_with("pulling 8eeb52dfb3bb:  50% ▕"), "{line}");
        assert!(line.ends_with("▏ 1 GB/2 GB"), "{line}");
    }
}
