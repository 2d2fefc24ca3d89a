//! Scripted HTTPS policy hosts on loopback: one canned response for any path (a policy, an error
//! status, a redirect, an HTML page, a slow answer), changeable while the host runs.
//!
//! The host speaks HTTP/1.1 through hyper's server connection over tokio-rustls, with whatever
//! `rustls::ServerConfig` the test gives it (see `pki`). It records the last request it saw
//! ([`PolicyHost::last_request`]) so tests can check what a client sent. Everything is bounded:
//! header size and count, the time to read a request head, connections at once, and each
//! connection's lifetime.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HOST, USER_AGENT};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use crate::oldtls::OldTls;

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 64;
/// The longest a connection may live (TLS handshake, request, delay, response).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// The time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The time a client has to send a request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head read.
const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The most request headers read.
const MAX_REQUEST_HEADERS: usize = 64;

/// The response the host gives to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, sent in order (hyper adds `Content-Length` and `Date`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How long to wait after reading the request before answering.
    pub delay: Option<Duration>,
}

impl HttpResponse {
    /// 200 with `Content-Type: text/plain; charset=utf-8` and `text` as the body.
    pub fn policy(text: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: text.into(),
            delay: None,
        }
    }

    /// `code` with no body and no `Content-Type`.
    pub fn status(code: u16) -> Self {
        Self {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
            delay: None,
        }
    }

    /// 301 with `Location: location` and a short HTML body, as web servers send.
    pub fn redirect(location: &str) -> Self {
        Self {
            status: 301,
            headers: vec![
                ("Location".into(), location.into()),
                ("Content-Type".into(), "text/html".into()),
            ],
            body: b"<html><body>Moved Permanently</body></html>\n".to_vec(),
            delay: None,
        }
    }

    /// 200 with `Content-Type: text/html; charset=utf-8` and `body` (an error page or a login
    /// wall served in place of the policy).
    pub fn html(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into(),
            delay: None,
        }
    }

    /// A bot-protection challenge as Cloudflare serves it to clients it takes for bots: 403,
    /// `Server: cloudflare`, `cf-mitigated: challenge`, and an HTML "Just a moment..." page
    /// that loads the challenge script.
    pub fn bot_challenge() -> Self {
        Self {
            status: 403,
            headers: vec![
                ("Content-Type".into(), "text/html; charset=UTF-8".into()),
                ("Server".into(), "cloudflare".into()),
                ("cf-mitigated".into(), "challenge".into()),
                ("Cache-Control".into(), "private, max-age=0, no-store".into()),
            ],
            body: b"<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head><body><noscript>Enable JavaScript and cookies to continue</noscript><script>window._cf_chl_opt={cType:'managed'};</script><script src=\"/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1\"></script></body></html>\n".to_vec(),
            delay: None,
        }
    }

    /// The same response, answered after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The same response with header `name` set to `value` (replacing any of that name,
    /// case-insensitively).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same response without header `name` (case-insensitive).
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }
}

/// What the host saw of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// `GET`, …
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// `HTTP/1.1`, …
    pub version: String,
    /// The `Host` header.
    pub host: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Every header, in order, names lower case (values with invalid UTF-8 replaced).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug)]
struct Shared {
    response: Mutex<HttpResponse>,
    last: Mutex<Option<SeenRequest>>,
    requests: AtomicUsize,
}

/// A running policy host. Stops when dropped.
#[derive(Debug)]
pub struct PolicyHost {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl PolicyHost {
    /// Starts a host on `addr` (port 0 picks a free one) with TLS configuration `tls`,
    /// answering every request with `response`.
    pub async fn start(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        response: HttpResponse,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            response: Mutex::new(response),
            last: Mutex::new(None),
            requests: AtomicUsize::new(0),
        });
        let acceptor = TlsAcceptor::from(tls);
        let task = {
            let shared = Arc::clone(&shared);
            accept_loop(listener, move |stream| {
                serve(stream, acceptor.clone(), Arc::clone(&shared))
            })
        };
        Ok(Self { addr, shared, task })
    }

    /// Starts a host on `addr` that knows nothing newer than TLS 1.0: it answers every
    /// ClientHello as `old` says and never gets to HTTP (it records no request).
    pub async fn start_old_tls(addr: SocketAddr, old: OldTls) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            response: Mutex::new(HttpResponse::status(500)),
            last: Mutex::new(None),
            requests: AtomicUsize::new(0),
        });
        let task = accept_loop(listener, move |mut stream| async move {
            let _ = crate::oldtls::answer(&mut stream, old).await;
        });
        Ok(Self { addr, shared, task })
    }

    /// The address the host listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers later requests with `response`.
    pub fn set_response(&self, response: HttpResponse) {
        *lock(&self.shared.response) = response;
    }

    /// The last request seen (its head is recorded before any delay).
    pub fn last_request(&self) -> Option<SeenRequest> {
        lock(&self.shared.last).clone()
    }

    /// How many requests the host has seen.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::Relaxed)
    }
}

impl Drop for PolicyHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections, at most [`MAX_CONNECTIONS`] at once, each served by `serve` within
/// [`CONNECTION_LIFETIME`].
fn accept_loop<F, Fut>(listener: TcpListener, serve: F) -> JoinHandle<()>
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let conn = serve(stream);
            tokio::spawn(async move {
                let _permit = permit;
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
            });
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(stream: tokio::net::TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let service = service_fn(move |req: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(answer(&shared, &req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_HEAD)
        .max_headers(MAX_REQUEST_HEADERS)
        .keep_alive(false)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn answer(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let text = |v: &hyper::header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    let seen = SeenRequest {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), ToString::to_string),
        version: format!("{:?}", req.version()),
        host: req.headers().get(HOST).map(text),
        user_agent: req.headers().get(USER_AGENT).map(text),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), text(v)))
            .collect(),
    };
    *lock(&shared.last) = Some(seen);
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let response = lock(&shared.response).clone();
    if let Some(delay) = response.delay {
        tokio::time::sleep(delay).await;
    }
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(Bytes::from(response.body)))
        .unwrap_or_else(|e| {
            let mut r = Response::new(Full::new(Bytes::from(format!(
                "testnet: bad scripted response: {e}\n"
            ))));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

/// What [`post`] got back: the status and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The HTTP status.
    pub status: u16,
    /// The response body.
    pub body: Vec<u8>,
}

/// A sender's client configuration: the ring provider, TLS 1.3 and 1.2, trusting `roots`.
///
/// # Panics
/// Never: ring supports both versions.
pub fn client_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.3 and 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// `POST path` over TLS to `addr`, with SNI and `Host` `host`, trusting `roots`, the body
/// `body` with `Content-Type: content_type`, all within `timeout`: a sender delivering a
/// TLS-RPT report (`rua=https:`). `Err` says what failed (refused, reset, timed out).
///
/// # Errors
/// The connection, handshake or exchange failed, or took longer than `timeout`.
pub async fn post(
    addr: SocketAddr,
    host: &str,
    roots: rustls::RootCertStore,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Posted, String> {
    post_with(
        addr,
        host,
        client_config(roots),
        path,
        content_type,
        body,
        timeout,
    )
    .await
}

/// [`post`] with a client configuration of the caller's (a load generator shares one).
///
/// # Errors
/// The connection, handshake or exchange failed, or took longer than `timeout`.
pub async fn post_with(
    addr: SocketAddr,
    host: &str,
    config: Arc<rustls::ClientConfig>,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Posted, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let name =
            rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(hyper::Method::POST)
            .uri(path)
            .header(HOST, host)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let rsp = send
            .send_request(req)
            .await
            .map_err(|e| format!("exchange: {e}"))?;
        let status = rsp.status().as_u16();
        let body = http_body_util::BodyExt::collect(rsp.into_body())
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes()
            .to_vec();
        Ok(Posted { status, body })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}
