//! Reading a hosted domain's rollout state back from the store, and what `show` reports.
//!
//! The store keeps the stage name (`testing`, `enforce`, `withdrawing`), when it was entered,
//! the policy served and two RFC 8461 §8.3 facts (`longest_max_age`, `non_none_ended_at`). The
//! rest of core's [`RolloutState`] is derived: the `enforce` step is the configured step whose
//! `max_age` the served policy has (or the highest below it, after a `set --max-age`); the
//! withdrawal's `safe_at` is `non_none_ended_at + longest_max_age`; `enforce_cached_until` is
//! the latest expiry of an `enforce` policy that was replaced, read from the policy history.

use mtasts_core::policy::Mode;
use mtasts_core::rollout::{RolloutConfig, RolloutState, Stage};
use mtasts_store::{Certificate, HostedDomain, StoredPolicy};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::DomainError;

/// Rebuilds core's rollout state from the store's rows.
pub(crate) fn rollout_state(
    hosted: &HostedDomain,
    history: &[StoredPolicy],
    cfg: &RolloutConfig,
) -> Result<RolloutState, DomainError> {
    let policy = &hosted.policy;
    let r = &hosted.rollout;
    let stage = match r.state.as_str() {
        "testing" => Stage::Testing,
        "enforce" => Stage::Enforce {
            step: enforce_step(policy.max_age, cfg),
        },
        "withdrawing" => Stage::Withdrawing {
            safe_at: plus(
                r.non_none_ended_at.unwrap_or(r.state_since),
                r.longest_max_age,
            ),
        },
        "removed" => Stage::Removed,
        other => {
            return Err(DomainError::Corrupt(format!(
                "{} is in rollout state {other:?}, which this build does not know",
                hosted.name
            )));
        }
    };
    if stage == Stage::Removed {
        // Recorded, not yet deleted (see `Domains::remove`): nothing more to serve or decide.
        return Ok(RolloutState {
            stage,
            mx: Vec::new(),
            max_age: 0,
            since: r.state_since,
            longest_max_age: r.longest_max_age,
            enforce_cached_until: enforce_cached_until(history),
        });
    }
    let mut mx = Vec::with_capacity(policy.mx.len());
    for p in &policy.mx {
        mx.push(p.parse().map_err(|_| {
            DomainError::Corrupt(format!(
                "{}: stored mx pattern {p:?} is invalid",
                hosted.name
            ))
        })?);
    }
    mx.sort();
    mx.dedup();
    let state = RolloutState {
        stage,
        mx,
        max_age: policy.max_age,
        since: r.state_since,
        longest_max_age: r.longest_max_age.max(match stage {
            Stage::Withdrawing { .. } => 0,
            _ => policy.max_age,
        }),
        enforce_cached_until: enforce_cached_until(history),
    };
    state
        .check()
        .map_err(|why| DomainError::Corrupt(format!("{}: {why}", hosted.name)))?;
    Ok(state)
}

/// The step index for an `enforce` policy serving `max_age`.
fn enforce_step(max_age: u32, cfg: &RolloutConfig) -> usize {
    cfg.enforce_steps
        .iter()
        .rposition(|s| s.max_age <= max_age)
        .unwrap_or(0)
}

/// The latest time a sender may still apply an `enforce` policy that has been replaced.
fn enforce_cached_until(history: &[StoredPolicy]) -> Option<OffsetDateTime> {
    history
        .windows(2)
        .filter(|w| w[0].mode == Mode::Enforce)
        .map(|w| plus(w[1].published_at, w[0].max_age))
        .max()
}

fn plus(t: OffsetDateTime, secs: u32) -> OffsetDateTime {
    t.checked_add(Duration::seconds(i64::from(secs)))
        .unwrap_or(t)
}

/// What `mtasts domain show` and `GET /v1/domains/{domain}` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainView {
    /// The policy domain.
    pub domain: String,
    /// The rollout stage name: `testing`, `enforce`, `withdrawing` (`removed` only between a
    /// removal's transition and its deletion).
    pub state: String,
    /// The stage in words (`enforcing (step 2)`, `withdrawing (safe to remove at ...)`).
    pub state_description: String,
    /// The `enforce` step (0-based), when enforcing.
    pub enforce_step: Option<usize>,
    /// When the current stage began.
    #[serde(with = "time::serde::rfc3339")]
    pub state_since: OffsetDateTime,
    /// The policy served, byte for byte (canonical CRLF text).
    pub policy_text: String,
    /// Its content-derived id.
    pub policy_id: String,
    /// The mode served.
    pub mode: Mode,
    /// The `max_age` served.
    pub max_age: u32,
    /// The `mx` patterns served.
    pub mx: Vec<String>,
    /// The `_mta-sts` TXT record to publish: `v=STSv1; id=<id>`.
    pub txt_record: String,
    /// Where to publish it.
    pub txt_name: String,
    /// The longest `max_age` of any non-`none` policy served so far.
    pub longest_max_age: u32,
    /// Until when senders may still apply a replaced `enforce` policy, if one was served.
    #[serde(with = "time::serde::rfc3339::option")]
    pub enforce_cached_until: Option<OffsetDateTime>,
    /// While withdrawing: when removal becomes safe (RFC 8461 §8.3).
    #[serde(with = "time::serde::rfc3339::option")]
    pub removal_safe_at: Option<OffsetDateTime>,
    /// The certificate installed for `mta-sts.<domain>`, if any (never its key).
    pub certificate: Option<CertificateView>,
    /// How the owner delegated the domain: `host` (only `mta-sts.<domain>` points at us) or
    /// `full` (the TXT records are CNAMEs into our zone and we publish them).
    #[serde(default)]
    pub delegation: String,
    /// Every DNS record the delegation needs, and whether each is in place (`show` only; the
    /// list leaves them out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<crate::hosting::DnsRecord>,
    /// Full delegation: what our zone holds for the domain and the state of the updates
    /// (`null` before the first attempt, and for `host` delegation).
    #[serde(default)]
    pub dns_update: Option<DnsUpdateView>,
    /// Open drift events (`mtasts domain check`, the background checker), newest first.
    #[serde(default)]
    pub drift: Vec<DriftView>,
}

/// What our zone holds for a fully delegated domain, as the authoritative server acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsUpdateView {
    /// The `_mta-sts` TXT value published.
    pub sts_value: Option<String>,
    /// The `_smtp._tls` TXT value published.
    pub tlsrpt_value: Option<String>,
    /// When the server last accepted an update.
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    /// Why the last update failed (cleared by a success).
    pub last_error: Option<String>,
    /// Failed updates since the last success.
    pub failures: u32,
    /// When the next update is tried, after a failure.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

impl From<mtasts_store::DnsPublished> for DnsUpdateView {
    fn from(p: mtasts_store::DnsPublished) -> Self {
        Self {
            next_attempt: (p.failures > 0).then_some(p.next_attempt),
            sts_value: p.sts_value,
            tlsrpt_value: p.tlsrpt_value,
            published_at: p.published_at,
            last_error: p.last_error,
            failures: p.failures,
        }
    }
}

/// An open drift event as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftView {
    /// `txt-record`, `mx-coverage` or `policy-host` ([`crate::drift`]).
    pub kind: String,
    /// What was seen.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
    /// When it was first seen.
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// When it was last seen.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

impl From<mtasts_store::DriftEvent> for DriftView {
    fn from(e: mtasts_store::DriftEvent) -> Self {
        Self {
            kind: e.kind,
            detail: e.detail,
            fix: e.fix,
            first_seen: e.first_seen,
            last_seen: e.last_seen,
        }
    }
}

/// The certificate of `mta-sts.<domain>` as shown (never its key), and the ACME work on it.
/// Present when a certificate is installed or ACME has worked on one; the certificate's
/// fields are `null` while none is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    /// Where it came from: `acme` or `imported`.
    pub source: Option<String>,
    /// The end-entity certificate's issuer (RFC 4514 form).
    #[serde(default)]
    pub issuer: Option<String>,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    /// When it was installed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub installed_at: Option<OffsetDateTime>,
    /// When ACME renews it (an imported certificate is the operator's: `null`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_renewal: Option<OffsetDateTime>,
    /// Why the last ACME attempt failed, in the words recorded (cleared by a success).
    #[serde(default)]
    pub last_error: Option<String>,
    /// When it failed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
    /// Failed attempts since the last success.
    #[serde(default)]
    pub failures: u32,
    /// Not before this time is the next attempt made (the backoff after a failure).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

impl CertificateView {
    /// The view of an installed certificate (`cert`) and the ACME work on it (`acme`).
    pub fn new(cert: Option<&Certificate>, acme: Option<&mtasts_store::AcmeState>) -> Option<Self> {
        if cert.is_none() && acme.is_none() {
            return None;
        }
        let issuer = cert.and_then(|c| {
            use rustls::pki_types::pem::PemObject;
            let der = rustls::pki_types::CertificateDer::pem_slice_iter(c.chain_pem.as_bytes())
                .next()?
                .ok()?;
            let (_, leaf) = x509_parser::parse_x509_certificate(&der).ok()?;
            Some(leaf.issuer().to_string())
        });
        let acme_cert = cert.is_none_or(|c| c.source == mtasts_store::CertSource::Acme);
        Some(Self {
            source: cert.map(|c| c.source.as_str().to_owned()),
            issuer,
            not_after: cert.map(|c| c.not_after),
            installed_at: cert.map(|c| c.installed_at),
            next_renewal: acme.filter(|_| acme_cert).and_then(|a| a.next_renewal),
            last_error: acme.and_then(|a| a.last_error.clone()),
            last_error_at: acme.and_then(|a| a.last_error_at),
            failures: acme.map_or(0, |a| a.failures),
            next_attempt: acme.filter(|a| a.failures > 0).map(|a| a.next_attempt),
        })
    }
}

impl DomainView {
    pub(crate) fn new(
        hosted: &HostedDomain,
        state: &RolloutState,
        cert: Option<&Certificate>,
    ) -> Self {
        let p = &hosted.policy;
        Self {
            domain: hosted.name.clone(),
            state: state.stage.name().to_owned(),
            state_description: state.stage.to_string(),
            enforce_step: match state.stage {
                Stage::Enforce { step } => Some(step),
                _ => None,
            },
            state_since: state.since,
            policy_text: p.text.clone(),
            policy_id: p.id.clone(),
            mode: p.mode,
            max_age: p.max_age,
            mx: p.mx.clone(),
            txt_record: format!("v=STSv1; id={}", p.id),
            txt_name: format!("_mta-sts.{}", hosted.name),
            longest_max_age: state.longest_max_age,
            enforce_cached_until: state.enforce_cached_until,
            removal_safe_at: match state.stage {
                Stage::Withdrawing { safe_at } => Some(safe_at),
                _ => None,
            },
            certificate: CertificateView::new(cert, None),
            delegation: hosted.delegation.as_str().to_owned(),
            records: Vec::new(),
            dns_update: None,
            drift: Vec::new(),
        }
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// The text form `mtasts domain show` prints (`--format json` is the serde form).
impl std::fmt::Display for DomainView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "domain:      {}", self.domain)?;
        writeln!(
            f,
            "state:       {} since {}",
            self.state_description,
            stamp(self.state_since)
        )?;
        writeln!(f, "policy id:   {}", self.policy_id)?;
        writeln!(
            f,
            "publish:     {} TXT \"{}\"",
            self.txt_name, self.txt_record
        )?;
        if let Some(until) = self.enforce_cached_until {
            writeln!(f, "cached enforce policy may apply until {}", stamp(until))?;
        }
        if let Some(at) = self.removal_safe_at {
            writeln!(f, "removal safe at {}", stamp(at))?;
        }
        let esc = |t: &str| mtasts_core::text::escape(t).into_owned();
        match &self.certificate {
            Some(CertificateView {
                source: Some(source),
                not_after: Some(not_after),
                issuer,
                ..
            }) => writeln!(
                f,
                "certificate: {source} for mta-sts.{}, expires {}, issued by {}",
                self.domain,
                stamp(*not_after),
                esc(issuer.as_deref().unwrap_or("?"))
            )?,
            _ => writeln!(
                f,
                "certificate: none yet for mta-sts.{} (ACME on the server, or import one)",
                self.domain
            )?,
        }
        if let Some(c) = &self.certificate {
            if let Some(at) = c.next_renewal {
                writeln!(f, "renewal:     due at {}", stamp(at))?;
            }
            if let Some(e) = &c.last_error {
                writeln!(
                    f,
                    "LAST ACME ERROR ({} failure(s), next attempt {}): {}",
                    c.failures,
                    c.next_attempt.map_or_else(|| "soon".into(), stamp),
                    esc(e)
                )?;
            }
        }
        if let Some(u) = &self.dns_update
            && let Some(e) = &u.last_error
        {
            writeln!(
                f,
                "LAST DNS UPDATE ERROR ({} failure(s), next attempt {}): {}",
                u.failures,
                u.next_attempt.map_or_else(|| "soon".into(), stamp),
                esc(e)
            )?;
        }
        if !self.records.is_empty() {
            writeln!(f, "DNS records ({} delegation):", self.delegation)?;
            for r in &self.records {
                let mark = match r.in_place {
                    Some(true) => "in place",
                    Some(false) => "MISSING",
                    None => "not checked",
                };
                let who = if r.managed_by == "mtasts" {
                    " (we publish)"
                } else {
                    ""
                };
                write!(
                    f,
                    "  [{mark}] {} {} \"{}\"{who}",
                    esc(&r.name),
                    r.rtype,
                    esc(&r.value)
                )?;
                match &r.note {
                    Some(n) => writeln!(f, ": {}", esc(n))?,
                    None => writeln!(f)?,
                }
            }
        }
        for d in &self.drift {
            writeln!(
                f,
                "DRIFT {} since {}: {}",
                d.kind,
                stamp(d.first_seen),
                d.detail
            )?;
            writeln!(f, "  fix: {}", d.fix)?;
        }
        writeln!(f, "served policy:")?;
        for line in self.policy_text.lines() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}
