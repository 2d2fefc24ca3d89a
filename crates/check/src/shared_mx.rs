//! MX hosts shared by several domains whose policies disagree about them (catalogue M43, the
//! sender's view): only a bulk run sees it, so it is part of the scan summary, not a finding of
//! one domain.
//!
//! A sender that queues or pools connections per MX host (KumoMTA's "sites", kumomta#484/#557)
//! applies one TLS treatment per host, while each recipient domain asks for its own: one
//! domain's `enforce` policy says "refuse this host without valid TLS", another's `testing`
//! says "deliver anyway", a third has no policy, and a fourth's `enforce` policy does not even
//! cover the host ("refuse it always"). A host is *conflicting* when the domains using it ask
//! for more than one of these treatments and at least one of them publishes a policy.
//!
//! Memory is bounded: at most [`MAX_TRACKED_MX`] hosts are tracked (the first ones seen), each
//! with counts and [`EXAMPLES`] example domains; [`SharedMx::capped`] says when hosts were left
//! out.

use crate::model::DomainReport;
use std::collections::HashMap;

/// MX hosts tracked at most.
pub const MAX_TRACKED_MX: usize = 10_000;
/// Example domains kept per host.
pub const EXAMPLES: usize = 3;

/// How the domains using one MX host ask senders to treat it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MxUse {
    /// Domains whose MX set includes the host.
    pub domains: usize,
    /// … with an `enforce` policy covering it.
    pub enforce: usize,
    /// … with an `enforce` policy that does not cover it (senders refuse the host).
    pub refused: usize,
    /// … with a `testing` policy.
    pub testing: usize,
    /// … with mode `none` or no policy a sender applies.
    pub none: usize,
    /// The first domains seen.
    pub examples: Vec<String>,
}

impl MxUse {
    /// More than one treatment, and at least one domain publishes a policy.
    pub fn conflicting(&self) -> bool {
        let kinds = [self.enforce, self.refused, self.testing, self.none]
            .iter()
            .filter(|n| **n > 0)
            .count();
        kinds > 1 && self.enforce + self.refused + self.testing > 0
    }
}

/// The MX hosts of a scan and how their domains treat them.
#[derive(Debug, Default, Clone)]
pub struct SharedMx {
    hosts: HashMap<String, MxUse>,
    capped: bool,
}

impl SharedMx {
    /// Counts the MX hosts of one domain in.
    pub fn add(&mut self, r: &DomainReport) {
        let mode = r.policy.mode.as_deref();
        for mx in &r.mx {
            let full = self.hosts.len() >= MAX_TRACKED_MX;
            let entry = match self.hosts.get_mut(&mx.host) {
                Some(e) => e,
                None if full => {
                    self.capped = true;
                    continue;
                }
                None => self.hosts.entry(mx.host.clone()).or_default(),
            };
            entry.domains += 1;
            match mode {
                Some("enforce") if mx.pattern.is_none() => entry.refused += 1,
                Some("enforce") => entry.enforce += 1,
                Some("testing") => entry.testing += 1,
                _ => entry.none += 1,
            }
            if entry.examples.len() < EXAMPLES && !entry.examples.contains(&r.domain) {
                entry.examples.push(r.domain.clone());
            }
        }
    }

    /// Hosts tracked.
    pub fn tracked(&self) -> usize {
        self.hosts.len()
    }

    /// Hosts used by more than one domain.
    pub fn shared(&self) -> usize {
        self.hosts.values().filter(|u| u.domains > 1).count()
    }

    /// True when some hosts were not tracked because [`MAX_TRACKED_MX`] was reached.
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// The conflicting hosts, most domains first (ties by name), at most `n`, and how many
    /// there are in all.
    pub fn conflicts(&self, n: usize) -> (Vec<(&str, &MxUse)>, usize) {
        let mut all: Vec<(&str, &MxUse)> = self
            .hosts
            .iter()
            .filter(|(_, u)| u.conflicting())
            .map(|(h, u)| (h.as_str(), u))
            .collect();
        let count = all.len();
        all.sort_by(|a, b| b.1.domains.cmp(&a.1.domains).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        (all, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MxReport, PolicyReport};

    fn report(domain: &str, mode: Option<&str>, mx: &[(&str, bool)]) -> DomainReport {
        crate::finish(
            domain.to_owned(),
            Vec::new(),
            crate::Parts {
                policy: PolicyReport {
                    mode: mode.map(str::to_owned),
                    ..PolicyReport::default()
                },
                mx: mx
                    .iter()
                    .map(|(host, covered)| MxReport {
                        host: (*host).to_owned(),
                        preference: 10,
                        pattern: covered.then(|| (*host).to_owned()),
                        addresses: Vec::new(),
                        result: crate::model::TlsResult::Success,
                        must_refuse: false,
                    })
                    .collect(),
                ..crate::Parts::default()
            },
        )
    }

    #[test]
    fn conflicts_need_two_treatments_and_a_policy() {
        let mut s = SharedMx::default();
        s.add(&report(
            "a.test",
            Some("enforce"),
            &[("smtp.p.test", true), ("own.a.test", true)],
        ));
        s.add(&report("b.test", None, &[("smtp.p.test", false)]));
        s.add(&report(
            "c.test",
            Some("enforce"),
            &[("smtp.p.test", false)],
        ));
        s.add(&report("d.test", None, &[("smtp.q.test", false)]));
        s.add(&report("e.test", Some("none"), &[("smtp.q.test", false)]));
        let (top, count) = s.conflicts(10);
        assert_eq!(
            count, 1,
            "smtp.q.test: no policy and mode none are one treatment"
        );
        let (host, u) = top[0];
        assert_eq!(host, "smtp.p.test");
        assert_eq!((u.domains, u.enforce, u.refused, u.none), (3, 1, 1, 1));
        assert_eq!(u.examples, ["a.test", "b.test", "c.test"]);
        assert_eq!((s.tracked(), s.shared()), (3, 2));
        assert!(!s.capped());
    }

    #[test]
    fn tracking_is_capped() {
        let mut s = SharedMx::default();
        for i in 0..=MAX_TRACKED_MX {
            s.add(&report(
                "a.test",
                Some("enforce"),
                &[(&format!("mx{i}.test"), true)],
            ));
        }
        assert_eq!(s.tracked(), MAX_TRACKED_MX);
        assert!(s.capped());
        // Hosts already tracked are still counted.
        s.add(&report("b.test", None, &[("mx0.test", false)]));
        assert_eq!(s.conflicts(1).1, 1);
    }
}
