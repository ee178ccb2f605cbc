use super::confirm::go_duration;
use super::*;
use crate::config::KeepAlive;

#[test]
fn go_durations_parse() {
    assert_eq!(go_duration("30m0s"), Some(Duration::from_secs(1800)));
    assert_eq!(go_duration("5m0s"), Some(Duration::from_secs(300)));
    assert_eq!(go_duration("1h30m0s"), Some(Duration::from_secs(5400)));
    assert!(go_duration("2562047h47m16.854775807s").is_some_and(|d| d.as_secs() > 9_000_000_000));
    assert_eq!(go_duration("0s"), Some(Duration::ZERO));
    assert_eq!(go_duration("soon"), None);
}

#[test]
fn reported_settings_are_compared_with_the_asked_ones() {
    let asked = crate::Config::default().daemon;
    let line = |ka: &str, np: &str| {
        ServerConfig::parse(&format!(
            "msg=\"server config\" env=\"map[OLLAMA_KEEP_ALIVE:{ka} OLLAMA_MAX_LOADED_MODELS:0 OLLAMA_NUM_PARALLEL:{np}]\""
        ))
        .expect("line")
    };
    assert!(confirm(&asked, &line("30m0s", "2")).mismatched.is_empty());
    assert_eq!(
        confirm(&asked, &line("5m0s", "1")).mismatched,
        ["OLLAMA_KEEP_ALIVE=5m0s", "OLLAMA_NUM_PARALLEL=1"]
    );
    let mut forever = asked.clone();
    forever.keep_alive = KeepAlive::Forever;
    assert!(
        confirm(&forever, &line("2562047h47m16.854775807s", "2"))
            .mismatched
            .is_empty()
    );
}

#[test]
fn the_daemon_environment_names_the_address_and_the_settings() {
    let config = crate::Config::default();
    let target = Target {
        url: config.upstreams[0].url.clone(),
        config: config.daemon.clone(),
    };
    let env = target.env();
    assert_eq!(env[0], ("OLLAMA_HOST".into(), "127.0.0.1:11434".into()));
    assert_eq!(env[1], ("OLLAMA_KEEP_ALIVE".into(), "1800".into()));
    assert_eq!(env[2], ("OLLAMA_NUM_PARALLEL".into(), "2".into()));
    let mut other = target.clone();
    other.config.stop_grace = Duration::from_secs(1);
    assert!(
        !target.needs_restart_for(&other),
        "only the environment matters"
    );
    other.config.num_parallel = std::num::NonZeroUsize::new(4).expect("4");
    assert!(target.needs_restart_for(&other));
}
