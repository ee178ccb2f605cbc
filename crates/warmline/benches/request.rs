//! The per-request pieces of the pipeline, each on its own: what a request pays
//! for its cache key, for copying its headers upstream, for the facts of its body,
//! and for reading the durations at the end of its answer. The whole request's
//! cost, with hyper, tokio and the network, is counted by
//! `tests/bench/callgrind.sh`; these show where inside it a change moves.
//!
//!   cargo bench -p warmline --bench request

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, header};
use warmline::cache::KeyRoute;
use warmline::cache::key::canonical;
use warmline::pipeline::facts::Facts;
use warmline::wire::headers::forwardable;
use warmline::wire::route::RouteKind;
use warmline::wire::timings::Timings;

/// A chat request as the official clients send it: a system prompt, one turn,
/// options at temperature 0 (cacheable).
const CHAT: &[u8] = br#"{"model":"llama3.2","messages":[{"role":"system","content":"You are a concise assistant."},{"role":"user","content":"Summarise the plot of Hamlet in two sentences."}],"stream":false,"options":{"temperature":0,"num_ctx":4096}}"#;

/// The final object of a native answer, where its durations are.
const FINAL: &[u8] = br#"{"model":"llama3.2","created_at":"2026-12-07T10:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":1523000000,"load_duration":12000000,"prompt_eval_count":38,"prompt_eval_duration":110000000,"eval_count":64,"eval_duration":1390000000}
"#;

/// The headers the Python `ollama` client sends, plus a browser's `Origin`.
fn client_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        (header::HOST, "127.0.0.1:11435"),
        (header::ACCEPT, "application/json"),
        (header::ACCEPT_ENCODING, "gzip, deflate"),
        (header::CONNECTION, "keep-alive"),
        (header::CONTENT_TYPE, "application/json"),
        (header::CONTENT_LENGTH, "240"),
        (
            header::USER_AGENT,
            "ollama-python/0.6.3 (x86_64 linux) Python/3.11.2",
        ),
        (header::ORIGIN, "http://localhost:3000"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

fn request(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    let digest = "sha256:a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72";
    group.bench_function("cache_key_chat", |b| {
        b.iter(|| {
            canonical(KeyRoute::Chat, black_box(CHAT), "", |_| {
                Some(digest.to_owned())
            })
        })
    });
    let headers = client_headers();
    group.bench_function("forwardable_headers", |b| {
        b.iter(|| forwardable(black_box(&headers)))
    });
    group.bench_function("body_facts_chat", |b| {
        b.iter(|| Facts::of(RouteKind::Chat, black_box(CHAT)))
    });
    group.bench_function("answer_timings", |b| {
        b.iter(|| Timings::of(black_box(FINAL)))
    });
    group.finish();
}

criterion_group!(benches, request);
criterion_main!(benches);
