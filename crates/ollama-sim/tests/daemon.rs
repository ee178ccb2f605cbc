//! The simulator as a real process: the startup line supervisors parse, the
//! `ollama` personality through a symlink, and a clean exit on SIGTERM.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ollama-sim");

/// Starts `program args…`, returns the child and the port it printed.
fn start(program: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> (Child, u16) {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("OLLAMA_HOST")
        .env("SIM_QUIET", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program:?}: {e}"));
    let stderr = child
        .stderr
        .take()
        .unwrap_or_else(|| panic!("stderr is piped"));
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            other => panic!("daemon exited before listening: {other:?}"),
        };
        if let Some(rest) = line.split("msg=\"Listening on 127.0.0.1:").nth(1) {
            assert!(rest.ends_with(" (version 0.33.0)\""), "{line}");
            let port = rest.split(' ').next().and_then(|p| p.parse().ok());
            break port.unwrap_or_else(|| panic!("no port in {line}"));
        }
    };
    (child, port)
}

fn get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    let exit = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
    assert_eq!(exit.code(), Some(0), "SIGTERM must exit 0, got {exit:?}");
}

#[test]
fn serve_on_port_zero_reports_the_real_port_and_exits_cleanly() {
    let (child, port) = start(
        &PathBuf::from(BIN),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("OLLAMA_NUM_PARALLEL", "2")],
    );
    assert!(port > 0);
    let root = get(port, "/");
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");
    assert!(root.ends_with("Ollama is running"), "{root}");
    let counters = get(port, "/_sim/counters");
    assert!(
        counters.contains(r#""env":{"OLLAMA_NUM_PARALLEL":"2"}"#),
        "{counters}"
    );
    terminate(child);
}

#[test]
fn a_symlink_named_ollama_behaves_as_ollama_serve() {
    let dir = std::env::temp_dir().join(format!("ollama-sim-test-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let link = dir.join("ollama");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(BIN, &link).unwrap_or_else(|e| panic!("symlink: {e}"));
    let (child, port) = start(&link, &["serve"], &[("OLLAMA_HOST", "http://127.0.0.1:0")]);
    let version = get(port, "/api/version");
    assert!(version.ends_with(r#"{"version":"0.33.0"}"#), "{version}");
    terminate(child);
    let out = Command::new(&link).arg("--version").output();
    let out = out.unwrap_or_else(|e| panic!("run: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ollama version is 0.33.0"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `SIM_DROP_RATE=1`: every generation's connection is closed without a byte of
/// answer, while other routes answer normally.
#[test]
fn dropped_generations_get_no_answer_at_all() {
    let (child, port) = start(
        &PathBuf::from(BIN),
        &["serve"],
        &[("OLLAMA_HOST", "127.0.0.1:0"), ("SIM_DROP_RATE", "1")],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect: {e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let body = r#"{"model":"llama3.2","prompt":"hi","stream":false}"#;
    let req = format!(
        "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(get(port, "/api/version").starts_with("HTTP/1.1 200"));
    terminate(child);
}
