//! The guided rollout of a hosted domain as a pure state machine (issue 11 §5; RFC 8461 §8.3).
//!
//! ```text
//!   begin ──> testing ──promote──> enforce[0] ──promote──> enforce[1] ── ... ──> enforce[last]
//!                ^   <──rollback──────┴──────────────────────────┴──────────────────┘
//!                │                                                                 │
//!                └─rollback── withdrawing (serves mode: none) <──remove── (any of the above)
//!                                  │
//!                                  └──remove (once safe)──> removed (serves nothing)
//! ```
//!
//! - **testing** serves `mode: testing` with a short `max_age` ([`RolloutConfig::testing_max_age`]).
//! - **promote** is gated on [`Evidence`]: a fresh live check (every MX host covered, STARTTLS and
//!   a valid certificate on every address), a minimum time in the current stage, and no failures
//!   in TLS-RPT. It moves testing to the first `enforce` step, and each `enforce` step to the next,
//!   raising `max_age` (1 day, 1 week, then the long-term value by default). `--force` with a
//!   reason overrides the gate; the reason and what it overrode are recorded.
//! - **rollback** returns to testing from any stage but removed. Senders keep a cached `enforce`
//!   policy until its `max_age` runs out; the outcome says until when ([`Notice::EnforceCached`]).
//! - **remove** first serves `mode: none` (with the same `mx` lines: some senders reject a `none`
//!   policy without them and would keep their cached one) until the longest `max_age` ever
//!   published has passed since the last non-`none` policy was served; a second `remove` then
//!   says which DNS records can go ([`Notice::DnsRecordsRemovable`]).
//!
//! Every transition is a method that takes the current time and returns an [`Outcome`] (the new
//! state, the policy to serve, the [`Transition`] record, the notices) or a [`RolloutError`]; the
//! state is never changed in place. Time is a parameter: there is no clock here. A `now` earlier
//! than the start of the current stage (clock skew between instances) counts as that start, so
//! time never runs backwards in the state.
//!
//! ```
//! use mtasts_core::rollout::{RolloutConfig, RolloutState};
//! use time::macros::datetime;
//! let cfg = RolloutConfig::default();
//! let mx = ["mx1.example.net".parse().unwrap()];
//! let begun = RolloutState::begin(&mx, datetime!(2026-01-01 0:00 UTC), &cfg).unwrap();
//! let served = begun.served.unwrap();
//! assert_eq!(served.text, "version: STSv1\r\nmode: testing\r\nmx: mx1.example.net\r\nmax_age: 86400\r\n");
//! assert_eq!(served.txt_record, format!("v=STSv1; id={}", served.id));
//! ```

mod config;
mod evidence;
mod outcome;
#[cfg(test)]
mod tests;

pub use config::{DAY, EnforceStep, LONG_TERM_MAX_AGE, MAX_CONFIG_SECS, RolloutConfig, WEEK};
pub use evidence::{
    AddressCheck, Blocker, Evidence, HostCheck, LiveCheck, MAX_BLOCKERS, Probe, TlsRptEvidence,
};
pub use outcome::{
    Action, DnsRecord, Notice, Outcome, REMOVABLE_RECORDS, REMOVABLE_RECORDS_FULL, RolloutError,
    Served, Transition,
};

use crate::name::MxPattern;
use crate::policy::{MAX_AGE_LIMIT, Mode, Policy};
use evidence::Gate;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Longest accepted `--reason` text, in characters.
pub const MAX_REASON_LEN: usize = 1000;

/// Where a domain is in its rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "kebab-case")]
pub enum Stage {
    /// Serving `mode: testing`.
    Testing,
    /// Serving `mode: enforce` at the given step of [`RolloutConfig::enforce_steps`].
    Enforce {
        /// The index of the step.
        step: usize,
    },
    /// Serving `mode: none` before removal.
    Withdrawing {
        /// When every cached non-`none` policy has expired and the records can go.
        #[serde(with = "time::serde::rfc3339")]
        safe_at: OffsetDateTime,
    },
    /// Removed: nothing is served.
    Removed,
}

impl Stage {
    /// The stage's name as stored and shown: `testing`, `enforce`, `withdrawing`, `removed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Testing => "testing",
            Self::Enforce { .. } => "enforce",
            Self::Withdrawing { .. } => "withdrawing",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Testing => f.write_str("testing"),
            Self::Enforce { step } => write!(f, "enforcing (step {})", step + 1),
            Self::Withdrawing { safe_at } => {
                write!(f, "withdrawing (safe to remove at {})", stamp(*safe_at))
            }
            Self::Removed => f.write_str("removed"),
        }
    }
}

/// A forced transition's reason (`--force --reason TEXT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Force(String);

impl Force {
    /// The reason, trimmed; refused when empty or longer than [`MAX_REASON_LEN`] characters.
    pub fn new(reason: &str) -> Result<Self, RolloutError> {
        let r = reason.trim();
        if r.is_empty() || r.chars().count() > MAX_REASON_LEN {
            return Err(RolloutError::MissingReason);
        }
        Ok(Self(r.to_owned()))
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

/// The rollout state of one hosted domain, as the store keeps it.
///
/// Change it only through the transitions. It serialises with serde (the stage flattened in:
/// `{"stage": "enforce", "step": 1, "mx": [...], ...}`), and reading it back checks it
/// ([`RolloutState::check`]): a corrupted row never becomes a served policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Stored")]
pub struct RolloutState {
    /// The stage.
    #[serde(flatten)]
    pub stage: Stage,
    /// The `mx` patterns, canonical order (empty once removed).
    #[serde(with = "mx_strings")]
    pub mx: Vec<MxPattern>,
    /// The `max_age` of the policy served now (0 once removed).
    pub max_age: u32,
    /// When the current stage began.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The longest `max_age` of any non-`none` policy served so far.
    pub longest_max_age: u32,
    /// The latest time a sender may still apply an `enforce` policy served before the current
    /// one; `None` when none was.
    #[serde(with = "time::serde::rfc3339::option")]
    pub enforce_cached_until: Option<OffsetDateTime>,
}

/// [`RolloutState`] as read, before [`RolloutState::check`].
#[derive(Deserialize)]
struct Stored {
    #[serde(flatten)]
    stage: Stage,
    #[serde(with = "mx_strings")]
    mx: Vec<MxPattern>,
    max_age: u32,
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    longest_max_age: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    enforce_cached_until: Option<OffsetDateTime>,
}

impl TryFrom<Stored> for RolloutState {
    type Error = String;
    fn try_from(s: Stored) -> Result<Self, String> {
        let state = Self {
            stage: s.stage,
            mx: s.mx,
            max_age: s.max_age,
            since: s.since,
            longest_max_age: s.longest_max_age,
            enforce_cached_until: s.enforce_cached_until,
        };
        state.check()?;
        Ok(state)
    }
}

impl RolloutState {
    /// Starts hosting in testing with the patterns `mx`.
    pub fn begin(
        mx: &[MxPattern],
        now: OffsetDateTime,
        cfg: &RolloutConfig,
    ) -> Result<Outcome, RolloutError> {
        cfg.validate()?;
        let state = Self::fresh(mx, Stage::Testing, cfg.testing_max_age, now)?;
        Ok(state.outcome(Action::Begin, None, now, vec!["begun in testing".into()]))
    }

    /// Starts hosting directly at the first `enforce` step. Going straight to `enforce` is the
    /// mistake the rollout exists to prevent, so it needs a [`Force`] reason, which is recorded.
    pub fn begin_enforced(
        mx: &[MxPattern],
        now: OffsetDateTime,
        cfg: &RolloutConfig,
        force: &Force,
    ) -> Result<Outcome, RolloutError> {
        cfg.validate()?;
        let first = cfg.step(0);
        let state = Self::fresh(mx, Stage::Enforce { step: 0 }, first.max_age, now)?;
        let mut out = state.outcome(
            Action::Begin,
            None,
            now,
            vec!["begun in enforce without testing (forced)".into()],
        );
        out.transition.forced = Some(force.reason().to_owned());
        state.push_next_step(&mut out.notices, 0, cfg);
        Ok(out)
    }

    fn fresh(
        mx: &[MxPattern],
        stage: Stage,
        max_age: u32,
        now: OffsetDateTime,
    ) -> Result<Self, RolloutError> {
        Ok(Self {
            stage,
            mx: canonical_mx(mx)?,
            max_age,
            since: now,
            longest_max_age: max_age,
            enforce_cached_until: None,
        })
    }

    /// The policy served in this state; `None` once removed.
    pub fn policy(&self) -> Option<Policy> {
        let mode = match self.stage {
            Stage::Testing => Mode::Testing,
            Stage::Enforce { .. } => Mode::Enforce,
            Stage::Withdrawing { .. } => Mode::None,
            Stage::Removed => return None,
        };
        Some(Policy {
            mode,
            max_age: self.max_age,
            mx: self.mx.clone(),
        })
    }

    /// The policy served in this state, rendered; `None` once removed.
    pub fn served(&self) -> Option<Served> {
        self.policy().map(Served::of)
    }

    /// Checks what the transitions guarantee: a served policy has `mx` patterns in canonical
    /// order and a `max_age` within the RFC limit, and `longest_max_age` covers a non-`none`
    /// policy served now.
    pub fn check(&self) -> Result<(), String> {
        let serving = self.stage != Stage::Removed;
        if serving && self.mx.is_empty() {
            return Err(format!("a {} domain needs mx patterns", self.stage.name()));
        }
        if canonical_mx(&self.mx).is_ok_and(|c| c != self.mx) {
            return Err("mx patterns are not sorted and unique".into());
        }
        if self.max_age > MAX_AGE_LIMIT {
            return Err(format!("max_age {} exceeds {MAX_AGE_LIMIT}", self.max_age));
        }
        if matches!(self.stage, Stage::Testing | Stage::Enforce { .. })
            && self.longest_max_age < self.max_age
        {
            return Err("longest_max_age is below the max_age served".into());
        }
        Ok(())
    }

    /// Until when senders may apply an `enforce` policy served so far, if any was: the current
    /// one counts as ending `now`.
    pub fn enforce_cached_until(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let current = matches!(self.stage, Stage::Enforce { .. })
            .then(|| after(now.max(self.since), u64::from(self.max_age)));
        self.enforce_cached_until.max(current)
    }

    /// What blocks a promotion now (empty when it is allowed). Illegal promotions are errors.
    pub fn promotion_blockers(
        &self,
        now: OffsetDateTime,
        evidence: Option<&Evidence>,
        cfg: &RolloutConfig,
    ) -> Result<Vec<Blocker>, RolloutError> {
        cfg.validate()?;
        let min_dwell = match self.stage {
            Stage::Testing => cfg.min_testing,
            Stage::Enforce { step } if step + 1 < cfg.enforce_steps.len() => {
                cfg.step(step).min_time
            }
            Stage::Enforce { .. } => {
                return Err(self.illegal(
                    Action::Promote,
                    "it already serves the long-term max_age; there is no further step",
                ));
            }
            Stage::Withdrawing { .. } => {
                return Err(self.illegal(
                    Action::Promote,
                    "it is being withdrawn; roll back to testing first",
                ));
            }
            Stage::Removed => {
                return Err(self.illegal(Action::Promote, "add the domain again"));
            }
        };
        let gate = Gate {
            now: now.max(self.since),
            since: self.since,
            min_dwell,
            max_evidence_age: cfg.max_evidence_age,
            require_tlsrpt: cfg.require_tlsrpt,
            mx: &self.mx,
        };
        Ok(gate.blockers(evidence))
    }

    /// Promotes: testing to the first `enforce` step, or one `enforce` step up. Refused with every
    /// [`Blocker`] unless `force` is given, which is recorded with what it overrode.
    pub fn promote(
        &self,
        now: OffsetDateTime,
        evidence: Option<&Evidence>,
        force: Option<&Force>,
        cfg: &RolloutConfig,
    ) -> Result<Outcome, RolloutError> {
        let blockers = self.promotion_blockers(now, evidence, cfg)?;
        if force.is_none() && !blockers.is_empty() {
            return Err(RolloutError::NotReady { blockers });
        }
        let now = now.max(self.since);
        let step = match self.stage {
            Stage::Enforce { step } => step + 1,
            _ => 0,
        };
        let max_age = cfg.step(step).max_age;
        let next = self.moved(Stage::Enforce { step }, max_age, now);
        let mut reasons = vec![format!("max_age {} -> {max_age}", self.max_age)];
        if blockers.is_empty() {
            reasons.push(evidence_summary(evidence));
        }
        let mut out = next.outcome(Action::Promote, Some(self.stage), now, reasons);
        if let Some(f) = force {
            out.transition.forced = Some(f.reason().to_owned());
            out.transition.overridden = blockers;
        }
        if matches!(
            evidence.map(|e| &e.tlsrpt),
            None | Some(TlsRptEvidence::NotCollected)
        ) {
            out.notices.push(Notice::TlsRptNotConsidered);
        }
        next.push_next_step(&mut out.notices, step, cfg);
        Ok(out)
    }

    /// Rolls back to testing, from `enforce` or from withdrawing. When an `enforce` policy was
    /// served, the outcome says until when senders keep applying it.
    pub fn rollback(
        &self,
        now: OffsetDateTime,
        reason: Option<&str>,
        cfg: &RolloutConfig,
    ) -> Result<Outcome, RolloutError> {
        cfg.validate()?;
        match self.stage {
            Stage::Testing => {
                return Err(self.illegal(Action::Rollback, "it is already testing"));
            }
            Stage::Removed => return Err(self.illegal(Action::Rollback, "add the domain again")),
            Stage::Enforce { .. } | Stage::Withdrawing { .. } => {}
        }
        let now = now.max(self.since);
        let next = self.moved(Stage::Testing, cfg.testing_max_age, now);
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        let reasons = vec![
            reason
                .unwrap_or("rollback asked")
                .chars()
                .take(MAX_REASON_LEN)
                .collect(),
        ];
        let mut out = next.outcome(Action::Rollback, Some(self.stage), now, reasons);
        if let Some(until) = next.enforce_cached_until.filter(|u| *u > now) {
            out.notices.insert(0, Notice::EnforceCached { until });
        }
        Ok(out)
    }

    /// Removes safely (RFC 8461 §8.3). From testing or `enforce`: serve `mode: none` until the
    /// longest `max_age` ever published has passed. From withdrawing, once that time has come:
    /// removed, and the DNS records can go. With `force`, any stage goes straight to removed (the
    /// reason is recorded, and [`Notice::PolicyMayBeCached`] says until when senders may still
    /// apply a cached policy).
    pub fn remove(
        &self,
        now: OffsetDateTime,
        force: Option<&Force>,
        cfg: &RolloutConfig,
    ) -> Result<Outcome, RolloutError> {
        cfg.validate()?;
        let now = now.max(self.since);
        let safe_at = match self.stage {
            Stage::Removed => return Err(self.illegal(Action::Remove, "it is already removed")),
            Stage::Withdrawing { safe_at } => safe_at,
            Stage::Testing | Stage::Enforce { .. } => after(now, u64::from(self.longest_max_age)),
        };
        let withdrawing = matches!(self.stage, Stage::Withdrawing { .. });
        if !withdrawing && force.is_none() {
            let next = self.moved(Stage::Withdrawing { safe_at }, cfg.none_max_age, now);
            let reasons = vec![format!(
                "serving mode: none until the longest max_age published ({} s) has passed",
                self.longest_max_age
            )];
            let mut out = next.outcome(Action::Remove, Some(self.stage), now, reasons);
            if let Some(until) = next.enforce_cached_until.filter(|u| *u > now) {
                out.notices.insert(0, Notice::EnforceCached { until });
            }
            out.notices.push(Notice::RemovalSafeAt { at: safe_at });
            return Ok(out);
        }
        if now < safe_at && force.is_none() {
            return Err(RolloutError::TooEarly { safe_at });
        }
        let mut next = self.moved(Stage::Removed, 0, now);
        next.mx.clear();
        let mut out = next.outcome(
            Action::Remove,
            Some(self.stage),
            now,
            vec!["every cached policy has expired".into()],
        );
        if now < safe_at {
            out.transition.reasons = vec!["removed before every cached policy expired".into()];
            if let Some(until) = next.enforce_cached_until.filter(|u| *u > now) {
                out.notices.push(Notice::EnforceCached { until });
            }
            out.notices
                .push(Notice::PolicyMayBeCached { until: safe_at });
        }
        if let Some(f) = force {
            out.transition.forced = Some(f.reason().to_owned());
        }
        out.notices.push(Notice::DnsRecordsRemovable {
            records: REMOVABLE_RECORDS.to_vec(),
        });
        Ok(out)
    }

    /// Replaces the `mx` patterns, in the same stage (for instance after an MX change).
    pub fn set_mx(&self, mx: &[MxPattern], now: OffsetDateTime) -> Result<Outcome, RolloutError> {
        if self.stage == Stage::Removed {
            return Err(self.illegal(Action::SetMx, "add the domain again"));
        }
        let mx = canonical_mx(mx)?;
        if mx == self.mx {
            return Err(RolloutError::Unchanged);
        }
        let now = now.max(self.since);
        let mut next = self.clone();
        next.retire_enforce(self, now);
        next.mx = mx;
        let added: Vec<String> = next
            .mx
            .iter()
            .filter(|p| !self.mx.contains(p))
            .map(ToString::to_string)
            .collect();
        let removed: Vec<String> = self
            .mx
            .iter()
            .filter(|p| !next.mx.contains(p))
            .map(ToString::to_string)
            .collect();
        let reasons = vec![format!(
            "mx added: [{}]; removed: [{}]",
            added.join(", "),
            removed.join(", ")
        )];
        let mut out = next.outcome(Action::SetMx, Some(self.stage), now, reasons);
        if matches!(self.stage, Stage::Enforce { .. })
            && let Some(until) = next.enforce_cached_until
        {
            out.notices.insert(0, Notice::EnforceCached { until });
        }
        Ok(out)
    }

    /// The state after leaving this one for `stage` serving `max_age` at `now`.
    fn moved(&self, stage: Stage, max_age: u32, now: OffsetDateTime) -> Self {
        let mut next = self.clone();
        next.retire_enforce(self, now);
        next.stage = stage;
        next.max_age = max_age;
        next.since = now;
        if matches!(stage, Stage::Testing | Stage::Enforce { .. }) {
            next.longest_max_age = next.longest_max_age.max(max_age);
        }
        next
    }

    /// Records that `prev`'s policy stops being served at `now`: an `enforce` one stays cached
    /// by senders for its `max_age`.
    fn retire_enforce(&mut self, prev: &Self, now: OffsetDateTime) {
        if matches!(prev.stage, Stage::Enforce { .. }) {
            let until = after(now, u64::from(prev.max_age));
            self.enforce_cached_until = self.enforce_cached_until.max(Some(until));
        }
    }

    fn outcome(
        &self,
        action: Action,
        from: Option<Stage>,
        at: OffsetDateTime,
        reasons: Vec<String>,
    ) -> Outcome {
        let served = self.served();
        let mut notices = Vec::new();
        if let Some(s) = &served {
            notices.push(Notice::PublishId {
                txt_record: s.txt_record.clone(),
            });
        }
        Outcome {
            state: self.clone(),
            served,
            transition: Transition {
                action,
                from,
                to: self.stage,
                at,
                reasons,
                forced: None,
                overridden: Vec::new(),
            },
            notices,
        }
    }

    fn push_next_step(&self, notices: &mut Vec<Notice>, step: usize, cfg: &RolloutConfig) {
        if step + 1 < cfg.enforce_steps.len() {
            notices.push(Notice::NextStep {
                max_age: cfg.step(step + 1).max_age,
                not_before: after(self.since, cfg.step(step).min_time),
            });
        }
    }

    fn illegal(&self, action: Action, why: &'static str) -> RolloutError {
        RolloutError::Illegal {
            action,
            stage: self.stage,
            why,
        }
    }
}

fn canonical_mx(mx: &[MxPattern]) -> Result<Vec<MxPattern>, RolloutError> {
    if mx.is_empty() {
        return Err(RolloutError::NoMx);
    }
    let mut v = mx.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

fn evidence_summary(evidence: Option<&Evidence>) -> String {
    match evidence {
        Some(e) => {
            let addresses: usize = e.live.hosts.iter().map(|h| h.addresses.len()).sum();
            format!(
                "live check at {}: {} MX hosts covered, STARTTLS and a valid certificate on all {} addresses",
                stamp(e.live.checked_at),
                e.live.hosts.len(),
                addresses
            )
        }
        None => "no evidence".into(),
    }
}

/// `t` plus `secs`, saturating at the largest representable time.
pub(crate) fn after(t: OffsetDateTime, secs: u64) -> OffsetDateTime {
    i64::try_from(secs)
        .ok()
        .and_then(|s| t.checked_add(time::Duration::seconds(s)))
        .unwrap_or_else(|| time::PrimitiveDateTime::MAX.assume_utc())
}

/// RFC 3339 text of a time, for messages.
pub(crate) fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Serde for the `mx` list: strings out, strictly validated patterns in.
mod mx_strings {
    use crate::name::MxPattern;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(mx: &[MxPattern], s: S) -> Result<S::Ok, S::Error> {
        mx.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MxPattern>, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        raw.iter()
            .map(|r| {
                MxPattern::parse_strict(r).map_err(|p| {
                    serde::de::Error::custom(format!("mx pattern `{r}` {}", p.describe()))
                })
            })
            .collect()
    }
}
