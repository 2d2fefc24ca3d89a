//! Drift of hosted domains, and the live check behind a promotion.
//!
//! A hosted domain drifts when the world stops matching what we serve:
//!
//! | kind | noticed when | fix |
//! |---|---|---|
//! | `txt-record` | `_mta-sts.<d>` is missing, invalid, or names another id than the policy served | publish `v=STSv1; id=<served id>` |
//! | `mx-coverage` | a live MX host is not covered by the served `mx` patterns (not checked while serving `mode: none`) | `mtasts domain set <d> --mx ...` |
//! | `policy-host` | `mta-sts.<d>` has no address, serves another policy, or its fetch fails for a definite reason (status, certificate) | point `mta-sts.<d>` at this server; import its certificate |
//!
//! [`assess`] is pure: it compares a [`DomainView`] (what we serve) with a check report (what
//! the world shows: `mtasts check` without the SMTP probes). A kind whose observation could not
//! be made (a DNS time-out, an unreachable policy host) is *unknown*: it neither records nor
//! resolves an event, since "could not look" is not "broken". [`record`] writes the outcome to
//! the store: one open event per domain and kind, resolved when a later check finds it fine.
//! [`Checker`] runs it for every hosted domain in the background of `mtasts serve`; `mtasts
//! domain check D` runs it once.
//!
//! [`live_check`] turns a full check report (with the SMTP probes) into core's
//! [`LiveCheck`], the evidence the promotion gate weighs.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mtasts_check::model::{DomainReport, TlsResult};
use mtasts_check::{Env, check_domain};
use mtasts_core::name::MxPattern;
use mtasts_core::policy::Mode;
use mtasts_core::providers::plan_mx;
use mtasts_core::report::ResultType;
use mtasts_core::rollout::{AddressCheck, HostCheck, LiveCheck, Probe};
use mtasts_store::DriftObservation;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domains::{DomainError, DomainView, Domains};

/// The `_mta-sts` TXT record.
pub const KIND_TXT: &str = "txt-record";
/// The MX set against the served `mx` patterns.
pub const KIND_MX: &str = "mx-coverage";
/// Where `mta-sts.<d>` points and what it serves.
pub const KIND_HOST: &str = "policy-host";
/// Every kind, in report order.
pub const KINDS: [&str; 3] = [KIND_TXT, KIND_MX, KIND_HOST];

/// Longest foreign text (a TXT record, a fetch error) quoted in a drift detail.
const MAX_QUOTE: usize = 300;
/// Most `--mx` patterns a fix spells out (the store keeps a fix under 4 KiB).
const MAX_FIX_PATTERNS: usize = 20;

/// One kind's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum KindStatus {
    /// Matches what is served.
    Fine,
    /// Drifted: what was seen and how to fix it.
    Drift {
        /// What was seen.
        detail: String,
        /// How to fix it.
        fix: String,
    },
    /// Could not be looked at now; says why. Nothing is recorded or resolved.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// One kind and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindResult {
    /// [`KIND_TXT`], [`KIND_MX`] or [`KIND_HOST`].
    pub kind: &'static str,
    /// The verdict.
    #[serde(flatten)]
    pub status: KindStatus,
}

/// What a drift check of one domain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The domain.
    pub domain: String,
    /// When the check ran.
    #[serde(with = "time::serde::rfc3339")]
    pub checked_at: OffsetDateTime,
    /// One entry per kind, in [`KINDS`] order.
    pub kinds: Vec<KindResult>,
}

impl Assessment {
    /// True when some kind drifted.
    pub fn drifted(&self) -> bool {
        self.kinds
            .iter()
            .any(|k| matches!(k.status, KindStatus::Drift { .. }))
    }

    /// True when some kind could not be looked at.
    pub fn incomplete(&self) -> bool {
        self.kinds
            .iter()
            .any(|k| matches!(k.status, KindStatus::Unknown { .. }))
    }
}

/// Foreign text as quoted in a detail: control and bidirectional characters escaped (a TXT
/// record is raw bytes; a newline must not forge a line of output, and the store refuses
/// control characters), cut at [`MAX_QUOTE`] characters.
fn quote(s: &str) -> String {
    let escaped = mtasts_core::text::escape(s);
    let mut out: String = escaped.chars().take(MAX_QUOTE).collect();
    if out.len() < escaped.len() {
        out.push_str("...");
    }
    out
}

fn drift(kind: &'static str, detail: String, fix: String) -> KindResult {
    KindResult {
        kind,
        status: KindStatus::Drift { detail, fix },
    }
}

fn unknown(kind: &'static str, reason: impl Into<String>) -> KindResult {
    KindResult {
        kind,
        status: KindStatus::Unknown {
            reason: reason.into(),
        },
    }
}

fn fine(kind: &'static str) -> KindResult {
    KindResult {
        kind,
        status: KindStatus::Fine,
    }
}

/// Compares what is served (`view`) with what the world shows (`report`, a check of the same
/// domain; the SMTP probes are not needed). Pure.
pub fn assess(view: &DomainView, report: &DomainReport, now: OffsetDateTime) -> Assessment {
    let has = |id: &str| report.findings.iter().any(|f| f.id == id);
    let kinds = if has("domain.nxdomain") {
        let why = format!("{} does not exist in DNS (NXDOMAIN)", view.domain);
        KINDS.iter().map(|k| unknown(k, why.clone())).collect()
    } else {
        vec![
            txt(view, report, has("sts.record.untested")),
            mx(view, report, &has),
            host(view, report, &has),
        ]
    };
    Assessment {
        domain: view.domain.clone(),
        checked_at: now,
        kinds,
    }
}

fn txt(view: &DomainView, report: &DomainReport, untested: bool) -> KindResult {
    let publish = format!("publish {} TXT \"{}\"", view.txt_name, view.txt_record);
    match &report.sts_record.id {
        _ if untested => unknown(KIND_TXT, format!("the {} TXT lookup failed", view.txt_name)),
        Some(id) if *id == view.policy_id => fine(KIND_TXT),
        Some(id) => drift(
            KIND_TXT,
            format!(
                "{} names id {}, but the policy served has id {}: senders that cached the old policy do not fetch the new one",
                view.txt_name,
                quote(id),
                view.policy_id
            ),
            publish,
        ),
        None if report.sts_record.records.is_empty() => drift(
            KIND_TXT,
            format!(
                "no {} TXT record is published: senders do not look for the policy",
                view.txt_name
            ),
            publish,
        ),
        None => drift(
            KIND_TXT,
            format!(
                "the {} TXT record is not valid: {}",
                view.txt_name,
                quote(&report.sts_record.records.join(" | "))
            ),
            format!("replace it: {publish}"),
        ),
    }
}

fn mx(view: &DomainView, report: &DomainReport, has: &dyn Fn(&str) -> bool) -> KindResult {
    if view.mode == Mode::None {
        return fine(KIND_MX);
    }
    if has("mx.untested") {
        return unknown(KIND_MX, format!("the MX lookup of {} failed", view.domain));
    }
    if has("mx.null") {
        return drift(
            KIND_MX,
            format!("{} publishes a null MX (it accepts no mail)", view.domain),
            format!(
                "if that is meant, withdraw the policy: mtasts domain remove {}",
                view.domain
            ),
        );
    }
    let patterns: Vec<MxPattern> = view.mx.iter().filter_map(|p| p.parse().ok()).collect();
    let hosts: Vec<&str> = report.mx.iter().map(|m| m.host.as_str()).collect();
    let uncovered: Vec<&str> = hosts
        .iter()
        .copied()
        .filter(|h| !patterns.iter().any(|p| p.matches(h)))
        .collect();
    if hosts.is_empty() {
        // Nothing seen is not "all covered": a real open event must not be resolved by it.
        return unknown(KIND_MX, format!("no MX host of {} was seen", view.domain));
    }
    if uncovered.is_empty() {
        return fine(KIND_MX);
    }
    let plan = plan_mx(&hosts);
    let patterns = plan.patterns();
    let mut suggested: Vec<String> = patterns
        .iter()
        .take(MAX_FIX_PATTERNS)
        .map(|p| {
            let p = p.to_string();
            // A wildcard would be expanded by the shell the fix is pasted into.
            if p.contains('*') {
                format!("--mx '{p}'")
            } else {
                format!("--mx {p}")
            }
        })
        .collect();
    if patterns.len() > MAX_FIX_PATTERNS {
        suggested.push(format!("... ({} patterns in all)", patterns.len()));
    }
    drift(
        KIND_MX,
        format!(
            "MX hosts not covered by the served policy (mx: {}): {}; in enforce mode senders refuse to deliver to them",
            view.mx.join(", "),
            quote(&uncovered.join(", "))
        ),
        format!(
            "mtasts domain set {} {} (then publish the new TXT id)",
            view.domain,
            suggested.join(" ")
        ),
    )
}

fn host(view: &DomainView, report: &DomainReport, has: &dyn Fn(&str) -> bool) -> KindResult {
    let name = format!("mta-sts.{}", view.domain);
    let point = format!("point {name} (A/AAAA or CNAME) at this server");
    if has("policy.host.untested") || has("policy.fetch.unreachable") {
        return unknown(
            KIND_HOST,
            format!("{name} could not be reached or looked up now"),
        );
    }
    if has("policy.host.missing") {
        return drift(KIND_HOST, format!("{name} has no address record"), point);
    }
    let p = &report.policy;
    let mut served: Vec<String> = view.mx.clone();
    served.sort();
    let mut seen: Vec<String> = p.mx.clone().unwrap_or_default();
    seen.sort();
    if p.valid {
        if p.mode.as_deref() == Some(view.mode.as_str())
            && p.max_age == Some(view.max_age)
            && seen == served
        {
            return fine(KIND_HOST);
        }
        return drift(
            KIND_HOST,
            format!(
                "{name} serves another policy (mode {}, max_age {}, mx {}) than this server (mode {}, max_age {}, mx {}): it points elsewhere, or a cache sits in front",
                quote(p.mode.as_deref().unwrap_or("?")),
                p.max_age.map_or_else(|| "?".into(), |a| a.to_string()),
                quote(&seen.join(", ")),
                view.mode,
                view.max_age,
                served.join(", ")
            ),
            point,
        );
    }
    let why = p
        .fetch
        .error
        .clone()
        .or_else(|| p.fetch.status.map(|s| format!("HTTP status {s}")))
        .or_else(|| p.failure.as_ref().map(|f| f.as_str().to_owned()))
        .unwrap_or_else(|| "the policy is not valid".into());
    let fix = if view.certificate.is_none() {
        format!("import a certificate for {name} (mtasts domain cert import), and {point}")
    } else {
        point
    };
    drift(
        KIND_HOST,
        format!(
            "fetching https://{name}/.well-known/mta-sts.txt failed: {}",
            quote(&why)
        ),
        fix,
    )
}

/// The live check core's promotion gate weighs, from a full check report (SMTP probes made).
pub fn live_check(report: &DomainReport, now: OffsetDateTime) -> LiveCheck {
    let hosts = report
        .mx
        .iter()
        .map(|m| HostCheck {
            host: m.host.clone(),
            addresses: m
                .addresses
                .iter()
                .map(|a| {
                    let why = || a.error.clone().unwrap_or_else(|| a.result.to_string());
                    let Ok(address) = a.ip.parse::<IpAddr>() else {
                        // Not evidence either way: counted as untested, never left out.
                        return AddressCheck {
                            address: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                            probe: Probe::Untested {
                                reason: format!("unreadable address {}", quote(&a.ip)),
                            },
                        };
                    };
                    let probe = match &a.result {
                        TlsResult::Success => Probe::Valid,
                        TlsResult::Failure(ResultType::StarttlsNotSupported) => Probe::NoStarttls,
                        TlsResult::Failure(t) => Probe::CertificateInvalid {
                            reason: t.as_str().to_owned(),
                        },
                        TlsResult::NotTested | TlsResult::Unreachable => {
                            Probe::Untested { reason: why() }
                        }
                    };
                    AddressCheck { address, probe }
                })
                .collect(),
        })
        .collect();
    LiveCheck {
        checked_at: now,
        hosts,
    }
}

/// Records an assessment: an event per drifted kind (its `last_seen` moves on when already
/// open), and the open event of each fine kind resolved. Unknown kinds are left as they are.
///
/// # Errors
/// The store's.
pub async fn record(domains: &Domains, a: &Assessment) -> Result<(), mtasts_store::Error> {
    let store = domains.store();
    // Each kind on its own: one refused write does not leave the others unrecorded.
    let mut first_error = None;
    for k in &a.kinds {
        let written = match &k.status {
            KindStatus::Drift { detail, fix } => {
                let obs = DriftObservation {
                    kind: k.kind.to_owned(),
                    detail: detail.clone(),
                    fix: fix.clone(),
                };
                store
                    .record_drift(&a.domain, &obs, a.checked_at)
                    .await
                    .map(drop)
            }
            KindStatus::Fine => store
                .resolve_drift(&a.domain, k.kind, a.checked_at)
                .await
                .map(drop),
            KindStatus::Unknown { .. } => Ok(()),
        };
        if let Err(e) = written {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Checks one hosted domain now (DNS, policy fetch; no SMTP probes: `env` should say
/// `no_smtp`), and records the outcome.
///
/// # Errors
/// [`DomainError::NotFound`], the store's.
pub async fn check_one(
    domains: &Domains,
    env: &Env,
    domain: &str,
    budget: Duration,
    now: OffsetDateTime,
) -> Result<Assessment, DomainError> {
    let view = domains.show(domain).await?;
    // Every step has its own time-out (the environment's), and reports a step that ran out as
    // untested by name, which `assess` reads per kind. The whole check has `budget` on top: past
    // it nothing is known, rather than a half-finished report read as drift or as fine.
    let a = match tokio::time::timeout(budget, check_domain(&view.domain, env)).await {
        Ok(report) => assess(&view, &report, now),
        Err(_) => {
            let why = format!("the check did not finish within {} s", budget.as_secs());
            Assessment {
                domain: view.domain.clone(),
                checked_at: now,
                kinds: KINDS.iter().map(|k| unknown(k, why.clone())).collect(),
            }
        }
    };
    record(domains, &a).await?;
    Ok(a)
}

/// The background drift checker of `mtasts serve`.
#[derive(Clone)]
pub struct Checker {
    /// The operations (and their store).
    pub domains: Domains,
    /// The network, without SMTP probes.
    pub env: Arc<Env>,
    /// Time between rounds.
    pub interval: Duration,
    /// Domains checked at once.
    pub concurrency: usize,
    /// Budget of one domain's check.
    pub budget: Duration,
}

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker")
            .field("interval", &self.interval)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Checker {
    /// One round over every hosted domain. Returns how many drifted; a domain whose check
    /// fails (the store) is logged and skipped.
    ///
    /// # Errors
    /// The list of domains cannot be read.
    pub async fn round(&self) -> Result<usize, DomainError> {
        // One query for the names; each check reads its own domain.
        let names: Vec<String> = self
            .domains
            .store()
            .domains()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let results: Vec<_> = futures_util::stream::iter(names)
            .map(|d| async move {
                let r = check_one(
                    &self.domains,
                    &self.env,
                    &d,
                    self.budget,
                    OffsetDateTime::now_utc(),
                )
                .await;
                (d, r)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut drifted = 0;
        for (d, r) in results {
            match r {
                Ok(a) if a.drifted() => {
                    drifted += 1;
                    for k in &a.kinds {
                        if let KindStatus::Drift { detail, .. } = &k.status {
                            tracing::warn!(domain = %d, kind = k.kind, %detail, "drift");
                        }
                    }
                }
                Ok(_) | Err(DomainError::NotFound(_)) => {}
                Err(e) => tracing::warn!(domain = %d, error = %e, "drift check failed"),
            }
        }
        metrics::gauge!("mtasts_serve_drifted_domains").set(drifted as f64);
        Ok(drifted)
    }

    /// Runs a round every `interval` (the first one `interval` after start) until `stop`.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.interval) => {}
            }
            tokio::select! {
                () = &mut stop => return,
                r = self.round() => if let Err(e) = r {
                    tracing::warn!(error = %e, "drift round: cannot list the hosted domains");
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn view(mode: Mode, mx: &[&str]) -> DomainView {
        DomainView {
            domain: "example.com".into(),
            state: "testing".into(),
            state_description: "testing".into(),
            enforce_step: None,
            state_since: OffsetDateTime::UNIX_EPOCH,
            policy_text: String::new(),
            policy_id: "abc".into(),
            mode,
            max_age: 86400,
            mx: mx.iter().map(|s| (*s).to_owned()).collect(),
            txt_record: "v=STSv1; id=abc".into(),
            txt_name: "_mta-sts.example.com".into(),
            longest_max_age: 86400,
            enforce_cached_until: None,
            removal_safe_at: None,
            certificate: None,
            delegation: "host".into(),
            records: Vec::new(),
            dns_update: None,
            drift: Vec::new(),
        }
    }

    /// A clean report of example.com serving `view(Testing, ["mx1.example.com"])`.
    fn clean() -> Value {
        json!({
            "schema_version": 1,
            "domain": "example.com",
            "sts_record": { "valid": true, "id": "abc", "records": ["v=STSv1; id=abc"] },
            "policy": {
                "fetch": { "url": "https://mta-sts.example.com/.well-known/mta-sts.txt", "status": 200,
                    "content_type": "text/plain", "bytes": 60, "error": null, "certificate": null, "tls_version": "TLSv1.3" },
                "valid": true, "failure": null, "mode": "testing", "max_age": 86400, "mx": ["mx1.example.com"]
            },
            "mx": [{ "host": "mx1.example.com", "preference": 10, "pattern": "mx1.example.com",
                "addresses": [{ "ip": "192.0.2.1", "starttls": true, "tls_version": "TLSv1.3", "certificate": null,
                    "result": "success", "error": null }],
                "result": "success", "must_refuse": false }],
            "tlsrpt": { "valid": false, "rua": [] },
            "dane": null,
            "findings": [],
            "verdict": "pass"
        })
    }

    fn finding(id: &str) -> Value {
        json!({ "id": id, "severity": "warning", "message": "m", "observed": null, "fix": "f", "untested": true })
    }

    fn run(v: &DomainView, report: Value) -> Vec<(&'static str, KindStatus)> {
        let report: DomainReport = serde_json::from_value(report).unwrap();
        assess(v, &report, OffsetDateTime::UNIX_EPOCH)
            .kinds
            .into_iter()
            .map(|k| (k.kind, k.status))
            .collect()
    }

    fn status(v: &DomainView, report: Value, kind: &str) -> KindStatus {
        run(v, report)
            .into_iter()
            .find(|(k, _)| *k == kind)
            .unwrap()
            .1
    }

    fn detail(s: &KindStatus) -> (&str, &str) {
        match s {
            KindStatus::Drift { detail, fix } => (detail, fix),
            other => panic!("not drift: {other:?}"),
        }
    }

    #[test]
    fn a_domain_that_matches_is_fine_on_every_kind() {
        let v = view(Mode::Testing, &["mx1.example.com"]);
        assert!(run(&v, clean()).iter().all(|(_, s)| *s == KindStatus::Fine));
    }

    #[test]
    fn txt_record_stale_missing_invalid_or_not_looked_at() {
        let v = view(Mode::Testing, &["mx1.example.com"]);
        let mut r = clean();
        r["sts_record"] = json!({ "valid": true, "id": "old", "records": ["v=STSv1; id=old"] });
        let s = status(&v, r, KIND_TXT);
        let (d, fix) = detail(&s);
        assert!(d.contains("id old") && d.contains("id abc"), "{d}");
        assert_eq!(fix, "publish _mta-sts.example.com TXT \"v=STSv1; id=abc\"");
        let mut r = clean();
        r["sts_record"] = json!({ "valid": false, "id": null, "records": [] });
        assert!(detail(&status(&v, r, KIND_TXT)).0.contains("no _mta-sts"));
        let mut r = clean();
        r["sts_record"] =
            json!({ "valid": false, "id": null, "records": ["v=STSv1; id=a", "v=STSv1; id=b"] });
        assert!(detail(&status(&v, r, KIND_TXT)).0.contains("not valid"));
        let mut r = clean();
        r["sts_record"] = json!({ "valid": false, "id": null, "records": [] });
        r["findings"] = json!([finding("sts.record.untested")]);
        assert!(matches!(
            status(&v, r, KIND_TXT),
            KindStatus::Unknown { .. }
        ));
    }

    #[test]
    fn an_uncovered_mx_host_drifts_with_the_patterns_to_set() {
        let v = view(Mode::Enforce, &["mx1.example.com"]);
        let mut r = clean();
        let mut second = r["mx"][0].clone();
        second["host"] = json!("mx2.example.net");
        r["mx"].as_array_mut().unwrap().push(second);
        r["policy"]["mode"] = json!("enforce");
        let s = status(&v, r.clone(), KIND_MX);
        let (d, fix) = detail(&s);
        assert!(
            d.contains("mx2.example.net") && !d.contains("mx1.example.com:"),
            "{d}"
        );
        assert!(
            fix.contains("--mx mx1.example.com") && fix.contains("--mx mx2.example.net"),
            "{fix}"
        );
        // A one-label wildcard covers it; mode none covers nothing and is not checked.
        let wild = view(Mode::Enforce, &["mx1.example.com", "*.example.net"]);
        assert_eq!(status(&wild, r.clone(), KIND_MX), KindStatus::Fine);
        assert_eq!(
            status(&view(Mode::None, &["x.example.org"]), r.clone(), KIND_MX),
            KindStatus::Fine
        );
        r["findings"] = json!([finding("mx.untested")]);
        assert!(matches!(status(&v, r, KIND_MX), KindStatus::Unknown { .. }));
    }

    #[test]
    fn the_policy_host_serving_something_else_or_failing_is_drift_unreachable_is_unknown() {
        let v = view(Mode::Testing, &["mx1.example.com"]);
        let mut r = clean();
        r["policy"]["max_age"] = json!(604_800);
        let s = status(&v, r, KIND_HOST);
        assert!(detail(&s).0.contains("serves another policy"), "{s:?}");
        let mut r = clean();
        r["policy"]["valid"] = json!(false);
        r["policy"]["fetch"]["status"] = json!(null);
        r["policy"]["fetch"]["error"] = json!("certificate-host-mismatch\u{1b}[31m");
        let s = status(&v, r, KIND_HOST);
        let (d, fix) = detail(&s);
        assert!(d.contains("certificate-host-mismatch"), "{d}");
        assert!(
            fix.contains("import a certificate"),
            "no certificate installed: {fix}"
        );
        let mut r = clean();
        r["findings"] = json!([finding("policy.host.missing")]);
        r["policy"]["valid"] = json!(false);
        assert!(
            detail(&status(&v, r, KIND_HOST))
                .0
                .contains("no address record")
        );
        let mut r = clean();
        r["policy"]["valid"] = json!(false);
        r["findings"] = json!([finding("policy.fetch.unreachable")]);
        assert!(matches!(
            status(&v, r, KIND_HOST),
            KindStatus::Unknown { .. }
        ));
    }

    #[test]
    fn foreign_control_characters_are_escaped_and_no_mx_seen_is_not_fine() {
        let v = view(Mode::Enforce, &["mx1.example.com"]);
        let mut r = clean();
        r["sts_record"] = json!({ "valid": false, "id": null,
            "records": ["v=STSv1; id=x\nfine    policy-host\u{1b}[2J"] });
        let s = status(&v, r, KIND_TXT);
        let d = detail(&s).0;
        assert!(!d.chars().any(char::is_control), "{d:?}");
        assert!(d.contains("\\n") || d.contains("\\u"), "{d:?}");
        let mut r = clean();
        r["mx"] = json!([]);
        assert!(matches!(status(&v, r, KIND_MX), KindStatus::Unknown { .. }));
    }

    #[test]
    fn nxdomain_leaves_every_kind_unknown() {
        let v = view(Mode::Testing, &["mx1.example.com"]);
        let mut r = clean();
        r["findings"] = json!([finding("domain.nxdomain")]);
        let all = run(&v, r);
        assert_eq!(all.len(), 3);
        assert!(
            all.iter()
                .all(|(_, s)| matches!(s, KindStatus::Unknown { .. }))
        );
    }

    #[test]
    fn a_long_foreign_string_is_cut_in_the_detail() {
        let v = view(Mode::Testing, &["mx1.example.com"]);
        let mut r = clean();
        let long = "v=STSv1; id=".to_owned() + &"x".repeat(10_000);
        r["sts_record"] = json!({ "valid": false, "id": null, "records": [long] });
        let s = status(&v, r, KIND_TXT);
        assert!(detail(&s).0.len() < MAX_QUOTE + 200);
    }

    #[test]
    fn the_live_check_maps_each_probe_result() {
        let mut r = clean();
        let addr = |ip: &str, result: &str| {
            json!({ "ip": ip, "starttls": null, "tls_version": null,
            "certificate": null, "result": result, "error": null })
        };
        r["mx"][0]["addresses"] = json!([
            addr("192.0.2.1", "success"),
            addr("192.0.2.2", "starttls-not-supported"),
            addr("192.0.2.3", "certificate-expired"),
            addr("192.0.2.4", "unreachable"),
            addr("not an address", "success"),
        ]);
        let report: DomainReport = serde_json::from_value(r).unwrap();
        let live = live_check(&report, OffsetDateTime::UNIX_EPOCH);
        let probes: Vec<&Probe> = live.hosts[0].addresses.iter().map(|a| &a.probe).collect();
        assert_eq!(
            probes.len(),
            5,
            "an unreadable address is kept, as untested"
        );
        assert!(matches!(probes[4], Probe::Untested { .. }));
        assert_eq!(probes[0], &Probe::Valid);
        assert_eq!(probes[1], &Probe::NoStarttls);
        assert_eq!(
            probes[2],
            &Probe::CertificateInvalid {
                reason: "certificate-expired".into()
            }
        );
        assert!(matches!(probes[3], Probe::Untested { .. }));
    }
}
