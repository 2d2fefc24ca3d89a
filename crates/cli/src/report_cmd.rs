//! `mtasts report parse`.

use crate::output::Format;
use crate::{EXIT_FINDINGS, EXIT_OK, EXIT_UNREADABLE, input};
use anyhow::Result;
use clap::Subcommand;
use mtasts_core::report::{Limits, ParsedReport, RunBudget, parse_reports_in};
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
    // Each file's reports are printed as soon as it is read and then dropped, so memory stays
    // that of one file (core's per-mail budgets) however many files there are; the run shares
    // one decompression budget.
    let limits = Limits::default();
    let mut run = RunBudget::new(limits.max_run_decompressed);
    let mut out = std::io::stdout().lock();
    let mut printed = 0usize;
    for file in &files {
        let name = input::display_name(file);
        let bytes = match input::read_capped(file, limits.max_input) {
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
        let reports = match parse_reports_in(&bytes, &limits, &mut run) {
            Ok(reports) => reports,
            Err(e) => {
                let why = e.to_string();
                eprintln!(
                    "mtasts: {}: no valid TLS-RPT report: {}",
                    escape(name),
                    escape(&why)
                );
                code = code.max(EXIT_FINDINGS);
                continue;
            }
        };
        drop(bytes);
        for r in &reports {
            match format {
                Format::Json => print_json_element(&mut out, printed, &r.to_json(name))?,
                Format::Text => print_text(&mut out, name, r)?,
            }
            printed += 1;
        }
    }
    if format == Format::Json {
        writeln!(out, "{}", if printed == 0 { "[]" } else { "\n]" })?;
    }
    Ok(code)
}

/// Writes one element of the JSON array, as `serde_json::to_writer_pretty` would place it,
/// without building the text in memory first.
fn print_json_element(out: &mut impl Write, index: usize, doc: &serde_json::Value) -> Result<()> {
    out.write_all(if index == 0 { b"[\n  " } else { b",\n  " })?;
    serde_json::to_writer_pretty(Indent(out), doc)?;
    Ok(())
}

/// Indents every line after the first by two spaces (JSON strings never hold a raw line break).
struct Indent<W>(W);

impl<W: Write> Write for Indent<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for (i, line) in buf.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                self.0.write_all(b"\n  ")?;
            }
            self.0.write_all(line)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
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
