//! The delegation model of each domain, and the TXT records `mtasts serve` publishes by RFC 2136
//! update for domains delegated in full: what the zone holds (as last acknowledged by the
//! authoritative server) and the state of the work (backoff, last error).
//!
//! The published rows are not tied to `domains`: when a domain is removed, its records must
//! still be withdrawn from the zone, and the row says which.

use serde_json::json;
use time::OffsetDateTime;

use crate::db::{AuditRecord, WriteTx, on_backend};
use crate::domains::Delegation;
use crate::{Change, Error, Store, check_domain, check_text, clip_reason, from_unix};

/// Longest TXT value kept (a policy id record or a TLS-RPT record with its `rua` list).
const MAX_VALUE: usize = 2048;

/// What the zone holds for a domain delegated in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPublished {
    /// The hosted (or formerly hosted) domain.
    pub domain: String,
    /// The `_mta-sts` TXT value the zone holds (`None`: none published, or withdrawn).
    pub sts_value: Option<String>,
    /// The `_smtp._tls` TXT value the zone holds.
    pub tlsrpt_value: Option<String>,
    /// When the server last acknowledged an update.
    pub published_at: Option<OffsetDateTime>,
    /// Not before this time is the next update tried (the backoff after a failure).
    pub next_attempt: OffsetDateTime,
    /// Failures since the last success.
    pub failures: u32,
    /// What went wrong last, in plain words.
    pub last_error: Option<String>,
    /// When it went wrong.
    pub last_error_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct Row {
    domain: String,
    sts_value: Option<String>,
    tlsrpt_value: Option<String>,
    published_at: Option<i64>,
    next_attempt: i64,
    failures: i64,
    last_error: Option<String>,
    last_error_at: Option<i64>,
}

impl Row {
    fn into_published(self) -> Result<DnsPublished, Error> {
        Ok(DnsPublished {
            published_at: self
                .published_at
                .map(|t| from_unix("publication time", t))
                .transpose()?,
            next_attempt: from_unix("next attempt", self.next_attempt)?,
            failures: u32::try_from(self.failures).map_err(|_| Error::Corrupt {
                what: format!("DNS failure count {}", self.failures),
            })?,
            last_error_at: self
                .last_error_at
                .map(|t| from_unix("error time", t))
                .transpose()?,
            last_error: self.last_error,
            domain: self.domain,
            sts_value: self.sts_value,
            tlsrpt_value: self.tlsrpt_value,
        })
    }
}

const COLUMNS: &str = "SELECT domain, sts_value, tlsrpt_value, published_at, next_attempt, \
                       failures, last_error, last_error_at FROM dns_published";

impl Store {
    /// Changes how the owner delegated `domain`.
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::Database`].
    pub async fn set_delegation(
        &self,
        domain: &str,
        delegation: Delegation,
        change: &Change,
    ) -> Result<(), Error> {
        check_domain(domain)?;
        change.check()?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        let updated = on_backend!(&mut tx.tx, c =>
            sqlx::query("UPDATE domains SET delegation = $2, updated_at = $3 WHERE name = $1")
                .bind(domain)
                .bind(delegation.as_str())
                .bind(change.at_unix())
                .execute(&mut **c)
                .await?
                .rows_affected()
        );
        if updated == 0 {
            return Err(Error::UnknownDomain {
                domain: domain.to_owned(),
            });
        }
        let record = AuditRecord {
            action: "domain.delegation",
            domain: Some(domain),
            detail: json!({ "delegation": delegation.as_str() }),
        };
        tx.commit(change, record).await?;
        Ok(())
    }

    /// What the zone holds for `domain`, if anything was ever published.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn dns_published(&self, domain: &str) -> Result<Option<DnsPublished>, Error> {
        let sql = format!("{COLUMNS} WHERE domain = $1");
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                .bind(domain)
                .fetch_optional(p)
                .await?
        );
        row.map(Row::into_published).transpose()
    }

    /// Every row of published records, by domain (also those of removed domains, until their
    /// records are withdrawn and [`Store::dns_forget`] is called).
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn dns_published_all(&self) -> Result<Vec<DnsPublished>, Error> {
        let sql = format!("{COLUMNS} ORDER BY domain");
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
                .fetch_all(p)
                .await?
        );
        rows.into_iter().map(Row::into_published).collect()
    }

    /// Records that the authoritative server acknowledged the zone holding `sts_value` and
    /// `tlsrpt_value` for `domain` (`None`: withdrawn), with its audit entry; clears the
    /// failures.
    ///
    /// # Errors
    /// [`Error::Invalid`]; [`Error::Database`].
    pub async fn dns_record_published(
        &self,
        domain: &str,
        sts_value: Option<&str>,
        tlsrpt_value: Option<&str>,
        change: &Change,
    ) -> Result<(), Error> {
        check_domain(domain)?;
        for v in [sts_value, tlsrpt_value].into_iter().flatten() {
            check_text("TXT value", v, 1, MAX_VALUE)?;
        }
        change.check()?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO dns_published (domain, sts_value, tlsrpt_value, published_at, \
                 next_attempt, failures, last_error, last_error_at) \
                 VALUES ($1, $2, $3, $4, 0, 0, NULL, NULL) ON CONFLICT (domain) DO UPDATE \
                 SET sts_value = excluded.sts_value, tlsrpt_value = excluded.tlsrpt_value, \
                 published_at = excluded.published_at, next_attempt = 0, failures = 0, \
                 last_error = NULL, last_error_at = NULL",
            )
            .bind(domain)
            .bind(sts_value)
            .bind(tlsrpt_value)
            .bind(change.at_unix())
            .execute(&mut **c)
            .await?;
        });
        let record = AuditRecord {
            action: "dns.publish",
            domain: Some(domain),
            detail: json!({ "sts": sts_value, "tlsrpt": tlsrpt_value }),
        };
        tx.commit_audited_quiet(change, record).await
    }

    /// Records that an update for `domain` failed with `error` (plain words); not tried again
    /// before `next_attempt`. What the zone holds is unchanged.
    ///
    /// # Errors
    /// [`Error::Invalid`]; [`Error::Database`].
    pub async fn dns_record_failed(
        &self,
        domain: &str,
        error: &str,
        next_attempt: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<(), Error> {
        check_domain(domain)?;
        let error = clip_reason(error);
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO dns_published (domain, next_attempt, failures, last_error, \
                 last_error_at) VALUES ($1, $2, 1, $3, $4) ON CONFLICT (domain) DO UPDATE \
                 SET next_attempt = excluded.next_attempt, failures = dns_published.failures + 1, \
                 last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            )
            .bind(domain)
            .bind(next_attempt.unix_timestamp())
            .bind(&error)
            .bind(at.unix_timestamp())
            .execute(&mut **c)
            .await?;
        });
        tx.commit_quiet().await
    }

    /// Forgets the published-records row of `domain` (its records were withdrawn from the zone
    /// after it was removed).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn dns_forget(&self, domain: &str) -> Result<(), Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query("DELETE FROM dns_published WHERE domain = $1")
                .bind(domain)
                .execute(&mut **c)
                .await?;
        });
        tx.commit_quiet().await
    }
}
