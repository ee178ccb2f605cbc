//! The per-client rate limit: a token bucket per client address (per IPv6
//! prefix), answered with 429 and `Retry-After` when empty.
//!
//! It is the gateway's first refusal after authentication: it runs before any
//! body is read, so a flooding client costs one bucket check per request. Loopback
//! clients are exempt by default, since the machine's own user is not the threat
//! the limit is for; LAN clients share the limit set in `[rate_limit]`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tokio::time::Instant;

pub use crate::config::RateConfig;

/// governor's clock reading tokio's time: the same instant as `std` in production,
/// and paused time in tests.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

type Buckets = RateLimiter<
    IpAddr,
    DefaultKeyedStateStore<IpAddr>,
    TokioClock,
    NoOpMiddleware<std::time::Instant>,
>;

/// A token bucket per client IP (per IPv6 prefix).
pub struct ClientLimiter {
    buckets: Buckets,
    config: RateConfig,
}

impl ClientLimiter {
    pub fn new(config: RateConfig) -> ClientLimiter {
        let quota = Quota::per_second(config.per_second).allow_burst(config.burst);
        ClientLimiter {
            buckets: RateLimiter::new(quota, DefaultKeyedStateStore::default(), TokioClock),
            config,
        }
    }

    /// Takes one token from the client's bucket, or says how long until one is
    /// there.
    pub fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        let ip = ip.to_canonical();
        if !self.config.enabled || self.config.exempt_loopback && ip.is_loopback() {
            return Ok(());
        }
        self.buckets
            .check_key(&bucket_key(ip, self.config.ipv6_prefix))
            .map_err(|not_until| RateLimited {
                retry_after: not_until.wait_time_from(TokioClock.now()),
            })
    }

    /// Forgets clients whose bucket has refilled (they are indistinguishable from
    /// new ones) and returns the memory. The gateway's background task should call
    /// this periodically; every 60 s keeps the map to the clients of the last minute
    /// at a cost of one pass over it.
    pub fn housekeep(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }

    /// How many clients have a bucket now.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Settings and size, for `/warmline/stats`.
    pub fn snapshot(&self) -> RateSnapshot {
        RateSnapshot {
            per_second: self.config.per_second.get(),
            burst: self.config.burst.get(),
            exempt_loopback: self.config.exempt_loopback,
            tracked_clients: self.tracked(),
        }
    }
}

impl fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLimiter")
            .field("config", &self.config)
            .field("tracked", &self.tracked())
            .finish()
    }
}

/// The key of `ip`'s bucket: IPv4 as is, IPv6 cut to its first `prefix` bits.
pub(super) fn bucket_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let kept = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - kept).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
    }
}

/// [`ClientLimiter`]'s settings and size, for `/warmline/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateSnapshot {
    pub per_second: u32,
    pub burst: u32,
    pub exempt_loopback: bool,
    pub tracked_clients: usize,
}

/// A client over its request rate (429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests from this client address; retry in {retry_after:.1?}")]
pub struct RateLimited {
    /// Until the client's next request would pass; round up for `Retry-After`.
    pub retry_after: Duration,
}

impl RateLimited {
    /// A static label for metrics.
    pub fn kind(&self) -> &'static str {
        "rate_limited"
    }
}
