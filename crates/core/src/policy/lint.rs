//! What `mtasts policy lint` says beside the findings: which MX hosts a policy covers
//! ([`ParsedPolicy::mx_coverage`]), the one line of what senders apply ([`Policy::summary`]) and
//! whether the corrected text is worth showing ([`ParsedPolicy::has_repairable_findings`]).

use super::{ParsedPolicy, Policy};
use crate::diag::Severity;
use serde::Serialize;

/// Whether one MX host is covered by a policy (the `mx` member of `policy lint --format json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MxCoverage {
    /// The host name, as given.
    pub host: String,
    /// Whether a pattern of the policy covers it (never, when senders apply no policy).
    pub matched: bool,
    /// The first pattern covering it.
    pub pattern: Option<String>,
}

impl ParsedPolicy {
    /// For each of `hosts`, in order, whether the policy senders apply covers it (RFC 8461 §4.1).
    pub fn mx_coverage(&self, hosts: &[impl AsRef<str>]) -> Vec<MxCoverage> {
        hosts
            .iter()
            .map(|h| {
                let pattern = self
                    .policy
                    .as_ref()
                    .and_then(|p| p.matching_pattern(h.as_ref()))
                    .map(ToString::to_string);
                MxCoverage {
                    host: h.as_ref().to_owned(),
                    matched: pattern.is_some(),
                    pattern,
                }
            })
            .collect()
    }

    /// Whether something other than advice about the mode was found, i.e. whether the canonical
    /// text ([`Policy::render`]) differs from the file in a way worth showing.
    pub fn has_repairable_findings(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity != Severity::Info && d.id != "policy.mode.testing")
    }
}

impl Policy {
    /// What senders apply, in one line: `mode enforce, max_age 604800, mx a.example, *.b.example`
    /// (`no mx patterns` when there is none). Patterns are the policy's own; the caller escapes.
    pub fn summary(&self) -> String {
        let mx: Vec<String> = self.mx.iter().map(ToString::to_string).collect();
        let mx = if mx.is_empty() {
            "no mx patterns".to_owned()
        } else {
            format!("mx {}", mx.join(", "))
        };
        format!("mode {}, max_age {}, {mx}", self.mode, self.max_age)
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::parse_policy;

    #[test]
    fn summary_names_mode_max_age_and_every_pattern() {
        let p = parse_policy(
            b"version: STSv1\nmode: enforce\nmx: a.example\nmx: *.b.example\nmax_age: 86400\n",
        );
        let policy = p.policy.unwrap();
        assert_eq!(
            policy.summary(),
            "mode enforce, max_age 86400, mx a.example, *.b.example"
        );
        let none = parse_policy(b"version: STSv1\nmode: none\nmax_age: 86400\n");
        assert_eq!(
            none.policy.unwrap().summary(),
            "mode none, max_age 86400, no mx patterns"
        );
    }

    #[test]
    fn mx_coverage_is_per_host_and_never_covered_without_a_policy() {
        let p = parse_policy(b"version: STSv1\nmode: enforce\nmx: *.b.example\nmax_age: 86400\n");
        let c = p.mx_coverage(&["MX1.B.example", "b.example"]);
        assert!(c[0].matched && c[0].pattern.as_deref() == Some("*.b.example"));
        assert_eq!(c[0].host, "MX1.B.example");
        assert!(!c[1].matched && c[1].pattern.is_none());
        let invalid = parse_policy(b"version: STSv2\n");
        assert!(
            invalid
                .mx_coverage(&["mx1.b.example"])
                .iter()
                .all(|c| !c.matched)
        );
    }

    #[test]
    fn testing_mode_advice_alone_is_not_repairable() {
        let testing =
            parse_policy(b"version: STSv1\nmode: testing\nmx: mx1.mailhost.org\nmax_age: 86400\n");
        assert!(!testing.has_repairable_findings());
        let trailing_dot =
            parse_policy(b"version: STSv1\nmode: enforce\nmx: mx1.mailhost.org.\nmax_age: 86400\n");
        assert!(trailing_dot.has_repairable_findings());
    }
}
