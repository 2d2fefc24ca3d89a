//! The resolver daemon as one library call: [`run`] owns the cache tiers, the listeners, the
//! background refresh, `/metrics`, reload and drain. The binary parses flags and the
//! configuration file ([`Config::load`]), starts a runtime and calls it; tests call it the same
//! way.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtasts_resolver::daemon::DaemonError> {
//! use mtasts_resolver::{config::Config, service};
//! let config = Config::from_toml(r#"listen = ["unix:/run/mtasts/resolver.sock"]
//! cache = "memory""#)?;
//! let (control, shutdown) = service::channel();
//! let daemon = tokio::spawn(mtasts_resolver::daemon::run(config, shutdown));
//! // ... SIGHUP: control.reload(); SIGTERM:
//! control.stop();
//! daemon.await.expect("no panic")?;
//! # Ok(()) }
//! ```

use crate::Engine;
use crate::cache_file::{CacheFile, CacheOp, spawn_writer_with};
use crate::config::{Config, ConfigError, DEFAULT_ZONE};
use crate::engine::Answer;
use crate::proto::{Limits, ListenAddr, Listener, socketmap, tcp_table};
use crate::redis_tier::RedisTier;
use crate::service::{Event, Shutdown};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Where the cache file lives unless the configuration's `cache` says otherwise.
pub const DEFAULT_CACHE: &str = "/var/lib/mtasts/resolver.sqlite";

/// How long the cache writer may take, once the daemon has stopped, to write what is queued.
const WRITER_GRACE: Duration = Duration::from_secs(10);

/// Why the daemon could not start: the start-up error every service shares.
pub type DaemonError = crate::service::StartError;

impl From<ConfigError> for DaemonError {
    fn from(e: ConfigError) -> Self {
        Self::new("configuration", e)
    }
}

/// A start-up failure: what was being done, and why it failed.
fn fail(
    context: impl Into<String>,
    source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> DaemonError {
    DaemonError::new(context, source)
}

/// Where the cache is kept beyond memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTier {
    /// Memory only: a restart starts empty.
    Memory,
    /// A SQLite file of this host ([`crate::cache_file`]).
    File(PathBuf),
    /// A Redis shared by several resolvers ([`crate::redis_tier`]).
    Redis(String),
}

impl CacheTier {
    /// The configuration's `cache`: `memory`, `redis://...` / `redis+unix://...`, or a path
    /// ([`DEFAULT_CACHE`] when unset).
    pub fn of(config: &Config) -> Self {
        match config.cache.as_deref() {
            Some("memory") => Self::Memory,
            Some(url) if url.starts_with("redis://") || url.starts_with("redis+unix://") => {
                Self::Redis(url.to_owned())
            }
            Some(path) => Self::File(PathBuf::from(path)),
            None => Self::File(PathBuf::from(DEFAULT_CACHE)),
        }
    }
}

/// Runs the daemon until `shutdown` says stop: binds every listener, opens the cache tiers
/// (a cache file that cannot be read is set aside, see [`CacheFile::open_or_set_aside`]),
/// preloads, serves; on [`Event::Reload`] reads the configuration again ([`Config::reload`])
/// and applies the zones (listeners and cache stay); on [`Event::Stop`] stops accepting,
/// answers every request already received (within [`Limits::shutdown_grace`]), and writes what
/// the cache writer has queued (within 10 s).
///
/// # Errors
/// The configuration is invalid, a listener cannot be bound, or a cache tier cannot be opened;
/// nothing is left running then.
pub async fn run(config: Config, mut shutdown: Shutdown) -> Result<(), DaemonError> {
    config.validate()?;
    let zones = config.zones()?;
    let net = config.network()?;
    let unix = config.unix_socket()?;
    // Bind first: a listener that cannot be had is reported before anything else is started.
    let mut bound = Vec::new();
    for spec in &config.listen {
        bound.push((bind(spec, spec, unix).await?, None));
    }
    for spec in &config.tcp_table {
        let (at, zone) = spec.split_once('=').unwrap_or((spec, DEFAULT_ZONE));
        bound.push((bind(spec, at, unix).await?, Some(zone.to_owned())));
    }
    let metrics = match &config.metrics {
        Some(spec) => Some(
            tokio::net::TcpListener::bind(spec)
                .await
                .map_err(|e| fail(format!("cannot serve metrics on {spec}"), e))?,
        ),
        None => None,
    };
    let (queue, queue_rx) = mpsc::unbounded_channel::<CacheOp>();
    let tier = CacheTier::of(&config);
    let redis = match &tier {
        CacheTier::Redis(url) => {
            let r = RedisTier::connect(url)
                .await
                .map_err(|e| fail("cache (redis)", e))?;
            tracing::info!(redis = ?r, "shared Redis tier connected");
            Some(r)
        }
        _ => None,
    };
    let persist = !matches!(tier, CacheTier::Memory);
    let engine = Engine::with_tiers(
        net,
        config.settings(),
        zones,
        persist.then_some(queue),
        redis.clone(),
    );
    let mut file = None;
    let mut preloaded = 0;
    if let CacheTier::File(path) = &tier {
        create_parent(path)?;
        let (f, pruned) = CacheFile::open_or_set_aside(
            path,
            |n| engine.reserve(n),
            |p| preloaded += engine.preload([p]),
        )
        .await
        .map_err(|e| fail("cache file", e))?;
        tracing::info!(path = %path.display(), pruned, "cache file opened");
        file = Some(f);
    }
    let writer = persist.then(|| spawn_writer_with(queue_rx, file, redis));
    let sweeper = engine.spawn_sweeper();
    let handler = Arc::new(engine.clone());
    let mut servers = JoinSet::new();
    for (listener, zone) in bound {
        let stop = stopped(&shutdown);
        let handler = Arc::clone(&handler);
        match zone {
            None => {
                servers.spawn(socketmap::serve(
                    listener,
                    handler,
                    Limits::socketmap(),
                    stop,
                ));
            }
            Some(zone) => {
                servers.spawn(async move {
                    tcp_table::serve(listener, handler, &zone, Limits::tcp_table(), stop).await
                });
            }
        }
    }
    if let Some(listener) = metrics {
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
        servers.spawn({
            let (engine, shutdown) = (engine.clone(), shutdown.clone());
            async move {
                crate::metrics::serve(listener, engine, shutdown).await;
                Ok(())
            }
        });
    }
    tracing::info!(zones = ?engine.zone_names(), preloaded, "resolver ready");
    // Validate the root once at start, so a broken validator is said at once, not at the first
    // domain whose MX records cannot be validated.
    tokio::spawn({
        let engine = engine.clone();
        async move {
            let _ = engine.health().await;
        }
    });
    while shutdown.next().await == Event::Reload {
        reload(&config, &engine);
    }
    tracing::info!("shutting down: finishing requests under way");
    while let Some(done) = servers.join_next().await {
        if let Ok(Err(e)) = done {
            tracing::warn!(error = %e, "a listener ended with an error");
        }
    }
    sweeper.abort();
    drop(handler);
    drop(engine);
    if let Some(task) = writer {
        // The writer ends once the engine's last sender is gone (refresh tasks still running hold
        // one); bounded so shutdown never hangs on a slow fetch.
        match tokio::time::timeout(WRITER_GRACE, task).await {
            Ok(Ok(errors)) if errors > 0 => tracing::warn!(errors, "some cache writes failed"),
            Ok(_) => {}
            Err(_) => tracing::warn!("cache writer still busy after 10 s; exiting anyway"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Applies a reloaded configuration's zones; a bad one is logged and the old one stays.
fn reload(config: &Config, engine: &Engine) {
    let fresh = config.reload().and_then(|c| {
        c.validate()?;
        c.zones()
    });
    match fresh {
        Ok(zones) => {
            engine.set_zones(zones);
            tracing::info!(
                zones = ?engine.zone_names(),
                "configuration reloaded (listeners and cache unchanged)"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "reload failed; the old configuration stays");
        }
    }
}

/// A future that completes when `shutdown` says stop, for a server task.
fn stopped(shutdown: &Shutdown) -> impl Future<Output = ()> + Send + 'static {
    let shutdown = shutdown.clone();
    async move { shutdown.stopped().await }
}

async fn bind(
    spec: &str,
    at: &str,
    unix: crate::proto::UnixSocket,
) -> Result<Listener, DaemonError> {
    let addr: ListenAddr = at.parse().map_err(|e| fail(format!("listen {spec}"), e))?;
    let listener = addr
        .bind_with(unix)
        .await
        .map_err(|e| fail(format!("cannot listen on {addr}"), e))?;
    tracing::info!(%addr, "listening ({spec})");
    Ok(listener)
}

fn create_parent(path: &std::path::Path) -> Result<(), DaemonError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            let what = format!(
                "cannot create the cache directory {} (choose another with --cache PATH, or \
                 --cache memory)",
                dir.display()
            );
            fail(what, e)
        })?;
    }
    Ok(())
}

/// What the daemon would answer Postfix for `key` in the table `zone`, and why (`resolver
/// query`): asks the network now, after reading what a configured cache holds, so the answer
/// matches the daemon's. The cache file is only read, never set aside or written.
///
/// # Errors
/// The configuration is invalid, or a configured cache cannot be read.
pub async fn explain(config: &Config, zone: &str, key: &str) -> Result<Answer, DaemonError> {
    config.validate()?;
    let tier = CacheTier::of(config);
    let redis = match &tier {
        CacheTier::Redis(url) => Some(
            RedisTier::connect(url)
                .await
                .map_err(|e| fail("cache (redis)", e))?,
        ),
        _ => None,
    };
    let engine = Engine::with_tiers(
        config.network()?,
        config.settings(),
        config.zones()?,
        None,
        redis,
    );
    if let CacheTier::File(path) = &tier
        && path.exists()
    {
        let file = CacheFile::open(path)
            .await
            .map_err(|e| fail("cache file", e))?;
        file.load_each(|p| {
            engine.preload([p]);
        })
        .await
        .map_err(|e| fail("cache file", e))?;
    }
    Ok(engine.query(zone, key).await)
}
