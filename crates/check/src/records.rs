//! The `_mta-sts` and `_smtp._tls` TXT records (catalogue M01–M10, R01–R07 in
//! docs/requirements.md).

use crate::model::{Finding, StsRecordReport, TlsRptReport};
use mtasts_core::Severity;
use mtasts_core::record::{StsRecord, parse_sts_rrset, parse_tlsrpt_rrset};
use mtasts_net::dns::{DnsError, Lookup, Txt};

fn texts(records: &[Txt]) -> Vec<String> {
    records
        .iter()
        .map(|t| String::from_utf8_lossy(&t.joined()).into_owned())
        .collect()
}

/// Whether [`sts`] needs the domain's own TXT answer: only when the `_mta-sts` answer holds no
/// valid record (then a record published at the apex instead is worth pointing out, M04). The
/// apex TXT RRset is often the domain's largest (SPF, site verifications), so it is not asked for
/// nothing.
pub(crate) fn needs_apex(answer: &Result<Lookup<Txt>, DnsError>) -> bool {
    answer.as_ref().is_ok_and(|lookup| {
        let joined: Vec<Vec<u8>> = lookup.records().iter().map(Txt::joined).collect();
        parse_sts_rrset(&joined).record.is_none()
    })
}

/// Reads the `_mta-sts` answer. `apex` is the domain's own TXT answer when [`needs_apex`] asked
/// for it, used to spot a record published at the wrong name (M04).
pub(crate) fn sts(
    domain: &str,
    answer: &Result<Lookup<Txt>, DnsError>,
    apex: Option<&Result<Lookup<Txt>, DnsError>>,
    findings: &mut Vec<Finding>,
) -> (StsRecordReport, Option<StsRecord>) {
    let owner = format!("_mta-sts.{domain}");
    let records = match answer {
        Err(e) => {
            findings.push(crate::finding::dns_failure(
                "sts.record.untested",
                format!("could not look up {owner}: {e}"),
                "check that the domain's name servers answer, then run again",
                e,
            ));
            return (StsRecordReport::default(), None);
        }
        Ok(lookup) => {
            if let Lookup::Records { cnames, .. } = lookup
                && let Some(target) = cnames.last()
            {
                findings.push(Finding::new(
                    "sts.record.cname",
                    Severity::Info,
                    format!("{owner} is a CNAME to {target} (allowed, RFC 8461 §3.1): whoever runs {target} controls your policy id"),
                    Some(cnames.join(" -> ")),
                    "nothing to do if the delegation is intended",
                ));
            }
            lookup.records().to_vec()
        }
    };
    let joined: Vec<Vec<u8>> = records.iter().map(Txt::joined).collect();
    let lines = texts(&records);
    let parsed = parse_sts_rrset(&joined);
    for d in &parsed.diagnostics {
        let mut f = Finding::from_diagnostic(d, &lines);
        if d.id == "sts.record.missing" {
            f.message = format!(
                "no MTA-STS record at {owner}: senders treat {domain} as having no MTA-STS policy"
            );
            f.fix = format!("publish the TXT record `v=STSv1; id=<letters and digits>` at {owner}");
        }
        findings.push(f);
    }
    if parsed.record.is_none()
        && let Some(Ok(apex)) = apex
    {
        let apex_lines = texts(apex.records());
        if let Some(r) = apex_lines.iter().find(|l| l.starts_with("v=STSv1")) {
            findings.push(Finding::new(
                "sts.record.at-apex",
                Severity::Error,
                format!("the MTA-STS record is published at {domain} instead of {owner}"),
                Some(r.clone()),
                format!("move the record to {owner}"),
            ));
        }
    }
    let report = StsRecordReport {
        valid: parsed.is_valid(),
        id: parsed.record.as_ref().map(|r| r.id.clone()),
        records: lines,
    };
    (report, parsed.record)
}

/// Reads the `_smtp._tls` answer (R01–R05, R07).
pub(crate) fn tlsrpt(
    domain: &str,
    answer: &Result<Lookup<Txt>, DnsError>,
    old_name: &Result<Lookup<Txt>, DnsError>,
    findings: &mut Vec<Finding>,
) -> TlsRptReport {
    // R06: the draft-era name `_smtp-tlsrpt` is read by no sender.
    if let Ok(old) = old_name
        && let Some(r) = texts(old.records())
            .into_iter()
            .find(|t| t.starts_with("v=TLSRPTv1"))
    {
        findings.push(Finding::new(
            "tlsrpt.record.old-name",
            Severity::Warning,
            format!("a TLS-RPT record is published at _smtp-tlsrpt.{domain}, a draft-era name senders do not read"),
            Some(r),
            format!("publish it at _smtp._tls.{domain} and remove the old one"),
        ));
    }
    let owner = format!("_smtp._tls.{domain}");
    let records = match answer {
        Err(e) => {
            findings.push(crate::finding::dns_failure(
                "tlsrpt.record.untested",
                format!("could not look up {owner}: {e}"),
                "check that the domain's name servers answer, then run again",
                e,
            ));
            return TlsRptReport::default();
        }
        Ok(lookup) => lookup.records().to_vec(),
    };
    let joined: Vec<Vec<u8>> = records.iter().map(Txt::joined).collect();
    let lines = texts(&records);
    let parsed = parse_tlsrpt_rrset(&joined);
    for d in &parsed.diagnostics {
        let mut f = Finding::from_diagnostic(d, &lines);
        if d.id == "tlsrpt.record.missing" && records.is_empty() {
            // R01: a missing TLS-RPT record weakens monitoring; it does not break delivery.
            f.severity = Severity::Warning;
            f.message = format!(
                "no TLS-RPT record at {owner}: senders cannot tell you when TLS to your MX hosts fails"
            );
            f.fix = format!(
                "publish the TXT record `v=TLSRPTv1; rua=mailto:tlsrpt@<a domain outside {domain}>` at {owner}"
            );
        }
        findings.push(f);
    }
    let valid = parsed.is_valid();
    let rua = parsed.record.map(|r| r.rua).unwrap_or_default();
    for uri in &rua {
        let in_domain = uri
            .strip_prefix("mailto:")
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
            .is_some_and(|d| d == domain || d.ends_with(&format!(".{domain}")));
        if in_domain {
            findings.push(Finding::new(
                "tlsrpt.rua.in-domain",
                Severity::Warning,
                format!("reports go to {uri}, inside {domain}: when TLS to your MX hosts fails, the reports about it may not arrive either"),
                Some(uri.clone()),
                "send reports to a mailbox on another domain (or to an https: endpoint)",
            ));
        }
    }
    TlsRptReport {
        valid,
        rua,
        endpoints: Vec::new(),
    }
}
