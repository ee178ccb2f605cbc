use std::time::Duration;

use super::*;
use crate::admission::ConcurrencyConfig;

#[test]
fn defaults_match_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.upstreams[0].url.as_str(), "http://127.0.0.1:11434/");
    assert_eq!(config.upstreams[0].weight.get(), 1);
    assert_eq!(config.timeouts.connect, Duration::from_millis(500));
    assert_eq!(config.timeouts.header, Duration::from_secs(10));
    assert_eq!(config.timeouts.body, Duration::from_secs(30));
    assert_eq!(config.limits.max_body, 64 << 20);
    assert_eq!(config.limits.max_blob_body, None);
    assert_eq!(config.limits.max_header, 64 << 10);
    assert!(config.compression && config.failover);
    assert!(config.breaker.enabled && config.concurrency.enabled && config.rate_limit.enabled);
}

#[test]
fn flags_override_env_which_overrides_file() {
    let mut raw =
        RawConfig::from_toml("listen = \"127.0.0.1:1\"\nupstreams = [\"http://10.0.0.1:11434\"]")
            .expect("valid toml");
    raw.apply_env(|name| match name {
        ENV_LISTEN => Some("127.0.0.1:2".into()),
        ENV_UPSTREAMS => Some("127.0.0.1:3, http://127.0.0.1:4".into()),
        _ => None,
    });
    let from_env = raw.clone().validate().expect("valid");
    assert_eq!(from_env.listen.port(), 2);
    assert_eq!(from_env.upstreams.len(), 2);
    assert_eq!(from_env.upstreams[0].url.as_str(), "http://127.0.0.1:3/");

    raw.apply_overrides(&Overrides {
        listen: Some("127.0.0.1:0".into()),
        upstreams: vec!["http://127.0.0.1:5".into()],
        ..Overrides::default()
    });
    let config = raw.validate().expect("valid");
    assert_eq!(config.listen.port(), 0);
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.upstreams[0].url.port(), Some(5));
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let err = RawConfig::from_toml("[timeouts]\nconect = \"1s\"").expect_err("typo");
    assert!(err.contains("conect"), "{err}");
}

#[test]
fn validation_errors_name_the_dotted_field() {
    let cases = [
        ("[timeouts]\nconnect = \"soon\"", "timeouts.connect: "),
        (
            "upstreams = [\"http://a:1\", \"https://b:2\"]",
            "upstreams[1]: ",
        ),
        ("listen = \"ollama.example:11435\"", "listen: "),
        ("[limits]\nmax_body = \"12 parsecs\"", "limits.max_body: "),
        ("[limits]\nmax_header = \"1MiB\"", "limits.max_header: "),
        (
            "upstreams = [{ url = \"http://a:1\", weight = 0 }]",
            "upstreams[0].weight: ",
        ),
        (
            "upstreams = [\"http://a:1\", { url = \"http://b:1\", parallel = 0 }]",
            "upstreams[1].parallel: ",
        ),
        ("[timeouts]\nheader = \"0s\"", "timeouts.header: "),
    ];
    for (toml, prefix) in cases {
        let raw = RawConfig::from_toml(toml).expect("toml");
        let err = raw.validate().expect_err(toml).to_string();
        assert!(err.starts_with(prefix), "{toml}: {err}");
    }
}

#[test]
fn upstreams_take_a_weight_and_their_parallelism() {
    let raw = RawConfig::from_toml(
        "upstreams = [\"127.0.0.1:1\", { url = \"http://127.0.0.1:2\", weight = 3, parallel = 4 }]",
    )
    .expect("toml");
    let config = raw.validate().expect("valid");
    assert_eq!(config.upstreams[0].weight.get(), 1);
    assert_eq!(config.upstreams[0].parallel, None);
    assert_eq!(config.upstreams[1].weight.get(), 3);
    assert_eq!(config.upstreams[1].parallel.map(|p| p.get()), Some(4));
    let host = ConcurrencyConfig::for_host(&config.concurrency, config.upstreams[1].parallel, None);
    assert_eq!(host.parallel.get(), 4);
    assert_eq!(host.per_model.get(), 4 + DEFAULT_STAGED);
    assert_eq!(host.source, crate::parallelism::Source::Stated);
    // Nothing stated: learned, from Ollama's default of 1; a supervised daemon's
    // own setting is known.
    let unstated = ConcurrencyConfig::for_host(&config.concurrency, None, None);
    assert_eq!(unstated.source, crate::parallelism::Source::Learned);
    assert_eq!(unstated.parallel.get(), 1);
    let supervised =
        ConcurrencyConfig::for_host(&config.concurrency, None, std::num::NonZeroUsize::new(3));
    assert_eq!(supervised.source, crate::parallelism::Source::Supervised);
    assert_eq!(supervised.parallel.get(), 3);
}

/// `--upstream` and `WARMLINE_UPSTREAMS` carry a weight and parallelism in the
/// same string as the URL; a typo is named with its field.
#[test]
fn upstream_strings_carry_their_weight_and_parallelism() {
    let mut raw = RawConfig::default();
    raw.apply_env(|name| {
        (name == ENV_UPSTREAMS)
            .then(|| "http://127.0.0.1:1 weight=2 parallel=4,http://127.0.0.1:2".to_owned())
    });
    let config = raw.validate().expect("valid");
    assert_eq!(config.upstreams[0].weight.get(), 2);
    assert_eq!(config.upstreams[0].parallel.map(|p| p.get()), Some(4));
    assert_eq!(config.upstreams[1].weight.get(), 1);

    let err = RawConfig::from_toml("upstreams = [\"http://127.0.0.1:1 wieght=2\"]")
        .expect("toml")
        .validate()
        .expect_err("a typo")
        .to_string();
    assert!(
        err.starts_with("upstreams[0]: \"wieght=2\" is not an upstream option"),
        "{err}"
    );
    let err = RawConfig::from_toml("upstreams = [\"http://127.0.0.1:1 weight=0\"]")
        .expect("toml")
        .validate()
        .expect_err("weight 0")
        .to_string();
    assert_eq!(err, "upstreams[0].weight: must be at least 1");
}

#[test]
fn a_non_loopback_listener_needs_a_token() {
    let raw = RawConfig::from_toml("listen = \"0.0.0.0:11435\"").expect("toml");
    let err = raw.validate().expect_err("no token").to_string();
    assert!(
        err.starts_with("listen: ") && err.contains("token"),
        "{err}"
    );
    let mut raw = RawConfig::from_toml("listen = \"0.0.0.0:11435\"").expect("toml");
    raw.apply_env(|name| (name == ENV_TOKEN).then(|| "a-long-secret".to_owned()));
    let config = raw.validate().expect("valid with a token");
    assert_eq!(config.tokens[0].name, "default");
    assert!(
        !format!("{config:?}").contains("a-long-secret"),
        "secrets never in Debug"
    );
}

#[test]
fn cache_settings_validate() {
    let config = Config::default();
    assert!(config.cache.enabled);
    assert_eq!(config.cache.max_bytes, 256 << 20);
    assert_eq!(config.cache.ttl_embedding, Duration::from_secs(3600));
    assert_eq!(config.cache.redis, None);
    let raw = RawConfig::from_toml("[cache]\nredis = \"http://x\"").expect("toml");
    let err = raw.validate().expect_err("not redis").to_string();
    assert!(err.starts_with("cache.redis: "), "{err}");
    let raw = RawConfig::from_toml("[cache]\nttl_show = \"0s\"").expect("toml");
    assert!(
        raw.validate()
            .expect_err("zero")
            .to_string()
            .starts_with("cache.ttl_show: ")
    );
}

#[test]
fn sizes_accept_integers_and_units() {
    let raw =
        RawConfig::from_toml("[limits]\nmax_body = \"2MiB\"\nmax_blob_body = 1000").expect("toml");
    let config = raw.validate().expect("valid");
    assert_eq!(config.limits.max_body, 2 << 20);
    assert_eq!(config.limits.max_blob_body, Some(1000));
}

#[test]
fn to_raw_round_trips_every_setting() {
    let toml = r#"
        listen = "127.0.0.1:9000"
        upstreams = ["http://127.0.0.1:1", { url = "http://user:pw@127.0.0.1:2/base", weight = 2, parallel = 3 }]
        origins = ["https://app.example"]
        [timeouts]
        connect = "250ms"
        header = "3s"
        [limits]
        max_body = "3MiB"
        max_header = 4096
        [compression]
        enabled = false
        [cache]
        redis = "redis://:hunter22@127.0.0.1:6379"
        ttl_generation = "1h 30m"
        [breaker]
        enabled = false
        [concurrency]
        per_model = 2
        staged = 0
        [rate_limit]
        loopback = true
        [auth]
        token = "the-default-token"
        tokens = [{ name = "alice", token = "alice-secret" }]
    "#;
    let config = RawConfig::from_toml(toml)
        .expect("toml")
        .validate()
        .expect("valid");
    let again = config.to_raw().validate().expect("to_raw validates");
    assert_eq!(again, config);
    // Through JSON too, as the settings route sends it.
    let json = serde_json::to_value(config.to_raw()).expect("serializes");
    let back: RawConfig = serde_json::from_value(json).expect("deserializes");
    assert_eq!(back.validate().expect("valid"), config);
}

/// Found by the `config` fuzz target: an upstream whose path ends in a slash
/// lost the slash when written out, so a settings change started from another URL.
#[test]
fn an_upstream_path_keeps_its_trailing_slash_through_the_round_trip() {
    for url in [
        "http://127.0.0.1:1/base/",
        "http://h/a/b:@1/",
        "http://127.0.0.1:2",
    ] {
        let raw = RawConfig {
            upstreams: Some(vec![super::RawUpstream::Url(url.to_owned())]),
            ..RawConfig::default()
        };
        let config = raw.validate().expect("valid");
        assert_eq!(config.to_raw().validate().expect("valid"), config, "{url}");
    }
}

#[test]
fn shown_settings_mask_every_secret() {
    let toml = r#"
        upstreams = ["http://user:pw-upstream@127.0.0.1:2"]
        [cache]
        redis = "redis://:pw-redis@127.0.0.1:6379"
        [auth]
        token = "pw-default-token"
        tokens = [{ name = "alice", token = "pw-alice-secret" }]
    "#;
    let config = RawConfig::from_toml(toml)
        .expect("toml")
        .validate()
        .expect("valid");
    let shown = serde_json::to_string(&config.to_raw_redacted()).expect("json");
    assert!(!shown.contains("pw-"), "{shown}");
    assert!(
        shown.contains("alice") && shown.contains("user:***@"),
        "{shown}"
    );
    assert_eq!(config.upstreams[0].name(), "http://user:***@127.0.0.1:2");
}

#[test]
fn a_merge_patch_changes_only_what_it_names() {
    let config = Config::default();
    let patched = config
        .to_raw()
        .patched(&serde_json::json!({
            "timeouts": { "connect": "2s" },
            "cache": { "max_size": "1GiB", "redis": null },
            "rate_limit": { "per_second": 50 }
        }))
        .expect("patch applies")
        .validate()
        .expect("valid");
    assert_eq!(patched.timeouts.connect, Duration::from_secs(2));
    assert_eq!(patched.cache.max_bytes, 1 << 30);
    assert_eq!(patched.rate_limit.per_second.get(), 50);
    assert_eq!(patched.timeouts.first_byte, config.timeouts.first_byte);

    let err = config
        .to_raw()
        .patched(&serde_json::json!({ "timeouts": { "conect": "2s" } }))
        .expect_err("unknown field");
    assert!(err.to_string().contains("conect"), "{err}");
}

#[test]
fn daemon_and_warmth_settings_validate() {
    let config = Config::default();
    assert!(!config.daemon.supervise);
    assert_eq!(
        config.daemon.keep_alive,
        KeepAlive::For(Duration::from_secs(1800))
    );
    assert_eq!(config.daemon.num_parallel.get(), 2);
    assert_eq!(config.warmth.keep_alive, KeepAlive::Forever);
    assert!(config.warmth.pin && config.warmth.mask_cold_starts);
    let raw = RawConfig::from_toml(
        "[daemon]\nkeep_alive = \"-1\"\nenv = { OLLAMA_FLASH_ATTENTION = \"1\" }\n[warmth]\nmodels = [\"llama3.2\", \"llama3.2:latest\"]",
    )
    .expect("toml");
    let config = raw.validate().expect("valid");
    assert_eq!(config.daemon.keep_alive, KeepAlive::Forever);
    assert_eq!(
        config.warmth.models,
        ["llama3.2:latest"],
        "normalised, once"
    );
    let cases = [
        (
            "[daemon]\nenv = { OLLAMA_HOST = \"0.0.0.0\" }",
            "daemon.env.OLLAMA_HOST: ",
        ),
        ("[daemon]\nkeep_alive = \"soon\"", "daemon.keep_alive: "),
        ("[daemon]\nnum_parallel = 0", "daemon.num_parallel: "),
        (
            "upstreams = [\"http://10.0.0.5:11434\"]\n[daemon]\nsupervise = true",
            "daemon.supervise: ",
        ),
        ("[warmth]\nmodels = [\"bad name!\"]", "warmth.models[0]: "),
    ];
    for (toml, prefix) in cases {
        let err = RawConfig::from_toml(toml)
            .expect("toml")
            .validate()
            .expect_err(toml)
            .to_string();
        assert!(err.starts_with(prefix), "{toml}: {err}");
    }
    let local = RawConfig::from_toml(
        "upstreams = [\"http://localhost:11434\"]\n[daemon]\nsupervise = true",
    )
    .expect("toml")
    .validate()
    .expect("localhost may be supervised");
    assert!(local.supervised_upstream().is_some());
}

/// Settings read back from the redacted view and sent again keep the real
/// passwords of the hosts and the Redis tier.
#[test]
fn masked_urls_in_a_settings_patch_stand_for_the_real_ones() {
    let config = RawConfig::from_toml(
        "upstreams = [\"http://a:pw1@127.0.0.1:1\", \"http://127.0.0.1:2\"]\n[cache]\nredis = \"redis://:pw2@127.0.0.1:6379\"",
    )
    .expect("toml")
    .validate()
    .expect("valid");
    let shown = serde_json::to_value(config.to_raw_redacted()).expect("json");
    assert_eq!(shown["upstreams"][0], "http://a:***@127.0.0.1:1");
    let mut patch = serde_json::json!({
        "upstreams": [shown["upstreams"][0].clone(), "http://127.0.0.1:2 weight=2", {"url": "http://a:***@127.0.0.1:1"}],
        "cache": { "redis": shown["cache"]["redis"].clone() },
    });
    config.unmask(&mut patch);
    assert_eq!(patch["upstreams"][0], "http://a:pw1@127.0.0.1:1");
    assert_eq!(patch["upstreams"][1], "http://127.0.0.1:2 weight=2");
    assert_eq!(patch["upstreams"][2]["url"], "http://a:pw1@127.0.0.1:1");
    assert_eq!(patch["cache"]["redis"], "redis://:pw2@127.0.0.1:6379");
}

/// An OpenAI-compatible engine is an upstream of `kind=openai`, inline or in a
/// table; its API key is never shown, and a masked key sent back keeps the
/// real one.
#[test]
fn openai_upstreams_carry_their_kind_and_a_hidden_key() {
    let config = RawConfig::from_toml(
        "upstreams = [\"http://127.0.0.1:8080 kind=openai api_key=sk-secret\", { url = \"http://127.0.0.1:8081\", kind = \"openai\" }, \"http://127.0.0.1:11434\"]",
    )
    .expect("toml")
    .validate()
    .expect("valid");
    let kinds: Vec<_> = config.upstreams.iter().map(|u| u.kind).collect();
    assert_eq!(
        kinds,
        [
            UpstreamKind::OpenAi,
            UpstreamKind::OpenAi,
            UpstreamKind::Ollama
        ]
    );
    let key = config.upstreams[0].api_key.as_ref().expect("a key");
    assert_eq!(key.expose(), "sk-secret");
    assert!(!format!("{config:?}").contains("sk-secret"));

    let shown = serde_json::to_value(config.to_raw_redacted()).expect("json");
    assert!(!shown.to_string().contains("sk-secret"), "{shown}");
    assert_eq!(shown["upstreams"][0]["api_key"], "***");
    assert_eq!(shown["upstreams"][0]["kind"], "openai");
    assert_eq!(shown["upstreams"][2], "http://127.0.0.1:11434");
    let mut patch = serde_json::json!({ "upstreams": shown["upstreams"].clone() });
    config.unmask(&mut patch);
    assert_eq!(patch["upstreams"][0]["api_key"], "sk-secret");

    // Written out and read back: the same configuration.
    let again = config.to_raw().validate().expect("valid");
    assert_eq!(again.upstreams, config.upstreams);

    for (toml, expected) in [
        (
            "upstreams = [\"http://127.0.0.1:1 kind=vllm\"]",
            "upstreams[0].kind: \"vllm\" is not an upstream kind (ollama or openai)",
        ),
        (
            "upstreams = [{ url = \"http://127.0.0.1:1\", kind = \"openai\", api_key = \"two words\" }]",
            "upstreams[0].api_key: must be non-empty printable ASCII without spaces",
        ),
    ] {
        let err = RawConfig::from_toml(toml)
            .expect("toml")
            .validate()
            .expect_err("refused")
            .to_string();
        assert_eq!(err, expected);
    }
}

#[test]
fn listen_takes_the_forms_ollama_host_takes() {
    let cases = [
        ("127.0.0.1:9000", "127.0.0.1:9000"),
        (" http://127.0.0.1:9000/ ", "127.0.0.1:9000"),
        ("0.0.0.0", "0.0.0.0:11435"),
        ("::1", "[::1]:11435"),
        ("[::1]", "[::1]:11435"),
        ("[::1]:9000", "[::1]:9000"),
        (":9000", "0.0.0.0:9000"),
        ("localhost", "127.0.0.1:11435"),
        ("LOCALHOST:9000", "127.0.0.1:9000"),
        ("http://localhost:9000", "127.0.0.1:9000"),
    ];
    for (text, want) in cases {
        assert_eq!(
            values::parse_listen(text).map(|a| a.to_string()),
            Ok(want.to_owned()),
            "{text:?}"
        );
    }
    for bad in [
        "",
        "localhost:",
        "localhost:99999",
        "ollama.example",
        "1.2.3.4:x",
        "http://",
    ] {
        let err = values::parse_listen(bad).expect_err(bad);
        assert!(err.contains("listen address"), "{bad:?}: {err}");
    }
}

#[test]
fn ollama_origins_add_to_the_api_origins_and_never_to_the_control_plane() {
    let mut raw = RawConfig::from_toml(
        "origins = [\"https://app.example\"]\n[admin]\norigins = [\"https://admin.example\"]",
    )
    .expect("toml");
    raw.apply_env(|name| {
        (name == ENV_OLLAMA_ORIGINS).then(|| " chrome-extension://*, *,https://app.example ".into())
    });
    let config = raw.validate().expect("valid");
    assert_eq!(
        config.origins,
        ["https://app.example", "chrome-extension://*", "*"]
    );
    assert_eq!(config.admin.origins, ["https://admin.example"]);
}

#[test]
fn redis_over_tls_is_refused_at_validation_not_at_start() {
    let raw = RawConfig::from_toml("[cache]\nredis = \"rediss://user:pw@cache.example:6380\"")
        .expect("toml");
    let err = raw.validate().expect_err("rediss").to_string();
    assert!(
        err.starts_with("cache.redis: ") && err.contains("TLS"),
        "{err}"
    );
    assert!(!err.contains("pw@"), "the password is masked: {err}");
}

#[test]
fn the_warmth_budget_is_auto_a_size_or_a_share_and_round_trips() {
    let budget = |text: &str| {
        RawConfig::from_toml(&format!("[warmth]\nbudget = {text}"))
            .expect("toml")
            .validate()
            .map(|c| c.warmth.budget)
            .map_err(|e| e.to_string())
    };
    assert_eq!(budget("\"auto\""), Ok(Budget::Auto));
    assert_eq!(budget("\"12GiB\""), Ok(Budget::Bytes(12 << 30)));
    assert_eq!(budget("1000"), Ok(Budget::Bytes(1000)));
    assert_eq!(budget("\"33.3 %\""), Ok(Budget::Percent(33.3)));
    for bad in ["\"0%\"", "\"150%\"", "\"lots\"", "\"x%\""] {
        let err = budget(bad).expect_err(bad);
        assert!(err.starts_with("warmth.budget: "), "{err}");
    }
    let defaults = Config::default();
    assert!(defaults.warmth.auto);
    assert_eq!(defaults.warmth.budget, Budget::Auto);
    for text in ["\"auto\"", "\"12GiB\"", "\"33.3%\""] {
        let config = RawConfig::from_toml(&format!("[warmth]\nauto = false\nbudget = {text}"))
            .expect("toml")
            .validate()
            .expect("valid");
        let again = config.to_raw().validate().expect("round trip");
        assert_eq!(again.warmth, config.warmth, "{text}");
    }
}
