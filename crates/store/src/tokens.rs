//! Admin API bearer tokens. A secret is 32 random bytes shown once at creation; the store keeps
//! only its SHA-256. A presented secret is hashed, looked up by hash, and the hash compared again
//! in constant time (the index lookup learns at most about a hash of an unguessable value).

use std::fmt;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::crypto::hex;
use crate::db::{AuditRecord, WriteTx, on_backend};
use crate::error::is_unique_violation;
use crate::{Change, Error, MAX_SHORT, Store, check_domain, check_text, from_unix};

/// What every secret starts with, so a leaked one is recognisable (secret scanners, logs).
const SECRET_PREFIX: &str = "mtasts_";
/// Most domains one token may be limited to.
const MAX_SCOPE_DOMAINS: usize = 10_000;

/// What a token may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenScope {
    /// Every domain, and store-wide actions (tokens, listing all domains).
    All,
    /// Only these domains (normalised names; read back sorted, without duplicates).
    Domains(Vec<String>),
}

impl TokenScope {
    /// Whether a token with this scope may read or change `domain`.
    pub fn allows(&self, domain: &str) -> bool {
        match self {
            Self::All => true,
            Self::Domains(list) => list.iter().any(|d| d == domain),
        }
    }
}

/// A token's secret, shown once when it is made. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// The secret, to hand to the operator (`Authorization: Bearer <secret>`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// An admin token (without its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Its name, unique in the store (what the audit history shows as the actor).
    pub name: String,
    /// What it may act on.
    pub scope: TokenScope,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Who made it.
    pub created_by: String,
}

/// A token just made, with its secret.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// The token.
    pub token: AdminToken,
    /// The secret; the store cannot show it again.
    pub secret: TokenSecret,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    hash: Vec<u8>,
    all_domains: bool,
    created_at: i64,
    created_by: String,
}

fn hash_secret(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

impl Store {
    /// Makes a token named `name` with `scope`; the returned secret is the only copy.
    ///
    /// # Errors
    /// [`Error::TokenExists`]; [`Error::Invalid`] for a malformed name, an empty or oversized
    /// domain list or a malformed domain in it; [`Error::Database`].
    pub async fn create_token(
        &self,
        name: &str,
        scope: &TokenScope,
        change: &Change,
    ) -> Result<NewToken, Error> {
        check_text("token name", name, 1, MAX_SHORT)?;
        if let TokenScope::Domains(list) = scope {
            if list.is_empty() || list.len() > MAX_SCOPE_DOMAINS {
                return Err(Error::invalid(
                    "token scope",
                    format!("1 to {MAX_SCOPE_DOMAINS} domains"),
                ));
            }
            list.iter().try_for_each(|d| check_domain(d))?;
        }
        change.check()?;
        // Kept sorted and without duplicates, as it is read back.
        let scope = match scope {
            TokenScope::All => TokenScope::All,
            TokenScope::Domains(list) => {
                let mut list = list.clone();
                list.sort();
                list.dedup();
                TokenScope::Domains(list)
            }
        };
        let scope = &scope;
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| Error::InvalidKey {
                why: "the system random generator failed",
            })?;
        let secret = format!("{SECRET_PREFIX}{}", hex(&raw));
        let hash = hash_secret(&secret);
        let mut tx = WriteTx::begin(&self.pools).await?;
        let id: Result<i64, sqlx::Error> = on_backend!(&mut tx.tx, c =>
            sqlx::query_scalar(
                "INSERT INTO admin_tokens (name, hash, all_domains, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(name)
            .bind(&hash)
            .bind(matches!(scope, TokenScope::All))
            .bind(change.at_unix())
            .bind(&change.actor)
            .fetch_one(&mut **c)
            .await
        );
        let id = match id {
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::TokenExists {
                    name: name.to_owned(),
                });
            }
            other => other?,
        };
        if let TokenScope::Domains(list) = scope {
            for domain in list {
                on_backend!(&mut tx.tx, c =>
                        sqlx::query(
                            "INSERT INTO admin_token_domains (token, domain) VALUES ($1, $2) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(id)
                        .bind(domain)
                        .execute(&mut **c)
                        .await?
                .rows_affected()
                    );
            }
        }
        let record = AuditRecord {
            action: "token.create",
            domain: None,
            detail: json!({ "name": name, "scope": scope_detail(scope) }),
        };
        tx.commit(change, record).await?;
        Ok(NewToken {
            token: AdminToken {
                name: name.to_owned(),
                scope: scope.clone(),
                created_at: change.at,
                created_by: change.actor.clone(),
            },
            secret: TokenSecret(secret),
        })
    }

    /// The token whose secret is `secret`, or `None` (unknown, revoked or malformed).
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn authenticate(&self, secret: &str) -> Result<Option<AdminToken>, Error> {
        // The format is public: refusing a malformed secret early leaks nothing.
        if secret.len() != SECRET_PREFIX.len() + 64 || !secret.starts_with(SECRET_PREFIX) {
            return Ok(None);
        }
        let hash = hash_secret(secret);
        let row = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, TokenRow>(
                "SELECT id, name, hash, all_domains, created_at, created_by \
                 FROM admin_tokens WHERE hash = $1",
            )
            .bind(&hash)
            .fetch_optional(p)
            .await?
        );
        match row {
            Some(row) if bool::from(row.hash.ct_eq(&hash)) => self.token_from(row).await.map(Some),
            _ => Ok(None),
        }
    }

    /// Every token, by name.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`].
    pub async fn tokens(&self) -> Result<Vec<AdminToken>, Error> {
        let rows = on_backend!(self.pools.reader(), p =>
            sqlx::query_as::<_, TokenRow>(
                "SELECT id, name, hash, all_domains, created_at, created_by \
                 FROM admin_tokens ORDER BY name",
            )
            .fetch_all(p)
            .await?
        );
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.token_from(row).await?);
        }
        Ok(out)
    }

    /// Revokes (deletes) the token named `name`: its secret stops working at once.
    ///
    /// # Errors
    /// [`Error::UnknownToken`]; [`Error::Database`].
    pub async fn revoke_token(&self, name: &str, change: &Change) -> Result<(), Error> {
        change.check()?;
        let mut tx = WriteTx::begin(&self.pools).await?;
        let deleted = on_backend!(&mut tx.tx, c =>
            sqlx::query("DELETE FROM admin_tokens WHERE name = $1")
                .bind(name)
                .execute(&mut **c)
                .await?
                .rows_affected()
        );
        if deleted == 0 {
            return Err(Error::UnknownToken {
                name: name.to_owned(),
            });
        }
        let record = AuditRecord {
            action: "token.revoke",
            domain: None,
            detail: json!({ "name": name }),
        };
        tx.commit(change, record).await?;
        Ok(())
    }

    async fn token_from(&self, row: TokenRow) -> Result<AdminToken, Error> {
        let scope = if row.all_domains {
            TokenScope::All
        } else {
            let domains: Vec<String> = on_backend!(self.pools.reader(), p =>
                sqlx::query_scalar(
                    "SELECT domain FROM admin_token_domains WHERE token = $1 ORDER BY domain",
                )
                .bind(row.id)
                .fetch_all(p)
                .await?
            );
            TokenScope::Domains(domains)
        };
        Ok(AdminToken {
            name: row.name,
            scope,
            created_at: from_unix("token creation time", row.created_at)?,
            created_by: row.created_by,
        })
    }
}

fn scope_detail(scope: &TokenScope) -> serde_json::Value {
    match scope {
        TokenScope::All => json!("all"),
        TokenScope::Domains(list) => json!(list),
    }
}
