//! `mtasts report readiness --domain D`: the enforce readiness verdict (D53) from the stored
//! reports and, unless `--no-live`, a live check of the MX hosts made from here (as `domain
//! promote` makes it). Exit 0 go, 1 no-go, 4 unknown; 3 when the store is out of reach.
//! Every string that comes from a report or the network is escaped in text output.

use crate::net_args::NetArgs;
use crate::output::Format;
use crate::store_cmd::StoreArgs;
use crate::{EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, Usage};
use anyhow::Result;
use mtasts_check::check_domain_within;
use mtasts_core::text::escape;
use mtasts_intake::readiness::{self, Finding, Readiness, Verdict};
use mtasts_intake::views::stamp;
use std::io::Write;
use time::OffsetDateTime;

/// The exit status of a verdict.
fn exit_code(v: Verdict) -> u8 {
    match v {
        Verdict::Go => EXIT_OK,
        Verdict::NoGo => EXIT_FINDINGS,
        Verdict::Unknown => EXIT_INCOMPLETE,
    }
}

/// `mtasts report readiness`.
pub(crate) fn run(
    domain: &str,
    days: u32,
    live: bool,
    net: &NetArgs,
    store: &StoreArgs,
    format: Format,
) -> Result<u8> {
    let name = mtasts_server::domains::normalize_domain(domain)
        .map_err(|e| Usage(format!("--domain: {e}")))?;
    let config = store.serve_config()?;
    let rt = crate::runtime::with_threads(1)?;
    rt.block_on(async {
        let store = store.open(&config).await?;
        let now = OffsetDateTime::now_utc();
        let live = if live {
            let env = net.env()?;
            let report = check_domain_within(&name, &env, net.domain_budget()).await;
            Some(mtasts_server::drift::live_check(&report, now))
        } else {
            None
        };
        let r = readiness::load(&store, &name, days, now, live.as_ref()).await;
        store.close().await;
        let r = r?;
        match format {
            Format::Json => {
                let json = serde_json::to_string_pretty(&r)?;
                writeln!(std::io::stdout().lock(), "{json}")?;
            }
            Format::Text => print_text(&r)?,
        }
        Ok(exit_code(r.verdict))
    })
}

fn print_text(r: &Readiness) -> Result<()> {
    let mut o = std::io::stdout().lock();
    let e = &r.evidence;
    let stage = r.stage.as_deref().unwrap_or("not hosted here");
    writeln!(
        o,
        "{}: {} ({})",
        escape(&r.domain),
        r.verdict.as_str().to_uppercase(),
        escape(stage)
    )?;
    writeln!(o, "{}", escape(&r.summary))?;
    writeln!(
        o,
        "evidence: {} reports from {} reporters on {} of the last {} days (since {}); {} \
         successful, {} failed sessions ({} blocking, {} undecided, {} noted)",
        e.reports,
        e.reporters,
        e.days_with_reports,
        r.days,
        stamp(r.since),
        e.successful_sessions,
        e.failed_sessions,
        e.blocking_sessions,
        e.undecided_sessions,
        e.noted_sessions
    )?;
    for p in &e.by_reporter {
        let software = p.software.map(|s| format!(" [{s}]")).unwrap_or_default();
        writeln!(
            o,
            "  {}{software}: {} reports on {} days, {} successful, {} failed",
            escape(&p.organization),
            p.reports,
            p.days,
            p.successful_sessions,
            p.failed_sessions
        )?;
    }
    if r.omitted.reporters > 0 {
        writeln!(o, "  and {} more reporters", r.omitted.reporters)?;
    }
    match &r.live_check {
        Some(l) => writeln!(
            o,
            "live check: {} MX hosts, at {}",
            l.hosts.len(),
            stamp(l.checked_at)
        )?,
        None => writeln!(o, "live check: not made")?,
    }
    for (title, list, more) in [
        ("blockers", &r.blockers, r.omitted.blockers),
        ("undecided", &r.undecided, r.omitted.undecided),
        ("notes", &r.notes, r.omitted.notes),
    ] {
        if list.is_empty() {
            continue;
        }
        writeln!(o, "{title}:")?;
        for f in list {
            print_finding(&mut o, f)?;
        }
        if more > 0 {
            writeln!(o, "  and {more} more")?;
        }
    }
    Ok(())
}

fn print_finding(o: &mut impl Write, f: &Finding) -> Result<()> {
    writeln!(o, "  - {}", escape(&f.message))?;
    if !f.reporters.is_empty() {
        let who: Vec<_> = f.reporters.iter().map(|r| escape(r)).collect();
        writeln!(o, "    reported by: {}", who.join(", "))?;
    }
    if !f.sending_ips.is_empty() {
        let ips: Vec<_> = f.sending_ips.iter().map(|r| escape(r)).collect();
        let more = f.sending_ip_count.saturating_sub(ips.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        writeln!(o, "    sending IPs: {}{more}", ips.join(", "))?;
    }
    if !f.receiving_ips.is_empty() {
        let ips: Vec<_> = f.receiving_ips.iter().map(|r| escape(r)).collect();
        writeln!(o, "    addresses: {}", ips.join(", "))?;
    }
    if let Some(fix) = &f.fix {
        writeln!(o, "    fix: {}", escape(fix))?;
    }
    if let Some(source) = f.reference {
        writeln!(o, "    source: {source}")?;
    }
    Ok(())
}
