//! The evidence that gates a promotion, and what blocks it.
//!
//! A promotion (testing to `enforce`, or one `max_age` step up) is allowed when a fresh live check
//! shows every MX host covered by the policy and STARTTLS with a valid certificate on every
//! address, enough time has passed in the current stage, and TLS-RPT shows no failures. Each
//! unmet condition is one [`Blocker`]; `--force` with a reason overrides them all and is recorded.

use super::{after, stamp};
use crate::name::{MxPattern, normalize_host};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use time::OffsetDateTime;

/// The most blockers listed for one promotion; past it one [`Blocker::More`] says how many were
/// left out, so a hostile live check with thousands of hosts cannot make the answer grow.
pub const MAX_BLOCKERS: usize = 32;

/// What a promotion is judged on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// A live check of the domain.
    pub live: LiveCheck,
    /// What the domain's TLS-RPT reports say.
    pub tlsrpt: TlsRptEvidence,
}

/// A live check of the domain's MX hosts, as `mtasts check` probes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCheck {
    /// When the check ran.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// Every MX host of the domain's live MX RRset.
    pub hosts: Vec<HostCheck>,
}

/// One MX host and the probe of each of its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCheck {
    /// The MX host name as found in the MX RRset.
    pub host: String,
    /// Each address the host resolved to, probed.
    pub addresses: Vec<AddressCheck>,
}

/// The STARTTLS probe of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressCheck {
    /// The address.
    pub address: IpAddr,
    /// What the probe found.
    pub probe: Probe,
}

/// What a STARTTLS probe found on one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Probe {
    /// STARTTLS offered, and the certificate is valid for the MX host name (RFC 8461 §4.2).
    Valid,
    /// No STARTTLS.
    NoStarttls,
    /// STARTTLS, but the certificate fails validation.
    CertificateInvalid {
        /// Why (e.g. `certificate-expired`).
        reason: String,
    },
    /// The probe could not look (timeout, refusal, port 25 blocked): not a failure, but not
    /// evidence either.
    Untested {
        /// Why.
        reason: String,
    },
}

/// What the domain's TLS-RPT reports say over the recent period.
///
/// Whoever holds the reports fills this in: `mtasts serve`'s domain operations read it from
/// the store with the readiness verdict (decisions D53), whatever a caller sent.
/// [`NotCollected`](Self::NotCollected) blocks nothing unless
/// [`RolloutConfig::require_tlsrpt`](super::RolloutConfig::require_tlsrpt) is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum TlsRptEvidence {
    /// No reports are collected for this domain.
    NotCollected,
    /// Reports arrived and none shows a failed session.
    Clean {
        /// How many reports.
        reports: u32,
    },
    /// Reports show failed sessions.
    Failures {
        /// How many sessions failed in total.
        failed_sessions: u64,
    },
}

/// One reason a promotion is not allowed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "blocker", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Blocker {
    /// Not enough time in the current stage.
    TooEarly {
        /// When the minimum time is reached.
        #[serde(with = "time::serde::rfc3339")]
        ready_at: OffsetDateTime,
    },
    /// No live check was given.
    NoLiveCheck,
    /// The live check is older than the configured limit (or from the future).
    StaleCheck {
        /// When it ran.
        #[serde(with = "time::serde::rfc3339")]
        checked_at: OffsetDateTime,
    },
    /// The live check found no MX host at all.
    NoMxHosts,
    /// An MX host that no `mx` pattern covers: `enforce` would refuse delivery to it.
    NotCovered {
        /// The host.
        host: String,
    },
    /// An MX host with no address to probe.
    NoAddresses {
        /// The host.
        host: String,
    },
    /// An address whose probe did not find STARTTLS with a valid certificate.
    AddressFailed {
        /// The host.
        host: String,
        /// The address.
        address: IpAddr,
        /// What the probe found.
        probe: Probe,
    },
    /// TLS-RPT reports show failed sessions (those the readiness verdict counts as blockers or
    /// leaves undecided).
    TlsRptFailures {
        /// How many.
        failed_sessions: u64,
    },
    /// TLS-RPT evidence is required by the configuration, and none was collected.
    TlsRptMissing,
    /// More blockers were left out (see [`MAX_BLOCKERS`]).
    More {
        /// How many.
        count: usize,
    },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooEarly { ready_at } => {
                write!(
                    f,
                    "the minimum time in this stage ends at {}",
                    stamp(*ready_at)
                )
            }
            Self::NoLiveCheck => f.write_str("no live check of the MX hosts was given"),
            Self::StaleCheck { checked_at } => write!(
                f,
                "the live check ran at {}, too long ago (or in the future); check again",
                stamp(*checked_at)
            ),
            Self::NoMxHosts => f.write_str("the live check found no MX host"),
            Self::NotCovered { host } => write!(
                f,
                "MX host {host} is not covered by any mx pattern; enforce would refuse it"
            ),
            Self::NoAddresses { host } => write!(f, "MX host {host} has no address"),
            Self::AddressFailed {
                host,
                address,
                probe,
            } => match probe {
                Probe::Valid => write!(f, "{host} ({address}) passed"),
                Probe::NoStarttls => write!(f, "{host} ({address}) does not offer STARTTLS"),
                Probe::CertificateInvalid { reason } => {
                    write!(f, "{host} ({address}) has an invalid certificate: {reason}")
                }
                Probe::Untested { reason } => {
                    write!(f, "{host} ({address}) could not be checked: {reason}")
                }
            },
            Self::TlsRptFailures { failed_sessions } => write!(
                f,
                "TLS-RPT reports show {failed_sessions} failed sessions that enforce would refuse \
                 or that cannot be told apart yet; `mtasts report readiness` names them with their fixes"
            ),
            Self::TlsRptMissing => f.write_str("no TLS-RPT reports were collected for the domain"),
            Self::More { count } => write!(f, "and {count} more"),
        }
    }
}

/// Gate inputs beyond the evidence itself.
pub(super) struct Gate<'a> {
    pub(super) now: OffsetDateTime,
    pub(super) since: OffsetDateTime,
    pub(super) min_dwell: u64,
    pub(super) max_evidence_age: u64,
    pub(super) require_tlsrpt: bool,
    pub(super) mx: &'a [MxPattern],
}

/// Collects blockers up to [`MAX_BLOCKERS`] and counts the rest.
#[derive(Default)]
struct Collector {
    list: Vec<Blocker>,
    dropped: usize,
}

impl Collector {
    fn push(&mut self, b: Blocker) {
        if self.list.len() < MAX_BLOCKERS {
            self.list.push(b);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<Blocker> {
        if self.dropped > 0 {
            self.list.push(Blocker::More {
                count: self.dropped,
            });
        }
        self.list
    }
}

impl Gate<'_> {
    /// Every blocker, capped at [`MAX_BLOCKERS`].
    pub(super) fn blockers(&self, evidence: Option<&Evidence>) -> Vec<Blocker> {
        let mut out = Collector::default();
        let ready_at = after(self.since, self.min_dwell);
        if self.now < ready_at {
            out.push(Blocker::TooEarly { ready_at });
        }
        let Some(evidence) = evidence else {
            out.push(Blocker::NoLiveCheck);
            return out.finish();
        };
        let checked_at = evidence.live.checked_at;
        if checked_at > self.now || after(checked_at, self.max_evidence_age) < self.now {
            out.push(Blocker::StaleCheck { checked_at });
        }
        // Whole-domain blockers first, so the cap never hides them behind per-address ones.
        match &evidence.tlsrpt {
            TlsRptEvidence::Failures { failed_sessions } if *failed_sessions > 0 => {
                out.push(Blocker::TlsRptFailures {
                    failed_sessions: *failed_sessions,
                });
            }
            TlsRptEvidence::NotCollected if self.require_tlsrpt => {
                out.push(Blocker::TlsRptMissing);
            }
            _ => {}
        }
        if evidence.live.hosts.is_empty() {
            out.push(Blocker::NoMxHosts);
        }
        for host in &evidence.live.hosts {
            self.host_blockers(host, &mut out);
        }
        out.finish()
    }

    fn host_blockers(&self, check: &HostCheck, out: &mut Collector) {
        let host = normalize_host(&check.host);
        if !self.mx.iter().any(|p| p.matches_normalized(&host)) {
            out.push(Blocker::NotCovered { host: host.clone() });
        }
        if check.addresses.is_empty() {
            out.push(Blocker::NoAddresses { host: host.clone() });
        }
        for a in check.addresses.iter().filter(|a| a.probe != Probe::Valid) {
            out.push(Blocker::AddressFailed {
                host: host.clone(),
                address: a.address,
                probe: a.probe.clone(),
            });
        }
    }
}
