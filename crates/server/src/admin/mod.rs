//! The admin API: JSON over HTTPS on its own listener, bearer tokens checked through the store,
//! `/health`, `/metrics` (Prometheus text) and `/openapi.json`.
//!
//! - **Authentication.** `Authorization: Bearer <secret>`; the store keeps only the SHA-256 of
//!   each secret and compares in constant time ([`mtasts_store::Store::authenticate`]). No
//!   token, a malformed header or a wrong token: 401 with `WWW-Authenticate: Bearer`.
//! - **Scope.** A token limited to a list of domains sees only those: listing shows only them,
//!   and any other domain answers 404 exactly as an unhosted one does, so a scoped token cannot
//!   learn which other domains exist. Adding a domain outside the scope is 404 too.
//! - **Audit.** Every write goes through [`crate::domains`] and the store, which records who
//!   (`token:<name>`), when, what and why (the `reason` field) in the same transaction.
//! - **Limits** ([`AdminLimits`]): request body size, header count and size, time to read the
//!   head, time for the whole request, connections at once; past them the answer is a JSON
//!   error (413, 503) or the connection is closed.
//! - **TLS** is ours (rustls, ring, TLS 1.2+, the certificate from the configuration). Plain HTTP
//!   is accepted only on a loopback address ([`AdminTls::PlainLoopback`]): for tests and for a
//!   proxy on the same host.
//!
//! `/health`, `/metrics` and `/openapi.json` need no token: the admin listener is meant for a
//! private network, and none of them says anything about a domain.

mod api;
pub mod client;
pub(crate) mod error;
pub mod openapi;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::domains::Domains;
pub use api::ROUTES;
pub use error::ApiError;

/// The admin listener's limits. [`Default`] gives the documented values.
///
/// The `[admin_limits]` table of the configuration ([`crate::config::ServeConfig`]): the same
/// field names, times in seconds, every field optional.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminLimits {
    /// Largest request body, in bytes. Default 1 MiB (a certificate chain is at most 256 KiB).
    pub max_body_bytes: usize,
    /// Most request headers. Default 64.
    pub max_headers: usize,
    /// Largest request head, in bytes. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Time to read a request head (also the keep-alive wait). Default 10 s.
    #[serde(deserialize_with = "crate::config::secs")]
    pub header_timeout: Duration,
    /// Time for a whole request: body, store work, answer. Default 30 s; past it, 503 (a write
    /// under way still finishes in the background, and the answer says it may be applied).
    #[serde(deserialize_with = "crate::config::secs")]
    pub request_timeout: Duration,
    /// TLS handshake time. Default 10 s.
    #[serde(deserialize_with = "crate::config::secs")]
    pub handshake_timeout: Duration,
    /// Connections at once. At the limit the quietest connection (no request answered for a
    /// second) is closed for a new one, or the new one is closed at accept. Default 256.
    pub max_connections: usize,
    /// Connections from one client (an IPv4 address or an IPv6 /64); more are closed at
    /// accept. Default 128: half the total, so one client (a script on loopback, a proxy) is
    /// not refused while its closed connections are still being torn down.
    pub max_connections_per_ip: usize,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_headers: 64,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_connections_per_ip: 128,
        }
    }
}

/// How the admin listener speaks.
#[derive(Clone)]
pub enum AdminTls {
    /// HTTPS with this configuration ([`AdminTls::from_pem`]).
    Tls(Arc<ServerConfig>),
    /// Plain HTTP, refused unless the listener address is a loopback address.
    PlainLoopback,
}

impl std::fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tls(_) => "AdminTls::Tls",
            Self::PlainLoopback => "AdminTls::PlainLoopback",
        })
    }
}

impl AdminTls {
    /// HTTPS with the certificate chain and key from the configuration (PEM): TLS 1.3 and 1.2,
    /// ring, ALPN `http/1.1`.
    ///
    /// # Errors
    /// [`AdminError::Tls`] when the PEM does not parse or the key does not match.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, AdminError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| AdminError::Tls(format!("certificate PEM: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| AdminError::Tls(format!("key PEM: {e}")))?;
        let certified =
            crate::hosted::certified_key(chain, key).map_err(|e| AdminError::Tls(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| AdminError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self::Tls(Arc::new(config)))
    }
}

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// Plain HTTP was asked for on an address that is not loopback.
    #[error(
        "the admin API speaks plain HTTP only on a loopback address, not {0}; configure a certificate"
    )]
    PlainNotLoopback(SocketAddr),
    /// The TLS certificate or key is unusable.
    #[error("admin TLS: {0}")]
    Tls(String),
}

/// The clock the API reads (the current time unless a test injects one).
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// What the admin API needs.
#[derive(Clone)]
pub struct AdminConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// HTTPS or loopback plain HTTP.
    pub tls: AdminTls,
    /// The limits.
    pub limits: AdminLimits,
    /// The Prometheus handle `/metrics` renders (the binary installs the recorder); without
    /// one `/metrics` answers 404.
    pub metrics: Option<PrometheusHandle>,
    /// The clock.
    pub clock: Clock,
    /// What the policy listener serves, reported by `/health` (set by [`crate::daemon`]).
    pub serving: Option<Serving>,
}

/// What the policy listener serves, as `/health` reports it: the snapshot's store generation
/// and domain count, and whether the store could be read the last time it was asked (when not,
/// the last snapshot keeps being served). Cheap to clone; the daemon updates it.
#[derive(Debug, Clone, Default)]
pub struct Serving(Arc<ServingInner>);

#[derive(Debug, Default)]
struct ServingInner {
    generation: std::sync::atomic::AtomicU64,
    domains: std::sync::atomic::AtomicUsize,
    store_unreachable: std::sync::atomic::AtomicBool,
}

impl Serving {
    /// A snapshot of `domains` domains at store `generation` is served now.
    pub fn loaded(&self, generation: u64, domains: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.generation.store(generation, Relaxed);
        self.0.domains.store(domains, Relaxed);
        self.0.store_unreachable.store(false, Relaxed);
    }

    /// The store could not be read: the last snapshot is served.
    pub fn store_unreachable(&self) {
        self.0
            .store_unreachable
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// `{"generation", "domains", "stale"}`.
    pub fn to_json(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        serde_json::json!({
            "generation": self.0.generation.load(Relaxed),
            "domains": self.0.domains.load(Relaxed),
            "stale": self.0.store_unreachable.load(Relaxed),
        })
    }
}

impl AdminConfig {
    /// `addr` with `tls`, default limits, no metrics, the system clock.
    pub fn new(addr: SocketAddr, tls: AdminTls) -> Self {
        Self {
            addr,
            tls,
            limits: AdminLimits::default(),
            metrics: None,
            clock: Arc::new(OffsetDateTime::now_utc),
            serving: None,
        }
    }
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

/// A bound admin listener.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    config: AdminConfig,
}

impl AdminServer {
    /// Binds the listener (refusing plain HTTP off loopback).
    ///
    /// # Errors
    /// [`AdminError::PlainNotLoopback`], [`AdminError::Bind`].
    pub async fn bind(config: AdminConfig) -> Result<Self, AdminError> {
        if matches!(config.tls, AdminTls::PlainLoopback) && !config.addr.ip().is_loopback() {
            return Err(AdminError::PlainNotLoopback(config.addr));
        }
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| AdminError::Bind {
                addr: config.addr,
                source,
            })?;
        Ok(Self { listener, config })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.addr)
    }

    /// Serves `domains` until `shutdown` resolves; open connections get 5 s to finish.
    pub async fn run(self, domains: Domains, shutdown: impl Future<Output = ()>) {
        let Self { listener, config } = self;
        let state = Arc::new(api::State {
            domains,
            limits: config.limits.clone(),
            metrics: config.metrics.clone(),
            clock: config.clock.clone(),
            serving: config.serving.clone(),
        });
        let tls = match &config.tls {
            AdminTls::Tls(c) => Some(TlsAcceptor::from(Arc::clone(c))),
            AdminTls::PlainLoopback => None,
        };
        // The exporter's histograms need periodic upkeep (metrics-exporter-prometheus docs).
        let upkeep = config.metrics.clone().map(|h| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    h.run_upkeep();
                }
            })
        });
        let tracker = Arc::new(crate::limits::Tracker::named(
            Arc::new(crate::Limits {
                max_connections: config.limits.max_connections,
                max_connections_per_ip: config.limits.max_connections_per_ip,
                idle_timeout: config.limits.header_timeout,
                ..crate::Limits::default()
            }),
            "mtasts_admin_connections",
            "mtasts_admin_connections_evicted_total",
        ));
        let (stop_tx, stop) = watch::channel(false);
        let mut conns = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                a = listener.accept() => a,
            };
            let Ok((tcp, peer)) = accepted else {
                // Out of file descriptors, say: pause rather than spin on an accept that fails
                // at once, as the policy listener does.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let admitted = match tracker.admit(peer.ip()) {
                Ok(a) => a,
                Err(why) => {
                    metrics::counter!("mtasts_admin_connections_refused_total", "limit" => why.label())
                        .increment(1);
                    continue;
                }
            };
            let (state, tls, mut stop) = (Arc::clone(&state), tls.clone(), stop.clone());
            conns.spawn(async move {
                let slot = Arc::clone(&admitted.slot);
                let touched = Arc::clone(&slot);
                let _ = tcp.set_nodelay(true);
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    let touched = Arc::clone(&touched);
                    async move {
                        touched.started();
                        let r = api::handle(state, req).await;
                        touched.finished();
                        r
                    }
                });
                let mut h1 = http1::Builder::new();
                h1.timer(TokioTimer::new())
                    .header_read_timeout(config.limits.header_timeout)
                    .max_headers(config.limits.max_headers)
                    .max_buf_size(config.limits.max_header_bytes.max(8192));
                match tls {
                    Some(acceptor) => {
                        let hs = tokio::time::timeout(
                            config.limits.handshake_timeout,
                            acceptor.accept(tcp),
                        );
                        let Ok(Ok(stream)) = hs.await else { return };
                        let conn = h1.serve_connection(TokioIo::new(stream), service);
                        tokio::select! {
                            () = drive(conn, &mut stop) => {}
                            () = slot.evicted() => {}
                        }
                    }
                    None => {
                        let conn = h1.serve_connection(TokioIo::new(tcp), service);
                        tokio::select! {
                            () = drive(conn, &mut stop) => {}
                            () = slot.evicted() => {}
                        }
                    }
                }
                drop(admitted);
            });
            while conns.try_join_next().is_some() {}
        }
        if let Some(u) = upkeep {
            u.abort();
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        conns.abort_all();
    }
}

/// Drives one HTTP/1.1 connection; on shutdown it finishes the request under way and closes.
async fn drive<I, S>(conn: http1::Connection<I, S>, stop: &mut watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<
            hyper::body::Incoming,
            ResBody = http_body_util::Full<bytes::Bytes>,
        >,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
