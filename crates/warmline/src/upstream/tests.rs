use super::*;
use crate::breaker::State;

fn configs(n: usize) -> Vec<UpstreamConfig> {
    (0..n)
        .map(|i| {
            UpstreamConfig::from(
                Url::parse(&format!("http://127.0.0.1:{}", 10_000 + i)).expect("url"),
            )
        })
        .collect()
}

fn set(n: usize) -> UpstreamSet {
    build(&configs(n), &BreakerConfig::default())
}

fn build(configs: &[UpstreamConfig], breaker: &BreakerConfig) -> UpstreamSet {
    UpstreamSet::new(configs, breaker, &crate::Config::default().concurrency)
}

#[tokio::test]
async fn picks_the_least_busy_reachable_host() {
    let set = set(3);
    let _a = set.hosts()[0].begin();
    let _b = set.hosts()[1].begin();
    assert_eq!(
        set.pick(None).expect("a host").name(),
        "http://127.0.0.1:10002"
    );
    set.hosts()[2].mark_down("refused".into());
    assert_eq!(
        set.pick(None).expect("a host").name(),
        "http://127.0.0.1:10000"
    );
}

#[tokio::test]
async fn falls_back_to_an_unreachable_host_when_all_are_down() {
    let set = set(2);
    for host in set.hosts() {
        host.mark_down("refused".into());
    }
    let _busy = set.hosts()[0].begin();
    assert_eq!(
        set.pick(None).expect("a host").name(),
        "http://127.0.0.1:10001"
    );
}

#[tokio::test]
async fn a_retry_goes_to_another_reachable_host_or_nowhere() {
    let set = set(3);
    let first = Arc::clone(set.pick(None).expect("a host"));
    let other = set.pick_other(&first, None).expect("another host");
    assert!(!Arc::ptr_eq(other, &first));
    for host in set.hosts().iter().filter(|h| !Arc::ptr_eq(h, &first)) {
        host.mark_down("refused".into());
    }
    assert!(set.pick_other(&first, None).is_none());
    let single = build(
        &[UpstreamConfig::from(first.url().clone())],
        &BreakerConfig::default(),
    );
    let only = single.pick(None).expect("a host");
    assert!(single.pick_other(only, None).is_none());
}

#[tokio::test]
async fn hosts_with_an_open_breaker_are_skipped_and_reported() {
    let config = BreakerConfig {
        failures: std::num::NonZeroU32::MIN,
        open_for: std::time::Duration::from_secs(60),
        ..BreakerConfig::default()
    };
    let urls = ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        .map(|u| UpstreamConfig::from(Url::parse(u).expect("url")));
    let set = build(&urls, &config);
    for host in set.hosts() {
        host.breaker.admit().expect("closed").failure();
    }
    for _ in 0..100 {
        if set.hosts().iter().all(|h| h.breaker.state() == State::Open) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(set.pick(None).is_none());
    let (named, retry) = set.all_open();
    assert!(
        named.contains("http://127.0.0.1:1 (retry in 60s)"),
        "{named}"
    );
    assert!(retry > std::time::Duration::from_secs(59));
}

fn knows(host: &Upstream, installed: &[&str], loaded: &[&str]) {
    let entry = |name: &str| Installed {
        name: name.to_owned(),
        digest: format!("digest-of-{name}"),
        size: 1,
        family: None,
        parameter_size: None,
        quantization_level: None,
        capabilities: Vec::new(),
    };
    let resident = Loaded {
        expires_at: None,
        size: 1,
        size_vram: 0,
        context_length: None,
    };
    host.models.store(HostModels {
        known: true,
        installed: installed
            .iter()
            .map(|m| ((*m).to_owned(), entry(m)))
            .collect(),
        loaded: loaded
            .iter()
            .map(|m| ((*m).to_owned(), resident.clone()))
            .collect(),
    });
}

#[tokio::test]
async fn a_model_goes_to_a_host_that_has_it_loaded_if_possible() {
    let set = set(3);
    let [a, b, c] = [&set.hosts()[0], &set.hosts()[1], &set.hosts()[2]];
    knows(a, &["x:latest"], &[]);
    knows(b, &["x:latest", "y:latest"], &["y:latest"]);
    knows(c, &["y:latest"], &["y:latest"]);
    assert_eq!(
        set.pick(Some("z:latest")).expect("host").name(),
        a.name(),
        "nobody has it: all"
    );
    let _busy = b.begin();
    assert_eq!(set.pick(Some("x:latest")).expect("host").name(), a.name());
    assert_eq!(
        set.pick(Some("y:latest")).expect("host").name(),
        c.name(),
        "loaded, then least busy"
    );
    let _busier = c.begin();
    let _busiest = c.begin();
    assert_eq!(set.pick(Some("y:latest")).expect("host").name(), b.name());
    assert_eq!(
        set.pick_with_model(b, "x:latest").expect("host").name(),
        a.name()
    );
    assert!(set.pick_with_model(a, "z:latest").is_none());
}

#[tokio::test]
async fn weights_share_the_traffic_in_proportion() {
    let mut configs = configs(2);
    configs[1].weight = std::num::NonZeroU32::new(3).expect("3");
    let set = build(&configs, &BreakerConfig::default());
    // Hold every pick open: with weights 1 and 3, eight outstanding requests
    // split 2 : 6.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(set.pick(None).expect("a host").begin());
    }
    assert_eq!(set.hosts()[0].in_flight(), 2);
    assert_eq!(set.hosts()[1].in_flight(), 6);
    // At rest the heavier host is preferred.
    drop(held);
    assert_eq!(
        set.pick(None).expect("a host").name(),
        set.hosts()[1].name()
    );
}

#[tokio::test]
async fn a_reload_keeps_hosts_whose_settings_did_not_change() {
    let mut configs = configs(2);
    let first = build(&configs, &BreakerConfig::default());
    first.hosts()[0].mark_down("refused".into());
    configs[1].weight = std::num::NonZeroU32::new(2).expect("2");
    let second = UpstreamSet::reusing(
        &configs,
        &BreakerConfig::default(),
        &crate::Config::default().concurrency,
        None,
        Some(&first),
    );
    assert!(Arc::ptr_eq(&first.hosts()[0], &second.hosts()[0]));
    assert!(!second.hosts()[0].is_reachable(), "health is kept");
    assert!(!Arc::ptr_eq(&first.hosts()[1], &second.hosts()[1]));
    assert_eq!(second.hosts()[1].weight(), 2);
}

#[tokio::test]
async fn passwords_never_show_in_names() {
    let config = UpstreamConfig::from(Url::parse("http://u:hunter2@127.0.0.1:9").expect("url"));
    let set = build(&[config], &BreakerConfig::default());
    let host = &set.hosts()[0];
    assert_eq!(host.name(), "http://u:***@127.0.0.1:9");
    assert_eq!(host.health().url, "http://u:***@127.0.0.1:9");
    assert!(
        host.target("/api/tags").contains("hunter2"),
        "requests still authenticate"
    );
}

/// One host's situation in a property test: reachable, breaker state (and
/// whether its half-open probe is out), requests in flight, weight, and
/// which of two models it has installed and loaded.
type HostCase = (bool, (State, bool), usize, u32, (bool, bool), (bool, bool));

fn host_case() -> impl proptest::strategy::Strategy<Value = HostCase> {
    use proptest::prelude::*;
    let breaker = prop_oneof![
        4 => Just((State::Closed, false)),
        1 => Just((State::Open, false)),
        1 => Just((State::HalfOpen, false)),
        1 => Just((State::HalfOpen, true)),
    ];
    (
        any::<bool>(),
        breaker,
        0usize..6,
        1u32..4,
        (any::<bool>(), any::<bool>()),
        (any::<bool>(), any::<bool>()),
    )
}

proptest::proptest! {
    /// The balancer never picks a host that is unreachable, or whose breaker
    /// would refuse the request (open, or half-open with its probe out), while
    /// a healthy one that can serve the model exists; never sends a model to a
    /// host without it when another host has it; and among the healthy hosts
    /// that have the model loaded (or, failing that, installed) always picks
    /// the least loaded per weight. A retry target obeys the same rules and is
    /// never the host that failed.
    #[test]
    fn never_picks_an_unhealthy_host_while_a_healthy_one_exists(
        hosts in proptest::collection::vec(host_case(), 1..6),
        ask_for in proptest::option::of(0usize..2),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut configs = configs(hosts.len());
            for (config, case) in configs.iter_mut().zip(&hosts) {
                config.weight = std::num::NonZeroU32::new(case.3).expect("non-zero");
            }
            let set = build(&configs, &BreakerConfig::default());
            let names = ["a:latest", "b:latest"];
            let mut guards = Vec::new();
            for (host, (up, (state, probing), busy, _, a, b)) in set.hosts().iter().zip(&hosts) {
                if !up {
                    host.mark_down("refused".into());
                }
                host.breaker.force(*state, *probing);
                for _ in 0..*busy {
                    guards.push(host.begin());
                }
                let installed: Vec<&str> = [(a.0, names[0]), (b.0, names[1])]
                    .iter().filter(|(i, _)| *i).map(|(_, n)| *n).collect();
                let loaded: Vec<&str> = [(a.0 && a.1, names[0]), (b.0 && b.1, names[1])]
                    .iter().filter(|(l, _)| *l).map(|(_, n)| *n).collect();
                knows(host, &installed, &loaded);
            }
            let model = ask_for.map(|i| names[i]);
            let serves = |h: &Arc<Upstream>| h.breaker.admits();
            let has_it = |h: &Arc<Upstream>| model.is_none_or(|m| h.has_model(m) == Some(true));
            let anyone_has_it = set.hosts().iter().any(&has_it);
            let eligible = |h: &Arc<Upstream>| serves(h) && (!anyone_has_it || has_it(h));
            let healthy: Vec<&Arc<Upstream>> = set
                .hosts()
                .iter()
                .filter(|h| eligible(h) && h.is_reachable())
                .collect();
            let Some(picked) = set.pick(model) else {
                // Nothing at all may serve: every eligible host is refused.
                proptest::prop_assert!(!set.hosts().iter().any(&eligible));
                return Ok(());
            };
            proptest::prop_assert!(eligible(picked), "picked a host that cannot serve");
            if healthy.is_empty() {
                return Ok(());
            }
            proptest::prop_assert!(picked.is_reachable());
            let warm: Vec<_> = healthy
                .iter()
                .filter(|h| model.is_none_or(|m| h.has_loaded(m)))
                .collect();
            let pool: Vec<_> = if warm.is_empty() { healthy.iter().collect() } else { warm };
            let least = pool.iter().map(|h| h.load()).min().expect("non-empty");
            proptest::prop_assert_eq!(picked.load(), least);
            if let Some(other) = set.pick_other(picked, model) {
                proptest::prop_assert!(other.is_reachable());
                proptest::prop_assert!(eligible(other));
                proptest::prop_assert!(!Arc::ptr_eq(other, picked));
            }
            Ok::<(), proptest::test_runner::TestCaseError>(())
        })?;
    }
}

#[tokio::test]
async fn in_flight_guard_decrements_on_drop() {
    let set = set(1);
    let host = &set.hosts()[0];
    let guard = host.begin();
    assert_eq!(host.in_flight(), 1);
    drop(guard);
    assert_eq!(host.in_flight(), 0);
}

#[tokio::test]
async fn health_reports_the_last_error_and_latency() {
    let set = set(1);
    let host = &set.hosts()[0];
    host.mark_up(Some(Duration::from_micros(1500)));
    host.mark_down("connection refused".into());
    let health = host.health();
    assert!(!health.reachable);
    assert_eq!(health.last_latency_ms, Some(1.5));
    assert_eq!(health.last_error.as_deref(), Some("connection refused"));
    assert_eq!(health.url, "http://127.0.0.1:10000");
    host.mark_up(None);
    assert_eq!(host.health().last_error, None);
}
