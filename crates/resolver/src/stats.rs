//! Counters for `/metrics` and tests: plain atomics, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Answered from the key alone (parent probe, IP literal, bad name).
    Skipped,
    /// A per-domain override from the configuration.
    Override,
    /// The cache, fresh.
    Hit,
    /// The cache, due for a refresh (started in the background; the answer did not wait).
    Stale,
    /// Nothing usable was cached: the answer waited for the network.
    Miss,
    /// Nothing usable was cached and the network did not answer within the miss budget.
    MissTimeout,
}

impl Source {
    /// The label used in metrics and `resolver query`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Override => "override",
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Miss => "miss",
            Self::MissTimeout => "miss-timeout",
        }
    }

    const ALL: [Self; 6] = [
        Self::Skipped,
        Self::Override,
        Self::Hit,
        Self::Stale,
        Self::Miss,
        Self::MissTimeout,
    ];
}

/// Latency histogram bucket bounds, in microseconds.
const BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 100_000, 1_000_000, 10_000_000, 60_000_000,
];

/// The counters.
#[derive(Debug, Default)]
pub struct Stats {
    by_reply: [AtomicU64; 5],
    by_source: [AtomicU64; 6],
    fetch_errors: [AtomicU64; 4],
    refreshes: AtomicU64,
    extended: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len()],
    latency_sum_us: AtomicU64,
}

/// Fetch error kinds counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchError {
    /// `sts-policy-fetch-error`.
    Fetch,
    /// `sts-webpki-invalid`.
    WebPki,
    /// `sts-policy-invalid`.
    Invalid,
    /// The `_mta-sts` TXT lookup failed (SERVFAIL, time-out).
    Dns,
}

const FETCH_ERROR_LABELS: [&str; 4] = [
    "sts-policy-fetch-error",
    "sts-webpki-invalid",
    "sts-policy-invalid",
    "dns",
];
const REPLY_LABELS: [&str; 5] = ["ok", "notfound", "temp", "timeout", "perm"];

impl Stats {
    pub(crate) fn answered(&self, reply: &crate::Reply, source: Source, took: Duration) {
        let r = match reply {
            crate::Reply::Ok(_) => 0,
            crate::Reply::NotFound => 1,
            crate::Reply::Temp(_) => 2,
            crate::Reply::Timeout(_) => 3,
            crate::Reply::Perm(_) => 4,
        };
        self.by_reply[r].fetch_add(1, Relaxed);
        self.by_source[source as usize].fetch_add(1, Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Relaxed);
        if let Some(i) = BUCKETS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn fetch_error(&self, kind: FetchError) {
        self.fetch_errors[kind as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn refreshed(&self) {
        self.refreshes.fetch_add(1, Relaxed);
    }

    pub(crate) fn extended(&self) {
        self.extended.fetch_add(1, Relaxed);
    }

    /// Answers given so far from `source`.
    pub fn from_source(&self, source: Source) -> u64 {
        self.by_source[source as usize].load(Relaxed)
    }

    /// Fetch errors of `kind` so far.
    pub fn fetch_errors(&self, kind: FetchError) -> u64 {
        self.fetch_errors[kind as usize].load(Relaxed)
    }

    /// Refreshes (network rounds: TXT, and the fetch when needed) finished so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Relaxed)
    }

    /// Cached policies kept past `max_age` because the TXT id was unchanged and the refetch
    /// failed (D18).
    pub fn extensions(&self) -> u64 {
        self.extended.load(Relaxed)
    }

    /// The Prometheus text exposition, with `entries` as the cache size gauge and `root_valid`
    /// whether the DNSSEC validator can validate the root (`None`: not checked).
    pub fn render(&self, entries: usize, root_valid: Option<bool>) -> String {
        let mut o = String::new();
        if let Some(valid) = root_valid {
            o.push_str("# HELP mtasts_resolver_dnssec_root_valid Whether the DNSSEC validator can validate the root zone (0: no DANE state can be known; a fault of this system).\n");
            o.push_str("# TYPE mtasts_resolver_dnssec_root_valid gauge\n");
            let _ = writeln!(o, "mtasts_resolver_dnssec_root_valid {}", u8::from(valid));
        }
        o.push_str("# HELP mtasts_resolver_lookups_total Lookups answered, by reply status.\n");
        o.push_str("# TYPE mtasts_resolver_lookups_total counter\n");
        for (label, c) in REPLY_LABELS.iter().zip(&self.by_reply) {
            let _ = writeln!(
                o,
                "mtasts_resolver_lookups_total{{reply=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        o.push_str("# HELP mtasts_resolver_answers_total Lookups answered, by where the answer came from.\n");
        o.push_str("# TYPE mtasts_resolver_answers_total counter\n");
        for (s, c) in Source::ALL.iter().zip(&self.by_source) {
            let _ = writeln!(
                o,
                "mtasts_resolver_answers_total{{source=\"{}\"}} {}",
                s.as_str(),
                c.load(Relaxed)
            );
        }
        o.push_str("# HELP mtasts_resolver_fetch_errors_total Failed policy refreshes, by TLS-RPT result type.\n");
        o.push_str("# TYPE mtasts_resolver_fetch_errors_total counter\n");
        for (label, c) in FETCH_ERROR_LABELS.iter().zip(&self.fetch_errors) {
            let _ = writeln!(
                o,
                "mtasts_resolver_fetch_errors_total{{type=\"{label}\"}} {}",
                c.load(Relaxed)
            );
        }
        o.push_str("# HELP mtasts_resolver_refreshes_total Network refreshes finished.\n");
        o.push_str("# TYPE mtasts_resolver_refreshes_total counter\n");
        let _ = writeln!(o, "mtasts_resolver_refreshes_total {}", self.refreshes());
        o.push_str("# HELP mtasts_resolver_extended_total Expired policies kept because the TXT id was unchanged and the refetch failed (D18).\n");
        o.push_str("# TYPE mtasts_resolver_extended_total counter\n");
        let _ = writeln!(o, "mtasts_resolver_extended_total {}", self.extensions());
        o.push_str("# HELP mtasts_resolver_cache_entries Domains in the memory cache.\n");
        o.push_str("# TYPE mtasts_resolver_cache_entries gauge\n");
        let _ = writeln!(o, "mtasts_resolver_cache_entries {entries}");
        o.push_str("# HELP mtasts_resolver_lookup_seconds Time to answer a lookup.\n");
        o.push_str("# TYPE mtasts_resolver_lookup_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, c) in BUCKETS_US.iter().zip(&self.buckets) {
            cumulative += c.load(Relaxed);
            let _ = writeln!(
                o,
                "mtasts_resolver_lookup_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let count: u64 = self.by_reply.iter().map(|c| c.load(Relaxed)).sum();
        let _ = writeln!(
            o,
            "mtasts_resolver_lookup_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            o,
            "mtasts_resolver_lookup_seconds_sum {}",
            self.latency_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(o, "mtasts_resolver_lookup_seconds_count {count}");
        o
    }
}
