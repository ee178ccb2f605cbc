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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use url::Url;

use super::entry::Entry;

const PREFIX: &str = "warmline:v1:";
const MAGIC: &[u8; 4] = b"WLE1";
/// Budget for background writes and purges (reads use the configured timeout).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to the shared tier.
pub struct RedisTier {
    conn: ConnectionManager,
    read_timeout: Duration,
    down: AtomicBool,
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) errors: AtomicU64,
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

    /// Whether the last operation failed.
    pub fn is_down(&self) -> bool {
        self.down.load(Relaxed)
    }

    /// Reads an entry; `None` on a miss, a timeout or any Redis failure.
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

    fn up(&self) {
        if self.down.swap(false, Relaxed) {
            tracing::info!(redis = %self.url, "redis cache tier is reachable again");
        }
    }

    fn failed(&self, reason: &str) {
        self.errors.fetch_add(1, Relaxed);
        if !self.down.swap(true, Relaxed) {
            tracing::warn!(redis = %self.url, "redis cache tier unavailable, serving without it: {reason}");
        }
    }
}

/// Serialises an entry: magic, stored-at (ms since the epoch), TTL (ms), stream
/// flag, then model, content type and each chunk as u32-length-prefixed bytes.
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

fn put_bytes(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u32(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    out.put_slice(bytes);
}

/// Parses what [`encode`] wrote; `None` for anything else (a foreign or corrupt
/// value is a miss, never an error).
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
