//! Each host's parallelism found with nothing stated: read from an adopted
//! daemon's environment, or learned from how long requests waited at the host.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use warmline::GatewayHandle;
use warmline::parallelism::Source;
use warmline_tests::{eventually, gateway, sim_daemon, simulator_with};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// The first host's parallelism and how it is known, for `model` while learning.
fn parallelism(gw: &GatewayHandle, model: &str) -> (usize, Source) {
    let host = &gw.health().upstreams[0];
    let learned = host.parallel_learned.get(model).copied();
    (learned.unwrap_or(host.parallel), host.parallel_source)
}

/// A daemon on this machine started with `OLLAMA_NUM_PARALLEL=N`, adopted by a
/// gateway with its defaults: Warmline reads N from the daemon's environment.
#[tokio::test]
async fn an_adopted_daemons_parallelism_is_read_from_its_environment() {
    for n in [1, 2, 4, 8] {
        let sim = sim_daemon(&[("OLLAMA_NUM_PARALLEL", &n.to_string())]);
        let gw = gateway(std::slice::from_ref(&sim.url), |_| {}).await;
        eventually(
            "the daemon's setting read",
            Duration::from_secs(5),
            async || parallelism(&gw, "llama3.2:latest") == (n, Source::Adopted),
        )
        .await;
        let metrics = gw.prometheus();
        assert!(
            metrics.contains(&format!("source=\"adopted\",model=\"\"}} {n}")),
            "{metrics}"
        );
        gw.shutdown().await;
    }
}

/// One sampled streaming chat (never cached, never coalesced), read to its end.
async fn chat(url: &str, i: usize) {
    let body = format!(
        r#"{{"model":"llama3.2","messages":[{{"role":"user","content":"question {i}"}}],"options":{{"temperature":0.8}}}}"#
    );
    if let Ok(response) = client()
        .post(format!("{url}/api/chat"))
        .body(body)
        .send()
        .await
    {
        let _ = response.bytes().await;
    }
}

/// A host whose environment says nothing (an in-process simulator, as a remote
/// host would be): under load, Warmline learns its parallelism per model within
/// seconds, and afterwards stays on it — one over at most, and never for long
/// (a probe that did not queue by luck is taken back once an answer shows it).
#[tokio::test]
async fn a_hosts_parallelism_is_learned_under_load() {
    let runs = [1usize, 2, 4, 8].map(|n| async move {
        let mut config = ollama_sim::SimConfig::default();
        config.ollama.num_parallel = n as u32;
        config.knobs.prefill_delay = Duration::from_millis(50);
        config.knobs.token_delay = Duration::from_millis(20);
        config.knobs.tokens_per_reply = 16;
        let sim = simulator_with(config).await;
        let gw = gateway(&[sim.url()], |_| {}).await;
        let url = gw.url();
        let started = Instant::now();
        let load = Duration::from_secs(14);
        let clients = (0..3 * n).map(|c| {
            let url = url.clone();
            async move {
                let mut i = c * 1000;
                while started.elapsed() < load {
                    chat(&url, i).await;
                    i += 1;
                }
            }
        });
        let watch = async {
            // Sampled over the last 7 s of the load, after it had 7 s to settle
            // (a busy CI machine runs this beside the rest of the suite).
            tokio::time::sleep(Duration::from_secs(7)).await;
            let mut samples = Vec::new();
            while started.elapsed() < load {
                samples.push(parallelism(&gw, "llama3.2:latest"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        };
        let (_, samples) = tokio::join!(join_all(clients), watch);
        let counters = sim.counters();
        gw.shutdown().await;
        (n, samples, counters)
    });
    for (n, samples, counters) in join_all(runs).await {
        assert!(samples.iter().all(|(_, source)| *source == Source::Learned));
        let on_it = samples.iter().filter(|(p, _)| *p == n).count();
        assert!(
            on_it * 3 >= samples.len() * 2,
            "{n} slots: learned {samples:?}"
        );
        // One over only briefly: never 2 s (20 samples) in a row.
        let longest_over = samples
            .split(|(p, _)| *p == n)
            .map(<[_]>::len)
            .max()
            .unwrap_or(0);
        assert!(longest_over < 20, "{n} slots: learned {samples:?}");
        assert!(
            samples.iter().all(|(p, _)| *p <= n + 1),
            "{n} slots: learned {samples:?}"
        );
        let model = &counters.models["llama3.2:latest"];
        assert!(
            model.max_in_flight as usize <= n + 2,
            "{n} slots: the host had {} at once",
            model.max_in_flight
        );
        assert!(counters.generations.completed > 20, "{n}: too little load");
    }
}
