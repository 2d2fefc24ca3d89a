//! `mtasts`: MTA-STS (RFC 8461) and TLS-RPT (RFC 8460) for the people who run mail.
//!
//! The binary is thin: it parses arguments, reads input, calls the library crates and prints.
//! Exit codes: 0 the input is valid, 1 it has error-severity findings, 2 usage error, 3 the input
//! could not be read.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a CLI prints")]

mod check_cmd;
mod domain_args;
mod domain_cmd;
mod domain_print;
mod input;
mod net_args;
mod output;
mod policy_cmd;
mod progress;
mod readiness_cmd;
mod record_cmd;
mod report_cmd;
mod report_imap_cmd;
mod report_import_cmd;
mod report_store_cmd;
mod resolver_cmd;
mod runtime;
mod serve_cmd;
mod store_cmd;

use clap::{Parser, Subcommand};
use output::{Color, Format, FormatArg};
use std::process::ExitCode;

/// Exit status when every input is valid.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit status when some input has error-severity findings.
pub(crate) const EXIT_FINDINGS: u8 = 1;
/// Exit status when some input could not be read.
pub(crate) const EXIT_UNREADABLE: u8 = 3;
/// Exit status of `check` when no domain failed but some step of a check could not be made
/// (a DNS failure, an unreachable server, a check past its time budget): the verdict is
/// incomplete, not a pass.
pub(crate) const EXIT_INCOMPLETE: u8 = 4;

#[derive(Debug, Parser)]
#[command(name = "mtasts", version, about, max_term_width = 100)]
struct Cli {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// When to colour text output.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check domains end to end: records, policy fetch, MX coverage, STARTTLS and certificates.
    Check(check_cmd::CheckArgs),
    /// MTA-STS policy files: lint and render.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// DNS TXT records (`_mta-sts`, `_smtp._tls`): lint.
    #[command(subcommand)]
    Record(record_cmd::RecordCommand),
    /// TLS-RPT reports: parse (JSON, gzip, or report mail); import, list, show, summarise the
    /// stored ones; the enforce readiness verdict of a domain.
    #[command(subcommand)]
    Report(report_cmd::ReportCommand),
    /// The MTA-STS policy daemon for Postfix (socketmap, tcp_table); `resolver query` explains
    /// one answer.
    Resolver(Box<resolver_cmd::ResolverArgs>),
    /// Hosts MTA-STS policies for one or many domains: HTTPS policy host, admin API, drift
    /// checker (docs/serve.md).
    Serve(Box<serve_cmd::ServeArgs>),
    /// Hosted domains: add, list, show, set, promote, rollback, remove, check, cert import.
    Domain(Box<domain_args::DomainArgs>),
    /// The store: `migrate`.
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Admin API tokens: create, list, revoke.
    Token(store_cmd::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.color.apply();
    let format = match (&cli.command, cli.format) {
        (Command::Check(_), _) | (_, FormatArg::Text) => Format::Text,
        (_, FormatArg::Json) => Format::Json,
        (Command::Report(_), FormatArg::Csv) => Format::Text,
        (_, other) => {
            eprintln!("mtasts: --format {other:?} is only for `mtasts check`; use text or json");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Check(c) => check_cmd::run(c, cli.format),
        Command::Policy(c) => policy_cmd::run(c, format),
        Command::Record(c) => record_cmd::run(c, format),
        Command::Report(c) => report_cmd::run(c, format, cli.format == FormatArg::Csv),
        Command::Resolver(c) => resolver_cmd::run(*c, format),
        Command::Serve(c) => serve_cmd::run(*c),
        Command::Domain(c) => domain_cmd::run(*c, format),
        Command::Store(c) => store_cmd::run_store(c, format),
        Command::Token(c) => store_cmd::run_token(c, format),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!(
                "mtasts: {}",
                mtasts_core::text::escape_lines(&e.to_string())
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!(
                "mtasts: {}",
                mtasts_core::text::escape_lines(&output::error_text(&e))
            );
            ExitCode::from(EXIT_UNREADABLE)
        }
    }
}

/// A usage error found after parsing (flags that do not go together): exit 2, as clap's own.
#[derive(Debug)]
pub(crate) struct Usage(pub(crate) String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `mtasts ... | head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
