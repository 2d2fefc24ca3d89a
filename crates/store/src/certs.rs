//! The certificate served for `mta-sts.<domain>`, one per hosted domain, its private key sealed
//! with the store key (see `crypto.rs`): a dump of the database alone yields no key.

use std::fmt;

use serde_json::json;
use time::OffsetDateTime;

use crate::db::{AuditRecord, WriteTx, on_backend};
use crate::{Change, Error, Store, check_domain, check_text, from_unix};

/// Largest certificate chain accepted (PEM).
const MAX_CHAIN_PEM: usize = 256 * 1024;
/// Largest private key accepted (PEM).
const MAX_KEY_PEM: usize = 64 * 1024;

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    /// Issued through ACME by the server.
    Acme,
    /// Imported by an operator (`mtasts domain cert import`).
    Imported,
}

impl CertSource {
    /// `"acme"` or `"imported"`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acme => "acme",
            Self::Imported => "imported",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "acme" => Some(Self::Acme),
            "imported" => Some(Self::Imported),
            _ => None,
        }
    }
}

/// A private key in PEM. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// Wraps a PEM private key.
    pub fn new(pem: impl Into<String>) -> Self {
        Self(pem.into())
    }

    /// The PEM text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(..)")
    }
}

/// A certificate to install. The caller has parsed the chain and checked that the key fits it.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    /// The chain, leaf first, in PEM.
    pub chain_pem: String,
    /// The leaf's private key, in PEM.
    pub key: PrivateKeyPem,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// Where it came from.
    pub source: CertSource,
}

/// An installed certificate with its (unsealed) key.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The hosted domain (the certificate is for `mta-sts.<domain>`).
    pub domain: String,
    /// The chain, leaf first, in PEM.
    pub chain_pem: String,
    /// The private key.
    pub key: PrivateKeyPem,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// Where it came from.
    pub source: CertSource,
    /// When it was installed.
    pub installed_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct CertRow {
    domain: String,
    chain_pem: String,
    not_after: i64,
    source: String,
    key_sealed: Vec<u8>,
    installed_at: i64,
}

const CERT_COLUMNS: &str = "SELECT domain, chain_pem, not_after, source, key_sealed, installed_at \
                            FROM certificates";

impl Store {
    /// Installs `cert` for hosted `domain`, replacing the one it had. The key is sealed with a
    /// fresh nonce and the domain name as associated data before it reaches the database.
    ///
    /// # Errors
    /// [`Error::UnknownDomain`]; [`Error::Invalid`] for oversized or empty PEM;
    /// [`Error::Database`].
    pub async fn put_certificate(
        &self,
        domain: &str,
        cert: &NewCertificate,
        change: &Change,
    ) -> Result<(), Error> {
        let mut tx = WriteTx::begin(&self.pools).await?;
        let replaced = insert_certificate(self, &mut tx, domain, cert, change).await?;
        let detail = json!({
            "source": cert.source.as_str(),
            "not_after": cert.not_after.unix_timestamp(),
            "replaced": replaced,
        });
        let record = AuditRecord {
            action: "certificate.put",
            domain: Some(domain),
            detail,
        };
        tx.commit(change, record).await?;
        Ok(())
    }

    /// The certificate of `domain` with its key unsealed, or `None` when it has none.
    ///
    /// # Errors
    /// [`Error::Unseal`] when the sealed key does not open; [`Error::Database`];
    /// [`Error::Corrupt`].
    pub async fn certificate(&self, domain: &str) -> Result<Option<Certificate>, Error> {
        let sql = format!("{CERT_COLUMNS} WHERE domain = $1");
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, CertRow>(sqlx::AssertSqlSafe(sql))
                .bind(domain)
                .fetch_optional(p)
                .await?
        );
        row.map(|r| self.unseal(r)).transpose()
    }

    /// Every installed certificate with its key unsealed, by domain: what a server loads.
    ///
    /// # Errors
    /// As [`Store::certificate`]; one key that does not open fails the whole call, naming
    /// its domain.
    pub async fn certificates(&self) -> Result<Vec<Certificate>, Error> {
        let sql = format!("{CERT_COLUMNS} ORDER BY domain");
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, CertRow>(sqlx::AssertSqlSafe(sql))
                .fetch_all(p)
                .await?
        );
        rows.into_iter().map(|r| self.unseal(r)).collect()
    }

    fn unseal(&self, row: CertRow) -> Result<Certificate, Error> {
        let key = self
            .sealer()
            .open(&row.key_sealed, row.domain.as_bytes())
            .and_then(|plain| String::from_utf8(plain).ok())
            .ok_or_else(|| Error::Unseal {
                domain: row.domain.clone(),
            })?;
        Ok(Certificate {
            source: CertSource::parse(&row.source).ok_or_else(|| Error::Corrupt {
                what: format!("certificate source {:?} of {}", row.source, row.domain),
            })?,
            not_after: from_unix("certificate notAfter", row.not_after)?,
            installed_at: from_unix("certificate installation time", row.installed_at)?,
            key: PrivateKeyPem(key),
            chain_pem: row.chain_pem,
            domain: row.domain,
        })
    }
}

/// Checks `cert`, seals its key and installs it for hosted `domain` inside `tx`; whether it
/// replaced one. The caller commits (with its audit entry).
pub(crate) async fn insert_certificate(
    store: &Store,
    tx: &mut WriteTx,
    domain: &str,
    cert: &NewCertificate,
    change: &Change,
) -> Result<bool, Error> {
    check_domain(domain)?;
    check_text("certificate chain", &cert.chain_pem, 1, MAX_CHAIN_PEM)?;
    check_text("private key", cert.key.expose(), 1, MAX_KEY_PEM)?;
    change.check()?;
    let sealed = store
        .sealer()
        .seal(cert.key.expose().as_bytes(), domain.as_bytes())?;
    let replaced: Option<bool> = on_backend!(&mut tx.tx, c => {
        let hosted: Option<i64> =
            sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM domains WHERE name = $1")
                .bind(domain)
                .fetch_optional(&mut **c)
                .await?;
        if hosted.is_none() {
            None
        } else {
            let existed: Option<i64> =
                sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM certificates WHERE domain = $1")
                    .bind(domain)
                    .fetch_optional(&mut **c)
                    .await?;
            sqlx::query(
                "INSERT INTO certificates \
                 (domain, chain_pem, not_after, source, key_sealed, installed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (domain) DO UPDATE SET chain_pem = excluded.chain_pem, \
                 not_after = excluded.not_after, source = excluded.source, \
                 key_sealed = excluded.key_sealed, installed_at = excluded.installed_at",
            )
            .bind(domain)
            .bind(&cert.chain_pem)
            .bind(cert.not_after.unix_timestamp())
            .bind(cert.source.as_str())
            .bind(&sealed)
            .bind(change.at_unix())
            .execute(&mut **c)
            .await?;
            Some(existed.is_some())
        }
    });
    replaced.ok_or_else(|| Error::UnknownDomain {
        domain: domain.to_owned(),
    })
}
