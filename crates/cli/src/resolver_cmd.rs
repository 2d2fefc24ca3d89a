//! `mtasts resolver`: the MTA-STS policy daemon for Postfix, and `mtasts resolver query`.

use crate::output::Format;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::https::FetchSettings;
use mtasts_net::tls::TlsProbeConfig;
use mtasts_resolver::config::{Config, DEFAULT_LISTEN, DEFAULT_ZONE};
use mtasts_resolver::discover::Net;
use mtasts_resolver::engine::Answer;
use mtasts_resolver::proto::{Limits, ListenAddr, socketmap, tcp_table};
use mtasts_resolver::redis_tier::RedisTier;
use mtasts_resolver::store::{SqliteStore, spawn_writer};
use mtasts_resolver::{Engine, Reply};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Where the persisted cache lives unless `--cache` says otherwise.
const DEFAULT_CACHE: &str = "/var/lib/mtasts/resolver.sqlite";

/// Options of `mtasts resolver`; each is also an environment variable, and a configuration
/// file key (flag > environment > file > default).
#[derive(Debug, Args)]
pub(crate) struct ResolverArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Show what Postfix would get for a domain, and why (asks the network now; a configured
    /// cache file is read first, so the answer matches the daemon's).
    Query {
        /// The Postfix lookup key: a domain, `[host]:port`, ...
        key: String,
        /// The socketmap name (zone) to answer for.
        #[arg(long, default_value = DEFAULT_ZONE)]
        zone: String,
    },
}

#[derive(Debug, Args)]
struct Opts {
    /// Configuration file (TOML); see docs/resolver.md.
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Socketmap listener, `IP:PORT` or `unix:PATH` (repeatable) [default: 127.0.0.1:8461].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_LISTEN",
        value_delimiter = ','
    )]
    listen: Vec<String>,
    /// tcp_table listener, `IP:PORT` or `IP:PORT=ZONE` (repeatable).
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_TCP_TABLE",
        value_delimiter = ','
    )]
    tcp_table: Vec<String>,
    /// DNS server, `IP` or `IP:PORT` (repeatable) [default: the system's].
    #[arg(
        long = "nameserver",
        global = true,
        env = "MTASTS_RESOLVER_NAMESERVER",
        value_delimiter = ',',
        value_name = "IP[:PORT]"
    )]
    nameservers: Vec<String>,
    /// Extra trusted roots (PEM) for policy hosts, beside the Mozilla roots.
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_CA_FILE",
        value_name = "PEM"
    )]
    ca_file: Option<PathBuf>,
    /// The Postfix version answers are rendered for, X.Y[.Z] [default: 3.7].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_POSTFIX_VERSION",
        value_name = "X.Y[.Z]"
    )]
    postfix_version: Option<String>,
    /// The persisted cache: a SQLite file, or `memory` [default: /var/lib/mtasts/resolver.sqlite].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_CACHE",
        value_name = "PATH|memory"
    )]
    cache: Option<String>,
    /// Serve Prometheus `/metrics` on IP:PORT.
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_METRICS",
        value_name = "IP:PORT"
    )]
    metrics: Option<String>,
    /// With DNS failing and nothing cached: `deliver` (NOTFOUND) or `defer` (TEMP).
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_ON_DNS_ERROR",
        value_name = "deliver|defer"
    )]
    on_dns_error: Option<String>,
    /// Seconds for one policy fetch [default: 60].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_FETCH_TIMEOUT",
        value_name = "SECS"
    )]
    fetch_timeout: Option<u64>,
    /// Seconds a lookup for an uncached domain waits for the network [default: 15].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_MISS_WAIT",
        value_name = "SECS"
    )]
    miss_wait: Option<u64>,
    /// Do not check DANE: never answer `dane-only` (D22).
    #[arg(long, global = true, env = "MTASTS_RESOLVER_NO_DANE")]
    no_dane: bool,
    /// DNSSEC trust anchor (DNSKEY lines) instead of the IANA root keys (test set-ups).
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_TRUST_ANCHOR",
        value_name = "FILE"
    )]
    trust_anchor: Option<PathBuf>,
    /// HTTPS port of policy hosts (test set-ups) [default: 443].
    #[arg(long, global = true, env = "MTASTS_RESOLVER_HTTPS_PORT")]
    https_port: Option<u16>,
    /// Threads answering requests: 1 runs the daemon on one thread (tokio's single-threaded
    /// scheduler), N > 1 a pool of N [default: the number of CPUs the process may run on].
    #[arg(long, global = true, env = "MTASTS_RESOLVER_THREADS", value_name = "N")]
    threads: Option<usize>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "MTASTS_RESOLVER_LOG", default_value = "text", value_parser = ["text", "json"])]
    log: String,
}

impl Opts {
    /// The file's configuration with flags and environment laid over it.
    fn config(&self) -> Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if !self.listen.is_empty() {
            c.listen.clone_from(&self.listen);
        }
        if !self.tcp_table.is_empty() {
            c.tcp_table.clone_from(&self.tcp_table);
        }
        if !self.nameservers.is_empty() {
            c.nameservers.clone_from(&self.nameservers);
        }
        let over = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                slot.clone_from(v);
            }
        };
        over(&mut c.postfix_version, &self.postfix_version);
        over(&mut c.cache, &self.cache);
        over(&mut c.metrics, &self.metrics);
        over(&mut c.on_dns_error, &self.on_dns_error);
        if self.ca_file.is_some() {
            c.ca_file.clone_from(&self.ca_file);
        }
        c.fetch_timeout = self.fetch_timeout.or(c.fetch_timeout);
        c.miss_wait = self.miss_wait.or(c.miss_wait);
        c.https_port = self.https_port.or(c.https_port);
        c.threads = self.threads.or(c.threads);
        if self.no_dane {
            c.dane = Some(false);
        }
        if self.trust_anchor.is_some() {
            c.trust_anchor.clone_from(&self.trust_anchor);
        }
        if c.listen.is_empty() {
            c.listen.push(DEFAULT_LISTEN.to_owned());
        }
        Ok(c)
    }
}

pub(crate) fn run(args: ResolverArgs, format: Format) -> Result<u8> {
    let config = args.opts.config()?;
    let runtime = runtime(config.threads)?;
    match args.action {
        Some(Action::Query { key, zone }) => runtime.block_on(query(&config, &key, &zone, format)),
        None => {
            init_logs(&args.opts.log);
            runtime.block_on(serve(config, args.opts))
        }
    }
}

/// The async runtime for `threads` threads. One thread gets tokio's single-threaded scheduler (no
/// work stealing, no cross-thread wake-ups: the least CPU per request); more get the
/// multi-threaded one. The default is one worker per CPU the process may run on (which respects
/// `taskset` and cgroup limits): more workers than CPUs only make the kernel time-slice them, and
/// a hit that waits for the next scheduler tick (4 ms) shows in the p99 (BENCHMARKS.md,
/// "Resolver": two workers on one CPU gave p99 4.5 ms at 100 connections, one worker 1.1 ms).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let threads = match threads {
        Some(0) => bail!("threads must be at least 1"),
        Some(n) => n,
        None => crate::runtime::usable_cpus(),
    };
    crate::runtime::with_threads(threads)
}

fn init_logs(format: &str) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // hickory's DNSSEC validator logs every oddity it meets, each with the whole DNS message
    // (about 80 lines per policy domain on the benchmark's test internet, most of the CPU of a
    // cold miss); what matters of it reaches our own logs as DANE states and lookup errors.
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("hickory", LevelFilter::OFF);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    // A second subscriber (tests calling run twice) is not an error worth failing for.
    let _ = if format == "json" {
        registry.with(layer.json()).try_init()
    } else {
        registry.with(layer).try_init()
    };
}

/// The network side, from the configuration.
fn net(c: &Config) -> Result<Net> {
    let nameservers = crate::check_cmd::nameservers(&c.nameservers, "nameserver")?;
    let trust_anchor = match &c.trust_anchor {
        Some(path) => TrustAnchor::Keys(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read trust_anchor {}", path.display()))?,
        ),
        None => TrustAnchor::IanaRoot,
    };
    let dns = Resolver::new(&ResolverSettings {
        nameservers,
        timeout: Some(Duration::from_secs(5)),
        trust_anchor,
    })?;
    let mut tls = TlsProbeConfig::new();
    if let Some(path) = &c.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read ca_file {}", path.display()))?;
        if tls
            .add_pem_roots(&pem)
            .with_context(|| format!("ca_file {}", path.display()))?
            == 0
        {
            bail!("ca_file {}: no certificate in it", path.display());
        }
    }
    let fetch = FetchSettings {
        port: c.https_port.unwrap_or(443),
        timeout: c.fetch_timeout(),
        ..FetchSettings::default()
    };
    Ok(Net { dns, tls, fetch })
}

/// Where the cache is kept beyond memory.
enum Cache {
    Memory,
    File(PathBuf),
    Redis(String),
}

fn cache(c: &Config) -> Cache {
    match c.cache.as_deref() {
        Some("memory") => Cache::Memory,
        Some(url) if url.starts_with("redis://") || url.starts_with("redis+unix://") => {
            Cache::Redis(url.to_owned())
        }
        Some(path) => Cache::File(PathBuf::from(path)),
        None => Cache::File(PathBuf::from(DEFAULT_CACHE)),
    }
}

async fn open_store(path: &std::path::Path) -> Result<SqliteStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the cache directory {} (choose another with --cache PATH, or --cache memory)",
                dir.display()
            )
        })?;
    }
    Ok(SqliteStore::open(path).await?)
}

async fn serve(config: Config, opts: Opts) -> Result<u8> {
    let zones = config.zones()?;
    let mut store_task = None;
    let mut sender = None;
    let mut preload = None;
    let mut redis = None;
    match cache(&config) {
        Cache::Memory => {}
        Cache::File(path) => {
            let store = open_store(&path).await?;
            let pruned = store.prune().await?;
            tracing::info!(path = %path.display(), pruned, "cache file opened");
            let (tx, task) = store.clone().spawn_writer();
            sender = Some(tx);
            store_task = Some(task);
            preload = Some(store);
        }
        Cache::Redis(url) => {
            let tier = RedisTier::connect(&url).await?;
            tracing::info!(redis = ?tier, "shared Redis tier connected");
            let (tx, task) = spawn_writer(None, Some(tier.clone()));
            sender = Some(tx);
            store_task = Some(task);
            redis = Some(tier);
        }
    }
    let engine = Engine::with_tiers(net(&config)?, config.settings(), zones, sender, redis);
    let mut loaded = 0;
    if let Some(store) = preload {
        engine.reserve(store.count().await?);
        store.load_each(|p| loaded += engine.preload([p])).await?;
    }
    let sweeper = engine.spawn_sweeper();
    let (stop_tx, stop_rx) = watch::channel(false);
    let handler = Arc::new(engine.clone());
    let mut servers = tokio::task::JoinSet::new();
    for spec in &config.listen {
        let addr: ListenAddr = spec.parse().with_context(|| format!("listen {spec}"))?;
        let listener = addr
            .bind()
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "socketmap listening");
        servers.spawn(socketmap::serve(
            listener,
            Arc::clone(&handler),
            Limits::socketmap(),
            stopped(stop_rx.clone()),
        ));
    }
    for spec in &config.tcp_table {
        let (at, zone) = spec.split_once('=').unwrap_or((spec, DEFAULT_ZONE));
        let addr: ListenAddr = at.parse().with_context(|| format!("tcp_table {spec}"))?;
        let listener = addr
            .bind()
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, zone, "tcp_table listening");
        servers.spawn({
            let (handler, zone, stop) = (Arc::clone(&handler), zone.to_owned(), stopped(stop_rx.clone()));
            async move { tcp_table::serve(listener, handler, &zone, Limits::tcp_table(), stop).await }
        });
    }
    if let Some(spec) = &config.metrics {
        let listener = tokio::net::TcpListener::bind(spec)
            .await
            .with_context(|| format!("cannot serve metrics on {spec}"))?;
        tracing::info!(addr = %spec, "metrics listening");
        tokio::spawn(mtasts_resolver::metrics::serve(
            listener,
            engine.clone(),
            stop_rx.clone(),
        ));
    }
    tracing::info!(zones = ?engine.zone_names(), preloaded = loaded, "resolver ready");
    signals(&engine, &opts).await?;
    tracing::info!("shutting down: finishing requests under way");
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    sweeper.abort();
    drop(handler);
    drop(engine);
    if let Some(task) = store_task {
        // The writer ends once the engine's last sender is gone (refresh tasks still running hold
        // one); bounded so shutdown never hangs on a slow fetch.
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(errors)) if errors > 0 => tracing::warn!(errors, "some cache writes failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("cache writer still busy after 10 s; exiting anyway"),
        }
    }
    Ok(crate::EXIT_OK)
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Waits for SIGTERM or SIGINT; on SIGHUP reloads the zones from the configuration.
async fn signals(engine: &Engine, opts: &Opts) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => match opts.config().and_then(|c| Ok(c.zones()?)) {
                Ok(zones) => {
                    engine.set_zones(zones);
                    tracing::info!(zones = ?engine.zone_names(), "configuration reloaded (listeners and cache unchanged)");
                }
                Err(e) => tracing::error!(error = %format!("{e:#}"), "reload failed; the old configuration stays"),
            },
        }
    }
}

async fn query(config: &Config, key: &str, zone: &str, format: Format) -> Result<u8> {
    let redis = match cache(config) {
        Cache::Redis(url) => Some(RedisTier::connect(&url).await?),
        _ => None,
    };
    let engine = Engine::with_tiers(
        net(config)?,
        config.settings(),
        config.zones()?,
        None,
        redis,
    );
    if let Cache::File(path) = cache(config)
        && path.exists()
    {
        let store = SqliteStore::open(&path).await?;
        store
            .load_each(|p| {
                engine.preload([p]);
            })
            .await?;
    }
    let answer = engine.query(zone, key).await;
    match format {
        Format::Json => crate::output::print_json(&json(key, zone, &answer))?,
        Format::Text => print!(
            "{}",
            mtasts_core::text::escape_lines(&text(key, zone, &answer))
        ),
    }
    Ok(crate::EXIT_OK)
}

fn wire(reply: &Reply) -> (&'static str, &str) {
    match reply {
        Reply::Ok(d) => ("OK", d),
        Reply::NotFound => ("NOTFOUND", ""),
        Reply::Temp(d) => ("TEMP", d),
        Reply::Timeout(d) => ("TIMEOUT", d),
        Reply::Perm(d) => ("PERM", d),
    }
}

fn text(key: &str, zone: &str, a: &Answer) -> String {
    let (status, data) = wire(&a.reply);
    let mut out = format!(
        "{key} (table {zone})\n  Postfix gets: {status} {data}\n  because:      {}\n  source:       {}\n",
        a.why,
        a.source.as_str()
    );
    if let Some(p) = &a.policy {
        out.push_str(&format!(
            "  policy:       id {}, mode {}, max_age {}, mx {}; cached for {}\n",
            p.id,
            p.mode,
            p.max_age,
            p.mx.join(", "),
            human(p.expires_in.as_secs())
        ));
    }
    out
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}m {}s", s / 60, s % 60),
    }
}

fn json(key: &str, zone: &str, a: &Answer) -> serde_json::Value {
    let (status, data) = wire(&a.reply);
    let policy = match &a.policy {
        Some(p) => serde_json::json!({
            "id": p.id,
            "mode": p.mode,
            "max_age": p.max_age,
            "mx": p.mx,
            "expires_in": p.expires_in.as_secs(),
        }),
        None => serde_json::Value::Null,
    };
    serde_json::json!({
        "key": key,
        "zone": zone,
        "domain": a.domain,
        "reply": { "status": status, "data": data },
        "source": a.source.as_str(),
        "why": a.why,
        "policy": policy,
    })
}
