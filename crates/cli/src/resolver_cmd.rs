//! `mtasts resolver`: the MTA-STS policy daemon for Postfix, and `mtasts resolver query`.

use crate::output::Format;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use mtasts_resolver::config::DEFAULT_ZONE;
use mtasts_resolver::explain::Explained;
use mtasts_resolver::flags::Flags;
use mtasts_resolver::{daemon, service};

/// Options of `mtasts resolver`; each is also an environment variable, and a configuration
/// file key (flag > environment > file > default): declared once, in [`Flags`].
#[derive(Debug, Args)]
pub(crate) struct ResolverArgs {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    flags: Flags,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Show what Postfix would get for a domain, and why (asks the network now; a configured
    /// cache file is read first, so the answer matches the daemon's).
    Query {
        /// The Postfix lookup key: a domain, `[host]:port`, ...
        key: String,
        /// The socketmap name (zone) to answer for.
        #[arg(long, default_value = DEFAULT_ZONE)]
        zone: String,
    },
}

pub(crate) fn run(args: ResolverArgs, format: Format) -> Result<u8> {
    let config = args.flags.config()?;
    config.validate()?;
    let runtime = runtime(config.threads)?;
    match args.action {
        Some(Action::Query { key, zone }) => runtime.block_on(async {
            let answer = daemon::explain(&config, &zone, &key).await?;
            let explained = Explained::new(&key, &zone, &answer);
            match format {
                Format::Json => crate::output::print_json(&explained)?,
                Format::Text => print!("{explained}"),
            }
            Ok(crate::EXIT_OK)
        }),
        None => {
            service::init_logs(args.flags.log == "json");
            runtime.block_on(async {
                let (control, shutdown) = service::channel();
                let mut daemon = tokio::spawn(daemon::run(config, shutdown));
                tokio::select! {
                    signals = control.forward_signals() => {
                        signals.context("cannot watch signals")?;
                        (&mut daemon).await.context("the daemon panicked")??;
                    }
                    done = &mut daemon => done.context("the daemon panicked")??,
                }
                Ok(crate::EXIT_OK)
            })
        }
    }
}

/// The async runtime for `threads` threads. One thread gets tokio's single-threaded scheduler (no
/// work stealing, no cross-thread wake-ups: the least CPU per request); more get the
/// multi-threaded one. The default is one worker per CPU the process may run on (which respects
/// `taskset` and cgroup limits): more workers than CPUs only make the kernel time-slice them, and
/// a hit that waits for the next scheduler tick (4 ms) shows in the p99 (BENCHMARKS.md,
/// "Resolver": two workers on one CPU gave p99 4.5 ms at 100 connections, one worker 1.1 ms).
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    crate::runtime::with_threads(threads.unwrap_or_else(crate::runtime::usable_cpus))
}
