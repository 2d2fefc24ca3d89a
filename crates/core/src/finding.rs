//! The finding of an observation: what `check` (and every later service) reports about a domain.
//!
//! A [`Finding`] carries an id of the [catalogue](crate::catalog), a severity, what was observed
//! and the fix; a parser's positioned [`Diagnostic`] becomes one with
//! [`Finding::from_diagnostic`]. It reads back from JSON only with a catalogued id.

use crate::{Diagnostic, Severity};
use serde::{Deserialize, Deserializer, Serialize};

/// One finding: a stable id, a severity, what was observed, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id, one of the catalogue ([`crate::catalog`], docs/diagnostics.md).
    pub id: &'static str,
    /// How serious.
    pub severity: Severity,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The raw observation (a record, a policy line, a server reply), when there is one.
    pub observed: Option<String>,
    /// What to do.
    pub fix: String,
    /// True when the check could not be made (timeout, refused connection, DNS failure): not a
    /// failure of the domain, but not a pass either.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untested: bool,
    /// How many similar findings (same id, severity and untested flag) this one stands for
    /// when it groups them (`check` groups findings past the first few of a kind); 0, and left
    /// out of JSON, for a finding that stands for itself. Counts of findings use
    /// [`Finding::weight`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grouped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A [`Finding`] as read from JSON, before its id is looked up in the catalogue.
#[derive(Deserialize)]
struct ReadFinding {
    id: String,
    severity: Severity,
    message: String,
    observed: Option<String>,
    fix: String,
    #[serde(default)]
    untested: bool,
    #[serde(default)]
    grouped: usize,
}

/// Reads the id as the catalogue's: an id the catalogue does not list is an error.
impl<'de> Deserialize<'de> for Finding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = ReadFinding::deserialize(d)?;
        let id = crate::catalog::entry(&f.id)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown finding id {:?}", f.id)))?
            .id;
        Ok(Self {
            id,
            severity: f.severity,
            message: f.message,
            observed: f.observed,
            fix: f.fix,
            untested: f.untested,
            grouped: f.grouped,
        })
    }
}

impl Finding {
    /// A finding. `id` is one of the catalogue ([`crate::catalog`]) with `severity` one of
    /// its severities (asserted in debug builds, so every test that reaches a finding checks it).
    pub fn new(
        id: &'static str,
        severity: Severity,
        message: impl Into<String>,
        observed: Option<String>,
        fix: impl Into<String>,
    ) -> Self {
        debug_assert!(
            crate::catalog::allows(id, severity),
            "{id} ({severity}) is not in the catalogue"
        );
        Self {
            id,
            severity,
            message: message.into(),
            observed,
            fix: fix.into(),
            untested: false,
            grouped: 0,
        }
    }

    /// How many findings this one counts for: the number it groups, or 1.
    pub fn weight(&self) -> usize {
        self.grouped.max(1)
    }

    /// A step that could not be tested: reported as a warning with `untested` set.
    pub fn untested(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        debug_assert!(
            crate::catalog::entry(id).is_some_and(|e| e.untested),
            "{id} is not an untested id of the catalogue"
        );
        Self {
            untested: true,
            ..Self::new(id, Severity::Warning, message, None, fix)
        }
    }

    /// A core parser diagnostic, with the input line it points at as the observation.
    pub fn from_diagnostic(d: &Diagnostic, lines: &[String]) -> Self {
        let observed = d.line.and_then(|l| lines.get(l.wrapping_sub(1))).cloned();
        Self::new(d.id, d.severity, d.message.clone(), observed, d.fix.clone())
    }
}
