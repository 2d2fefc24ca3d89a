//! The answers: one lookup per request, pre-rendered bytes out.
//!
//! On the HTTPS listener, for a connection whose SNI named `mta-sts.<domain>`:
//! - the `Host` (HTTP/1.1) or `:authority` (HTTP/2), port ignored, must be that same name, or
//!   the answer is 421 Misdirected Request (RFC 9110 §15.5.20): a client cannot use one
//!   domain's certificate to ask for another's policy;
//! - `GET` or `HEAD /.well-known/mta-sts.txt` answers 200 with the canonical policy text,
//!   `Content-Type: text/plain; charset=utf-8` and `Cache-Control: no-store`;
//! - another method on that path answers 405 with `Allow: GET, HEAD`; any other path 404.
//!
//! `Cache-Control: no-store` because RFC 8461 §3.3 forbids senders to use HTTP caching for the
//! policy, and a shared cache between us and a sender could only serve a policy older than the
//! id the DNS record announces; senders cache the policy themselves for its `max_age`.
//!
//! On the HTTP listener (port 80) every request answers 404, except what a
//! [`ChallengeResponder`] answers (ACME HTTP-01, `crate::acme::Challenges`).

use crate::hosted::HostedSet;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The one path served on policy hosts (RFC 8461 §3.3).
pub const POLICY_PATH: &str = "/.well-known/mta-sts.txt";

/// The `Content-Type` of a policy.
pub const POLICY_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The `Cache-Control` of a policy (see the module docs).
pub const POLICY_CACHE_CONTROL: &str = "no-store";

/// The response body type of both listeners.
pub type Body = Full<Bytes>;

/// What a [`ChallengeResponder`] answers with: the body, or `None` for 404.
pub type ChallengeFuture = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// Answers ACME HTTP-01 challenges on the HTTP listener ([`crate::acme::Challenges`]).
pub trait ChallengeResponder: Send + Sync + 'static {
    /// `None` at once (404) when `GET http://<host><path>` is no challenge request this
    /// responder could answer; otherwise the future that finds the body.
    fn respond(&self, host: &str, path: &str) -> Option<ChallengeFuture>;
}

/// What a [`ReportSink`] answers with.
pub type SinkFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// Receives TLS-RPT reports `POST`ed on the HTTPS listener (RFC 8460 §3, `rua=https:`) at one
/// path of the policy hosts (`crate::report_sink::HttpsIntake`).
pub trait ReportSink: Send + Sync + 'static {
    /// The path it answers (`/tlsrpt`).
    fn path(&self) -> &str;
    /// Answers a request for [`ReportSink::path`] on host `host` (the SNI name, which the
    /// `Host` matched): reads the body within its limits, stores what it holds, and says so.
    fn receive(&self, host: Arc<str>, req: Request<hyper::body::Incoming>) -> SinkFuture;
}

/// `true` when `req` is for the sink: its path, on the host the connection's SNI named.
pub(crate) fn for_sink<B>(req: &Request<B>, sni: &str, sink: &dyn ReportSink) -> bool {
    let sni = sni.strip_suffix('.').unwrap_or(sni);
    req.uri().path() == sink.path()
        && request_host(req).is_some_and(|h| h.eq_ignore_ascii_case(sni))
}

fn status(code: StatusCode) -> Response<Body> {
    let label = match code.as_u16() {
        404 => "404",
        405 => "405",
        421 => "421",
        431 => "431",
        _ => "other",
    };
    metrics::counter!("mtasts_serve_requests_total", "status" => label).increment(1);
    let mut r = Response::new(Body::default());
    *r.status_mut() = code;
    r
}

/// The host a request names: the URI authority (HTTP/2, absolute-form) or the `Host` header,
/// without the port.
fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let host = match req.uri().authority() {
        Some(a) => a.host(),
        None => {
            let h = req.headers().get(HOST)?.to_str().ok()?;
            match h.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                _ => h,
            }
        }
    };
    Some(host.strip_suffix('.').unwrap_or(host))
}

/// The answer on the HTTPS listener to a request on a connection whose SNI was `sni`.
pub(crate) fn policy_response<B>(
    req: &Request<B>,
    sni: &str,
    hosted: &HostedSet,
    max_headers: usize,
) -> Response<Body> {
    if req.headers().len() > max_headers {
        return status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let sni = sni.strip_suffix('.').unwrap_or(sni);
    if !request_host(req).is_some_and(|h| h.eq_ignore_ascii_case(sni)) {
        return status(StatusCode::MISDIRECTED_REQUEST);
    }
    if req.uri().path() != POLICY_PATH {
        return status(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    // None: removed since the handshake, or a service host (no policy).
    let Some(body) = hosted.guard().get(sni).and_then(|e| e.body.clone()) else {
        return status(StatusCode::NOT_FOUND);
    };
    metrics::counter!("mtasts_serve_requests_total", "status" => "200").increment(1);
    let length = HeaderValue::from(body.len());
    // HEAD: no body, the length of the one GET would get (hyper's HTTP/2 side would send it).
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        body
    };
    let mut r = Response::new(Full::new(body));
    let h = r.headers_mut();
    h.insert(CONTENT_LENGTH, length);
    h.insert(CONTENT_TYPE, HeaderValue::from_static(POLICY_CONTENT_TYPE));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static(POLICY_CACHE_CONTROL),
    );
    r
}

/// The answer on the HTTP listener.
pub(crate) async fn plain_response<B>(
    req: Request<B>,
    challenges: Option<Arc<dyn ChallengeResponder>>,
    max_headers: usize,
) -> Response<Body> {
    if req.headers().len() > max_headers {
        return status(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let lookup = match (challenges, request_host(&req)) {
        (Some(c), Some(host)) if req.method() == Method::GET => c.respond(host, req.uri().path()),
        _ => None,
    };
    let answer = match lookup {
        Some(found) => found.await,
        None => None,
    };
    match answer {
        Some(body) => {
            metrics::counter!("mtasts_serve_requests_total", "status" => "200").increment(1);
            let mut r = Response::new(Full::new(body));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r
        }
        None => status(StatusCode::NOT_FOUND),
    }
}
