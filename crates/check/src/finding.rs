//! Building findings, and the verdict that follows from them.

use crate::model::{Finding, Verdict};
use mtasts_core::{Diagnostic, Severity};

impl Finding {
    /// A finding. `id` is one of the catalogue ([`mtasts_core::catalog`]) with `severity` one of
    /// its severities (asserted in debug builds, so every test that reaches a finding checks it).
    pub fn new(
        id: &'static str,
        severity: Severity,
        message: impl Into<String>,
        observed: Option<String>,
        fix: impl Into<String>,
    ) -> Self {
        debug_assert!(
            mtasts_core::catalog::allows(id, severity),
            "{id} ({severity}) is not in the catalogue"
        );
        Self {
            id,
            severity,
            message: message.into(),
            observed,
            fix: fix.into(),
            untested: false,
        }
    }

    /// A step that could not be tested: reported as a warning with `untested` set.
    pub fn untested(id: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        debug_assert!(
            mtasts_core::catalog::entry(id).is_some_and(|e| e.untested),
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

/// Most severe first; untested after errors; stable within a severity.
pub(crate) fn sort(findings: &mut [Finding]) {
    findings.sort_by_key(|f| (std::cmp::Reverse(f.severity), f.untested));
}

/// The verdict the findings add up to.
pub(crate) fn verdict(findings: &[Finding]) -> Verdict {
    if findings.iter().any(|f| f.severity == Severity::Error) {
        Verdict::Fail
    } else if findings.iter().any(|f| f.untested) {
        Verdict::Incomplete
    } else if findings.iter().any(|f| f.severity == Severity::Warning) {
        Verdict::Warn
    } else {
        Verdict::Pass
    }
}
