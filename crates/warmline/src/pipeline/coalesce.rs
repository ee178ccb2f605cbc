//! Coalescing: identical requests in flight at the same time share one upstream
//! generation.
//!
//! The first request for a key becomes the *leader*: it gets a [`Publisher`] and a
//! background task drives the upstream request through it. Every request for the
//! same key — the leader's own client included — reads through a [`Subscription`]:
//! first everything produced so far (a follower that arrives mid-stream is not
//! behind), then the live tail. The upstream request belongs to the flight, not to
//! any one client, so the first client leaving does not stop it for the others; when
//! the *last* subscriber leaves before the end, the flight is cancelled, so nothing
//! keeps generating just to fill the cache.
//!
//! State lives behind a `std` mutex that is only held to push or copy out `Bytes`
//! handles (never across an `.await`); waking uses a `watch` channel whose value is
//! a version counter.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// The status and headers of the shared response.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// What the shared upstream exchange learned (host, queue, load), for each
    /// subscriber's metrics.
    pub(crate) trace: Option<super::record::Trace>,
}

/// How a flight ended.
#[derive(Debug, Clone)]
pub enum End {
    /// The upstream response ended normally.
    Complete,
    /// The response broke off after its head was sent (the last chunk may be an
    /// in-stream error line), or the flight was cancelled.
    Broken,
    /// The upstream could not be reached or did not answer; nothing was sent.
    Failed(Arc<Error>),
}

/// What a subscriber sees next.
#[derive(Debug, Clone)]
pub enum Event {
    Head(Head),
    Chunk(Bytes),
    End(End),
}

#[derive(Debug, Default)]
struct State {
    head: Option<Head>,
    chunks: Vec<Bytes>,
    end: Option<End>,
}

/// One shared upstream exchange.
#[derive(Debug)]
pub struct Flight {
    state: Mutex<State>,
    version: watch::Sender<u64>,
    subscribers: AtomicUsize,
    cancel: CancellationToken,
}

impl Flight {
    fn new() -> Flight {
        Flight {
            state: Mutex::default(),
            version: watch::Sender::new(0),
            subscribers: AtomicUsize::new(0),
            cancel: CancellationToken::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent
        // (every update is a single push or assignment), so poison is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
    }

    fn subscribe(self: &Arc<Self>) -> Subscription {
        self.subscribers.fetch_add(1, Ordering::SeqCst);
        Subscription {
            flight: Arc::clone(self),
            version: self.version.subscribe(),
            next_chunk: 0,
            head_seen: false,
            finished: false,
        }
    }
}

/// The in-flight exchanges, by key.
#[derive(Debug)]
pub struct Flights<K> {
    map: Mutex<HashMap<K, Arc<Flight>>>,
}

impl<K> Default for Flights<K> {
    fn default() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
        }
    }
}

/// The outcome of [`Flights::join`].
#[derive(Debug)]
pub enum Joined<K: Hash + Eq + Clone> {
    /// No identical request was in flight: drive the upstream through the
    /// publisher, and read the client's response from the subscription.
    Leader(Publisher<K>, Subscription),
    /// An identical request is in flight: read its response.
    Follower(Subscription),
}

impl<K: Hash + Eq + Clone> Flights<K> {
    /// Joins the flight for `key`, starting one if none is running.
    pub fn join(self: &Arc<Self>, key: &K) -> Joined<K> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(flight) = map.get(key)
            && !flight.cancel.is_cancelled()
        {
            return Joined::Follower(flight.subscribe());
        }
        let flight = Arc::new(Flight::new());
        map.insert(key.clone(), Arc::clone(&flight));
        let subscription = flight.subscribe();
        let publisher = Publisher {
            flights: Arc::clone(self),
            key: key.clone(),
            flight,
            finished: false,
        };
        Joined::Leader(publisher, subscription)
    }

    /// Number of flights in progress.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn remove(&self, key: &K, flight: &Arc<Flight>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Only our own flight: a cancelled one may already have been replaced.
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(key);
        }
    }
}

/// The leader's side: publishes the upstream response to every subscriber.
/// Dropping it without [`Publisher::finish`] ends the flight as [`End::Broken`].
#[derive(Debug)]
pub struct Publisher<K: Hash + Eq + Clone> {
    flights: Arc<Flights<K>>,
    key: K,
    flight: Arc<Flight>,
    finished: bool,
}

impl<K: Hash + Eq + Clone> Publisher<K> {
    pub fn head(&self, head: Head) {
        self.flight.update(|s| s.head = Some(head));
    }

    pub fn chunk(&self, chunk: Bytes) {
        self.flight.update(|s| s.chunks.push(chunk));
    }

    /// Resolves when every subscriber has gone: stop driving the upstream.
    pub async fn cancelled(&self) {
        self.flight.cancel.cancelled().await;
    }

    /// Everything published so far.
    pub fn chunks(&self) -> Vec<Bytes> {
        self.flight.lock().chunks.clone()
    }

    /// Ends the flight and returns everything it published.
    pub fn finish(mut self, end: End) -> Vec<Bytes> {
        self.finished = true;
        self.end(end)
    }

    fn end(&self, end: End) -> Vec<Bytes> {
        // Leave the map first: from now on an identical request looks in the cache.
        self.flights.remove(&self.key, &self.flight);
        let mut chunks = Vec::new();
        self.flight.update(|s| {
            s.end = Some(end);
            chunks = s.chunks.clone();
        });
        chunks
    }
}

impl<K: Hash + Eq + Clone> Drop for Publisher<K> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(End::Broken);
        }
    }
}

/// A reader of a flight. Dropping the last one cancels an unfinished flight.
#[derive(Debug)]
pub struct Subscription {
    flight: Arc<Flight>,
    version: watch::Receiver<u64>,
    next_chunk: usize,
    head_seen: bool,
    finished: bool,
}

impl Subscription {
    /// The next event: the head, then chunks in order, then the end.
    pub async fn next(&mut self) -> Event {
        loop {
            // Mark the current version seen *before* reading the state, so an
            // update racing with the read is never missed.
            self.version.borrow_and_update();
            if let Some(event) = self.poll_state() {
                return event;
            }
            if self.version.changed().await.is_err() {
                // The flight is gone without an end: treat as broken.
                self.finished = true;
                return Event::End(End::Broken);
            }
        }
    }

    fn poll_state(&mut self) -> Option<Event> {
        let state = self.flight.lock();
        if !self.head_seen {
            if let Some(head) = &state.head {
                self.head_seen = true;
                return Some(Event::Head(head.clone()));
            }
        } else if let Some(chunk) = state.chunks.get(self.next_chunk) {
            self.next_chunk += 1;
            return Some(Event::Chunk(chunk.clone()));
        }
        let end = state.end.clone()?;
        // A failed flight has no head; a broken or complete one delivers its head
        // and every chunk before its end.
        if matches!(end, End::Failed(_)) || self.head_seen {
            self.finished = true;
            return Some(Event::End(end));
        }
        None
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let left = self.flight.subscribers.fetch_sub(1, Ordering::SeqCst) - 1;
        if left == 0 && !self.finished {
            self.flight.cancel.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            trace: None,
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        }
    }

    async fn drain(mut sub: Subscription) -> (usize, Vec<Bytes>, End) {
        let mut heads = 0;
        let mut chunks = Vec::new();
        loop {
            match sub.next().await {
                Event::Head(_) => heads += 1,
                Event::Chunk(c) => chunks.push(c),
                Event::End(end) => return (heads, chunks, end),
            }
        }
    }

    #[tokio::test]
    async fn a_follower_joining_mid_stream_gets_everything() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(publisher, leader) = flights.join(&1) else {
            panic!("first is the leader")
        };
        publisher.head(head());
        publisher.chunk(Bytes::from_static(b"a"));
        let Joined::Follower(follower) = flights.join(&1) else {
            panic!("second follows")
        };
        publisher.chunk(Bytes::from_static(b"b"));
        let recorded = publisher.finish(End::Complete);
        assert_eq!(recorded.len(), 2);
        for sub in [leader, follower] {
            let (heads, chunks, end) = drain(sub).await;
            assert_eq!(heads, 1);
            assert_eq!(
                chunks,
                vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
            );
            assert!(matches!(end, End::Complete));
        }
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn the_flight_survives_its_first_client_and_dies_with_its_last() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(publisher, leader) = flights.join(&"k") else {
            panic!("leader")
        };
        let Joined::Follower(follower) = flights.join(&"k") else {
            panic!("follower")
        };
        drop(leader);
        assert!(!publisher.flight.cancel.is_cancelled());
        drop(follower);
        tokio::time::timeout(std::time::Duration::from_secs(1), publisher.cancelled())
            .await
            .expect("cancelled once nobody listens");
        // A new request after cancellation starts a fresh flight.
        assert!(matches!(flights.join(&"k"), Joined::Leader(..)));
    }

    #[tokio::test]
    async fn a_failed_flight_reaches_every_subscriber_without_a_head() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(publisher, sub) = flights.join(&0u8) else {
            panic!("leader")
        };
        let err = Error::from(crate::error::ProxyError::Unreachable {
            upstream: "http://127.0.0.1:9".into(),
            reason: "connection refused".into(),
        });
        publisher.finish(End::Failed(Arc::new(err)));
        let (heads, chunks, end) = drain(sub).await;
        assert_eq!((heads, chunks.len()), (0, 0));
        assert!(matches!(end, End::Failed(_)));
    }

    #[tokio::test]
    async fn dropping_the_publisher_ends_the_flight_as_broken() {
        let flights = Arc::new(Flights::default());
        let Joined::Leader(publisher, sub) = flights.join(&0u8) else {
            panic!("leader")
        };
        publisher.head(head());
        drop(publisher);
        let (heads, _, end) = drain(sub).await;
        assert_eq!(heads, 1);
        assert!(matches!(end, End::Broken));
    }
}
