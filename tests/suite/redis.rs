//! The shared Redis tier with a real `redis-server`: two gateways share entries,
//! and Redis dying mid-run costs no client an error.

use std::time::Duration;

use warmline::GatewayHandle;
use warmline_tests::{RedisServer, gateway, simulator};

async fn exchange(gw: &GatewayHandle, body: &str) -> (String, u16) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{}/api/generate", gw.url()))
        .body(body.to_owned())
        .send()
        .await
        .expect("response");
    let outcome = response.headers()["x-warmline-cache"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let status = response.status().as_u16();
    response.bytes().await.expect("the whole body");
    (outcome, status)
}

fn body(i: usize) -> String {
    format!(
        r#"{{"model":"llama3.2","prompt":"question {i}","stream":false,"options":{{"temperature":0}}}}"#
    )
}

/// Waits until a gateway knows the model digests, so requests are cacheable.
async fn ready(gw: &GatewayHandle) {
    for _ in 0..200 {
        let (outcome, _) = exchange(gw, r#"{"model":"llama3.2","prompt":"warm","stream":false,"options":{"temperature":0},"keep_alive":"5m"}"#).await;
        if outcome != "bypass" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway never learned the model digests");
}

#[tokio::test]
async fn two_gateways_share_entries_through_redis() {
    let redis = RedisServer::start();
    let sim = simulator().await;
    let redis_url = redis.url();
    let with_redis = |c: &mut warmline::Config| {
        c.cache.redis = Some(redis_url.parse().expect("url"));
        c.cache.redis_timeout = Duration::from_millis(200);
    };
    let a = gateway(&[sim.url()], with_redis).await;
    let b = gateway(&[sim.url()], with_redis).await;
    ready(&a).await;
    ready(&b).await;
    let started = sim.counters().generations.started;

    let keys = redis.dbsize();
    assert_eq!(exchange(&a, &body(1)).await, ("miss".into(), 200));
    // The write to Redis happens after the response is complete: wait for it.
    for _ in 0..250 {
        if redis.dbsize() > keys {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(redis.dbsize() > keys, "gateway a wrote its entry to Redis");
    let (outcome, _) = exchange(&b, &body(1)).await;
    assert_eq!(outcome, "hit", "gateway b found gateway a's entry in Redis");
    assert_eq!(sim.counters().generations.started - started, 1);
    let stats = b.cache_stats().await;
    assert!(stats.redis.is_some_and(|r| r.up && r.hits >= 1));
}

#[tokio::test]
async fn redis_dying_mid_run_costs_no_client_an_error() {
    let mut redis = RedisServer::start();
    let sim = simulator().await;
    let redis_url = redis.url();
    let gw = gateway(&[sim.url()], |c| {
        c.cache.redis = Some(redis_url.parse().expect("url"))
    })
    .await;
    ready(&gw).await;
    let mut statuses = Vec::new();
    for i in 0..300 {
        if i == 100 {
            redis.kill();
        }
        // Half repeats, half new: both reads and writes meet the dead Redis.
        statuses.push(exchange(&gw, &body(i % 150)).await.1);
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let stats = gw.cache_stats().await;
    let redis = stats.redis.expect("redis stats");
    assert!(!redis.up && redis.errors > 0, "{redis:?}");
    assert!(stats.hits > 0, "the in-process tier kept serving");
}
