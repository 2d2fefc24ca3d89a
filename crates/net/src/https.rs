//! The HTTPS policy fetch (RFC 8461 §3.3): `GET https://mta-sts.<domain>/.well-known/mta-sts.txt`.
//!
//! One request over one connection, built by hand on hyper's client connection so that nothing
//! is hidden: no redirects are followed (a 3xx is recorded with its `Location`), no cache, no
//! proxy, no pool. The TLS handshake goes through the recording verifier ([`tls_connect`]), so a
//! bad certificate does not stop the fetch: the status and body are still recorded, and the
//! verdict in [`PolicyFetch::tls`] says whether a sender would have accepted them.
//!
//! The fetch never fails: [`fetch_policy`] returns what it observed and, when a step failed,
//! which step and why ([`FetchFailure`]). The whole fetch runs under
//! [`FetchSettings::timeout`] (DECISIONS D14: 15 s for the checker) and reads at most
//! [`FetchSettings::max_body`] bytes of body.

use crate::dns::{DnsError, Lookup, Resolver};
use crate::tls::{CertVerdict, TlsError, TlsObservation, TlsProbeConfig, tls_connect};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{
    ACCEPT, CONNECTION, CONTENT_TYPE, HOST, HeaderName, LOCATION, SERVER, USER_AGENT,
};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The body-size cap RFC 8461 §3.3 suggests (64 KB).
pub const MAX_POLICY_BODY: usize = 64 * 1024;

/// The path every policy lives at.
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// The `User-Agent` sent with the request: a tool's name, like the sending MTAs' resolvers
/// send (or none at all), never a browser's, so that the fetch meets the bot protection a sender
/// meets.
pub const USER_AGENT_VALUE: &str =
    concat!("mtasts/", env!("CARGO_PKG_VERSION"), " (MTA-STS checker)");

/// How much of the body of a non-200 answer is kept ([`PolicyFetch::error_body`]): enough to
/// recognise an error page or a bot challenge.
pub const ERROR_BODY_PEEK: usize = 4 * 1024;

/// The longest the body of a non-200 answer is read for.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(1);

/// The largest response head (status line and headers) accepted.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most response headers accepted.
const MAX_HEADERS: usize = 100;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// The HTTPS port (443; tests use another).
    pub port: u16,
    /// The budget for the whole fetch: DNS, connect, TLS, request, body.
    pub timeout: Duration,
    /// The largest body accepted; one byte more is [`FetchFailure::BodyTooLarge`].
    pub max_body: usize,
}

impl Default for FetchSettings {
    /// Port 443, 15 s (the checker's budget, DECISIONS D14), [`MAX_POLICY_BODY`].
    fn default() -> Self {
        Self {
            port: 443,
            timeout: Duration::from_secs(15),
            max_body: MAX_POLICY_BODY,
        }
    }
}

/// What one policy fetch observed.
#[derive(Debug)]
pub struct PolicyFetch {
    /// `https://mta-sts.<domain>/.well-known/mta-sts.txt`.
    pub url: String,
    /// `mta-sts.<domain>`: the host name resolved, sent as SNI and `Host`, and checked in the
    /// certificate.
    pub host: String,
    /// The addresses A and AAAA returned (A first), or the ones given to
    /// [`fetch_policy_at`].
    pub addresses: Vec<IpAddr>,
    /// The address whose TLS handshake completed (the response came from it).
    pub addr: Option<SocketAddr>,
    /// The TLS handshake, when one completed; the certificate verdict is inside.
    pub tls: Option<TlsObservation>,
    /// The HTTP status code, when a response head arrived.
    pub status: Option<u16>,
    /// The raw `Content-Type` header value (invalid UTF-8 replaced).
    pub content_type: Option<String>,
    /// The `Location` header of a 3xx response (never followed, RFC 8461 §3.3).
    pub location: Option<String>,
    /// The `Server` header (e.g. `cloudflare`), to recognise a bot wall.
    pub server: Option<String>,
    /// The `cf-mitigated` header (`challenge` when Cloudflare answered with a bot challenge).
    pub cf_mitigated: Option<String>,
    /// For a status other than 200 and 3xx: the first [`ERROR_BODY_PEEK`] bytes of the body (an
    /// error page, a bot challenge), read within the time budget.
    pub error_body: Option<Vec<u8>>,
    /// The body, only for status 200 and only when within [`FetchSettings::max_body`].
    pub body: Option<Vec<u8>>,
    /// For status 200: the body length read, or how far reading got before the cap or the
    /// failure.
    pub bytes: Option<usize>,
    /// The step that failed, if any.
    pub failure: Option<FetchFailure>,
}

impl PolicyFetch {
    fn new(domain: &str) -> Self {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let host = format!("mta-sts.{domain}");
        Self {
            url: format!("https://{host}{POLICY_PATH}"),
            host,
            addresses: Vec::new(),
            addr: None,
            tls: None,
            status: None,
            content_type: None,
            location: None,
            server: None,
            cf_mitigated: None,
            error_body: None,
            body: None,
            bytes: None,
            failure: None,
        }
    }

    /// Status 200, a body within the cap, a valid certificate, no failure: a sender would
    /// accept this body as the policy (whether it parses is the caller's question).
    pub fn is_ok(&self) -> bool {
        self.failure.is_none()
            && self.status == Some(200)
            && self.body.is_some()
            && self
                .tls
                .as_ref()
                .is_some_and(|t| t.verdict == CertVerdict::Valid)
    }

    /// Whether the media type is `text/plain` (case-insensitive, parameters ignored, DECISIONS
    /// D15); `None` when no `Content-Type` header came.
    pub fn content_type_is_text_plain(&self) -> Option<bool> {
        let value = self.content_type.as_deref()?;
        let media_type = value.split(';').next().unwrap_or("").trim();
        Some(media_type.eq_ignore_ascii_case("text/plain"))
    }
}

/// Why a fetch did not produce a complete response.
#[derive(Debug)]
#[non_exhaustive]
pub enum FetchFailure {
    /// The A or AAAA lookup failed (SERVFAIL, timeout) and gave no address.
    Dns(DnsError),
    /// The host has neither A nor AAAA (NXDOMAIN or NODATA).
    NoAddress,
    /// The TCP connection was refused or could not be made.
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// The socket error.
        error: std::io::Error,
    },
    /// The TCP connection did not complete in time.
    ConnectTimeout {
        /// The address tried.
        addr: SocketAddr,
    },
    /// The TLS handshake did not complete (certificate problems are not here: they are the
    /// verdict in [`PolicyFetch::tls`]).
    Tls {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        error: TlsError,
    },
    /// The HTTP exchange failed: a malformed response, the connection closed early, …
    Http {
        /// What happened, with the address.
        message: String,
    },
    /// The whole fetch exceeded [`FetchSettings::timeout`].
    Timeout,
    /// The body is longer than [`FetchSettings::max_body`].
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },
}

impl FetchFailure {
    /// True when the policy host could not be tested at all (DNS failure, no connection, no
    /// answer in time) — "could not test", not "the host is wrong".
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Dns(_) | Self::Connect { .. } | Self::ConnectTimeout { .. } | Self::Timeout
        )
    }
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(e) => write!(f, "cannot resolve the policy host: {e}"),
            Self::NoAddress => f.write_str("the policy host has no A or AAAA record"),
            Self::Connect { addr, error } => {
                write!(f, "cannot connect to {addr}: {}", io_error_text(error))
            }
            Self::ConnectTimeout { addr } => write!(f, "no TCP connection to {addr} in time"),
            Self::Tls { addr, error } => write!(f, "TLS with {addr}: {error}"),
            Self::Http { message } => write!(f, "HTTP: {message}"),
            Self::Timeout => f.write_str("the policy fetch did not finish within its time budget"),
            Self::BodyTooLarge { limit } => {
                write!(f, "the policy body is larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for FetchFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Dns(e) => Some(e),
            Self::Connect { error, .. } => Some(error),
            Self::Tls { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// `connection refused` rather than `Connection refused (os error 111)` for the common cases.
fn io_error_text(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        k @ (K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::AddrNotAvailable
        | K::TimedOut) => k.to_string(),
        _ => e.to_string(),
    }
}

/// Fetches the policy of `domain`: resolves `mta-sts.<domain>` (A, then AAAA), then runs
/// [`fetch_policy_at`] on the addresses, all within `settings.timeout`.
///
/// When one lookup fails and the other gives addresses, the fetch goes on with those; only
/// when no address came back is a lookup failure reported ([`FetchFailure::Dns`]).
pub async fn fetch_policy(
    domain: &str,
    resolver: &Resolver,
    tls: &TlsProbeConfig,
    settings: &FetchSettings,
) -> PolicyFetch {
    let deadline = Instant::now() + settings.timeout;
    let mut fetch = PolicyFetch::new(domain);
    let lookups = async { tokio::join!(resolver.a(&fetch.host), resolver.aaaa(&fetch.host)) };
    let Ok((a, aaaa)) = tokio::time::timeout_at(deadline, lookups).await else {
        fetch.failure = Some(FetchFailure::Timeout);
        return fetch;
    };
    let mut error = None;
    for lookup in [a, aaaa] {
        match lookup {
            Ok(Lookup::Records { records, .. }) => fetch.addresses.extend(records),
            Ok(Lookup::NoData | Lookup::NxDomain) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    if fetch.addresses.is_empty() {
        fetch.failure = Some(error.map_or(FetchFailure::NoAddress, FetchFailure::Dns));
        return fetch;
    }
    run(&mut fetch, tls, settings, deadline).await;
    fetch
}

/// [`fetch_policy`] against given addresses (no DNS): for tests, and for overriding where the
/// policy host is reached. The host name (SNI, `Host`, certificate) is still
/// `mta-sts.<domain>`.
pub async fn fetch_policy_at(
    domain: &str,
    addrs: &[IpAddr],
    tls: &TlsProbeConfig,
    settings: &FetchSettings,
) -> PolicyFetch {
    let deadline = Instant::now() + settings.timeout;
    let mut fetch = PolicyFetch::new(domain);
    fetch.addresses = addrs.to_vec();
    if addrs.is_empty() {
        fetch.failure = Some(FetchFailure::NoAddress);
        return fetch;
    }
    run(&mut fetch, tls, settings, deadline).await;
    fetch
}

/// Aborts the spawned hyper connection task when the fetch ends (or is dropped on timeout).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the addresses in order until a TLS handshake completes, then runs the request.
async fn run(
    fetch: &mut PolicyFetch,
    tls: &TlsProbeConfig,
    settings: &FetchSettings,
    deadline: Instant,
) {
    let connected = connect_tls(
        &fetch.host,
        &fetch.addresses,
        settings.port,
        tls,
        settings.timeout,
        deadline,
    )
    .await;
    let (stream, addr, observation) = match connected {
        Ok(c) => c,
        Err(failure) => {
            fetch.failure = Some(failure);
            return;
        }
    };
    fetch.addr = Some(addr);
    fetch.tls = Some(observation);
    if tokio::time::timeout_at(deadline, exchange(fetch, stream, addr, settings))
        .await
        .is_err()
    {
        fetch.failure = Some(FetchFailure::Timeout);
    }
}

/// A TLS connection to `host` and what its handshake showed.
pub(crate) type Connected = (
    tokio_rustls::client::TlsStream<TcpStream>,
    SocketAddr,
    TlsObservation,
);

/// Connects to `addresses` (on `port`) in order until a TLS handshake with `host` completes,
/// before `deadline`. An address that is not the last gets at most a third of `timeout` for
/// connect and handshake, so one black hole does not eat the time of the others. The error is
/// the failure of the last address tried, or [`FetchFailure::Timeout`].
pub(crate) async fn connect_tls(
    host: &str,
    addresses: &[IpAddr],
    port: u16,
    tls: &TlsProbeConfig,
    timeout: Duration,
    deadline: Instant,
) -> Result<Connected, FetchFailure> {
    let per_address = timeout / 3;
    let mut failure = FetchFailure::NoAddress;
    for (i, ip) in addresses.iter().enumerate() {
        let addr = SocketAddr::new(*ip, port);
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(FetchFailure::Timeout);
        }
        let budget = if i + 1 == addresses.len() {
            remaining
        } else {
            remaining.min(per_address)
        };
        let started = Instant::now();
        let tcp = match tokio::time::timeout(budget, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(error)) => {
                failure = FetchFailure::Connect { addr, error };
                continue;
            }
            Err(_) => {
                failure = FetchFailure::ConnectTimeout { addr };
                continue;
            }
        };
        let budget = budget.saturating_sub(started.elapsed());
        match tls_connect(tcp, host, tls, budget).await {
            Ok((s, observation)) => return Ok((s, addr, observation)),
            Err(TlsError::Timeout(_)) if Instant::now() >= deadline => {
                return Err(FetchFailure::Timeout);
            }
            Err(error) => failure = FetchFailure::Tls { addr, error },
        }
    }
    Err(failure)
}

/// `GET /.well-known/mta-sts.txt` over the TLS stream; records the response into `fetch`.
async fn exchange(
    fetch: &mut PolicyFetch,
    stream: tokio_rustls::client::TlsStream<TcpStream>,
    addr: SocketAddr,
    settings: &FetchSettings,
) {
    let http_error = |what: &str, e: &hyper::Error| FetchFailure::Http {
        message: format!("{what} {addr}: {}", error_chain(e)),
    };
    let handshake = hyper::client::conn::http1::Builder::new()
        .max_header_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await;
    let (mut sender, conn) = match handshake {
        Ok(parts) => parts,
        Err(e) => {
            fetch.failure = Some(http_error("cannot start HTTP/1.1 with", &e));
            return;
        }
    };
    // The connection task ends with the response (Connection: close) or when the fetch ends.
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = Request::builder()
        .method(Method::GET)
        .uri(POLICY_PATH)
        .header(HOST, &fetch.host)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(ACCEPT, "text/plain")
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            // Only an invalid host name gets here (it is a header value).
            fetch.failure = Some(FetchFailure::Http {
                message: format!("cannot build the request for {}: {e}", fetch.host),
            });
            return;
        }
    };
    let response = match sender.send_request(request).await {
        Ok(r) => r,
        Err(e) => {
            fetch.failure = Some(http_error("no valid response from", &e));
            return;
        }
    };
    let status = response.status().as_u16();
    fetch.status = Some(status);
    let header = |name: HeaderName| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    fetch.content_type = header(CONTENT_TYPE);
    fetch.server = header(SERVER);
    fetch.cf_mitigated = header(HeaderName::from_static("cf-mitigated"));
    if response.status().is_redirection() {
        fetch.location = header(LOCATION);
        return;
    }
    let mut body = response.into_body();
    if status != 200 {
        fetch.error_body = Some(peek(&mut body).await);
        return;
    }
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                fetch.bytes = Some(buf.len());
                fetch.failure = Some(http_error("reading the body from", &e));
                return;
            }
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > settings.max_body {
            let take = settings.max_body + 1 - buf.len();
            fetch.bytes = Some(buf.len() + take);
            fetch.failure = Some(FetchFailure::BodyTooLarge {
                limit: settings.max_body,
            });
            return;
        }
        buf.extend_from_slice(&data);
        fetch.bytes = Some(buf.len()); // progress, should the budget run out mid-body
    }
    fetch.bytes = Some(buf.len());
    fetch.body = Some(buf);
}

/// Up to [`ERROR_BODY_PEEK`] bytes of `body`, read for at most [`ERROR_BODY_WAIT`]; a read
/// error or the end of that time ends the peek with what came (a slow error page must not turn
/// a clear status into a timeout).
async fn peek(body: &mut hyper::body::Incoming) -> Vec<u8> {
    let until = Instant::now() + ERROR_BODY_WAIT;
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_PEEK {
        let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, body.frame()).await else {
            break;
        };
        if let Ok(data) = frame.into_data() {
            let take = data.len().min(ERROR_BODY_PEEK - buf.len());
            buf.extend_from_slice(&data[..take]);
        }
    }
    buf
}

/// `error: cause: cause …`, as hyper's own Display leaves the causes out.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
