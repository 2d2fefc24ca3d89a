//! What a transition returns: the new state, the policy to serve, the record of the transition
//! and what the owner must be told; and the errors of a refused transition.

use super::evidence::Blocker;
use super::{RolloutState, Stage, stamp};
use crate::policy::Policy;
use serde::Serialize;
use std::fmt;
use time::OffsetDateTime;

/// The result of an allowed transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The new state, for the store.
    pub state: RolloutState,
    /// The policy to serve from now on; `None` once removed (the policy host answers 404).
    pub served: Option<Served>,
    /// The record of the transition, for the history.
    pub transition: Transition,
    /// What the owner must know now.
    pub notices: Vec<Notice>,
}

/// The policy to serve, rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    /// The policy (mode, max_age, mx).
    pub policy: Policy,
    /// Its canonical text ([`Policy::render`]), served byte for byte.
    pub text: String,
    /// Its content-derived id ([`Policy::id`]).
    pub id: String,
    /// The `_mta-sts` TXT record to publish for it: `v=STSv1; id=<id>`.
    pub txt_record: String,
}

impl Served {
    pub(super) fn of(policy: Policy) -> Self {
        let text = policy.render();
        let id = policy.id();
        Self {
            txt_record: format!("v=STSv1; id={id}"),
            policy,
            text,
            id,
        }
    }
}

/// The operation asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Start hosting a domain.
    Begin,
    /// Testing to `enforce`, or one `max_age` step up.
    Promote,
    /// Back to testing.
    Rollback,
    /// Withdraw (serve `mode: none`), then remove.
    Remove,
    /// Replace the `mx` patterns.
    SetMx,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Begin => "begin",
            Self::Promote => "promote",
            Self::Rollback => "roll back",
            Self::Remove => "remove",
            Self::SetMx => "change the mx patterns of",
        })
    }
}

/// The record of one transition, for the audit history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// What was asked.
    pub action: Action,
    /// The stage before (`None` for [`Action::Begin`]).
    pub from: Option<Stage>,
    /// The stage after.
    pub to: Stage,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why it was allowed, or what the owner gave as the reason.
    pub reasons: Vec<String>,
    /// The reason given with `--force`, when the transition was forced.
    pub forced: Option<String>,
    /// What `--force` overrode (empty when nothing blocked).
    pub overridden: Vec<Blocker>,
}

/// Something the owner must know after a transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "notice", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Notice {
    /// Senders that fetched an `enforce` policy keep applying it until it expires: the MX hosts
    /// it lists must keep working (STARTTLS, valid certificate) until then.
    EnforceCached {
        /// When the last cached `enforce` policy expires.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// Publish the new TXT record (`Served::txt_record`) so senders fetch the new policy.
    PublishId {
        /// The record.
        txt_record: String,
    },
    /// Full delegation: the server itself publishes the new TXT record in its own zone (RFC 2136)
    /// once it serves the new policy; the owner's `_mta-sts` CNAME stays as it is.
    IdPublishedByServer {
        /// The record.
        txt_record: String,
        /// Where the server publishes it (`<domain>._mta-sts.<our zone>`).
        name: String,
    },
    /// The next promotion is possible from this time (given fresh evidence).
    NextStep {
        /// The `max_age` of the next step.
        max_age: u32,
        /// When the minimum time at this stage ends.
        #[serde(with = "time::serde::rfc3339")]
        not_before: OffsetDateTime,
    },
    /// The domain now serves `mode: none`; removal is safe from this time (RFC 8461 §8.3).
    RemovalSafeAt {
        /// When every cached non-`none` policy has expired.
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// Removed before every cached policy expired (forced): senders may apply one until then.
    PolicyMayBeCached {
        /// When the last cached non-`none` policy expires.
        #[serde(with = "time::serde::rfc3339")]
        until: OffsetDateTime,
    },
    /// These DNS records can be removed now.
    DnsRecordsRemovable {
        /// The records.
        records: Vec<DnsRecord>,
    },
    /// TLS-RPT data was not part of the decision (no report arrived for the domain in the days
    /// weighed, or the promotion was forced without evidence).
    TlsRptNotConsidered,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EnforceCached { until } => write!(
                f,
                "senders that fetched the enforce policy keep applying it until {} (its max_age \
                 runs out); keep every MX host it lists working with STARTTLS and a valid \
                 certificate until then",
                stamp(*until)
            ),
            Self::PublishId { txt_record } => {
                write!(
                    f,
                    "publish the TXT record `{txt_record}` at _mta-sts.<domain>"
                )
            }
            Self::IdPublishedByServer { txt_record, name } => write!(
                f,
                "the server publishes the TXT record `{txt_record}` at {name} by DNS update \
                 once it serves the new policy: nothing to change in your zone"
            ),
            Self::NextStep {
                max_age,
                not_before,
            } => write!(
                f,
                "max_age can be raised to {max_age} s from {} (run promote again then)",
                stamp(*not_before)
            ),
            Self::RemovalSafeAt { at } => write!(
                f,
                "serving mode: none; the records can go from {} (RFC 8461 §8.3: when the longest \
                 max_age published has passed); run remove again then",
                stamp(*at)
            ),
            Self::PolicyMayBeCached { until } => write!(
                f,
                "removed early: senders may apply a cached policy until {}; keep the MX hosts \
                 working with STARTTLS until then",
                stamp(*until)
            ),
            Self::DnsRecordsRemovable { records } => {
                f.write_str("these DNS records can be removed now:")?;
                for (i, r) in records.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{}.<domain> {} ({})", r.label, r.rtype, r.why)?;
                }
                Ok(())
            }
            Self::TlsRptNotConsidered => f.write_str(
                "TLS-RPT reports were not considered (none arrived for the domain in the \
                     days weighed, or the promotion was forced)",
            ),
        }
    }
}

/// A DNS record of the domain that can go after removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// The owner name's label under the domain (`_mta-sts`, `mta-sts`).
    pub label: &'static str,
    /// The record type(s).
    pub rtype: &'static str,
    /// What it was for.
    pub why: &'static str,
}

impl DnsRecord {
    /// The full owner name for `domain`.
    pub fn name(&self, domain: &str) -> String {
        format!("{}.{domain}", self.label)
    }
}

/// The records [`Notice::DnsRecordsRemovable`] lists. `_smtp._tls` (TLS-RPT) is not among them:
/// it serves DANE and reporting as well, and can stay.
pub const REMOVABLE_RECORDS: [DnsRecord; 2] = [
    DnsRecord {
        label: "_mta-sts",
        rtype: "TXT",
        why: "announced the policy; remove it first",
    },
    DnsRecord {
        label: "mta-sts",
        rtype: "A/AAAA or CNAME",
        why: "the policy host, pointing at this server",
    },
];

/// The records [`Notice::DnsRecordsRemovable`] lists for a domain delegated in full (its
/// `_mta-sts` and `_smtp._tls` are CNAMEs into the hosting provider's zone, whose TXT records
/// the provider withdraws itself).
pub const REMOVABLE_RECORDS_FULL: [DnsRecord; 3] = [
    DnsRecord {
        label: "_mta-sts",
        rtype: "CNAME",
        why: "pointed at the policy announcement we published; remove it first",
    },
    DnsRecord {
        label: "_smtp._tls",
        rtype: "CNAME",
        why: "pointed at the TLS-RPT record we published; keep a TLS-RPT record of your own if \
              you still want reports",
    },
    DnsRecord {
        label: "mta-sts",
        rtype: "A/AAAA or CNAME",
        why: "the policy host, pointing at this server",
    },
];

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RolloutError {
    /// The transition does not exist from this stage.
    #[error("cannot {action} a domain that is {stage}: {why}")]
    Illegal {
        /// What was asked.
        action: Action,
        /// The current stage.
        stage: Stage,
        /// Why not, and what to do instead.
        why: &'static str,
    },
    /// The promotion gate is not met; `--force --reason` overrides it.
    #[error("not ready to promote: {}", join(.blockers))]
    NotReady {
        /// Every unmet condition.
        blockers: Vec<Blocker>,
    },
    /// Removal before every cached non-`none` policy expired; `--force --reason` overrides it.
    #[error(
        "removal is not safe before {}: senders may still apply a cached policy until then \
         (RFC 8461 §8.3)", stamp(*.safe_at)
    )]
    TooEarly {
        /// When removal becomes safe.
        safe_at: OffsetDateTime,
    },
    /// `--force` without a usable reason.
    #[error(
        "--force needs a reason (--reason TEXT, 1 to {} characters)",
        super::MAX_REASON_LEN
    )]
    MissingReason,
    /// A policy that is served needs at least one `mx` pattern.
    #[error("the policy needs at least one mx pattern")]
    NoMx,
    /// [`Action::SetMx`] with the patterns already served.
    #[error("the mx patterns are unchanged")]
    Unchanged,
    /// The configuration is unusable.
    #[error("invalid rollout configuration: {0}")]
    Config(String),
}

fn join(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
