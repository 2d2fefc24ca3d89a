//! The policy host and the policy file (M11–M33, M47).

use crate::botwall;
use crate::model::{FetchReport, Finding, PolicyReport};
use crate::tls::{self, Prefix};
use mtasts_core::Severity;
use mtasts_core::policy::{Policy, parse_policy};
use mtasts_core::report::ResultType;
use mtasts_net::https::{FetchFailure, PolicyFetch};
use std::net::IpAddr;

/// A body above this draws a warning (M18): policies are a few hundred bytes.
pub(crate) const LARGE_BODY: usize = 4 * 1024;

/// Reads the fetch; returns the report and the policy a sender would apply.
pub(crate) fn policy(
    domain: &str,
    fetch: &PolicyFetch,
    has_record: bool,
    findings: &mut Vec<Finding>,
) -> (PolicyReport, Option<Policy>) {
    let host = &fetch.host;
    let mut report = PolicyReport {
        fetch: FetchReport {
            url: fetch.url.clone(),
            status: fetch.status,
            content_type: fetch.content_type.clone(),
            bytes: fetch.bytes,
            error: fetch.failure.as_ref().map(ToString::to_string),
            certificate: fetch.tls.as_ref().and_then(tls::certificate),
            tls_version: fetch
                .tls
                .as_ref()
                .map(mtasts_net::tls::TlsObservation::protocol_name),
        },
        ..PolicyReport::default()
    };
    // Without a TXT record, a missing policy host is expected; only a served policy matters.
    let quiet = !has_record
        && matches!(
            fetch.failure,
            Some(FetchFailure::NoAddress | FetchFailure::Dns(_))
        );
    if quiet {
        return (report, None);
    }
    if !fetch.addresses.is_empty() && !fetch.addresses.iter().any(IpAddr::is_ipv6) {
        findings.push(Finding::new(
            "policy.host.no-ipv6",
            Severity::Warning,
            format!("{host} has no IPv6 address (AAAA): IPv6-only senders cannot fetch the policy"),
            None,
            format!("publish an AAAA record for {host}"),
        ));
    }
    if let Some(failure) = &fetch.failure {
        report.failure = Some(if matches!(failure, FetchFailure::Tls { .. }) {
            ResultType::StsWebpkiInvalid
        } else {
            ResultType::StsPolicyFetchError
        });
        findings.push(fetch_failure(domain, host, failure, has_record));
    }
    if let Some(tls_obs) = &fetch.tls {
        tls::findings(
            Prefix::Policy,
            &format!("the policy host {host}"),
            host,
            tls_obs,
            findings,
        );
        if !tls_obs.verdict.is_valid() {
            report.failure = Some(ResultType::StsWebpkiInvalid);
        }
    }
    match fetch.status {
        Some(200) | None => {}
        Some(code @ 300..=399) => {
            report
                .failure
                .get_or_insert(ResultType::StsPolicyFetchError);
            let to = fetch
                .location
                .clone()
                .unwrap_or_else(|| "(no Location)".into());
            findings.push(Finding::new(
                "policy.fetch.redirect",
                Severity::Error,
                format!("{} answers {code}, a redirect to {to}: senders never follow redirects (RFC 8461 §3.3), so they get no policy", fetch.url),
                Some(format!("HTTP {code}, Location: {to}")),
                format!("serve the policy directly at {} with status 200 (no http→https or www redirects)", fetch.url),
            ));
        }
        Some(code) => {
            report
                .failure
                .get_or_insert(ResultType::StsPolicyFetchError);
            if let Some(sign) = botwall::sign(fetch) {
                findings.push(bot_wall(fetch, sign));
                return (report, None);
            }
            findings.push(Finding::new(
                "policy.fetch.status",
                Severity::Error,
                format!(
                    "{} answers HTTP {code}; only 200 gives senders a policy (RFC 8461 §3.3)",
                    fetch.url
                ),
                Some(format!("HTTP {code}")),
                format!("serve the policy file at {} with status 200", fetch.url),
            ));
        }
    }
    // `None` (no Content-Type header) counts as not text/plain too.
    if fetch.status == Some(200) && fetch.content_type_is_text_plain() != Some(true) {
        findings.push(Finding::new(
            "policy.fetch.content-type",
            Severity::Warning,
            format!(
                "the policy is served as {}, not text/plain: strict senders ignore it (RFC 8461 §3.2)",
                fetch.content_type.as_deref().map_or_else(|| "no Content-Type".to_owned(), |c| format!("`{c}`"))
            ),
            fetch.content_type.clone(),
            "serve it with `Content-Type: text/plain` (a charset parameter is fine)",
        ));
    }
    let Some(body) = &fetch.body else {
        return (report, None);
    };
    if let Some(sign) = botwall::sign(fetch) {
        findings.push(bot_wall(fetch, sign));
    }
    if body.len() > LARGE_BODY {
        findings.push(Finding::new(
            "policy.fetch.large",
            Severity::Warning,
            format!("the policy is {} bytes; a policy is a few hundred bytes, so this is probably not one", body.len()),
            None,
            "serve only the policy lines",
        ));
    }
    let parsed = parse_policy(body);
    let lines: Vec<String> = String::from_utf8_lossy(body)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect();
    for d in &parsed.diagnostics {
        findings.push(Finding::from_diagnostic(d, &lines));
    }
    report.valid = parsed.is_valid();
    if report.failure.is_none() && parsed.policy.is_none() {
        report.failure = Some(ResultType::StsPolicyInvalid);
    }
    // A sender applies the policy only when the fetch itself was good.
    let applies = report.failure.is_none();
    let policy = parsed.policy.filter(|_| applies);
    if let Some(p) = &policy {
        report.mode = Some(p.mode.to_string());
        report.max_age = Some(p.max_age);
        report.mx = Some(p.mx.iter().map(ToString::to_string).collect());
    }
    if !has_record && policy.is_some() {
        findings.push(Finding::new(
            "policy.without-record",
            Severity::Warning,
            format!("a policy is served at {} but there is no valid `_mta-sts.{domain}` record, so senders never fetch it", fetch.url),
            None,
            format!("publish `v=STSv1; id=<id>` at _mta-sts.{domain}, or remove the policy"),
        ));
    }
    (report, policy)
}

fn fetch_failure(domain: &str, host: &str, failure: &FetchFailure, has_record: bool) -> Finding {
    let consequence = if has_record {
        "; the TXT record announces MTA-STS but senders cannot get the policy (M47)"
    } else {
        ""
    };
    match failure {
        FetchFailure::NoAddress => Finding::new(
            "policy.host.missing",
            Severity::Error,
            format!("{host} does not resolve (no A or AAAA record){consequence}"),
            None,
            format!(
                "publish A/AAAA (or a CNAME) for {host} pointing at the server that hosts the policy"
            ),
        ),
        FetchFailure::Dns(e) => crate::finding::dns_failure(
            "policy.host.untested",
            format!("could not resolve {host}: {e}"),
            "check that the domain's name servers answer, then run again",
            e,
        ),
        f if f.is_unreachable() => Finding::untested(
            "policy.fetch.unreachable",
            format!("could not fetch the policy from {host}: {f}{consequence}"),
            format!("make sure {host} answers HTTPS on port 443 from the internet, then run again"),
        ),
        FetchFailure::BodyTooLarge { limit } => Finding::new(
            "policy.fetch.too-large",
            Severity::Error,
            format!("the policy body is larger than {limit} bytes; senders stop reading there"),
            None,
            "serve only the policy lines",
        ),
        FetchFailure::Tls { error, .. } if error.is_protocol_version() => Finding::new(
            "policy.tls.old-protocol",
            Severity::Error,
            format!(
                "{host} offers only TLS versions older than 1.2 (TLS 1.0/1.1): senders require TLS 1.2 or 1.3 for the policy fetch (RFC 8461 §3.3, RFC 8996), so they get no policy"
            ),
            Some(error.to_string()),
            "enable TLS 1.2 and 1.3 on the policy host (and turn off TLS 1.0 and 1.1)",
        ),
        other => Finding::new(
            "policy.fetch.failed",
            Severity::Error,
            format!("fetching the policy for {domain} failed: {other}{consequence}"),
            None,
            format!(
                "make sure https://{host}/.well-known/mta-sts.txt serves the policy over valid TLS"
            ),
        ),
    }
}

/// M21: a bot wall answered instead of the policy.
fn bot_wall(fetch: &PolicyFetch, sign: String) -> Finding {
    Finding::new(
        "policy.fetch.bot-wall",
        Severity::Error,
        format!(
            "{} answers a non-browser client with a bot-protection challenge instead of the policy: sending MTAs are not browsers, so they get the challenge too and no policy",
            fetch.url
        ),
        Some(sign),
        format!(
            "exempt https://{}{} from bot protection (e.g. a WAF skip rule, or Bot Fight Mode / Browser Integrity Check / \"Under Attack\" off for that path), then fetch it with curl to check",
            fetch.host,
            mtasts_net::https::POLICY_PATH
        ),
    )
}
