//! `mtasts report parse`.

use crate::output::Format;
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// Parse TLS-RPT reports: JSON, gzip'd JSON, or report mail (sniffed from the bytes).
    Parse {
        /// Report files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
}

pub(crate) fn run(cmd: ReportCommand, _format: Format) -> Result<u8> {
    let ReportCommand::Parse { files } = cmd;
    anyhow::bail!("report parsing is not wired yet ({} file(s))", files.len())
}
