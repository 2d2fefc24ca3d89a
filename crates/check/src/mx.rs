//! MX hosts: coverage by the policy (M34–M36), addresses, and the STARTTLS probe of every
//! address (M37–M42).

use crate::Env;
use crate::model::{AddressReport, Finding, MxReport, TlsResult};
use crate::tls::{self, Prefix};
use futures_util::future::join_all;
use mtasts_core::Severity;
use mtasts_core::policy::{Mode, Policy};
use mtasts_core::report::ResultType;
use mtasts_net::dns::{DnsError, Lookup, Mx};
use mtasts_net::probe::{MxProbe, ProbeFailure, probe_mx};
use rustls_pki_types::CertificateDer;
use std::net::{IpAddr, SocketAddr};
use time::OffsetDateTime;

/// What the MX stage observed, before the policy is known.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    hosts: Vec<Mx>,
    reports: Vec<MxReport>,
    findings: Vec<Finding>,
    served: Vec<Served>,
}

/// The chain one MX address presented in its TLS handshake, for DANE matching.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    /// The MX host name.
    pub(crate) host: String,
    /// The address.
    pub(crate) ip: String,
    /// End entity first, as sent.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// When the chain was checked (the clock DANE-TA validity uses).
    pub(crate) at: OffsetDateTime,
}

impl Observed {
    /// Takes the chains the probes captured (the rest of the observation is unchanged).
    pub(crate) fn take_served(&mut self) -> Vec<Served> {
        std::mem::take(&mut self.served)
    }
}

/// Looks up the MX hosts of `domain`, their addresses, and probes every address. Independent of
/// the policy, so it runs at the same time as the policy fetch; [`apply_policy`] adds coverage.
/// A host whose lookups and probes do not finish by `deadline` is reported as not tested; the
/// others keep what they found.
pub(crate) async fn observe(
    domain: &str,
    env: &Env,
    answer: impl Future<Output = Result<Lookup<Mx>, DnsError>>,
    deadline: Option<crate::Deadline>,
) -> Observed {
    let mut findings = Vec::new();
    let Some(answer) = crate::bounded(deadline, answer).await else {
        findings.push(crate::step_timed_out(
            &format!("the MX lookup of {domain}"),
            deadline,
        ));
        return Observed {
            findings,
            ..Observed::default()
        };
    };
    let hosts = mx_hosts(domain, answer, env, &mut findings, deadline).await;
    let mut served = Vec::new();
    let (hosts, reports) = hosts
        .into_iter()
        .map(|(mx, report, mut chains)| {
            served.append(&mut chains);
            (mx, report)
        })
        .unzip();
    Observed {
        hosts,
        reports,
        findings,
        served,
    }
}

/// Adds what depends on the policy: the covering pattern, `must_refuse` and the coverage
/// findings (M34–M36).
pub(crate) fn apply_policy(
    obs: Observed,
    policy: Option<&Policy>,
    findings: &mut Vec<Finding>,
) -> Vec<MxReport> {
    let Observed {
        hosts,
        mut reports,
        findings: mut own,
        ..
    } = obs;
    coverage(policy, &hosts, findings);
    findings.append(&mut own);
    let enforce = policy.is_some_and(|p| p.mode == Mode::Enforce);
    for r in &mut reports {
        r.pattern = policy
            .and_then(|p| p.matching_pattern(&r.host))
            .map(ToString::to_string);
        let failed_tls = r.result.is_failure();
        r.must_refuse = enforce && (r.pattern.is_none() || failed_tls);
    }
    reports
}

/// Checks every MX host of `domain` (addresses and probes).
async fn mx_hosts(
    domain: &str,
    answer: Result<Lookup<Mx>, DnsError>,
    env: &Env,
    findings: &mut Vec<Finding>,
    deadline: Option<crate::Deadline>,
) -> Vec<(Mx, MxReport, Vec<Served>)> {
    let hosts: Vec<Mx> = match answer {
        Err(e) => {
            findings.push(crate::finding::dns_failure(
                "mx.untested",
                format!("could not look up the MX records of {domain}: {e}"),
                "check that the domain's name servers answer, then run again",
                &e,
            ));
            return Vec::new();
        }
        Ok(Lookup::NxDomain) => {
            findings.push(Finding::new(
                "domain.nxdomain",
                Severity::Error,
                format!("{domain} does not exist (NXDOMAIN)"),
                None,
                "check the spelling of the domain",
            ));
            return Vec::new();
        }
        Ok(Lookup::NoData) => {
            findings.push(Finding::new(
                "mx.implicit",
                Severity::Info,
                format!("{domain} has no MX record, so mail goes to {domain} itself (implicit MX, RFC 5321 §5.1)"),
                None,
                "publish MX records if the domain receives mail",
            ));
            vec![Mx {
                preference: 0,
                host: domain.to_owned(),
            }]
        }
        Ok(Lookup::Records { records, .. }) => records,
    };
    if hosts.len() == 1 && hosts[0].host == "." {
        findings.push(Finding::new(
            "mx.null",
            Severity::Info,
            format!("{domain} publishes a null MX (RFC 7505): it accepts no mail, so MTA-STS has nothing to protect"),
            Some("MX 0 .".into()),
            "nothing to do; remove the MTA-STS records if they are left over",
        ));
        return Vec::new();
    }
    let reports = join_all(
        hosts
            .iter()
            .map(|mx| crate::bounded(deadline, one_host(mx, env))),
    )
    .await;
    let mut out = Vec::with_capacity(reports.len());
    for (mx, outcome) in hosts.into_iter().zip(reports) {
        let (report, mut fs, served) = outcome.unwrap_or_else(|| {
            let finding = crate::step_timed_out(&format!("the test of MX {}", mx.host), deadline);
            (not_tested(&mx), vec![finding], Vec::new())
        });
        findings.append(&mut fs);
        out.push((mx, report, served));
    }
    out
}

/// M34–M36: every MX host matched by a pattern; every pattern matching a host.
fn coverage(policy: Option<&Policy>, hosts: &[Mx], findings: &mut Vec<Finding>) {
    let Some(policy) = policy else { return };
    if policy.mode == Mode::None {
        return;
    }
    let patterns: Vec<String> = policy.mx.iter().map(ToString::to_string).collect();
    for mx in hosts {
        if policy.matching_pattern(&mx.host).is_some() {
            continue;
        }
        let deep = policy
            .mx
            .iter()
            .find(|p| p.is_wildcard() && mx.host.ends_with(&format!(".{}", p.domain())));
        let (severity, consequence) = if policy.mode == Mode::Enforce {
            (
                Severity::Error,
                "senders applying the policy will not deliver to it",
            )
        } else {
            (
                Severity::Warning,
                "senders will report failures for it, and refuse it once you enforce",
            )
        };
        let message = match deep {
            Some(p) => format!(
                "MX {} is not covered: `{p}` matches exactly one label, not several (RFC 8461 §4.1); {consequence}",
                mx.host
            ),
            None => format!(
                "MX {} is not covered by any mx pattern of the policy; {consequence}",
                mx.host
            ),
        };
        findings.push(Finding::new(
            "mx.not-covered",
            severity,
            message,
            Some(format!("patterns: {}", patterns.join(", "))),
            format!(
                "add `mx: {}` to the policy (and change the TXT id)",
                mx.host
            ),
        ));
    }
    for p in &policy.mx {
        if !hosts.iter().any(|mx| p.matches(&mx.host)) {
            findings.push(Finding::new(
                "policy.mx.unused",
                Severity::Warning,
                format!("the pattern `{p}` matches none of the current MX hosts (left over from an old MX?)"),
                Some(format!("MX hosts: {}", hosts.iter().map(|m| m.host.as_str()).collect::<Vec<_>>().join(", "))),
                format!("remove `mx: {p}` unless that host is about to be added"),
            ));
        }
    }
}

async fn one_host(mx: &Mx, env: &Env) -> (MxReport, Vec<Finding>, Vec<Served>) {
    let mut findings = Vec::new();
    let (v4, v6) = tokio::join!(env.resolver.a(&mx.host), env.resolver.aaaa(&mx.host));
    let mut ips: Vec<IpAddr> = Vec::new();
    for answer in [&v4, &v6] {
        match answer {
            Ok(l) => ips.extend_from_slice(l.records()),
            Err(e) => findings.push(crate::finding::dns_failure(
                "mx.address.untested",
                format!("could not resolve MX {}: {e}", mx.host),
                "check that the name servers of the MX host answer",
                e,
            )),
        }
    }
    if ips.is_empty() && v4.is_ok() && v6.is_ok() {
        findings.push(Finding::new(
            "mx.no-address",
            Severity::Error,
            format!(
                "MX {} has no A or AAAA record: mail to it cannot be delivered",
                mx.host
            ),
            None,
            format!("publish addresses for {}, or remove the MX record", mx.host),
        ));
    }
    let mut served = Vec::new();
    let addresses: Vec<AddressReport> = if env.settings.no_smtp {
        ips.iter()
            .map(|ip| AddressReport {
                ip: ip.to_string(),
                starttls: None,
                tls_version: None,
                certificate: None,
                result: TlsResult::NotTested,
                error: None,
            })
            .collect()
    } else {
        let probes = join_all(ips.iter().map(|ip| {
            let addr = SocketAddr::new(*ip, env.settings.smtp_port);
            async move {
                let _slot = env.limiter.acquire(*ip).await;
                probe_mx(
                    addr,
                    &mx.host,
                    &env.settings.ehlo_name,
                    &env.tls,
                    env.settings.probe_budget,
                )
                .await
            }
        }))
        .await;
        for p in &probes {
            if let Some(tls) = &p.tls {
                served.push(Served {
                    host: mx.host.clone(),
                    ip: p.addr.ip().to_string(),
                    chain: tls.chain.iter().map(|c| c.der.clone()).collect(),
                    at: tls.verification.checked_at,
                });
            }
        }
        probes
            .iter()
            .map(|p| address(mx, p, &mut findings))
            .collect()
    };
    let result = worst(&addresses);
    // `pattern` and `must_refuse` depend on the policy: set by `apply_policy`.
    let report = MxReport {
        host: mx.host.clone(),
        preference: mx.preference,
        pattern: None,
        addresses,
        result,
        must_refuse: false,
    };
    (report, findings, served)
}

fn address(mx: &Mx, p: &MxProbe, findings: &mut Vec<Finding>) -> AddressReport {
    let who = format!("MX {} ({})", mx.host, p.addr.ip());
    let mut report = AddressReport {
        ip: p.addr.ip().to_string(),
        starttls: p.starttls_offered,
        tls_version: p
            .tls
            .as_ref()
            .map(mtasts_net::tls::TlsObservation::protocol_name),
        certificate: p.tls.as_ref().and_then(tls::certificate),
        result: TlsResult::Success,
        error: p.failure.as_ref().map(ToString::to_string),
    };
    if let Some(f) = &p.failure {
        if f.is_unreachable() {
            report.result = TlsResult::Unreachable;
            findings.push(Finding::untested(
                "mx.unreachable",
                format!("could not test {who}: {f}"),
                "if port 25 is blocked where you run this, use --no-smtp or run from a server; otherwise make the MX reachable",
            ));
            return report;
        }
        if f.is_transient() {
            // Turned away for now (421, 554, slow): nothing is known about its TLS.
            report.result = TlsResult::NotTested;
            findings.push(Finding {
                observed: p.banner.as_ref().map(mtasts_net::smtp::Reply::text),
                ..Finding::untested(
                    "mx.smtp.transient",
                    format!("could not test {who}: {f}; this is a temporary refusal or a slow server, not a TLS failure"),
                    "run the check again later, from an address the MX host accepts (a checker on a blocklisted address is often greeted with 554)",
                )
            });
            return report;
        }
        let (id, result, message, fix) = match f {
            ProbeFailure::Tls(e) if e.is_protocol_version() => (
                "mx.tls.old-protocol",
                ResultType::ValidationFailure,
                format!(
                    "{who} offers only TLS versions older than 1.2 (TLS 1.0/1.1): senders that require TLS 1.2, as MTA-STS senders do (RFC 8461 §4.2, RFC 8996), cannot deliver to it securely"
                ),
                "enable TLS 1.2 and 1.3 on the MX host (and turn off TLS 1.0 and 1.1)",
            ),
            ProbeFailure::Tls(_) => (
                "mx.tls.failed",
                ResultType::ValidationFailure,
                format!("the TLS handshake with {who} failed: {f}"),
                "fix the MX host's TLS configuration",
            ),
            ProbeFailure::StartTlsRefused(_) => (
                "mx.starttls.refused",
                ResultType::StarttlsNotSupported,
                format!("{who} offers STARTTLS but refuses it: {f}"),
                "fix the MX host's STARTTLS setup",
            ),
            ProbeFailure::Smtp(_) => (
                "mx.smtp.failed",
                ResultType::ValidationFailure,
                format!("the SMTP dialogue with {who} failed: {f}"),
                "check the MX host's SMTP service",
            ),
            _ => (
                "mx.smtp.failed",
                ResultType::ValidationFailure,
                format!("probing {who} failed: {f}"),
                "check the MX host",
            ),
        };
        report.result = TlsResult::Failure(result);
        findings.push(Finding::new(
            id,
            Severity::Error,
            message,
            p.banner.as_ref().map(mtasts_net::smtp::Reply::text),
            fix,
        ));
        return report;
    }
    if p.starttls_offered == Some(false) {
        report.result = TlsResult::Failure(ResultType::StarttlsNotSupported);
        findings.push(Finding::new(
            "mx.starttls.missing",
            Severity::Error,
            format!("{who} does not offer STARTTLS: mail to it travels unencrypted, and senders enforcing MTA-STS refuse it"),
            p.ehlo.as_ref().map(mtasts_net::smtp::Reply::text),
            "enable STARTTLS with a valid certificate for the MX host name",
        ));
        return report;
    }
    if let Some(obs) = &p.tls {
        report.result = tls::result(obs);
        tls::findings(Prefix::Mx, &who, &mx.host, obs, findings);
    }
    report
}

/// The report of an MX host that could not be tested at all.
fn not_tested(mx: &Mx) -> MxReport {
    MxReport {
        host: mx.host.clone(),
        preference: mx.preference,
        pattern: None,
        addresses: Vec::new(),
        result: TlsResult::NotTested,
        must_refuse: false,
    }
}

/// The worst result over the addresses: a failure beats unreachable beats success.
fn worst(addresses: &[AddressReport]) -> TlsResult {
    let rank = |r: &TlsResult| match r {
        TlsResult::Success => 0,
        TlsResult::NotTested => 1,
        TlsResult::Unreachable => 2,
        TlsResult::Failure(_) => 3,
    };
    addresses
        .iter()
        .map(|a| &a.result)
        .max_by_key(|r| rank(r))
        .cloned()
        .unwrap_or(TlsResult::Unreachable)
}
