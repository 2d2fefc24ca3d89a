//! The text form of a [`DomainReport`]: a verdict line, the records, the policy, each MX host
//! (with its DANE state) and every finding with what was observed and the fix.

use super::{Colour, paint, plural};
use crate::model::{
    AddressReport, DaneHostReport, DaneHostState, DnssecState, DomainReport, MxReport, TlsResult,
    Verdict,
};
use mtasts_core::Severity;
use mtasts_core::text::escape;
use std::io::Write;

/// Writes `r` as text; `colour` turns on ANSI colours for the verdict and severities.
pub fn write(out: &mut impl Write, r: &DomainReport, colour: bool) -> std::io::Result<()> {
    let verdict = match r.verdict {
        Verdict::Pass => paint("PASS", Colour::Green, colour),
        Verdict::Warn => paint("WARN", Colour::Yellow, colour),
        Verdict::Fail => paint("FAIL", Colour::Red, colour),
        Verdict::Incomplete => paint("INCOMPLETE", Colour::Yellow, colour),
    };
    let count = |s| -> usize {
        r.findings
            .iter()
            .filter(|f| f.severity == s)
            .map(mtasts_core::Finding::weight)
            .sum()
    };
    let domain = escape(&r.domain);
    writeln!(
        out,
        "{domain}: {verdict} ({}, {})",
        plural(count(Severity::Error), "error"),
        plural(count(Severity::Warning), "warning")
    )?;
    // A domain that does not exist (or is no domain name) has nothing else to show.
    let nothing_else = r
        .findings
        .iter()
        .any(|f| matches!(f.id, "domain.nxdomain" | "domain.invalid"));
    if !nothing_else {
        write_sections(out, r)?;
    }
    write_findings(out, r, colour)
}

/// The record, policy, MX and TLS-RPT lines of a report.
fn write_sections(out: &mut impl Write, r: &DomainReport) -> std::io::Result<()> {
    let domain = escape(&r.domain);
    let rec = match (&r.sts_record.id, r.sts_record.records.is_empty()) {
        (Some(id), _) => format!("id {}", escape(id)),
        (None, true) => "none".into(),
        (None, false) => "unusable".into(),
    };
    writeln!(out, "  MTA-STS record   _mta-sts.{domain}: {rec}")?;
    let f = &r.policy.fetch;
    let fetched = match (f.status, &f.error) {
        (_, Some(e)) => format!("failed: {}", escape(e)),
        (Some(s), None) => format!(
            "HTTP {s}{}",
            f.content_type
                .as_ref()
                .map(|c| format!(", {}", escape(c)))
                .unwrap_or_default()
        ),
        (None, None) => "not fetched".into(),
    };
    writeln!(out, "  policy           {}: {fetched}", escape(&f.url))?;
    match (&r.policy.mode, r.policy.max_age, &r.policy.mx) {
        (Some(mode), Some(age), Some(mx)) => writeln!(
            out,
            "                   senders apply: mode {}, max_age {age}, mx {}",
            escape(mode),
            escape(&mx.join(", "))
        )?,
        _ => writeln!(
            out,
            "                   senders apply: no policy{}",
            r.policy
                .failure
                .as_ref()
                .map(|t| format!(" ({})", escape(t.as_str())))
                .unwrap_or_default()
        )?,
    }
    for mx in &r.mx {
        write_mx(out, mx, r.policy.mx.is_some())?;
        let dane = r
            .dane
            .as_ref()
            .and_then(|d| d.hosts.iter().find(|h| h.host == mx.host));
        if let Some(h) = dane {
            writeln!(out, "        DANE {}", dane_line(h))?;
        }
    }
    let rua = if r.tlsrpt.rua.is_empty() {
        "none".to_owned()
    } else {
        escape(&r.tlsrpt.rua.join(", ")).into_owned()
    };
    writeln!(out, "  TLS-RPT          _smtp._tls.{domain}: {rua}")?;
    for e in &r.tlsrpt.endpoints {
        let what = match (&e.error, e.status) {
            (Some(err), _) => format!("failed: {}", escape(err)),
            (None, Some(s)) => format!(
                "OPTIONS answered HTTP {s}{}",
                e.tls_version
                    .as_ref()
                    .map(|v| format!(" over {}", escape(v)))
                    .unwrap_or_default()
            ),
            (None, None) => "not checked".into(),
        };
        writeln!(
            out,
            "                   endpoint {}: {what}",
            escape(&e.uri)
        )?;
    }
    Ok(())
}

/// Every finding with what was observed and the fix.
fn write_findings(out: &mut impl Write, r: &DomainReport, colour: bool) -> std::io::Result<()> {
    if !r.findings.is_empty() {
        writeln!(out, "  findings:")?;
    }
    for f in &r.findings {
        let sev = match (f.untested, f.severity) {
            (true, _) => paint("untested", Colour::Yellow, colour),
            (_, Severity::Error) => paint("error", Colour::Red, colour),
            (_, Severity::Warning) => paint("warning", Colour::Yellow, colour),
            (_, Severity::Info) => paint("note", Colour::Cyan, colour),
        };
        writeln!(out, "    {sev}: {} [{}]", escape(&f.message), f.id)?;
        if let Some(o) = &f.observed {
            // One observation may span lines (a multi-line reply, an RRset): each line is
            // escaped on its own and indented under the first.
            let lines: Vec<_> = o.split('\n').map(escape).collect();
            writeln!(
                out,
                "        observed: {}",
                lines.join("\n                  ")
            )?;
        }
        writeln!(out, "        fix: {}", escape(&f.fix))?;
    }
    Ok(())
}

fn write_mx(out: &mut impl Write, mx: &MxReport, has_policy: bool) -> std::io::Result<()> {
    let covered = match &mx.pattern {
        Some(p) => format!("covered by {}", escape(p)),
        None if has_policy => "NOT covered by the policy".into(),
        None => "no policy applies".into(),
    };
    let refuse = if mx.must_refuse {
        ", senders must refuse it"
    } else {
        ""
    };
    writeln!(
        out,
        "  MX {:>3} {}  {covered}{refuse}",
        mx.preference,
        escape(&mx.host)
    )?;
    for a in &mx.addresses {
        writeln!(out, "        {:<40} {}", escape(&a.ip), address_line(a))?;
    }
    Ok(())
}

fn dane_line(h: &DaneHostReport) -> String {
    let records = plural(h.tlsa.len(), "TLSA record");
    let dnssec = h.dnssec.map(|p| format!("DNSSEC {p}")).unwrap_or_default();
    let state = match h.state {
        DaneHostState::NoTlsa => "no TLSA record".to_owned(),
        DaneHostState::LookupFailed => format!(
            "TLSA lookup failed: {}",
            escape(h.error.as_deref().unwrap_or("unknown error"))
        ),
        DaneHostState::Usable => {
            let matched = h.addresses.iter().filter(|a| a.matched).count();
            format!(
                "{records}, {dnssec}, usable; {matched}/{} address(es) matched",
                h.addresses.len()
            )
        }
        DaneHostState::Unusable => format!("{records}, {dnssec}, none usable for SMTP"),
        DaneHostState::Insecure => format!("{records}, {dnssec}: ignored by senders"),
        DaneHostState::Bogus => {
            // The TLSA answer may be secure while the host's address records are bogus: name
            // the part that failed.
            let what = if h.address_dnssec == Some(DnssecState::Bogus)
                && h.dnssec != Some(DnssecState::Bogus)
            {
                "address records: DNSSEC bogus".to_owned()
            } else {
                dnssec
            };
            format!("{what} (validation failed): DANE senders will not deliver")
        }
        DaneHostState::Indeterminate => format!(
            "DNSSEC could not be validated (the chain of trust could not be fetched): untested; {}",
            escape(h.error.as_deref().unwrap_or("no reason given"))
        ),
    };
    format!("{}: {state}", escape(&h.tlsa_name))
}

fn address_line(a: &AddressReport) -> String {
    let mut parts = Vec::new();
    match a.starttls {
        Some(true) => parts.push("STARTTLS".to_owned()),
        Some(false) => parts.push("no STARTTLS".to_owned()),
        None => {}
    }
    if let Some(v) = &a.tls_version {
        parts.push(escape(v).into_owned());
    }
    if let Some(c) = &a.certificate
        && let Some(d) = c.days_left
    {
        if d < 0 {
            parts.push(format!(
                "certificate expired {} ago",
                plural(d.unsigned_abs(), "day")
            ));
        } else {
            parts.push(format!(
                "certificate expires in {}",
                plural(d.unsigned_abs(), "day")
            ));
        }
    }
    parts.push(escape(a.result.as_str()).into_owned());
    // `not-tested` is both `--no-smtp` and a server that turned the check away for now: say
    // which, when there is a reason.
    if a.result == TlsResult::NotTested
        && let Some(e) = &a.error
    {
        parts.push(escape(e).into_owned());
    }
    parts.join(", ")
}
