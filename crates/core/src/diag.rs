//! Positioned diagnostics shared by every parser in this crate.
//!
//! A [`Diagnostic`] is a *finding*: the input was read, and something in it deviates from the RFC or
//! from good practice. It is not an error of the parser. Each one has a stable [`Diagnostic::id`]
//! (documented in `docs/diagnostics.md` at the repository root), a [`Severity`], a 1-based line (and
//! column where it helps), a message saying what was observed and a fix saying what to do.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How serious a finding is.
///
/// `Error` means the input breaks an RFC requirement: an RFC-conformant reader rejects it, or
/// mail delivery is weakened. `Warning` means it works but is fragile or unwise. `Info` is
/// advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Advice; nothing is wrong.
    Info,
    /// Works, but fragile or not recommended.
    Warning,
    /// Breaks an RFC requirement.
    Error,
}

impl Severity {
    /// The lowercase name used in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding about an input, with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable identifier, e.g. `policy.mode.invalid`. Never changes meaning once released.
    pub id: &'static str,
    /// How serious it is.
    pub severity: Severity,
    /// 1-based line number in the input, when the finding is tied to a line.
    pub line: Option<usize>,
    /// 1-based column (in bytes), when it helps to point inside the line.
    #[serde(skip)]
    pub column: Option<usize>,
    /// What was observed.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Diagnostic {
    /// A finding not tied to a position. `id` is one of the [`crate::catalog`] (asserted in
    /// debug builds; the severity is asserted where the parsers collect their findings).
    pub fn new(
        id: &'static str,
        severity: Severity,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        debug_assert!(
            crate::catalog::entry(id).is_some(),
            "{id} is not in the catalogue"
        );
        Self {
            id,
            severity,
            line: None,
            column: None,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// Ties the finding to a 1-based line.
    #[must_use]
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Ties the finding to a 1-based column.
    #[must_use]
    pub fn at_column(mut self, column: usize) -> Self {
        self.column = Some(column);
        self
    }

    /// True for [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{}: ", l, c)?,
            (Some(l), None) => write!(f, "{}: ", l)?,
            _ => {}
        }
        write!(f, "{} [{}]: {}", self.severity, self.id, self.message)
    }
}

/// True when none of the diagnostics is an error: the RFC verdict on the input.
pub fn no_errors(diags: &[Diagnostic]) -> bool {
    !diags.iter().any(Diagnostic::is_error)
}

/// The most diagnostics a parser returns for one input. Past this, one `input.too-many-findings`
/// diagnostic says how many were left out, so hostile input cannot make output grow without bound.
pub const MAX_DIAGNOSTICS: usize = 200;

/// Collects diagnostics up to [`MAX_DIAGNOSTICS`] and counts the rest.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    diags: Vec<Diagnostic>,
    dropped: usize,
}

impl Sink {
    pub(crate) fn push(&mut self, d: Diagnostic) {
        debug_assert!(
            crate::catalog::allows(d.id, d.severity),
            "{} ({}) is not in the catalogue",
            d.id,
            d.severity
        );
        // Errors always decide the verdict, so a dropped one must not hide it: keep the first
        // error even when the list is full.
        if self.diags.len() < MAX_DIAGNOSTICS
            || (d.is_error() && !self.diags.iter().any(Diagnostic::is_error))
        {
            self.diags.push(d);
        } else {
            self.dropped += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        if self.dropped > 0 {
            self.diags.push(Diagnostic::new(
                "input.too-many-findings",
                Severity::Info,
                format!("{} more findings were left out", self.dropped),
                "fix the findings above and run again",
            ));
        }
        self.diags
    }
}
