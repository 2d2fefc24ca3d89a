//! Persistence of cached policies across restarts: a SQLite file by default.
//!
//! The engine never waits on the store: it sends [`StoreOp`]s down a channel and a writer task
//! applies them. At start-up [`SqliteStore::load`] gives the policies back for
//! [`crate::Engine::preload`]. Only policies are kept (negative answers are cheap to learn again).

use crate::redis_tier::RedisTier;
use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use tokio::sync::mpsc;

/// A policy as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The policy domain (A-labels).
    pub domain: String,
    /// The TXT id it was fetched under.
    pub id: String,
    /// The body as fetched.
    pub body: String,
    /// When it expires, in seconds since the Unix epoch.
    pub expires_unix: i64,
}

/// A change to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// Insert or replace a domain's policy.
    Put(StoredPolicy),
    /// The domain no longer has a policy.
    Delete(String),
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("policy cache {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: sqlx::Error,
}

/// SQLite's page cache for the policy file, in KiB.
const SQLITE_CACHE_KIB: u32 = 256;

/// The SQLite policy cache.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: String,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let err = |source| StoreError {
            path: shown.clone(),
            source,
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5))
            // The file is read once at start-up and then written a row at a time: SQLite's
            // default 2 MB page cache would only keep pages of that one read resident.
            .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS sts_policy (
                domain TEXT PRIMARY KEY NOT NULL,
                id TEXT NOT NULL,
                body TEXT NOT NULL,
                expires_unix INTEGER NOT NULL
            )",
        )
        .execute(&pool)
        .await
        .map_err(err)?;
        Ok(Self { pool, path: shown })
    }

    fn err(&self, source: sqlx::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// How many unexpired policies there are.
    pub async fn count(&self) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sts_policy WHERE expires_unix > ?")
            .bind(crate::engine::unix_now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Every unexpired policy.
    pub async fn load(&self) -> Result<Vec<StoredPolicy>, StoreError> {
        let mut out = Vec::new();
        self.load_each(|p| out.push(p)).await?;
        Ok(out)
    }

    /// Gives every unexpired policy to `f`, one at a time; how many there were.
    ///
    /// Rows are read one at a time and dropped as soon as they are handed over: the rows are
    /// made on SQLite's worker thread, so holding all of them (`fetch_all`) kept that thread's
    /// allocator arena at the size of the whole table for the life of the daemon (about 60 MB per
    /// 100,000 policies), and a `Vec` of every policy would double the start-up peak.
    pub async fn load_each(&self, mut f: impl FnMut(StoredPolicy)) -> Result<usize, StoreError> {
        let mut rows = sqlx::query(
            "SELECT domain, id, body, expires_unix FROM sts_policy WHERE expires_unix > ?",
        )
        .bind(crate::engine::unix_now())
        .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await.map_err(|e| self.err(e))? {
            let decoded = (|| {
                Ok::<_, sqlx::Error>(StoredPolicy {
                    domain: r.try_get(0)?,
                    id: r.try_get(1)?,
                    body: r.try_get(2)?,
                    expires_unix: r.try_get(3)?,
                })
            })();
            f(decoded.map_err(|e| self.err(e))?);
            n += 1;
        }
        Ok(n)
    }

    /// Applies one change.
    pub async fn apply(&self, op: &StoreOp) -> Result<(), StoreError> {
        let q = match op {
            StoreOp::Put(p) => sqlx::query(
                "INSERT INTO sts_policy (domain, id, body, expires_unix) VALUES (?, ?, ?, ?)
                 ON CONFLICT(domain) DO UPDATE SET id = excluded.id, body = excluded.body,
                 expires_unix = excluded.expires_unix",
            )
            .bind(&p.domain)
            .bind(&p.id)
            .bind(&p.body)
            .bind(p.expires_unix),
            StoreOp::Delete(d) => sqlx::query("DELETE FROM sts_policy WHERE domain = ?").bind(d),
        };
        q.execute(&self.pool).await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Drops expired rows; returns how many.
    pub async fn prune(&self) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sts_policy WHERE expires_unix <= ?")
            .bind(crate::engine::unix_now())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }

    /// Starts a writer task for this file alone (see [`spawn_writer`]).
    pub fn spawn_writer(self) -> (mpsc::UnboundedSender<StoreOp>, tokio::task::JoinHandle<u64>) {
        spawn_writer(Some(self), None)
    }
}

/// Starts the writer task that applies the engine's changes to the SQLite file and the Redis
/// tier; hand the sender to [`crate::Engine::with_tiers`]. The task ends when every sender is
/// dropped, after writing what was queued, and returns how many writes failed (each is logged;
/// a failed write never stops the engine).
pub fn spawn_writer(
    sqlite: Option<SqliteStore>,
    redis: Option<RedisTier>,
) -> (mpsc::UnboundedSender<StoreOp>, tokio::task::JoinHandle<u64>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<StoreOp>();
    let task = tokio::spawn(async move {
        let mut errors = 0;
        while let Some(op) = rx.recv().await {
            if let Some(db) = &sqlite
                && let Err(e) = db.apply(&op).await
            {
                tracing::warn!(error = %e, "cache file write failed");
                errors += 1;
            }
            if let Some(r) = &redis {
                let done = match &op {
                    StoreOp::Put(p) => r.put(p).await,
                    StoreOp::Delete(d) => r.delete(d).await,
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, "redis write failed");
                    errors += 1;
                }
            }
        }
        errors
    });
    (tx, task)
}
