//! Storing reports: each report's values computed ahead of its transaction (pure CPU, on any
//! thread), then a batch of them written with a few multi-row `INSERT`s in one transaction.
//!
//! Splitting the two lets a bulk import compute the next batch (the normalised JSON text, the
//! policy and failure rows) while the batch before is being written: on SQLite the writing
//! happens on sqlx's worker thread, so the two overlap on two cores.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use mtasts_core::report::ParsedReport;

use crate::Error;
use crate::db::{Backend, WriteTx, on_backend};
use crate::reports::{Arrival, Inserted, day_of, keepable, to_i64, to_u64};

/// The most parameters one statement binds: SQLite's limit (PostgreSQL's is 65,535). A batch's
/// rows of one table go in as few multi-row `INSERT`s as this allows (one, for an import's
/// batch of 256 reports): each statement is a round trip to sqlx's SQLite thread.
const MAX_PARAMS: usize = 32_766;
/// Columns of each multi-row `INSERT` (`reports` takes one more on SQLite: the id).
const REPORT_COLUMNS: usize = 16;
const POLICY_COLUMNS: usize = 7;
const FAILURE_COLUMNS: usize = 9;

/// A report with its stored values computed ([`PreparedReport::new`]): what
/// [`Store::insert_prepared`](crate::Store::insert_prepared) writes.
#[derive(Debug, Clone)]
pub struct PreparedReport {
    /// The report. Its `raw_json` is empty: the bytes moved into the stored values, so that a
    /// prepared report holds its raw JSON once.
    pub parsed: ParsedReport,
    /// Where and when it arrived.
    pub arrival: Arrival,
    pub(crate) values: ReportValues,
}

impl PreparedReport {
    /// Computes the values `parsed` is stored with (cut and cleaned text, the normalised JSON,
    /// the policy and failure rows): CPU only, no store needed.
    #[must_use]
    pub fn new(mut parsed: ParsedReport, arrival: Arrival) -> Self {
        let raw_json = Arc::from(std::mem::take(&mut parsed.raw_json));
        let values = ReportValues::new(&parsed, &arrival, raw_json);
        Self {
            parsed,
            arrival,
            values,
        }
    }
}

/// One report's values as stored, but for its id (known once it is inserted).
///
/// Text and bytes are shared (`Arc`): binding one to a statement is then a reference count,
/// where binding a `&String` makes sqlx copy it (the raw and normalised JSON are most of the
/// bytes a batch writes).
#[derive(Debug, Clone)]
pub(crate) struct ReportValues {
    organization: Arc<str>,
    report_id: Arc<str>,
    policy_domain: Arc<str>,
    contact: Option<Arc<str>>,
    success: i64,
    failure: i64,
    at: i64,
    via: &'static str,
    source: Option<Arc<str>>,
    dkim: Option<&'static str>,
    dkim_detail: Option<Arc<str>>,
    raw_json: Arc<[u8]>,
    normalised: Arc<str>,
    policies: Vec<PolicyRow>,
    failures: Vec<FailureRow>,
}

/// A `report_policies` row, but for its report's id.
#[derive(Debug, Clone)]
struct PolicyRow {
    idx: i64,
    domain: Arc<str>,
    policy_type: Arc<str>,
    day: i64,
    success: i64,
    failure: i64,
}

/// A `report_failures` row, but for its report's id.
#[derive(Debug, Clone)]
struct FailureRow {
    idx: i64,
    domain: Arc<str>,
    day: i64,
    result_type: Arc<str>,
    receiving_mx: Arc<str>,
    sending_ip: Arc<str>,
    receiving_ip: Arc<str>,
    sessions: i64,
}

impl ReportValues {
    /// The values of `parsed` as it arrived by `arrival`, with its raw JSON `raw_json` (taken
    /// apart so that a caller who owns the report can move the bytes instead of copying them).
    pub(crate) fn new(parsed: &ParsedReport, arrival: &Arrival, raw_json: Arc<[u8]>) -> Self {
        let r = &parsed.report;
        let day = day_of(r.date_range.start);
        let (mut success, mut failure) = (0u64, 0u64);
        let (mut policies, mut failures) = (Vec::new(), Vec::new());
        let ip = |a: Option<IpAddr>| Arc::from(a.map(|a| a.to_string()).unwrap_or_default());
        let keep = |s: &str| Arc::<str>::from(keepable(s));
        for (idx, p) in r.policies.iter().enumerate() {
            success = success.saturating_add(p.summary.total_successful_session_count);
            failure = failure.saturating_add(p.summary.total_failure_session_count);
            let domain = keep(p.policy.policy_domain.as_deref().unwrap_or(""));
            let idx = i64::try_from(idx).unwrap_or(i64::MAX);
            for f in &p.failure_details {
                failures.push(FailureRow {
                    idx,
                    domain: domain.clone(),
                    day,
                    result_type: keep(f.result_type.as_str()),
                    receiving_mx: keep(f.receiving_mx_hostname.as_deref().unwrap_or("")),
                    sending_ip: ip(f.sending_mta_ip),
                    receiving_ip: ip(f.receiving_ip),
                    sessions: to_i64(f.failed_session_count),
                });
            }
            policies.push(PolicyRow {
                idx,
                domain,
                policy_type: keep(p.policy.policy_type.as_str()),
                day,
                success: to_i64(p.summary.total_successful_session_count),
                failure: to_i64(p.summary.total_failure_session_count),
            });
        }
        Self {
            organization: keep(&r.organization_name),
            report_id: keep(&r.report_id),
            policy_domain: keep(
                r.policies
                    .iter()
                    .find_map(|p| p.policy.policy_domain.as_deref())
                    .unwrap_or(""),
            ),
            contact: r.contact_info.as_deref().map(keep),
            success: to_i64(success),
            failure: to_i64(failure),
            at: arrival.at.unix_timestamp(),
            via: arrival.via.as_str(),
            source: arrival.source.as_deref().map(keep),
            dkim: arrival.dkim.as_ref().map(|d| d.verdict.as_str()),
            dkim_detail: arrival.dkim.as_ref().map(|d| keep(&d.detail)),
            raw_json,
            normalised: Arc::from(parsed.to_json_string("")),
            policies,
            failures,
        }
    }
}

/// The columns of `reports` a stored report fills, in [`bind_report`]'s order.
macro_rules! report_columns {
    () => {
        "organization, report_id, policy_domain, contact, begin_at, end_at, success, failure, \
         received_at, via, source, raw_json, raw_size, normalised, dkim, dkim_detail"
    };
}

/// Binds the values of [`report_columns`] for report `p` with values `r` (a macro: the
/// builder's type differs per backend).
macro_rules! bind_report {
    ($b:ident, $p:ident, $r:ident) => {
        let report = &$p.report;
        $b.push_bind(Arc::clone(&$r.organization))
            .push_bind(Arc::clone(&$r.report_id))
            .push_bind(Arc::clone(&$r.policy_domain))
            .push_bind($r.contact.clone())
            .push_bind(report.date_range.start.unix_timestamp())
            .push_bind(report.date_range.end.unix_timestamp())
            .push_bind($r.success)
            .push_bind($r.failure)
            .push_bind($r.at)
            .push_bind($r.via)
            .push_bind($r.source.clone())
            .push_bind(Arc::clone(&$r.raw_json))
            .push_bind(to_i64($p.raw_json_size))
            .push_bind(Arc::clone(&$r.normalised))
            .push_bind($r.dkim)
            .push_bind($r.dkim_detail.clone());
    };
}

/// Stores `rows` inside `tx` with multi-row `INSERT`s: the reports (a copy of one stored, or
/// of one earlier in the batch, is not inserted), then the policy and failure rows of the new
/// ones; each copy counted with one `UPDATE`. Statements per batch, not per report: what the
/// time of an import or a busy intake goes to otherwise (a round trip to sqlx's SQLite thread
/// per statement).
pub(crate) async fn insert_batch(
    tx: &mut WriteTx,
    rows: &[(&ParsedReport, &ReportValues)],
) -> Result<Vec<Inserted>, Error> {
    // PostgreSQL: rows are written in key order, so that two transactions holding some of the
    // same reports (two instances, or an import beside the intake) take their locks in the same
    // order and cannot deadlock. SQLite has one writer at a time: arrival order, ids with it.
    let mut order: Vec<&(&ParsedReport, &ReportValues)> = rows.iter().collect();
    if matches!(tx.tx, Backend::Postgres(_)) {
        order.sort_by(|(_, a), (_, b)| {
            (&*a.organization, &*a.report_id).cmp(&(&*b.organization, &*b.report_id))
        });
    }
    let mut new_ids: HashMap<(&str, &str), i64> = HashMap::with_capacity(rows.len());
    for chunk in order.chunks(MAX_PARAMS / (REPORT_COLUMNS + 1)) {
        // The inserted rows' ids and keys, when they must be read back.
        let returned: Option<Vec<(i64, String, String)>> = match &mut tx.tx {
            // SQLite: the ids are given here (the write lock is held since `BEGIN IMMEDIATE`),
            // so the `INSERT` returns no rows. sqlx's SQLite driver hands each row it returns
            // from its thread to ours, one by one: 20,000 hand-offs for an import of 20,000.
            // They are read back only when some of the batch were copies.
            Backend::Sqlite(c) => {
                let (last,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM reports")
                    .fetch_one(&mut **c)
                    .await?;
                let mut qb = sqlx::QueryBuilder::new(concat!(
                    "INSERT INTO reports (id, ",
                    report_columns!(),
                    ") "
                ));
                qb.push_values(chunk.iter().zip(last + 1..), |mut b, (&(p, r), id)| {
                    b.push_bind(id);
                    bind_report!(b, p, r);
                });
                qb.push(" ON CONFLICT (organization, report_id) DO NOTHING");
                let inserted = qb.build().execute(&mut **c).await?.rows_affected();
                if usize::try_from(inserted).is_ok_and(|n| n == chunk.len()) {
                    for (&(_, r), id) in chunk.iter().zip(last + 1..) {
                        new_ids.insert((&r.organization, &r.report_id), id);
                    }
                    None
                } else {
                    Some(
                        sqlx::query_as(
                            "SELECT id, organization, report_id FROM reports \
                             WHERE id > $1 AND id <= $2",
                        )
                        .bind(last)
                        .bind(last + to_i64(chunk.len() as u64))
                        .fetch_all(&mut **c)
                        .await?,
                    )
                }
            }
            Backend::Postgres(c) => {
                let mut qb = sqlx::QueryBuilder::new(concat!(
                    "INSERT INTO reports (",
                    report_columns!(),
                    ") "
                ));
                qb.push_values(chunk, |mut b, &(p, r)| {
                    bind_report!(b, p, r);
                });
                qb.push(
                    " ON CONFLICT (organization, report_id) DO NOTHING \
                     RETURNING id, organization, report_id",
                );
                Some(qb.build_query_as().fetch_all(&mut **c).await?)
            }
        };
        let Some(returned) = returned else { continue };
        // The keys as this batch holds them, so that the map borrows instead of owning.
        let keys: HashMap<(&str, &str), &ReportValues> = chunk
            .iter()
            .map(|&(_, r)| ((&*r.organization, &*r.report_id), *r))
            .collect();
        for (id, org, rid) in returned {
            if let Some(r) = keys.get(&(org.as_str(), rid.as_str())) {
                new_ids.insert((&r.organization, &r.report_id), id);
            }
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    let mut new: Vec<(i64, &ReportValues)> = Vec::with_capacity(rows.len());
    let mut copied: Vec<(usize, &ReportValues)> = Vec::new();
    for (i, (_, r)) in rows.iter().enumerate() {
        // The first of the batch with this key is the one inserted; the others are copies.
        if let Some(id) = new_ids.remove(&(&*r.organization, &*r.report_id)) {
            new.push((id, r));
            out.push(Inserted::New(id));
        } else {
            copied.push((i, r));
            out.push(Inserted::New(0)); // Replaced below.
        }
    }
    // Each copy counted, in key order (the locks, as above).
    copied.sort_by(|(_, a), (_, b)| {
        (&*a.organization, &*a.report_id).cmp(&(&*b.organization, &*b.report_id))
    });
    for (i, r) in copied {
        let (id, copies): (i64, i64) = on_backend!(&mut tx.tx, c =>
            sqlx::query_as(
                "UPDATE reports SET copies = copies + 1, last_copy_at = $3 \
                 WHERE organization = $1 AND report_id = $2 RETURNING id, copies",
            )
            .bind(&*r.organization)
            .bind(&*r.report_id)
            .bind(r.at)
            .fetch_one(&mut **c)
            .await?
        );
        out[i] = Inserted::Duplicate {
            id,
            copies: to_u64("copies", copies)?,
        };
    }
    let policies: Vec<(i64, &PolicyRow)> = new
        .iter()
        .flat_map(|(id, r)| r.policies.iter().map(move |p| (*id, p)))
        .collect();
    for chunk in policies.chunks(MAX_PARAMS / POLICY_COLUMNS) {
        on_backend!(&mut tx.tx, c => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO report_policies (report, idx, policy_domain, policy_type, day, \
                 success, failure) ",
            );
            qb.push_values(chunk, |mut b, (id, p)| {
                b.push_bind(*id)
                    .push_bind(p.idx)
                    .push_bind(Arc::clone(&p.domain))
                    .push_bind(Arc::clone(&p.policy_type))
                    .push_bind(p.day)
                    .push_bind(p.success)
                    .push_bind(p.failure);
            });
            qb.build().execute(&mut **c).await?;
        });
    }
    let failures: Vec<(i64, &FailureRow)> = new
        .iter()
        .flat_map(|(id, r)| r.failures.iter().map(move |f| (*id, f)))
        .collect();
    for chunk in failures.chunks(MAX_PARAMS / FAILURE_COLUMNS) {
        on_backend!(&mut tx.tx, c => {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO report_failures (report, idx, policy_domain, day, result_type, \
                 receiving_mx, sending_ip, receiving_ip, sessions) ",
            );
            qb.push_values(chunk, |mut b, (id, f)| {
                b.push_bind(*id)
                    .push_bind(f.idx)
                    .push_bind(Arc::clone(&f.domain))
                    .push_bind(f.day)
                    .push_bind(Arc::clone(&f.result_type))
                    .push_bind(Arc::clone(&f.receiving_mx))
                    .push_bind(Arc::clone(&f.sending_ip))
                    .push_bind(Arc::clone(&f.receiving_ip))
                    .push_bind(f.sessions);
            });
            qb.build().execute(&mut **c).await?;
        });
    }
    Ok(out)
}
