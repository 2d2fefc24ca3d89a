//! Limits on every connection, and the table of open connections that enforces the counts.
//!
//! Every limit is a field of [`Limits`], with its default and the reason for it. The
//! connection table admits a new connection only within the per-client and total counts; when
//! the total is reached, the connection that has been quiet longest (no request since the
//! longest time: idle keep-alives, slow handshakes, slowloris heads) is closed to make room, so
//! a new client is never starved by connections that do nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The limits of every connection. [`Limits::default`] gives the documented defaults.
///
/// The `[limits]` table of the configuration ([`crate::config::ServeConfig`]): the same field
/// names, times in seconds, every field optional.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The longest a TLS handshake may take from the accepted TCP connection to the finished
    /// handshake. Default 10 s (a sender on a slow path needs two round trips).
    #[serde(deserialize_with = "crate::config::secs")]
    pub handshake_timeout: Duration,
    /// HTTP/1.1: the longest the connection waits for a whole request head, counted from when
    /// it starts waiting (after the handshake or the previous answer; hyper's head timer), so it
    /// bounds both a slowloris head and the keep-alive wait for the next request. Default 10 s.
    /// HTTP/2 request heads are covered by `idle_timeout`.
    #[serde(deserialize_with = "crate::config::secs")]
    pub request_timeout: Duration,
    /// The longest a connection may stay without a request being answered: after the handshake,
    /// between requests, while a request head trickles in. Default 30 s. Binds HTTP/2
    /// connections; HTTP/1.1 ones meet `request_timeout` first when it is shorter.
    #[serde(deserialize_with = "crate::config::secs")]
    pub idle_timeout: Duration,
    /// The largest request head, in bytes (HTTP/1.1: request line and headers; HTTP/2: the
    /// header list size, RFC 9113 §6.5.2). Default 8 KiB, nginx's default buffer; a policy
    /// fetch sends well under 1 KiB. Larger heads get 431 (HTTP/1.1) or a stream error (HTTP/2).
    pub max_header_bytes: usize,
    /// The most header fields in a request. Default 64; more gets 431.
    pub max_headers: usize,
    /// Open connections in total, across the HTTPS and HTTP listeners. Default 16,384. At the
    /// limit the quietest connection is closed for a new one, or the new one is refused when
    /// none is quiet.
    pub max_connections: usize,
    /// Open connections from one client: one IPv4 address, or one IPv6 /64 (a single host
    /// commonly holds a whole /64, so counting exact IPv6 addresses would limit nothing).
    /// Default 256: a large sender fetches from a few addresses, but never needs hundreds of
    /// connections at once. Past it the new connection is closed at once.
    pub max_connections_per_ip: usize,
    /// Concurrent HTTP/2 streams per connection. Default 32.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 streams reset by the client before the server took them (the rapid-reset attack,
    /// CVE-2023-44487). Past it the connection gets GOAWAY `ENHANCE_YOUR_CALM`. Default 20.
    pub h2_max_pending_accept_reset_streams: usize,
    /// HTTP/2 streams the server had to reset for a client's protocol error, per connection.
    /// Past it the connection is closed. Default 128.
    pub h2_max_local_error_reset_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_header_bytes: 8 * 1024,
            max_headers: 64,
            max_connections: 16_384,
            max_connections_per_ip: 256,
            h2_max_concurrent_streams: 32,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 128,
        }
    }
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The client address has `max_connections_per_ip` open.
    PerClient,
    /// `max_connections` are open and none is quiet.
    Full,
}

impl Refused {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::PerClient => "per_client",
            Self::Full => "total",
        }
    }
}

/// The client a connection counts against: an IPv4 address (an IPv4-mapped IPv6 address
/// counts as its IPv4 address), or the /64 an IPv6 address is in.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// One open connection, as the table sees it.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    ip: IpAddr,
    /// Milliseconds since the table's epoch when the last request was answered (or the
    /// connection opened).
    last_active: AtomicU64,
    evicted: AtomicBool,
    /// Requests under way (the admin listener counts them): a busy connection is never the
    /// quietest, however long its request takes.
    busy: std::sync::atomic::AtomicU32,
    close: Notify,
    epoch: Instant,
}

impl Slot {
    /// Marks a request started; [`Slot::finished`] ends it.
    pub(crate) fn started(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request answered now.
    pub(crate) fn finished(&self) {
        self.busy.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    /// Marks a request answered now.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(ms, Ordering::Relaxed);
    }

    /// When the last request was answered.
    pub(crate) fn last_active(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_active.load(Ordering::Relaxed))
    }

    /// Resolves when the table closes this connection to make room.
    pub(crate) async fn evicted(&self) {
        self.close.notified().await;
    }
}

#[derive(Debug, Default)]
struct Table {
    per_ip: HashMap<IpAddr, usize>,
    open: HashMap<u64, Arc<Slot>>,
    next_id: u64,
}

/// The table of open connections shared by the listeners.
#[derive(Debug)]
pub(crate) struct Tracker {
    limits: Arc<Limits>,
    table: Mutex<Table>,
    epoch: Instant,
    /// The gauge of open connections and the counter of evictions this table keeps.
    names: (&'static str, &'static str),
}

/// A connection's place in the table; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Admitted {
    tracker: Arc<Tracker>,
    pub(crate) slot: Arc<Slot>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if !self.slot.evicted.load(Ordering::Acquire) {
            let mut t = self.tracker.lock();
            t.remove(&self.slot);
        }
        metrics::gauge!(self.tracker.names.0).decrement(1);
    }
}

impl Table {
    fn remove(&mut self, slot: &Slot) {
        if self.open.remove(&slot.id).is_some()
            && let Some(n) = self.per_ip.get_mut(&slot.ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&slot.ip);
            }
        }
    }
}

impl Tracker {
    pub(crate) fn new(limits: Arc<Limits>) -> Self {
        Self::named(
            limits,
            "mtasts_serve_connections",
            "mtasts_serve_connections_evicted_total",
        )
    }

    /// A table whose open-connection gauge and eviction counter have these names (the admin
    /// listener keeps its own).
    pub(crate) fn named(limits: Arc<Limits>, gauge: &'static str, evicted: &'static str) -> Self {
        Self {
            limits,
            table: Mutex::default(),
            epoch: Instant::now(),
            names: (gauge, evicted),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, closing the quietest open one if the total is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refused> {
        let ip = client_key(ip);
        let mut t = self.lock();
        if t.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.max_connections_per_ip {
            return Err(Refused::PerClient);
        }
        if t.open.len() >= self.limits.max_connections {
            let quietest = t
                .open
                .values()
                .filter(|s| s.busy.load(Ordering::Relaxed) == 0)
                .min_by_key(|s| (s.last_active.load(Ordering::Relaxed), s.id))
                .cloned();
            // The quietest, and of equally quiet ones the oldest. Only a connection with no
            // request answered for a while is closed: one that is
            // serving right now is not sacrificed for a newcomer.
            let quiet_for = Duration::from_secs(1).min(self.limits.idle_timeout);
            match quietest {
                Some(s) if s.last_active() + quiet_for <= Instant::now() => {
                    s.evicted.store(true, Ordering::Release);
                    t.remove(&s);
                    s.close.notify_one();
                    metrics::counter!(self.names.1).increment(1);
                }
                _ => return Err(Refused::Full),
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let slot = Arc::new(Slot {
            id,
            ip,
            last_active: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            busy: std::sync::atomic::AtomicU32::new(0),
            close: Notify::new(),
            epoch: self.epoch,
        });
        slot.touch();
        t.open.insert(id, Arc::clone(&slot));
        *t.per_ip.entry(ip).or_insert(0) += 1;
        drop(t);
        metrics::gauge!(self.names.0).increment(1);
        Ok(Admitted {
            tracker: Arc::clone(self),
            slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_slash_64_and_a_mapped_ipv4_is_its_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_per_client_limit_counts_a_whole_ipv6_slash_64() {
        let limits = Limits {
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let t = Arc::new(Tracker::new(Arc::new(limits)));
        let one = t.admit("2001:db8::1".parse().unwrap()).unwrap();
        let _two = t.admit("2001:db8::2".parse().unwrap()).unwrap();
        assert!(matches!(
            t.admit("2001:db8::ffff".parse().unwrap()),
            Err(Refused::PerClient)
        ));
        assert!(t.admit("2001:db8:0:1::1".parse().unwrap()).is_ok());
        drop(one);
        assert!(t.admit("2001:db8::3".parse().unwrap()).is_ok());
    }
}
