//! `mtasts check`: the whole-chain audit of one or more domains.

use crate::output::FormatArg;
use crate::{EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK};
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mtasts_check::bulk::{ScanSettings, Summary, scan};
use mtasts_check::{Env, Verdict};
use mtasts_check::{list, render};
use mtasts_core::Severity;
use std::io::{IsTerminal, Write};

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
    #[command(flatten)]
    net: crate::net_args::NetArgs,
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
    let domain_budget = args.net.domain_budget();
    let settings = ScanSettings {
        concurrency: usize::from(args.concurrency),
        domain_budget,
    };
    let mut code = EXIT_OK;
    let mut summary = Summary::default();
    let mut collected = Vec::new();
    let colour = crate::output::stdout_coloured();
    let mut out = std::io::stdout().lock();
    let mut write_error: Option<std::io::Error> = None;
    if format == FormatArg::Csv {
        writeln!(out, "{}", render::csv::HEADER)?;
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
                FormatArg::Text => render::text::write(&mut out, &report, colour),
                FormatArg::Jsonl => serde_json::to_writer(&mut out, &report)
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(out)),
                FormatArg::Csv => writeln!(out, "{}", render::csv::row(&report)),
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
            FormatArg::Text => render::summary::write(&mut out, &summary)?,
            // Standard output stays one machine-readable document.
            FormatArg::Json | FormatArg::Jsonl | FormatArg::Csv => {
                render::summary::write(&mut std::io::stderr().lock(), &summary)?
            }
        }
    }
    Ok(code)
}

/// The domains of the arguments, then those of `--input` (read as the scan goes, see
/// [`mtasts_check::list::open`]), and where a read error of the list is left.
fn domain_stream(
    args: &CheckArgs,
) -> Result<(BoxStream<'static, String>, Option<list::ReadError>)> {
    let given = futures_util::stream::iter(args.domains.clone());
    let Some(path) = &args.input else {
        return Ok((given.boxed(), None));
    };
    let (lines, error) = list::open(path).with_context(|| format!("cannot read --input {path}"))?;
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
        Some(path) => list::count_domains(path, at_most)
            .ok()
            .map(|n| n.saturating_add(given)),
    }
}

fn build_env(args: &CheckArgs) -> Result<Env> {
    let mut env = args.net.env()?;
    env.limiter = std::sync::Arc::new(mtasts_check::bulk::DestinationLimiter::new(usize::from(
        args.per_destination,
    )));
    Ok(env)
}
