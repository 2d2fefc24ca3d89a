//! TLS-RPT intake: one pipeline for reports from every path (HTTPS `POST`, SMTP, IMAP, files).
//!
//! [`Intake::ingest`] takes the bytes as they arrived, lets core sniff what they are (gzip,
//! JSON or a report mail, from the bytes, never from a declared type) and parse them tolerantly
//! within its limits (D25), refuses a report for a policy domain this instance does not host
//! when it came over the network (D27: TLS-RPT has no authorisation of destinations), and
//! stores each accepted report with its raw JSON in one transaction, once: a copy of a report
//! already stored (same organization and report-id) is counted, not stored again. Parsing is
//! synchronous CPU work bounded by core's limits; a server calls [`parse`] off its async
//! threads and then [`Intake::store`].
//!
//! - [`files`]: what `mtasts report import` reads: files, maildirs and mbox files.
//! - [`imap`]: the IMAP importer: report mail read from a mailbox over TLS, moved to a
//!   folder once stored (or to another when unreadable), never deleted.
//! - [`smtp`]: the SMTP receiver for `rua=mailto:` reports, and [`dkim`]: the DKIM verdict
//!   of report mail.
//! - [`views`]: the JSON of stored reports, shared by `mtasts report` and the admin API.
//! - [`readiness`]: the enforce readiness verdict of a domain from its reports (D53).

pub mod alerts;
pub mod dkim;
pub mod files;
pub mod imap;
pub mod readiness;
pub mod smtp;
pub mod views;

use std::sync::Arc;

use mtasts_core::report::{Limits, ParsedReport, ReportError, RunBudget, parse_reports_in};
use mtasts_store::{Arrival, Inserted, PreparedReport, Store};

/// Which policy domains an intake path accepts reports for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Any (files the operator chose to import).
    Any,
    /// Only domains hosted in the store (the network paths, D27).
    Hosted,
}

/// A fast answer to "is this policy domain hosted here?", kept in memory by the caller (the
/// server's snapshot of what it serves): `true` is taken as is, without a store read; `false`
/// only means "ask the store". The name is in lower case, without a trailing dot.
#[derive(Clone)]
pub struct KnownDomains(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl KnownDomains {
    /// A hint answered by `known`.
    pub fn new(known: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(known))
    }
}

impl std::fmt::Debug for KnownDomains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KnownDomains(..)")
    }
}

/// What happened to one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Stored under this id.
    New(i64),
    /// A copy of the report stored under `id`; `copies` received so far.
    Duplicate {
        /// The stored report.
        id: i64,
        /// Copies received, the first included.
        copies: u64,
    },
    /// Not stored, for this reason (a domain not hosted here).
    Refused(String),
}

/// One report of an input and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `organization-name`.
    pub organization: String,
    /// `report-id`.
    pub report_id: String,
    /// The first policy's domain (empty when the reporter left it out).
    pub policy_domain: String,
    /// What became of it.
    pub stored: Stored,
}

/// What became of the reports of one input (a `POST`, a mail), counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// New reports stored.
    pub stored: u64,
    /// Copies of reports stored before.
    pub duplicates: u64,
    /// Why each refused report was refused.
    pub refused: Vec<String>,
}

impl Tally {
    /// Counts `outcomes`, adding each to `mtasts_intake_reports_total{via, result}`.
    pub fn of(outcomes: &[Outcome], via: &'static str) -> Self {
        let mut t = Self::default();
        for o in outcomes {
            let result = match &o.stored {
                Stored::New(_) => {
                    t.stored += 1;
                    "stored"
                }
                Stored::Duplicate { .. } => {
                    t.duplicates += 1;
                    "duplicate"
                }
                Stored::Refused(why) => {
                    t.refused.push(why.clone());
                    "refused"
                }
            };
            metrics::counter!("mtasts_intake_reports_total", "via" => via, "result" => result)
                .increment(1);
        }
        t
    }

    /// At least one report was stored or counted as a copy.
    pub fn accepted(&self) -> bool {
        self.stored + self.duplicates > 0
    }
}

/// Why an input gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The bytes hold no valid report (core's reason: not a report, too large, a gzip bomb,
    /// malformed MIME, ...).
    #[error("no valid TLS-RPT report: {0}")]
    NotAReport(#[from] ReportError),
    /// The store could not be read or written: nothing of this input was stored after the
    /// reports already counted in the outcomes.
    #[error("the store: {0}")]
    Store(#[from] mtasts_store::Error),
}

/// The reports in `bytes`, sniffed and parsed within `limits`, spending `run`'s decompression
/// budget (synchronous, CPU-bound, bounded by the limits).
///
/// # Errors
/// [`ReportError`] when no valid report is in the bytes.
pub fn parse(
    bytes: &[u8],
    limits: &Limits,
    run: &mut RunBudget,
) -> Result<Vec<ParsedReport>, ReportError> {
    parse_reports_in(bytes, limits, run)
}

/// The `domain` label of the per-domain metrics: the policy domain in lower case (`-` when the
/// report names none). Only reports that were accepted are counted by domain, so the label takes
/// only the values of domains accepted here (hosted ones on the network paths): a stranger
/// cannot grow the series.
fn domain_label(domain: &str) -> String {
    if domain.is_empty() {
        "-".into()
    } else {
        domain.trim_end_matches('.').to_ascii_lowercase()
    }
}

/// The most sessions one report adds to a counter (a hostile count near `u64::MAX` would wrap
/// the counter).
const MAX_COUNTED_SESSIONS: u64 = 1_000_000_000;

/// Adds a new report's sessions to `mtasts_tlsrpt_sessions_total{domain, result}`: `success`,
/// and the failed sessions of each failure detail by result type (one of the eleven of the
/// IANA registry, `other` for anything else, so the label stays bounded). Only the policies of
/// the domain the report was accepted for count: a report accepted for a hosted domain could
/// carry thousands of policies for other names, and each would be a new series.
fn count_sessions(report: &mtasts_core::report::Report, accepted_for: &str) {
    let domain = domain_label(accepted_for);
    for p in &report.policies {
        if domain_label(p.policy.policy_domain.as_deref().unwrap_or("")) != domain {
            continue;
        }
        metrics::counter!("mtasts_tlsrpt_sessions_total", "domain" => domain.clone(), "result" => "success")
            .increment(p.summary.total_successful_session_count.min(MAX_COUNTED_SESSIONS));
        for f in &p.failure_details {
            let result = if mtasts_core::report::ResultType::KNOWN.contains(&f.result_type) {
                f.result_type.as_str().to_owned()
            } else {
                "other".to_owned()
            };
            metrics::counter!("mtasts_tlsrpt_sessions_total", "domain" => domain.clone(), "result" => result)
                .increment(f.failed_session_count.min(MAX_COUNTED_SESSIONS));
        }
    }
}

/// Fills in the outcomes of the `accepted` reports from what the store did with them, and
/// counts them (`mtasts_tlsrpt_reports_total`; the sessions of each new one).
fn account<'a>(
    out: &mut [Outcome],
    accepted: &[usize],
    inserted: Vec<Inserted>,
    report: impl Fn(usize) -> &'a mtasts_core::report::Report,
) {
    for (&i, ins) in accepted.iter().zip(inserted) {
        out[i].stored = match ins {
            Inserted::New(id) => {
                count_sessions(report(i), &out[i].policy_domain);
                Stored::New(id)
            }
            Inserted::Duplicate { id, copies } => Stored::Duplicate { id, copies },
        };
        let result = if matches!(out[i].stored, Stored::New(_)) {
            "stored"
        } else {
            "duplicate"
        };
        metrics::counter!("mtasts_tlsrpt_reports_total",
            "domain" => domain_label(&out[i].policy_domain), "result" => result)
        .increment(1);
    }
}

/// The intake pipeline on one store.
#[derive(Debug, Clone)]
pub struct Intake {
    store: Store,
    accept: Accept,
    limits: Limits,
    known: Option<KnownDomains>,
}

impl Intake {
    /// An intake storing into `store`, accepting the domains `accept` says, with core's
    /// default limits.
    pub fn new(store: Store, accept: Accept) -> Self {
        Self {
            store,
            accept,
            limits: Limits::default(),
            known: None,
        }
    }

    /// The same, answering [`Intake::refusal`] for the domains `known` vouches for without
    /// reading the store (with [`Accept::Hosted`]; the store is still read for the rest, so a
    /// domain added a moment ago is accepted before the hint knows it).
    #[must_use]
    pub fn with_known_domains(mut self, known: KnownDomains) -> Self {
        self.known = Some(known);
        self
    }

    /// The same with other parser limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The store's backend: `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The parser limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Parses `bytes` and stores every report in them (see the crate docs).
    ///
    /// # Errors
    /// [`IntakeError`]: no valid report, or the store failed (reports before the failure are
    /// stored; none is half-stored).
    pub async fn ingest(
        &self,
        bytes: &[u8],
        arrival: &Arrival,
        run: &mut RunBudget,
    ) -> Result<Vec<Outcome>, IntakeError> {
        let parsed = parse(bytes, &self.limits, run)?;
        self.store(&parsed, arrival).await
    }

    /// Stores parsed reports (see [`Intake::ingest`]), in one transaction.
    ///
    /// # Errors
    /// [`IntakeError::Store`]: none of them is stored.
    pub async fn store(
        &self,
        parsed: &[ParsedReport],
        arrival: &Arrival,
    ) -> Result<Vec<Outcome>, IntakeError> {
        let batch: Vec<(&ParsedReport, &Arrival)> = parsed.iter().map(|p| (p, arrival)).collect();
        self.store_batch(&batch).await
    }

    /// Stores reports of several inputs in one transaction (one commit, one `fsync`): each
    /// accepted or refused as [`Intake::ingest`] says, one outcome per report, in order.
    ///
    /// # Errors
    /// [`IntakeError::Store`]: none of the batch is stored.
    pub async fn store_batch(
        &self,
        batch: &[(&ParsedReport, &Arrival)],
    ) -> Result<Vec<Outcome>, IntakeError> {
        let (mut out, accepted) = self.screen(batch.iter().copied()).await?;
        let pairs: Vec<(&ParsedReport, &Arrival)> = accepted.iter().map(|i| batch[*i]).collect();
        let inserted = self.store.insert_reports(&pairs).await?;
        account(&mut out, &accepted, inserted, |i| &batch[i].0.report);
        Ok(out)
    }

    /// [`Intake::store_batch`] of reports whose stored values were computed ahead
    /// ([`PreparedReport::new`], e.g. on the thread that parsed them, while the batch before
    /// was being stored).
    ///
    /// # Errors
    /// [`IntakeError::Store`]: none of the batch is stored.
    pub async fn store_prepared(
        &self,
        batch: &[PreparedReport],
    ) -> Result<Vec<Outcome>, IntakeError> {
        let (mut out, accepted) = self
            .screen(batch.iter().map(|p| (&p.parsed, &p.arrival)))
            .await?;
        let prepared: Vec<&PreparedReport> = accepted.iter().map(|i| &batch[*i]).collect();
        let inserted = self.store.insert_prepared(&prepared).await?;
        account(&mut out, &accepted, inserted, |i| &batch[i].parsed.report);
        Ok(out)
    }

    /// One outcome per report, refused ones final ([`Intake::refusal`]); the indexes of the
    /// accepted, whose outcomes [`account`] fills in once they are committed.
    async fn screen<'a>(
        &self,
        batch: impl Iterator<Item = (&'a ParsedReport, &'a Arrival)>,
    ) -> Result<(Vec<Outcome>, Vec<usize>), IntakeError> {
        let mut out: Vec<Outcome> = Vec::with_capacity(batch.size_hint().0);
        let mut accepted = Vec::with_capacity(batch.size_hint().0);
        for (i, (p, arrival)) in batch.enumerate() {
            let r = &p.report;
            let policy_domain = r
                .policies
                .iter()
                .find_map(|x| x.policy.policy_domain.clone())
                .unwrap_or_default();
            let stored = match self.refusal(&policy_domain).await? {
                Some(why) => {
                    tracing::info!(domain = %policy_domain, organization = %r.organization_name,
                        via = arrival.via.as_str(), "TLS-RPT report refused: {why}");
                    Stored::Refused(why)
                }
                None => {
                    accepted.push(i);
                    // Filled in by `account`, once the batch is committed.
                    Stored::New(0)
                }
            };
            out.push(Outcome {
                organization: r.organization_name.clone(),
                report_id: r.report_id.clone(),
                policy_domain,
                stored,
            });
        }
        Ok((out, accepted))
    }

    /// The same intake, accepting any domain: for a writer whose callers checked each report
    /// with [`Intake::refusal`] already.
    #[must_use]
    pub fn accepting_any(&self) -> Self {
        Self {
            store: self.store.clone(),
            accept: Accept::Any,
            limits: self.limits.clone(),
            known: None,
        }
    }

    /// Why a report for `policy_domain` is refused by this intake, if it is.
    ///
    /// # Errors
    /// [`IntakeError::Store`] when the hosted domains cannot be read.
    pub async fn refusal(&self, policy_domain: &str) -> Result<Option<String>, IntakeError> {
        if self.accept == Accept::Any {
            return Ok(None);
        }
        if policy_domain.is_empty() {
            return Ok(Some("the report names no policy domain".into()));
        }
        let name = policy_domain.trim_end_matches('.').to_ascii_lowercase();
        if self.known.as_ref().is_some_and(|k| (k.0)(&name)) {
            return Ok(None);
        }
        if self.store.domain(&name).await?.is_some() {
            Ok(None)
        } else {
            Ok(Some(format!("{name} is not a domain hosted here")))
        }
    }
}
