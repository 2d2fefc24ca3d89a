//! `mtasts policy lint` and `mtasts policy render`.

use crate::output::{self, Format};
use crate::{EXIT_FINDINGS, EXIT_OK, input};
use anyhow::Result;
use clap::Subcommand;
use mtasts_core::policy::{MAX_POLICY_SIZE, Mode, MxCoverage, ParsedPolicy, parse_policy};
use mtasts_core::render::build_policy;
use mtasts_core::text::escape;
use serde_json::json;
use std::io::Write;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Lint a policy file (RFC 8461 §3.2): every finding with its line and fix, and what a sender
    /// would apply.
    Lint {
        /// The policy file; `-` (the default) reads standard input.
        #[arg(default_value = "-")]
        file: String,
        /// Also say whether this MX host is covered by the policy (repeatable).
        #[arg(long = "mx", value_name = "HOST")]
        mx: Vec<String>,
    },
    /// Render a canonical policy and its content-derived id.
    Render {
        /// The policy mode.
        #[arg(long, value_parser = parse_mode)]
        mode: Mode,
        /// Seconds senders may cache the policy (at most 31557600).
        #[arg(long = "max-age", value_name = "SECONDS")]
        max_age: u64,
        /// An MX host name or `*.domain` pattern (repeatable).
        #[arg(long = "mx", value_name = "PATTERN")]
        mx: Vec<String>,
    },
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::from_keyword(s).ok_or_else(|| format!("`{s}` is not one of enforce, testing, none"))
}

pub(crate) fn run(cmd: PolicyCommand, format: Format) -> Result<u8> {
    match cmd {
        PolicyCommand::Lint { file, mx } => lint(&file, &mx, format),
        PolicyCommand::Render { mode, max_age, mx } => render(mode, max_age, &mx, format),
    }
}

fn lint(file: &str, hosts: &[String], format: Format) -> Result<u8> {
    let bytes = input::read_capped(file, MAX_POLICY_SIZE)?;
    let parsed = parse_policy(&bytes);
    let checks = parsed.mx_coverage(hosts);
    match format {
        Format::Json => {
            let mut doc = json!({
                "valid": parsed.is_valid(),
                "policy": parsed.policy,
                "findings": &parsed.diagnostics,
            });
            if !hosts.is_empty() {
                doc["mx"] = serde_json::to_value(&checks)?;
            }
            output::print_json(&doc)?;
        }
        Format::Text => print_lint_text(input::display_name(file), &parsed, &checks)?,
    }
    let uncovered = checks.iter().any(|c| !c.matched);
    Ok(if parsed.is_valid() && !uncovered {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    })
}

fn print_lint_text(name: &str, parsed: &ParsedPolicy, checks: &[MxCoverage]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} ({})",
        escape(name),
        output::verdict(parsed.is_valid()),
        output::counts(&parsed.diagnostics)
    )?;
    output::print_findings(&mut out, &parsed.diagnostics, "line")?;
    match &parsed.policy {
        Some(p) => {
            writeln!(out, "senders apply: {}", escape(&p.summary()))?;
            if parsed.has_repairable_findings() {
                writeln!(out, "corrected policy (canonical form, CRLF line ends):")?;
                for line in p.render().lines() {
                    writeln!(out, "  {}", escape(line))?;
                }
            }
        }
        None => writeln!(
            out,
            "senders apply: nothing; RFC-conformant senders treat this policy as invalid (TLS-RPT result sts-policy-invalid)"
        )?,
    }
    for c in checks {
        match &c.pattern {
            Some(p) => writeln!(out, "mx {}: covered by `{}`", escape(&c.host), escape(p))?,
            None => writeln!(out, "mx {}: NOT covered by any pattern", escape(&c.host))?,
        }
    }
    Ok(())
}

fn render(mode: Mode, max_age: u64, mx: &[String], format: Format) -> Result<u8> {
    let patterns: Vec<&str> = mx.iter().map(String::as_str).collect();
    match build_policy(mode, max_age, &patterns) {
        Ok((policy, warnings)) => {
            let text = policy.render();
            let id = policy.id();
            match format {
                Format::Json => output::print_json(&json!({
                    "text": text,
                    "id": id,
                    "record": format!("v=STSv1; id={id}"),
                    "policy": policy,
                    "findings": &warnings,
                }))?,
                Format::Text => {
                    // The policy alone on stdout, byte for byte, so it can be redirected to a file.
                    std::io::stdout().lock().write_all(text.as_bytes())?;
                    let mut err = std::io::stderr().lock();
                    output::print_findings(&mut err, &warnings, "")?;
                    writeln!(err, "id: {id}")?;
                    writeln!(
                        err,
                        "publish at _mta-sts.<domain>: TXT \"v=STSv1; id={id}\""
                    )?;
                }
            }
            Ok(EXIT_OK)
        }
        Err(errors) => {
            match format {
                Format::Json => output::print_json(&json!({
                    "text": null, "id": null, "record": null, "policy": null,
                    "findings": &errors,
                }))?,
                Format::Text => {
                    let mut err = std::io::stderr().lock();
                    writeln!(err, "cannot render the policy:")?;
                    output::print_findings(&mut err, &errors, "")?;
                }
            }
            Ok(EXIT_FINDINGS)
        }
    }
}
