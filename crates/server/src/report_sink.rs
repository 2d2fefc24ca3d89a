//! TLS-RPT reports by HTTPS `POST` (RFC 8460 §3, `rua=https:`), on the policy listener at one
//! path (`[intake] path`, `/tlsrpt` by default) of every policy host this instance serves: an
//! owner publishes `rua=https://mta-sts.<domain>/tlsrpt`, whose certificate we already hold
//! (decisions D50).
//!
//! Every limit applies before anything is parsed:
//! - only `POST` (405 otherwise);
//! - at most `max_in_flight` requests at once on this instance; more are answered 503 with
//!   `Retry-After` at once (senders retry), nothing read;
//! - a declared `Content-Length` over `max_body` is 413 at once; a body read past `max_body` is
//!   413; a body not complete within `body_timeout` is 408;
//! - the bytes are sniffed and parsed by core (gzip or JSON, whatever the `Content-Type` says)
//!   within its limits (decompressed size per report, D25), off the async threads: 400 with the
//!   reason when they hold no valid report;
//! - each report is accepted only for a policy domain hosted here (D27): 403 when none is. A
//!   domain in the snapshot being served is taken as hosted without a store read; the store is
//!   asked about any other (one added since the snapshot was built is accepted at once; one
//!   removed is refused once the snapshot is rebuilt).
//!
//! A 2xx is sent only after every accepted report is committed to the store (201 when one was
//! new, 200 when all were copies of stored ones); the reports of concurrent `POST`s are
//! committed together (group commit, at most [`GROUP_COMMIT`] reports a transaction); the store out of reach is 503 with
//! `Retry-After`. The answer is JSON: `{"stored", "duplicates", "refused", "reasons"}`, or
//! `{"error"}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use mtasts_core::report::{Limits, RunBudget};
use mtasts_intake::{Intake, Tally};
use mtasts_store::{Arrival, PreparedReport, Via};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::config::secs;
use crate::http::{Body, ReportSink, SinkFuture};

/// The `[intake]` table: reports by HTTPS on the policy listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// The path reports are `POST`ed to on every policy host; `""`: no HTTPS intake. Default
    /// `/tlsrpt`.
    pub path: String,
    /// A host name of our own that reports are also `POST`ed to (`rua=https://<host>/tlsrpt`),
    /// served with its certificate from the store (`mtasts host cert import`); `""`: only the
    /// policy hosts. Chosen by SNI and `Host` like a policy host; it serves no policy.
    pub host: String,
    /// The largest body read, in bytes, as sent (gzip'd or not). Default 1 MiB.
    pub max_body: usize,
    /// Seconds a sender has to send the whole body. Default 30.
    #[serde(deserialize_with = "secs")]
    pub body_timeout: Duration,
    /// The most a report may decompress to, in bytes (core's per-report limit, lowered for a
    /// stranger's `POST`). Default 16 MiB.
    pub max_decompressed: usize,
    /// Reports received at once on this instance; more are told to come back. Default 16. The
    /// memory one may take is bounded by twice `max_decompressed` (core's report budget), so
    /// the intake's is by 16 x 32 MiB.
    pub max_in_flight: usize,
    /// The `Retry-After` of a 503, in seconds. Default 60.
    pub retry_after: u32,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            path: "/tlsrpt".into(),
            host: String::new(),
            max_body: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            max_decompressed: 16 * 1024 * 1024,
            max_in_flight: 16,
            retry_after: 60,
        }
    }
}

impl IntakeConfig {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// What is wrong, naming the option.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.path;
        if !p.is_empty()
            && (!p.starts_with('/')
                || p.len() > 256
                || p == crate::http::POLICY_PATH
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#'))
        {
            return Err(format!(
                "intake.path: {p:?} must be an absolute path (at most 256 visible characters, \
                 no query) other than the policy's"
            ));
        }
        let h = &self.host;
        if !h.is_empty()
            && (h.len() > 253
                || h.starts_with('.')
                || h.ends_with('.')
                || !h.contains('.')
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
        {
            return Err(format!("intake.host: {h:?} is not a host name"));
        }
        if self.max_body == 0
            || self.max_in_flight == 0
            || self.body_timeout.is_zero()
            || self.max_decompressed == 0
        {
            return Err(
                "intake.max_body, max_decompressed, max_in_flight and body_timeout: must not be 0"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The HTTPS intake (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct HttpsIntake(Arc<Inner>);

struct Inner {
    /// Checks each report's domain (D27), concurrently in the `POST`s.
    check: Intake,
    cfg: IntakeConfig,
    in_flight: Arc<Semaphore>,
    limits: Limits,
    /// To the writer that commits the reports of concurrent `POST`s together.
    commits: tokio::sync::mpsc::Sender<Job>,
}

/// The reports of one `POST`, with their stored values computed, waiting for the commit that
/// holds them.
struct Job {
    prepared: Vec<PreparedReport>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<mtasts_intake::Outcome>, String>>,
}

/// The most reports one group commit holds.
pub const GROUP_COMMIT: usize = 256;

/// A body of plain JSON (not gzip'd) up to this size is parsed on the task that read it: tens
/// of microseconds, less than handing it to a blocking thread and back costs. Anything larger,
/// and anything compressed (which may grow to `max_decompressed`), is parsed on a blocking
/// thread.
pub const INLINE_PARSE: usize = 16 * 1024;

/// Parses `bytes` and computes each report's stored values (CPU only).
fn parse_and_prepare(
    bytes: &[u8],
    limits: &Limits,
    arrival: &Arrival,
) -> Result<Vec<PreparedReport>, mtasts_core::report::ReportError> {
    let mut run = RunBudget::new(limits.max_run_decompressed);
    let parsed = mtasts_intake::parse(bytes, limits, &mut run)?;
    Ok(parsed
        .into_iter()
        .map(|p| PreparedReport::new(p, arrival.clone()))
        .collect())
}

/// Commits the reports of every `POST` waiting, together, then answers each (group commit: one
/// transaction, one `fsync`, for what arrived while the previous commit ran). A `POST` is
/// answered only after the commit that holds its reports. When a group's commit fails, each
/// `POST` of it is committed on its own before anyone is answered: one report the store refuses
/// (or a deadlock another writer caused on PostgreSQL) fails only its own `POST`.
async fn writer(intake: Intake, mut jobs: tokio::sync::mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        // Each job's reports are moved into one batch; the job keeps its count and reply.
        let mut replies = Vec::new();
        let mut prepared = Vec::new();
        let mut next = Some(first);
        while let Some(j) = next.take() {
            replies.push((j.prepared.len(), j.reply));
            prepared.extend(j.prepared);
            if prepared.len() < GROUP_COMMIT {
                next = jobs.try_recv().ok();
            }
        }
        match intake.store_prepared(&prepared).await {
            Ok(mut outcomes) => {
                for (n, reply) in replies {
                    let rest = outcomes.split_off(n.min(outcomes.len()));
                    let _ = reply.send(Ok(outcomes));
                    outcomes = rest;
                }
            }
            Err(e) if replies.len() == 1 => {
                for (_, reply) in replies {
                    let _ = reply.send(Err(e.to_string()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, posts = replies.len(),
                    "a group commit of TLS-RPT reports failed; committing each POST on its own");
                let mut start = 0;
                for (n, reply) in replies {
                    let one = &prepared[start..start + n];
                    start += n;
                    let _ = reply.send(intake.store_prepared(one).await.map_err(|e| e.to_string()));
                }
            }
        }
        drop(prepared);
    }
}

impl std::fmt::Debug for HttpsIntake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsIntake")
            .field("cfg", &self.0.cfg)
            .finish_non_exhaustive()
    }
}

fn answer(code: StatusCode, body: &Value) -> Response<Body> {
    let label = match code.as_u16() {
        200 => "200",
        201 => "201",
        400 => "400",
        403 => "403",
        405 => "405",
        408 => "408",
        413 => "413",
        503 => "503",
        _ => "other",
    };
    metrics::counter!("mtasts_intake_https_answers_total", "status" => label).increment(1);
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(code: StatusCode, why: impl Into<String>) -> Response<Body> {
    answer(code, &json!({ "error": why.into() }))
}

impl HttpsIntake {
    /// An intake path for `intake` (which should accept only hosted domains, D27) with `cfg`.
    pub fn new(intake: Intake, cfg: IntakeConfig) -> Self {
        let mut limits = intake.limits().clone();
        limits.max_input = limits.max_input.min(cfg.max_body);
        limits.max_decompressed = limits.max_decompressed.min(cfg.max_decompressed);
        limits.max_mail_decompressed = limits.max_mail_decompressed.min(cfg.max_decompressed);
        limits.max_run_decompressed = cfg.max_decompressed as u64;
        limits.max_report_memory = limits
            .max_report_memory
            .min(cfg.max_decompressed.saturating_mul(2));
        limits.max_mail_memory = limits.max_report_memory;
        let (commits, jobs) = tokio::sync::mpsc::channel(cfg.max_in_flight.max(1));
        // Group commit: on SQLite (one writer, an fsync a commit) it takes the intake from
        // 1,060 to 2,600 reports/s; on PostgreSQL from 1,300/s (each POST committing on its own,
        // in parallel over the pool) to 2,900/s (BENCHMARKS.md, "TLS-RPT reports by HTTPS").
        tokio::spawn(writer(intake.accepting_any(), jobs));
        Self(Arc::new(Inner {
            check: intake,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight)),
            cfg,
            limits,
            commits,
        }))
    }

    fn busy(&self, why: &str) -> Response<Body> {
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, why);
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(self.0.cfg.retry_after));
        r
    }

    async fn receive_report(
        &self,
        host: Arc<str>,
        req: Request<hyper::body::Incoming>,
    ) -> Response<Body> {
        let cfg = &self.0.cfg;
        if req.method() != Method::POST {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "reports are POSTed here");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let Ok(_permit) = Arc::clone(&self.0.in_flight).try_acquire_owned() else {
            return self.busy("too many reports at once; retry later");
        };
        let too_large = || {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a report is at most {} bytes as sent", cfg.max_body),
            )
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > cfg.max_body as u64) {
            return too_large();
        }
        let body = Limited::new(req.into_body(), cfg.max_body).collect();
        let bytes = match tokio::time::timeout(cfg.body_timeout, body).await {
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} s",
                        cfg.body_timeout.as_secs()
                    ),
                );
            }
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
            Ok(Err(e)) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body could not be read: {e}"),
                );
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
        let arrival = Arrival {
            via: Via::Https,
            source: Some(format!("https://{host}{}", cfg.path)),
            at: OffsetDateTime::now_utc(),
            dkim: None,
        };
        let plain_json = bytes.len() <= INLINE_PARSE
            && bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let parsed = if plain_json {
            Ok(parse_and_prepare(&bytes, &self.0.limits, &arrival))
        } else {
            let limits = self.0.limits.clone();
            tokio::task::spawn_blocking(move || parse_and_prepare(&bytes, &limits, &arrival)).await
        };
        let parsed = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                metrics::counter!("mtasts_intake_reports_total", "via" => "https", "result" => "invalid")
                    .increment(1);
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("no valid TLS-RPT report: {e}"),
                );
            }
            Err(_) => return self.busy("the report could not be read; retry later"),
        };
        // The domain check (the snapshot served, else a store read) here, where POSTs run
        // concurrently; the writer only writes.
        let mut refused = Vec::new();
        let mut accepted = Vec::with_capacity(parsed.len());
        for p in parsed {
            let domain = p
                .parsed
                .report
                .policies
                .iter()
                .find_map(|x| x.policy.policy_domain.clone())
                .unwrap_or_default();
            match self.0.check.refusal(&domain).await {
                Ok(Some(why)) => {
                    tracing::info!(%domain, organization = %p.parsed.report.organization_name,
                        "TLS-RPT report refused: {why}");
                    refused.push(why);
                }
                Ok(None) => accepted.push(p),
                Err(e) => {
                    tracing::warn!(error = %e, "TLS-RPT report not checked: the store is out of reach");
                    return self.busy("the report could not be stored; retry later");
                }
            }
        }
        let (reply, committed) = tokio::sync::oneshot::channel();
        let job = Job {
            prepared: accepted,
            reply,
        };
        let stored = if job.prepared.is_empty() {
            Ok(Ok(Vec::new()))
        } else {
            match self.0.commits.send(job).await {
                Ok(()) => committed.await.map_err(|_| "the writer stopped".to_owned()),
                Err(_) => Err("the writer stopped".to_owned()),
            }
        };
        let outcomes = match stored {
            Ok(Ok(o)) => o,
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(error = %e, "TLS-RPT report not stored: the store is out of reach");
                return self.busy("the report could not be stored; retry later");
            }
        };
        // Refused here, before the writer: counted as the writer's refusals are.
        metrics::counter!("mtasts_intake_reports_total", "via" => "https", "result" => "refused")
            .increment(refused.len() as u64);
        let Tally {
            stored,
            duplicates,
            refused: mut reasons,
        } = Tally::of(&outcomes, "https");
        reasons.splice(0..0, refused);
        let body = json!({
            "stored": stored, "duplicates": duplicates, "refused": reasons.len(),
            "reasons": reasons,
        });
        let code = if stored > 0 {
            StatusCode::CREATED
        } else if duplicates > 0 {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        answer(code, &body)
    }
}

impl ReportSink for HttpsIntake {
    fn path(&self) -> &str {
        &self.0.cfg.path
    }

    fn receive(&self, host: Arc<str>, req: Request<hyper::body::Incoming>) -> SinkFuture {
        let this = self.clone();
        Box::pin(async move { this.receive_report(host, req).await })
    }
}
