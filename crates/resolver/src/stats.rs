//! Counters for `/metrics` and tests.
//!
//! One metrics path for every service: the `metrics` facade, rendered by
//! metrics-exporter-prometheus from a recorder of this engine's own (not the process-global
//! one, so several engines in one process, as in tests, keep their figures apart). The counters
//! of the request path stay plain atomics, copied into the facade when `/metrics` is asked for;
//! the latency histogram is recorded through the facade's handle, registered once.

use metrics::{Histogram, Recorder as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
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

/// Latency histogram bucket bounds, in seconds.
const BUCKETS_S: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1, 1.0, 10.0, 60.0,
];

/// The name of the latency histogram.
const LATENCY: &str = "mtasts_resolver_lookup_seconds";

/// The counters.
pub struct Stats {
    by_reply: [AtomicU64; 5],
    by_source: [AtomicU64; 6],
    fetch_errors: [AtomicU64; 4],
    refreshes: AtomicU64,
    extended: AtomicU64,
    recorder: PrometheusRecorder,
    latency: Histogram,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("refreshes", &self.refreshes)
            .finish_non_exhaustive()
    }
}

impl Default for Stats {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS_S)
            .expect("the bucket list is not empty")
            .build_recorder();
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(name.into(), None, help.into());
        };
        describe(
            "mtasts_resolver_lookups_total",
            "Lookups answered, by reply status.",
        );
        describe(
            "mtasts_resolver_answers_total",
            "Lookups answered, by where the answer came from.",
        );
        describe(
            "mtasts_resolver_fetch_errors_total",
            "Failed policy refreshes, by TLS-RPT result type.",
        );
        describe(
            "mtasts_resolver_refreshes_total",
            "Network refreshes finished.",
        );
        describe(
            "mtasts_resolver_extended_total",
            "Expired policies kept because the TXT id was unchanged and the refetch failed (D18).",
        );
        recorder.describe_gauge(
            "mtasts_resolver_cache_entries".into(),
            None,
            "Domains in the memory cache.".into(),
        );
        recorder.describe_gauge(
            "mtasts_resolver_dnssec_root_valid".into(),
            None,
            "Whether the DNSSEC validator can validate the root zone (0: no DANE state can be \
             known; a fault of this system)."
                .into(),
        );
        recorder.describe_histogram(LATENCY.into(), None, "Time to answer a lookup.".into());
        let latency = recorder.register_histogram(
            &metrics::Key::from_static_name(LATENCY),
            &metrics::Metadata::new(module_path!(), metrics::Level::INFO, None),
        );
        Self {
            by_reply: Default::default(),
            by_source: Default::default(),
            fetch_errors: Default::default(),
            refreshes: AtomicU64::default(),
            extended: AtomicU64::default(),
            recorder,
            latency,
        }
    }
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
        self.latency.record(took.as_secs_f64());
    }

    /// Folds the latency samples recorded since the last call into the histogram, so they never
    /// pile up between scrapes (the engine's sweep calls it).
    pub(crate) fn upkeep(&self) {
        self.recorder.handle().run_upkeep();
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
        metrics::with_local_recorder(&self.recorder, || {
            for (label, c) in REPLY_LABELS.iter().zip(&self.by_reply) {
                metrics::counter!("mtasts_resolver_lookups_total", "reply" => *label)
                    .absolute(c.load(Relaxed));
            }
            for (s, c) in Source::ALL.iter().zip(&self.by_source) {
                metrics::counter!("mtasts_resolver_answers_total", "source" => s.as_str())
                    .absolute(c.load(Relaxed));
            }
            for (label, c) in FETCH_ERROR_LABELS.iter().zip(&self.fetch_errors) {
                metrics::counter!("mtasts_resolver_fetch_errors_total", "type" => *label)
                    .absolute(c.load(Relaxed));
            }
            metrics::counter!("mtasts_resolver_refreshes_total").absolute(self.refreshes());
            metrics::counter!("mtasts_resolver_extended_total").absolute(self.extensions());
            metrics::gauge!("mtasts_resolver_cache_entries").set(entries as f64);
            if let Some(valid) = root_valid {
                metrics::gauge!("mtasts_resolver_dnssec_root_valid")
                    .set(f64::from(u8::from(valid)));
            }
        });
        let handle = self.recorder.handle();
        handle.run_upkeep();
        handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_family_with_its_figures() {
        let s = Stats::default();
        s.answered(
            &crate::Reply::NotFound,
            Source::Hit,
            Duration::from_micros(80),
        );
        s.answered(
            &crate::Reply::Ok("x".into()),
            Source::Miss,
            Duration::from_millis(20),
        );
        s.fetch_error(FetchError::WebPki);
        s.refreshed();
        s.upkeep();
        let text = s.render(7, Some(false));
        for line in [
            "# TYPE mtasts_resolver_lookups_total counter",
            "mtasts_resolver_lookups_total{reply=\"notfound\"} 1",
            "mtasts_resolver_answers_total{source=\"miss\"} 1",
            "mtasts_resolver_fetch_errors_total{type=\"sts-webpki-invalid\"} 1",
            "mtasts_resolver_refreshes_total 1",
            "mtasts_resolver_cache_entries 7",
            "mtasts_resolver_dnssec_root_valid 0",
            "mtasts_resolver_lookup_seconds_bucket{le=\"0.0001\"} 1",
            "mtasts_resolver_lookup_seconds_bucket{le=\"+Inf\"} 2",
            "mtasts_resolver_lookup_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        // Counters follow the atomics, never double-count across scrapes.
        let again = s.render(7, None);
        assert!(again.contains("mtasts_resolver_lookups_total{reply=\"notfound\"} 1\n"));
    }
}
