//! The ACME benchmark of BENCHMARKS.md ("ACME: new domains to a valid certificate"; run by
//! bench/acme/run.sh).
//!
//! ```text
//! acme_bench --domains N [--store URL] [--concurrency C] [--max-orders M] [--timeout S]
//! ```
//!
//! Adds N domains `d0.acme.bench` .. to an empty store (SQLite in a temporary directory by
//! default, or the empty database `URL`), each `mta-sts.dI.acme.bench` resolving to 127.0.0.1
//! on a test DNS server; starts a real Pebble (Debian's) validating through that DNS; starts the
//! `serve` daemon in this process with `[acme]` pointing at Pebble (`concurrency` C, an order
//! budget of M per 3 h) and HTTP-01 on its port-80 listener; and times until every domain has
//! its certificate installed (read from the daemon's own `mtasts_acme_issued_total`, so the
//! watching costs no store traffic). Meanwhile it counts every SQL statement the daemon runs
//! (sqlx logs each one to `tracing`, target `sqlx::query`; a counting subscriber reads them:
//! statements by kind, rows returned and affected) and every request Pebble logs. Afterwards
//! it checks, outside the count, that every domain has a certificate in the store and that a
//! sample is served with a chain to Pebble's root. Prints one JSON line.
//!
//! Nothing leaves 127.0.0.0/8; the run is bounded by `--timeout` (default 900 s).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mtasts_core::policy::Mode;
use mtasts_net::https::{FetchSettings, fetch_policy_at};
use mtasts_net::service;
use mtasts_net::tls::{CertVerdict, TlsProbeConfig};
use mtasts_server::config::ServeConfig;
use mtasts_server::daemon::{Daemon, install_metrics};
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_store::{Store, StoreKey, StoreOptions};
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::pebble::{Pebble, PebbleOptions};
use time::OffsetDateTime;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    let value = args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1));
    match (value, default) {
        (Some(v), _) => v.parse().unwrap_or_else(|_| panic!("bad {name}: {v}")),
        (None, Some(d)) => d,
        (None, None) => panic!("{name} is required"),
    }
}

/// Counts sqlx's statement events while `COUNTING` is set.
struct Statements;

static COUNTING: AtomicBool = AtomicBool::new(false);
static STATEMENTS: AtomicU64 = AtomicU64::new(0);
static ROWS_RETURNED: AtomicU64 = AtomicU64::new(0);
static ROWS_AFFECTED: AtomicU64 = AtomicU64::new(0);
static KINDS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

struct Fields {
    kind: String,
    returned: u64,
    affected: u64,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            // "select … from acme_domains …": the verb and the first table.
            let words: Vec<&str> = value.split_whitespace().collect();
            let verb = words.first().copied().unwrap_or("?").to_ascii_uppercase();
            let table = words
                .iter()
                .position(|w| matches!(w.to_ascii_lowercase().as_str(), "from" | "into" | "update"))
                .and_then(|i| words.get(i + 1))
                .or_else(|| (verb == "UPDATE").then(|| words.get(1)).flatten())
                .map(|t| t.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
                .unwrap_or("");
            self.kind = format!("{verb} {table}").trim().to_owned();
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "rows_returned" => self.returned = value,
            "rows_affected" => self.affected = value,
            _ => {}
        }
    }
}

impl tracing::Subscriber for Statements {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if !COUNTING.load(Ordering::Relaxed) || event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut f = Fields {
            kind: String::new(),
            returned: 0,
            affected: 0,
        };
        event.record(&mut f);
        STATEMENTS.fetch_add(1, Ordering::Relaxed);
        ROWS_RETURNED.fetch_add(f.returned, Ordering::Relaxed);
        ROWS_AFFECTED.fetch_add(f.affected, Ordering::Relaxed);
        if let Ok(mut k) = KINDS.lock() {
            *k.entry(f.kind).or_default() += 1;
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `mtasts_acme_issued_total` as the daemon's recorder renders it.
fn issued(handle: &metrics_exporter_prometheus::PrometheusHandle) -> u64 {
    handle
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("mtasts_acme_issued_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--domains", Some(1000));
    let concurrency: usize = arg(&args, "--concurrency", Some(4));
    let max_orders: u32 = arg(&args, "--max-orders", Some(100_000));
    let timeout = Duration::from_secs(arg(&args, "--timeout", Some(900)));
    let tmp = tempfile::tempdir().unwrap();
    let store_url: String = arg(
        &args,
        "--store",
        Some(format!("sqlite:{}", tmp.path().join("store.db").display())),
    );
    tracing::subscriber::set_global_default(Statements).unwrap();
    let handle = install_metrics().expect("the first recorder");

    // The test internet: every mta-sts.dI.acme.bench is 127.0.0.1.
    let names: Vec<String> = (0..n).map(|i| format!("d{i}.acme.bench")).collect();
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    dns.set_zones(
        names
            .iter()
            .map(|d| (format!("{d}."), "mta-sts 60 IN A 127.0.0.1\n")),
    )
    .unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOptions::new(dns.addr(), http_port, https_port))
        .await
        .unwrap()
        .expect("Pebble is installed (tests/e2e/pebble/install.sh)");

    // The domains, added before the clock starts.
    let options = StoreOptions {
        key: Some(StoreKey::from_bytes([9; 32])),
        ..StoreOptions::default()
    };
    let store = Store::open(&store_url, &options).await.unwrap();
    let domains = Domains::new(store.clone(), Default::default()).unwrap();
    let added = Instant::now();
    for d in &names {
        let req = AddDomain {
            domain: d.clone(),
            mx: MxSource::Patterns(vec![format!("mx.{d}")]),
            mode: Mode::Testing,
            max_age: None,
            force: None,
            delegation: Default::default(),
        };
        domains
            .add(&req, "bench", OffsetDateTime::now_utc())
            .await
            .unwrap();
    }
    let add_secs = added.elapsed().as_secs_f64();

    let mut config = ServeConfig::default();
    config.store.url = store_url.clone();
    config.store.key = Some("09".repeat(32));
    config.https = SocketAddr::from(([127, 0, 0, 1], https_port));
    config.http = Some(SocketAddr::from(([127, 0, 0, 1], http_port)));
    config.admin = "127.0.0.1:0".parse().unwrap();
    config.check.nameservers = vec![dns.addr().to_string()];
    config.check.drift_interval = Duration::ZERO;
    config.acme.directory = Some(pebble.directory_url());
    config.acme.root = Some(pebble.api_root_pem_path().to_owned());
    config.acme.challenges = vec!["http-01".into()];
    config.acme.poll = Duration::from_millis(200);
    config.acme.concurrency = concurrency;
    config.acme.rate_max_orders = max_orders;
    config.hosting.public_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    config.metrics = Some(handle.clone());
    let requests_before = requests(&pebble);

    COUNTING.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let daemon = Daemon::start(config).await.unwrap();
    let (control, shutdown) = service::channel();
    let task = tokio::spawn(daemon.run(shutdown));
    let mut done = 0;
    while started.elapsed() < timeout {
        done = issued(&handle);
        if done >= n as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    COUNTING.store(false, Ordering::Relaxed);
    let statements = STATEMENTS.load(Ordering::Relaxed);
    let returned = ROWS_RETURNED.load(Ordering::Relaxed);
    let affected = ROWS_AFFECTED.load(Ordering::Relaxed);
    let ca_requests = requests(&pebble) - requests_before;

    // Checked outside the count: every domain has an ACME certificate, a sample is served.
    let mut with_cert = 0;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_attempts = 0;
    for d in &names {
        if store.certificate(d).await.unwrap().is_some() {
            with_cert += 1;
        }
        if let Some(state) = store.acme_state(d).await.unwrap() {
            failed_attempts += u64::from(state.failures);
            if let Some(e) = state.last_error {
                // The reason without the parts that differ per domain (names, tokens).
                let short: String = e
                    .split_whitespace()
                    .filter(|w| !w.contains(".acme.bench") && w.len() < 40)
                    .collect::<Vec<_>>()
                    .join(" ");
                *errors.entry(short.chars().take(160).collect()).or_default() += 1;
            }
        }
    }
    let mut tls = TlsProbeConfig::with_roots(rustls::RootCertStore::empty());
    tls.add_pem_roots(pebble.issuing_roots_pem().await.unwrap().as_bytes())
        .unwrap();
    let settings = FetchSettings {
        port: https_port,
        timeout: Duration::from_secs(5),
        ..FetchSettings::default()
    };
    tokio::time::sleep(Duration::from_secs(2)).await; // the last reload
    let mut served = 0;
    let sample: Vec<&String> = names.iter().step_by((n / 20).max(1)).collect();
    for d in &sample {
        let f = fetch_policy_at(d, &[IpAddr::V4(Ipv4Addr::LOCALHOST)], &tls, &settings).await;
        if f.status == Some(200) && f.tls.is_some_and(|t| t.verdict == CertVerdict::Valid) {
            served += 1;
        }
    }
    control.stop();
    let _ = task.await;
    let kinds = KINDS.lock().map(|k| k.clone()).unwrap_or_default();
    let backend = store_url.split(':').next().unwrap_or("?").to_owned();
    let per = |x: u64| x as f64 / n.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "domains": n,
            "store": backend,
            "concurrency": concurrency,
            "add_seconds": (add_secs * 10.0).round() / 10.0,
            "issued": done,
            "seconds": (secs * 10.0).round() / 10.0,
            "certificates_per_second": ((done as f64 / secs) * 10.0).round() / 10.0,
            "statements": statements,
            "statements_per_domain": (per(statements) * 10.0).round() / 10.0,
            "rows_returned_per_domain": (per(returned) * 10.0).round() / 10.0,
            "rows_affected_per_domain": (per(affected) * 10.0).round() / 10.0,
            "statements_by_kind": kinds,
            "ca_requests_per_domain": (per(ca_requests as u64) * 10.0).round() / 10.0,
            "with_certificate": with_cert,
            "failures_since_last_success": failed_attempts,
            "last_errors": errors,
            "sample_served_valid": format!("{served}/{}", sample.len()),
            "peak_rss_mib": (peak_rss_kib() as f64 / 1024.0 * 10.0).round() / 10.0,
        })
    );
    store.close().await;
}

/// Requests Pebble has logged (one line per request).
fn requests(pebble: &Pebble) -> usize {
    pebble
        .log()
        .lines()
        .filter(|l| l.contains("-> calling handler()"))
        .count()
}
