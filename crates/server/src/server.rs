//! The listeners and the life of a connection: admission, TLS handshake, HTTP/1.1 or HTTP/2 by
//! ALPN, idle and eviction watch, graceful drain.

use crate::hosted::HostedSet;
use crate::http::{ChallengeResponder, ReportSink, for_sink, plain_response, policy_response};
use crate::limits::{Admitted, Limits, Slot, Tracker};
use crate::tls::{TlsHook, server_config};
use futures_util::future::Either;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use std::convert::Infallible;
use std::future::{Future, ready};
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_rustls::LazyConfigAcceptor;

/// How a server is set up. [`Config::new`] gives the defaults for an HTTPS address.
#[derive(Clone)]
pub struct Config {
    /// Where policies are served over HTTPS (port 443 in production).
    pub https: SocketAddr,
    /// The plain HTTP listener (port 80), if any: 404 for everything but ACME challenges.
    pub http: Option<SocketAddr>,
    /// The limits on every connection of both listeners.
    pub limits: Limits,
    /// On shutdown, how long open connections may take to finish before they are dropped.
    /// Default 5 s.
    pub grace: Duration,
    /// Answers ACME HTTP-01 challenges on the HTTP listener.
    pub challenges: Option<Arc<dyn ChallengeResponder>>,
    /// Sees every ClientHello first (ACME TLS-ALPN-01).
    pub tls_hook: Option<Arc<dyn TlsHook>>,
    /// Receives TLS-RPT reports `POST`ed at its path on the policy hosts.
    pub report_sink: Option<Arc<dyn ReportSink>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("https", &self.https)
            .field("http", &self.http)
            .field("limits", &self.limits)
            .field("grace", &self.grace)
            .field("challenges", &self.challenges.is_some())
            .field("tls_hook", &self.tls_hook.is_some())
            .field("report_sink", &self.report_sink.is_some())
            .finish()
    }
}

impl Config {
    /// HTTPS on `https`, no HTTP listener, default limits, 5 s grace, no hooks.
    pub fn new(https: SocketAddr) -> Self {
        Self {
            https,
            http: None,
            limits: Limits::default(),
            grace: Duration::from_secs(5),
            challenges: None,
            tls_hook: None,
            report_sink: None,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
}

/// The listen backlog: room for a burst of new senders while the accept loop catches up.
const BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let open = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    open().map_err(|source| Error::Bind { addr, source })
}

/// Bound listeners, ready to [`run`](Server::run). Binding first lets a caller (a test, the
/// binary) learn the ports before serving.
#[derive(Debug)]
pub struct Server {
    config: Config,
    https: TcpListener,
    http: Option<TcpListener>,
}

/// What every connection task shares.
struct Shared {
    hosted: HostedSet,
    limits: Arc<Limits>,
    tracker: Arc<Tracker>,
    tls: Arc<ServerConfig>,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    challenges: Option<Arc<dyn ChallengeResponder>>,
    tls_hook: Option<Arc<dyn TlsHook>>,
    report_sink: Option<Arc<dyn ReportSink>>,
    stop: watch::Receiver<bool>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Https,
    Http,
}

impl Server {
    /// Opens the listeners.
    pub async fn bind(config: Config) -> Result<Self, Error> {
        let https = bind(config.https)?;
        let http = config.http.map(bind).transpose()?;
        Ok(Self {
            config,
            https,
            http,
        })
    }

    /// The address the HTTPS listener is bound to.
    pub fn https_addr(&self) -> SocketAddr {
        self.https.local_addr().unwrap_or(self.config.https)
    }

    /// The address the HTTP listener is bound to, if there is one.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves `hosted` until `shutdown` resolves, then stops accepting, lets open connections
    /// finish (HTTP/1.1 after the request under way, HTTP/2 with GOAWAY) within the grace time,
    /// drops the rest and returns.
    pub async fn run(
        self,
        hosted: HostedSet,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let Self {
            config,
            https,
            http,
        } = self;
        let limits = Arc::new(config.limits.clone());
        let (stop_tx, stop) = watch::channel(false);
        let shared = Arc::new(Shared {
            tls: server_config(hosted.clone()),
            hosted,
            tracker: Arc::new(Tracker::new(Arc::clone(&limits))),
            h1: http1_builder(&limits),
            h2: http2_builder(&limits),
            limits,
            challenges: config.challenges.clone(),
            tls_hook: config.tls_hook.clone(),
            report_sink: config.report_sink.clone(),
            stop,
        });
        let mut loops = JoinSet::new();
        loops.spawn(accept_loop(
            https,
            Arc::clone(&shared),
            Kind::Https,
            config.grace,
        ));
        if let Some(http) = http {
            loops.spawn(accept_loop(
                http,
                Arc::clone(&shared),
                Kind::Http,
                config.grace,
            ));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining open ones");
        let _ = stop_tx.send(true);
        while loops.join_next().await.is_some() {}
        Ok(())
    }
}

/// Binds and serves: [`Server::bind`] then [`Server::run`] (the shape of mini-redis's
/// `server::run`). `hosted` is fed by the store; `shutdown` is the service's stop signal.
pub async fn run(
    config: Config,
    hosted: HostedSet,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    Server::bind(config).await?.run(hosted, shutdown).await
}

fn http1_builder(limits: &Limits) -> http1::Builder {
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(limits.request_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        // hyper needs at least 8 KiB of read buffer; the head limit above is what binds.
        .max_buf_size(limits.max_header_bytes.max(8192) + 1024);
    b
}

fn http2_builder(limits: &Limits) -> http2::Builder<TokioExecutor> {
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_accept_reset_streams)
        .max_local_error_reset_streams(limits.h2_max_local_error_reset_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    b
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, kind: Kind, grace: Duration) {
    let mut stop = shared.stop.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match shared.tracker.admit(peer.ip()) {
                    Ok(admitted) => {
                        conns.spawn(connection(stream, admitted, Arc::clone(&shared), kind));
                    }
                    Err(why) => {
                        metrics::counter!("mtasts_serve_connections_refused_total", "limit" => why.label())
                            .increment(1);
                        tracing::debug!(%peer, limit = why.label(), "connection refused");
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: wait for connections to close.
                    tracing::warn!(error = %e, "accept failed");
                    sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let deadline = sleep(grace);
    let mut deadline = pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                tracing::info!(left = conns.len(), "grace time over, dropping connections");
                conns.abort_all();
                while conns.join_next().await.is_some() {}
                break;
            }
            next = conns.join_next() => if next.is_none() { break },
        }
    }
}

/// One connection: served until it ends, idles out, or is closed to make room.
async fn connection(stream: TcpStream, admitted: Admitted, shared: Arc<Shared>, kind: Kind) {
    let _ = stream.set_nodelay(true);
    let slot = Arc::clone(&admitted.slot);
    let work = async {
        match kind {
            Kind::Https => serve_https(stream, &shared, &slot).await,
            Kind::Http => serve_http(stream, &shared, &slot).await,
        }
    };
    tokio::select! {
        () = work => {}
        () = slot.evicted() => tracing::debug!("connection closed to make room"),
        () = idle(&slot, shared.limits.idle_timeout) => {
            metrics::counter!("mtasts_serve_connections_idle_closed_total").increment(1);
        }
    }
    drop(admitted);
}

/// Resolves once no request has been answered for `limit`.
async fn idle(slot: &Slot, limit: Duration) {
    loop {
        let due = slot.last_active() + limit;
        if Instant::now() >= due {
            return;
        }
        sleep_until(due).await;
    }
}

fn handshake_failed(reason: &'static str) {
    metrics::counter!("mtasts_serve_tls_handshakes_failed_total", "reason" => reason).increment(1);
}

/// The TLS handshake: the ClientHello first (the hook sees it), then the configuration chosen.
async fn handshake(
    stream: TcpStream,
    shared: &Shared,
) -> std::io::Result<(tokio_rustls::server::TlsStream<TcpStream>, bool)> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let lookup = shared
        .tls_hook
        .as_ref()
        .and_then(|h| h.config_for(&start.client_hello()));
    let hooked = match lookup {
        Some(found) => found.await,
        None => None,
    };
    let is_hooked = hooked.is_some();
    let config = hooked.unwrap_or_else(|| Arc::clone(&shared.tls));
    let tls = start.into_stream(config).await?;
    Ok((tls, is_hooked))
}

async fn serve_https(stream: TcpStream, shared: &Shared, slot: &Arc<Slot>) {
    // Each phase in its own allocation, made when the phase starts and freed when it ends: a
    // client that has sent nothing yet holds no TLS state (rustls alone reserves 4 KiB to read),
    // an idle one only the state of the phase it is in.
    let handshake = async {
        // `readable()` may report a fresh socket ready before anything came (a false positive
        // it documents); a peek waits until a byte, or the end, is really there.
        stream.peek(&mut [0u8; 1]).await?;
        Box::pin(handshake(stream, shared)).await
    };
    let (tls, hooked) = match timeout(shared.limits.handshake_timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            handshake_failed("error");
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            handshake_failed("timeout");
            return;
        }
    };
    if hooked {
        return;
    }
    let conn = tls.get_ref().1;
    let Some(sni) = conn.server_name().map(Arc::<str>::from) else {
        return; // cannot happen: the resolver refuses a ClientHello without SNI
    };
    let h2 = conn.alpn_protocol() == Some(b"h2");
    slot.touch();
    let hosted = shared.hosted.clone();
    let max_headers = shared.limits.max_headers;
    let touched = Arc::clone(slot);
    let sink = shared.report_sink.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        touched.touch();
        if let Some(sink) = &sink
            && req.headers().len() <= max_headers
            && for_sink(&req, &sni, sink.as_ref())
        {
            let answer = sink.receive(Arc::clone(&sni), req);
            return Either::Right(async move { Ok::<_, Infallible>(answer.await) });
        }
        Either::Left(ready(Ok::<_, Infallible>(policy_response(
            &req,
            &sni,
            &hosted,
            max_headers,
        ))))
    });
    let io = TokioIo::new(tls);
    let stop = shared.stop.clone();
    if h2 {
        let conn = shared.h2.serve_connection(io, service);
        Box::pin(drive(conn, stop, |c| c.graceful_shutdown())).await;
    } else {
        let conn = shared.h1.serve_connection(io, service);
        Box::pin(drive(conn, stop, |c| c.graceful_shutdown())).await;
    }
}

async fn serve_http(stream: TcpStream, shared: &Shared, slot: &Arc<Slot>) {
    let challenges = shared.challenges.clone();
    let max_headers = shared.limits.max_headers;
    let touched = Arc::clone(slot);
    let service = service_fn(move |req| {
        touched.touch();
        let challenges = challenges.clone();
        async move { Ok::<_, Infallible>(plain_response(req, challenges, max_headers).await) }
    });
    let conn = shared.h1.serve_connection(TokioIo::new(stream), service);
    Box::pin(drive(conn, shared.stop.clone(), |c| c.graceful_shutdown())).await;
}

/// Resolves when the stop is signalled (or nobody can signal it any more).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs a hyper connection; when the stop comes, asks it to finish gracefully and waits.
async fn drive<C, E>(conn: C, mut stop: watch::Receiver<bool>, graceful: impl FnOnce(Pin<&mut C>))
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut conn = pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            graceful(conn.as_mut());
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
