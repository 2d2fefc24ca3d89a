//! The network side of one refresh: the `_mta-sts` TXT id, then the policy fetch (RFC 8461 §3).

use crate::reply::PolicyFailure;
use mtasts_core::record::parse_sts_rrset;
use mtasts_net::dns::Lookup;
use mtasts_net::https::fetch_policy;

/// What the resolver needs from the network: the one environment every service takes, built by
/// [`crate::config::Config::network`] (the sender's defaults: a 60 s policy fetch, D14).
pub type Net = mtasts_net::env::Network;

/// The `_mta-sts` record as a sender reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxtOutcome {
    /// One valid record with this id.
    Id(String),
    /// No usable record (NXDOMAIN, NODATA, none or several `v=STSv1` records, a bad one: D11–D13).
    NoRecord,
    /// SERVFAIL, time-out, refused: nothing can be concluded (D16).
    DnsError(String),
}

pub(crate) async fn txt_id(net: &Net, domain: &str) -> TxtOutcome {
    match net.dns.txt(&format!("_mta-sts.{domain}")).await {
        Ok(Lookup::Records { records, .. }) => {
            let joined: Vec<Vec<u8>> = records.iter().map(|t| t.joined()).collect();
            match parse_sts_rrset(&joined).record {
                Some(r) => TxtOutcome::Id(r.id),
                None => TxtOutcome::NoRecord,
            }
        }
        Ok(Lookup::NoData | Lookup::NxDomain) => TxtOutcome::NoRecord,
        Err(e) => TxtOutcome::DnsError(e.to_string()),
    }
}

/// Fetches the policy: its URL and body (whether the body is a valid policy is for
/// [`crate::cached::CachedPolicy::new`] to say); on failure, the TLS-RPT failure type and what
/// happened.
pub(crate) async fn fetch(
    net: &Net,
    domain: &str,
) -> Result<(String, String), (PolicyFailure, String)> {
    let f = fetch_policy(domain, &net.dns, &net.tls, &net.fetch).await;
    if let Some(tls) = f.tls.as_ref().filter(|t| !t.verdict.is_valid()) {
        return Err((
            PolicyFailure::WebPkiInvalid,
            format!(
                "{}: the certificate is not valid ({:?})",
                f.url, tls.verdict
            ),
        ));
    }
    if let Some(failure) = &f.failure {
        return Err((PolicyFailure::FetchError, format!("{}: {failure}", f.url)));
    }
    if f.status != Some(200) {
        let status = f
            .status
            .map_or_else(|| "no status".to_owned(), |s| format!("HTTP {s}"));
        return Err((PolicyFailure::FetchError, format!("{}: {status}", f.url)));
    }
    match String::from_utf8(f.body.unwrap_or_default()) {
        Ok(body) => Ok((f.url, body)),
        Err(_) => Err((
            PolicyFailure::Invalid,
            format!("{}: the body is not a valid policy (not UTF-8)", f.url),
        )),
    }
}
