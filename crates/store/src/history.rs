//! The audit history (written by every change, in its transaction) and drift events (what the
//! drift checker observed about a hosted domain).

use time::OffsetDateTime;

use crate::db::{WriteTx, on_backend};
use crate::{Error, MAX_REASON, MAX_SHORT, Store, check_domain, check_text, from_unix};

/// Most entries one audit or drift query returns.
const MAX_LIMIT: u32 = 10_000;

/// One change, as the audit history records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Its place in the history (rises with every entry).
    pub seq: i64,
    /// When.
    pub at: OffsetDateTime,
    /// Who.
    pub actor: String,
    /// What: `domain.add`, `policy.set`, `rollout.transition`, `domain.remove`,
    /// `certificate.put`, `token.create` or `token.revoke`.
    pub action: String,
    /// The domain concerned, if any.
    pub domain: Option<String>,
    /// The particulars, as a JSON object (never a secret or a key).
    pub detail: String,
    /// Why, as the operator gave it.
    pub reason: Option<String>,
}

/// A problem the drift checker observed, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftObservation {
    /// What kind of drift (the checker's identifier, e.g. a finding id).
    pub kind: String,
    /// What was seen.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
}

/// A recorded drift event: one per distinct observation, open until resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftEvent {
    /// Its id.
    pub seq: i64,
    /// The domain.
    pub domain: String,
    /// What kind of drift.
    pub kind: String,
    /// What was seen.
    pub detail: String,
    /// How to fix it.
    pub fix: String,
    /// When it was first seen.
    pub first_seen: OffsetDateTime,
    /// When it was last seen.
    pub last_seen: OffsetDateTime,
    /// When the checker saw it fixed; `None` while open.
    pub resolved_at: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    domain: Option<String>,
    detail: String,
    reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DriftRow {
    id: i64,
    domain: String,
    kind: String,
    detail: String,
    fix: String,
    first_seen: i64,
    last_seen: i64,
    resolved_at: Option<i64>,
}

impl Store {
    /// The newest `limit` audit entries (at most 10,000), newest first; only those about
    /// `domain` when it is given.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn audit(&self, domain: Option<&str>, limit: u32) -> Result<Vec<AuditEntry>, Error> {
        let limit = i64::from(limit.min(MAX_LIMIT));
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, AuditRow>(
                "SELECT id, at, actor, action, domain, detail, reason FROM audit \
                 WHERE ($1 IS NULL OR domain = $1) ORDER BY id DESC LIMIT $2",
            )
            .bind(domain)
            .bind(limit)
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|r| {
                Ok(AuditEntry {
                    seq: r.id,
                    at: from_unix("audit time", r.at)?,
                    actor: r.actor,
                    action: r.action,
                    domain: r.domain,
                    detail: r.detail,
                    reason: r.reason,
                })
            })
            .collect()
    }

    /// Records that the checker saw `observation` about hosted `domain` at `at`. One event is
    /// open per domain and kind: when one is, it is marked seen again, and takes the new detail
    /// and fix if they changed (the same drift, described as it now is). Neither audited nor a
    /// new generation: an observation, and nothing any instance serves.
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::Invalid`]; [`Error::Database`].
    pub async fn record_drift(
        &self,
        domain: &str,
        observation: &DriftObservation,
        at: OffsetDateTime,
    ) -> Result<DriftEvent, Error> {
        check_domain(domain)?;
        check_text("drift kind", &observation.kind, 1, MAX_SHORT)?;
        check_text("drift detail", &observation.detail, 1, MAX_REASON)?;
        check_text("drift fix", &observation.fix, 1, MAX_REASON)?;
        let at = at.unix_timestamp();
        let mut tx = WriteTx::begin(&self.pools).await?;
        let row: Option<DriftRow> = on_backend!(&mut tx.tx, c => {
            let hosted: Option<i64> = sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM domains WHERE name = $1")
                .bind(domain)
                .fetch_optional(&mut **c)
                .await?;
            if hosted.is_none() {
                None
            } else {
                // The unique index on open (domain, kind) makes this one row, also when two
                // instances record it at once.
                let row: DriftRow = sqlx::query_as(
                    "INSERT INTO drift_events \
                     (domain, kind, detail, fix, first_seen, last_seen, resolved_at) \
                     VALUES ($1, $2, $3, $4, $5, $5, NULL) \
                     ON CONFLICT (domain, kind) WHERE resolved_at IS NULL DO UPDATE \
                     SET last_seen = excluded.last_seen, detail = excluded.detail, \
                     fix = excluded.fix \
                     RETURNING id, domain, kind, detail, fix, first_seen, last_seen, resolved_at",
                )
                .bind(domain)
                .bind(&observation.kind)
                .bind(&observation.detail)
                .bind(&observation.fix)
                .bind(at)
                .fetch_one(&mut **c)
                .await?;
                Some(row)
            }
        });
        let Some(row) = row else {
            return Err(Error::UnknownDomain {
                domain: domain.to_owned(),
            });
        };
        // An observation, not an operator's change, and nothing served: no audit entry, no new
        // generation.
        tx.commit_quiet().await?;
        row.into_event()
    }

    /// Marks the open drift events of `kind` about `domain` resolved at `at` (the checker saw
    /// the problem gone); returns how many were open.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn resolve_drift(
        &self,
        domain: &str,
        kind: &str,
        at: OffsetDateTime,
    ) -> Result<u64, Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        let resolved = on_backend!(&mut tx.tx, c =>
            sqlx::query(
                "UPDATE drift_events SET resolved_at = $3 \
                 WHERE domain = $1 AND kind = $2 AND resolved_at IS NULL",
            )
            .bind(domain)
            .bind(kind)
            .bind(at.unix_timestamp())
            .execute(&mut **c)
            .await?
            .rows_affected()
        );
        if resolved == 0 {
            // Nothing changed: roll back rather than bump the generation for nothing.
            return Ok(0);
        }
        tx.commit_quiet().await?;
        Ok(resolved)
    }

    /// The newest `limit` drift events (at most 10,000), newest first: about `domain` when
    /// given, and only open ones when `open_only`.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn drift_events(
        &self,
        domain: Option<&str>,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<DriftEvent>, Error> {
        let limit = i64::from(limit.min(MAX_LIMIT));
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, DriftRow>(
                "SELECT id, domain, kind, detail, fix, first_seen, last_seen, resolved_at \
                 FROM drift_events WHERE ($1 IS NULL OR domain = $1) \
                 AND (NOT $2 OR resolved_at IS NULL) ORDER BY id DESC LIMIT $3",
            )
            .bind(domain)
            .bind(open_only)
            .bind(limit)
            .fetch_all(p)
            .await?
        );
        rows.into_iter().map(DriftRow::into_event).collect()
    }
}

impl DriftRow {
    fn into_event(self) -> Result<DriftEvent, Error> {
        Ok(DriftEvent {
            seq: self.id,
            first_seen: from_unix("drift first seen", self.first_seen)?,
            last_seen: from_unix("drift last seen", self.last_seen)?,
            resolved_at: self
                .resolved_at
                .map(|t| from_unix("drift resolution", t))
                .transpose()?,
            domain: self.domain,
            kind: self.kind,
            detail: self.detail,
            fix: self.fix,
        })
    }
}
