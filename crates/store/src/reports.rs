//! TLS-RPT reports received: each report once (deduplicated by organization + report-id, the
//! first copy kept, later copies counted), its raw JSON beside the normalised form (D25), and
//! one row per policy and per failure detail for the aggregates.
//!
//! A report is stored in one transaction (all its rows or none), without an audit entry and
//! without a new generation: reports are observations, not something any instance serves.
//! Every text from the report is kept as sent, except that it is cut to [`MAX_REPORT_TEXT`]
//! bytes and NUL becomes U+FFFD (PostgreSQL's text cannot hold it).

use mtasts_core::report::ParsedReport;
use time::OffsetDateTime;

use crate::db::{WriteTx, on_backend};
use crate::report_insert::{PreparedReport, ReportValues, insert_batch};
use crate::{Error, Store, from_unix};

/// Sessions per policy domain and day ([`Store::report_days`]).
const DAYS_SQL: &str = "SELECT policy_domain, day, COUNT(DISTINCT report), \
     CAST(SUM(success) AS BIGINT), CAST(SUM(failure) AS BIGINT) \
     FROM report_policies WHERE ($1 IS NULL OR policy_domain = $1) AND day >= $2 \
     GROUP BY policy_domain, day ORDER BY policy_domain, day";

/// The most rows [`Store::report_failures`] returns (the largest first).
pub const MAX_FAILURE_ROWS: u32 = 100_000;

/// The longest text kept from a report field (organization, report-id, names): longer is cut.
pub const MAX_REPORT_TEXT: usize = 1024;
/// The most reports [`Store::reports`] returns at once.
pub const MAX_LIST: u32 = 100_000;

/// How a report reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Via {
    /// `POST` to the HTTPS intake (`rua=https:`).
    Https,
    /// Mail to the SMTP receiver (`rua=mailto:`).
    Smtp,
    /// Mail fetched from an IMAP mailbox.
    Imap,
    /// A file given to `mtasts report import`.
    File,
}

impl Via {
    /// The stored name: `https`, `smtp`, `imap`, `file`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Smtp => "smtp",
            Self::Imap => "imap",
            Self::File => "file",
        }
    }
}

/// Where and when a report arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The intake path.
    pub via: Via,
    /// What it came from: a file name, a peer address, a message id (cut like report text).
    pub source: Option<String>,
    /// When it was received.
    pub at: OffsetDateTime,
    /// The DKIM verdict of the mail it came in; `None` when it did not come by mail or the
    /// mail was not checked.
    pub dkim: Option<Dkim>,
}

/// The DKIM verdict of a report mail (RFC 8460 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimVerdict {
    /// A signature verified.
    Pass,
    /// Signed, and no signature verified.
    Fail,
    /// Not signed.
    None,
    /// A key could not be looked up (DNS out of reach): neither pass nor fail.
    TempError,
}

impl DkimVerdict {
    /// The stored name: `pass`, `fail`, `none`, `temperror`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::None => "none",
            Self::TempError => "temperror",
        }
    }
}

/// A DKIM verdict with what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dkim {
    /// The verdict.
    pub verdict: DkimVerdict,
    /// For `pass` the signing domain (`d=`); otherwise why, in plain words.
    pub detail: String,
}

/// What [`Store::insert_report`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new report, stored under this id.
    New(i64),
    /// A copy of a report already stored under this id; its copy count is now `copies`.
    Duplicate {
        /// The stored report.
        id: i64,
        /// Copies received in all, the first included.
        copies: u64,
    },
}

/// A stored report, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// The store's id.
    pub id: i64,
    /// `organization-name`.
    pub organization: String,
    /// `report-id`.
    pub report_id: String,
    /// The first policy's `policy-domain` (empty when the reporter left it out).
    pub policy_domain: String,
    /// `contact-info`.
    pub contact: Option<String>,
    /// `date-range` start.
    pub begin: OffsetDateTime,
    /// `date-range` end.
    pub end: OffsetDateTime,
    /// Successful sessions over every policy.
    pub success: u64,
    /// Failed sessions over every policy.
    pub failure: u64,
    /// When the first copy arrived.
    pub received_at: OffsetDateTime,
    /// How it arrived.
    pub via: String,
    /// What it came from.
    pub source: Option<String>,
    /// Copies received, the first included.
    pub copies: u64,
    /// The DKIM verdict of the mail the first copy came in (`pass`, `fail`, `none`,
    /// `temperror`); `None` when it did not come by mail or was not checked.
    pub dkim: Option<String>,
    /// What the verdict rests on: the signing domain of a pass, or why not.
    pub dkim_detail: Option<String>,
}

/// One report with what was kept of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportDetail {
    /// The listing fields.
    pub report: StoredReport,
    /// The JSON document as sent (after gzip and MIME decoding), possibly cut (see `raw_size`).
    pub raw_json: Vec<u8>,
    /// The size of the whole JSON document.
    pub raw_size: u64,
    /// The normalised report with its repairs, as JSON text.
    pub normalised: String,
}

/// Sessions for one policy domain on one UTC day, over every report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTotal {
    /// The policy domain (empty: reports that named none).
    pub policy_domain: String,
    /// The UTC day the reports' ranges begin.
    pub day: time::Date,
    /// Reports counted (each once, whatever its copies).
    pub reports: u64,
    /// Successful sessions.
    pub success: u64,
    /// Failed sessions.
    pub failure: u64,
}

/// Failed sessions for one policy domain by what went wrong, over a span of days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureTotal {
    /// The policy domain.
    pub policy_domain: String,
    /// `result-type`.
    pub result_type: String,
    /// `receiving-mx-hostname` (empty when not given).
    pub receiving_mx: String,
    /// `sending-mta-ip` (empty when not given).
    pub sending_ip: String,
    /// The reporter (`organization-name`).
    pub organization: String,
    /// Failed sessions.
    pub sessions: u64,
}

/// What one reporter (`organization-name`) said about one policy domain over a span of days
/// ([`Store::report_reporters`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReporterTotal {
    /// The reporter.
    pub organization: String,
    /// Reports counted (each once, whatever its copies).
    pub reports: u64,
    /// Successful sessions in its policies for the domain.
    pub success: u64,
    /// Failed sessions in its policies for the domain.
    pub failure: u64,
    /// UTC days with a report from it.
    pub days: u64,
    /// The least and the greatest of its `report-id`s: the shape of its ids tells some
    /// reporting software apart (sys4's tlsrpt-reporter, behind Postfix, writes
    /// `<day>T00:00:00Z_idx<n>_<domain>`) when the organization name is the operator's own.
    pub report_ids: (String, String),
}

/// Which reports to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Only this policy domain.
    pub domain: Option<String>,
    /// Only reports whose range begins at or after this time.
    pub since: Option<OffsetDateTime>,
    /// At most this many, newest first ([`MAX_LIST`] at most).
    pub limit: Option<u32>,
}

/// Text from a report made fit to keep: NUL replaced, cut to [`MAX_REPORT_TEXT`] bytes on a
/// character boundary.
pub(crate) fn keepable(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_REPORT_TEXT));
    for c in s.chars() {
        let c = if c == '\0' { '\u{fffd}' } else { c };
        if out.len() + c.len_utf8() > MAX_REPORT_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

/// The UTC day number (days since 1970-01-01) of `t`.
pub(crate) fn day_of(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(86_400)
}

fn date_of_day(day: i64) -> Result<time::Date, Error> {
    from_unix("report day", day.saturating_mul(86_400)).map(OffsetDateTime::date)
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(what: &str, n: i64) -> Result<u64, Error> {
    u64::try_from(n).map_err(|_| Error::Corrupt {
        what: format!("{what} {n} is negative"),
    })
}

type ReportRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
);

const REPORT_COLUMNS: &str = "id, organization, report_id, policy_domain, contact, begin_at, \
     end_at, success, failure, received_at, via, source, copies, dkim, dkim_detail";

fn stored(row: ReportRow) -> Result<StoredReport, Error> {
    let (
        id,
        organization,
        report_id,
        policy_domain,
        contact,
        begin,
        end,
        s,
        f,
        at,
        via,
        src,
        n,
        dkim,
        dkim_detail,
    ) = row;
    Ok(StoredReport {
        id,
        organization,
        report_id,
        policy_domain,
        contact,
        begin: from_unix("report begin", begin)?,
        end: from_unix("report end", end)?,
        success: to_u64("success count", s)?,
        failure: to_u64("failure count", f)?,
        received_at: from_unix("report received_at", at)?,
        via,
        source: src,
        copies: to_u64("copies", n)?,
        dkim,
        dkim_detail,
    })
}

impl Store {
    /// Stores `parsed` as it arrived (`arrival`), in one transaction: a new report with its
    /// policy and failure rows, or, when one with the same organization and report-id is
    /// stored already, one more copy counted on it (the first copy is kept as it was).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn insert_report(
        &self,
        parsed: &ParsedReport,
        arrival: &Arrival,
    ) -> Result<Inserted, Error> {
        let mut out = self.insert_reports(&[(parsed, arrival)]).await?;
        out.pop().ok_or_else(|| Error::Corrupt {
            what: "no outcome for a stored report".into(),
        })
    }

    /// Stores several reports in one transaction (all or none), each as
    /// [`Store::insert_report`] would; one outcome per report, in order. One commit (one
    /// `fsync` on SQLite) for the batch: what makes an import or a busy intake fast.
    ///
    /// # Errors
    /// [`Error::Database`]: nothing of the batch is stored.
    pub async fn insert_reports(
        &self,
        reports: &[(&ParsedReport, &Arrival)],
    ) -> Result<Vec<Inserted>, Error> {
        let values: Vec<ReportValues> = reports
            .iter()
            .map(|(p, a)| ReportValues::new(p, a, std::sync::Arc::from(p.raw_json.as_slice())))
            .collect();
        let rows: Vec<(&ParsedReport, &ReportValues)> = reports
            .iter()
            .zip(&values)
            .map(|((p, _), v)| (*p, v))
            .collect();
        self.insert_rows(&rows).await
    }

    /// [`Store::insert_reports`] of reports whose values were computed ahead
    /// ([`PreparedReport::new`], on another thread while the batch before was stored).
    ///
    /// # Errors
    /// [`Error::Database`]: nothing of the batch is stored.
    pub async fn insert_prepared(
        &self,
        reports: &[&PreparedReport],
    ) -> Result<Vec<Inserted>, Error> {
        let rows: Vec<(&ParsedReport, &ReportValues)> =
            reports.iter().map(|r| (&r.parsed, &r.values)).collect();
        self.insert_rows(&rows).await
    }

    async fn insert_rows(
        &self,
        rows: &[(&ParsedReport, &ReportValues)],
    ) -> Result<Vec<Inserted>, Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        let out = insert_batch(&mut tx, rows).await?;
        tx.commit_quiet().await?;
        Ok(out)
    }

    /// Stored reports matching `filter`, newest range first.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn reports(&self, filter: &ReportFilter) -> Result<Vec<StoredReport>, Error> {
        let limit = i64::from(filter.limit.unwrap_or(MAX_LIST).min(MAX_LIST));
        let since = filter
            .since
            .map_or(i64::MIN, OffsetDateTime::unix_timestamp);
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE ($1 IS NULL OR policy_domain = $1) \
             AND begin_at >= $2 ORDER BY begin_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<ReportRow> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(filter.domain.as_deref())
                .bind(since)
                .bind(limit)
                .fetch_all(p)
                .await?
        );
        rows.into_iter().map(stored).collect()
    }

    /// The report stored under `id`, with its raw and normalised forms.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn report(&self, id: i64) -> Result<Option<ReportDetail>, Error> {
        // Two reads (a row of 18 columns is past sqlx's tuples); a stored report's columns
        // never change but for its copy count.
        let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE id = $1");
        let row: Option<ReportRow> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(id)
                .fetch_optional(p)
                .await?
        );
        let Some(r) = row else { return Ok(None) };
        let report = stored(r)?;
        let kept: Option<(Vec<u8>, i64, String)> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as("SELECT raw_json, raw_size, normalised FROM reports WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await?
        );
        let Some((raw_json, raw_size, normalised)) = kept else {
            return Ok(None);
        };
        Ok(Some(ReportDetail {
            report,
            raw_json,
            raw_size: to_u64("raw size", raw_size)?,
            normalised,
        }))
    }

    /// Sessions per policy domain and UTC day (the day each report's range begins), from
    /// `since` on, for one domain or all.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn report_days(
        &self,
        domain: Option<&str>,
        since: OffsetDateTime,
    ) -> Result<Vec<DayTotal>, Error> {
        let rows: Vec<(String, i64, i64, i64, i64)> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(DAYS_SQL)
            .bind(domain)
            .bind(day_of(since))
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|(policy_domain, day, reports, s, f)| {
                Ok(DayTotal {
                    policy_domain,
                    day: date_of_day(day)?,
                    reports: to_u64("report count", reports)?,
                    success: to_u64("success count", s)?,
                    failure: to_u64("failure count", f)?,
                })
            })
            .collect()
    }

    /// [`Store::report_days`] row by row, in the same order, without holding them: `each` is
    /// called per row and stops the walk by returning `false`. Returns the rows seen. For
    /// spans that hold millions of rows (every domain over a year).
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn for_each_report_day(
        &self,
        domain: Option<&str>,
        since: OffsetDateTime,
        mut each: impl FnMut(DayTotal) -> bool,
    ) -> Result<u64, Error> {
        use futures_util::TryStreamExt;
        let mut seen = 0u64;
        on_backend!(self.pools.reader(), p => {
            let mut rows = sqlx::query_as::<_, (String, i64, i64, i64, i64)>(DAYS_SQL)
                .bind(domain)
                .bind(day_of(since))
                .fetch(p);
            while let Some((policy_domain, day, reports, s, f)) = rows.try_next().await? {
                seen += 1;
                let row = DayTotal {
                    policy_domain,
                    day: date_of_day(day)?,
                    reports: to_u64("report count", reports)?,
                    success: to_u64("success count", s)?,
                    failure: to_u64("failure count", f)?,
                };
                if !each(row) {
                    break;
                }
            }
        });
        Ok(seen)
    }

    /// Failed sessions per policy domain, result type, receiving MX, sending IP and reporter,
    /// from `since` on, most first (details that count no session left out), at most
    /// [`MAX_FAILURE_ROWS`].
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn report_failures(
        &self,
        domain: Option<&str>,
        since: OffsetDateTime,
    ) -> Result<Vec<FailureTotal>, Error> {
        let rows: Vec<(String, String, String, String, String, i64)> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(
                "SELECT f.policy_domain, f.result_type, f.receiving_mx, f.sending_ip, \
                 r.organization, CAST(SUM(f.sessions) AS BIGINT) AS n \
                 FROM report_failures f JOIN reports r ON r.id = f.report \
                 WHERE ($1 IS NULL OR f.policy_domain = $1) AND f.day >= $2 \
                 GROUP BY f.policy_domain, f.result_type, f.receiving_mx, f.sending_ip, \
                 r.organization HAVING SUM(f.sessions) > 0 \
                 ORDER BY n DESC, f.policy_domain, f.result_type LIMIT $3",
            )
            .bind(domain)
            .bind(day_of(since))
            .bind(i64::from(MAX_FAILURE_ROWS))
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(
                |(policy_domain, result_type, receiving_mx, sending_ip, organization, n)| {
                    Ok(FailureTotal {
                        policy_domain,
                        result_type,
                        receiving_mx,
                        sending_ip,
                        organization,
                        sessions: to_u64("failed sessions", n)?,
                    })
                },
            )
            .collect()
    }
}

impl Store {
    /// Per reporter, what its reports say about `domain` from `since` on (by the UTC day each
    /// report's range begins, as [`Store::report_days`]): reports, sessions, days, and the
    /// range of its report ids; by organization name, at most [`MAX_FAILURE_ROWS`].
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn report_reporters(
        &self,
        domain: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<ReporterTotal>, Error> {
        type Row = (String, i64, i64, i64, i64, String, String);
        let rows: Vec<Row> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(
                "SELECT r.organization, COUNT(DISTINCT r.id), CAST(SUM(p.success) AS BIGINT), \
                 CAST(SUM(p.failure) AS BIGINT), COUNT(DISTINCT p.day), MIN(r.report_id), \
                 MAX(r.report_id) \
                 FROM report_policies p JOIN reports r ON r.id = p.report \
                 WHERE p.policy_domain = $1 AND p.day >= $2 \
                 GROUP BY r.organization ORDER BY r.organization LIMIT $3",
            )
            .bind(domain)
            .bind(day_of(since))
            .bind(i64::from(MAX_FAILURE_ROWS))
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|(organization, reports, s, f, days, first, last)| {
                Ok(ReporterTotal {
                    organization,
                    reports: to_u64("report count", reports)?,
                    success: to_u64("success count", s)?,
                    failure: to_u64("failure count", f)?,
                    days: to_u64("day count", days)?,
                    report_ids: (first, last),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_a_report_loses_nul_and_is_cut_on_a_character() {
        assert_eq!(keepable("a\0b"), "a\u{fffd}b");
        let long = "é".repeat(MAX_REPORT_TEXT);
        let kept = keepable(&long);
        assert!(kept.len() <= MAX_REPORT_TEXT && kept.len() > MAX_REPORT_TEXT - 2);
        assert_eq!(day_of(OffsetDateTime::UNIX_EPOCH), 0);
        assert_eq!(
            day_of(OffsetDateTime::UNIX_EPOCH - time::Duration::seconds(1)),
            -1
        );
    }
}
