//! TLS-RPT `https:` report endpoints (R08): each one is resolved, connected to, its certificate
//! verified against the URI host, and asked `OPTIONS` (never a made-up report; see
//! `mtasts_net::endpoint` for why). Runs right after the `_smtp._tls` lookup, at the same time as
//! the policy fetch and the MX probes.

use crate::Env;
use crate::bulk::EndpointOutcome;
use crate::model::{EndpointReport, Finding};
use futures_util::future::join_all;
use mtasts_core::Severity;
use mtasts_core::record::parse_tlsrpt_rrset;
use mtasts_net::dns::{DnsError, Lookup, Txt};
use mtasts_net::endpoint::{EndpointProbe, probe_report_endpoint};
use mtasts_net::https::FetchFailure;
use mtasts_net::tls::CertVerdict;

/// At most this many `https:` URIs of one record are checked (a record lists one or two).
pub(crate) const MAX_ENDPOINTS: usize = 4;

/// Looks up `name` (`_smtp._tls.<domain>`), then checks the `https:` URIs of the record a
/// sender would use, all at once, each within the fetch budget and at most once per run
/// ([`crate::bulk::EndpointCache`]).
pub(crate) async fn lookup(
    name: &str,
    env: &Env,
) -> (Result<Lookup<Txt>, DnsError>, Vec<EndpointOutcome>) {
    let answer = env.resolver.txt(name).await;
    let uris = if env.settings.no_endpoints {
        Vec::new()
    } else {
        https_uris(&answer)
    };
    let outcomes = join_all(uris.iter().take(MAX_ENDPOINTS).map(|uri| {
        env.endpoints.get_or_check(uri, || async {
            let probe =
                probe_report_endpoint(uri, &env.resolver, &env.tls, env.settings.fetch.timeout)
                    .await;
            outcome(&probe)
        })
    }))
    .await;
    (answer, outcomes)
}

fn https_uris(answer: &Result<Lookup<Txt>, DnsError>) -> Vec<String> {
    let Ok(lookup) = answer else {
        return Vec::new();
    };
    let joined: Vec<Vec<u8>> = lookup.records().iter().map(Txt::joined).collect();
    parse_tlsrpt_rrset(&joined)
        .record
        .map(|r| r.rua)
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("https:")))
        .collect()
}

/// The report of each endpoint; a warning for each one a sender could not deliver to.
pub(crate) fn endpoints(
    outcomes: Vec<EndpointOutcome>,
    findings: &mut Vec<Finding>,
) -> Vec<EndpointReport> {
    outcomes
        .into_iter()
        .map(|(report, finding)| {
            findings.extend(finding);
            report
        })
        .collect()
}

fn outcome(p: &EndpointProbe) -> EndpointOutcome {
    let report = EndpointReport {
        uri: p.uri.clone(),
        status: p.status,
        tls_version: p
            .tls
            .as_ref()
            .map(mtasts_net::tls::TlsObservation::protocol_name),
        certificate: p.tls.as_ref().and_then(crate::tls::certificate),
        error: p.failure.as_ref().map(ToString::to_string),
    };
    (report, finding(p))
}

fn finding(p: &EndpointProbe) -> Option<Finding> {
    let uri = &p.uri;
    let host = &p.host;
    let lost = "senders cannot deliver TLS reports there, so failures go unreported";
    if let Some(failure) = &p.failure {
        return Some(match failure {
            FetchFailure::Dns(e) => Finding::untested(
                "tlsrpt.rua.endpoint.untested",
                format!("could not resolve the report endpoint {host} ({uri}): {e}"),
                "check that the name servers of the endpoint answer, then run again",
            ),
            FetchFailure::NoAddress => Finding::new(
                "tlsrpt.rua.endpoint.no-address",
                Severity::Warning,
                format!("the report endpoint {host} has no A or AAAA record: {lost}"),
                Some(uri.clone()),
                format!("publish addresses for {host}, or change the rua URI"),
            ),
            f if f.is_unreachable() => Finding::untested(
                "tlsrpt.rua.endpoint.unreachable",
                format!("could not reach the report endpoint {uri}: {f}"),
                format!("make sure {host} answers HTTPS from the internet, or change the rua URI"),
            ),
            FetchFailure::Tls { error, .. } => Finding::new(
                "tlsrpt.rua.endpoint.tls",
                Severity::Warning,
                if error.is_protocol_version() {
                    format!("the report endpoint {host} offers only TLS 1.0/1.1: {lost}")
                } else {
                    format!("the TLS handshake with the report endpoint {host} failed: {lost}")
                },
                Some(failure.to_string()),
                format!("serve {uri} over TLS 1.2 or 1.3 with a valid certificate"),
            ),
            other => Finding::new(
                "tlsrpt.rua.endpoint.http",
                Severity::Warning,
                format!("the report endpoint {uri} did not answer HTTP properly: {lost}"),
                Some(other.to_string()),
                format!("make sure {uri} accepts HTTPS POST requests"),
            ),
        });
    }
    if let Some(tls) = &p.tls
        && tls.verdict != CertVerdict::Valid
    {
        let what = tls
            .verdict
            .result_type()
            .map_or_else(|| "invalid".to_owned(), |r| r.as_str().to_owned());
        let sans = tls.leaf().map(|l| l.san_dns.join(", ")).unwrap_or_default();
        return Some(Finding::new(
            "tlsrpt.rua.endpoint.certificate",
            Severity::Warning,
            format!(
                "the certificate of the report endpoint {host} fails validation ({what}): {lost}"
            ),
            Some(format!("subject alt names: {sans}")),
            format!("install a valid certificate for {host} from a public CA, with the full chain"),
        ));
    }
    let problem = p.status_problem()?;
    let status = p.status.unwrap_or_default();
    Some(Finding::new(
        "tlsrpt.rua.endpoint.status",
        Severity::Warning,
        format!(
            "the report endpoint {uri} answers OPTIONS with HTTP {status}, {problem}: a sender's POST of a report would likely fail too"
        ),
        Some(format!("OPTIONS {uri} → HTTP {status}")),
        format!("make sure {uri} accepts POST requests of TLS reports (application/tlsrpt+gzip)"),
    ))
}
