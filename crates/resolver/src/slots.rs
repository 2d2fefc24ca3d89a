//! The cache's table: one compact slot per domain, in shards with their own locks.
//!
//! A slot is 48 bytes in the table plus one heap string (the domain, and for a policy its
//! id and patterns; see [`crate::cached`]). Times are milliseconds (seconds for `last_used`) on
//! the engine's [`Clock`], not `Instant`s, which are twice the size.

use crate::cached::CachedPolicy;
use crate::reply::PolicyFailure;
use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Number of independently locked parts of the cache.
const SHARDS: usize = 32;

/// The engine's clock: milliseconds since the engine was made, on tokio's clock (so a paused
/// test clock drives it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Now, in milliseconds.
    pub(crate) fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    /// `t`, in milliseconds (0 for instants before the epoch).
    pub(crate) fn ms(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// `ms` as an instant.
    pub(crate) fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

/// `d` in milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What the cache knows about a domain, borrowed from the cache.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// A policy.
    Policy(&'a CachedPolicy),
    /// No policy (no usable TXT record, or `mode: none`).
    NoPolicy,
    /// The TXT record names a policy that could not be had, and why.
    Failure(PolicyFailure, &'a str),
    /// The TXT lookup failed, and why.
    DnsError(&'a str),
}

/// A slot's content.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A policy; its string starts with the domain.
    Policy(CachedPolicy),
    /// Anything else: `text` is the domain followed by the reason, if any.
    Other {
        text: Box<str>,
        domain_len: u8,
        state: Other,
    },
}

/// What a slot without a policy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Other {
    /// Nothing yet (the first refresh runs).
    Unknown,
    /// No policy.
    NoPolicy,
    /// The policy could not be had.
    Failure(PolicyFailure),
    /// The TXT lookup failed.
    DnsError,
}

impl Entry {
    /// A slot without a policy for `domain` (at most [`crate::key::MAX_NAME_LEN`] bytes).
    pub(crate) fn other(domain: &str, state: Other, why: &str) -> Self {
        let mut text = String::with_capacity(domain.len() + why.len());
        text.push_str(domain);
        text.push_str(why);
        Self::Other {
            text: text.into_boxed_str(),
            domain_len: u8::try_from(domain.len()).unwrap_or(u8::MAX),
            state,
        }
    }

    fn domain(&self) -> &str {
        match self {
            Self::Policy(p) => p.domain(),
            Self::Other {
                text, domain_len, ..
            } => &text[..usize::from(*domain_len)],
        }
    }

    /// What is known, expired policies included.
    pub(crate) fn known(&self) -> Option<Known<'_>> {
        match self {
            Self::Policy(p) => Some(Known::Policy(p)),
            Self::Other {
                text,
                domain_len,
                state,
            } => {
                let why = &text[usize::from(*domain_len)..];
                match state {
                    Other::Unknown => None,
                    Other::NoPolicy => Some(Known::NoPolicy),
                    Other::Failure(f) => Some(Known::Failure(*f, why)),
                    Other::DnsError => Some(Known::DnsError(why)),
                }
            }
        }
    }

    /// The policy, if one is cached (expired or not).
    pub(crate) fn policy(&self) -> Option<&CachedPolicy> {
        match self {
            Self::Policy(p) => Some(p),
            Self::Other { .. } => None,
        }
    }
}

/// One domain's slot.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) entry: Entry,
    /// When the next refresh is due (ms).
    pub(crate) next_check_ms: u64,
    /// Last lookup (seconds on the engine clock).
    pub(crate) last_used_s: u32,
    /// Failed refreshes in a row.
    pub(crate) failures: u16,
    /// A refresh is under way; lookups waiting for it wait on the shard's [`Table::notify`].
    pub(crate) inflight: bool,
}

impl Slot {
    fn new(domain: &str, now_ms: u64) -> Self {
        Self {
            entry: Entry::other(domain, Other::Unknown, ""),
            next_check_ms: now_ms,
            last_used_s: secs(now_ms),
            failures: 0,
            inflight: false,
        }
    }

    pub(crate) fn domain(&self) -> &str {
        self.entry.domain()
    }

    /// What may be answered now: anything but an expired policy.
    pub(crate) fn usable(&self, now_ms: u64) -> Option<Known<'_>> {
        match &self.entry {
            Entry::Policy(p) if now_ms >= p.expires_ms() => None,
            e => e.known(),
        }
    }

    /// Marks the slot used now.
    pub(crate) fn touch(&mut self, now_ms: u64) {
        self.last_used_s = secs(now_ms);
    }

    /// How long ago the slot was last used.
    pub(crate) fn idle_for(&self, now_ms: u64) -> Duration {
        Duration::from_secs(u64::from(secs(now_ms).saturating_sub(self.last_used_s)))
    }

    /// One more failure (saturating); the new count.
    pub(crate) fn failed(&mut self) -> u32 {
        self.failures = self.failures.saturating_add(1);
        u32::from(self.failures)
    }
}

/// Seconds from milliseconds, saturating at `u32::MAX` (136 years).
fn secs(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// The sharded table.
#[derive(Debug)]
pub(crate) struct Table {
    shards: Vec<Mutex<HashTable<Slot>>>,
    /// Per shard: woken whenever a refresh of one of its domains ends.
    notify: Vec<Notify>,
    hasher: RandomState,
}

/// One locked shard.
#[derive(Debug)]
pub(crate) struct Shard<'a> {
    table: MutexGuard<'a, HashTable<Slot>>,
    hasher: &'a RandomState,
}

impl Table {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashTable::new())).collect(),
            notify: (0..SHARDS).map(|_| Notify::new()).collect(),
            hasher: RandomState::new(),
        }
    }

    /// The shard holding `domain`, locked.
    pub(crate) fn shard(&self, domain: &str) -> Shard<'_> {
        self.shard_at(self.index(domain))
    }

    /// The shard of `domain`'s wake-up for ended refreshes.
    pub(crate) fn notify(&self, domain: &str) -> &Notify {
        &self.notify[self.index(domain)]
    }

    fn index(&self, domain: &str) -> usize {
        // The shard comes from bits the table's own bucket index and tag bits do not use.
        (self.hasher.hash_one(domain) >> 32) as usize % SHARDS
    }

    fn shard_at(&self, i: usize) -> Shard<'_> {
        Shard {
            table: self.shards[i]
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            hasher: &self.hasher,
        }
    }

    /// Every shard in turn, locked one at a time.
    pub(crate) fn each_shard(&self) -> impl Iterator<Item = Shard<'_>> {
        (0..SHARDS).map(|i| self.shard_at(i))
    }

    /// A number that differs per domain and call (for jitter).
    pub(crate) fn hash_one<T: std::hash::Hash>(&self, x: T) -> u64 {
        self.hasher.hash_one(x)
    }

    /// Makes room for `n` more domains, spread over the shards (a little more than an even
    /// share each), so a large preload does not grow and copy every shard several times.
    pub(crate) fn reserve(&self, n: usize) {
        let per_shard = n.div_ceil(SHARDS);
        for mut shard in self.each_shard() {
            let hasher = shard.hasher;
            shard
                .table
                .reserve(per_shard + per_shard / 8, |s| hasher.hash_one(s.domain()));
        }
    }

    /// Slots in the table.
    pub(crate) fn len(&self) -> usize {
        self.each_shard().map(|s| s.table.len()).sum()
    }
}

impl Shard<'_> {
    pub(crate) fn get_mut(&mut self, domain: &str) -> Option<&mut Slot> {
        let hash = self.hasher.hash_one(domain);
        self.table.find_mut(hash, |s| s.domain() == domain)
    }

    /// The slot of `domain`, made (with nothing known) if there is none.
    pub(crate) fn get_or_insert(&mut self, domain: &str, now_ms: u64) -> &mut Slot {
        let hasher = self.hasher;
        let hash = hasher.hash_one(domain);
        self.table
            .entry(
                hash,
                |s| s.domain() == domain,
                |s| hasher.hash_one(s.domain()),
            )
            .or_insert_with(|| Slot::new(domain, now_ms))
            .into_mut()
    }

    /// Keeps the slots `keep` says yes to.
    pub(crate) fn retain(&mut self, keep: impl FnMut(&mut Slot) -> bool) {
        self.table.retain(keep);
    }

    /// Every slot.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.table.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    /// The memory figures in BENCHMARKS.md and docs/resolver.md rest on these sizes.
    #[test]
    fn slots_stay_small() {
        assert_eq!(size_of::<crate::cached::CachedPolicy>(), 32);
        assert_eq!(size_of::<super::Entry>(), 32);
        assert_eq!(size_of::<super::Slot>(), 48);
    }
}
