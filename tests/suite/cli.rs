//! The `warmline` CLI's Ollama-style commands (`ps`, `list`, `pull`, `stop`,
//! `run`) and its generated completions and man pages, each run as a process
//! against a real `warmline serve` in front of the real `ollama-sim`.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use warmline_tests::*;

/// Runs `warmline ARGS --url URL` with `stdin`; (exit code, stdout, stderr).
fn cli_with(url: &str, args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin("warmline"))
        .args(args)
        .args(["--url", url])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cli runs");
    if let Some(text) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    let output = child.wait_with_output().expect("cli ends");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn cli(url: &str, args: &[&str]) -> (Option<i32>, String, String) {
    cli_with(url, args, None)
}

#[tokio::test]
async fn ps_list_pull_stop_and_run_speak_ollamas_language() {
    let sim = sim_daemon(&[]);
    let gw = warmline_daemon(&sim.url, &[]);

    // list: Ollama's columns, decimal sizes, relative times.
    let (code, out, err) = cli(&gw.url, &["list"]);
    assert_eq!(code, Some(0), "{err}");
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(header, ["NAME", "ID", "SIZE", "MODIFIED"]);
    let qwen = out
        .lines()
        .find(|l| l.starts_with("qwen3:0.6b "))
        .unwrap_or_else(|| panic!("qwen3 listed:\n{out}"));
    assert!(qwen.contains(" GB ") || qwen.contains(" MB "), "{qwen}");
    assert!(qwen.ends_with(" ago"), "{qwen}");
    assert_eq!(cli(&gw.url, &["ls"]).1, out, "ls is list");

    // pull: a model the registry has; without a terminal, one line per status.
    let (code, _, err) = cli(&gw.url, &["pull", "tinyllama"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("pulling manifest"), "{err}");
    assert!(err.trim_end().ends_with("success"), "{err}");
    assert!(cli(&gw.url, &["list"]).1.contains("tinyllama:latest"));
    let (code, _, err) = cli(&gw.url, &["pull", "no-such-model-anywhere"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("pull no-such-model-anywhere:"), "{err}");

    // run with a prompt: the reply, then what Warmline did. A chat at Ollama's
    // default temperature is a random draw, so the cache lets it by.
    let (code, out, err) = cli(&gw.url, &["run", "qwen3:0.6b", "why is the sky blue?"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.trim().is_empty(), "a reply: {out:?}");
    assert!(
        err.contains("ttft ") && err.contains(" tokens/s") && err.contains("cache bypass"),
        "{err}"
    );
    // Piped stdin without a terminal is one prompt (as `ollama run` reads it).
    let (code, out, err) = cli_with(&gw.url, &["run", "qwen3:0.6b"], Some("one\nprompt\n"));
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.trim().is_empty(), "a reply: {out:?}");
    assert_eq!(err.matches("ttft ").count(), 1, "{err}");
    let (code, _, err) = cli(&gw.url, &["run", "no-such-model", "hi"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");

    // ps: the model the run loaded, until when, in Ollama's words.
    let (code, out, err) = cli(&gw.url, &["ps"]);
    assert_eq!(code, Some(0), "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("qwen3:0.6b "))
        .unwrap_or_else(|| panic!("qwen3 loaded:\n{out}"));
    assert!(row.contains("from now") || row.contains("Forever"), "{row}");
    let json: serde_json::Value =
        serde_json::from_str(&cli(&gw.url, &["ps", "--json"]).1).expect("--json is JSON");
    assert!(json["models"].is_array(), "{json}");

    // stop (and its alias cool): unloaded, and no longer in ps.
    let (code, out, err) = cli(&gw.url, &["stop", "qwen3:0.6b"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "qwen3:0.6b is no longer warm and is being unloaded\n");
    eventually("qwen3 unloaded", Duration::from_secs(10), async || {
        !cli(&gw.url, &["ps"]).1.contains("qwen3:0.6b")
    })
    .await;
    let (code, _, err) = cli(&gw.url, &["cool", "qwen3:0.6b"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_gateway_that_is_not_there_is_named_with_what_to_do() {
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [
        &["ps"][..],
        &["list"],
        &["pull", "x"],
        &["run", "x", "hi"],
        &["stop", "x"],
    ] {
        let (code, out, err) = cli(&url, args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(
            err.contains("cannot reach Warmline at") && err.contains("warmline serve"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(bin("warmline"))
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for command in ["serve", "ps", "pull", "run", "stop"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let dir = temp_dir("man");
    let output = Command::new(bin("warmline"))
        .arg("manpages")
        .arg(&dir)
        .output()
        .expect("runs");
    assert!(output.status.success());
    let page = std::fs::read_to_string(dir.join("warmline.1")).expect("warmline.1");
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH warmline"),
        "{page}"
    );
    let run = std::fs::read_to_string(dir.join("warmline-run.1")).expect("warmline-run.1");
    assert!(run.contains("PROMPT"), "{run}");
    assert!(
        dir.join("warmline-daemon-logs.1").exists(),
        "nested commands too"
    );
    assert!(
        !dir.join("warmline-manpages.1").exists(),
        "hidden commands are not"
    );

    // Every argument says what it is for, and nothing is said twice.
    let help = Command::new(bin("warmline"))
        .args(["status", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert_eq!(help.matches("[env: WARMLINE_URL=").count(), 1, "{help}");
    assert_eq!(
        help.matches("[default: http://127.0.0.1:11435]").count(),
        1,
        "{help}"
    );
    for command in ["run", "pull", "stop", "warm"] {
        let help = Command::new(bin("warmline"))
            .args([command, "--help"])
            .output()
            .expect("runs");
        let help = String::from_utf8_lossy(&help.stdout);
        let model = help
            .lines()
            .find(|l| l.trim_start().starts_with("<MODEL>"))
            .unwrap_or_else(|| panic!("{command}: {help}"));
        assert!(
            model.trim().len() > "<MODEL>".len() + 4,
            "{command}: {model}"
        );
    }
}
