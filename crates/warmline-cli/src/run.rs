//! `warmline run MODEL [PROMPT]`: a chat through the gateway, as `ollama run` has
//! one, that also says what Warmline did for each reply.
//!
//! With a prompt (or a prompt piped on stdin) it answers once and exits; at a
//! terminal it reads one message per line until `/bye` or end of input, keeping the
//! conversation (`/clear` forgets it). Replies stream as they are generated. After
//! each one a line on stderr gives the time to the first token as the client saw
//! it, the generation rate (tokens over the time from the first token to the last)
//! and the cache outcome from `x-warmline-cache` (`hit` when the answer was
//! replayed, `coalesced` when it joined an identical request already running).

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::admin::{Lines, Target, failed};

/// `warmline run MODEL [PROMPT]`.
pub async fn run(target: Target, model: String, prompt: Option<String>) -> ExitCode {
    let stdin = std::io::stdin();
    let prompt = match prompt {
        Some(prompt) => Some(prompt),
        None if !stdin.is_terminal() => {
            let mut piped = String::new();
            if let Err(err) = stdin.lock().read_to_string(&mut piped) {
                return failed(format!("cannot read the prompt from stdin: {err}"));
            }
            Some(piped)
        }
        None => None,
    };
    let mut history = Vec::new();
    if let Some(prompt) = prompt {
        return match turn(&target, &model, &mut history, prompt.trim()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => failed(err),
        };
    }
    eprintln!(
        "Chatting with {model} through Warmline at {}. /bye ends, /clear forgets.",
        target.url()
    );
    loop {
        eprint!(">>> ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        match stdin.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => return failed(format!("cannot read stdin: {err}")),
        }
        match line.trim() {
            "" => continue,
            "/bye" | "/exit" => break,
            "/clear" => {
                history.clear();
                eprintln!("(the conversation is forgotten)");
            }
            message => {
                if let Err(err) = turn(&target, &model, &mut history, message).await {
                    // The conversation goes on without the failed exchange.
                    history.pop();
                    eprintln!("warmline: {err}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// Sends one user message with the conversation so far, prints the reply as it
/// streams, and keeps both in `history`.
async fn turn(
    target: &Target,
    model: &str,
    history: &mut Vec<Value>,
    message: &str,
) -> Result<(), String> {
    history.push(json!({ "role": "user", "content": message }));
    let body = json!({ "model": model, "messages": history, "stream": true });
    let sent = Instant::now();
    let response = target
        .send(reqwest::Method::POST, "/api/chat", Some(body))
        .await?;
    let cache = response
        .headers()
        .get("x-warmline-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    let mut lines = Lines::new(response);
    let mut reply = String::new();
    let mut first: Option<Instant> = None;
    let mut tokens = 0u64;
    let mut out = std::io::stdout();
    loop {
        let Some(chunk) = lines.next().await? else {
            return Err("the answer ended before its final chunk".to_owned());
        };
        if let Some(error) = chunk["error"].as_str() {
            return Err(error.to_owned());
        }
        let piece = chunk["message"]["content"].as_str().unwrap_or_default();
        if !piece.is_empty() {
            first.get_or_insert_with(Instant::now);
            reply += piece;
            let _ = out.write_all(piece.as_bytes());
            let _ = out.flush();
        }
        if chunk["done"].as_bool() == Some(true) {
            tokens = chunk["eval_count"].as_u64().unwrap_or(tokens);
            break;
        }
    }
    let ended = Instant::now();
    println!();
    history.push(json!({ "role": "assistant", "content": reply }));
    eprintln!(
        "{}",
        summary(
            first.map(|f| f - sent),
            first.map(|f| ended - f),
            tokens,
            &cache
        )
    );
    Ok(())
}

/// `ttft 0.21 s · 38.4 tokens/s · cache miss`
fn summary(
    ttft: Option<Duration>,
    generating: Option<Duration>,
    tokens: u64,
    cache: &str,
) -> String {
    let ttft = ttft.map_or_else(
        || "no tokens".to_owned(),
        |t| format!("ttft {:.2} s", t.as_secs_f64()),
    );
    let rate = match generating {
        // The first token starts the clock: the rest arrived over `generating`.
        Some(took) if tokens > 1 && !took.is_zero() => {
            format!(
                " · {:.1} tokens/s",
                (tokens - 1) as f64 / took.as_secs_f64()
            )
        }
        _ => String::new(),
    };
    format!("{ttft}{rate} · cache {cache}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_ttft_rate_and_cache() {
        let line = summary(
            Some(Duration::from_millis(210)),
            Some(Duration::from_secs(2)),
            81,
            "miss",
        );
        assert_eq!(line, "ttft 0.21 s · 40.0 tokens/s · cache miss");
        assert_eq!(summary(None, None, 0, "hit"), "no tokens · cache hit");
        assert_eq!(
            summary(
                Some(Duration::from_millis(5)),
                Some(Duration::ZERO),
                1,
                "hit"
            ),
            "ttft 0.01 s · cache hit"
        );
    }
}
