//! The policy cache: answers from memory, refreshes in the background.
//!
//! - A cached answer never waits on the network: a fresh one is returned as it is, a stale one is
//!   returned too while a refresh runs in the background (stale-while-revalidate).
//! - Domains without a policy are cached as well (negative caching), as are fetch failures and DNS
//!   failures, each with its own retry time.
//! - However many lookups ask for an uncached domain at once, one refresh runs; the others wait
//!   for it (up to [`Settings::miss_wait`]).
//! - A refresh first asks the `_mta-sts` TXT record: an unchanged id keeps the cached policy
//!   without a download; the policy is downloaded again only for a new id or when the cached copy
//!   nears its `max_age`.
//! - The RFC fallbacks: a failed fetch for a new id keeps the cached policy (D17); an expiring
//!   policy whose id is unchanged and whose refetch fails is extended (D18); a vanished TXT record
//!   keeps the policy until it expires (D19); DNS trouble with nothing cached answers per
//!   [`crate::reply::OnDnsError`] (D16). Failed refreshes back off from
//!   [`Settings::retry_floor`] (5 minutes, RFC 8461 §3.3) up to [`Settings::max_backoff`].
//! - A sweep every [`Settings::sweep_interval`] refreshes policies that are due (with jitter, at
//!   most [`Settings::refresh_concurrency`] at a time) and drops entries nobody asked for lately.

use crate::discover::{self, FetchedPolicy, Net, TxtOutcome};
use crate::key::policy_domain;
use crate::redis_tier::RedisTier;
use crate::reply::{Decision, PolicyFailure, ReplySettings, render};
use crate::stats::{FetchError, Source, Stats};
use crate::store::{StoreOp, StoredPolicy};
use crate::{Handler, Reply};
use mtasts_core::policy::Mode;
use mtasts_net::dane::DaneState;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Duration, Instant};

/// Number of independently locked parts of the cache.
const SHARDS: usize = 32;

/// Timing and size settings of the cache.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a lookup for an uncached domain waits for the network before answering as if
    /// DNS had failed (D16). The refresh goes on in the background and fills the cache.
    pub miss_wait: Duration,
    /// How often a cached policy's TXT id is checked again.
    pub refresh_interval: Duration,
    /// How long "no policy" is cached before it is checked again (in the background).
    pub negative_ttl: Duration,
    /// Least time before a failed policy refresh is tried again (RFC 8461 §3.3: 5 minutes).
    pub retry_floor: Duration,
    /// Least time before a failed DNS lookup (nothing cached) is tried again.
    pub dns_retry: Duration,
    /// Longest time between retries after repeated failures.
    pub max_backoff: Duration,
    /// How often the sweep looks for due refreshes and idle entries.
    pub sweep_interval: Duration,
    /// Most background refreshes at once.
    pub refresh_concurrency: usize,
    /// Most refreshes for waiting lookups at once.
    pub miss_concurrency: usize,
    /// Entries nobody asked for in this long are dropped (policies: no longer refreshed, so they
    /// expire).
    pub idle_evict: Duration,
    /// Check DANE (RFC 7672) for domains with an MTA-STS policy, and answer `dane-only` when
    /// every MX host has a usable DNSSEC-validated TLSA RRset (D22).
    pub dane: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            miss_wait: Duration::from_secs(15),
            refresh_interval: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(3600),
            retry_floor: Duration::from_secs(300),
            dns_retry: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(30),
            refresh_concurrency: 16,
            miss_concurrency: 256,
            idle_evict: Duration::from_secs(7 * 86_400),
            dane: true,
        }
    }
}

/// A per-domain override from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// Ignore MTA-STS for this domain (`NOTFOUND`), e.g. a partner with a broken policy.
    None,
    /// Treat an `enforce` policy as `testing` (deliver, report).
    Testing,
}

/// One socketmap name's settings.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    /// How replies are rendered.
    pub reply: ReplySettings,
    /// Per-domain overrides (A-label domains).
    pub overrides: HashMap<String, Override>,
}

/// A policy in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    /// The TXT id it was fetched under.
    pub id: String,
    fetched: FetchedPolicy,
    /// When it expires (fetch time + `max_age`, or later when extended by D18).
    pub expires: Instant,
    /// Every MX host had a usable DNSSEC-validated TLSA RRset at the last check (D22).
    pub dane: bool,
}

impl CachedPolicy {
    /// A persisted policy, if it is unexpired and still parses; `now` and `wall` are the same
    /// moment on the runtime clock and the wall clock.
    fn from_stored(p: StoredPolicy, now: Instant, wall: i64) -> Option<Self> {
        let left = u64::try_from(p.expires_unix - wall)
            .ok()
            .filter(|l| *l > 0)?;
        Some(Self {
            fetched: FetchedPolicy::from_string(p.body)?,
            id: p.id,
            expires: now + Duration::from_secs(left),
            dane: false,
        })
    }

    /// The policy as applied.
    pub fn policy(&self) -> &mtasts_core::policy::Policy {
        &self.fetched.policy
    }

    /// The body as fetched.
    pub fn body(&self) -> &str {
        &self.fetched.body
    }
}

/// What the cache knows about a domain.
#[derive(Debug, Clone)]
pub enum Known {
    /// A policy.
    Policy(Arc<CachedPolicy>),
    /// No policy (no usable TXT record, or `mode: none`).
    NoPolicy,
    /// The TXT record names a policy that could not be had.
    Failure(PolicyFailure, Arc<str>),
    /// The TXT lookup failed.
    DnsError(Arc<str>),
}

#[derive(Debug)]
struct Slot {
    known: Option<Known>,
    next_check: Instant,
    failures: u32,
    inflight: Option<watch::Receiver<bool>>,
    last_used: Instant,
}

impl Slot {
    fn new(now: Instant) -> Self {
        Self {
            known: None,
            next_check: now,
            failures: 0,
            inflight: None,
            last_used: now,
        }
    }

    /// What may be answered now: anything but an expired policy.
    fn usable(&self, now: Instant) -> Option<&Known> {
        match &self.known {
            Some(Known::Policy(p)) if now >= p.expires => None,
            k => k.as_ref(),
        }
    }
}

/// One lookup's answer, with the why (for `resolver query` and logs).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The policy domain, when the key names one.
    pub domain: Option<String>,
    /// What Postfix gets.
    pub reply: Reply,
    /// Where it came from.
    pub source: Source,
    /// What the cache knew, when it was asked.
    pub known: Option<Known>,
    /// A sentence saying why ([`Engine::query`] always fills it).
    pub why: String,
}

/// The engine: the cache, its refresher and the zones. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    net: Net,
    settings: Settings,
    zones: std::sync::RwLock<Arc<HashMap<String, Zone>>>,
    shards: Vec<Mutex<HashMap<String, Slot>>>,
    hasher: RandomState,
    background: Semaphore,
    misses: Semaphore,
    stats: Stats,
    store: Option<mpsc::UnboundedSender<StoreOp>>,
    redis: Option<RedisTier>,
}

impl Engine {
    /// An engine with the given zones (socketmap names). Call [`Engine::spawn_sweeper`] inside a
    /// runtime to refresh proactively.
    pub fn new(net: Net, settings: Settings, zones: HashMap<String, Zone>) -> Self {
        Self::with_store(net, settings, zones, None)
    }

    /// [`Engine::new`], writing every policy change to `store` (see [`crate::store`]).
    pub fn with_store(
        net: Net,
        settings: Settings,
        zones: HashMap<String, Zone>,
        store: Option<mpsc::UnboundedSender<StoreOp>>,
    ) -> Self {
        Self::with_tiers(net, settings, zones, store, None)
    }

    /// [`Engine::with_store`], also asking the shared Redis tier before the network on a cold
    /// miss (writes to Redis go through `store`, see [`crate::store::spawn_writer`]).
    pub fn with_tiers(
        net: Net,
        settings: Settings,
        zones: HashMap<String, Zone>,
        store: Option<mpsc::UnboundedSender<StoreOp>>,
        redis: Option<RedisTier>,
    ) -> Self {
        let background = Semaphore::new(settings.refresh_concurrency.max(1));
        let misses = Semaphore::new(settings.miss_concurrency.max(1));
        Self {
            inner: Arc::new(Inner {
                net,
                settings,
                zones: std::sync::RwLock::new(Arc::new(zones)),
                shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
                hasher: RandomState::new(),
                background,
                misses,
                stats: Stats::default(),
                store,
                redis,
            }),
        }
    }

    /// Puts persisted policies into the cache (at start-up). Expired ones are skipped; each is
    /// due for a TXT check at once, in the background.
    pub fn preload(&self, policies: Vec<StoredPolicy>) -> usize {
        let now = Instant::now();
        let wall = unix_now();
        let mut loaded = 0;
        for p in policies {
            let Ok(domain) = policy_domain(&p.domain) else {
                continue;
            };
            let Some(cached) = CachedPolicy::from_stored(p, now, wall) else {
                continue;
            };
            let mut shard = self.inner.shard(&domain);
            let slot = shard.entry(domain).or_insert_with(|| Slot::new(now));
            slot.known = Some(Known::Policy(Arc::new(cached)));
            slot.next_check = now;
            loaded += 1;
        }
        loaded
    }

    /// Starts the background sweep (proactive refresh, eviction). It stops when every clone of
    /// the engine is dropped.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.settings.sweep_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.sweep();
            }
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Domains in the memory cache.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Prometheus text exposition of the counters.
    pub fn metrics(&self) -> String {
        self.inner.stats.render(self.len())
    }

    /// The socketmap names served, sorted.
    pub fn zone_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.zones().keys().cloned().collect();
        names.sort();
        names
    }

    /// Replaces the zones (configuration reload); the cache is kept.
    pub fn set_zones(&self, zones: HashMap<String, Zone>) {
        *self
            .inner
            .zones
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(zones);
    }

    fn zones(&self) -> Arc<HashMap<String, Zone>> {
        Arc::clone(
            &self
                .inner
                .zones
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Answers `key` for the socketmap name `zone`, with the reason.
    pub async fn query(&self, zone: &str, key: &str) -> Answer {
        self.timed(zone, key, true).await
    }

    /// [`Engine::query`], with the `why` sentence built only when `explain` (the socketmap path
    /// answers without it: no formatting on the request path).
    async fn timed(&self, zone: &str, key: &str, explain: bool) -> Answer {
        let start = Instant::now();
        let answer = self.answer(zone, key, explain).await;
        self.inner
            .stats
            .answered(&answer.reply, answer.source, start.elapsed());
        answer
    }

    async fn answer(&self, zone_name: &str, key: &str, explain: bool) -> Answer {
        let why = |f: &dyn Fn() -> String| if explain { f() } else { String::new() };
        let zones = self.zones();
        let Some(zone) = zones.get(zone_name) else {
            return Answer {
                domain: None,
                reply: Reply::Perm(format!("no table named {zone_name:?} is configured")),
                source: Source::Skipped,
                known: None,
                why: why(&|| format!("the table name {zone_name:?} is not configured")),
            };
        };
        let domain = match policy_domain(key) {
            Ok(d) => d,
            Err(skip) => {
                return Answer {
                    domain: None,
                    reply: Reply::NotFound,
                    source: Source::Skipped,
                    known: None,
                    why: why(&|| format!("{key:?} is not a policy domain ({})", skip.as_str())),
                };
            }
        };
        let over = zone.overrides.get(&domain).copied();
        if over == Some(Override::None) {
            return Answer {
                reply: Reply::NotFound,
                source: Source::Override,
                known: None,
                why: why(&|| format!("MTA-STS is switched off for {domain} in the configuration")),
                domain: Some(domain),
            };
        }
        let (known, source) = self.inner.known(&domain).await;
        let reply = render(&domain, decide(known.as_ref(), over), &zone.reply);
        let why = why(&|| explain_known(known.as_ref(), over));
        Answer {
            domain: Some(domain),
            reply,
            source,
            known,
            why,
        }
    }
}

impl Handler for Engine {
    async fn lookup(&self, name: &str, key: &str) -> Reply {
        self.timed(name, key, false).await.reply
    }
}

/// The mode that applies to a cached policy, after an override.
fn mode(p: &CachedPolicy, over: Option<Override>) -> Mode {
    match (p.policy().mode, over) {
        (Mode::Enforce, Some(Override::Testing)) => Mode::Testing,
        (m, _) => m,
    }
}

/// What applies, from what the cache knows.
fn decide(known: Option<&Known>, over: Option<Override>) -> Decision<'_> {
    match known {
        None => Decision::DnsError("no answer within the lookup budget"),
        Some(Known::NoPolicy) => Decision::NoPolicy,
        Some(Known::DnsError(why)) => Decision::DnsError(why),
        Some(Known::Failure(kind, _)) => Decision::Failure(*kind),
        Some(Known::Policy(p)) if p.dane && p.policy().mode != Mode::None => Decision::DaneOnly,
        Some(Known::Policy(p)) => match mode(p, over) {
            Mode::Enforce => Decision::Enforce(p.policy(), p.body()),
            Mode::Testing => Decision::Testing(p.policy(), p.body()),
            Mode::None => Decision::NoPolicy,
        },
    }
}

/// Why [`decide`] decided as it did, in a sentence (for `resolver query` and logs).
fn explain_known(known: Option<&Known>, over: Option<Override>) -> String {
    match known {
        None => "nothing cached and the policy discovery did not finish in time (D16)".to_owned(),
        Some(Known::NoPolicy) => "no MTA-STS policy".to_owned(),
        Some(Known::DnsError(why)) => format!("nothing cached and the TXT lookup failed: {why}"),
        Some(Known::Failure(_, why)) => {
            format!("the TXT record names a policy that could not be had: {why}")
        }
        Some(Known::Policy(p)) if p.dane && p.policy().mode != Mode::None => format!(
            "policy id {} in mode {}, but every MX host has a usable DNSSEC-validated TLSA \
             RRset: DANE wins (D22)",
            p.id,
            p.policy().mode
        ),
        Some(Known::Policy(p)) => format!("policy id {} in mode {}", p.id, mode(p, over)),
    }
}

/// The result of one refresh.
#[derive(Debug)]
enum Outcome {
    /// A new policy (first fetch, new id, or refetch before expiry).
    Policy(Arc<CachedPolicy>),
    /// The TXT id is unchanged and the cached policy is far from expiry; the DANE check's
    /// result when it ran.
    Confirmed(Option<bool>),
    /// The cached policy, extended to this instant (D18).
    Extended(Instant),
    /// Keep what is cached; `failed` counts towards the back-off.
    Keep { failed: bool },
    /// No policy.
    NoPolicy,
    /// The policy could not be had, nothing cached.
    Failure(PolicyFailure, String),
    /// DNS failed, nothing cached.
    DnsError(String),
}

impl Inner {
    fn shard(&self, domain: &str) -> MutexGuard<'_, HashMap<String, Slot>> {
        let i = (self.hasher.hash_one(domain) as usize) % SHARDS;
        lock(&self.shards[i])
    }

    /// What the cache knows about `domain`, waiting for the network only when nothing usable is
    /// cached.
    async fn known(self: &Arc<Self>, domain: &str) -> (Option<Known>, Source) {
        let mut rx = {
            let now = Instant::now();
            let mut shard = self.shard(domain);
            let slot = shard
                .entry(domain.to_owned())
                .or_insert_with(|| Slot::new(now));
            slot.last_used = now;
            if let Some(known) = slot.usable(now).cloned() {
                let due = now >= slot.next_check;
                if due && slot.inflight.is_none() {
                    self.start_refresh(domain, slot, false);
                }
                return (Some(known), if due { Source::Stale } else { Source::Hit });
            }
            match &slot.inflight {
                Some(rx) => rx.clone(),
                None => self.start_refresh(domain, slot, true),
            }
        };
        let waited = tokio::time::timeout(self.settings.miss_wait, rx.wait_for(|done| *done)).await;
        let known = self
            .shard(domain)
            .get(domain)
            .and_then(|s| s.usable(Instant::now()).cloned());
        let source = if waited.is_ok() {
            Source::Miss
        } else {
            Source::MissTimeout
        };
        (known, source)
    }

    /// Starts a refresh of `domain` in its own task; the receiver turns `true` when it is done.
    fn start_refresh(
        self: &Arc<Self>,
        domain: &str,
        slot: &mut Slot,
        waited_for: bool,
    ) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        slot.inflight = Some(rx.clone());
        let previous = slot.known.clone();
        let inner = Arc::clone(self);
        let domain = domain.to_owned();
        tokio::spawn(async move {
            // Clears `inflight` even if the refresh panics, so the domain is never stuck.
            let guard = Inflight {
                inner: &inner,
                domain: &domain,
            };
            let limit = if waited_for {
                &inner.misses
            } else {
                &inner.background
            };
            let outcome = match limit.acquire().await {
                Ok(_permit) => inner.refresh(&domain, previous).await,
                Err(_) => Outcome::Keep { failed: false },
            };
            inner.stats.refreshed();
            inner.apply(&domain, outcome);
            drop(guard);
            let _ = tx.send(true);
        });
        rx
    }

    async fn refresh(&self, domain: &str, previous: Option<Known>) -> Outcome {
        let now = Instant::now();
        if let (None, Some(redis)) = (&previous, &self.redis) {
            // A cold miss: another resolver may have fetched it already.
            if let Some(p) = redis.get(domain).await
                && let Some(c) = CachedPolicy::from_stored(p, Instant::now(), unix_now())
            {
                return Outcome::Policy(Arc::new(c));
            }
        }
        let cached = match previous {
            Some(Known::Policy(p)) if p.expires > now => Some(p),
            _ => None,
        };
        let id = match discover::txt_id(&self.net, domain).await {
            TxtOutcome::Id(id) => id,
            TxtOutcome::NoRecord if cached.is_some() => return Outcome::Keep { failed: false },
            TxtOutcome::NoRecord => return Outcome::NoPolicy,
            TxtOutcome::DnsError(why) => {
                self.stats.fetch_error(FetchError::Dns);
                return match cached {
                    Some(_) => Outcome::Keep { failed: true },
                    None => Outcome::DnsError(why),
                };
            }
        };
        let unchanged = cached.as_ref().filter(|c| c.id == id);
        let far_from_expiry = |c: &&Arc<CachedPolicy>| {
            c.expires.saturating_duration_since(now) > self.settings.refresh_interval
        };
        if unchanged.is_some_and(|c| far_from_expiry(&c)) {
            return Outcome::Confirmed(self.dane(domain).await);
        }
        let (fetched, dane) = tokio::join!(discover::fetch(&self.net, domain), self.dane(domain));
        match fetched {
            Ok(fetched) => {
                let max_age = Duration::from_secs(u64::from(fetched.policy.max_age));
                let dane = dane
                    .or_else(|| cached.as_ref().map(|c| c.dane))
                    .unwrap_or(false);
                Outcome::Policy(Arc::new(CachedPolicy {
                    id,
                    fetched,
                    expires: Instant::now() + max_age,
                    dane,
                }))
            }
            Err((kind, why)) => {
                self.stats.fetch_error(match kind {
                    PolicyFailure::FetchError => FetchError::Fetch,
                    PolicyFailure::WebPkiInvalid => FetchError::WebPki,
                    PolicyFailure::Invalid => FetchError::Invalid,
                });
                if unchanged.is_some() {
                    // D18: same id, refetch failed: keep applying it until the next attempt.
                    let until =
                        Instant::now() + self.settings.refresh_interval.max(self.backoff(1));
                    Outcome::Extended(until)
                } else if cached.is_some() {
                    Outcome::Keep { failed: true } // D17
                } else {
                    Outcome::Failure(kind, why)
                }
            }
        }
    }

    /// Whether every MX host of `domain` has a usable DNSSEC-validated TLSA RRset; `None` when
    /// DANE is off or the lookups failed (the previous answer then stands).
    async fn dane(&self, domain: &str) -> Option<bool> {
        if !self.settings.dane {
            return None;
        }
        match mtasts_net::dane::domain_states(&self.net.dns, domain).await {
            Ok((_, hosts))
                if hosts
                    .iter()
                    .any(|(_, s)| matches!(s, DaneState::LookupFailed(_))) =>
            {
                None
            }
            Ok((_, hosts)) => Some(!hosts.is_empty() && hosts.iter().all(|(_, s)| s.is_usable())),
            Err(_) => None,
        }
    }

    fn apply(&self, domain: &str, outcome: Outcome) {
        let now = Instant::now();
        let s = &self.settings;
        let mut shard = self.shard(domain);
        let Some(slot) = shard.get_mut(domain) else {
            return;
        };
        let mut store = None;
        match outcome {
            Outcome::Policy(p) => {
                tracing::info!(domain, id = %p.id, mode = %p.policy().mode, max_age = p.policy().max_age, "policy fetched");
                slot.failures = 0;
                slot.next_check = p
                    .expires
                    .min(now + self.jittered(domain, s.refresh_interval));
                store = Some(StoreOp::Put(StoredPolicy::new(domain, &p, now)));
                slot.known = Some(Known::Policy(p));
            }
            Outcome::Confirmed(dane) => {
                slot.failures = 0;
                slot.next_check = now + self.jittered(domain, s.refresh_interval);
                if let (Some(dane), Some(Known::Policy(p))) = (dane, &slot.known)
                    && p.dane != dane
                {
                    tracing::info!(domain, dane, "DANE usability changed");
                    slot.known = Some(Known::Policy(Arc::new(CachedPolicy {
                        dane,
                        ..(**p).clone()
                    })));
                }
            }
            Outcome::Extended(until) => {
                tracing::warn!(
                    domain,
                    "policy past max_age kept: TXT id unchanged, refetch failed (D18)"
                );
                slot.failures += 1;
                slot.next_check = now + self.backoff(slot.failures);
                if let Some(Known::Policy(p)) = &slot.known {
                    let extended = Arc::new(CachedPolicy {
                        expires: until,
                        ..(**p).clone()
                    });
                    store = Some(StoreOp::Put(StoredPolicy::new(domain, &extended, now)));
                    slot.known = Some(Known::Policy(extended));
                    self.stats.extended();
                }
            }
            Outcome::Keep { failed } => {
                if failed {
                    tracing::warn!(
                        domain,
                        "refresh failed; the cached policy still applies (D17)"
                    );
                }
                let expires = match &slot.known {
                    Some(Known::Policy(p)) => p.expires,
                    _ => now,
                };
                if failed {
                    slot.failures += 1;
                    slot.next_check = (now + self.backoff(slot.failures)).min(expires.max(now));
                } else {
                    slot.next_check = (now + s.refresh_interval).min(expires.max(now));
                }
            }
            Outcome::NoPolicy => {
                if matches!(slot.known, Some(Known::Policy(_))) {
                    tracing::info!(domain, "policy gone: no MTA-STS record any more");
                    store = Some(StoreOp::Delete(domain.to_owned()));
                }
                slot.failures = 0;
                slot.known = Some(Known::NoPolicy);
                slot.next_check = now + s.negative_ttl;
            }
            Outcome::Failure(kind, why) => {
                tracing::warn!(domain, result = kind.as_str(), %why, "no policy could be had");
                slot.failures += 1;
                slot.known = Some(Known::Failure(kind, why.into()));
                slot.next_check = now + self.backoff(slot.failures);
            }
            Outcome::DnsError(why) => {
                tracing::warn!(domain, %why, "MTA-STS TXT lookup failed, nothing cached (D16)");
                slot.failures += 1;
                slot.known = Some(Known::DnsError(why.into()));
                let n = slot.failures.min(16);
                slot.next_check = now + (s.dns_retry * 2u32.pow(n - 1)).min(s.max_backoff);
            }
        }
        drop(shard);
        if let (Some(op), Some(tx)) = (store, &self.store) {
            let _ = tx.send(op);
        }
    }

    /// The wait after `failures` failed refreshes: the floor, doubled each time, capped.
    fn backoff(&self, failures: u32) -> Duration {
        let s = &self.settings;
        let n = failures.clamp(1, 16);
        (s.retry_floor * 2u32.pow(n - 1)).min(s.max_backoff.max(s.retry_floor))
    }

    /// `d` less up to a tenth, different per domain, so refreshes spread out.
    fn jittered(&self, domain: &str, d: Duration) -> Duration {
        let spread = d.as_millis() as u64 / 10;
        if spread == 0 {
            return d;
        }
        let offset = self.hasher.hash_one((domain, Instant::now())) % spread;
        d - Duration::from_millis(offset)
    }

    /// Refreshes due policies (at most the background limit are started now; the rest wait for
    /// the next sweep) and drops idle entries.
    fn sweep(self: &Arc<Self>) {
        let now = Instant::now();
        let idle = self.settings.idle_evict;
        let mut budget = self.background.available_permits();
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard.retain(|_, slot| {
                slot.inflight.is_some()
                    || match &slot.known {
                        None => false,
                        Some(Known::Policy(p)) => p.expires > now,
                        Some(_) => now.saturating_duration_since(slot.last_used) < idle,
                    }
            });
            for (domain, slot) in shard.iter_mut() {
                if budget == 0 {
                    break;
                }
                let due = slot.inflight.is_none()
                    && matches!(slot.known, Some(Known::Policy(_)))
                    && slot.next_check <= now
                    && now.saturating_duration_since(slot.last_used) < idle;
                if due {
                    self.start_refresh(domain, slot, false);
                    budget -= 1;
                }
            }
        }
    }
}

/// Clears a slot's in-flight marker when the refresh task ends, however it ends.
struct Inflight<'a> {
    inner: &'a Inner,
    domain: &'a str,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.inner.shard(self.domain).get_mut(self.domain) {
            slot.inflight = None;
        }
    }
}

/// Locks a shard; a poisoned lock (a panic elsewhere while holding it) still gives the map,
/// whose entries are each valid on their own.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Seconds since the Unix epoch, by the wall clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
