//! `mtasts report parse`.

use crate::output::{self, Format};
use crate::{EXIT_FINDINGS, EXIT_OK, EXIT_UNREADABLE, input};
use anyhow::Result;
use clap::Subcommand;
use mtasts_core::report::{MAX_INPUT_SIZE, ParsedReport, parse_reports};
use mtasts_core::text::escape;
use owo_colors::{OwoColorize, Stream::Stdout};
use std::io::Write;

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Parse TLS-RPT reports: JSON, gzip'd JSON, or report mail, sniffed from the bytes.
    ///
    /// Prints each report in RFC 8460's JSON schema, normalised, with what was repaired and
    /// the file it came from. A file with no valid report is named on standard error; the
    /// other files are still reported.
    Parse {
        /// Report files (`-` reads standard input).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
}

pub(crate) fn run(cmd: ReportCommand, format: Format) -> Result<u8> {
    let ReportCommand::Parse { files } = cmd;
    let mut code = EXIT_OK;
    let mut found: Vec<(String, ParsedReport)> = Vec::new();
    for file in &files {
        let name = input::display_name(file);
        let bytes = match input::read_capped(file, MAX_INPUT_SIZE) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "mtasts: {}",
                    mtasts_core::text::escape_lines(&format!("{e:#}"))
                );
                code = code.max(EXIT_UNREADABLE);
                continue;
            }
        };
        match parse_reports(&bytes) {
            Ok(reports) => found.extend(reports.into_iter().map(|r| (name.to_owned(), r))),
            Err(e) => {
                let why = e.to_string();
                eprintln!(
                    "mtasts: {}: no valid TLS-RPT report: {}",
                    escape(name),
                    escape(&why)
                );
                code = code.max(EXIT_FINDINGS);
            }
        }
    }
    match format {
        Format::Json => {
            let docs: Vec<serde_json::Value> =
                found.iter().map(|(src, r)| r.to_json(src)).collect();
            output::print_json(&docs)?;
        }
        Format::Text => {
            let mut out = std::io::stdout().lock();
            for (src, r) in &found {
                print_text(&mut out, src, r)?;
            }
        }
    }
    Ok(code)
}

fn print_text(out: &mut impl Write, src: &str, parsed: &ParsedReport) -> std::io::Result<()> {
    // Every field of a report is foreign: escaped, so a forged one cannot act on the terminal.
    let r = &parsed.report;
    let contact = escape(r.contact_info.as_deref().unwrap_or("no contact"));
    writeln!(
        out,
        "{}: report {} from {} ({contact})",
        escape(src),
        escape(&r.report_id),
        escape(&r.organization_name)
    )?;
    writeln!(
        out,
        "  period: {} to {}",
        rfc3339(r.date_range.start),
        rfc3339(r.date_range.end)
    )?;
    for p in &r.policies {
        let domain = escape(p.policy.policy_domain.as_deref().unwrap_or("(no domain)"));
        let failed = p.summary.total_failure_session_count;
        let counts = format!(
            "{} successful, {failed} failed",
            p.summary.total_successful_session_count
        );
        let counts = if failed > 0 {
            counts.if_supports_color(Stdout, |t| t.red()).to_string()
        } else {
            counts
        };
        writeln!(
            out,
            "  policy {} {domain}: {counts}",
            escape(p.policy.policy_type.as_str())
        )?;
        for f in &p.failure_details {
            let mut line = format!(
                "    {}: {} session(s)",
                escape(f.result_type.as_str()),
                f.failed_session_count
            );
            if let Some(h) = &f.receiving_mx_hostname {
                line.push_str(&format!(", mx {}", escape(h)));
            }
            if let Some(ip) = f.receiving_ip {
                line.push_str(&format!(" ({ip})"));
            }
            if let Some(ip) = f.sending_mta_ip {
                line.push_str(&format!(", from {ip}"));
            }
            if let Some(code) = &f.failure_reason_code {
                line.push_str(&format!(", reason {}", escape(code)));
            }
            writeln!(out, "{line}")?;
        }
    }
    for w in &parsed.warnings {
        writeln!(out, "  repaired: {}", escape(&w.to_string()))?;
    }
    Ok(())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
