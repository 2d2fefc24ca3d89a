//! The enforce readiness verdict of a domain ("what if `enforce` now?", decisions D53): from its
//! TLS-RPT reports of the last days and, when given, a live check of its MX hosts, which
//! sessions would have failed, from which reporters, at which MX, why, and the fix; then `go`,
//! `no-go`, or `unknown` when there is not enough to say (no report is not "broken").
//!
//! [`assess`] is the verdict itself, pure: the store's rows in, a [`Readiness`] out. [`load`]
//! reads those rows for one domain and calls it. `mtasts report readiness`, the admin API
//! (`GET /v1/reports/readiness`) and the promotion gate (`Domains::promote`, through
//! [`Readiness::tlsrpt_evidence`]) all use [`load`].
//!
//! A failure is a **blocker** unless one of these makes it a **note**: a DANE result type
//! (enforcing MTA-STS does not change it), an MX host the live MX records no longer name, an
//! expired certificate the live check finds valid now, or a row of [`KNOWN`] (a reporter's
//! own fault, from public sources). A failure that a row of [`KNOWN`] would explain but that
//! cannot be told apart without the live check stays **undecided**.

mod known;
#[cfg(test)]
mod tests;

pub use known::{Effect, KNOWN, KnownBehaviour, fix};

use known::{Condition, DANE_TYPES, Who, tlsrpt_reporter};
use mtasts_core::name::{MxPattern, normalize_host};
use mtasts_core::rollout::{LiveCheck, Probe, TlsRptEvidence};
use mtasts_store::{DayTotal, FailureTotal, ReporterTotal, Store};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

/// Days of reports weighed when none are given.
pub const DEFAULT_DAYS: u32 = 14;
/// The most days that can be asked for.
pub const MAX_DAYS: u32 = 366;
/// The most findings in each list (and reporters in the evidence); the rest are counted in
/// [`Readiness::omitted`].
pub const MAX_LISTED: usize = 50;
/// The most sending IPs named per finding.
const MAX_IPS: usize = 5;

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Reports show sessions succeeding and nothing that `enforce` would refuse.
    Go,
    /// At least one blocker.
    NoGo,
    /// Not enough to say: no report, no successful session, or failures left undecided.
    Unknown,
}

impl Verdict {
    /// `go`, `no-go`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Go => "go",
            Self::NoGo => "no-go",
            Self::Unknown => "unknown",
        }
    }
}

/// A hosted domain as the verdict needs it.
#[derive(Debug, Clone)]
pub struct Hosted {
    /// Its rollout stage (`testing`, `enforce`, ...).
    pub stage: String,
    /// The `mx` patterns of the policy served now.
    pub mx: Vec<MxPattern>,
}

/// What the verdict is made from.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The policy domain, normalised.
    pub domain: &'a str,
    /// Now.
    pub now: OffsetDateTime,
    /// The days of reports weighed ([`Store::report_days`] from `now - days`).
    pub days: u32,
    /// Sessions per day ([`Store::report_days`] for the domain).
    pub day_totals: &'a [DayTotal],
    /// Per reporter ([`Store::report_reporters`]).
    pub reporters: &'a [ReporterTotal],
    /// Failed sessions ([`Store::report_failures`] for the domain).
    pub failures: &'a [FailureTotal],
    /// The domain as hosted here, if it is.
    pub hosted: Option<&'a Hosted>,
    /// A live check of the MX hosts, if one was made.
    pub live: Option<&'a LiveCheck>,
}

/// The evidence weighed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// Reports (each once).
    pub reports: u64,
    /// Reporters (organizations).
    pub reporters: u64,
    /// Days with at least one report.
    pub days_with_reports: u64,
    /// Successful sessions.
    pub successful_sessions: u64,
    /// Failed sessions (the reports' summaries).
    pub failed_sessions: u64,
    /// Failed sessions in blockers (the reports' failure details).
    pub blocking_sessions: u64,
    /// Failed sessions left undecided.
    pub undecided_sessions: u64,
    /// Failed sessions in notes.
    pub noted_sessions: u64,
    /// Per reporter, most sessions first.
    pub by_reporter: Vec<ReporterEvidence>,
}

/// One reporter's part of the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReporterEvidence {
    /// `organization-name`.
    pub organization: String,
    /// The reporting software, when its report ids tell it (`tlsrpt-reporter`).
    pub software: Option<&'static str>,
    /// Reports.
    pub reports: u64,
    /// Successful sessions.
    pub successful_sessions: u64,
    /// Failed sessions.
    pub failed_sessions: u64,
    /// Days with a report from it.
    pub days: u64,
}

/// One blocker, undecided failure or note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What kind: `tlsrpt-failure`, `mx-not-covered`, `no-starttls`, `certificate-invalid`,
    /// `dane-failure`, `mx-gone`, `certificate-renewed`, `untested`, `no-live-check`, ...
    pub id: &'static str,
    /// Where it comes from: `reports`, `live-check`, or `context`.
    pub from: &'static str,
    /// The receiving MX host.
    pub receiving_mx: Option<String>,
    /// The TLS-RPT result type.
    pub result_type: Option<String>,
    /// Failed sessions (reports only).
    pub failed_sessions: u64,
    /// The reporters (organizations).
    pub reporters: Vec<String>,
    /// Some sending IPs (at most 5, none empty).
    pub sending_ips: Vec<String>,
    /// How many distinct sending IPs were named.
    pub sending_ip_count: usize,
    /// The addresses of the MX host (live check only).
    pub receiving_ips: Vec<String>,
    /// What, in words.
    pub message: String,
    /// The fix, in words.
    pub fix: Option<String>,
    /// The row of [`KNOWN`] that applied.
    pub known: Option<&'static str>,
    /// Its public source.
    pub reference: Option<&'static str>,
}

/// Findings left out past [`MAX_LISTED`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Omitted {
    /// Blockers.
    pub blockers: usize,
    /// Undecided.
    pub undecided: usize,
    /// Notes.
    pub notes: usize,
    /// Reporters in the evidence.
    pub reporters: usize,
}

/// The verdict with its evidence.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// The policy domain.
    pub domain: String,
    /// `go`, `no-go`, `unknown`.
    pub verdict: Verdict,
    /// The verdict in one sentence.
    pub summary: String,
    /// Reports whose range begins on or after this day's start count.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Days weighed.
    pub days: u32,
    /// The rollout stage when hosted here.
    pub stage: Option<String>,
    /// What was weighed.
    pub evidence: Evidence,
    /// The live check, as given.
    pub live_check: Option<LiveCheck>,
    /// What stands between the domain and `enforce`, most sessions first.
    pub blockers: Vec<Finding>,
    /// Failures that cannot be told apart without more (a live check).
    pub undecided: Vec<Finding>,
    /// What does not block, and why.
    pub notes: Vec<Finding>,
    /// What the lists left out.
    pub omitted: Omitted,
}

impl Readiness {
    /// What the promotion gate weighs: `NotCollected` without reports, `Failures` counting
    /// blocking and undecided sessions, `Clean` otherwise.
    pub fn tlsrpt_evidence(&self) -> TlsRptEvidence {
        let e = &self.evidence;
        if e.reports == 0 {
            return TlsRptEvidence::NotCollected;
        }
        match e.blocking_sessions.saturating_add(e.undecided_sessions) {
            0 => TlsRptEvidence::Clean {
                reports: u32::try_from(e.reports).unwrap_or(u32::MAX),
            },
            n => TlsRptEvidence::Failures { failed_sessions: n },
        }
    }
}

impl Finding {
    fn new(id: &'static str, from: &'static str, message: String) -> Self {
        Self {
            id,
            from,
            receiving_mx: None,
            result_type: None,
            failed_sessions: 0,
            reporters: Vec::new(),
            sending_ips: Vec::new(),
            sending_ip_count: 0,
            receiving_ips: Vec::new(),
            message,
            fix: None,
            known: None,
            reference: None,
        }
    }

    fn known(mut self, k: &KnownBehaviour) -> Self {
        self.known = Some(k.id);
        self.reference = Some(k.source);
        self
    }
}

/// What the live check says of one MX host.
enum LiveHost {
    /// Not checked, or the host is not in the check.
    Unknown,
    /// Every address probed valid.
    Valid,
    /// No address, or some address failed or could not be probed.
    Other,
}

fn live_host(live: Option<&LiveCheck>, mx: &str) -> LiveHost {
    let Some(h) = live.and_then(|l| l.hosts.iter().find(|h| normalize_host(&h.host) == mx)) else {
        return LiveHost::Unknown;
    };
    if !h.addresses.is_empty() && h.addresses.iter().all(|a| a.probe == Probe::Valid) {
        LiveHost::Valid
    } else {
        LiveHost::Other
    }
}

/// How one reporter's failures of one kind at one MX are classified.
enum Class {
    Blocker(Option<&'static KnownBehaviour>),
    Undecided(&'static KnownBehaviour, &'static str),
    Note(&'static KnownBehaviour),
}

fn classify(i: &Inputs<'_>, rtype: &str, mx: &str, reporter: Option<&ReporterTotal>) -> Class {
    let mut blocker_row = None;
    for k in KNOWN.iter().filter(|k| k.effect != Effect::Detail) {
        let who = match (&k.who, reporter) {
            (Who::Any, _) => true,
            (Who::Organization(o), Some(r)) => r.organization.eq_ignore_ascii_case(o),
            (Who::TlsrptReporter, Some(r)) => tlsrpt_reporter(r),
            _ => false,
        };
        if !who || !(k.result_types.is_empty() || k.result_types.contains(&rtype)) {
            continue;
        }
        let holds = match k.when {
            Condition::MxUnder(d) => mx.strip_suffix(d).is_some_and(|h| h.ends_with('.')),
            Condition::LiveContradicts => {
                let covered = i
                    .hosted
                    .map(|h| h.mx.iter().any(|p| p.matches_normalized(mx)));
                match (covered, live_host(i.live, mx)) {
                    (None, _) => {
                        return Class::Undecided(
                            k,
                            "the domain is not hosted here, so its mx patterns are not known",
                        );
                    }
                    (Some(false), _) | (_, LiveHost::Other) => false,
                    (Some(true), LiveHost::Valid) => true,
                    (Some(true), LiveHost::Unknown) => {
                        return Class::Undecided(k, "no live check of this MX host was given");
                    }
                }
            }
            Condition::EmptySendingIp | Condition::NoReceivingMx => false,
        };
        match (holds, k.effect) {
            (true, Effect::Note) => return Class::Note(k),
            (true, _) => blocker_row = blocker_row.or(Some(k)),
            (false, _) => {}
        }
    }
    Class::Blocker(blocker_row)
}

/// One group of failures being put together.
#[derive(Default)]
struct Group {
    sessions: u64,
    reporters: BTreeSet<String>,
    ips: BTreeSet<String>,
}

impl Group {
    fn add(&mut self, f: &FailureTotal) {
        self.sessions = self.sessions.saturating_add(f.sessions);
        self.reporters.insert(f.organization.clone());
        if !f.sending_ip.is_empty() {
            self.ips.insert(f.sending_ip.clone());
        }
    }

    fn finding(self, id: &'static str, rtype: &str, mx: &str, message: String) -> Finding {
        let mut f = Finding::new(id, "reports", message);
        f.receiving_mx = (!mx.is_empty()).then(|| mx.to_owned());
        f.result_type = Some(rtype.to_owned());
        f.failed_sessions = self.sessions;
        f.sending_ip_count = self.ips.len();
        f.sending_ips = self.ips.into_iter().take(MAX_IPS).collect();
        f.reporters = self.reporters.into_iter().collect();
        f
    }
}

/// Where each kind of failure group goes while the failures are sorted.
#[derive(Default)]
struct Sorted {
    blockers: Vec<Finding>,
    undecided: Vec<Finding>,
    notes: Vec<Finding>,
}

/// The failures of the reports, sorted into blockers, undecided and notes.
fn failures(i: &Inputs<'_>, out: &mut Sorted, e: &mut Evidence) {
    let by_org: BTreeMap<&str, &ReporterTotal> = i
        .reporters
        .iter()
        .map(|r| (r.organization.as_str(), r))
        .collect();
    // (result type, MX) -> class key -> group.
    type Key = (u8, Option<&'static str>, &'static str);
    let mut groups: BTreeMap<(String, String), BTreeMap<Key, Group>> = BTreeMap::new();
    let live_hosts: BTreeSet<String> = i
        .live
        .map(|l| l.hosts.iter().map(|h| normalize_host(&h.host)).collect())
        .unwrap_or_default();
    for f in i.failures.iter().filter(|f| f.sessions > 0) {
        let mx = if f.receiving_mx.is_empty() {
            String::new()
        } else {
            normalize_host(&f.receiving_mx)
        };
        let rtype = f.result_type.as_str();
        // Whole-group notes first, then each reporter on its own.
        let key: Key = if DANE_TYPES.contains(&rtype) {
            (2, None, "dane-failure")
        } else if !mx.is_empty() && !live_hosts.is_empty() && !live_hosts.contains(&mx) {
            (2, None, "mx-gone")
        } else if rtype == "certificate-expired"
            && matches!(live_host(i.live, &mx), LiveHost::Valid)
        {
            (2, None, "certificate-renewed")
        } else {
            match classify(i, rtype, &mx, by_org.get(f.organization.as_str()).copied()) {
                Class::Blocker(k) => (0, k.map(|k| k.id), ""),
                Class::Undecided(k, why) => (1, Some(k.id), why),
                Class::Note(k) => (2, Some(k.id), "known"),
            }
        };
        groups
            .entry((rtype.to_owned(), mx))
            .or_default()
            .entry(key)
            .or_default()
            .add(f);
    }
    for ((rtype, mx), classes) in groups {
        let at = if mx.is_empty() {
            String::new()
        } else {
            format!(" at {mx}")
        };
        for ((class, known, what), g) in classes {
            let row = known.and_then(|id| KNOWN.iter().find(|k| k.id == id));
            let n = g.sessions;
            match class {
                0 => {
                    e.blocking_sessions = e.blocking_sessions.saturating_add(n);
                    let msg = format!("{n} sessions failed with {rtype}{at}");
                    let mut f = g.finding("tlsrpt-failure", &rtype, &mx, msg);
                    f.fix = Some(fix(&rtype, f.receiving_mx.as_deref(), i.domain));
                    if let Some(k) = row {
                        f.fix = Some(k.explanation.to_owned());
                        f = f.known(k);
                    }
                    out.blockers.push(f);
                }
                1 => {
                    e.undecided_sessions = e.undecided_sessions.saturating_add(n);
                    let msg = format!(
                        "{n} sessions failed with {rtype}{at}, reported by software known to \
                         fail on its own; not told apart: {what}"
                    );
                    let mut f = g.finding("tlsrpt-failure", &rtype, &mx, msg);
                    f.fix = Some(fix(&rtype, f.receiving_mx.as_deref(), i.domain));
                    if let Some(k) = row {
                        f = f.known(k);
                    }
                    out.undecided.push(f);
                }
                _ => {
                    e.noted_sessions = e.noted_sessions.saturating_add(n);
                    let (id, msg) = match (what, row) {
                        ("dane-failure", _) => (
                            "dane-failure",
                            format!(
                                "{n} sessions failed DANE ({rtype}){at}: enforcing MTA-STS does not \
                             change them (DANE decides per host, D22)"
                            ),
                        ),
                        ("mx-gone", _) => (
                            "mx-gone",
                            format!(
                                "{n} sessions failed with {rtype}{at}, a host the live MX records \
                             no longer name: enforce cannot fail there"
                            ),
                        ),
                        ("certificate-renewed", _) => (
                            "certificate-renewed",
                            format!(
                                "{n} sessions failed with certificate-expired{at}; the live check \
                             finds a valid certificate on every address now"
                            ),
                        ),
                        (_, Some(k)) => (
                            "tlsrpt-failure",
                            format!(
                                "{n} sessions failed with {rtype}{at}, but the live check finds the \
                             host covered by the policy and valid: the reporter's own fault \
                             ({}). {}",
                                k.id, k.explanation
                            ),
                        ),
                        _ => (
                            "tlsrpt-failure",
                            format!("{n} sessions failed with {rtype}{at}"),
                        ),
                    };
                    let mut f = g.finding(id, &rtype, &mx, msg);
                    if id == "dane-failure" {
                        f.fix = Some(fix(&rtype, f.receiving_mx.as_deref(), i.domain));
                    }
                    if let Some(k) = row {
                        f = f.known(k);
                    }
                    out.notes.push(f);
                }
            }
        }
    }
}

/// The findings of the live check: hosts the policy does not cover and addresses that fail
/// are blockers; what could not be probed is a note.
fn live(i: &Inputs<'_>, l: &LiveCheck, out: &mut Sorted) {
    if l.hosts.is_empty() {
        out.notes.push(Finding::new(
            "no-mx-hosts",
            "live-check",
            "the live check found no MX host (or could not look them up): it says nothing of them"
                .into(),
        ));
    }
    for h in &l.hosts {
        let host = normalize_host(&h.host);
        if let Some(hosted) = i.hosted
            && !hosted.mx.iter().any(|p| p.matches_normalized(&host))
        {
            let mut f = Finding::new(
                "mx-not-covered",
                "live-check",
                format!(
                    "no mx line of the policy covers the MX host {host}: enforce would refuse it"
                ),
            );
            f.receiving_mx = Some(host.clone());
            f.result_type = Some("validation-failure".into());
            f.fix = Some(format!(
                "add it to the policy (its name, or `*.` one label above it): mtasts domain set {} --mx ... with every pattern",
                i.domain
            ));
            out.blockers.push(f);
        }
        if h.addresses.is_empty() {
            let mut f = Finding::new(
                "no-address",
                "live-check",
                format!(
                    "the MX host {host} has no address: no sender can deliver there, with or without MTA-STS"
                ),
            );
            f.receiving_mx = Some(host.clone());
            out.notes.push(f);
        }
        let mut by: BTreeMap<(u8, String), Vec<String>> = BTreeMap::new();
        for a in &h.addresses {
            let key = match &a.probe {
                Probe::Valid => continue,
                Probe::NoStarttls => (0, "starttls-not-supported".to_owned()),
                Probe::CertificateInvalid { reason } => (1, reason.clone()),
                Probe::Untested { reason } => (2, reason.clone()),
            };
            by.entry(key).or_default().push(a.address.to_string());
        }
        for ((kind, what), addrs) in by {
            let (id, msg) = match kind {
                0 => ("no-starttls", format!("{host} does not offer STARTTLS")),
                1 => (
                    "certificate-invalid",
                    format!("{host} presents a certificate that fails: {what}"),
                ),
                _ => ("untested", format!("{host} could not be probed: {what}")),
            };
            let mut f = Finding::new(id, "live-check", msg);
            f.receiving_mx = Some(host.clone());
            f.receiving_ips = addrs;
            if kind == 2 {
                out.notes.push(f);
            } else {
                f.result_type = Some(what.clone());
                f.fix = Some(fix(&what, Some(&host), i.domain));
                out.blockers.push(f);
            }
        }
    }
}

/// Notes on what the verdict could not weigh, and the rows of [`KNOWN`] that explain a gap in
/// the data.
fn context(i: &Inputs<'_>, out: &mut Sorted) {
    let note = |id, msg: String| Finding::new(id, "context", msg);
    if i.live.is_none() {
        out.notes.push(note(
            "no-live-check",
            "no live check of the MX hosts was given: the verdict rests on the reports alone, \
             and failures only a live check can tell apart stay undecided"
                .into(),
        ));
    }
    match i.hosted {
        None => out.notes.push(note(
            "not-hosted",
            format!(
                "{} is not hosted here: its policy's mx patterns are not known",
                i.domain
            ),
        )),
        Some(h) if h.stage != "testing" => out.notes.push(note(
            "not-testing",
            format!(
                "{} is in {}, not testing: the reports are of the policy served then",
                i.domain, h.stage
            ),
        )),
        Some(_) => {}
    }
    if i.reporters.len() == 1 {
        out.notes.push(note(
            "one-reporter",
            "one reporter only: senders that do not report are not in the evidence".into(),
        ));
    }
    for k in KNOWN.iter().filter(|k| k.effect == Effect::Detail) {
        let Who::Organization(org) = k.who else {
            continue;
        };
        let n: u64 = i
            .failures
            .iter()
            .filter(|f| f.organization.eq_ignore_ascii_case(org))
            .filter(|f| {
                k.result_types.is_empty() || k.result_types.contains(&f.result_type.as_str())
            })
            .filter(|f| match k.when {
                Condition::EmptySendingIp => f.sending_ip.is_empty(),
                Condition::NoReceivingMx => f.receiving_mx.is_empty(),
                _ => false,
            })
            .map(|f| f.sessions)
            .sum();
        if n > 0 {
            let mut f = note(k.id, format!("{n} failed sessions: {}", k.explanation)).known(k);
            f.failed_sessions = n;
            f.reporters = vec![org.to_owned()];
            out.notes.push(f);
        }
    }
}

/// The verdict (see the module docs and D53).
pub fn assess(i: &Inputs<'_>) -> Readiness {
    let since = i.now - time::Duration::days(i64::from(i.days));
    let since = since.replace_nanosecond(0).unwrap_or(since);
    let mut e = Evidence::default();
    for d in i.day_totals.iter().filter(|d| d.policy_domain == i.domain) {
        e.reports = e.reports.saturating_add(d.reports);
        e.successful_sessions = e.successful_sessions.saturating_add(d.success);
        e.failed_sessions = e.failed_sessions.saturating_add(d.failure);
        e.days_with_reports += u64::from(d.reports > 0);
    }
    e.reporters = i.reporters.len() as u64;
    let mut reporters: Vec<&ReporterTotal> = i.reporters.iter().collect();
    reporters.sort_by_key(|r| std::cmp::Reverse(r.success.saturating_add(r.failure)));
    let mut omitted = Omitted {
        reporters: reporters.len().saturating_sub(MAX_LISTED),
        ..Omitted::default()
    };
    e.by_reporter = reporters
        .into_iter()
        .take(MAX_LISTED)
        .map(|r| ReporterEvidence {
            organization: r.organization.clone(),
            software: tlsrpt_reporter(r).then_some("tlsrpt-reporter"),
            reports: r.reports,
            successful_sessions: r.success,
            failed_sessions: r.failure,
            days: r.days,
        })
        .collect();
    let mut out = Sorted::default();
    failures(i, &mut out, &mut e);
    if let Some(l) = i.live {
        live(i, l, &mut out);
    }
    context(i, &mut out);
    // Most sessions first; otherwise in the order found (reports by type and MX, then the
    // live check's hosts in its order).
    let order = |a: &Finding, b: &Finding| b.failed_sessions.cmp(&a.failed_sessions);
    let cap = |list: &mut Vec<Finding>, sort: bool| {
        if sort {
            list.sort_by(order);
        }
        let over = list.len().saturating_sub(MAX_LISTED);
        list.truncate(MAX_LISTED);
        over
    };
    omitted.blockers = cap(&mut out.blockers, true);
    omitted.undecided = cap(&mut out.undecided, true);
    omitted.notes = cap(&mut out.notes, false);
    let live_blockers = out
        .blockers
        .iter()
        .filter(|b| b.from == "live-check")
        .count();
    let (verdict, summary) = if !out.blockers.is_empty() {
        let mut s = format!(
            "no-go: {} blockers; enforcing now would have failed {} of {} sessions reported in \
             the last {} days",
            out.blockers.len() + omitted.blockers,
            e.blocking_sessions,
            e.successful_sessions.saturating_add(e.failed_sessions),
            i.days
        );
        if live_blockers > 0 {
            s.push_str(&format!(
                ", and the live check found {live_blockers} problems"
            ));
        }
        (Verdict::NoGo, s)
    } else if e.reports == 0 {
        let s = format!(
            "unknown: no TLS-RPT report for {} in the last {} days, so nothing shows how senders \
             fare (senders report once a day: wait for reports)",
            i.domain, i.days
        );
        (Verdict::Unknown, s)
    } else if e.successful_sessions == 0 {
        let s = format!(
            "unknown: {} reports, but no successful session in them: nothing shows enforce would work",
            e.reports
        );
        (Verdict::Unknown, s)
    } else if !out.undecided.is_empty() {
        let s = format!(
            "unknown: {} failed sessions cannot be told apart from the reporter's own fault \
             without a live check of the MX hosts",
            e.undecided_sessions
        );
        (Verdict::Unknown, s)
    } else {
        let s = format!(
            "go: {} successful sessions from {} reporters over {} of the last {} days, and no \
             failure that enforce would turn into refused mail",
            e.successful_sessions, e.reporters, e.days_with_reports, i.days
        );
        (Verdict::Go, s)
    };
    Readiness {
        domain: i.domain.to_owned(),
        verdict,
        summary,
        since,
        days: i.days,
        stage: i.hosted.map(|h| h.stage.clone()),
        evidence: e,
        live_check: i.live.cloned(),
        blockers: out.blockers,
        undecided: out.undecided,
        notes: out.notes,
        omitted,
    }
}

/// Reads what [`assess`] needs for `domain` (normalised) from the store and assesses it:
/// the reports of the last `days` days (clamped to 1 to [`MAX_DAYS`]), the domain's stage and
/// policy when hosted here, and the live check if one was made.
///
/// # Errors
/// The store's.
pub async fn load(
    store: &Store,
    domain: &str,
    days: u32,
    now: OffsetDateTime,
    live: Option<&LiveCheck>,
) -> Result<Readiness, mtasts_store::Error> {
    let days = days.clamp(1, MAX_DAYS);
    let since = now - time::Duration::days(i64::from(days));
    let day_totals = store.report_days(Some(domain), since).await?;
    let reporters = store.report_reporters(domain, since).await?;
    let failures = store.report_failures(Some(domain), since).await?;
    let hosted = store.domain(domain).await?.map(|d| Hosted {
        stage: d.rollout.state,
        mx: d.policy.mx.iter().filter_map(|p| p.parse().ok()).collect(),
    });
    Ok(assess(&Inputs {
        domain,
        now,
        days,
        day_totals: &day_totals,
        reporters: &reporters,
        failures: &failures,
        hosted: hosted.as_ref(),
        live,
    }))
}
