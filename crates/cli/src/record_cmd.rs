//! `mtasts record lint`.

use crate::output::{self, Format};
use crate::{EXIT_FINDINGS, EXIT_OK};
use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use mtasts_core::Diagnostic;
use mtasts_core::record::{parse_sts_rrset, parse_tlsrpt_rrset};
use mtasts_core::text::escape;
use serde_json::{Value, json};
use std::io::Write;

#[derive(Debug, Subcommand)]
pub(crate) enum RecordCommand {
    /// Lint the TXT RRset at `_mta-sts.<domain>` or `_smtp._tls.<domain>`.
    ///
    /// Pass each TXT record of the RRset as one argument, its strings already joined.
    Lint {
        /// Which record: `sts` (`_mta-sts`) or `tlsrpt` (`_smtp._tls`).
        #[arg(long, value_enum)]
        kind: Kind,
        /// The TXT records of the RRset, one argument each. Taken as bytes: a record that is not
        /// valid UTF-8 gets a verdict (the US-ASCII error), not a usage error.
        #[arg(required = true, value_name = "RECORD", value_parser = clap::value_parser!(std::ffi::OsString))]
        records: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kind {
    /// `_mta-sts.<domain>` (RFC 8461 §3.1).
    Sts,
    /// `_smtp._tls.<domain>` (RFC 8460 §3).
    Tlsrpt,
}

pub(crate) fn run(cmd: RecordCommand, format: Format) -> Result<u8> {
    let RecordCommand::Lint { kind, records } = cmd;
    let records: Vec<&[u8]> = records
        .iter()
        .map(|r| std::os::unix::ffi::OsStrExt::as_bytes(r.as_os_str()))
        .collect();
    let (valid, record, diags, used): (bool, Value, Vec<Diagnostic>, String) = match kind {
        Kind::Sts => {
            let p = parse_sts_rrset(&records);
            let used = p
                .record
                .as_ref()
                .map_or_else(String::new, |r| format!("policy id {}", r.id));
            (
                p.is_valid(),
                serde_json::to_value(&p.record)?,
                p.diagnostics,
                used,
            )
        }
        Kind::Tlsrpt => {
            let p = parse_tlsrpt_rrset(&records);
            let used = p
                .record
                .as_ref()
                .map_or_else(String::new, |r| format!("reports to {}", r.rua.join(", ")));
            (
                p.is_valid(),
                serde_json::to_value(&p.record)?,
                p.diagnostics,
                used,
            )
        }
    };
    match format {
        Format::Json => output::print_json(&json!({
            "valid": valid,
            "record": record,
            "findings": &diags,
        }))?,
        Format::Text => {
            let mut out = std::io::stdout().lock();
            let owner = if kind == Kind::Sts {
                "_mta-sts"
            } else {
                "_smtp._tls"
            };
            writeln!(
                out,
                "{owner} ({} record(s)): {} ({})",
                records.len(),
                output::verdict(valid),
                output::counts(&diags)
            )?;
            output::print_findings(&mut out, &diags, "record")?;
            if used.is_empty() {
                writeln!(out, "senders use: nothing (no usable record)")?;
            } else {
                writeln!(out, "senders use: {}", escape(&used))?;
            }
        }
    }
    Ok(if valid { EXIT_OK } else { EXIT_FINDINGS })
}
