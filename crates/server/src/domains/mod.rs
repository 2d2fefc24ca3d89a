//! The domain operations both `mtasts domain ... --store URL` and the admin API call: add, list,
//! show, set, promote, rollback, remove, and certificate import.
//!
//! Each operation reads the domain from the store, decides with core's pure rollout machine
//! ([`mtasts_core::rollout`]) and writes through the store, which records the audit entry (who,
//! when, what, why) in the same transaction. Time is a parameter (`now`), the actor is the
//! caller's (`"cli"`, or `token:<name>` for the admin API). A transition names the state it was
//! decided from, so two operators racing on one domain cannot both win
//! ([`mtasts_store::Error::StateChanged`]).
//!
//! ```text
//! add (testing; enforce needs force + reason) -> promote (gate: live check, time in stage)
//!   -> rollback (any time) -> remove (serve mode: none until safe) -> remove (deleted)
//! ```

mod cert;
mod state;

use mtasts_core::name::{MxPattern, normalize_host};
use mtasts_core::policy::Mode;
use mtasts_core::providers::{MxPlan, plan_mx};
use mtasts_core::rollout::{
    Evidence, Force, LiveCheck, Notice, Outcome, RolloutConfig, RolloutError, RolloutState, Stage,
    TlsRptEvidence,
};
use mtasts_intake::readiness;
use mtasts_store::{Change, NewPolicy, Store, Transition};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use cert::{CertificateCheck, MAX_CHAIN_CERTS, check_certificate, check_certificate_for};
pub use state::{CertificateView, DnsUpdateView, DomainView, DriftView};

/// Why a domain operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The store refused or failed (unknown domain, exists, state changed meanwhile, database).
    #[error(transparent)]
    Store(#[from] mtasts_store::Error),
    /// The rollout machine refused the transition (not ready, too early, illegal).
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    /// The domain is not hosted.
    #[error("{0} is not a hosted domain")]
    NotFound(String),
    /// A malformed argument.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Live MX hosts that no known provider explains and the caller did not confirm: ask the
    /// owner, then call again with them in `confirmed` (or left out of `hosts`).
    #[error(
        "MX hosts not explained by a known provider, confirm they are yours: {}",
        .0.join(", ")
    )]
    Unexplained(Vec<String>),
    /// Starting in `enforce`, or forcing a transition, without a reason.
    #[error("{0}")]
    NeedsForce(&'static str),
    /// The certificate or key does not fit `mta-sts.<domain>`.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The store holds a state this build cannot read.
    #[error("stored state: {0}")]
    Corrupt(String),
}

/// Where the `mx` patterns of a new domain come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MxSource {
    /// Patterns taken as given (`--mx`); no MX lookup.
    Patterns(Vec<String>),
    /// The domain's live MX hosts, looked up by the caller, mapped through core's provider
    /// table. Hosts no provider explains must be listed in `confirmed` (or dropped from `hosts`).
    Live {
        /// The MX host names as DNS gave them.
        hosts: Vec<String>,
        /// Unexplained hosts the owner confirmed.
        #[serde(default)]
        confirmed: Vec<String>,
    },
}

/// What `add` needs.
#[derive(Debug, Clone)]
pub struct AddDomain {
    /// The domain (any case, trailing dot and U-labels accepted; stored normalised).
    pub domain: String,
    /// The `mx` patterns.
    pub mx: MxSource,
    /// `Testing` (the default) or `Enforce` (needs `force`); `None` is refused.
    pub mode: Mode,
    /// The `max_age` to serve instead of the rollout's default for the stage.
    pub max_age: Option<u32>,
    /// The `--force --reason` text.
    pub force: Option<String>,
    /// How the owner delegates the domain to us (`host` by default).
    pub delegation: mtasts_store::Delegation,
}

/// What an operation changed and what the owner must be told.
#[derive(Debug, Clone, Serialize)]
pub struct OpResult {
    /// The domain after the operation; `None` once it was removed.
    pub domain: Option<DomainView>,
    /// What the owner must know (publish the TXT record, cached enforce, when removal is safe,
    /// which DNS records can go), as data.
    pub notices: Vec<Notice>,
    /// The same notices in words.
    pub messages: Vec<String>,
    /// For `add` from live MX: how each host was covered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx_plan: Option<MxPlan>,
    /// Findings of core's policy linter on the text served (warnings; errors refuse the add).
    pub lint: Vec<String>,
}

impl OpResult {
    fn new(name: &str, domain: Option<DomainView>, notices: Vec<Notice>) -> Self {
        // Core's words leave the domain as `<domain>`: name it.
        let messages = notices
            .iter()
            .map(|n| n.to_string().replace("<domain>", name))
            .collect();
        Self {
            domain,
            notices,
            messages,
            mx_plan: None,
            lint: Vec::new(),
        }
    }
}

/// Most open drift events read for `list` (all domains) and `show` (one; at most three kinds
/// are open per domain, so the limit only matters for `list`).
const OPEN_DRIFT_LISTED: u32 = 10_000;

/// The operations, on one store with one rollout configuration.
#[derive(Debug, Clone)]
pub struct Domains {
    store: Store,
    cfg: RolloutConfig,
    /// Looks the delegation's records up for `show` (`None`: they are listed unchecked).
    resolver: Option<std::sync::Arc<mtasts_net::dns::Resolver>>,
}

/// How long `show` waits for the DNS answers about a domain's records.
const RECORDS_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// Normalises a domain name as given by an operator: lower case, A-labels, no trailing dot
/// (core's [`mtasts_core::domain::Domain`], the one rule set of the project), and no `_` in a
/// label, since no certificate for `mta-sts.<domain>` could name it.
///
/// # Errors
/// [`DomainError::Invalid`] when it is not a host name.
pub fn normalize_domain(raw: &str) -> Result<String, DomainError> {
    let shown = || raw.chars().take(100).collect::<String>();
    let invalid = |why: String| DomainError::Invalid {
        what: "domain",
        why,
    };
    let d = mtasts_core::domain::Domain::parse(raw)
        .map_err(|e| invalid(format!("{:?} is not a domain name: {e}", shown())))?;
    if d.as_str().contains('_') {
        return Err(invalid(format!(
            "{:?} is not a domain name a certificate can name (`_` in a label)",
            shown()
        )));
    }
    Ok(d.into_string())
}

fn force_of(force: Option<&str>) -> Result<Option<Force>, DomainError> {
    force
        .map(|r| {
            Force::new(r).map_err(|_| {
                DomainError::NeedsForce(
                    "--force needs a reason (--reason TEXT, 1 to 1000 characters)",
                )
            })
        })
        .transpose()
}

fn new_policy(outcome: &Outcome) -> Option<NewPolicy> {
    outcome.served.as_ref().map(|s| NewPolicy {
        text: s.text.clone(),
        id: s.id.clone(),
        mode: s.policy.mode,
        max_age: s.policy.max_age,
        mx: s.policy.mx.iter().map(ToString::to_string).collect(),
    })
}

fn transition_reason(outcome: &Outcome) -> String {
    let mut reason = outcome.transition.reasons.join("; ");
    if let Some(f) = &outcome.transition.forced {
        reason = format!("forced: {f}; {reason}");
    }
    if reason.is_empty() {
        reason = outcome.transition.action.to_string();
    }
    reason
}

impl Domains {
    /// Operations on `store` following `cfg` (validated here).
    ///
    /// # Errors
    /// [`DomainError::Rollout`] when `cfg` is invalid.
    pub fn new(store: Store, cfg: RolloutConfig) -> Result<Self, DomainError> {
        cfg.validate()?;
        Ok(Self {
            store,
            cfg,
            resolver: None,
        })
    }

    /// The same operations, with `show` looking up whether each DNS record is in place.
    #[must_use]
    pub fn with_resolver(mut self, resolver: mtasts_net::dns::Resolver) -> Self {
        self.resolver = Some(std::sync::Arc::new(resolver));
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rollout configuration.
    pub fn config(&self) -> &RolloutConfig {
        &self.cfg
    }

    /// Hosts `req.domain`, in testing unless `req.mode` is `Enforce` with a force reason.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] (domain, mx, max_age, mode none); [`DomainError::Unexplained`];
    /// [`DomainError::NeedsForce`]; the store's `DomainExists`.
    pub async fn add(
        &self,
        req: &AddDomain,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<OpResult, DomainError> {
        let domain = normalize_domain(&req.domain)?;
        let force = force_of(req.force.as_deref())?;
        let (mx, plan) = match &req.mx {
            MxSource::Patterns(p) => (parse_patterns(p)?, None),
            MxSource::Live { hosts, confirmed } => {
                let plan = plan_mx(hosts);
                let confirmed: Vec<String> = confirmed.iter().map(|h| normalize_host(h)).collect();
                let missing: Vec<String> = plan
                    .unexplained()
                    .into_iter()
                    .filter(|h| !confirmed.iter().any(|c| c == h))
                    .map(str::to_owned)
                    .collect();
                if !missing.is_empty() {
                    return Err(DomainError::Unexplained(missing));
                }
                (plan.patterns(), Some(plan))
            }
        };
        if mx.is_empty() {
            return Err(DomainError::Invalid {
                what: "mx",
                why: "no usable MX host or pattern (a null MX domain receives no mail)".into(),
            });
        }
        let mut outcome = match req.mode {
            Mode::Testing => RolloutState::begin(&mx, now, &self.cfg)?,
            Mode::Enforce => match &force {
                Some(f) => RolloutState::begin_enforced(&mx, now, &self.cfg, f)?,
                None => {
                    return Err(DomainError::NeedsForce(
                        "starting in enforce skips testing, the mistake the rollout prevents: \
                         it needs --force --reason TEXT",
                    ));
                }
            },
            Mode::None => {
                return Err(DomainError::Invalid {
                    what: "mode",
                    why: "a new domain starts in testing or enforce".into(),
                });
            }
        };
        if let Some(max_age) = req.max_age {
            outcome = with_max_age(&outcome.state, max_age, now)?;
        }
        let policy =
            new_policy(&outcome).ok_or_else(|| DomainError::Corrupt("no policy".into()))?;
        let lint = lint(&policy.text)?;
        let mut reason = transition_reason(&outcome);
        if let Some(f) = &force {
            reason = format!("forced: {}; {reason}", f.reason());
        }
        let change = Change::new(actor, now).because(reason);
        self.store
            .add_domain_delegated(
                &domain,
                &policy,
                outcome.state.stage.name(),
                req.delegation,
                &change,
            )
            .await?;
        let mut result = self.result(&domain, outcome.notices).await?;
        if let Some(view) = &mut result.domain {
            let hosting = self.fill_records(view).await?;
            let missing = crate::hosting::missing_facts(req.delegation, &hosting);
            result.messages.extend(missing);
        }
        result.mx_plan = plan;
        result.lint = lint;
        Ok(result)
    }

    /// Every hosted domain `allowed` lets the caller see, sorted by name.
    ///
    /// # Errors
    /// The store's errors; [`DomainError::Corrupt`].
    pub async fn list(
        &self,
        allowed: impl Fn(&str) -> bool,
    ) -> Result<Vec<DomainView>, DomainError> {
        let mut out = Vec::new();
        let mut drift: std::collections::HashMap<String, Vec<DriftView>> =
            std::collections::HashMap::new();
        for e in self
            .store
            .drift_events(None, true, OPEN_DRIFT_LISTED)
            .await?
        {
            drift.entry(e.domain.clone()).or_default().push(e.into());
        }
        for d in self.store.domains().await? {
            if !allowed(&d.name) {
                continue;
            }
            let history = self.store.policy_history(&d.name).await?;
            let state = state::rollout_state(&d, &history, &self.cfg)?;
            let cert = self.store.certificate(&d.name).await?;
            let mut view = DomainView::new(&d, &state, cert.as_ref());
            view.drift = drift.remove(&d.name).unwrap_or_default();
            out.push(view);
        }
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(out)
    }

    /// One hosted domain: the served policy text, its id, the rollout state, the TXT record.
    ///
    /// # Errors
    /// [`DomainError::NotFound`]; the store's errors.
    pub async fn show(&self, domain: &str) -> Result<DomainView, DomainError> {
        let domain = normalize_domain(domain)?;
        let mut view = self.load(&domain).await?.0;
        self.fill_records(&mut view).await?;
        Ok(view)
    }

    /// Lists every DNS record `view`'s delegation needs (from the hosting facts the server
    /// recorded) and, with a resolver, whether each is in place.
    /// Returns the hosting facts it used.
    async fn fill_records(
        &self,
        view: &mut DomainView,
    ) -> Result<crate::hosting::Hosting, DomainError> {
        let hosting = crate::hosting::recorded_hosting(&self.store).await?;
        let delegation = mtasts_store::Delegation::parse(&view.delegation).unwrap_or_default();
        view.records =
            crate::hosting::records_for(&view.domain, delegation, &view.policy_id, &hosting);
        if let Some(resolver) = &self.resolver {
            crate::hosting::check_in_place(resolver, &mut view.records, RECORDS_BUDGET).await;
        }
        Ok(hosting)
    }

    async fn load(&self, domain: &str) -> Result<(DomainView, RolloutState), DomainError> {
        let hosted = self
            .store
            .domain(domain)
            .await?
            .ok_or_else(|| DomainError::NotFound(domain.to_owned()))?;
        let history = self.store.policy_history(domain).await?;
        let state = state::rollout_state(&hosted, &history, &self.cfg)?;
        let cert = self.store.certificate(domain).await?;
        let acme = self.store.acme_state(domain).await?;
        let mut view = DomainView::new(&hosted, &state, cert.as_ref());
        view.certificate = CertificateView::new(cert.as_ref(), acme.as_ref());
        view.dns_update = self.store.dns_published(domain).await?.map(Into::into);
        view.drift = self
            .store
            .drift_events(Some(domain), true, OPEN_DRIFT_LISTED)
            .await?
            .into_iter()
            .map(DriftView::from)
            .collect();
        Ok((view, state))
    }

    async fn result(
        &self,
        domain: &str,
        mut notices: Vec<Notice>,
    ) -> Result<OpResult, DomainError> {
        let view = self.load(domain).await?.0;
        // A fully delegated domain's TXT record is ours to publish, not the owner's.
        let publish = notices
            .iter()
            .any(|n| matches!(n, Notice::PublishId { .. }));
        if publish
            && view.delegation == mtasts_store::Delegation::Full.as_str()
            && let Some(zone) = crate::hosting::recorded_hosting(&self.store).await?.zone
        {
            for n in &mut notices {
                if let Notice::PublishId { txt_record } = n {
                    *n = Notice::IdPublishedByServer {
                        txt_record: std::mem::take(txt_record),
                        name: crate::hosting::sts_target(domain, &zone),
                    };
                }
            }
        }
        Ok(OpResult::new(domain, Some(view), notices))
    }

    /// Changes the `mx` patterns and/or the `max_age` served, in the same stage.
    ///
    /// # Errors
    /// [`DomainError::NotFound`]; [`DomainError::Invalid`]; [`DomainError::Rollout`]
    /// (`Unchanged`, or a removed/withdrawing domain's max_age).
    pub async fn set(
        &self,
        domain: &str,
        mx: Option<&[String]>,
        max_age: Option<u32>,
        actor: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<OpResult, DomainError> {
        let domain = normalize_domain(domain)?;
        let (view, state) = self.load(&domain).await?;
        let mut notices = Vec::new();
        let mut next = state.clone();
        if let Some(mx) = mx {
            let out = state.set_mx(&parse_patterns(mx)?, now)?;
            notices = out.notices;
            next = out.state;
        }
        if let Some(max_age) = max_age {
            if matches!(state.stage, Stage::Withdrawing { .. }) {
                return Err(DomainError::Invalid {
                    what: "max_age",
                    why: "a withdrawing domain serves the configured mode: none max_age".into(),
                });
            }
            if let Stage::Enforce { step } = state.stage {
                let cap = self.cfg.enforce_steps.get(step).map_or(0, |s| s.max_age);
                if max_age > cap {
                    return Err(DomainError::Invalid {
                        what: "max_age",
                        why: format!(
                            "{max_age} s is above the current enforce step's {cap} s: raising it is a promotion (promote applies the gate; promote --force --reason overrides it)"
                        ),
                    });
                }
            }
            let out = with_max_age(&next, max_age, now)?;
            notices = out.notices;
            next = out.state;
        }
        if next == state {
            return Err(RolloutError::Unchanged.into());
        }
        let served = next
            .served()
            .ok_or_else(|| DomainError::Corrupt("no policy".into()))?;
        let policy = NewPolicy {
            text: served.text.clone(),
            id: served.id.clone(),
            mode: served.policy.mode,
            max_age: served.policy.max_age,
            mx: served.policy.mx.iter().map(ToString::to_string).collect(),
        };
        lint(&policy.text)?;
        let mut change = Change::new(actor, now);
        if let Some(r) = reason {
            change = change.because(r);
        }
        self.store
            .set_policy(&domain, &view.policy_id, &policy, &change)
            .await?;
        self.result(&domain, notices).await
    }

    /// Promotes (testing to `enforce`, or one `max_age` step up), gated on `evidence` (a live
    /// check the caller ran), the domain's TLS-RPT reports in the store and the time in the
    /// stage; `force` overrides, recorded.
    ///
    /// The TLS-RPT part of `evidence` is not taken from the caller: it is read from the reports
    /// of the last [`readiness::DEFAULT_DAYS`] days as the readiness verdict weighs them with
    /// the caller's live check (D53): none is `NotCollected`, failures that verdict counts as
    /// blockers or leaves undecided are `Failures`, otherwise `Clean`.
    ///
    /// # Errors
    /// [`DomainError::Rollout`] (`NotReady` with every blocker, `Illegal`); the store's
    /// `StateChanged`.
    pub async fn promote(
        &self,
        domain: &str,
        evidence: Option<&Evidence>,
        force: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<OpResult, DomainError> {
        let domain = normalize_domain(domain)?;
        let force = force_of(force)?;
        let (_, state) = self.load(&domain).await?;
        let evidence = match evidence {
            Some(e) => Some(Evidence {
                tlsrpt: self.tlsrpt_evidence(&domain, &e.live, now).await?,
                live: e.live.clone(),
            }),
            None => None,
        };
        let evidence = evidence.as_ref();
        let outcome = state.promote(now, evidence, force.as_ref(), &self.cfg)?;
        let evidence_json = serde_json::json!({
            "evidence": evidence,
            "overridden": outcome.transition.overridden,
        })
        .to_string();
        self.record(
            &domain,
            &state,
            outcome,
            Some(evidence_json),
            force.as_ref(),
            actor,
        )
        .await
    }

    /// What the domain's TLS-RPT reports say for the promotion gate (see [`Domains::promote`]).
    ///
    /// # Errors
    /// The store's.
    pub async fn tlsrpt_evidence(
        &self,
        domain: &str,
        live: &LiveCheck,
        now: OffsetDateTime,
    ) -> Result<TlsRptEvidence, DomainError> {
        let r = readiness::load(
            &self.store,
            domain,
            readiness::DEFAULT_DAYS,
            now,
            Some(live),
        )
        .await?;
        Ok(r.tlsrpt_evidence())
    }

    /// Rolls back to testing; the notices say until when senders keep a cached `enforce`.
    ///
    /// # Errors
    /// [`DomainError::Rollout`] (already testing); the store's errors.
    pub async fn rollback(
        &self,
        domain: &str,
        reason: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<OpResult, DomainError> {
        let domain = normalize_domain(domain)?;
        let (_, state) = self.load(&domain).await?;
        let outcome = state.rollback(now, reason, &self.cfg)?;
        self.record(&domain, &state, outcome, None, None, actor)
            .await
    }

    /// Removes safely (RFC 8461 §8.3): the first call serves `mode: none` until the longest
    /// `max_age` published has passed; a call after that deletes the domain and says which DNS
    /// records can go. `force` deletes at once (recorded).
    ///
    /// # Errors
    /// [`DomainError::Rollout`] (`TooEarly`); the store's errors.
    pub async fn remove(
        &self,
        domain: &str,
        force: Option<&str>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<OpResult, DomainError> {
        let domain = normalize_domain(domain)?;
        let force = force_of(force)?;
        let (view, state) = self.load(&domain).await?;
        let full = view.delegation == mtasts_store::Delegation::Full.as_str();
        if state.stage == Stage::Removed {
            // A removal that recorded its transition and then failed to delete: finish it.
            let change = Change::new(actor, now).because("finishing the removal");
            self.store.remove_domain(&domain, &change).await?;
            return Ok(OpResult::new(&domain, None, Vec::new()));
        }
        let outcome = state.remove(now, force.as_ref(), &self.cfg)?;
        if outcome.state.stage == Stage::Removed {
            // First the transition, which is refused if another instance moved the domain
            // meanwhile (a rollback must not be deleted), then the deletion.
            let reason = transition_reason(&outcome);
            let transition = Transition {
                from: state.stage.name().to_owned(),
                to: Stage::Removed.name().to_owned(),
                reason: reason.clone(),
                forced: force.is_some(),
                evidence: None,
                policy: None,
            };
            let change = Change::new(actor, outcome.transition.at).because(reason);
            self.store.transition(&domain, &transition, &change).await?;
            self.store.remove_domain(&domain, &change).await?;
            let mut notices = outcome.notices;
            if full {
                for n in &mut notices {
                    if let Notice::DnsRecordsRemovable { records } = n {
                        *records = mtasts_core::rollout::REMOVABLE_RECORDS_FULL.to_vec();
                    }
                }
            }
            return Ok(OpResult::new(&domain, None, notices));
        }
        self.record(&domain, &state, outcome, None, force.as_ref(), actor)
            .await
    }

    async fn record(
        &self,
        domain: &str,
        from: &RolloutState,
        outcome: Outcome,
        evidence: Option<String>,
        force: Option<&Force>,
        actor: &str,
    ) -> Result<OpResult, DomainError> {
        let reason = transition_reason(&outcome);
        let transition = Transition {
            from: from.stage.name().to_owned(),
            to: outcome.state.stage.name().to_owned(),
            reason: reason.clone(),
            forced: force.is_some(),
            evidence,
            policy: new_policy(&outcome),
        };
        let change = Change::new(actor, outcome.transition.at).because(reason);
        self.store.transition(domain, &transition, &change).await?;
        self.result(domain, outcome.notices).await
    }

    /// Installs a certificate for `mta-sts.<domain>` after [`check_certificate`]; the key is
    /// sealed by the store.
    ///
    /// # Errors
    /// [`DomainError::NotFound`]; [`DomainError::Certificate`]; the store's errors.
    pub async fn import_certificate(
        &self,
        domain: &str,
        chain_pem: &str,
        key_pem: &str,
        actor: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<CertificateCheck, DomainError> {
        let domain = normalize_domain(domain)?;
        if self.store.domain(&domain).await?.is_none() {
            return Err(DomainError::NotFound(domain));
        }
        let checked = check_certificate(&domain, chain_pem, key_pem, now)?;
        let mut change = Change::new(actor, now);
        if let Some(r) = reason {
            change = change.because(r);
        }
        let cert = mtasts_store::NewCertificate {
            chain_pem: chain_pem.to_owned(),
            key: mtasts_store::PrivateKeyPem::new(key_pem),
            not_after: checked.not_after,
            source: mtasts_store::CertSource::Imported,
        };
        self.store.put_certificate(&domain, &cert, &change).await?;
        Ok(checked)
    }
}

/// The state with `max_age` served instead (same stage), as an outcome whose notice says to
/// publish the new id.
fn with_max_age(
    state: &RolloutState,
    max_age: u32,
    now: OffsetDateTime,
) -> Result<Outcome, DomainError> {
    if max_age == 0 || max_age > mtasts_core::policy::MAX_AGE_LIMIT {
        return Err(DomainError::Invalid {
            what: "max_age",
            why: format!(
                "{max_age} is outside 1 to {}",
                mtasts_core::policy::MAX_AGE_LIMIT
            ),
        });
    }
    let mut next = state.clone();
    next.max_age = max_age;
    next.longest_max_age = next.longest_max_age.max(max_age);
    if let Some(until) = state
        .enforce_cached_until(now)
        .filter(|_| matches!(state.stage, Stage::Enforce { .. }) && max_age < state.max_age)
    {
        next.enforce_cached_until = Some(until);
    }
    let served = next
        .served()
        .ok_or_else(|| DomainError::Corrupt("no policy".into()))?;
    let mut notices = vec![Notice::PublishId {
        txt_record: served.txt_record.clone(),
    }];
    if let Some(until) = next.enforce_cached_until.filter(|u| *u > now) {
        notices.insert(0, Notice::EnforceCached { until });
    }
    Ok(Outcome {
        served: Some(served),
        transition: mtasts_core::rollout::Transition {
            action: mtasts_core::rollout::Action::SetMx,
            from: Some(state.stage),
            to: next.stage,
            at: now,
            reasons: vec![format!("max_age {} -> {max_age}", state.max_age)],
            forced: None,
            overridden: Vec::new(),
        },
        state: next,
        notices,
    })
}

fn parse_patterns(raw: &[String]) -> Result<Vec<MxPattern>, DomainError> {
    if raw.is_empty() || raw.len() > 1000 {
        return Err(DomainError::Invalid {
            what: "mx",
            why: format!("{} patterns, expected 1 to 1000", raw.len()),
        });
    }
    raw.iter()
        .map(|p| {
            let p = p.trim();
            MxPattern::parse_strict(p.strip_suffix('.').unwrap_or(p)).map_err(|e| {
                DomainError::Invalid {
                    what: "mx",
                    why: format!(
                        "{:?}: {}",
                        p.chars().take(100).collect::<String>(),
                        e.describe()
                    ),
                }
            })
        })
        .collect()
}

/// Core's linter on the text to serve: errors refuse it, the rest comes back as lines.
fn lint(text: &str) -> Result<Vec<String>, DomainError> {
    let parsed = mtasts_core::policy::parse_policy(text.as_bytes());
    if !parsed.is_valid() {
        return Err(DomainError::Invalid {
            what: "policy",
            why: parsed
                .diagnostics
                .iter()
                .map(|d| format!("{} {}", d.id, d.message))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok(parsed
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.id, d.message))
        .collect())
}
