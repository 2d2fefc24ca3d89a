//! `mtasts report parse`.

use crate::output::Format;
use crate::{EXIT_FINDINGS, EXIT_OK, EXIT_UNREADABLE, input};
use anyhow::Result;
use clap::Subcommand;
use mtasts_core::report::{JsonArray, Limits, RunBudget, parse_reports_in, write_text};
use mtasts_core::text::escape;
use owo_colors::{OwoColorize, Stream::Stdout};

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
    let (mut text, mut json) = (
        std::io::stdout().lock(),
        JsonArray::new(std::io::stdout().lock()),
    );
    for file in &files {
        let name = input::display_name(file);
        let bytes = match input::read_capped(file, limits.max_input) {
            Ok(b) => b,
            Err(e) => {
                eprintln!(
                    "mtasts: {}",
                    mtasts_core::text::escape_lines(&crate::output::error_text(&e))
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
                Format::Json => json.push(&r.to_json(name))?,
                Format::Text => write_text(&mut text, name, r, |counts| {
                    counts.if_supports_color(Stdout, |t| t.red()).to_string()
                })?,
            }
        }
    }
    if format == Format::Json {
        json.finish()?;
    }
    Ok(code)
}
