//! Output formats, colours, and the shared rendering of findings.

use mtasts_core::text::escape;
use mtasts_core::{Diagnostic, Severity};
use owo_colors::{OwoColorize, Stream::Stdout};
use serde::Serialize;
use std::io::Write;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Readable text (the default).
    Text,
    /// One JSON document, in the schema documented in docs/json-output.md.
    Json,
}

/// The `--format` values: `jsonl` and `csv` exist for `mtasts check` (bulk output) only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FormatArg {
    /// Readable text (the default).
    Text,
    /// One JSON document.
    Json,
    /// One JSON object per line, as results arrive (`check` only).
    Jsonl,
    /// One CSV row per domain, as results arrive (`check` only).
    Csv,
}

/// When to colour text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Color {
    /// Only on a terminal, and never when NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    pub(crate) fn apply(self) {
        match self {
            Self::Auto => {}
            Self::Always => owo_colors::set_override(true),
            Self::Never => owo_colors::set_override(false),
        }
    }
}

/// Whether text on standard output is coloured: `--color`, else NO_COLOR and whether it is a
/// terminal (owo-colors decides, as for every other coloured word).
pub(crate) fn stdout_coloured() -> bool {
    "x".if_supports_color(Stdout, |t| t.red()).to_string() != "x"
}

/// Writes a JSON value and a newline to standard output.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// `1 error, 2 warnings` style counts.
pub(crate) fn counts(diags: &[Diagnostic]) -> String {
    let n = |s| diags.iter().filter(|d| d.severity == s).count();
    let part = |k: usize, word: &str| format!("{k} {word}{}", if k == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    for (sev, word) in [
        (Severity::Error, "error"),
        (Severity::Warning, "warning"),
        (Severity::Info, "note"),
    ] {
        let k = n(sev);
        if k > 0 {
            parts.push(part(k, word));
        }
    }
    if parts.is_empty() {
        "no findings".to_owned()
    } else {
        parts.join(", ")
    }
}

/// The verdict word, coloured.
pub(crate) fn verdict(valid: bool) -> String {
    if valid {
        "valid".if_supports_color(Stdout, |t| t.green()).to_string()
    } else {
        "INVALID".if_supports_color(Stdout, |t| t.red()).to_string()
    }
}

/// Prints findings as aligned text: position, severity, id, message, then the fix.
pub(crate) fn print_findings(
    out: &mut impl Write,
    diags: &[Diagnostic],
    what: &str,
) -> std::io::Result<()> {
    for d in diags {
        let pos = match (d.line, d.column) {
            (Some(l), Some(c)) => format!("{what} {l}:{c}"),
            (Some(l), None) => format!("{what} {l}"),
            _ => String::new(),
        };
        let sev = match d.severity {
            Severity::Error => "error".if_supports_color(Stdout, |t| t.red()).to_string(),
            Severity::Warning => "warning"
                .if_supports_color(Stdout, |t| t.yellow())
                .to_string(),
            Severity::Info => "note".if_supports_color(Stdout, |t| t.cyan()).to_string(),
        };
        let pos = if pos.is_empty() {
            String::new()
        } else {
            format!("{pos}: ")
        };
        writeln!(
            out,
            "  {pos}{sev}: {} [{}]",
            escape(&d.message),
            d.id.if_supports_color(Stdout, |t| t.dimmed())
        )?;
        writeln!(out, "      fix: {}", escape(&d.fix))?;
    }
    Ok(())
}

/// An error and its causes for `mtasts: ...` on stderr, each said once. Many errors (ours,
/// sqlx's) already put their cause in their own message, which `{:#}` would repeat after it:
/// a cause whose message is already in the text is left out.
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// Says its cause in its message and gives it as its source too (as thiserror's
    /// `#[error("...: {source}")]` does).
    #[derive(Debug)]
    struct Db(std::io::Error);

    impl std::fmt::Display for Db {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "store database: {}", self.0)
        }
    }

    impl std::error::Error for Db {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::other("connection refused");
        // A cause repeated in its wrapper's message: once.
        let e = anyhow::Error::new(Db(io())).context("store postgres://db/x");
        assert_eq!(
            error_text(&e),
            "store postgres://db/x: store database: connection refused"
        );
        // A cause not in the message: appended, as `{:#}` does.
        let e = anyhow::Error::new(io()).context("cannot read a.json");
        assert_eq!(error_text(&e), "cannot read a.json: connection refused");
    }
}
