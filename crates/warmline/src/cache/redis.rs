//! The optional shared second tier: Redis, for several gateway instances.
//!
//! It sits behind the in-process tier: a moka miss asks Redis, and a Redis hit is
//! copied into moka. Reads are bounded by `cache.redis_timeout` (5 ms by default):
//! when Redis is slow or down the request simply goes upstream ("fail open"), the
//! gateway logs the outage once (and the recovery once) and counts every failure.
//! Writes happen in the background after the client's response is complete, so a
//! slow Redis never delays anyone. No client ever sees an error because of Redis.
//!
//! Entries are stored under `warmline:v1:<key>` with Redis's own expiry set to the
//! entry's TTL, in a small length-prefixed binary format ([`encode`]/[`decode`]);
//! a set `warmline:v1:model:<name>` lists each model's keys so one model can be
//! purged without a scan.
//!
//! # Keys
//!
//! `<key>` is the caller's string: the cache passes its `StoreKey` as
//! `<64 hex digits>:<route>:<variant>`, so every gateway sharing the Redis instance
//! finds the same answer under the same name. Everything Warmline writes starts with
//! `warmline:v1:`, which makes a full purge a `SCAN` for that prefix and leaves other
//! data in the same Redis database alone.
//!
//! # Failure model
//!
//! Redis is an optimisation, never a dependency. Every operation has a deadline;
//! every failure is counted in `errors`, flips the tier to "down" (logged once, at
//! warn) and is otherwise swallowed: a read becomes a miss, a write is dropped. The
//! next success flips it back (logged once, at info). The connection is made lazily
//! and re-established by the `ConnectionManager`, so a gateway starts and keeps
//! serving while Redis is away. A value that cannot be decoded is a miss, so a
//! foreign or corrupt value (or one from a future format) can never reach a client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use url::Url;

use super::entry::Entry;

/// Prefix of every Redis key Warmline writes (entries and per-model sets).
const PREFIX: &str = "warmline:v1:";
/// First bytes of every encoded entry: "Warmline entry, format 1". A value without
/// them is not ours (or not this format) and reads as a miss.
const MAGIC: &[u8; 4] = b"WLE1";
/// Budget for background writes and purges (reads use the configured timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the shared tier.
///
/// One per `Cache`, shared by every request through an `Arc`. All methods take
/// `&self` and are safe to call concurrently: the `ConnectionManager` multiplexes
/// commands over one connection, and the state below is atomics only.
pub struct RedisTier {
    /// Reconnecting, multiplexed connection; cloned per operation (cheap).
    conn: ConnectionManager,
    /// Deadline of a read (`cache.redis_timeout`).
    read_timeout: Duration,
    /// Whether the last operation failed; only used to log transitions once.
    down: AtomicBool,
    /// Reads that found a valid, unexpired entry.
    pub(crate) hits: AtomicU64,
    /// Reads that found nothing, or a value that did not decode (or had expired).
    pub(crate) misses: AtomicU64,
    /// Operations (reads, writes, purges) that failed or timed out.
    pub(crate) errors: AtomicU64,
    /// The URL with any password masked, for logs and stats.
    url: String,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// Prepares a lazily connecting tier; nothing is sent until the first use, so a
    /// gateway starts even when Redis is down.
    ///
    /// `read_timeout` bounds each `get`. The connection itself gets 250 ms to
    /// connect, `WRITE_TIMEOUT` (2 s) per response, and one retry when reconnecting.
    /// The error (the redis crate's message) comes from a URL or setting the client
    /// library refuses; an unreachable server is not an error here.
    pub fn new(url: &Url, read_timeout: Duration) -> Result<RedisTier, String> {
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(250)))
            .set_response_timeout(Some(WRITE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
        Ok(RedisTier {
            conn,
            read_timeout,
            down: AtomicBool::new(false),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            url: crate::config::redacted(url),
        })
    }

    /// The URL with any password removed, for logs and stats.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the last operation failed (shown as `up: false` in the cache stats).
    pub fn is_down(&self) -> bool {
        self.down.load(Relaxed)
    }

    /// Reads an entry; `None` on a miss, a timeout or any Redis failure.
    ///
    /// `key` is the name without the prefix. The read is cut off after
    /// `read_timeout` (a few milliseconds by default): a slow Redis must cost less
    /// than it saves. A value that does not decode, or whose TTL has passed by this
    /// host's clock, counts as a miss; a failure or timeout counts as an error.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        let mut conn = self.conn.clone();
        let mut command = redis::cmd("GET");
        command.arg(format!("{PREFIX}{key}"));
        let read = command.query_async::<Option<Vec<u8>>>(&mut conn);
        match tokio::time::timeout(self.read_timeout, read).await {
            Ok(Ok(Some(bytes))) => {
                self.up();
                let entry = decode(Bytes::from(bytes));
                if entry.is_some() {
                    self.hits.fetch_add(1, Relaxed);
                } else {
                    self.misses.fetch_add(1, Relaxed);
                }
                entry
            }
            Ok(Ok(None)) => {
                self.up();
                self.misses.fetch_add(1, Relaxed);
                None
            }
            Ok(Err(err)) => {
                self.failed(&err.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!(
                    "read took longer than {} (cache.redis_timeout)",
                    humantime::format_duration(self.read_timeout)
                ));
                None
            }
        }
    }

    /// Stores an entry in the background.
    ///
    /// Returns at once; a spawned task (so this must be called inside the Tokio
    /// runtime) sends `SET <key> <value> PX <ttl>` and adds the key to the model's
    /// set, in one pipeline, within `WRITE_TIMEOUT` (2 s). The TTL is at least 1 ms
    /// (Redis refuses `PX 0`). The outcome is only counted and logged: nobody waits
    /// for it. The model set itself is given no expiry, so it keeps the names of
    /// expired entries until the model is purged.
    pub fn put(self: &std::sync::Arc<Self>, key: String, entry: &Entry) {
        let tier = std::sync::Arc::clone(self);
        let value = encode(entry);
        let ttl_ms = u64::try_from(entry.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let model_set = format!("{PREFIX}model:{}", entry.model);
        tokio::spawn(async move {
            let mut conn = tier.conn.clone();
            let full = format!("{PREFIX}{key}");
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(&full)
                .arg(value.as_ref())
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
            pipe.cmd("SADD").arg(&model_set).arg(&full).ignore();
            let write = pipe.query_async::<()>(&mut conn);
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => tier.up(),
                Ok(Err(err)) => tier.failed(&err.to_string()),
                Err(_) => tier.failed("write timed out"),
            }
        });
    }

    /// Deletes every entry, or one model's.
    ///
    /// With a model (normalised name): the keys listed in its set, and the set.
    /// Without: every key under the prefix, found with `SCAN` (never `KEYS`, which
    /// would block Redis), including other gateways' entries, since the tier is
    /// shared. Keys are deleted in batches of 500. Returns how many keys were deleted
    /// (set keys included). The whole purge has `WRITE_TIMEOUT` (2 s); on a timeout or
    /// failure the error says so, and keys already deleted stay deleted.
    pub async fn purge(&self, model: Option<&str>) -> Result<u64, String> {
        let mut conn = self.conn.clone();
        let work = async {
            let keys: Vec<String> = match model {
                Some(model) => {
                    let set = format!("{PREFIX}model:{model}");
                    let mut keys: Vec<String> = redis::cmd("SMEMBERS")
                        .arg(&set)
                        .query_async(&mut conn)
                        .await?;
                    keys.push(set);
                    keys
                }
                None => {
                    let mut keys = Vec::new();
                    let mut cursor: u64 = 0;
                    loop {
                        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(format!("{PREFIX}*"))
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(&mut conn)
                            .await?;
                        keys.extend(batch);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                    keys
                }
            };
            let mut deleted = 0u64;
            for batch in keys.chunks(500) {
                deleted += redis::cmd("DEL")
                    .arg(batch)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
            Ok::<u64, redis::RedisError>(deleted)
        };
        match tokio::time::timeout(WRITE_TIMEOUT, work).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(err)) => {
                self.failed(&err.to_string());
                Err(err.to_string())
            }
            Err(_) => {
                self.failed("purge timed out");
                Err("purge timed out".into())
            }
        }
    }

    /// Records a success; logs the recovery if the tier was down.
    fn up(&self) {
        if self.down.swap(false, Relaxed) {
            tracing::info!(redis = %self.url, "redis cache tier is reachable again");
        }
    }

    /// Records a failure; logs `reason` if the tier was up until now.
    fn failed(&self, reason: &str) {
        self.errors.fetch_add(1, Relaxed);
        if !self.down.swap(true, Relaxed) {
            tracing::warn!(redis = %self.url, "redis cache tier unavailable, serving without it: {reason}");
        }
    }
}

/// Serialises an entry: magic, stored-at (ms since the epoch), TTL (ms), stream
/// flag, then model, content type and each chunk as u32-length-prefixed bytes.
///
/// ```text
/// "WLE1" | stored_at u64 | ttl u64 | stream u8 | len u32, model
///        | len u32, content type | count u32 | (len u32, chunk) * count
/// ```
///
/// Integers are big-endian. Chunk boundaries are kept, so a replay from Redis is
/// chunked like the original. Times are whole milliseconds; a `stored_at` before
/// the epoch is written as 0.
pub fn encode(entry: &Entry) -> Bytes {
    let mut out = BytesMut::with_capacity(entry.body_len() + 64 + 4 * entry.chunks.len());
    out.put_slice(MAGIC);
    let stored = entry
        .stored_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    out.put_u64(u64::try_from(stored.as_millis()).unwrap_or(0));
    out.put_u64(u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX));
    out.put_u8(u8::from(entry.stream));
    put_bytes(&mut out, entry.model.as_bytes());
    put_bytes(&mut out, entry.content_type.as_bytes());
    out.put_u32(u32::try_from(entry.chunks.len()).unwrap_or(u32::MAX));
    for chunk in &entry.chunks {
        put_bytes(&mut out, chunk);
    }
    out.freeze()
}

/// Writes `bytes` with its length as a big-endian `u32` in front.
fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

/// Parses what [`encode`] wrote; `None` for anything else (a foreign or corrupt
/// value is a miss, never an error).
///
/// Also `None` when the value is truncated or has bytes left over, when the model
/// is not UTF-8 or the content type not a valid header value, and when the entry's
/// TTL has passed by this host's clock. Chunks are zero-copy slices of `data`.
/// Never panics on any input: every length is checked before it is read.
pub fn decode(mut data: Bytes) -> Option<Entry> {
    if data.len() < 4 + 8 + 8 + 1 || &data[..4] != MAGIC {
        return None;
    }
    data.advance(4);
    let stored_at = UNIX_EPOCH + Duration::from_millis(data.get_u64());
    let ttl = Duration::from_millis(data.get_u64());
    let stream = data.get_u8() != 0;
    let model = String::from_utf8(take(&mut data)?.to_vec()).ok()?;
    let content_type = http::HeaderValue::from_maybe_shared(take(&mut data)?).ok()?;
    if data.remaining() < 4 {
        return None;
    }
    let count = data.get_u32() as usize;
    let mut chunks = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        chunks.push(take(&mut data)?);
    }
    if data.has_remaining() {
        return None;
    }
    // Redis expires entries itself; this also guards against clock jumps.
    if SystemTime::now()
        .duration_since(stored_at)
        .unwrap_or_default()
        > ttl
    {
        return None;
    }
    Some(Entry {
        model,
        stream,
        content_type,
        chunks,
        stored_at,
        ttl,
    })
}

/// Splits one u32-length-prefixed field off the front of `data`; `None` if `data`
/// is too short for the length or for the field.
fn take(data: &mut Bytes) -> Option<Bytes> {
    if data.remaining() < 4 {
        return None;
    }
    let len = data.get_u32() as usize;
    if data.remaining() < len {
        return None;
    }
    Some(data.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            model: "llama3.2:latest".into(),
            stream: true,
            content_type: http::HeaderValue::from_static("application/x-ndjson"),
            chunks: vec![
                Bytes::from_static(b"{\"a\":1}\n"),
                Bytes::from_static(b"{\"done\":true}\n"),
            ],
            stored_at: SystemTime::now(),
            ttl: Duration::from_secs(300),
        }
    }

    #[test]
    fn entries_round_trip() {
        let original = entry();
        let decoded = decode(encode(&original)).expect("decodes");
        assert_eq!(decoded.chunks, original.chunks);
        assert_eq!(decoded.model, original.model);
        assert_eq!(decoded.content_type, original.content_type);
        assert!(decoded.stream);
        assert_eq!(decoded.ttl, original.ttl);
    }

    #[test]
    fn corrupt_or_foreign_values_are_misses() {
        assert!(decode(Bytes::from_static(b"hello")).is_none());
        let mut bytes = encode(&entry()).to_vec();
        bytes.truncate(bytes.len() - 3);
        assert!(decode(Bytes::from(bytes)).is_none());
        let mut bytes = encode(&entry()).to_vec();
        bytes.push(0);
        assert!(decode(Bytes::from(bytes)).is_none());
    }

    #[test]
    fn expired_entries_are_misses() {
        let mut old = entry();
        old.stored_at = SystemTime::now() - Duration::from_secs(600);
        assert!(decode(encode(&old)).is_none());
    }

    #[test]
    fn passwords_are_not_shown() {
        let url = Url::parse("redis://:secret@127.0.0.1:6379/0").expect("url");
        assert!(!crate::config::redacted(&url).contains("secret"));
    }
}
