//! The connections a protocol server holds, so that a full server makes room for a new client
//! instead of making it wait: the idle are evicted first, oldest first.
//!
//! Every connection is in one of three states, kept in an atomic its task updates (one store per
//! request, no lock on the request path):
//! - idle: no request under way (evicted first: Postfix reconnects transparently, as it does
//!   after its own idle time-out);
//! - reading: part of a request has arrived (evicted next: a slow or stalled sender);
//! - busy: a request is being answered (never evicted: it ends within the handler's budget).
//!
//! Two limits: [`super::Limits::max_connections`] in total, and
//! [`super::Limits::max_per_peer`] per peer (a TCP client's IP address, a unix socket client's
//! user id). A peer over its share has its own oldest idle connection evicted when it opens
//! another; a full server evicts the oldest idle connection of anyone when a client arrives.
//! Nobody is ever refused for being over a share: on loopback every client, Postfix included,
//! is the same peer, and a busy Postfix must not be turned away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Who is at the other end, for the per-peer limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// A TCP client's address.
    Ip(IpAddr),
    /// A unix socket client's user id (`None`: the credentials could not be read).
    Uid(Option<u32>),
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum State {
    /// No request under way.
    Idle = 0,
    /// Part of a request has arrived.
    Reading = 1,
    /// A request is being answered.
    Busy = 2,
}

/// One connection as the registry sees it; its task holds the same `Arc`.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// Admission order (ties in `since_ms` go to the older connection).
    id: u64,
    peer: Peer,
    state: AtomicU8,
    /// Milliseconds since the registry's epoch when the current state began.
    since_ms: AtomicU64,
    kicked: AtomicBool,
    kick: Notify,
    epoch: Instant,
}

impl Tracked {
    /// Records a state change at `now` (the caller's clock reading, reused).
    pub(crate) fn set(&self, state: State, now: Instant) {
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        self.since_ms.store(ms, Relaxed);
        self.state.store(state as u8, Relaxed);
    }

    /// Marks the connection busy (a request is being answered).
    pub(crate) fn busy(&self) {
        self.state.store(State::Busy as u8, Relaxed);
    }

    /// Completes when the connection is evicted.
    pub(crate) async fn evicted(&self) {
        self.kick.notified().await;
    }

    fn state(&self) -> State {
        match self.state.load(Relaxed) {
            0 => State::Idle,
            1 => State::Reading,
            _ => State::Busy,
        }
    }

    /// The eviction order: idle before reading, then the longest in that state; `None` for a
    /// connection that must not be evicted (busy, or already evicted).
    fn rank(&self) -> Option<(State, u64, u64)> {
        let state = self.state();
        (state != State::Busy && !self.kicked.load(Relaxed))
            .then(|| (state, self.since_ms.load(Relaxed), self.id))
    }

    fn kick(&self) {
        self.kicked.store(true, Relaxed);
        // Stores a permit when the task is not waiting right now: it closes at its next wait.
        self.kick.notify_one();
    }
}

/// The connections of one server.
#[derive(Debug)]
pub(crate) struct Registry {
    epoch: Instant,
    max_per_peer: usize,
    inner: Mutex<Inner>,
    evictions: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, Arc<Tracked>>,
    per_peer: HashMap<Peer, usize>,
}

impl Registry {
    pub(crate) fn new(max_per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            max_per_peer: max_per_peer.max(1),
            inner: Mutex::new(Inner::default()),
            evictions: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection from `peer` (idle); when the peer already holds its share,
    /// its oldest evictable connection is evicted. The connection leaves the registry when the
    /// returned guard is dropped.
    pub(crate) fn admit(self: &Arc<Self>, peer: Peer) -> Admitted {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let tracked = Arc::new(Tracked {
            id,
            peer,
            state: AtomicU8::new(State::Idle as u8),
            since_ms: AtomicU64::new(0),
            kicked: AtomicBool::new(false),
            kick: Notify::new(),
            epoch: self.epoch,
        });
        tracked.set(State::Idle, Instant::now());
        let held = inner.per_peer.get(&peer).copied().unwrap_or(0);
        if held >= self.max_per_peer {
            self.evict_in(&inner, Some(peer));
        }
        inner.conns.insert(id, Arc::clone(&tracked));
        *inner.per_peer.entry(peer).or_insert(0) += 1;
        Admitted {
            registry: Arc::clone(self),
            id,
            tracked,
        }
    }

    /// Evicts the oldest idle (then reading) connection of anyone; false when every connection
    /// is busy.
    pub(crate) fn evict_one(&self) -> bool {
        let inner = self.lock();
        self.evict_in(&inner, None)
    }

    /// How many connections were evicted so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Relaxed)
    }

    fn evict_in(&self, inner: &Inner, of: Option<Peer>) -> bool {
        let victim = inner
            .conns
            .values()
            .filter(|t| of.is_none_or(|p| t.peer == p))
            .filter_map(|t| t.rank().map(|r| (r, t)))
            .min_by_key(|(r, _)| *r);
        match victim {
            Some((_, t)) => {
                t.kick();
                self.evictions.fetch_add(1, Relaxed);
                true
            }
            None => false,
        }
    }
}

/// A registered connection; leaves the registry when dropped.
#[derive(Debug)]
pub(crate) struct Admitted {
    registry: Arc<Registry>,
    id: u64,
    pub(crate) tracked: Arc<Tracked>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if let Some(t) = inner.conns.remove(&self.id)
            && let Some(n) = inner.per_peer.get_mut(&t.peer)
        {
            *n -= 1;
            if *n == 0 {
                inner.per_peer.remove(&t.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: Peer = Peer::Uid(Some(1));
    const B: Peer = Peer::Uid(Some(2));

    #[tokio::test]
    async fn the_oldest_idle_goes_first_and_the_busy_never() {
        let r = Registry::new(100);
        let start = Instant::now();
        let old = r.admit(A);
        old.tracked.set(State::Idle, start);
        let reading = r.admit(B);
        reading.tracked.set(State::Reading, start);
        let newer = r.admit(A);
        newer
            .tracked
            .set(State::Idle, start + Duration::from_millis(5));
        let busy = r.admit(B);
        busy.tracked.busy();
        assert!(r.evict_one());
        assert!(old.tracked.kicked.load(Relaxed));
        assert!(r.evict_one());
        assert!(newer.tracked.kicked.load(Relaxed), "idle before reading");
        assert!(r.evict_one());
        assert!(reading.tracked.kicked.load(Relaxed));
        assert!(!r.evict_one(), "a busy connection is never evicted");
        assert!(!busy.tracked.kicked.load(Relaxed));
        old.tracked.evicted().await;
        assert_eq!(r.evictions(), 3);
    }

    #[test]
    fn a_peer_over_its_share_loses_its_own_oldest() {
        let r = Registry::new(2);
        let b = r.admit(B);
        let a1 = r.admit(A);
        let a2 = r.admit(A);
        let _a3 = r.admit(A);
        assert!(a1.tracked.kicked.load(Relaxed));
        assert!(!a2.tracked.kicked.load(Relaxed));
        assert!(
            !b.tracked.kicked.load(Relaxed),
            "other peers are left alone"
        );
        drop(a1);
        assert_eq!(r.lock().per_peer[&A], 2);
        assert_eq!(r.lock().conns.len(), 3);
    }
}
