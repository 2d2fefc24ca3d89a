//! The refresh of one domain, its outcome applied to the slot, back-off and the sweep.

use super::Dane;
use super::{Inner, Outcome, Previous};
use crate::Reply;
use crate::cache_file::{CacheOp, PersistedPolicy};
use crate::cached::{CachedPolicy, Unusable};
use crate::discover::{self, TxtOutcome};
use crate::reply::{Decision, PolicyFailure, render, trimmed};
use crate::slots::{Entry, Other, Slot, millis};
use crate::stats::FetchError;
use mtasts_core::policy::Mode;
use mtasts_net::dns::Proof;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Duration;

/// Due domains collected per pass of the sweep.
const SWEEP_BATCH: usize = 256;

impl Inner {
    /// Starts a refresh of the slot's domain in its own task; lookups waiting for it are woken
    /// through the shard's `Notify` when it ends. A background refresh comes with its permit; a
    /// refresh a lookup waits for (`None`) takes one of the miss permits in its task.
    pub(super) fn start_refresh(
        self: &Arc<Self>,
        slot: &mut Slot,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        slot.inflight = true;
        let previous = Previous::of(&slot.entry);
        let inner = Arc::clone(self);
        let domain = slot.domain().to_owned();
        tokio::spawn(async move {
            // Clears `inflight` even if the refresh panics, so the domain is never stuck.
            let guard = Inflight {
                inner: &inner,
                domain: &domain,
            };
            let permit = match permit {
                Some(p) => Ok(p),
                None => Arc::clone(&inner.misses).acquire_owned().await,
            };
            let outcome = match permit {
                Ok(_permit) => inner.refresh(&domain, previous).await,
                Err(_) => Outcome::Keep { failed: None },
            };
            inner.stats.refreshed();
            inner.apply(&domain, outcome);
            drop(guard);
        });
    }

    async fn refresh(&self, domain: &str, previous: Previous) -> Outcome {
        let now_ms = self.clock.now_ms();
        if let (Previous::Nothing, Some(redis)) = (&previous, &self.redis) {
            // A cold miss: another resolver may have fetched it already.
            if let Some(p) = redis.get(domain).await
                && let Some(c) = self.policy_from_store(domain, &p, now_ms, super::unix_now())
            {
                return Outcome::Policy(c);
            }
        }
        let cached = match previous {
            Previous::Policy {
                id,
                expires_ms,
                dane,
            } if expires_ms > now_ms => Some((id, expires_ms, dane)),
            _ => None,
        };
        let id = match discover::txt_id(&self.net, domain).await {
            TxtOutcome::Id(id) => id,
            TxtOutcome::NoRecord if cached.is_some() => return Outcome::Keep { failed: None },
            TxtOutcome::NoRecord => return Outcome::NoPolicy,
            TxtOutcome::DnsError(why) => {
                self.stats.fetch_error(FetchError::Dns);
                return match cached {
                    Some(_) => Outcome::Keep {
                        failed: Some(format!("the _mta-sts TXT lookup failed: {why}")),
                    },
                    None => Outcome::DnsError(why),
                };
            }
        };
        let unchanged = cached.as_ref().filter(|c| *c.0 == *id);
        let far_from_expiry = |expires_ms: u64| {
            expires_ms.saturating_sub(now_ms) > millis(self.settings.refresh_interval)
        };
        if unchanged.is_some_and(|c| far_from_expiry(c.1)) {
            return Outcome::Confirmed(self.dane(domain).await);
        }
        let (fetched, dane) = tokio::join!(discover::fetch(&self.net, domain), self.dane(domain));
        let dane = dane.or(cached.as_ref().map(|c| c.2)).unwrap_or_default();
        let fetched = fetched.and_then(|(url, body)| {
            CachedPolicy::new(domain, &id, &body, 0, dane).map_err(|e| {
                let why = match e {
                    Unusable::Invalid => "the body is not a valid policy",
                    Unusable::TooLong => "the domain or id is too long to cache",
                };
                (PolicyFailure::Invalid, format!("{url}: {why}"))
            })
        });
        match fetched {
            Ok(mut policy) => {
                let max_age = Duration::from_secs(u64::from(policy.max_age()));
                policy.set_expires_ms(self.clock.now_ms().saturating_add(millis(max_age)));
                Outcome::Policy(policy)
            }
            Err((kind, why)) => {
                self.stats.fetch_error(match kind {
                    PolicyFailure::FetchError => FetchError::Fetch,
                    PolicyFailure::WebPkiInvalid => FetchError::WebPki,
                    PolicyFailure::Invalid => FetchError::Invalid,
                });
                if unchanged.is_some() {
                    // D18: same id, refetch failed: keep applying it until the next attempt.
                    let keep = self.settings.refresh_interval.max(self.backoff(1));
                    Outcome::Extended(self.clock.now_ms().saturating_add(millis(keep)))
                } else if cached.is_some() {
                    // D17
                    Outcome::Keep {
                        failed: Some(format!(
                            "the policy for the new id {id} could not be had: {why}"
                        )),
                    }
                } else {
                    Outcome::Failure(kind, why)
                }
            }
        }
    }

    /// What DANE asks of the answer for `domain` (see [`super::dane`]); `None` when DANE is
    /// off or the MX lookup failed (the previous verdict then stands).
    async fn dane(&self, domain: &str) -> Option<Dane> {
        if !self.settings.dane {
            return None;
        }
        let states = mtasts_net::dane::domain_states(&self.net.dns, domain).await;
        let unvalidated = matches!(&states, Ok((Proof::Bogus | Proof::Indeterminate, _)));
        // An MX RRset that cannot be validated may be the domain's fault or this system's: the
        // root tells them apart.
        let root_broken = unvalidated
            && self
                .root
                .check(&self.net.dns, self.clock.now_ms(), false)
                .await;
        super::dane::verdict(&states, root_broken)
    }

    fn apply(&self, domain: &str, outcome: Outcome) {
        let now_ms = self.clock.now_ms();
        let s = &self.settings;
        let mut shard = self.table.shard(domain);
        let Some(slot) = shard.get_mut(domain) else {
            return;
        };
        let mut store = None;
        match outcome {
            Outcome::Policy(p) => {
                tracing::info!(domain, id = p.id(), mode = %p.mode(), max_age = p.max_age(), "policy fetched");
                self.log_fit(domain, &p);
                slot.failures = 0;
                slot.next_check_ms = p
                    .expires_ms()
                    .min(now_ms + self.jittered(domain, s.refresh_interval));
                store = Some(CacheOp::Put(self.stored(&p, now_ms)));
                if p.dane == Dane::Undecided {
                    slot.next_check_ms = slot.next_check_ms.min(now_ms + millis(s.dns_retry));
                }
                slot.entry = Entry::Policy(p);
            }
            Outcome::Confirmed(dane) => {
                slot.failures = 0;
                slot.next_check_ms = now_ms + self.jittered(domain, s.refresh_interval);
                if let (Some(dane), Entry::Policy(p)) = (dane, &mut slot.entry)
                    && p.dane != dane
                {
                    tracing::info!(domain, ?dane, "DANE verdict changed");
                    p.dane = dane;
                }
                if slot
                    .entry
                    .policy()
                    .is_some_and(|p| p.dane == Dane::Undecided)
                {
                    // Deferred lookups: look again soon rather than in an hour.
                    slot.next_check_ms = slot.next_check_ms.min(now_ms + millis(s.dns_retry));
                }
            }
            Outcome::Extended(until_ms) => {
                tracing::warn!(
                    domain,
                    "policy past max_age kept: TXT id unchanged, refetch failed (D18)"
                );
                let n = slot.failed();
                slot.next_check_ms = now_ms + millis(self.backoff(n));
                if let Entry::Policy(p) = &mut slot.entry {
                    p.set_expires_ms(until_ms);
                    store = Some(CacheOp::Put(self.stored(p, now_ms)));
                    self.stats.extended();
                }
            }
            Outcome::Keep { failed } => {
                if let Some(why) = &failed {
                    tracing::warn!(
                        domain,
                        %why,
                        "refresh failed; the cached policy still applies (D17)"
                    );
                }
                let failed = failed.is_some();
                let expires_ms = slot.entry.policy().map_or(now_ms, |p| p.expires_ms());
                let wait = if failed {
                    let n = slot.failed();
                    self.backoff(n)
                } else {
                    s.refresh_interval
                };
                slot.next_check_ms = (now_ms + millis(wait)).min(expires_ms.max(now_ms));
            }
            Outcome::NoPolicy => {
                if slot.entry.policy().is_some() {
                    tracing::info!(domain, "policy gone: no MTA-STS record any more");
                    store = Some(CacheOp::Delete(domain.to_owned()));
                }
                slot.failures = 0;
                slot.entry = Entry::other(domain, Other::NoPolicy, "");
                slot.next_check_ms = now_ms + millis(s.negative_ttl);
            }
            Outcome::Failure(kind, why) => {
                tracing::warn!(domain, result = kind.as_str(), %why, "no policy could be had");
                let n = slot.failed();
                slot.entry = Entry::other(domain, Other::Failure(kind), &why);
                slot.next_check_ms = now_ms + millis(self.backoff(n));
            }
            Outcome::DnsError(why) => {
                tracing::warn!(domain, %why, "MTA-STS TXT lookup failed, nothing cached (D16)");
                let n = slot.failed().min(16);
                slot.entry = Entry::other(domain, Other::DnsError, &why);
                let wait = (s.dns_retry * 2u32.pow(n - 1)).min(s.max_backoff);
                slot.next_check_ms = now_ms + millis(wait);
            }
        }
        drop(shard);
        if let (Some(op), Some(tx)) = (store, &self.store) {
            let _ = tx.send(op);
        }
    }

    /// Says, once per fetched policy, when a zone's answer for it leaves optional attributes
    /// out to fit the reply size, or cannot carry it at all (the lookups are then deferred).
    fn log_fit(&self, domain: &str, p: &CachedPolicy) {
        let decision = match p.mode() {
            Mode::Enforce => Decision::Enforce(p),
            Mode::Testing => Decision::Testing(p),
            Mode::None => return,
        };
        let zones = self.zones.read().map(|z| Arc::clone(&z));
        let zones = zones.unwrap_or_else(|e| Arc::clone(&e.into_inner()));
        for (zone, z) in zones.iter() {
            if let Reply::Temp(why) = render(domain, decision, &z.reply) {
                tracing::error!(domain, zone, %why, "policy too large for this table: lookups are deferred");
            } else if let Some(t) = trimmed(domain, decision, &z.reply) {
                tracing::warn!(
                    domain,
                    zone,
                    patterns = p.patterns().count(),
                    dropped_mx_host_pattern = t.mx_host_patterns,
                    dropped_policy_string = t.policy_strings,
                    max_reply = z.reply.max_reply,
                    "policy answer shortened to fit the table's reply size"
                );
            }
        }
    }

    /// The policy as persisted, `now_ms` being now.
    fn stored(&self, p: &CachedPolicy, now_ms: u64) -> PersistedPolicy {
        let left =
            i64::try_from(p.expires_ms().saturating_sub(now_ms) / 1000).unwrap_or(i64::MAX / 2);
        PersistedPolicy {
            domain: p.domain().to_owned(),
            id: p.id().to_owned(),
            body: p.body().into_owned(),
            expires_unix: super::unix_now().saturating_add(left),
        }
    }

    /// The wait after `failures` failed refreshes: the floor, doubled each time, capped.
    fn backoff(&self, failures: u32) -> Duration {
        let s = &self.settings;
        let n = failures.clamp(1, 16);
        (s.retry_floor * 2u32.pow(n - 1)).min(s.max_backoff.max(s.retry_floor))
    }

    /// `d` less up to a tenth, different per domain, in milliseconds, so refreshes spread out.
    fn jittered(&self, domain: &str, d: Duration) -> u64 {
        let d = millis(d);
        let spread = d / 10;
        if spread == 0 {
            return d;
        }
        let offset = self.table.hash_one((domain, self.clock.now_ms())) % spread;
        d - offset
    }

    /// Drops idle entries, then refreshes every due policy, at most the background limit at
    /// once (waiting for permits), in batches so the list of due domains stays small.
    pub(super) async fn sweep(self: &Arc<Self>) {
        self.evict();
        // A refresh that ends at once can leave its domain due again (a policy expiring under a
        // failing refresh); the pass limit keeps one sweep from going round forever.
        for _ in 0..=self.table.len() / SWEEP_BATCH + 1 {
            let due = self.due(SWEEP_BATCH);
            let last = due.len() < SWEEP_BATCH;
            for domain in due {
                let Ok(permit) = Arc::clone(&self.background).acquire_owned().await else {
                    return;
                };
                let now_ms = self.clock.now_ms();
                let mut shard = self.table.shard(&domain);
                if let Some(slot) = shard.get_mut(&domain)
                    && self.is_due(slot, now_ms)
                {
                    self.start_refresh(slot, Some(permit));
                }
            }
            if last {
                return;
            }
        }
    }

    /// Drops idle entries and expired policies.
    fn evict(&self) {
        let now_ms = self.clock.now_ms();
        let idle = self.settings.idle_evict;
        for mut shard in self.table.each_shard() {
            shard.retain(|slot| {
                slot.inflight
                    || match &slot.entry {
                        Entry::Other {
                            state: Other::Unknown,
                            ..
                        } => false,
                        Entry::Policy(p) => p.expires_ms() > now_ms,
                        Entry::Other { .. } => slot.idle_for(now_ms) < idle,
                    }
            });
        }
    }

    /// Up to `max` domains whose policy is due for a refresh.
    fn due(&self, max: usize) -> Vec<String> {
        let now_ms = self.clock.now_ms();
        let mut out = Vec::new();
        for mut shard in self.table.each_shard() {
            for slot in shard.iter_mut() {
                if out.len() == max {
                    return out;
                }
                if self.is_due(slot, now_ms) {
                    out.push(slot.domain().to_owned());
                }
            }
        }
        out
    }

    /// A policy nobody is refreshing, whose check time has come, and that someone asked for
    /// lately.
    fn is_due(&self, slot: &Slot, now_ms: u64) -> bool {
        !slot.inflight
            && slot.entry.policy().is_some()
            && slot.next_check_ms <= now_ms
            && slot.idle_for(now_ms) < self.settings.idle_evict
    }
}

/// Clears a slot's in-flight marker when the refresh task ends, however it ends, and wakes the
/// lookups waiting for it.
struct Inflight<'a> {
    inner: &'a Inner,
    domain: &'a str,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.inner.table.shard(self.domain).get_mut(self.domain) {
            slot.inflight = false;
        }
        self.inner.table.notify(self.domain).notify_waiters();
    }
}
