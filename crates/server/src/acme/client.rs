//! The HTTP client instant-acme talks to the CA through, and the ACME account.
//!
//! The client trusts the Mozilla roots plus `acme.root` (Pebble's API certificate), speaks
//! HTTPS only (HTTP/1.1), and bounds every exchange: the whole request and response within
//! `request_timeout`, a response body of at most [`MAX_RESPONSE`] bytes. A CA that hangs,
//! floods or answers garbage becomes an error with a reason, never a stuck order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, HttpClient, NewAccount,
};
use mtasts_store::{Change, Store};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use super::AcmeConfig;

/// Largest response body read from the CA (a certificate chain is a few KiB).
pub(crate) const MAX_RESPONSE: usize = 1024 * 1024;

/// The bounded HTTPS client.
#[derive(Clone)]
pub(crate) struct CaClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>,
    timeout: Duration,
}

fn other(msg: impl Into<String>) -> instant_acme::Error {
    instant_acme::Error::Other(msg.into().into())
}

impl CaClient {
    /// A client trusting the Mozilla roots and the PEM roots in `extra_roots`.
    pub(crate) fn new(extra_roots: Option<&str>, timeout: Duration) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_roots {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("acme.root: not PEM certificates: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("acme.root: not a usable root: {e}"))?;
                added += 1;
            }
            if added == 0 {
                return Err("acme.root: the file holds no certificate".into());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            // HTTP/1.1 only: over HTTP/2 to Pebble, 16 orders in flight stalled (requests not
            // answered within the 30 s time-out, every order failing); over HTTP/1.1 the same
            // run installs 100 certificates in 4 s (BENCHMARKS.md, ACME).
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self { client, timeout })
    }
}

impl HttpClient for CaClient {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let (client, timeout) = (self.client.clone(), self.timeout);
        let url = req.uri().clone();
        let get = req.method() == hyper::Method::GET;
        Box::pin(async move {
            let exchange = async {
                let rsp = client
                    .request(req)
                    .await
                    .map_err(|e| other(format!("cannot reach the CA at {url}: {}", chain(&e))))?;
                let (parts, body) = rsp.into_parts();
                let body = Limited::new(body, MAX_RESPONSE)
                    .collect()
                    .await
                    .map_err(|e| {
                        if e.is::<http_body_util::LengthLimitError>() {
                            other(format!(
                                "the CA's answer from {url} is larger than {} KiB, the most \
                                 read",
                                MAX_RESPONSE / 1024
                            ))
                        } else {
                            other(format!("the CA's answer from {url} could not be read: {e}"))
                        }
                    })?
                    .to_bytes();
                if let Some(why) = not_acme(get, &parts, &body) {
                    return Err(other(format!("the CA at {url} answered {why}")));
                }
                Ok(BytesResponse::from(hyper::Response::from_parts(
                    parts,
                    Full::new(body),
                )))
            };
            tokio::time::timeout(timeout, exchange).await.map_err(|_| {
                other(format!(
                    "the CA at {url} did not answer within {} s",
                    timeout.as_secs()
                ))
            })?
        })
    }
}

/// The longest excerpt of a non-ACME error page quoted in an error.
const PAGE_EXCERPT: usize = 120;

/// An error status instant-acme would misreport: a body that is not JSON (a proxy's HTML
/// error page, say), or any error answer to a GET (only the directory is fetched by GET, and
/// instant-acme parses whatever comes back as a directory). It would only say the JSON did not
/// parse, so the status and an excerpt of the page (the problem document's type and detail)
/// are reported instead. A problem document answering a POST goes through to instant-acme,
/// which retries `badNonce` and reports the rest ([`describe`]).
fn not_acme(get: bool, parts: &hyper::http::response::Parts, body: &[u8]) -> Option<String> {
    if parts.status.is_success() || parts.status.is_redirection() {
        return None;
    }
    let ctype = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.to_ascii_lowercase().contains("json") {
        if !get {
            return None;
        }
        if let Ok(p) = serde_json::from_slice::<instant_acme::Problem>(body) {
            return Some(format!(
                "{}: {}",
                parts.status,
                describe(&instant_acme::Error::Api(p))
            ));
        }
    }
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(PAGE_EXCERPT)
        .collect();
    if excerpt.chars().count() == PAGE_EXCERPT {
        excerpt.push_str("...");
    }
    let ctype = if ctype.is_empty() { "no type" } else { ctype };
    Some(format!("{} ({ctype}), not ACME: {excerpt:?}", parts.status))
}

/// An error and its sources, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The account at the configured directory: from the store's sealed credentials, or created
/// (and its credentials stored) when there are none, or when `recreate` says the CA no longer
/// knows the stored one.
pub(crate) async fn account(
    store: &Store,
    cfg: &AcmeConfig,
    client: &CaClient,
    recreate: bool,
) -> Result<Account, String> {
    let directory = cfg.directory.as_deref().ok_or("ACME is not configured")?;
    if !recreate
        && let Some(json) = store
            .acme_account(directory)
            .await
            .map_err(|e| format!("the store: {e}"))?
    {
        let creds: AccountCredentials = serde_json::from_str(&json)
            .map_err(|e| format!("the stored ACME account does not parse: {e}"))?;
        return Account::builder_with_http(Box::new(client.clone()))
            .from_credentials(creds)
            .await
            .map_err(|e| describe(&e));
    }
    let contact: Vec<String> = cfg.contact.iter().map(|c| format!("mailto:{c}")).collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, creds) = Account::builder_with_http(Box::new(client.clone()))
        .create(&new, directory.to_owned(), None)
        .await
        .map_err(|e| describe(&e))?;
    let json = serde_json::to_string(&creds).map_err(|e| e.to_string())?;
    let change = Change::new("acme", OffsetDateTime::now_utc()).because(if recreate {
        "the CA no longer knew the stored account"
    } else {
        "first order at this CA"
    });
    store
        .put_acme_account(directory, &json, &change)
        .await
        .map_err(|e| format!("the store: {e}"))?;
    tracing::info!(directory, id = account.id(), "ACME account created");
    Ok(account)
}

/// An instant-acme error in plain words: the CA's problem document (type and detail, foreign
/// text kept as the CA sent it; printers escape it) or what failed on the way.
pub(crate) fn describe(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => {
            let kind = p
                .r#type
                .as_deref()
                .map(|t| t.trim_start_matches("urn:ietf:params:acme:error:"))
                .unwrap_or("unspecified");
            let mut s = format!("the CA refused ({kind})");
            if let Some(d) = &p.detail {
                s.push_str(": ");
                s.push_str(d);
            }
            for sp in &p.subproblems {
                s.push_str("; ");
                s.push_str(&sp.to_string());
            }
            s
        }
        instant_acme::Error::Json(j) => {
            format!("the CA answered something that is not ACME JSON: {j}")
        }
        other => chain(other),
    }
}

/// Whether the CA said it no longer knows the account (Pebble forgets accounts on restart).
pub(crate) fn account_unknown(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")))
}
