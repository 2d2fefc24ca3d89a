//! The whole-chain MTA-STS / TLS-RPT audit of a domain.
//!
//! [`check_domain`] looks up the `_mta-sts`, `_smtp._tls` and MX records, fetches the policy over
//! HTTPS, checks that the policy covers every MX host, and probes STARTTLS and the certificate on
//! every address of every MX host. Each problem becomes a [`Finding`] with a stable id, what was
//! observed and the fix; a step that could not be made (timeout, refused connection, DNS failure)
//! is reported as untested, never as a failure of the domain.
//!
//! # Layout
//! - [`model`]: the report (the JSON schema of `mtasts check --format json`), typed and
//!   round-tripping.
//! - [`render`]: the report as text, CSV and a bulk summary.
//! - `records`, `policy`, `mx`, `tls`, `dane`, `rua` (TLS-RPT https endpoints), `botwall`: one
//!   stage or one concern each.

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

mod botwall;
pub mod bulk;
mod dane;
mod finding;
pub mod list;
pub mod model;
mod mx;
mod policy;
mod records;
pub mod render;
mod rua;
pub mod shared_mx;
mod tls;

pub use model::{DomainReport, Finding, Verdict};
/// The network environment a check runs in, built once from [`env::NetOptions`].
pub use mtasts_net::env;
pub use tls::{EXPIRY_ERROR_DAYS, EXPIRY_WARNING_DAYS};

use futures_util::FutureExt;
use mtasts_core::Severity;
use mtasts_net::dns::{Lookup, Resolver};
use mtasts_net::https::{FetchSettings, fetch_policy};
use mtasts_net::probe::ProbeBudget;
use mtasts_net::tls::TlsProbeConfig;
use std::time::Duration;

/// How a check runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The SMTP port of MX hosts (25; tests use others).
    pub smtp_port: u16,
    /// The policy fetch (port, time budget, body cap).
    pub fetch: FetchSettings,
    /// Time budgets of each STARTTLS probe.
    pub probe_budget: ProbeBudget,
    /// Skip the STARTTLS probes (where port 25 is blocked).
    pub no_smtp: bool,
    /// Skip DANE (the validated MX and TLSA lookups): the report's `dane` is null.
    pub no_dane: bool,
    /// The name sent in EHLO.
    pub ehlo_name: String,
    /// Skip the `https:` TLS-RPT report endpoints (R08): the `_smtp._tls` record is still read,
    /// but no connection is made to the addresses it names (`mtasts serve`'s drift checker,
    /// which has no use for them, does not connect where hosted domains point it).
    pub no_endpoints: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            smtp_port: 25,
            fetch: FetchSettings::default(),
            probe_budget: ProbeBudget::default(),
            no_smtp: false,
            no_dane: false,
            ehlo_name: "mtasts-check.invalid".into(),
            no_endpoints: false,
        }
    }
}

/// What a check needs: a resolver, the TLS trust configuration and the settings.
#[derive(Debug, Clone)]
pub struct Env {
    /// DNS.
    pub resolver: Resolver,
    /// Trust roots (and the clock) for every certificate check.
    pub tls: TlsProbeConfig,
    /// The rest.
    pub settings: Settings,
    /// Caps probes in flight per MX address (shared by every check using this `Env`).
    pub limiter: std::sync::Arc<bulk::DestinationLimiter>,
    /// TLS-RPT `https:` endpoints already checked (shared by every check using this `Env`).
    pub endpoints: std::sync::Arc<bulk::EndpointCache>,
}

impl Env {
    /// The environment for `net` (built once by [`env::NetOptions::build`], whose fetch
    /// settings replace `settings.fetch`), with the default per-destination limit.
    pub fn with_network(net: env::Network, settings: Settings) -> Self {
        let env::Network { dns, tls, fetch } = net;
        Self::new(dns, tls, Settings { fetch, ..settings })
    }

    /// An environment with the default per-destination limit ([`DEFAULT_PER_DESTINATION`]).
    pub fn new(resolver: Resolver, tls: TlsProbeConfig, settings: Settings) -> Self {
        let limiter = std::sync::Arc::new(bulk::DestinationLimiter::new(DEFAULT_PER_DESTINATION));
        Self {
            resolver,
            tls,
            settings,
            limiter,
            endpoints: std::sync::Arc::default(),
        }
    }
}

/// Probes in flight to one MX address at most, by default.
pub const DEFAULT_PER_DESTINATION: usize = 4;

/// Checks one domain end to end. Never fails: problems, including unreachable servers, are
/// findings in the report.
pub async fn check_domain(input: &str, env: &Env) -> DomainReport {
    // On the heap: the check's state is large (six chains at once), and a caller's stack (a
    // test thread's 2 MiB, in a debug build) should not have to hold it.
    Box::pin(check(input, env, None)).await
}

/// [`check_domain`] within a time budget: whatever finished by then is kept (records that took
/// 0.1 s are not thrown away because one MX host is slow), each step that did not finish is
/// reported as untested (`check.timeout`), and the verdict says so (incomplete, unless a
/// finished step already failed).
pub async fn check_domain_within(input: &str, env: &Env, budget: Duration) -> DomainReport {
    let deadline = tokio::time::Instant::now() + budget;
    Box::pin(check(input, env, Some((deadline, budget)))).await
}

/// A step's output, or `None` when the deadline came first.
async fn bounded<T>(deadline: Option<Deadline>, step: impl Future<Output = T>) -> Option<T> {
    match deadline {
        None => Some(step.await),
        Some((at, _)) => tokio::time::timeout_at(at, step).await.ok(),
    }
}

/// When the time budget of a check runs out, and how long it was.
pub(crate) type Deadline = (tokio::time::Instant, Duration);

/// The finding for a step that did not finish within the budget.
pub(crate) fn step_timed_out(step: &str, budget: Option<Deadline>) -> Finding {
    let secs = budget.map_or(0.0, |(_, b)| b.as_secs_f64());
    Finding::untested(
        "check.timeout",
        format!(
            "{step} did not finish within the check's time budget ({secs:.1} s), so it was not tested"
        ),
        "run the check again alone, or with a larger --timeout",
    )
}

async fn check(input: &str, env: &Env, deadline: Option<Deadline>) -> DomainReport {
    let mut findings = Vec::new();
    // One rule set for every domain name (`mtasts_core::domain`, D28).
    let domain = match mtasts_core::domain::Domain::parse(input) {
        Ok(d) => d.into_string(),
        Err(why) => {
            findings.push(Finding::new(
                "domain.invalid",
                Severity::Error,
                format!("{input:?} {why}"),
                Some(input.to_owned()),
                "pass a domain name such as example.com",
            ));
            return finish(input.to_owned(), findings, Parts::default());
        }
    };
    let r = &env.resolver;
    let sts_name = format!("_mta-sts.{domain}");
    let rpt_name = format!("_smtp._tls.{domain}");
    // Two independent chains run at once: the records and the policy fetch on one side, the MX
    // lookup, address lookups and STARTTLS probes on the other. Only MX coverage needs both, so
    // the wall time is the longer chain, not their sum.
    let old_rpt_name = format!("_smtp-tlsrpt.{domain}");
    let records_chain = async {
        let sts = r.txt(&sts_name).await;
        let apex = if records::needs_apex(&sts) {
            Some(r.txt(&domain).await)
        } else {
            None
        };
        (sts, apex)
    };
    // The MX answer is shared: the MX chain probes its hosts, and DANE (a third chain, which
    // needs only host names) makes no lookup at all for a domain that does not exist or
    // accepts no mail (null MX).
    let mx_answer = r.mx(&domain).boxed().shared();
    let (records_out, rpt_out, old_rpt_answer, fetch, mx_observed, dane_observed) = tokio::join!(
        bounded(deadline, records_chain),
        bounded(deadline, rua::lookup(&rpt_name, env)),
        bounded(deadline, r.txt(&old_rpt_name)),
        bounded(
            deadline,
            fetch_policy(&domain, r, &env.tls, &env.settings.fetch)
        ),
        mx::observe(&domain, env, mx_answer.clone(), deadline),
        async {
            if env.settings.no_dane {
                None
            } else {
                bounded(deadline, dane::observe(&domain, env, mx_answer.clone())).await
            }
        },
    );
    // RFC 8020: nothing exists below a name that does not exist. Only that is worth saying.
    let nxdomain = matches!(mx_answer.peek(), Some(Ok(Lookup::NxDomain)));
    drop(mx_answer);
    if nxdomain {
        let mx = mx::apply_policy(mx_observed, None, &mut findings);
        return finish(
            domain,
            findings,
            Parts {
                mx,
                ..Parts::default()
            },
        );
    }
    let (sts_record, record) = match &records_out {
        Some((sts_answer, apex_answer)) => {
            records::sts(&domain, sts_answer, apex_answer.as_ref(), &mut findings)
        }
        None => {
            findings.push(step_timed_out(
                &format!("the lookup of {sts_name}"),
                deadline,
            ));
            Default::default()
        }
    };
    let (policy_report, policy) = match &fetch {
        Some(fetch) => policy::policy(&domain, fetch, record.is_some(), &mut findings),
        None => {
            findings.push(step_timed_out("the policy fetch", deadline));
            Default::default()
        }
    };
    let tlsrpt = match (rpt_out, &old_rpt_answer) {
        (Some((rpt_answer, endpoints)), old) => {
            let no_old = Ok(Lookup::NoData);
            let old = old.as_ref().unwrap_or(&no_old);
            let mut t = records::tlsrpt(&domain, &rpt_answer, old, &mut findings);
            t.endpoints = rua::endpoints(endpoints, &mut findings);
            t
        }
        (None, _) => {
            findings.push(step_timed_out(
                &format!("the lookup of {rpt_name}"),
                deadline,
            ));
            model::TlsRptReport::default()
        }
    };
    let mut mx_observed = mx_observed;
    let served = mx_observed.take_served();
    let mx = mx::apply_policy(mx_observed, policy.as_ref(), &mut findings);
    let dane = if env.settings.no_dane {
        None
    } else {
        match dane_observed {
            Some(observed) => dane::apply(observed, &served, &mut findings),
            None => {
                findings.push(step_timed_out("the DANE lookups", deadline));
                None
            }
        }
    };
    drop_real_placeholders(&mut findings, &mx);
    finish(
        domain,
        findings,
        Parts {
            sts_record,
            policy: policy_report,
            mx,
            tlsrpt,
            dane,
        },
    )
}

/// The linter flags documentation-style names (`*.example`, `.test`, ...) as likely template
/// placeholders; in a live check, a pattern that covers one of the domain's real MX hosts is no
/// placeholder, so that warning is dropped.
fn drop_real_placeholders(findings: &mut Vec<Finding>, mx: &[model::MxReport]) {
    findings.retain(|f| {
        if f.id != "policy.mx.placeholder" {
            return true;
        }
        let pattern = f
            .observed
            .as_deref()
            .and_then(|o| o.strip_prefix("mx:"))
            .map(str::trim);
        let covers_real = pattern
            .and_then(|p| p.parse::<mtasts_core::name::MxPattern>().ok())
            .is_some_and(|p| mx.iter().any(|m| p.matches(&m.host)));
        !covers_real
    });
}

#[derive(Default)]
struct Parts {
    sts_record: model::StsRecordReport,
    policy: model::PolicyReport,
    mx: Vec<model::MxReport>,
    tlsrpt: model::TlsRptReport,
    dane: Option<model::DaneReport>,
}

pub(crate) fn finish(domain: String, findings: Vec<Finding>, parts: Parts) -> DomainReport {
    let mut findings = finding::group(findings);
    finding::sort(&mut findings);
    let verdict = finding::verdict(&findings);
    DomainReport {
        schema_version: model::SCHEMA_VERSION,
        domain,
        sts_record: parts.sts_record,
        policy: parts.policy,
        mx: parts.mx,
        tlsrpt: parts.tlsrpt,
        dane: parts.dane,
        findings,
        verdict,
    }
}
