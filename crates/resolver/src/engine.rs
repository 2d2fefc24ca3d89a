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
//! - A sweep every [`Settings::sweep_interval`] refreshes every policy that is due (with jitter,
//!   at most [`Settings::refresh_concurrency`] at a time) and drops entries nobody asked for
//!   lately. A stale hit starts its refresh at once when a background slot is free, and otherwise
//!   leaves it to the sweep, so the number of refresh tasks stays bounded whatever the load.
//! - Policies loaded from the cache file at start-up are due at times spread over
//!   [`Settings::refresh_interval`], not all at once.

use crate::cache_file::{CacheOp, PersistedPolicy};
use crate::cached::CachedPolicy;
use crate::discover::Net;
use crate::key::policy_domain;
use crate::redis_tier::RedisTier;
use crate::reply::{Decision, PolicyFailure, ReplySettings, render};
use crate::slots::{Clock, Entry, Other, Table, millis};
use crate::stats::{Source, Stats};
use crate::{Handler, Reply};
use mtasts_core::policy::Mode;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Duration, Instant};

pub use crate::slots::Known;
pub use dane::{Dane, RootHealth};

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
    /// Check DANE (RFC 7672) for domains with an MTA-STS policy and let it win (D22): see
    /// [`Dane`] for what each outcome answers.
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

/// A policy as the engine returns it to [`Engine::query`] (owned, for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The TXT id it was fetched under.
    pub id: String,
    /// The mode, as published.
    pub mode: Mode,
    /// `max_age`, in seconds.
    pub max_age: u32,
    /// The MX patterns.
    pub mx: Vec<String>,
    /// Time left until it expires.
    pub expires_in: Duration,
    /// What DANE asked of the answer at the last check (D22).
    pub dane: Dane,
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
    /// The cached policy, when one is known ([`Engine::query`] fills it).
    pub policy: Option<PolicyInfo>,
    /// A sentence saying why ([`Engine::query`] always fills it).
    pub why: String,
}

mod dane;
mod refresh;

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
    table: Table,
    clock: Clock,
    background: Arc<Semaphore>,
    misses: Arc<Semaphore>,
    stats: Stats,
    root: RootHealth,
    store: Option<mpsc::UnboundedSender<CacheOp>>,
    redis: Option<RedisTier>,
}

impl Engine {
    /// An engine with the given zones (socketmap names). Call [`Engine::spawn_sweeper`] inside a
    /// runtime to refresh proactively.
    pub fn new(net: Net, settings: Settings, zones: HashMap<String, Zone>) -> Self {
        Self::with_store(net, settings, zones, None)
    }

    /// [`Engine::new`], writing every policy change to `store` (see [`crate::cache_file`]).
    pub fn with_store(
        net: Net,
        settings: Settings,
        zones: HashMap<String, Zone>,
        store: Option<mpsc::UnboundedSender<CacheOp>>,
    ) -> Self {
        Self::with_tiers(net, settings, zones, store, None)
    }

    /// [`Engine::with_store`], also asking the shared Redis tier before the network on a cold
    /// miss (writes to Redis go through `store`, see [`crate::cache_file::spawn_writer`]).
    pub fn with_tiers(
        net: Net,
        settings: Settings,
        zones: HashMap<String, Zone>,
        store: Option<mpsc::UnboundedSender<CacheOp>>,
        redis: Option<RedisTier>,
    ) -> Self {
        let background = Arc::new(Semaphore::new(settings.refresh_concurrency.max(1)));
        let misses = Arc::new(Semaphore::new(settings.miss_concurrency.max(1)));
        Self {
            inner: Arc::new(Inner {
                net,
                settings,
                zones: std::sync::RwLock::new(Arc::new(zones)),
                table: Table::new(),
                clock: Clock::new(),
                background,
                misses,
                stats: Stats::default(),
                root: RootHealth::default(),
                store,
                redis,
            }),
        }
    }

    /// Puts persisted policies into the cache (at start-up). Expired ones, and ones that no
    /// longer parse, are skipped; each is due for a TXT check, in the background, at a time
    /// spread over the next [`Settings::refresh_interval`] (before it expires).
    pub fn preload(&self, policies: impl IntoIterator<Item = PersistedPolicy>) -> usize {
        let wall = unix_now();
        let mut loaded = 0;
        for p in policies {
            let now_ms = self.inner.clock.now_ms();
            let Ok(domain) = policy_domain(&p.domain) else {
                continue;
            };
            let Some(cached) = self.inner.policy_from_store(&domain, &p, now_ms, wall) else {
                continue;
            };
            let mut shard = self.inner.table.shard(&domain);
            let slot = shard.get_or_insert(&domain, now_ms);
            let spread = millis(self.inner.settings.refresh_interval)
                .min(cached.expires_ms().saturating_sub(now_ms))
                .max(1);
            slot.next_check_ms = now_ms + self.inner.table.hash_one(&domain) % spread;
            slot.entry = Entry::Policy(cached);
            loaded += 1;
        }
        loaded
    }

    /// Makes room for `n` more domains (before a large [`Engine::preload`]).
    pub fn reserve(&self, n: usize) {
        self.inner.table.reserve(n);
    }

    /// Starts the background sweep (proactive refresh, eviction). It stops when every clone of
    /// the engine is dropped.
    pub fn spawn_sweeper(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.settings.sweep_interval;
        // The latency samples of the request path are folded into the histogram every second,
        // so at most a second's worth is ever held (a sweep can take longer than that).
        let upkeep = {
            let weak = weak.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    inner.stats.upkeep();
                }
            }
        };
        tokio::spawn(async move {
            let sweeps = async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    inner.sweep().await;
                }
            };
            // Both end together: when the engine is gone, or the handle is aborted.
            tokio::join!(upkeep, sweeps);
        })
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Domains in the memory cache.
    pub fn len(&self) -> usize {
        self.inner.table.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The Prometheus text exposition of the counters.
    pub fn metrics(&self) -> String {
        self.inner.stats.render(self.len(), self.inner.root.valid())
    }

    /// Whether the DNSSEC validator can validate the root (checked while DANE is on; `None`
    /// before the first check or with DANE off). A broken root is a fault of this system: no
    /// domain's DANE state can be known.
    pub fn dnssec_root(&self) -> &RootHealth {
        &self.inner.root
    }

    /// The daemon's health for `/health`: `Err` with the reason when DNSSEC validation of the
    /// root is broken while DANE is on (re-checked when the last check is over a minute old).
    pub async fn health(&self) -> Result<(), String> {
        if !self.inner.settings.dane {
            return Ok(());
        }
        let broken = self
            .inner
            .root
            .check(&self.inner.net.dns, self.inner.clock.now_ms(), false)
            .await;
        if broken {
            Err(format!(
                "DNSSEC validation is broken: {}; no DANE state can be known",
                self.inner.root.why()
            ))
        } else {
            Ok(())
        }
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

    /// [`Engine::query`], with the `why` sentence and the policy built only when `explain` (the
    /// socketmap path answers without them: no formatting on the request path).
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
                policy: None,
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
                    policy: None,
                    why: why(&|| format!("{key:?} is not a policy domain ({})", skip.as_str())),
                };
            }
        };
        let over = zone.overrides.get(&domain).copied();
        if over == Some(Override::None) {
            return Answer {
                reply: Reply::NotFound,
                source: Source::Override,
                policy: None,
                why: why(&|| format!("MTA-STS is switched off for {domain} in the configuration")),
                domain: Some(domain),
            };
        }
        let clock = self.inner.clock;
        let ((reply, why, policy), source) = self
            .inner
            .with_known(&domain, |known| {
                let reply = render(&domain, decide(known, over), &zone.reply);
                if !explain {
                    return (reply, String::new(), None);
                }
                let policy = match known {
                    Some(Known::Policy(p)) => Some(PolicyInfo {
                        id: p.id().to_owned(),
                        mode: p.mode(),
                        max_age: p.max_age(),
                        mx: p.patterns().map(str::to_owned).collect(),
                        expires_in: clock
                            .at(p.expires_ms())
                            .saturating_duration_since(Instant::now()),
                        dane: p.dane,
                    }),
                    _ => None,
                };
                (reply, explain_known(known, over), policy)
            })
            .await;
        Answer {
            domain: Some(domain),
            reply,
            source,
            policy,
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
    match (p.mode(), over) {
        (Mode::Enforce, Some(Override::Testing)) => Mode::Testing,
        (m, _) => m,
    }
}

/// What applies, from what the cache knows.
fn decide<'a>(known: Option<Known<'a>>, over: Option<Override>) -> Decision<'a> {
    match known {
        None => Decision::DnsError("no answer within the lookup budget"),
        Some(Known::NoPolicy) => Decision::NoPolicy,
        Some(Known::DnsError(why)) => Decision::DnsError(why),
        Some(Known::Failure(kind, _)) => Decision::Failure(kind),
        Some(Known::Policy(p)) if p.dane == Dane::Enforce && p.mode() != Mode::None => {
            Decision::DaneOnly
        }
        Some(Known::Policy(p)) if p.dane == Dane::Undecided && p.mode() != Mode::None => {
            Decision::DaneUndecided
        }
        Some(Known::Policy(p)) => match mode(p, over) {
            Mode::Enforce => Decision::Enforce(p),
            Mode::Testing => Decision::Testing(p),
            Mode::None => Decision::NoPolicy,
        },
    }
}

/// Why [`decide`] decided as it did, in a sentence (for `resolver query` and logs).
fn explain_known(known: Option<Known<'_>>, over: Option<Override>) -> String {
    match known {
        None => "nothing cached and the policy discovery did not finish in time (D16)".to_owned(),
        Some(Known::NoPolicy) => "no MTA-STS policy".to_owned(),
        Some(Known::DnsError(why)) => format!("nothing cached and the TXT lookup failed: {why}"),
        Some(Known::Failure(_, why)) => {
            format!("the TXT record names a policy that could not be had: {why}")
        }
        Some(Known::Policy(p)) if p.dane == Dane::Enforce && p.mode() != Mode::None => format!(
            "policy id {} in mode {}, but the MX RRset is DNSSEC-secure and an MX host has TLSA \
             records or a TLSA lookup that failed validation: DANE is enforced per host, and \
             MTA-STS never overrides it (D22, RFC 8461 §2)",
            p.id(),
            p.mode()
        ),
        Some(Known::Policy(p)) if p.dane == Dane::Undecided && p.mode() != Mode::None => format!(
            "policy id {} in mode {}, but the MX RRset could not be DNSSEC-validated (bogus or \
             indeterminate): whether DANE applies cannot be known, so the lookup is deferred",
            p.id(),
            p.mode()
        ),
        Some(Known::Policy(p)) => format!("policy id {} in mode {}", p.id(), mode(p, over)),
    }
}

impl Inner {
    /// Calls `f` with what the cache knows about `domain` (under the shard's lock, so `f` must
    /// not block), waiting for the network only when nothing usable is cached.
    async fn with_known<R>(
        self: &Arc<Self>,
        domain: &str,
        f: impl FnOnce(Option<Known<'_>>) -> R,
    ) -> (R, Source) {
        {
            let now_ms = self.clock.now_ms();
            let mut shard = self.table.shard(domain);
            let slot = shard.get_or_insert(domain, now_ms);
            slot.touch(now_ms);
            let due = now_ms >= slot.next_check_ms;
            if slot.usable(now_ms).is_some() {
                if due
                    && !slot.inflight
                    && let Ok(permit) = Arc::clone(&self.background).try_acquire_owned()
                {
                    self.start_refresh(slot, Some(permit));
                }
                let source = if due { Source::Stale } else { Source::Hit };
                return (f(slot.usable(now_ms)), source);
            }
            if !slot.inflight {
                self.start_refresh(slot, None);
            }
        }
        let waited = tokio::time::timeout(self.settings.miss_wait, self.refreshed(domain)).await;
        let source = if waited.is_ok() {
            Source::Miss
        } else {
            Source::MissTimeout
        };
        let now_ms = self.clock.now_ms();
        let mut shard = self.table.shard(domain);
        let known = shard.get_mut(domain).and_then(|s| s.usable(now_ms));
        (f(known), source)
    }

    /// Returns when no refresh of `domain` is under way (or its slot is gone).
    async fn refreshed(&self, domain: &str) {
        let notify = self.table.notify(domain);
        loop {
            // Registered before the check, so a refresh ending in between still wakes us.
            let notified = notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let busy = self
                .table
                .shard(domain)
                .get_mut(domain)
                .is_some_and(|s| s.inflight);
            if !busy {
                return;
            }
            notified.await;
        }
    }

    /// A persisted policy, if it is unexpired and still parses; `now_ms` and `wall` are the same
    /// moment on the engine clock and the wall clock.
    fn policy_from_store(
        &self,
        domain: &str,
        p: &PersistedPolicy,
        now_ms: u64,
        wall: i64,
    ) -> Option<CachedPolicy> {
        let left = u64::try_from(p.expires_unix - wall)
            .ok()
            .filter(|l| *l > 0)?;
        let expires_ms = now_ms.saturating_add(left.saturating_mul(1000));
        CachedPolicy::new(domain, &p.id, &p.body, expires_ms, Dane::No).ok()
    }
}

/// Seconds since the Unix epoch, by the wall clock.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a refresh starts from.
#[derive(Debug)]
enum Previous {
    /// Nothing known (a cold miss).
    Nothing,
    /// A policy (expired or not).
    Policy {
        id: Box<str>,
        expires_ms: u64,
        dane: Dane,
    },
    /// Something other than a policy.
    Other,
}

impl Previous {
    fn of(entry: &Entry) -> Self {
        match entry {
            Entry::Policy(p) => Self::Policy {
                id: p.id().into(),
                expires_ms: p.expires_ms(),
                dane: p.dane,
            },
            Entry::Other {
                state: Other::Unknown,
                ..
            } => Self::Nothing,
            Entry::Other { .. } => Self::Other,
        }
    }
}

/// The result of one refresh.
#[derive(Debug)]
enum Outcome {
    /// A new policy (first fetch, new id, or refetch before expiry).
    Policy(CachedPolicy),
    /// The TXT id is unchanged and the cached policy is far from expiry; the DANE check's
    /// result when it ran.
    Confirmed(Option<Dane>),
    /// The cached policy, extended to this time (ms, D18).
    Extended(u64),
    /// Keep what is cached; a failure (what failed, for the log) counts towards the back-off.
    Keep { failed: Option<String> },
    /// No policy.
    NoPolicy,
    /// The policy could not be had, nothing cached.
    Failure(PolicyFailure, String),
    /// DNS failed, nothing cached.
    DnsError(String),
}
