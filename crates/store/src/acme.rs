//! What ACME needs to keep: accounts (credentials sealed), each domain's certificate work (due
//! date, backoff, last error, the order lease that makes exactly one instance order a name),
//! the challenges being validated (so that any instance can answer the CA), and the orders
//! placed per CA (a rate limit every instance shares).
//!
//! None of these writes changes what is served, so they commit without a new generation: only
//! an issued certificate ([`Store::acme_issued`]) does, and every instance then reloads it.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use crate::certs::{NewCertificate, insert_certificate};
use crate::db::{AuditRecord, WriteTx, on_backend};
use crate::{
    Change, Error, MAX_REASON, MAX_SHORT, Store, check_domain, check_text, clip_reason, from_unix,
};

/// Largest ACME account credentials accepted (JSON).
const MAX_CREDENTIALS: usize = 16 * 1024;
/// Longest challenge token or key authorization.
const MAX_TOKEN: usize = 512;

/// The certificate work of one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeState {
    /// The domain.
    pub domain: String,
    /// When its ACME certificate is due for renewal (`None` before the first one).
    pub next_renewal: Option<OffsetDateTime>,
    /// Not before this time is the next order tried (the backoff after a failure).
    pub next_attempt: OffsetDateTime,
    /// Failures since the last success.
    pub failures: u32,
    /// What went wrong last, in plain words (cleared by a success).
    pub last_error: Option<String>,
    /// When it went wrong.
    pub last_error_at: Option<OffsetDateTime>,
    /// When a certificate was last issued.
    pub last_issued_at: Option<OffsetDateTime>,
    /// The instance holding the order lease, while it holds it.
    pub lease_holder: Option<String>,
    /// Until when it holds it.
    pub lease_until: Option<OffsetDateTime>,
}

/// A domain whose certificate work is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeDue {
    /// The domain (the certificate is for `mta-sts.<domain>`).
    pub domain: String,
    /// The notAfter of the certificate served now, if any.
    pub not_after: Option<OffsetDateTime>,
    /// Failures since the last success.
    pub failures: u32,
}

/// What [`Store::acme_take_lease`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The lease is ours, and the order is counted against the CA's limit.
    Taken,
    /// Another instance holds it (it is ordering this name now).
    Busy,
    /// The CA's order limit is reached; the earliest time another order fits.
    RateLimited {
        /// When an order leaves the window.
        until: OffsetDateTime,
    },
}

/// How many orders one CA (directory URL) takes from all instances together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBudget<'a> {
    /// The CA's directory URL.
    pub directory: &'a str,
    /// The sliding window.
    pub window: Duration,
    /// Most orders placed within any window.
    pub max_orders: u32,
}

/// The kind of an ACME challenge we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// HTTP-01: `http://<name>/.well-known/acme-challenge/<token>` on port 80.
    Http01,
    /// TLS-ALPN-01 (RFC 8737): a handshake for `<name>` offering only `acme-tls/1` on 443.
    TlsAlpn01,
}

impl ChallengeKind {
    /// `"http-01"` or `"tls-alpn-01"`, as stored and as ACME spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }

    /// The kind a name spells, if any.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "http-01" => Some(Self::Http01),
            "tls-alpn-01" => Some(Self::TlsAlpn01),
            _ => None,
        }
    }
}

/// A challenge being validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The CA's token (the last path segment of an HTTP-01 request).
    pub token: String,
    /// The DNS name being validated (`mta-sts.<domain>`).
    pub name: String,
    /// How it is validated.
    pub kind: ChallengeKind,
    /// The key authorization: the HTTP-01 body, or what the TLS-ALPN-01 certificate digests.
    pub key_authorization: String,
    /// When it stops being answered.
    pub expires_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    domain: String,
    next_renewal: Option<i64>,
    next_attempt: i64,
    failures: i64,
    last_error: Option<String>,
    last_error_at: Option<i64>,
    last_issued_at: Option<i64>,
    lease_holder: Option<String>,
    lease_until: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ChallengeRow {
    token: String,
    name: String,
    kind: String,
    key_authorization: String,
    expires_at: i64,
}

fn opt_time(what: &str, t: Option<i64>) -> Result<Option<OffsetDateTime>, Error> {
    t.map(|t| from_unix(what, t)).transpose()
}

fn count(what: &str, n: i64) -> Result<u32, Error> {
    u32::try_from(n).map_err(|_| Error::Corrupt {
        what: format!("{what} {n}"),
    })
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

impl StateRow {
    fn into_state(self) -> Result<AcmeState, Error> {
        Ok(AcmeState {
            next_renewal: opt_time("renewal time", self.next_renewal)?,
            next_attempt: from_unix("next attempt", self.next_attempt)?,
            failures: count("failure count", self.failures)?,
            last_error_at: opt_time("error time", self.last_error_at)?,
            last_issued_at: opt_time("issue time", self.last_issued_at)?,
            lease_until: opt_time("lease time", self.lease_until)?,
            last_error: self.last_error,
            lease_holder: self.lease_holder,
            domain: self.domain,
        })
    }
}

impl ChallengeRow {
    fn into_challenge(self) -> Result<Challenge, Error> {
        Ok(Challenge {
            kind: ChallengeKind::parse(&self.kind).ok_or_else(|| Error::Corrupt {
                what: format!("challenge kind {:?}", self.kind),
            })?,
            expires_at: from_unix("challenge expiry", self.expires_at)?,
            token: self.token,
            name: self.name,
            key_authorization: self.key_authorization,
        })
    }
}

/// The associated data an account's credentials are sealed with.
fn account_aad(directory: &str) -> Vec<u8> {
    format!("acme-account:{directory}").into_bytes()
}

impl Store {
    /// The credentials (JSON) of the ACME account at `directory`, unsealed, if one was made.
    ///
    /// # Errors
    /// [`Error::Unseal`] when they do not open with this store's key; [`Error::Database`].
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, Error> {
        let sealed: Option<Vec<u8>> = on_backend!(self.pools.reader(), p =>
            sqlx::query_scalar("SELECT credentials_sealed FROM acme_accounts WHERE directory = $1")
                .bind(directory)
                .fetch_optional(p)
                .await?
        );
        sealed
            .map(|s| {
                self.sealer()
                    .open(&s, &account_aad(directory))
                    .and_then(|plain| String::from_utf8(plain).ok())
                    .ok_or_else(|| Error::Unseal {
                        domain: format!("ACME account at {directory}"),
                    })
            })
            .transpose()
    }

    /// Keeps the credentials (JSON, holding the account's private key) of the ACME account at
    /// `directory`, sealed, replacing any before (an account the CA no longer knows).
    ///
    /// # Errors
    /// [`Error::Invalid`] for oversized credentials; [`Error::Database`].
    pub async fn put_acme_account(
        &self,
        directory: &str,
        credentials: &str,
        change: &Change,
    ) -> Result<(), Error> {
        check_text("ACME directory", directory, 1, MAX_REASON)?;
        check_text("ACME credentials", credentials, 2, MAX_CREDENTIALS)?;
        change.check()?;
        let sealed = self
            .sealer()
            .seal(credentials.as_bytes(), &account_aad(directory))?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO acme_accounts (directory, credentials_sealed, created_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (directory) DO UPDATE \
                 SET credentials_sealed = excluded.credentials_sealed, \
                 created_at = excluded.created_at",
            )
            .bind(directory)
            .bind(&sealed)
            .bind(change.at_unix())
            .execute(&mut **c)
            .await?;
        });
        let record = AuditRecord {
            action: "acme.account",
            domain: None,
            detail: json!({ "directory": directory }),
        };
        tx.commit_audited_quiet(change, record).await
    }

    /// Up to `limit` domains whose certificate work is due at `now`, longest waiting first: no
    /// certificate yet, or an ACME certificate whose renewal time has come; not in backoff, and
    /// no live lease on them. An imported certificate is the operator's and is left alone.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn acme_due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<AcmeDue>, Error> {
        let now = now.unix_timestamp();
        let rows: Vec<(String, Option<i64>, Option<i64>)> = on_backend!(self.pools.reader(), p =>
            sqlx::query_as(
                "SELECT d.name, c.not_after, a.failures FROM domains d \
                 LEFT JOIN certificates c ON c.domain = d.name \
                 LEFT JOIN acme_domains a ON a.domain = d.name \
                 WHERE (c.domain IS NULL OR (c.source = 'acme' \
                        AND (a.next_renewal IS NULL OR a.next_renewal <= $1))) \
                   AND COALESCE(a.next_attempt, 0) <= $1 \
                   AND (a.lease_until IS NULL OR a.lease_until < $1) \
                 ORDER BY COALESCE(a.next_attempt, 0), d.name LIMIT $2",
            )
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|(domain, not_after, failures)| {
                Ok(AcmeDue {
                    not_after: opt_time("certificate notAfter", not_after)?,
                    failures: count("failure count", failures.unwrap_or(0))?,
                    domain,
                })
            })
            .collect()
    }

    /// Takes the order lease on `domain` for `holder` until `now + lease_for`, when nobody else
    /// holds a live one and the work is still due (as [`Store::acme_due`] says: no certificate,
    /// or an ACME one whose renewal time has come, and no backoff), and counts the order against
    /// the CA's `budget`, all in one transaction: when the budget is spent nothing is taken.
    /// [`Lease::Busy`] when another holds it or it is no longer due (another instance just
    /// installed the certificate).
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::Database`].
    pub async fn acme_take_lease(
        &self,
        domain: &str,
        holder: &str,
        now: OffsetDateTime,
        lease_for: Duration,
        budget: &OrderBudget<'_>,
    ) -> Result<Lease, Error> {
        let OrderBudget {
            directory,
            window,
            max_orders,
        } = *budget;
        check_domain(domain)?;
        check_text("lease holder", holder, 1, MAX_SHORT)?;
        let at = now.unix_timestamp();
        let until = at.saturating_add(secs(lease_for));
        let since = at.saturating_sub(secs(window));
        let mut tx = WriteTx::begin(&self.pools).await?;
        let outcome = on_backend!(&mut tx.tx, c => {
            let hosted: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM domains WHERE name = $1")
                    .bind(domain)
                    .fetch_optional(&mut **c)
                    .await?;
            if hosted.is_none() {
                None
            } else {
                sqlx::query(
                    "INSERT INTO acme_domains (domain) VALUES ($1) ON CONFLICT (domain) DO NOTHING",
                )
                .bind(domain)
                .execute(&mut **c)
                .await?;
                // Taken only while the work is still due, as `acme_due` saw it: another
                // instance may have installed the certificate (and released its lease) since
                // this one read the due list, and must not be followed by a second order.
                let taken = sqlx::query(
                    "UPDATE acme_domains SET lease_holder = $2, lease_until = $3 \
                     WHERE domain = $1 AND (lease_until IS NULL OR lease_until < $4 \
                     OR lease_holder = $2) AND next_attempt <= $4 \
                     AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.domain = $1 \
                       AND (c.source <> 'acme' OR (acme_domains.next_renewal IS NOT NULL \
                       AND acme_domains.next_renewal > $4)))",
                )
                .bind(domain)
                .bind(holder)
                .bind(until)
                .bind(at)
                .execute(&mut **c)
                .await?
                .rows_affected();
                if taken == 0 {
                    Some(Lease::Busy)
                } else {
                    let (placed, oldest): (i64, Option<i64>) = sqlx::query_as(
                        "SELECT COUNT(*), MIN(at) FROM acme_orders WHERE directory = $1 AND at > $2",
                    )
                    .bind(directory)
                    .bind(since)
                    .fetch_one(&mut **c)
                    .await?;
                    if placed >= i64::from(max_orders) {
                        let until = oldest.unwrap_or(at).saturating_add(secs(window));
                        Some(Lease::RateLimited {
                            until: from_unix("rate limit time", until)?,
                        })
                    } else {
                        sqlx::query(
                            "INSERT INTO acme_orders (directory, domain, at) VALUES ($1, $2, $3)",
                        )
                        .bind(directory)
                        .bind(domain)
                        .bind(at)
                        .execute(&mut **c)
                        .await?;
                        // Orders older than any window we would look at are of no more use.
                        sqlx::query("DELETE FROM acme_orders WHERE at < $1")
                            .bind(since.saturating_sub(86_400 * 7))
                            .execute(&mut **c)
                            .await?;
                        Some(Lease::Taken)
                    }
                }
            }
        });
        let Some(outcome) = outcome else {
            return Err(Error::UnknownDomain {
                domain: domain.to_owned(),
            });
        };
        if outcome == Lease::Taken {
            tx.commit_quiet().await?;
        }
        // Busy or rate limited: roll back (the lease taken for the count is given up).
        Ok(outcome)
    }

    /// Installs the certificate `holder` obtained for `domain`, records the success (renewal
    /// due at `next_renewal`, failures cleared) and releases the lease, in one transaction with
    /// its audit entry. Every instance then serves it.
    ///
    /// # Errors
    /// As [`Store::put_certificate`].
    pub async fn acme_issued(
        &self,
        domain: &str,
        holder: &str,
        cert: &NewCertificate,
        next_renewal: OffsetDateTime,
        change: &Change,
    ) -> Result<(), Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        let replaced = insert_certificate(self, &mut tx, domain, cert, change).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO acme_domains (domain) VALUES ($1) ON CONFLICT (domain) DO NOTHING",
            )
            .bind(domain)
            .execute(&mut **c)
            .await?;
            sqlx::query(
                "UPDATE acme_domains SET next_renewal = $2, next_attempt = 0, failures = 0, \
                 last_error = NULL, last_error_at = NULL, last_issued_at = $3, \
                 lease_holder = NULL, lease_until = NULL \
                 WHERE domain = $1 AND (lease_holder IS NULL OR lease_holder = $4)",
            )
            .bind(domain)
            .bind(next_renewal.unix_timestamp())
            .bind(change.at_unix())
            .bind(holder)
            .execute(&mut **c)
            .await?;
        });
        let record = AuditRecord {
            action: "certificate.put",
            domain: Some(domain),
            detail: json!({
                "source": cert.source.as_str(),
                "not_after": cert.not_after.unix_timestamp(),
                "replaced": replaced,
                "next_renewal": next_renewal.unix_timestamp(),
            }),
        };
        tx.commit(change, record).await?;
        Ok(())
    }

    /// Records that the certificate work of `domain` failed with `error` (plain words): one
    /// more failure, not retried before `next_attempt`; the lease of `holder` (if any) is
    /// released. Nothing served changes.
    ///
    /// # Errors
    /// [`Error::Invalid`]; [`Error::Database`]. A domain removed meanwhile is no error.
    pub async fn acme_failed(
        &self,
        domain: &str,
        holder: Option<&str>,
        error: &str,
        next_attempt: OffsetDateTime,
        at: OffsetDateTime,
    ) -> Result<(), Error> {
        check_domain(domain)?;
        let error = clip_reason(error);
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO acme_domains (domain) SELECT name FROM domains WHERE name = $1 \
                 ON CONFLICT (domain) DO NOTHING",
            )
            .bind(domain)
            .execute(&mut **c)
            .await?;
            sqlx::query(
                "UPDATE acme_domains SET failures = failures + 1, last_error = $2, \
                 last_error_at = $3, next_attempt = $4, \
                 lease_holder = CASE WHEN lease_holder = $5 THEN NULL ELSE lease_holder END, \
                 lease_until = CASE WHEN lease_holder = $5 THEN NULL ELSE lease_until END \
                 WHERE domain = $1",
            )
            .bind(domain)
            .bind(&error)
            .bind(at.unix_timestamp())
            .bind(next_attempt.unix_timestamp())
            .bind(holder.unwrap_or(""))
            .execute(&mut **c)
            .await?;
        });
        tx.commit_quiet().await
    }

    /// Moves the renewal time of `domain`'s ACME certificate (the CA's renewal information
    /// asked for an earlier one).
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn acme_reschedule(
        &self,
        domain: &str,
        next_renewal: OffsetDateTime,
    ) -> Result<(), Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query("UPDATE acme_domains SET next_renewal = $2 WHERE domain = $1")
                .bind(domain)
                .bind(next_renewal.unix_timestamp())
                .execute(&mut **c)
                .await?;
        });
        tx.commit_quiet().await
    }

    /// The certificate work of `domain`, if any was ever done.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn acme_state(&self, domain: &str) -> Result<Option<AcmeState>, Error> {
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, StateRow>(
                "SELECT domain, next_renewal, next_attempt, failures, last_error, last_error_at, \
                 last_issued_at, lease_holder, lease_until FROM acme_domains WHERE domain = $1",
            )
            .bind(domain)
            .fetch_optional(p)
            .await?
        );
        row.map(StateRow::into_state).transpose()
    }

    /// Keeps a challenge being validated, for every instance to answer.
    ///
    /// # Errors
    /// [`Error::Invalid`]; [`Error::Database`].
    pub async fn put_challenge(&self, challenge: &Challenge) -> Result<(), Error> {
        check_text("challenge token", &challenge.token, 1, MAX_TOKEN)?;
        check_text(
            "key authorization",
            &challenge.key_authorization,
            1,
            MAX_TOKEN,
        )?;
        check_domain(&challenge.name)?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO acme_challenges (token, name, kind, key_authorization, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token) DO UPDATE \
                 SET name = excluded.name, kind = excluded.kind, \
                 key_authorization = excluded.key_authorization, expires_at = excluded.expires_at",
            )
            .bind(&challenge.token)
            .bind(&challenge.name)
            .bind(challenge.kind.as_str())
            .bind(&challenge.key_authorization)
            .bind(challenge.expires_at.unix_timestamp())
            .execute(&mut **c)
            .await?;
        });
        tx.commit_quiet().await
    }

    /// The unexpired HTTP-01 challenge with `token`.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn http_challenge(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, Error> {
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, ChallengeRow>(
                "SELECT token, name, kind, key_authorization, expires_at FROM acme_challenges \
                 WHERE token = $1 AND kind = 'http-01' AND expires_at > $2",
            )
            .bind(token)
            .bind(now.unix_timestamp())
            .fetch_optional(p)
            .await?
        );
        row.map(ChallengeRow::into_challenge).transpose()
    }

    /// The newest unexpired TLS-ALPN-01 challenge for `name`.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn tls_alpn_challenge(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Challenge>, Error> {
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, ChallengeRow>(
                "SELECT token, name, kind, key_authorization, expires_at FROM acme_challenges \
                 WHERE name = $1 AND kind = 'tls-alpn-01' AND expires_at > $2 \
                 ORDER BY expires_at DESC LIMIT 1",
            )
            .bind(name)
            .bind(now.unix_timestamp())
            .fetch_optional(p)
            .await?
        );
        row.map(ChallengeRow::into_challenge).transpose()
    }

    /// Forgets the challenge with `token`, and every challenge expired at `now`.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn delete_challenge(&self, token: &str, now: OffsetDateTime) -> Result<(), Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query("DELETE FROM acme_challenges WHERE token = $1 OR expires_at <= $2")
                .bind(token)
                .bind(now.unix_timestamp())
                .execute(&mut **c)
                .await?;
        });
        tx.commit_quiet().await
    }
}
