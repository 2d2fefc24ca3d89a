//! The rollout's schedule and gates: explicit constants and [`RolloutConfig`].

use super::RolloutError;
use crate::policy::MAX_AGE_LIMIT;
use serde::{Deserialize, Serialize};

/// One day, in seconds.
pub const DAY: u32 = 86_400;
/// One week, in seconds.
pub const WEEK: u32 = 7 * DAY;
/// The default long-term `max_age`: the RFC maximum (about a year). RFC 8461 §10.2 asks for long
/// values, since the protection against a downgrade lasts only as long as the cache.
pub const LONG_TERM_MAX_AGE: u32 = MAX_AGE_LIMIT;
/// Longest accepted minimum time or evidence age, in seconds (ten years): beyond it a value is a
/// typing error.
pub const MAX_CONFIG_SECS: u64 = 10 * 366 * 86_400;

/// One `enforce` step: the `max_age` served, and the time to spend at it before the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforceStep {
    /// The `max_age` served at this step, in seconds.
    pub max_age: u32,
    /// The minimum time at this step before promoting to the next, in seconds (unused for the
    /// last step).
    pub min_time: u64,
}

/// The rollout's schedule and gates. [`Default`] gives the documented schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// `max_age` while testing, in seconds. Default [`DAY`]: short, so a mistake is forgotten fast.
    pub testing_max_age: u32,
    /// Minimum time in testing before the first promotion, in seconds. Default [`WEEK`]: a week of
    /// daily TLS-RPT reports.
    pub min_testing: u64,
    /// The `enforce` steps, `max_age` strictly increasing. Default: [`DAY`] for a day, [`WEEK`]
    /// for a week, then [`LONG_TERM_MAX_AGE`].
    pub enforce_steps: Vec<EnforceStep>,
    /// `max_age` of the `mode: none` policy served while withdrawing, in seconds. Default [`DAY`]
    /// (RFC 8461 §8.3 suggests a small value such as one day).
    pub none_max_age: u32,
    /// Oldest live check accepted as evidence, in seconds. Default one hour.
    pub max_evidence_age: u64,
    /// Whether promotion needs TLS-RPT reports ([`TlsRptEvidence::Clean`](super::TlsRptEvidence::Clean)). Default off: the
    /// report intake is not built yet; failures in reports always block.
    pub require_tlsrpt: bool,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            testing_max_age: DAY,
            min_testing: u64::from(WEEK),
            enforce_steps: vec![
                EnforceStep {
                    max_age: DAY,
                    min_time: u64::from(DAY),
                },
                EnforceStep {
                    max_age: WEEK,
                    min_time: u64::from(WEEK),
                },
                EnforceStep {
                    max_age: LONG_TERM_MAX_AGE,
                    min_time: 0,
                },
            ],
            none_max_age: DAY,
            max_evidence_age: 3600,
            require_tlsrpt: false,
        }
    }
}

impl RolloutConfig {
    /// Checks the configuration: every `max_age` within the RFC limit, at least one step, steps
    /// strictly increasing, times within [`MAX_CONFIG_SECS`].
    pub fn validate(&self) -> Result<(), RolloutError> {
        let bad = |m: String| Err(RolloutError::Config(m));
        for (what, v) in [
            ("testing_max_age", self.testing_max_age),
            ("none_max_age", self.none_max_age),
        ]
        .into_iter()
        .chain(
            self.enforce_steps
                .iter()
                .map(|s| ("an enforce step", s.max_age)),
        ) {
            if v > MAX_AGE_LIMIT {
                return bad(format!("{what} {v} exceeds the RFC limit {MAX_AGE_LIMIT}"));
            }
        }
        if self.enforce_steps.is_empty() {
            return bad("there must be at least one enforce step".into());
        }
        if self
            .enforce_steps
            .windows(2)
            .any(|w| w[0].max_age >= w[1].max_age)
        {
            return bad("enforce steps must raise max_age strictly".into());
        }
        let times = [self.min_testing, self.max_evidence_age]
            .into_iter()
            .chain(self.enforce_steps.iter().map(|s| s.min_time));
        for t in times {
            if t > MAX_CONFIG_SECS {
                return bad(format!("{t} s is more than ten years"));
            }
        }
        Ok(())
    }

    /// The step at `index`, or the last one when the schedule was shortened since.
    pub(super) fn step(&self, index: usize) -> EnforceStep {
        let last = self.enforce_steps.len().saturating_sub(1);
        self.enforce_steps[index.min(last)]
    }
}
