//! Checking many domains: bounded concurrency, a per-destination limit, a time budget per domain,
//! results handed over as they complete (memory stays flat whatever the list size), and an
//! adoption summary.

use crate::model::{DomainReport, Finding, Verdict};
use crate::{Env, check_domain_within};
use futures_util::stream::{Stream, StreamExt};
use mtasts_core::Severity;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Caps the probes in flight to one IP address, so a slow or rate-limiting provider that hosts
/// the MX of many domains cannot hold every worker of a scan.
#[derive(Debug)]
pub struct DestinationLimiter {
    per_ip: usize,
    map: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl DestinationLimiter {
    /// At most `per_ip` probes at a time to one address (at least 1).
    pub fn new(per_ip: usize) -> Self {
        Self {
            per_ip: per_ip.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a slot for `ip`. Entries of idle addresses are dropped again, so the map holds
    /// only addresses with probes in flight.
    pub async fn acquire(&self, ip: IpAddr) -> Permit<'_> {
        let sem = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                map.entry(ip)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_ip))),
            )
        };
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = Arc::clone(&sem).acquire_owned().await.ok();
        Permit {
            limiter: self,
            ip,
            sem,
            permit,
        }
    }

    /// Addresses with probes in flight (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// A probe slot; freed on drop.
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a DestinationLimiter,
    ip: IpAddr,
    sem: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut map = self
            .limiter
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Two references left: the map's and ours. Nobody else waits: forget the address.
        if Arc::strong_count(&self.sem) == 2 && self.sem.available_permits() == self.limiter.per_ip
        {
            map.remove(&self.ip);
        }
    }
}

/// The outcome of checking one TLS-RPT `https:` report endpoint: its report entry and the
/// finding, if any.
pub type EndpointOutcome = (crate::model::EndpointReport, Option<Finding>);

/// Endpoints cached at most; when full, the cache starts over.
pub const ENDPOINT_CACHE: usize = 4096;

/// Each TLS-RPT `https:` report endpoint is checked once per run, however many domains send
/// their reports to it (a hosted collector serves thousands): a scan must not send thousands
/// of requests to one third party. Domains asking at the same time wait for the one check.
#[derive(Debug, Default)]
pub struct EndpointCache {
    map: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<EndpointOutcome>>>>,
}

impl EndpointCache {
    /// The outcome for `uri`: cached, or computed by `check` (once, whoever asks first).
    pub async fn get_or_check<F, Fut>(&self, uri: &str, check: F) -> EndpointOutcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = EndpointOutcome>,
    {
        let cell = {
            let mut map = self
                .map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.len() >= ENDPOINT_CACHE && !map.contains_key(uri) {
                map.clear();
            }
            Arc::clone(map.entry(uri.to_owned()).or_default())
        };
        cell.get_or_init(check).await.clone()
    }
}

/// How a scan runs.
#[derive(Debug, Clone, Copy)]
pub struct ScanSettings {
    /// Domains checked at once.
    pub concurrency: usize,
    /// The most time one domain may take; the steps not finished by then are reported as
    /// untested, the finished ones are kept ([`check_domain_within`]).
    pub domain_budget: Duration,
}

/// Checks every domain of `domains`, `concurrency` at a time, handing each report to `emit` as
/// soon as it is complete (not in input order). Memory is bounded by `concurrency`, not by the
/// number of domains.
pub async fn scan<S, F>(domains: S, env: &Env, settings: ScanSettings, mut emit: F)
where
    S: Stream<Item = String>,
    F: FnMut(DomainReport),
{
    let concurrency = settings.concurrency.max(1);
    let budget = settings.domain_budget;
    let reports = domains
        .map(|domain| async move {
            // The check keeps what finished within the budget itself; this outer limit only
            // catches a check that does not return soon after its deadline.
            let check = check_domain_within(&domain, env, budget);
            match tokio::time::timeout(budget + OVERRUN, check).await {
                Ok(report) => report,
                Err(_) => timed_out(domain, budget),
            }
        })
        .buffer_unordered(concurrency);
    futures_util::pin_mut!(reports);
    while let Some(report) = reports.next().await {
        emit(report);
    }
}

/// How long past its budget a check may take to hand in what it has.
const OVERRUN: Duration = Duration::from_secs(2);

fn timed_out(domain: String, budget: Duration) -> DomainReport {
    let f = Finding::untested(
        "check.timeout",
        format!(
            "the check of {domain} did not finish within {} s",
            budget.as_secs()
        ),
        "run it again alone, or with a larger --timeout",
    );
    let mut r = crate::finish(domain, vec![f], Default::default());
    r.verdict = Verdict::Incomplete;
    r
}

/// The adoption table of a scan.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// Domains checked.
    pub domains: usize,
    /// With a usable `_mta-sts` record.
    pub sts_record: usize,
    /// With a policy a sender applies.
    pub valid_policy: usize,
    /// By mode of the applied policy.
    pub modes: BTreeMap<String, usize>,
    /// With a usable TLS-RPT record.
    pub tlsrpt: usize,
    /// With DANE in use: an MX host with a usable, DNSSEC-secure TLSA RRset.
    pub dane: usize,
    /// By verdict.
    pub verdicts: BTreeMap<String, usize>,
    /// Warning and error finding ids, by the number of domains they occur in.
    pub findings: BTreeMap<&'static str, usize>,
    /// MX hosts shared by domains whose policies disagree (M43).
    #[serde(skip)]
    pub shared_mx: crate::shared_mx::SharedMx,
}

impl Summary {
    /// Counts one report in.
    pub fn add(&mut self, r: &DomainReport) {
        self.domains += 1;
        self.sts_record += usize::from(r.sts_record.id.is_some());
        if let Some(mode) = &r.policy.mode {
            self.valid_policy += 1;
            *self.modes.entry(mode.clone()).or_default() += 1;
        }
        self.tlsrpt += usize::from(!r.tlsrpt.rua.is_empty());
        self.dane += usize::from(r.dane.as_ref().is_some_and(|d| d.adopted));
        let verdict = serde_json::to_value(r.verdict)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        *self.verdicts.entry(verdict).or_default() += 1;
        let mut seen: Vec<&'static str> = r
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .map(|f| f.id)
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            *self.findings.entry(id).or_default() += 1;
        }
        self.shared_mx.add(r);
    }

    /// The `n` most common finding ids, most common first (ties by id).
    pub fn top_findings(&self, n: usize) -> Vec<(&'static str, usize)> {
        let mut top: Vec<(&'static str, usize)> =
            self.findings.iter().map(|(k, v)| (*k, *v)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        top.truncate(n);
        top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limiter_caps_per_address_and_forgets_idle_ones() {
        let l = DestinationLimiter::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let p1 = l.acquire(a).await;
        let p2 = l.acquire(a).await;
        let pb = l.acquire(b).await;
        assert_eq!(l.tracked(), 2);
        // A third probe to `a` waits until one finishes.
        let third = tokio::time::timeout(Duration::from_millis(50), l.acquire(a)).await;
        assert!(
            third.is_err(),
            "a third slot for the same address must wait"
        );
        drop(p1);
        let p3 = tokio::time::timeout(Duration::from_millis(50), l.acquire(a))
            .await
            .expect("a slot was freed");
        drop((p2, p3, pb));
        assert_eq!(
            l.tracked(),
            0,
            "idle addresses are forgotten, so memory stays flat"
        );
    }
}
