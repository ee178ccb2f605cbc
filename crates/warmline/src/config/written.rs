//! The way back: [`Config::to_raw`] writes a configuration out with every value
//! explicit (validating the result gives the same configuration), and
//! [`Config::to_raw_redacted`] does so with secrets masked, for showing.
//! [`Config::unmask`] puts the real secrets back into a patch that was edited
//! from the masked form, so a settings page can save without ever seeing them.

use super::raw::*;
use super::values::*;
use super::*;

/// What a secret is shown as.
const MASK: &str = "***";

impl Config {
    /// The configuration written out with every value explicit: validating the
    /// result gives this configuration back. Secrets are included; callers that
    /// show it ([`Config::to_raw_redacted`]) mask them.
    pub fn to_raw(&self) -> RawConfig {
        let d = |value| Some(format_duration(value));
        let t = &self.timeouts;
        let (default_token, named): (Vec<_>, Vec<_>) =
            self.tokens.iter().partition(|t| t.name == "default");
        RawConfig {
            listen: Some(self.listen.to_string()),
            upstreams: Some(
                self.upstreams
                    .iter()
                    .map(|u| {
                        let url = written(&u.url);
                        let plain = u.weight == NonZeroU32::MIN
                            && u.parallel.is_none()
                            && u.kind == UpstreamKind::Ollama
                            && u.api_key.is_none();
                        if plain {
                            RawUpstream::Url(url)
                        } else {
                            RawUpstream::Table {
                                url,
                                weight: Some(u.weight.get()),
                                parallel: u.parallel.map(NonZeroUsize::get),
                                kind: (u.kind != UpstreamKind::Ollama)
                                    .then(|| u.kind.as_str().to_owned()),
                                api_key: u.api_key.as_ref().map(|k| k.expose().to_owned()),
                            }
                        }
                    })
                    .collect(),
            ),
            origins: Some(self.origins.clone()),
            pool: RawPool {
                max_idle_per_host: Some(self.pool.max_idle_per_host),
                idle_timeout: d(self.pool.idle_timeout),
            },
            timeouts: RawTimeouts {
                connect: d(t.connect),
                first_byte: d(t.first_byte),
                idle: d(t.idle),
                header: d(t.header),
                body: d(t.body),
                drain: d(t.drain),
                health_interval: d(t.health_interval),
                client_idle: d(t.client_idle),
            },
            limits: RawLimits {
                max_body: Some(format_size(self.limits.max_body)),
                max_blob_body: Some(format_size(self.limits.max_blob_body.unwrap_or(0))),
                retry_body: Some(format_size(self.limits.retry_body)),
                max_header: Some(format_size(self.limits.max_header as u64)),
                max_connections: Some(self.limits.max_connections),
            },
            compression: RawCompression {
                enabled: Some(self.compression),
            },
            failover: RawFailover {
                enabled: Some(self.failover),
            },
            cache: RawCache {
                enabled: Some(self.cache.enabled),
                max_size: Some(format_size(self.cache.max_bytes)),
                ttl_generation: d(self.cache.ttl_generation),
                ttl_embedding: d(self.cache.ttl_embedding),
                ttl_show: d(self.cache.ttl_show),
                sampled: Some(self.cache.sampled),
                coalesce_sampled: Some(self.cache.coalesce_sampled),
                redis: self.cache.redis.as_ref().map(|u| u.as_str().to_owned()),
                redis_timeout: d(self.cache.redis_timeout),
            },
            breaker: RawBreaker {
                enabled: Some(self.breaker.enabled),
                failures: Some(self.breaker.failures.get()),
                open_for: d(self.breaker.open_for),
            },
            concurrency: RawConcurrency {
                enabled: Some(self.concurrency.enabled),
                per_model: self.concurrency.per_model.map(NonZeroUsize::get),
                discover: Some(self.concurrency.discover),
                staged: Some(self.concurrency.staged),
                queue: Some(self.concurrency.queue),
                max_wait: d(self.concurrency.max_wait),
            },
            rate_limit: RawRateLimit {
                enabled: Some(self.rate_limit.enabled),
                per_second: Some(self.rate_limit.per_second.get()),
                burst: Some(self.rate_limit.burst.get()),
                loopback: Some(!self.rate_limit.exempt_loopback),
            },
            auth: RawAuth {
                token: default_token.first().map(|t| t.secret.clone()),
                tokens: named
                    .into_iter()
                    .map(|t| RawToken {
                        name: t.name.clone(),
                        token: t.secret.clone(),
                    })
                    .collect(),
            },
            daemon: {
                let daemon = &self.daemon;
                let path =
                    |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
                RawDaemon {
                    supervise: Some(daemon.supervise),
                    executable: path(&daemon.executable),
                    keep_alive: Some(daemon.keep_alive.to_config()),
                    num_parallel: Some(daemon.num_parallel.get()),
                    max_loaded_models: Some(daemon.max_loaded_models),
                    env: Some(daemon.env.clone()),
                    ready_timeout: d(daemon.ready_timeout),
                    stop_grace: d(daemon.stop_grace),
                    restart_backoff: d(daemon.restart_backoff),
                    restart_backoff_max: d(daemon.restart_backoff_max),
                    crash_loop_restarts: Some(daemon.crash_loop_restarts),
                    crash_loop_window: d(daemon.crash_loop_window),
                    log_file: path(&daemon.log_file),
                    log_lines: Some(daemon.log_lines),
                }
            },
            warmth: RawWarmth {
                models: Some(self.warmth.models.clone()),
                keep_alive: Some(self.warmth.keep_alive.to_config()),
                pin: Some(self.warmth.pin),
                mask_cold_starts: Some(self.warmth.mask_cold_starts),
                auto: Some(self.warmth.auto),
                budget: Some(match self.warmth.budget {
                    Budget::Auto => ByteSize::Text("auto".to_owned()),
                    Budget::Bytes(bytes) => format_size(bytes),
                    Budget::Percent(percent) => ByteSize::Text(format!("{percent}%")),
                }),
            },
            alerts: RawAlerts {
                latency: d(self.alerts.latency),
                error_rate: Some(self.alerts.error_rate),
                hit_rate: Some(self.alerts.hit_rate),
                min_requests: Some(self.alerts.min_requests),
                min_lookups: Some(self.alerts.min_lookups),
                window: d(self.alerts.window),
            },
            state_file: self.state_file.as_ref().map(|p| p.display().to_string()),
            access_log: self.access_log.as_ref().map(|p| p.display().to_string()),
            admin: RawAdmin {
                token_file: Some(
                    self.admin
                        .token_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                ),
                origins: Some(self.admin.origins.clone()),
            },
            monitoring: RawMonitoring {
                listen: Some(self.monitoring.map(|a| a.to_string()).unwrap_or_default()),
            },
        }
    }

    /// [`Config::to_raw`] for showing: token secrets and URL passwords masked.
    /// Puts the real URLs back into a settings patch that was written from
    /// [`Config::to_raw_redacted`]: an upstream or Redis URL shown with its
    /// password masked (`***`) stands for the URL in force, so a client that
    /// edits one upstream and sends the list back does not set every other
    /// host's password to `***`.
    pub fn unmask(&self, patch: &mut serde_json::Value) {
        let known: Vec<(String, String)> = self
            .upstreams
            .iter()
            .map(|u| &u.url)
            .chain(&self.cache.redis)
            .filter(|url| url.password().is_some())
            .map(|url| (redacted(url), written(url)))
            .collect();
        let real = |shown: &mut serde_json::Value| {
            // An inline upstream may carry options after its URL.
            let unmasked = shown.as_str().and_then(|text| {
                known.iter().find_map(|(masked, url)| {
                    text.strip_prefix(masked.as_str())
                        .filter(|rest| rest.is_empty() || rest.starts_with(' '))
                        .map(|rest| format!("{url}{rest}"))
                })
            });
            if let Some(unmasked) = unmasked {
                *shown = serde_json::Value::String(unmasked);
            }
        };
        if let Some(upstreams) = patch.get_mut("upstreams").and_then(|u| u.as_array_mut()) {
            for entry in upstreams {
                match entry {
                    serde_json::Value::Object(table) => {
                        if let Some(url) = table.get_mut("url") {
                            real(url);
                        }
                        // An API key shown masked stands for the key of the host
                        // with that URL.
                        let url = table.get("url").and_then(|u| u.as_str()).map(str::to_owned);
                        if let Some(key) = table.get_mut("api_key")
                            && key.as_str() == Some(MASK)
                            && let Some(real) = url.and_then(|url| {
                                self.upstreams
                                    .iter()
                                    .find(|u| written(&u.url) == url)
                                    .and_then(|u| u.api_key.as_ref())
                            })
                        {
                            *key = serde_json::Value::String(real.expose().to_owned());
                        }
                    }
                    other => real(other),
                }
            }
        }
        if let Some(redis) = patch.pointer_mut("/cache/redis") {
            real(redis);
        }
        // `daemon.env` is shown masked: a value sent back as `***` keeps the one
        // in force.
        if let Some(env) = patch
            .pointer_mut("/daemon/env")
            .and_then(|e| e.as_object_mut())
        {
            for (name, value) in env.iter_mut() {
                if value.as_str() == Some(MASK)
                    && let Some(real) = self.daemon.env.get(name)
                {
                    *value = serde_json::Value::String(real.clone());
                }
            }
        }
    }

    pub fn to_raw_redacted(&self) -> RawConfig {
        let mut raw = self.to_raw();
        // The daemon's extra variables may hold credentials (a proxy URL with a
        // password, an API key): their names are shown, never their values.
        if let Some(env) = &mut raw.daemon.env {
            for value in env.values_mut() {
                *value = MASK.to_owned();
            }
        }
        if raw.auth.token.is_some() {
            raw.auth.token = Some("***".into());
        }
        for token in &mut raw.auth.tokens {
            token.token = "***".into();
        }
        if let Some(redis) = &self.cache.redis {
            raw.cache.redis = Some(redacted(redis));
        }
        if let Some(upstreams) = &mut raw.upstreams {
            for (raw, upstream) in upstreams.iter_mut().zip(&self.upstreams) {
                let shown = upstream.name();
                match raw {
                    RawUpstream::Url(url) => *url = shown,
                    RawUpstream::Table { url, api_key, .. } => {
                        *url = shown;
                        if api_key.is_some() {
                            *api_key = Some(MASK.to_owned());
                        }
                    }
                }
            }
        }
        raw
    }
}
