//! `mtasts serve` as one library call: [`run`] opens the store, builds the hosted snapshot,
//! serves policies (HTTPS and port 80) and the admin API, follows the store's changes, and
//! drains on stop. The binary parses flags and the file ([`ServeConfig::load`]), installs the
//! metrics recorder, starts a runtime and calls it; tests call it the same way.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtasts_server::daemon::DaemonError> {
//! use mtasts_net::service;
//! use mtasts_server::config::ServeConfig;
//! let config = ServeConfig::from_toml(r#"[store]
//! url = "sqlite:/var/lib/mtasts/store.db""#)?;
//! let (control, shutdown) = service::channel();
//! let daemon = tokio::spawn(mtasts_server::daemon::run(config, shutdown));
//! // SIGHUP: control.reload(); SIGTERM:
//! control.stop();
//! daemon.await.expect("no panic")?;
//! # Ok(()) }
//! ```
//!
//! The snapshot follows the store: a [`mtasts_store::Watcher`] (LISTEN/NOTIFY on PostgreSQL,
//! polling every `reload_poll` as well) reports a new generation and the snapshot is rebuilt and
//! swapped whole. When the store cannot be read the last snapshot keeps being served (logged
//! once; `/health` answers 503 with `"status": "unavailable"`), and the generation is read again
//! every `reload_poll` until the store answers, when the snapshot catches up.

use std::net::SocketAddr;
use std::sync::Arc;

use mtasts_core::policy::parse_policy;
use mtasts_net::service::{Event, Shutdown};
use mtasts_store::Store;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{AdminConfig, AdminServer, AdminTls, Serving};
use crate::config::{ConfigError, ServeConfig};
use crate::domains::Domains;
use crate::drift::Checker;
use crate::hosted::{Hosted, HostedDomain, HostedSet};
use crate::server::{Config, Server};

/// Why the daemon could not start: the start-up error every service shares.
pub type DaemonError = mtasts_net::service::StartError;

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

/// A certificate expiring within this many days counts in
/// `mtasts_serve_certificates_expiring_soon` (ACME renews 90-day certificates 30 days ahead).
pub const EXPIRING_DAYS: i64 = 14;

/// The shortest time between two snapshot reloads (or `reload_poll`, if shorter).
pub const RELOAD_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A started daemon: listeners bound, store open, first snapshot loaded.
pub struct Daemon {
    config: ServeConfig,
    store: Store,
    domains: Domains,
    hosted: HostedSet,
    generation: u64,
    serving: Serving,
    server: Server,
    admin: AdminServer,
    drift: Option<Checker>,
    acme: Option<Arc<crate::acme::Engine>>,
    publisher: Option<crate::publish::Publisher>,
    smtp: Option<(
        tokio::net::TcpListener,
        Arc<mtasts_intake::smtp::SmtpReceiver>,
    )>,
    alerter: Option<crate::alerts::Alerter>,
    imap: Option<mtasts_intake::imap::Importer>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("https", &self.server.https_addr())
            .field("http", &self.server.http_addr())
            .field("admin", &self.admin.local_addr())
            .field("generation", &self.generation)
            .field("smtp", &self.smtp_addr())
            .finish_non_exhaustive()
    }
}

/// Binds and runs: [`Daemon::start`] then [`Daemon::run`].
///
/// # Errors
/// As [`Daemon::start`].
pub async fn run(config: ServeConfig, shutdown: Shutdown) -> Result<(), DaemonError> {
    Daemon::start(config).await?.run(shutdown).await;
    Ok(())
}

impl Daemon {
    /// Validates the configuration, opens the store (applying its migrations), loads the first
    /// snapshot and binds every listener. Nothing is served until [`Daemon::run`].
    ///
    /// # Errors
    /// The configuration is invalid, the store cannot be opened or read, the admin certificate
    /// is unusable, or a listener cannot be bound; nothing is left running then.
    pub async fn start(config: ServeConfig) -> Result<Self, DaemonError> {
        config.validate()?;
        let tls = match &config.admin_tls {
            Some(files) => {
                let read = |p: &std::path::Path| {
                    std::fs::read_to_string(p)
                        .map_err(|e| fail(format!("admin_tls: cannot read {}", p.display()), e))
                };
                AdminTls::from_pem(&read(&files.cert)?, &read(&files.key)?)
                    .map_err(|e| fail("admin listener", e))?
            }
            None => AdminTls::PlainLoopback,
        };
        let store = Store::open(&config.store.url, &config.store.options()?)
            .await
            .map_err(|e| fail(format!("store {}", redact(&config.store.url)), e))?;
        // One network environment (resolver, trust roots) for show, ACME and drift.
        let env = Arc::new(config.check.drift_env()?);
        let domains = Domains::new(store.clone(), config.rollout.clone())
            .map_err(|e| fail("rollout", e))?
            .with_resolver(env.resolver.clone());
        record_rollout(&store, &config.rollout)
            .await
            .map_err(|e| fail("recording the rollout schedule in the store", e))?;
        let (generation, hosted) = load_apart(&store, &config.service_hosts())
            .await
            .map_err(|e| fail("reading the store", e))?;
        tracing::info!(
            store = store.backend(),
            generation,
            domains = hosted.len(),
            "snapshot loaded"
        );
        let mut hosting = config.hosting.clone();
        if hosting.zone.is_none() {
            hosting.zone.clone_from(&config.dns_update.zone);
        }
        crate::hosting::record_hosting(&store, &hosting)
            .await
            .map_err(|e| fail("recording the hosting facts in the store", e))?;
        let mut server_config = Config::new(config.https);
        let acme = if config.acme.enabled() {
            let challenges = crate::acme::Challenges::new(store.clone());
            server_config.challenges = Some(Arc::new(challenges.clone()));
            server_config.tls_hook = Some(Arc::new(challenges.clone()));
            let mut acme_config = config.acme.clone();
            if config.http.is_none() {
                // Without port 80 an HTTP-01 attempt cannot succeed: offer only the rest.
                acme_config.challenges.retain(|c| c != "http-01");
                tracing::info!(
                    challenges = ?acme_config.challenges,
                    "ACME: no port-80 listener (http = \"none\"), so no HTTP-01"
                );
            }
            let engine = crate::acme::Engine::new(
                store.clone(),
                acme_config,
                hosting.clone(),
                env.resolver.clone(),
                challenges,
            )
            .map_err(|e| fail("acme", e))?;
            Some(Arc::new(engine))
        } else {
            None
        };
        let hosted = HostedSet::new(hosted);
        if !config.intake.path.is_empty() {
            let intake = hosted_intake(&store, &hosted);
            server_config.report_sink = Some(Arc::new(crate::report_sink::HttpsIntake::new(
                intake,
                config.intake.clone(),
            )));
        }
        server_config.http = config.http;
        server_config.limits = config.limits.clone();
        server_config.grace = config.grace;
        let server = Server::bind(server_config)
            .await
            .map_err(|e| fail("policy listener", e))?;
        let mut admin_config = AdminConfig::new(config.admin, tls);
        admin_config.limits = config.admin_limits.clone();
        admin_config.metrics = config.metrics.clone();
        let serving = Serving::default();
        serving.loaded(generation, hosted.current().len());
        admin_config.serving = Some(serving.clone());
        let admin = AdminServer::bind(admin_config)
            .await
            .map_err(|e| fail("admin listener", e))?;
        let drift = if config.check.drift_interval.is_zero() {
            None
        } else {
            Some(Checker {
                domains: domains.clone(),
                env,
                interval: config.check.drift_interval,
                concurrency: config.check.drift_concurrency,
                budget: config.check.timeout * 4,
            })
        };
        let alerter = if config.alerts.enabled() {
            Some(
                crate::alerts::Alerter::new(store.clone(), config.alerts.clone())
                    .map_err(|e| fail("alerts", e))?,
            )
        } else {
            None
        };
        let smtp = match config.smtp.listen {
            None => None,
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| fail("SMTP listener", e))?;
                let dkim = if config.smtp.verify_dkim {
                    let resolver = config
                        .check
                        .drift_env()
                        .map_err(|e| fail("smtp", e))?
                        .resolver;
                    Some(
                        mtasts_intake::dkim::DkimVerifier::new(resolver)
                            .map_err(|e| fail("smtp", e))?,
                    )
                } else {
                    None
                };
                let tls = crate::smtp_intake::tls_config(hosted.clone(), &config.smtp.hostname);
                let receiver = mtasts_intake::smtp::SmtpReceiver::new(
                    hosted_intake(&store, &hosted),
                    dkim,
                    Some(tls),
                    config.smtp.limits(),
                )
                .with_tls_ready(crate::smtp_intake::tls_ready(
                    hosted.clone(),
                    &config.smtp.hostname,
                ));
                Some((listener, Arc::new(receiver)))
            }
        };
        let publisher = config
            .dns_update
            .update_server()
            .map_err(|e| fail("dns_update", e))?
            .map(|server| {
                crate::publish::Publisher::new(
                    store.clone(),
                    server,
                    hosting.clone(),
                    config.dns_update.clone(),
                    hosted.clone(),
                )
            });
        let imap = match config.imap.importer(&store).map_err(|e| fail("imap", e))? {
            Some(i) if config.smtp.verify_dkim => {
                let resolver = config
                    .check
                    .drift_env()
                    .map_err(|e| fail("imap", e))?
                    .resolver;
                let verifier = mtasts_intake::dkim::DkimVerifier::new(resolver)
                    .map_err(|e| fail("imap", e))?;
                Some(i.with_dkim(verifier))
            }
            other => other,
        };
        Ok(Self {
            config,
            store,
            domains,
            hosted,
            generation,
            serving,
            server,
            admin,
            drift,
            acme,
            publisher,
            smtp,
            alerter,
            imap,
        })
    }

    /// Where policies are served over HTTPS.
    pub fn https_addr(&self) -> SocketAddr {
        self.server.https_addr()
    }

    /// Where the SMTP receiver listens, when it is on.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// Where port 80 is served, if it is.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.server.http_addr()
    }

    /// Where the admin API, `/metrics` and `/health` are served.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    /// The snapshot served (tests and the binary may read it; it is replaced as a whole).
    pub fn hosted(&self) -> HostedSet {
        self.hosted.clone()
    }

    /// Serves until `shutdown` says stop: follows the store's generation, re-reads the snapshot
    /// on [`Event::Reload`], and on [`Event::Stop`] stops accepting and drains both listeners
    /// (within `grace`) before returning.
    pub async fn run(self, mut shutdown: Shutdown) {
        let Self {
            config,
            store,
            domains,
            hosted,
            mut generation,
            serving,
            server,
            admin,
            drift,
            acme,
            publisher,
            smtp,
            alerter,
            imap,
        } = self;
        tracing::info!(
            https = %server.https_addr(),
            http = ?server.http_addr(),
            admin = %admin.local_addr(),
            "listening"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let policy: JoinHandle<_> =
            tokio::spawn(server.run(hosted.clone(), stopped(stop_rx.clone())));
        let drift: Option<JoinHandle<_>> =
            drift.map(|d| tokio::spawn(d.run(stopped(stop_rx.clone()))));
        let acme_wake = acme.as_ref().map(|a| a.waker());
        let acme: Option<JoinHandle<_>> =
            acme.map(|a| tokio::spawn(a.run(stopped(stop_rx.clone()))));
        let publish_wake = publisher.as_ref().map(crate::publish::Publisher::waker);
        let publisher: Option<JoinHandle<_>> =
            publisher.map(|p| tokio::spawn(p.run(stopped(stop_rx.clone()))));
        let smtp: Option<JoinHandle<_>> = smtp.map(|(listener, receiver)| {
            tracing::info!(smtp = ?listener.local_addr().ok(), "SMTP report intake listening");
            tokio::spawn(receiver.serve(listener, stopped(stop_rx.clone())))
        });
        let alerter: Option<JoinHandle<_>> =
            alerter.map(|a| tokio::spawn(a.run(stopped(stop_rx.clone()))));
        let imap: Option<JoinHandle<_>> =
            imap.map(|i| tokio::spawn(crate::report_imap::run(i, stopped(stop_rx.clone()))));
        let admin: JoinHandle<_> = tokio::spawn(admin.run(domains, stopped(stop_rx)));
        let poll = config.reload_poll;
        let service_hosts = config.service_hosts();
        let mut watcher = store.watch(generation, poll);
        // Set while the store cannot be read: the last snapshot is served meanwhile.
        let mut unreachable = false;
        // Reloads come at most every `min(reload_poll, 1 s)`: PostgreSQL announces every write
        // at once, and while certificates are being installed by the hundred (ACME) each
        // announcement would reload the whole snapshot (BENCHMARKS.md, ACME: 12 reloads a
        // second). Changes made meanwhile are in the next reload.
        let min_interval = poll.min(RELOAD_MIN_INTERVAL);
        let mut last_reload = tokio::time::Instant::now();
        loop {
            let reload = tokio::select! {
                event = shutdown.next() => match event {
                    Event::Stop => break,
                    Event::Reload => true,
                },
                // The watcher reports only a new generation: while the store is unreachable,
                // a whole reload is tried every poll, so that a store back with nothing
                // changed ends the outage too (else `/health` says stale until the next change).
                () = tokio::time::sleep(poll), if unreachable => true,
                changed = watcher.changed() => match changed {
                    Ok(_) => true,
                    Err(e) => {
                        if !unreachable {
                            tracing::warn!(error = %e, domains = hosted.current().len(),
                                "store unreachable: serving the last snapshot");
                            unreachable = true;
                            serving.store_unreachable();
                        }
                        // Wait before asking again (a refused connect fails at once).
                        tokio::select! {
                            event = shutdown.next() => if event == Event::Stop { break },
                            () = tokio::time::sleep(poll) => {}
                        }
                        false
                    }
                },
            };
            if !reload {
                continue;
            }
            let next = last_reload + min_interval;
            if !unreachable && tokio::time::Instant::now() < next {
                tokio::select! {
                    event = shutdown.next() => if event == Event::Stop { break },
                    () = tokio::time::sleep_until(next) => {}
                }
            }
            last_reload = tokio::time::Instant::now();
            match load_apart(&store, &service_hosts).await {
                Ok((g, snapshot)) => {
                    if unreachable {
                        tracing::info!(generation = g, "store reachable again");
                        unreachable = false;
                    }
                    tracing::info!(
                        generation = g,
                        domains = snapshot.len(),
                        "snapshot reloaded"
                    );
                    serving.loaded(g, snapshot.len());
                    hosted.replace(snapshot);
                    generation = g;
                    // A domain added wants a certificate; a policy served now wants its id.
                    for wake in [&acme_wake, &publish_wake].into_iter().flatten() {
                        wake.notify_one();
                    }
                }
                Err(e) => {
                    if !unreachable {
                        tracing::warn!(error = %e, domains = hosted.current().len(),
                            "store unreachable: serving the last snapshot");
                        unreachable = true;
                        serving.store_unreachable();
                    }
                    // Report anything but what is served, including the generation just seen
                    // but not loaded (a new watcher; the LISTEN connection is kept otherwise).
                    watcher = store.watch(generation, poll);
                    tokio::select! {
                        event = shutdown.next() => if event == Event::Stop { break },
                        () = tokio::time::sleep(poll) => {}
                    }
                }
            }
        }
        tracing::info!("stopping: draining the policy and admin listeners");
        let _ = stop_tx.send(true);
        if let Ok(Err(e)) = policy.await {
            tracing::warn!(error = %e, "policy listener");
        }
        let _ = admin.await;
        for task in [drift, acme, publisher, smtp, alerter, imap]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
        // The watcher's LISTEN connection comes from the pool: close waits for it otherwise.
        drop(watcher);
        store.close().await;
    }
}

/// Reads the store's generation, then every domain and certificate, into a snapshot. The
/// generation is read first, so a change committed meanwhile is reported again by the watcher.
/// A domain without a certificate, or whose policy or certificate cannot be used, is left out
/// and logged: the others are served.
///
/// # Errors
/// The store cannot be read.
pub async fn load(store: &Store, hosts: &[String]) -> Result<(u64, Hosted), mtasts_store::Error> {
    let generation = store.generation().await?;
    let domains = store.domains().await?;
    let mut certs: std::collections::HashMap<String, mtasts_store::Certificate> = store
        .certificates()
        .await?
        .into_iter()
        .map(|c| (c.domain.clone(), c))
        .collect();
    let mut hosted = Vec::with_capacity(domains.len());
    let mut without_cert = 0usize;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::days(EXPIRING_DAYS);
    let (mut expiring, mut earliest) = (0usize, None::<time::OffsetDateTime>);
    for d in domains {
        let Some(cert) = certs.remove(&d.name) else {
            // Every reload would say it again for each such domain: one count at info.
            tracing::debug!(domain = %d.name, "no certificate yet: not served");
            without_cert += 1;
            continue;
        };
        if cert.not_after < soon {
            expiring += 1;
        }
        earliest = Some(earliest.map_or(cert.not_after, |e| e.min(cert.not_after)));
        match hosted_domain(&d, &cert) {
            Ok(h) => hosted.push(h),
            Err(why) => tracing::warn!(domain = %d.name, %why, "not served"),
        }
    }
    // For alerts across thousands of domains without a series per domain: `domain show` has
    // each one's state.
    metrics::gauge!("mtasts_serve_domains_without_certificate").set(without_cert as f64);
    metrics::gauge!("mtasts_serve_certificates_expiring_soon").set(expiring as f64);
    if let Some(e) = earliest {
        metrics::gauge!("mtasts_serve_certificate_earliest_expiry_seconds")
            .set(e.unix_timestamp() as f64);
    }
    if without_cert > 0 {
        tracing::info!(
            domains = without_cert,
            "domains without a certificate yet are not served (mtasts domain cert import)"
        );
    }
    let mut services = Vec::new();
    if !hosts.is_empty() {
        // A broken host certificate row must not stop the domains from being served.
        let certs = store.host_certificates().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "host certificates not loaded");
            Vec::new()
        });
        for c in certs {
            if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&c.name)) {
                continue;
            }
            match certified(&c.chain_pem, c.key.expose()) {
                Ok(key) => services.push((c.name, key)),
                Err(why) => tracing::warn!(host = %c.name, %why, "host certificate not served"),
            }
        }
    }
    Ok((generation, Hosted::build(hosted).with_hosts(services)))
}

/// A chain and key in PEM as a rustls key.
fn certified(chain_pem: &str, key_pem: &str) -> Result<Arc<rustls::sign::CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key PEM: {e}"))?;
    crate::hosted::certified_key(chain, key).map_err(|e| e.to_string())
}

/// [`load`] on a thread of the blocking pool rather than on the thread that serves.
///
/// Loading allocates far more than it keeps: every row, PEM text and parsed policy is garbage
/// once the snapshot is built. glibc's allocator keeps that garbage as free chunks in the arena
/// of the thread that allocated it, and each thread that allocates gets an arena of its own (up
/// to 8 per CPU). Loaded on the serving thread (a current-thread runtime, `--threads 1`), every
/// connection's allocations then go through those free lists: with 10,000 domains that was 9 %
/// more server CPU per new-connection fetch than with 10 (BENCHMARKS.md, "10 vs 10,000 hosted
/// domains through `mtasts serve`"). Loaded here, the serving thread's heap stays as small as
/// with 10 domains.
async fn load_apart(store: &Store, hosts: &[String]) -> Result<(u64, Hosted), mtasts_store::Error> {
    let store = store.clone();
    let hosts = hosts.to_vec();
    let runtime = tokio::runtime::Handle::current();
    // The store's futures run on the blocking thread; the runtime's threads keep driving I/O
    // and timers meanwhile (the caller only awaits this task).
    match tokio::task::spawn_blocking(move || runtime.block_on(load(&store, &hosts))).await {
        Ok(loaded) => loaded,
        // A blocking task is cancelled only when the runtime shuts down, which drops the caller.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// An intake for the network paths: reports only for domains hosted here (D27). A domain in
/// the snapshot served is taken as hosted without a store read; the store is asked about the
/// rest (a domain added since the snapshot was built).
fn hosted_intake(store: &Store, hosted: &HostedSet) -> mtasts_intake::Intake {
    let known = hosted.clone();
    mtasts_intake::Intake::new(store.clone(), mtasts_intake::Accept::Hosted).with_known_domains(
        mtasts_intake::KnownDomains::new(move |d| known.guard().hosts_domain(d)),
    )
}

/// One store row and its certificate as a [`HostedDomain`].
fn hosted_domain(
    d: &mtasts_store::HostedDomain,
    cert: &mtasts_store::Certificate,
) -> Result<HostedDomain, String> {
    let policy = parse_policy(d.policy.text.as_bytes())
        .policy
        .ok_or("the stored policy does not parse")?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("certificate PEM: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key.expose().as_bytes())
        .map_err(|e| format!("key PEM: {e}"))?;
    HostedDomain::new(&d.name, policy, chain, key).map_err(|e| e.to_string())
}

/// A store URL without its password, for messages.
pub fn redact(url: &str) -> String {
    // The query may carry `password=`, `sslpassword=` and the like: none of it is shown.
    let (url, query) = match url.split_once('?') {
        Some((u, _)) => (u, "?..."),
        None => (url, ""),
    };
    let base = match url.split_once("://").and_then(|(s, rest)| {
        // The last '@' ends the user information (a password may hold an unencoded '@').
        let (userinfo, host) = rest.rsplit_once('@')?;
        let user = userinfo.split(':').next().unwrap_or("");
        Some(format!("{s}://{user}@{host}"))
    }) {
        Some(r) => r,
        None => url.to_owned(),
    };
    format!("{base}{query}")
}

/// The store setting holding the rollout schedule `mtasts serve` runs with.
pub const ROLLOUT_SETTING: &str = "rollout";

/// Records `rollout` in the store, so that `mtasts domain --store` (without a configuration of
/// its own) applies the gates the servers apply.
///
/// # Errors
/// The store's.
pub async fn record_rollout(
    store: &Store,
    rollout: &mtasts_core::rollout::RolloutConfig,
) -> Result<(), mtasts_store::Error> {
    let json = serde_json::to_string(rollout).unwrap_or_default();
    store.put_setting(ROLLOUT_SETTING, &json).await
}

/// The rollout schedule a server recorded in the store, if one did and this build reads it.
///
/// # Errors
/// The store's.
pub async fn recorded_rollout(
    store: &Store,
) -> Result<Option<mtasts_core::rollout::RolloutConfig>, mtasts_store::Error> {
    Ok(store
        .setting(ROLLOUT_SETTING)
        .await?
        .and_then(|j| serde_json::from_str(&j).ok()))
}

/// Installs the process-wide Prometheus recorder and returns the handle `/metrics` renders
/// (the binary calls it once, before [`run`]). `None` when a recorder is already installed.
pub fn install_metrics() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).ok()?;
    Some(handle)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn store_urls_in_messages_carry_no_password() {
        assert_eq!(
            redact("postgres://u:secret@db.example/x"),
            "postgres://u@db.example/x"
        );
        assert_eq!(redact("sqlite:/var/lib/x.db"), "sqlite:/var/lib/x.db");
        assert_eq!(
            redact("postgres://u:p@ss@db.example/x?password=secret&sslmode=require"),
            "postgres://u@db.example/x?..."
        );
    }
}
