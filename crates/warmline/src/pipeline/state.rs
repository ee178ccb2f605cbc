//! The pipeline's shared state: the upstream client, the hosts, the cache, the
//! flights in progress and the settings every request reads, built from the
//! configuration and rebuilt on a reload, keeping whatever did not change.
//!
//! Every step of the pipeline takes a `&Pipeline`; this file holds nothing that
//! serves a request, so the steps depend on it and not on each other's parent.

use std::sync::Arc;
use std::time::Duration;

use super::client::build_client;
use super::coalesce::Flights;
use super::pool::{UpstreamClient, build_upstream_client};
use crate::cache::{Cache, FlightKey};
use crate::config::Config;
use crate::error::{Error, ProxyError};
use crate::metrics::Metrics;
use crate::upstream::UpstreamSet;
use crate::wire::describe;

/// Everything the pipeline needs, shared by all requests; rebuilt on a reload
/// (see [`Pipeline::build`]).
#[derive(Debug)]
pub struct Pipeline {
    /// For background work: probes, inventories, warm loads.
    pub client: reqwest::Client,
    /// For the request path (see `client`).
    pub(crate) upstream_client: UpstreamClient,
    pub upstreams: Arc<UpstreamSet>,
    pub metrics: Arc<Metrics>,
    /// The response cache, unless `cache.enabled` is off.
    pub cache: Option<Arc<Cache>>,
    /// Notified when a request that changes the installed models went through.
    pub models_changed: Arc<tokio::sync::Notify>,
    /// The warm set: pinning and cold-start masking read it per request.
    pub warmth: Arc<crate::warmth::Warmth>,
    /// The flights in progress, by key: kept across reloads, like the cache.
    pub(crate) flights: Arc<Flights<FlightKey>>,
    pool: crate::config::PoolConfig,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_body: u64,
    pub(crate) max_blob_body: Option<u64>,
    /// Bodies up to this size are held so a failed attempt can be re-sent.
    pub(crate) retry_body: u64,
    /// Longest silence between two chunks of a client's request body.
    pub(crate) body_timeout: Duration,
    /// Whether a failed attempt is retried on another host.
    pub(crate) failover: bool,
    /// Whether generations wait for a slot of their model on their host.
    pub(crate) slots: bool,
}

impl Pipeline {
    /// The pipeline for `config`. Parts of `previous` whose settings did not change are
    /// kept — the connection pool, each upstream host with its health and breaker,
    /// the cache with its entries — so a reload forgets only what it must.
    pub fn build(
        config: &Config,
        metrics: Arc<Metrics>,
        previous: Option<&Pipeline>,
        models_changed: Arc<tokio::sync::Notify>,
        warmth: Arc<crate::warmth::Warmth>,
    ) -> Result<Pipeline, Error> {
        let reuse_client = previous
            .filter(|p| p.pool == config.pool && p.connect_timeout == config.timeouts.connect);
        let client = match reuse_client {
            Some(previous) => previous.client.clone(),
            None => build_client(config, metrics.connect_counter()).map_err(|e| {
                Error::Proxy(ProxyError::Protocol {
                    upstream: "(client)".into(),
                    reason: describe(&e),
                })
            })?,
        };
        let upstream_client = match reuse_client {
            Some(previous) => previous.upstream_client.clone(),
            None => build_upstream_client(config, metrics.connect_counter()),
        };
        let kept_cache = previous
            .and_then(|p| p.cache.as_ref())
            .filter(|cache| config.cache.enabled && *cache.config() == config.cache);
        let cache = match kept_cache {
            Some(cache) => Some(Arc::clone(cache)),
            None if config.cache.enabled => {
                let cache = Cache::new(&config.cache).map_err(|reason| {
                    Error::Config(crate::config::ConfigError::Invalid {
                        field: "cache.redis".into(),
                        message: reason,
                    })
                })?;
                Some(Arc::new(cache))
            }
            None => None,
        };
        // A daemon Warmline supervises runs daemon.num_parallel requests per model.
        let upstreams = UpstreamSet::reusing(
            &config.upstreams,
            &config.breaker,
            &config.concurrency,
            config
                .daemon
                .supervise
                .then_some(config.daemon.num_parallel),
            previous.map(|p| &*p.upstreams),
        );
        Ok(Pipeline {
            client,
            upstream_client,
            upstreams: Arc::new(upstreams),
            metrics,
            cache,
            models_changed,
            warmth,
            flights: previous.map_or_else(Arc::default, |p| Arc::clone(&p.flights)),
            pool: config.pool.clone(),
            first_byte_timeout: config.timeouts.first_byte,
            idle_timeout: config.timeouts.idle,
            connect_timeout: config.timeouts.connect,
            max_body: config.limits.max_body,
            max_blob_body: config.limits.max_blob_body,
            retry_body: config.limits.retry_body,
            body_timeout: config.timeouts.body,
            failover: config.failover,
            slots: config.concurrency.enabled,
        })
    }

    /// Logs and counts an error once: where it becomes an answer (or the end of a
    /// stream already under way).
    pub(crate) fn report(&self, err: &Error) {
        self.metrics.gateway_error(err.kind());
        tracing::warn!(kind = err.kind(), "{err}");
    }
}
