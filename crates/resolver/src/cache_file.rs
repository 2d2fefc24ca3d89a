//! The cache file: cached policies kept across restarts, a SQLite file by default.
//!
//! This is a disposable cache of what this sender learnt, not a store of record: every row can
//! be learnt again from DNS and HTTPS, so a file that cannot be read is set aside and the daemon
//! starts empty ([`CacheFile::open_or_set_aside`]) rather than refusing to start and deferring
//! all mail. It has nothing to do with the authoritative service state of the `store` crate
//! (PostgreSQL, migrations) that other services keep.
//!
//! The engine never waits on the store: it sends [`CacheOp`]s down a channel and a writer task
//! applies them. At start-up [`CacheFile::load`] gives the policies back for
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
pub struct PersistedPolicy {
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
pub enum CacheOp {
    /// Insert or replace a domain's policy.
    Put(PersistedPolicy),
    /// The domain no longer has a policy.
    Delete(String),
}

/// A cache file failure.
#[derive(Debug, thiserror::Error)]
#[error("policy cache {path}: {source}")]
pub struct CacheFileError {
    path: String,
    #[source]
    source: sqlx::Error,
}

impl CacheFileError {
    /// Whether the file itself is unusable (not a SQLite database, damaged, or a table of
    /// another shape), as opposed to a failure to reach it (permissions, a full disk, a lock).
    pub fn is_corrupt(&self) -> bool {
        match &self.source {
            sqlx::Error::Database(e) => {
                // SQLite's primary result codes: 1 SQLITE_ERROR (a schema that is not ours),
                // 11 SQLITE_CORRUPT, 26 SQLITE_NOTADB.
                let code = e.code().and_then(|c| c.parse::<u32>().ok()).unwrap_or(0);
                matches!(code & 0xff, 1 | 11 | 26)
            }
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::Decode(_) => true,
            _ => false,
        }
    }
}

/// SQLite's page cache for the policy file, in KiB.
const SQLITE_CACHE_KIB: u32 = 256;

/// The SQLite policy cache.
#[derive(Debug, Clone)]
pub struct CacheFile {
    pool: SqlitePool,
    path: String,
}

impl CacheFile {
    /// Opens (creating when missing) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, CacheFileError> {
        let shown = path.display().to_string();
        let err = |source| CacheFileError {
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

    /// Opens the file and reads it through once: expired rows are pruned, `reserve` is told
    /// how many rows are left, and `each` is given every one of them. A file that is not a usable
    /// cache ([`CacheFileError::is_corrupt`]) is renamed to `<path>.corrupt-<unix time>`, logged
    /// as an error, and an empty cache is started in its place (rows handed to `each` before the
    /// damage was met stay handed over). Returns the cache and how many rows were pruned.
    ///
    /// # Errors
    /// The file cannot be reached (permissions, disk), or setting it aside fails.
    pub async fn open_or_set_aside(
        path: &Path,
        mut reserve: impl FnMut(usize),
        mut each: impl FnMut(PersistedPolicy),
    ) -> Result<(Self, u64), CacheFileError> {
        match Self::open_and_read(path, &mut reserve, &mut each).await {
            Err(e) if e.is_corrupt() => {
                let aside = format!("{}.corrupt-{}", path.display(), crate::engine::unix_now());
                tracing::error!(
                    path = %path.display(),
                    moved_to = %aside,
                    error = %e,
                    "the cache file is unusable: moved aside, starting with an empty cache \
                     (policies are learnt again from DNS and HTTPS)"
                );
                std::fs::rename(path, &aside).map_err(|io| CacheFileError {
                    path: path.display().to_string(),
                    source: sqlx::Error::Io(io),
                })?;
                for suffix in ["-wal", "-shm"] {
                    let side = format!("{}{suffix}", path.display());
                    let _ = std::fs::rename(&side, format!("{aside}{suffix}"));
                }
                Self::open_and_read(path, &mut reserve, &mut each).await
            }
            other => other,
        }
    }

    async fn open_and_read(
        path: &Path,
        reserve: &mut impl FnMut(usize),
        each: &mut impl FnMut(PersistedPolicy),
    ) -> Result<(Self, u64), CacheFileError> {
        let file = Self::open(path).await?;
        let pruned = file.prune().await?;
        reserve(file.count().await?);
        file.load_each(each).await?;
        Ok((file, pruned))
    }

    fn err(&self, source: sqlx::Error) -> CacheFileError {
        CacheFileError {
            path: self.path.clone(),
            source,
        }
    }

    /// How many unexpired policies there are.
    pub async fn count(&self) -> Result<usize, CacheFileError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sts_policy WHERE expires_unix > ?")
            .bind(crate::engine::unix_now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Every unexpired policy.
    pub async fn load(&self) -> Result<Vec<PersistedPolicy>, CacheFileError> {
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
    pub async fn load_each(
        &self,
        mut f: impl FnMut(PersistedPolicy),
    ) -> Result<usize, CacheFileError> {
        let mut rows = sqlx::query(
            "SELECT domain, id, body, expires_unix FROM sts_policy WHERE expires_unix > ?",
        )
        .bind(crate::engine::unix_now())
        .fetch(&self.pool);
        let mut n = 0;
        while let Some(r) = rows.try_next().await.map_err(|e| self.err(e))? {
            let decoded = (|| {
                Ok::<_, sqlx::Error>(PersistedPolicy {
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
    pub async fn apply(&self, op: &CacheOp) -> Result<(), CacheFileError> {
        let q = match op {
            CacheOp::Put(p) => sqlx::query(
                "INSERT INTO sts_policy (domain, id, body, expires_unix) VALUES (?, ?, ?, ?)
                 ON CONFLICT(domain) DO UPDATE SET id = excluded.id, body = excluded.body,
                 expires_unix = excluded.expires_unix",
            )
            .bind(&p.domain)
            .bind(&p.id)
            .bind(&p.body)
            .bind(p.expires_unix),
            CacheOp::Delete(d) => sqlx::query("DELETE FROM sts_policy WHERE domain = ?").bind(d),
        };
        q.execute(&self.pool).await.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Drops expired rows; returns how many.
    pub async fn prune(&self) -> Result<u64, CacheFileError> {
        let done = sqlx::query("DELETE FROM sts_policy WHERE expires_unix <= ?")
            .bind(crate::engine::unix_now())
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }

    /// Starts a writer task for this file alone (see [`spawn_writer`]).
    pub fn spawn_writer(self) -> (mpsc::UnboundedSender<CacheOp>, tokio::task::JoinHandle<u64>) {
        spawn_writer(Some(self), None)
    }
}

/// Starts the writer task that applies the engine's changes to the SQLite file and the Redis
/// tier; hand the sender to [`crate::Engine::with_tiers`]. The task ends when every sender is
/// dropped, after writing what was queued, and returns how many writes failed (each is logged;
/// a failed write never stops the engine).
pub fn spawn_writer(
    sqlite: Option<CacheFile>,
    redis: Option<RedisTier>,
) -> (mpsc::UnboundedSender<CacheOp>, tokio::task::JoinHandle<u64>) {
    let (tx, rx) = mpsc::unbounded_channel::<CacheOp>();
    (tx, spawn_writer_with(rx, sqlite, redis))
}

/// [`spawn_writer`] for a channel made beforehand (so the engine can hold the sender while the
/// cache file is still being read into it).
pub fn spawn_writer_with(
    mut rx: mpsc::UnboundedReceiver<CacheOp>,
    sqlite: Option<CacheFile>,
    redis: Option<RedisTier>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
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
                    CacheOp::Put(p) => r.put(p).await,
                    CacheOp::Delete(d) => r.delete(d).await,
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, "redis write failed");
                    errors += 1;
                }
            }
        }
        errors
    })
}
