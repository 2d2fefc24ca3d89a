//! One CSV row per domain (RFC 4180 quoting; lists joined with `|`), for spreadsheets and
//! bulk scans.

use crate::model::{DomainReport, TlsResult};
use mtasts_core::Severity;

/// The header row.
pub const HEADER: &str = "domain,verdict,sts_id,policy_mode,policy_failure,max_age,mx_hosts,mx_not_covered,mx_failed,tlsrpt_rua,errors,warnings,finding_ids,dane";

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `adopted` (an MX host has a usable, DNSSEC-secure TLSA RRset: `dane.adopted`),
/// `untested` (not adopted, and a DANE lookup failed), `no` (checked, not in use), or empty
/// (not checked: `--no-dane`, no such domain, null MX).
fn dane(r: &DomainReport) -> &'static str {
    match &r.dane {
        Some(d) if d.adopted => "adopted",
        Some(d) if d.error.is_some() || d.hosts.iter().any(|h| h.error.is_some()) => "untested",
        Some(_) => "no",
        None => "",
    }
}

/// The row of `r`, without a line end.
pub fn row(r: &DomainReport) -> String {
    let count = |s| -> usize {
        r.findings
            .iter()
            .filter(|f| f.severity == s)
            .map(mtasts_core::Finding::weight)
            .sum()
    };
    let mut ids: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
    ids.dedup();
    let not_covered =
        r.mx.iter()
            .filter(|m| m.pattern.is_none() && r.policy.mx.is_some())
            .map(|m| m.host.as_str())
            .collect::<Vec<_>>();
    let failed =
        r.mx.iter()
            .filter(|m| !matches!(m.result, TlsResult::Success | TlsResult::NotTested))
            .map(|m| format!("{}={}", m.host, m.result))
            .collect::<Vec<_>>();
    let verdict = serde_json::to_value(r.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    [
        field(&r.domain),
        verdict,
        field(r.sts_record.id.as_deref().unwrap_or("")),
        field(r.policy.mode.as_deref().unwrap_or("")),
        field(r.policy.failure.as_ref().map_or("", |t| t.as_str())),
        r.policy.max_age.map(|a| a.to_string()).unwrap_or_default(),
        field(
            &r.mx
                .iter()
                .map(|m| m.host.as_str())
                .collect::<Vec<_>>()
                .join("|"),
        ),
        field(&not_covered.join("|")),
        field(&failed.join("|")),
        field(&r.tlsrpt.rua.join("|")),
        count(Severity::Error).to_string(),
        count(Severity::Warning).to_string(),
        field(&ids.join("|")),
        dane(r).to_owned(),
    ]
    .join(",")
}
