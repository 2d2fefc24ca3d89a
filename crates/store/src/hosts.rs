//! Certificates for service host names (decisions D55): the HTTPS report intake's own host
//! (`[intake] host`) and the SMTP receiver's name (`[smtp] hostname`), which are not a hosted
//! domain's `mta-sts.<domain>`. Kept like a domain's certificate: the key sealed with the store
//! key (associated data `host:<name>`), installing one is audited and makes every instance
//! reload.

use serde_json::json;
use time::OffsetDateTime;

use crate::certs::{CertSource, NewCertificate, PrivateKeyPem};
use crate::db::{AuditRecord, WriteTx, on_backend};
use crate::{Change, Error, Store, check_domain, check_text, from_unix};

/// Largest certificate chain accepted (PEM), as for a domain.
const MAX_CHAIN_PEM: usize = 256 * 1024;
/// Largest private key accepted (PEM), as for a domain.
const MAX_KEY_PEM: usize = 64 * 1024;

/// An installed host certificate with its (unsealed) key.
#[derive(Debug, Clone)]
pub struct HostCertificate {
    /// The host name the certificate is for.
    pub name: String,
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
struct HostRow {
    name: String,
    chain_pem: String,
    not_after: i64,
    source: String,
    key_sealed: Vec<u8>,
    installed_at: i64,
}

fn sealing_context(name: &str) -> Vec<u8> {
    format!("host:{name}").into_bytes()
}

impl Store {
    /// Installs `cert` for the host `name` (lower case, no trailing dot), replacing the one it
    /// had; whether it replaced one.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name or oversized or empty PEM; [`Error::Database`].
    pub async fn put_host_certificate(
        &self,
        name: &str,
        cert: &NewCertificate,
        change: &Change,
    ) -> Result<bool, Error> {
        check_domain(name)?;
        check_text("certificate chain", &cert.chain_pem, 1, MAX_CHAIN_PEM)?;
        check_text("private key", cert.key.expose(), 1, MAX_KEY_PEM)?;
        change.check()?;
        let sealed = self
            .sealer()
            .seal(cert.key.expose().as_bytes(), &sealing_context(name))?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        let replaced: bool = on_backend!(&mut tx.tx, c => {
            let existed: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM host_certificates WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&mut **c)
            .await?;
            sqlx::query(
                "INSERT INTO host_certificates \
                 (name, chain_pem, not_after, source, key_sealed, installed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (name) DO UPDATE SET chain_pem = excluded.chain_pem, \
                 not_after = excluded.not_after, source = excluded.source, \
                 key_sealed = excluded.key_sealed, installed_at = excluded.installed_at",
            )
            .bind(name)
            .bind(&cert.chain_pem)
            .bind(cert.not_after.unix_timestamp())
            .bind(cert.source.as_str())
            .bind(&sealed)
            .bind(change.at_unix())
            .execute(&mut **c)
            .await?;
            existed.is_some()
        });
        let record = AuditRecord {
            action: "host-certificate.put",
            domain: None,
            detail: json!({
                "host": name,
                "source": cert.source.as_str(),
                "not_after": cert.not_after.unix_timestamp(),
                "replaced": replaced,
            }),
        };
        tx.commit(change, record).await?;
        Ok(replaced)
    }

    /// Every host certificate with its key unsealed, by name.
    ///
    /// # Errors
    /// [`Error::Unseal`] when a sealed key does not open (naming the host);
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn host_certificates(&self) -> Result<Vec<HostCertificate>, Error> {
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, HostRow>(
                "SELECT name, chain_pem, not_after, source, key_sealed, installed_at \
                 FROM host_certificates ORDER BY name",
            )
            .fetch_all(p)
            .await?
        );
        rows.into_iter()
            .map(|row| {
                let key = self
                    .sealer()
                    .open(&row.key_sealed, &sealing_context(&row.name))
                    .and_then(|plain| String::from_utf8(plain).ok())
                    .ok_or_else(|| Error::Unseal {
                        domain: format!("host {}", row.name),
                    })?;
                Ok(HostCertificate {
                    source: CertSource::parse(&row.source).ok_or_else(|| Error::Corrupt {
                        what: format!("certificate source {:?} of host {}", row.source, row.name),
                    })?,
                    not_after: from_unix("certificate notAfter", row.not_after)?,
                    installed_at: from_unix("certificate installation time", row.installed_at)?,
                    key: PrivateKeyPem::new(key),
                    chain_pem: row.chain_pem,
                    name: row.name,
                })
            })
            .collect()
    }

    /// Removes the certificate of host `name`; whether there was one.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn remove_host_certificate(
        &self,
        name: &str,
        change: &Change,
    ) -> Result<bool, Error> {
        change.check()?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        let n = on_backend!(&mut tx.tx, c =>
            sqlx::query("DELETE FROM host_certificates WHERE name = $1")
                .bind(name)
                .execute(&mut **c)
                .await?
                .rows_affected()
        );
        let record = AuditRecord {
            action: "host-certificate.remove",
            domain: None,
            detail: json!({ "host": name, "removed": n > 0 }),
        };
        tx.commit(change, record).await?;
        Ok(n > 0)
    }
}
