//! A client of the admin API, for `mtasts domain ... --server URL` (through [`crate::ops::Target`]).
//!
//! One request per connection (the CLI makes one or two), HTTP/1.1 over our rustls with ring:
//! the Mozilla roots (webpki-roots) plus an optional CA (`--server-ca`, e.g. a private CA for the
//! admin certificate). `http://` is accepted only for a loopback address, like the server's
//! plain mode. Answers are JSON values (the documented shapes, docs/openapi.json); an error
//! answer becomes [`ClientError::Api`] with its stable `code`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;

use crate::domains::normalize_domain;

/// Largest answer read (a list of 10,000 domains is about 10 MB).
const MAX_ANSWER: usize = 64 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL is not `https://HOST[:PORT]` (or `http://` on loopback).
    #[error(
        "admin server URL {0:?}: expected https://HOST[:PORT] (http:// only on a loopback address)"
    )]
    Url(String),
    /// The CA file is not PEM certificates.
    #[error("CA certificates: {0}")]
    Ca(String),
    /// The server could not be reached.
    #[error("cannot reach the admin server: {0}")]
    Connect(String),
    /// The call took longer than the timeout.
    #[error(
        "the admin server did not answer within {0:?}; a change may still have been applied: read it back (domain show) before trying again"
    )]
    Timeout(Duration),
    /// The answer was not the JSON expected.
    #[error("unexpected answer from the admin server: {0}")]
    Answer(String),
    /// The server answered with an error.
    #[error("{message} ({status} {code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// The message.
        message: String,
        /// The details, when any (blockers, unexplained hosts, safe_at).
        details: Option<Value>,
    },
}

/// A client for one admin server and token.
#[derive(Clone)]
pub struct AdminClient {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    token: String,
    /// Time for a whole call. Default 45 s: longer than the server's default `request_timeout`
    /// (30 s), so the server's own answer (503, "may still be applied") arrives first.
    pub timeout: Duration,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for `url` with `token`; `ca_pem` adds trusted CA certificates.
    ///
    /// # Errors
    /// [`ClientError::Url`], [`ClientError::Ca`].
    pub fn new(url: &str, token: &str, ca_pem: Option<&str>) -> Result<Self, ClientError> {
        let bad = || ClientError::Url(url.chars().take(200).collect());
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = match authority.parse::<SocketAddr>() {
            Ok(a) => (a.ip().to_string(), a.port()),
            Err(_) => match authority.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), if tls { 443 } else { 80 }),
                Some(_) => return Err(bad()),
            },
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !tls && !loopback {
            return Err(bad());
        }
        let tls = if tls {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(pem) = ca_pem {
                let mut added = 0;
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| ClientError::Ca(e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| ClientError::Ca(e.to_string()))?;
                    added += 1;
                }
                if added == 0 {
                    return Err(ClientError::Ca("no CERTIFICATE block".into()));
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                .map_err(|e| ClientError::Ca(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(config))
        } else {
            None
        };
        Ok(Self {
            host,
            port,
            tls,
            token: token.to_owned(),
            timeout: Duration::from_secs(45),
        })
    }

    /// One call: `method path` with an optional JSON body; the JSON answer.
    ///
    /// # Errors
    /// Every [`ClientError`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        tokio::time::timeout(self.timeout, self.call_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let connect = |e: &dyn std::fmt::Display| ClientError::Connect(e.to_string());
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| connect(&e))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| connect(&e))?;
        let resp = match &self.tls {
            Some(config) => {
                let name = ServerName::try_from(self.host.clone()).map_err(|e| connect(&e))?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| connect(&e))?;
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| connect(&e))?;
                tokio::spawn(conn);
                send.send_request(req).await.map_err(|e| connect(&e))?
            }
            None => {
                let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(|e| connect(&e))?;
                tokio::spawn(conn);
                send.send_request(req).await.map_err(|e| connect(&e))?
            }
        };
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| ClientError::Answer(e.to_string()))?
            .to_bytes();
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Answer(e.to_string()))?;
        if status.is_success() {
            return Ok(value);
        }
        let err = &value["error"];
        Err(ClientError::Api {
            status: status.as_u16(),
            code: err["code"].as_str().unwrap_or("unknown").to_owned(),
            message: err["message"].as_str().unwrap_or("").to_owned(),
            details: err.get("details").cloned(),
        })
    }

    /// The path of `domain`'s resource (normalised, so it is one safe path segment).
    ///
    /// # Errors
    /// [`ClientError::Api`] with code `invalid` for a malformed name (checked locally).
    pub fn domain_path(domain: &str, tail: &str) -> Result<String, ClientError> {
        let d = normalize_domain(domain).map_err(|e| ClientError::Api {
            status: 422,
            code: "invalid".into(),
            message: e.to_string(),
            details: None,
        })?;
        Ok(format!("/v1/domains/{d}{tail}"))
    }
}
