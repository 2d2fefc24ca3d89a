//! The order of findings, and the verdict that follows from them.

use crate::model::{Finding, Verdict};
use mtasts_core::Severity;

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
