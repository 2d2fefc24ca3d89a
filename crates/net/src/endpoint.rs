//! A harmless check of a TLS-RPT `https:` reporting endpoint (RFC 8460 §3, catalogue R08):
//! resolve the URI host, connect, a TLS handshake verified against that host (the recording
//! verifier, as for the policy fetch), then one `OPTIONS` request for the URI's path.
//!
//! Why `OPTIONS`: senders deliver reports with `POST` (RFC 8460 §6.4), but posting a made-up
//! report would put a fake report into the owner's data. `OPTIONS` is safe and idempotent by
//! definition (RFC 9110 §9.3.7): no server may treat it as a submission, and it answers the
//! question asked, "what can I do at this URI". `HEAD` or `GET` would be safe too, but a
//! collector that takes only `POST` answers them, like `OPTIONS`, with 405, and some route
//! `GET` to a web page, so they tell no more. The status is read as a hint only
//! ([`EndpointProbe::status_problem`]): 405 or 400 means the path exists but wants a real
//! report, which is fine; 404/410, 401/403, 3xx and 5xx mean a sender's `POST` would most
//! likely fail too.

use crate::dns::{Lookup, Resolver};
use crate::https::{FetchFailure, USER_AGENT_VALUE, connect_tls, error_chain};
use crate::tls::{TlsObservation, TlsProbeConfig};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// What the check of one `https:` report URI observed.
#[derive(Debug)]
pub struct EndpointProbe {
    /// The URI as published in the `rua` tag.
    pub uri: String,
    /// Its host (checked in the certificate, sent as SNI and `Host`).
    pub host: String,
    /// The addresses tried.
    pub addresses: Vec<IpAddr>,
    /// The address whose TLS handshake completed.
    pub addr: Option<SocketAddr>,
    /// The TLS handshake, when one completed; the certificate verdict is inside.
    pub tls: Option<TlsObservation>,
    /// The status of the `OPTIONS` answer.
    pub status: Option<u16>,
    /// The step that failed, if any. A URI that does not parse is [`FetchFailure::Http`].
    pub failure: Option<FetchFailure>,
}

impl EndpointProbe {
    /// Why the status suggests that a sender's `POST` would fail, or `None` when it looks like
    /// a live endpoint (2xx, or 400/405/411/413/415/422: the path exists and wants a report).
    pub fn status_problem(&self) -> Option<&'static str> {
        match self.status? {
            200..=299 | 400 | 405 | 411 | 413 | 415 | 422 => None,
            300..=399 => Some("a redirect, which senders need not follow"),
            401 | 403 | 407 => Some("access is refused, and senders do not authenticate"),
            404 | 410 => Some("nothing is there"),
            500..=599 => Some("a server error"),
            _ => Some("an unexpected status"),
        }
    }
}

/// Checks the report endpoint `uri` (`https://host[:port]/path`) within `timeout`. Never
/// fails: what went wrong is [`EndpointProbe::failure`].
pub async fn probe_report_endpoint(
    uri: &str,
    resolver: &Resolver,
    tls: &TlsProbeConfig,
    timeout: Duration,
) -> EndpointProbe {
    let deadline = Instant::now() + timeout;
    let mut probe = EndpointProbe {
        uri: uri.to_owned(),
        host: String::new(),
        addresses: Vec::new(),
        addr: None,
        tls: None,
        status: None,
        failure: None,
    };
    let parsed = uri.parse::<Uri>().ok().filter(|u| {
        u.scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
    });
    let Some((parsed, host)) = parsed.and_then(|u| {
        let host = u.host()?.trim_matches(['[', ']']).to_ascii_lowercase();
        Some((u, host))
    }) else {
        probe.failure = Some(FetchFailure::Http {
            message: format!("{uri} is not an https URI with a host"),
        });
        return probe;
    };
    probe.host.clone_from(&host);
    let port = parsed.port_u16().unwrap_or(443);
    if let Ok(ip) = host.parse::<IpAddr>() {
        probe.addresses.push(ip);
    } else {
        let lookups = async { tokio::join!(resolver.a(&host), resolver.aaaa(&host)) };
        let Ok((a, aaaa)) = tokio::time::timeout_at(deadline, lookups).await else {
            probe.failure = Some(FetchFailure::Timeout);
            return probe;
        };
        let mut error = None;
        for lookup in [a, aaaa] {
            match lookup {
                Ok(Lookup::Records { records, .. }) => probe.addresses.extend(records),
                Ok(Lookup::NoData | Lookup::NxDomain) => {}
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        if probe.addresses.is_empty() {
            probe.failure = Some(error.map_or(FetchFailure::NoAddress, FetchFailure::Dns));
            return probe;
        }
    }
    let (stream, addr, observation) =
        match connect_tls(&host, &probe.addresses, port, tls, timeout, deadline).await {
            Ok(c) => c,
            Err(failure) => {
                probe.failure = Some(failure);
                return probe;
            }
        };
    probe.addr = Some(addr);
    probe.tls = Some(observation);
    let path = parsed
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let authority = parsed
        .authority()
        .map_or_else(|| host.clone(), ToString::to_string);
    let exchange = options(stream, &authority, &path, addr);
    match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => probe.failure = Some(FetchFailure::Timeout),
        Ok(Err(failure)) => probe.failure = Some(failure),
        Ok(Ok(status)) => probe.status = Some(status),
    }
    probe
}

/// `OPTIONS path` over the TLS stream; the status of the answer (its body is not read).
async fn options(
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    authority: &str,
    path: &str,
    addr: SocketAddr,
) -> Result<u16, FetchFailure> {
    let http_error = |what: &str, e: &hyper::Error| FetchFailure::Http {
        message: format!("{what} {addr}: {}", error_chain(e)),
    };
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_header_size(16 * 1024)
        .max_headers(100)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| http_error("cannot start HTTP/1.1 with", &e))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri(path)
        .header(HOST, authority)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchFailure::Http {
            message: format!("cannot build the request for {authority}{path}: {e}"),
        });
    let result = match request {
        Ok(request) => sender
            .send_request(request)
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| http_error("no valid response from", &e)),
        Err(e) => Err(e),
    };
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: Option<u16>) -> EndpointProbe {
        EndpointProbe {
            uri: "https://r.example/".into(),
            host: "r.example".into(),
            addresses: Vec::new(),
            addr: None,
            tls: None,
            status,
            failure: None,
        }
    }

    #[test]
    fn statuses_of_a_live_collector_are_fine_the_others_are_named() {
        for ok in [200, 204, 400, 405, 411, 413, 415, 422] {
            assert_eq!(with_status(Some(ok)).status_problem(), None, "{ok}");
        }
        for (bad, why) in [
            (301, "a redirect"),
            (308, "a redirect"),
            (401, "access is refused"),
            (403, "access is refused"),
            (404, "nothing is there"),
            (410, "nothing is there"),
            (500, "a server error"),
            (503, "a server error"),
            (418, "an unexpected status"),
        ] {
            let got = with_status(Some(bad)).status_problem().unwrap();
            assert!(got.starts_with(why), "{bad}: {got}");
        }
        assert_eq!(with_status(None).status_problem(), None);
    }

    #[tokio::test]
    async fn a_uri_that_is_not_https_with_a_host_is_an_http_failure() {
        let resolver = Resolver::new(&crate::dns::ResolverSettings {
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: Some(Duration::from_millis(100)),
            ..crate::dns::ResolverSettings::default()
        })
        .unwrap();
        let tls = TlsProbeConfig::new();
        for uri in [
            "mailto:a@b.example",
            "https:///path",
            "not a uri",
            "http://r.example/",
        ] {
            let p = probe_report_endpoint(uri, &resolver, &tls, Duration::from_millis(200)).await;
            assert!(
                matches!(p.failure, Some(FetchFailure::Http { .. })),
                "{uri}: {:?}",
                p.failure
            );
        }
    }
}
