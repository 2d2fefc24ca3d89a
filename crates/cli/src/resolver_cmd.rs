//! `mtasts resolver`: the MTA-STS policy daemon for Postfix, and `mtasts resolver query`.

use crate::output::Format;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_resolver::config::{Config, DEFAULT_ZONE};
use mtasts_resolver::explain::Explained;
use mtasts_resolver::{daemon, service};
use std::path::PathBuf;

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
    /// Do not check DANE: never answer `dane-only`, nor defer for an MX RRset that does not
    /// validate (D22).
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
    /// Permission bits of unix socket listeners, octal [default: 0660].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_SOCKET_MODE",
        value_name = "MODE"
    )]
    socket_mode: Option<String>,
    /// Group of unix socket listeners, a name or a number (e.g. `postfix`) [default: the
    /// daemon's].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_SOCKET_GROUP",
        value_name = "GROUP"
    )]
    socket_group: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "MTASTS_RESOLVER_LOG", default_value = "text", value_parser = ["text", "json"])]
    log: String,
}

impl Opts {
    /// The configuration file with flags and environment laid over it (flag > environment >
    /// file > default; the overlay itself is the library's, [`Config::load`]).
    fn config(&self) -> Result<Config> {
        let overrides = Config {
            listen: self.listen.clone(),
            tcp_table: self.tcp_table.clone(),
            nameservers: self.nameservers.clone(),
            ca_file: self.ca_file.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
            postfix_version: self.postfix_version.clone(),
            on_dns_error: self.on_dns_error.clone(),
            fetch_timeout: self.fetch_timeout,
            miss_wait: self.miss_wait,
            https_port: self.https_port,
            dane: self.no_dane.then_some(false),
            trust_anchor: self.trust_anchor.clone(),
            threads: self.threads,
            socket_mode: self.socket_mode.clone(),
            socket_group: self.socket_group.clone(),
            ..Config::default()
        };
        Ok(Config::load(self.config.as_deref(), overrides)?)
    }
}

pub(crate) fn run(args: ResolverArgs, format: Format) -> Result<u8> {
    let config = args.opts.config()?;
    config.validate()?;
    let runtime = runtime(config.threads)?;
    match args.action {
        Some(Action::Query { key, zone }) => runtime.block_on(async {
            let answer = daemon::explain(&config, &zone, &key).await?;
            let explained = Explained::new(&key, &zone, &answer);
            match format {
                Format::Json => crate::output::print_json(&explained)?,
                Format::Text => print!("{explained}"),
            }
            Ok(crate::EXIT_OK)
        }),
        None => {
            init_logs(&args.opts.log);
            runtime.block_on(async {
                let (control, shutdown) = service::channel();
                let mut daemon = tokio::spawn(daemon::run(config, shutdown));
                tokio::select! {
                    signals = control.forward_signals() => {
                        signals.context("cannot watch signals")?;
                        (&mut daemon).await.context("the daemon panicked")??;
                    }
                    done = &mut daemon => done.context("the daemon panicked")??,
                }
                Ok(crate::EXIT_OK)
            })
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
    crate::runtime::with_threads(threads.unwrap_or_else(crate::runtime::usable_cpus))
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
