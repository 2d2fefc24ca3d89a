//! The state of TLS-RPT alerts (decisions D56): per domain and kind, whether the condition is
//! active (announced) and when the last notification went out. Sending is claimed here first,
//! in one statement, so that of several instances on one store only one sends; a failed send is
//! released so that the next round tries again. No audit entry, no new generation: alerts are
//! not something any instance serves.

use time::OffsetDateTime;

use crate::db::{WriteTx, on_backend};
use crate::{Error, Store, from_unix};

/// One row of alert state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    /// The policy domain (`""` for the digest).
    pub domain: String,
    /// `failures`, `reports-stopped` or `digest`.
    pub kind: String,
    /// `webhook` or `email`.
    pub channel: String,
    /// The condition holds and was announced.
    pub active: bool,
    /// When the last notification was sent.
    pub last_sent_at: Option<OffsetDateTime>,
    /// What it said (JSON text).
    pub detail: Option<String>,
}

/// domain, kind, channel, active, last_sent_at, detail.
type AlertRow = (String, String, String, i64, Option<i64>, Option<String>);

impl Store {
    /// Claims the sending of a `kind` notification for `domain` at `now`: true (and the row is
    /// now active, sent at `now`, with `detail`) when it was not active and its last
    /// notification was before `not_after_sent`; false when another instance claimed it or the
    /// cooldown has not passed. With `once_while_active` (an incident) an active row is not
    /// claimed again, whatever the time; without it (the digest) it is, once `sent_before`
    /// allows.
    ///
    /// # Errors
    /// [`Error::Database`].
    #[allow(
        clippy::too_many_arguments,
        reason = "one row's key and the claim's terms"
    )]
    pub async fn claim_alert(
        &self,
        domain: &str,
        kind: &str,
        channel: &str,
        now: OffsetDateTime,
        sent_before: OffsetDateTime,
        once_while_active: bool,
        detail: &str,
    ) -> Result<bool, Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        let n = on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO alert_state (domain, kind, channel, active) VALUES ($1, $2, $3, 0) \
                 ON CONFLICT (domain, kind, channel) DO NOTHING",
            )
            .bind(domain)
            .bind(kind)
            .bind(channel)
            .execute(&mut **c)
            .await?;
            sqlx::query(
                "UPDATE alert_state SET active = 1, last_sent_at = $3, detail = $4 \
                 WHERE domain = $1 AND kind = $2 AND channel = $7 AND ($5 = 0 OR active = 0) \
                 AND (last_sent_at IS NULL OR last_sent_at < $6)",
            )
            .bind(domain)
            .bind(kind)
            .bind(now.unix_timestamp())
            .bind(detail)
            .bind(i64::from(once_while_active))
            .bind(sent_before.unix_timestamp())
            .bind(channel)
            .execute(&mut **c)
            .await?
            .rows_affected()
        });
        tx.commit_quiet().await?;
        Ok(n == 1)
    }

    /// Undoes this instance's claim (made at `claimed_at`) whose notification could not be
    /// sent: inactive again, the last notification time back to `previous`, so that the next
    /// round tries again. A claim made since by another instance is left alone.
    ///
    /// Delivery is at most once per claim: an instance that dies between its claim and the
    /// send leaves the condition marked announced, and its end is announced later.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn release_alert(
        &self,
        domain: &str,
        kind: &str,
        channel: &str,
        claimed_at: OffsetDateTime,
        previous: Option<OffsetDateTime>,
    ) -> Result<(), Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "UPDATE alert_state SET active = 0, last_sent_at = $3 \
                 WHERE domain = $1 AND kind = $2 AND channel = $4 AND last_sent_at = $5",
            )
            .bind(domain)
            .bind(kind)
            .bind(previous.map(OffsetDateTime::unix_timestamp))
            .bind(channel)
            .bind(claimed_at.unix_timestamp())
            .execute(&mut **c)
            .await?;
        });
        tx.commit_quiet().await
    }

    /// Marks the condition of `kind` for `domain` over on every channel; true when it was
    /// active (the caller announces it resolved), false when another instance did already or
    /// it never was.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn resolve_alert(&self, domain: &str, kind: &str) -> Result<bool, Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        let n = on_backend!(&mut tx.tx, c =>
            sqlx::query(
                "UPDATE alert_state SET active = 0 WHERE domain = $1 AND kind = $2 AND active = 1",
            )
            .bind(domain)
            .bind(kind)
            .execute(&mut **c)
            .await?
            .rows_affected()
        );
        tx.commit_quiet().await?;
        Ok(n >= 1)
    }

    /// Every alert state row, by domain and kind.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn alert_states(&self) -> Result<Vec<AlertState>, Error> {
        let rows: Vec<AlertRow> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(
                "SELECT domain, kind, channel, CAST(active AS BIGINT), last_sent_at, detail \
                 FROM alert_state ORDER BY domain, kind, channel",
            )
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|(domain, kind, channel, active, sent, detail)| {
                Ok(AlertState {
                    domain,
                    kind,
                    channel,
                    active: active != 0,
                    last_sent_at: sent.map(|t| from_unix("alert sent", t)).transpose()?,
                    detail,
                })
            })
            .collect()
    }
}
