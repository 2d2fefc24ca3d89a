//! The summary of a bulk run (`mtasts check --summary`): adoption, verdicts, the most common
//! findings and the MX hosts shared by domains whose policies disagree (M43).

use crate::bulk::Summary;
use crate::shared_mx::{MAX_TRACKED_MX, SharedMx};
use mtasts_core::text::escape;
use std::io::Write;

/// Writes the summary of `s`.
pub fn write(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    let pct = |n: usize| {
        if s.domains == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.domains as f64
        }
    };
    writeln!(out, "summary of {} domain(s):", s.domains)?;
    for (label, n) in [
        ("MTA-STS record       ", s.sts_record),
        ("policy senders apply ", s.valid_policy),
    ] {
        writeln!(out, "  {label} {n:>8}  {:5.1} %", pct(n))?;
    }
    for (mode, n) in &s.modes {
        let mode = escape(mode);
        writeln!(out, "    mode {mode:<16} {n:>8}  {:5.1} %", pct(*n))?;
    }
    for (label, n) in [
        ("TLS-RPT record       ", s.tlsrpt),
        ("DANE (usable TLSA)   ", s.dane),
    ] {
        writeln!(out, "  {label} {n:>8}  {:5.1} %", pct(n))?;
    }
    for (verdict, n) in &s.verdicts {
        writeln!(out, "  verdict {verdict:<13} {n:>8}  {:5.1} %", pct(*n))?;
    }
    let top = s.top_findings(20);
    if !top.is_empty() {
        writeln!(out, "  most common findings (domains):")?;
        for (id, n) in &top {
            writeln!(out, "    {id:<36} {n:>8}  {:5.1} %", pct(*n))?;
        }
    }
    write_shared_mx(out, &s.shared_mx)
}

/// M43: MX hosts whose domains ask senders for different treatments.
fn write_shared_mx(out: &mut impl Write, shared: &SharedMx) -> std::io::Result<()> {
    let (top, count) = shared.conflicts(10);
    writeln!(
        out,
        "  MX hosts shared by domains whose policies disagree (M43): {count} of {} shared host(s)",
        shared.shared()
    )?;
    for (host, u) in top {
        writeln!(
            out,
            "    {} ({} domains): enforce {}, enforce but not covered {}, testing {}, none or no policy {}; e.g. {}",
            escape(host),
            u.domains,
            u.enforce,
            u.refused,
            u.testing,
            u.none,
            escape(&u.examples.join(", "))
        )?;
    }
    if shared.capped() {
        writeln!(
            out,
            "    (only the first {MAX_TRACKED_MX} MX hosts were tracked: conflicts among the others are not counted)"
        )?;
    }
    Ok(())
}
