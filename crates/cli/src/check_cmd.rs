//! `mtasts check`: the whole-chain audit of one or more domains.

use crate::output::FormatArg;
use crate::{EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use mtasts_check::bulk::{ScanSettings, Summary, scan};
use mtasts_check::model::{AddressReport, DaneHostReport, DomainReport, MxReport};
use mtasts_check::{Env, Settings, Verdict};
use mtasts_core::Severity;
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::tls::TlsProbeConfig;
use owo_colors::{OwoColorize, Stream::Stdout};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Options of `mtasts check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Domains to check.
    #[arg(value_name = "DOMAIN", required_unless_present = "input")]
    domains: Vec<String>,
    /// Read more domains from FILE (`-`: standard input), one per line; blank lines and lines
    /// starting with `#` are skipped. Read as the scan goes, so the list can be any size.
    #[arg(long, value_name = "FILE")]
    input: Option<String>,
    /// Domains checked at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// STARTTLS probes in flight to one MX address at most (a provider's MX serves many domains).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    per_destination: u16,
    /// After the results, print an adoption table and the most common findings (to standard
    /// error with --format jsonl or csv).
    #[arg(long)]
    summary: bool,
    /// Exit 1 when a finding at or above this severity is found.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// DNS server to ask, IP or IP:PORT (repeatable); default: the system's.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    nameservers: Vec<String>,
    /// DNSSEC trust anchor for the DANE lookups: a file of DNSKEY records in zone-file form
    /// (`. 3600 IN DNSKEY 257 3 13 ...`); default: the IANA root keys.
    #[arg(long, value_name = "FILE")]
    trust_anchor: Option<std::path::PathBuf>,
    /// Extra trusted root certificates (PEM), on top of the Mozilla roots.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
    /// SMTP port of the MX hosts.
    #[arg(long, default_value_t = 25)]
    smtp_port: u16,
    /// HTTPS port of the policy host.
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// Time budget, in seconds, for each network step (DNS query, fetch, each probe stage).
    #[arg(long, default_value_t = 15.0, value_name = "SECS")]
    timeout: f64,
    /// Do not probe the MX hosts on port 25 (where outbound SMTP is blocked).
    #[arg(long)]
    no_smtp: bool,
    /// Skip DANE (the DNSSEC-validated MX and TLSA lookups), e.g. for faster bulk scans.
    #[arg(long)]
    no_dane: bool,
    /// Worker threads. Default: one for a list of at most 64 domains (the arguments plus an
    /// --input file), one per usable CPU for a longer list or standard input.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

/// Lists up to this many domains run on one thread by default: their checks wait on the
/// network far more than they compute, and one thread saves the cost of handing work between
/// threads (about a fifth of the CPU of the 20-domain scenario set, BENCHMARKS.md).
const ONE_THREAD_LIST: u64 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Never,
}

pub(crate) fn run(args: CheckArgs, format: FormatArg) -> Result<u8> {
    let env = build_env(&args)?;
    let show_progress = crate::progress::wanted(
        std::io::stderr().is_terminal(),
        args.input.is_some(),
        args.domains.len(),
    );
    // One counting pass over an --input file serves both the thread choice and the progress
    // bar (which needs the whole count; the thread choice only whether it is short).
    let known = total(
        &args,
        if show_progress {
            u64::MAX
        } else {
            ONE_THREAD_LIST + 1
        },
    );
    let runtime = runtime(args.threads, known)?;
    let threshold = match args.fail_on {
        FailOn::Error => Some(Severity::Error),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Never => None,
    };
    // Each domain gets the budget of its stages in sequence, and a little more.
    let domain_budget = Duration::from_secs_f64(args.timeout * 4.0 + 5.0);
    let settings = ScanSettings {
        concurrency: usize::from(args.concurrency),
        domain_budget,
    };
    let mut code = EXIT_OK;
    let mut summary = Summary::default();
    let mut collected = Vec::new();
    let mut out = std::io::stdout().lock();
    let mut write_error: Option<std::io::Error> = None;
    if format == FormatArg::Csv {
        writeln!(out, "{}", csv::HEADER)?;
    }
    let (domains, read_error) = domain_stream(&args)?;
    let progress = if show_progress {
        crate::progress::Progress::start(known)
    } else {
        crate::progress::Progress::none()
    };
    runtime.block_on(scan(domains, &env, settings, |report| {
        progress.inc();
        if threshold.is_some_and(|t| report.findings.iter().any(|f| f.severity >= t)) {
            code = EXIT_FINDINGS;
        } else if threshold.is_some() && report.verdict == Verdict::Incomplete && code == EXIT_OK {
            code = EXIT_INCOMPLETE;
        }
        if args.summary {
            summary.add(&report);
        }
        let written = progress.suspend(|| {
            match format {
                FormatArg::Text => print_text(&mut out, &report),
                FormatArg::Jsonl => serde_json::to_writer(&mut out, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(out)),
                FormatArg::Csv => writeln!(out, "{}", csv::row(&report)),
                FormatArg::Json => {
                    collected.push(report);
                    Ok(())
                }
            }
            .and_then(|()| out.flush())
        });
        if let Err(e) = written {
            write_error.get_or_insert(e);
        }
    }));
    progress.finish();
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let read_error = read_error.and_then(|e| {
        e.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    });
    if let Some(e) = read_error {
        let name = crate::input::display_name(args.input.as_deref().unwrap_or("-"));
        return Err(anyhow::Error::new(e).context(format!(
            "reading the domain list {name} failed; the domains read before were checked"
        )));
    }
    if format == FormatArg::Json {
        crate::output::print_json(&collected)?;
    }
    if args.summary {
        match format {
            FormatArg::Text => print_summary(&mut out, &summary)?,
            // Standard output stays one machine-readable document.
            FormatArg::Json | FormatArg::Jsonl | FormatArg::Csv => {
                print_summary(&mut std::io::stderr().lock(), &summary)?
            }
        }
    }
    Ok(code)
}

/// The domains of the arguments, then those of `--input`, read as the scan goes (on a thread of
/// its own, see [`crate::input::domain_lines`]), and where a read error of the list is left.
fn domain_stream(
    args: &CheckArgs,
) -> Result<(
    futures_util::stream::BoxStream<'static, String>,
    Option<crate::input::ReadError>,
)> {
    use futures_util::StreamExt;
    let given = futures_util::stream::iter(args.domains.clone());
    let Some(path) = &args.input else {
        return Ok((given.boxed(), None));
    };
    let reader: Box<dyn std::io::BufRead + Send> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot read --input {path}"))?;
        Box::new(std::io::BufReader::new(f))
    };
    let (lines, error) = crate::input::domain_lines(reader)?;
    Ok((given.chain(lines).boxed(), Some(error)))
}

/// The runtime: `--threads`, or one thread for a short list of `known` domains (see
/// [`ONE_THREAD_LIST`]) and one per usable CPU (which respects `taskset` and cgroup limits)
/// otherwise.
fn runtime(threads: Option<u16>, known: Option<u64>) -> Result<tokio::runtime::Runtime> {
    let threads = match threads {
        Some(n) => usize::from(n),
        None if known.is_some_and(|n| n <= ONE_THREAD_LIST) => 1,
        None => crate::runtime::usable_cpus(),
    };
    crate::runtime::with_threads(threads)
}

/// The number of domains, when it can be known before the scan: the arguments plus the domains
/// of an `--input` file (counted in a first pass, no further than `at_most`); unknown for
/// standard input or a pipe.
fn total(args: &CheckArgs, at_most: u64) -> Option<u64> {
    let given = u64::try_from(args.domains.len()).unwrap_or(u64::MAX);
    match args.input.as_deref() {
        None => Some(given),
        Some("-") => None,
        Some(path) => crate::input::count_domains(path, at_most)
            .ok()
            .map(|n| n.saturating_add(given)),
    }
}

fn print_summary(out: &mut impl Write, s: &Summary) -> std::io::Result<()> {
    let pct = |n: usize| {
        if s.domains == 0 {
            0.0
        } else {
            100.0 * n as f64 / s.domains as f64
        }
    };
    writeln!(out, "summary of {} domain(s):", s.domains)?;
    writeln!(
        out,
        "  MTA-STS record        {:>8}  {:5.1} %",
        s.sts_record,
        pct(s.sts_record)
    )?;
    writeln!(
        out,
        "  policy senders apply  {:>8}  {:5.1} %",
        s.valid_policy,
        pct(s.valid_policy)
    )?;
    for (mode, n) in &s.modes {
        writeln!(out, "    mode {mode:<16} {n:>8}  {:5.1} %", pct(*n))?;
    }
    writeln!(
        out,
        "  TLS-RPT record        {:>8}  {:5.1} %",
        s.tlsrpt,
        pct(s.tlsrpt)
    )?;
    writeln!(
        out,
        "  DANE (usable TLSA)    {:>8}  {:5.1} %",
        s.dane,
        pct(s.dane)
    )?;
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
    print_shared_mx(out, &s.shared_mx)
}

/// M43: MX hosts whose domains ask senders for different treatments.
fn print_shared_mx(
    out: &mut impl Write,
    shared: &mtasts_check::shared_mx::SharedMx,
) -> std::io::Result<()> {
    let (top, count) = shared.conflicts(10);
    writeln!(
        out,
        "  MX hosts shared by domains whose policies disagree (M43): {count} of {} shared host(s)",
        shared.shared()
    )?;
    for (host, u) in top {
        writeln!(
            out,
            "    {host} ({} domains): enforce {}, enforce but not covered {}, testing {}, none or no policy {}; e.g. {}",
            u.domains,
            u.enforce,
            u.refused,
            u.testing,
            u.none,
            u.examples.join(", ")
        )?;
    }
    if shared.capped() {
        writeln!(
            out,
            "    (only the first {} MX hosts were tracked: conflicts among the others are not counted)",
            mtasts_check::shared_mx::MAX_TRACKED_MX
        )?;
    }
    Ok(())
}

/// `IP` or `IP:PORT` name servers (port 53 by default); `what` names the option in errors.
pub(crate) fn nameservers(list: &[String], what: &str) -> Result<Vec<SocketAddr>> {
    list.iter()
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .with_context(|| format!("{what} {s}: not an IP address or IP:PORT"))
        })
        .collect()
}

fn build_env(args: &CheckArgs) -> Result<Env> {
    if !(args.timeout.is_finite() && args.timeout > 0.0 && args.timeout <= 600.0) {
        bail!("--timeout must be between 0 and 600 seconds");
    }
    let timeout = Duration::from_secs_f64(args.timeout);
    let nameservers = nameservers(&args.nameservers, "--nameserver")?;
    let trust_anchor = match &args.trust_anchor {
        None => TrustAnchor::IanaRoot,
        Some(path) => TrustAnchor::Keys(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --trust-anchor {}", path.display()))?,
        ),
    };
    let resolver = Resolver::new(&ResolverSettings {
        nameservers,
        timeout: Some(timeout),
        trust_anchor,
    })
    .with_context(|| "--trust-anchor: not a file of DNSKEY records")?;
    let mut tls = TlsProbeConfig::new();
    if let Some(path) = &args.ca_file {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read --ca-file {}", path.display()))?;
        let n = tls
            .add_pem_roots(&pem)
            .with_context(|| format!("--ca-file {}", path.display()))?;
        if n == 0 {
            bail!("--ca-file {}: no certificate in it", path.display());
        }
    }
    let mut settings = Settings {
        smtp_port: args.smtp_port,
        no_smtp: args.no_smtp,
        no_dane: args.no_dane,
        ..Settings::default()
    };
    settings.fetch.port = args.https_port;
    settings.fetch.timeout = timeout;
    settings.probe_budget.connect = timeout;
    settings.probe_budget.smtp = timeout;
    settings.probe_budget.tls = timeout;
    let mut env = Env::new(resolver, tls, settings);
    env.limiter = std::sync::Arc::new(mtasts_check::bulk::DestinationLimiter::new(usize::from(
        args.per_destination,
    )));
    Ok(env)
}

fn print_text(out: &mut impl Write, r: &DomainReport) -> std::io::Result<()> {
    let verdict = match r.verdict {
        Verdict::Pass => "PASS".if_supports_color(Stdout, |t| t.green()).to_string(),
        Verdict::Warn => "WARN".if_supports_color(Stdout, |t| t.yellow()).to_string(),
        Verdict::Fail => "FAIL".if_supports_color(Stdout, |t| t.red()).to_string(),
        Verdict::Incomplete => "INCOMPLETE"
            .if_supports_color(Stdout, |t| t.yellow())
            .to_string(),
    };
    let count = |s| r.findings.iter().filter(|f| f.severity == s).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    writeln!(
        out,
        "{}: {verdict} ({}, {})",
        r.domain,
        plural(count(Severity::Error), "error"),
        plural(count(Severity::Warning), "warning")
    )?;
    // A domain that does not exist (or is no domain name) has nothing else to show.
    let nothing_else = r
        .findings
        .iter()
        .any(|f| matches!(f.id, "domain.nxdomain" | "domain.invalid"));
    if !nothing_else {
        print_sections(out, r)?;
    }
    print_findings(out, r)
}

/// The record, policy, MX and TLS-RPT lines of a report.
fn print_sections(out: &mut impl Write, r: &DomainReport) -> std::io::Result<()> {
    let rec = match (&r.sts_record.id, r.sts_record.records.is_empty()) {
        (Some(id), _) => format!("id {id}"),
        (None, true) => "none".into(),
        (None, false) => "unusable".into(),
    };
    writeln!(out, "  MTA-STS record   _mta-sts.{}: {rec}", r.domain)?;
    let f = &r.policy.fetch;
    let fetched = match (f.status, &f.error) {
        (_, Some(e)) => format!("failed: {e}"),
        (Some(s), None) => format!(
            "HTTP {s}{}",
            f.content_type
                .as_ref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default()
        ),
        (None, None) => "not fetched".into(),
    };
    writeln!(out, "  policy           {}: {fetched}", f.url)?;
    match (&r.policy.mode, r.policy.max_age, &r.policy.mx) {
        (Some(mode), Some(age), Some(mx)) => writeln!(
            out,
            "                   senders apply: mode {mode}, max_age {age}, mx {}",
            mx.join(", ")
        )?,
        _ => writeln!(
            out,
            "                   senders apply: no policy{}",
            r.policy
                .failure
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        )?,
    }
    for mx in &r.mx {
        print_mx(out, mx, r.policy.mx.is_some())?;
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
        r.tlsrpt.rua.join(", ")
    };
    writeln!(out, "  TLS-RPT          _smtp._tls.{}: {rua}", r.domain)?;
    for e in &r.tlsrpt.endpoints {
        let what = match (&e.error, e.status) {
            (Some(err), _) => format!("failed: {err}"),
            (None, Some(s)) => format!(
                "OPTIONS answered HTTP {s}{}",
                e.tls_version
                    .as_ref()
                    .map(|v| format!(" over {v}"))
                    .unwrap_or_default()
            ),
            (None, None) => "not checked".into(),
        };
        writeln!(out, "                   endpoint {}: {what}", e.uri)?;
    }
    Ok(())
}

fn print_findings(out: &mut impl Write, r: &DomainReport) -> std::io::Result<()> {
    if !r.findings.is_empty() {
        writeln!(out, "  findings:")?;
    }
    for f in &r.findings {
        let sev = match (f.untested, f.severity) {
            (true, _) => "untested"
                .if_supports_color(Stdout, |t| t.yellow())
                .to_string(),
            (_, Severity::Error) => "error".if_supports_color(Stdout, |t| t.red()).to_string(),
            (_, Severity::Warning) => "warning"
                .if_supports_color(Stdout, |t| t.yellow())
                .to_string(),
            (_, Severity::Info) => "note".if_supports_color(Stdout, |t| t.cyan()).to_string(),
        };
        writeln!(out, "    {sev}: {} [{}]", f.message, f.id)?;
        if let Some(o) = &f.observed {
            writeln!(
                out,
                "        observed: {}",
                o.replace('\n', "\n                  ")
            )?;
        }
        writeln!(out, "        fix: {}", f.fix)?;
    }
    Ok(())
}

fn print_mx(out: &mut impl Write, mx: &MxReport, has_policy: bool) -> std::io::Result<()> {
    let covered = match &mx.pattern {
        Some(p) => format!("covered by {p}"),
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
        mx.preference, mx.host
    )?;
    for a in &mx.addresses {
        writeln!(out, "        {:<40} {}", a.ip, address_line(a))?;
    }
    Ok(())
}

fn dane_line(h: &DaneHostReport) -> String {
    let n = h.tlsa.len();
    let records = format!("{n} TLSA record{}", if n == 1 { "" } else { "s" });
    let dnssec = h.dnssec.map(|p| format!("DNSSEC {p}")).unwrap_or_default();
    let state = match h.state {
        "no-tlsa" => "no TLSA record".to_owned(),
        "lookup-failed" => format!(
            "TLSA lookup failed: {}",
            h.error.as_deref().unwrap_or("unknown error")
        ),
        "usable" => {
            let matched = h.addresses.iter().filter(|a| a.matched).count();
            format!(
                "{records}, {dnssec}, usable; {matched}/{} address(es) matched",
                h.addresses.len()
            )
        }
        "unusable" => format!("{records}, {dnssec}, none usable for SMTP"),
        "insecure" => format!("{records}, {dnssec}: ignored by senders"),
        _ => format!("{dnssec} (validation failed): DANE senders will not deliver"),
    };
    format!("{}: {state}", h.tlsa_name)
}

fn address_line(a: &AddressReport) -> String {
    let mut parts = Vec::new();
    match a.starttls {
        Some(true) => parts.push("STARTTLS".to_owned()),
        Some(false) => parts.push("no STARTTLS".to_owned()),
        None => {}
    }
    if let Some(v) = &a.tls_version {
        parts.push(v.clone());
    }
    if let Some(c) = &a.certificate
        && let Some(d) = c.days_left
    {
        let days = |n: i64| format!("{n} day{}", if n == 1 { "" } else { "s" });
        if d < 0 {
            parts.push(format!("certificate expired {} ago", days(-d)));
        } else {
            parts.push(format!("certificate expires in {}", days(d)));
        }
    }
    parts.push(a.result.clone());
    parts.join(", ")
}

/// One CSV row per domain (RFC 4180 quoting; lists joined with `|`).
mod csv {
    use mtasts_check::model::DomainReport;
    use mtasts_core::Severity;

    pub(super) const HEADER: &str = "domain,verdict,sts_id,policy_mode,policy_failure,max_age,mx_hosts,mx_not_covered,mx_failed,tlsrpt_rua,errors,warnings,finding_ids,dane";

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

    pub(super) fn row(r: &DomainReport) -> String {
        let count = |s| r.findings.iter().filter(|f| f.severity == s).count();
        let mut ids: Vec<&str> = r.findings.iter().map(|f| f.id).collect();
        ids.dedup();
        let not_covered =
            r.mx.iter()
                .filter(|m| m.pattern.is_none() && r.policy.mx.is_some())
                .map(|m| m.host.as_str())
                .collect::<Vec<_>>();
        let failed =
            r.mx.iter()
                .filter(|m| !matches!(m.result.as_str(), "success" | "not-tested"))
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
            field(r.policy.failure.unwrap_or("")),
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
}
