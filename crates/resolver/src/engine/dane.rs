//! What DANE (RFC 7672) asks of the answer for a domain with an MTA-STS policy, and whether the
//! DNSSEC validator works at all.
//!
//! RFC 8461 §2: MTA-STS never overrides a failing DANE check, and RFC 7672 §2.1.2: a host whose
//! TLSA lookup is bogus or indeterminate must not be used. So when the MX RRset is secure and
//! any MX host has TLSA records, or any host's TLSA lookup failed validation or could not be
//! made, Postfix is told `dane-only` ([`Dane::Enforce`]): it then checks each host itself and
//! skips the ones it cannot authenticate, instead of delivering to them over WebPKI. When the MX
//! RRset itself is bogus or cannot be validated, nothing can be decided and the lookup is
//! deferred ([`Dane::Undecided`], `TEMP`), unless the validator cannot validate the root at all:
//! that is a fault of this system, not of the domain, and it is reported as such (log, `/health`,
//! `mtasts_resolver_dnssec_root_valid`) while answers stay those of MTA-STS.

use mtasts_net::dane::DaneState;
use mtasts_net::dns::{DnsError, Proof, Resolver};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

/// What DANE asks of the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dane {
    /// DANE does not apply (not checked, an insecure MX RRset, no TLSA record at any host):
    /// the MTA-STS answer.
    #[default]
    No,
    /// DANE applies to some host: `dane-only`, so Postfix enforces it per host.
    Enforce,
    /// The MX RRset is bogus or could not be validated: `TEMP` until it can be.
    Undecided,
}

/// A validated MX lookup with every host's DANE state ([`mtasts_net::dane::domain_states`]).
pub(crate) type MxStates = Result<(Proof, Vec<(String, DaneState)>), DnsError>;

/// The DANE verdict for a domain from its validated MX lookup and its hosts' states; `None`
/// when nothing new was learnt (the MX lookup itself failed: the previous verdict stands).
/// `root_broken` says the validator cannot validate the root at all (see [`RootHealth`]).
pub(crate) fn verdict(mx: &MxStates, root_broken: bool) -> Option<Dane> {
    let (proof, hosts) = mx.as_ref().ok()?;
    match proof {
        Proof::Insecure => Some(Dane::No),
        Proof::Bogus | Proof::Indeterminate if root_broken => Some(Dane::No),
        Proof::Bogus | Proof::Indeterminate => Some(Dane::Undecided),
        Proof::Secure => {
            // Written out in full, so that a new host state is a compile error here rather
            // than a silent fall-back to MTA-STS.
            let applies = hosts.iter().any(|(_, s)| match s {
                DaneState::Usable(_)
                | DaneState::Unusable(_)
                | DaneState::Bogus
                | DaneState::Indeterminate(_)
                | DaneState::LookupFailed(_) => true,
                DaneState::NoTlsa | DaneState::Insecure(_) => false,
            });
            Some(if applies { Dane::Enforce } else { Dane::No })
        }
    }
}

/// How often the root is validated again (while DANE checks run).
const ROOT_RECHECK_MS: u64 = 60_000;

const UNKNOWN: u8 = 0;
const VALID: u8 = 1;
const BROKEN: u8 = 2;

/// Whether the validator can validate the root zone at all, checked at most once a minute.
#[derive(Debug, Default)]
pub struct RootHealth {
    state: AtomicU8,
    checked_ms: AtomicU64,
    why: Mutex<String>,
}

impl RootHealth {
    /// `Some(true)` while the root validates, `Some(false)` when it does not, `None` before the
    /// first check.
    pub fn valid(&self) -> Option<bool> {
        match self.state.load(Relaxed) {
            VALID => Some(true),
            BROKEN => Some(false),
            _ => None,
        }
    }

    /// Why the root does not validate (empty while it does).
    pub fn why(&self) -> String {
        self.why
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Validates the root again when the last check is older than a minute (or `force`);
    /// returns whether the root is broken. A change is logged: an error when it breaks.
    pub(crate) async fn check(&self, dns: &Resolver, now_ms: u64, force: bool) -> bool {
        let last = self.checked_ms.load(Relaxed);
        if !force && self.state.load(Relaxed) != UNKNOWN && now_ms < last + ROOT_RECHECK_MS {
            return self.state.load(Relaxed) == BROKEN;
        }
        self.checked_ms.store(now_ms, Relaxed);
        let why = match dns.mx_validated(".").await {
            Ok(v) if v.proof == Proof::Secure => None,
            Ok(v) => Some(format!(
                "the root zone validates as {} (not secure) from the trust anchor",
                v.proof.as_str()
            )),
            Err(e) => Some(format!("the root zone cannot be looked up: {e}")),
        };
        let broken = why.is_some();
        let before = self
            .state
            .swap(if broken { BROKEN } else { VALID }, Relaxed);
        *self
            .why
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = why.clone().unwrap_or_default();
        match (before, why) {
            (b, Some(why)) if b != BROKEN => tracing::error!(
                %why,
                "DNSSEC VALIDATION IS BROKEN ON THIS SYSTEM: the root cannot be validated, so no \
                 DANE state can be known; answers fall back to MTA-STS alone until it is fixed \
                 (check the trust anchor, the clock, and that the name servers pass DNSSEC records)"
            ),
            (BROKEN, None) => tracing::warn!("DNSSEC validation of the root works again"),
            _ => {}
        }
        broken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mtasts_net::dns::Tlsa;

    fn hosts(states: Vec<DaneState>) -> MxStates {
        Ok((
            Proof::Secure,
            states
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("mx{i}.example"), s))
                .collect(),
        ))
    }

    fn tlsa() -> Vec<Tlsa> {
        Vec::new()
    }

    #[test]
    fn any_host_with_tlsa_or_a_failed_tlsa_lookup_enforces_dane() {
        use DaneState::*;
        assert_eq!(
            verdict(&hosts(vec![Usable(tlsa())]), false),
            Some(Dane::Enforce)
        );
        assert_eq!(
            verdict(&hosts(vec![NoTlsa, Bogus]), false),
            Some(Dane::Enforce),
            "a bogus TLSA lookup is never left to MTA-STS"
        );
        assert_eq!(
            verdict(
                &hosts(vec![NoTlsa, Indeterminate("DNSKEY REFUSED".into())]),
                false
            ),
            Some(Dane::Enforce),
            "a TLSA lookup that could not be validated is never left to MTA-STS"
        );
        assert_eq!(
            verdict(&hosts(vec![Usable(tlsa()), NoTlsa]), false),
            Some(Dane::Enforce)
        );
        assert_eq!(
            verdict(&hosts(vec![Unusable(tlsa())]), false),
            Some(Dane::Enforce)
        );
        assert_eq!(
            verdict(&hosts(vec![NoTlsa, Insecure(tlsa())]), false),
            Some(Dane::No)
        );
        assert_eq!(verdict(&hosts(vec![]), false), Some(Dane::No));
    }

    #[test]
    fn an_mx_rrset_that_cannot_be_validated_defers_unless_the_root_is_broken() {
        for proof in [Proof::Bogus, Proof::Indeterminate] {
            let mx = Ok((proof, vec![]));
            assert_eq!(verdict(&mx, false), Some(Dane::Undecided));
            assert_eq!(verdict(&mx, true), Some(Dane::No));
        }
        assert_eq!(
            verdict(&Ok((Proof::Insecure, vec![])), false),
            Some(Dane::No)
        );
    }
}
