//! The two backends behind one API: opening, migrating, and the write transaction every change
//! goes through (audit entry, generation bump and PostgreSQL NOTIFY, then commit).
//!
//! Both backends run the same SQL text: `$1`-style parameters are PostgreSQL's and are accepted
//! by sqlx's SQLite driver too; `RETURNING`, `ON CONFLICT` and the column types used (64-bit
//! integers, text, bytes, booleans) mean the same on both. [`on_backend!`] compiles one body
//! once per backend, so a query is written once and type-checked twice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::{Change, Error, StoreOptions};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How often an SQLite migration is tried when another process may be applying it too.
const SQLITE_MIGRATION_ATTEMPTS: u32 = 5;

/// The PostgreSQL channel a committed write announces its new generation on.
pub(crate) const NOTIFY_CHANNEL: &str = "mtasts_store_changed";

/// One value per backend; [`on_backend!`] runs the same code on either.
#[derive(Debug, Clone)]
pub(crate) enum Backend<S, P> {
    Sqlite(S),
    Postgres(P),
}

/// Runs `$body` with `$c` bound to the SQLite or the PostgreSQL side of a [`Backend`] value; the
/// body is compiled once for each backend.
macro_rules! on_backend {
    ($value:expr, $c:ident => $body:expr) => {
        match $value {
            $crate::db::Backend::Sqlite($c) => $body,
            $crate::db::Backend::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// Where a store URL points.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `sqlite:PATH` (or `sqlite://PATH`).
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`.
    Postgres(Box<PgConnectOptions>),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Self, Error> {
        let unsupported = || Error::UnsupportedUrl {
            url: redact_url(url),
        };
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() || path.starts_with(":memory:") {
                return Err(unsupported());
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(|_| unsupported())?;
            return Ok(Self::Postgres(Box::new(options)));
        }
        Err(unsupported())
    }
}

/// A URL for messages: a password in `postgres://user:secret@host` is replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The connection pools. SQLite has one writer connection (SQLite allows one writer at a time;
/// queueing in the pool beats retrying on `SQLITE_BUSY`) and several read-only readers (WAL lets
/// them read while the writer writes).
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    pub(crate) inner: Backend<SqliteWriterAndReaders, PgPool>,
}

#[derive(Debug, Clone)]
pub(crate) struct SqliteWriterAndReaders {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
}

impl Pools {
    /// Connects (creating the SQLite file when it is missing). No schema work.
    pub(crate) async fn connect(target: &Target, options: &StoreOptions) -> Result<Self, Error> {
        match target {
            Target::Sqlite(path) => {
                let base = SqliteConnectOptions::new()
                    .filename(path)
                    // 16 KiB pages for a new file (an existing one keeps its own): a stored
                    // report with its raw and normalised JSON is 2 to 3 KiB, and larger pages
                    // write it with a fifth less work (BENCHMARKS.md, "parse and store").
                    .page_size(16 * 1024)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(options.busy_timeout)
                    // Writes are rare (admin actions) and hold keys: survive power loss too.
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true);
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(base.clone().create_if_missing(true))
                    .await?;
                let readers = SqlitePoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(base.read_only(true))
                    .await?;
                Ok(Self {
                    inner: Backend::Sqlite(SqliteWriterAndReaders { writer, readers }),
                })
            }
            Target::Postgres(connect) => {
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections.max(1))
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with((**connect).clone())
                    .await?;
                Ok(Self {
                    inner: Backend::Postgres(pool),
                })
            }
        }
    }

    /// The pool reads go to.
    pub(crate) fn reader(&self) -> Backend<&SqlitePool, &PgPool> {
        match &self.inner {
            Backend::Sqlite(s) => Backend::Sqlite(&s.readers),
            Backend::Postgres(p) => Backend::Postgres(p),
        }
    }

    /// Applies every embedded migration the database lacks; returns the versions applied now.
    pub(crate) async fn migrate(&self) -> Result<Vec<Migration>, Error> {
        let before = self.applied_versions().await?;
        let migrator = match &self.inner {
            Backend::Sqlite(s) => {
                // sqlx has no migration lock on SQLite: a process starting at the same moment
                // (`mtasts serve` and `mtasts domain add` on a new path) may apply a migration
                // between our check and our apply, which then fails ("table ... already
                // exists"). Each migration commits with its version row, so running again skips
                // what the other applied.
                let mut attempt = 1;
                loop {
                    match SQLITE_MIGRATIONS.run(&s.writer).await {
                        Ok(()) => break,
                        Err(e) if attempt >= SQLITE_MIGRATION_ATTEMPTS => return Err(e.into()),
                        Err(e) => {
                            tracing::debug!(error = %e, attempt, "store migration raced; again");
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                &SQLITE_MIGRATIONS
            }
            Backend::Postgres(p) => {
                POSTGRES_MIGRATIONS.run(p).await?;
                &POSTGRES_MIGRATIONS
            }
        };
        let applied = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !before.contains(&m.version))
            .map(|m| Migration {
                version: m.version,
                description: m.description.to_string(),
            })
            .collect::<Vec<_>>();
        for m in &applied {
            tracing::info!(version = m.version, description = %m.description, "store migration applied");
        }
        Ok(applied)
    }

    /// The migration versions recorded in the database (none before the first migration).
    async fn applied_versions(&self) -> Result<BTreeSet<i64>, Error> {
        let exists: bool = match &self.inner {
            Backend::Sqlite(s) => {
                sqlx::query_scalar(
                    "SELECT COUNT(*) > 0 FROM sqlite_master \
                     WHERE type = 'table' AND name = '_sqlx_migrations'",
                )
                .fetch_one(&s.writer)
                .await?
            }
            Backend::Postgres(p) => {
                sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                    .fetch_one(p)
                    .await?
            }
        };
        if !exists {
            return Ok(BTreeSet::new());
        }
        let versions: Vec<i64> = on_backend!(self.reader_for_migrations(), p =>
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(p)
                .await?
        );
        Ok(versions.into_iter().collect())
    }

    /// The writer on SQLite: the readers may have opened before the first migration.
    fn reader_for_migrations(&self) -> Backend<&SqlitePool, &PgPool> {
        match &self.inner {
            Backend::Sqlite(s) => Backend::Sqlite(&s.writer),
            Backend::Postgres(p) => Backend::Postgres(p),
        }
    }

    pub(crate) async fn close(&self) {
        match &self.inner {
            Backend::Sqlite(s) => {
                s.readers.close().await;
                s.writer.close().await;
            }
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// A schema migration, as applied by [`crate::migrate`] or [`crate::Store::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Its version (the number its file name starts with).
    pub version: i64,
    /// Its description (the rest of its file name).
    pub description: String,
}

/// A write transaction. [`WriteTx::commit`] records the audit entry, bumps the generation (and
/// on PostgreSQL queues a NOTIFY, delivered at commit) and commits: a change cannot be committed
/// without them. Dropped without commit, it rolls back.
pub(crate) struct WriteTx {
    pub(crate) tx: Backend<Transaction<'static, Sqlite>, Transaction<'static, Postgres>>,
}

/// What a change records in the audit history.
#[derive(Debug)]
pub(crate) struct AuditRecord<'a> {
    pub(crate) action: &'static str,
    pub(crate) domain: Option<&'a str>,
    pub(crate) detail: serde_json::Value,
}

impl WriteTx {
    /// Begins a write. On SQLite `BEGIN IMMEDIATE` takes the write lock now, so another process
    /// writing the same file makes this wait (busy_timeout) instead of failing at the first write.
    pub(crate) async fn begin(pools: &Pools) -> Result<Self, Error> {
        let tx = match &pools.inner {
            Backend::Sqlite(s) => Backend::Sqlite(s.writer.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres(p) => Backend::Postgres(p.begin().await?),
        };
        Ok(Self { tx })
    }

    /// Records `audit` (who, when, why from `change`), bumps the generation and commits.
    /// Returns the new generation.
    pub(crate) async fn commit(
        mut self,
        change: &Change,
        audit: AuditRecord<'_>,
    ) -> Result<u64, Error> {
        self.write_audit(change, audit).await?;
        self.commit_unaudited().await
    }

    async fn write_audit(&mut self, change: &Change, audit: AuditRecord<'_>) -> Result<(), Error> {
        let detail = audit.detail.to_string();
        on_backend!(&mut self.tx, c => {
            sqlx::query(
                "INSERT INTO audit (at, actor, action, domain, detail, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(change.at_unix())
            .bind(&change.actor)
            .bind(audit.action)
            .bind(audit.domain)
            .bind(&detail)
            .bind(change.reason.as_deref())
            .execute(&mut **c)
            .await?;
        });
        Ok(())
    }

    /// Records `audit` and commits without bumping the generation: an audited change to
    /// nothing any instance serves (an ACME account, a record published in a DNS zone).
    pub(crate) async fn commit_audited_quiet(
        mut self,
        change: &Change,
        audit: AuditRecord<'_>,
    ) -> Result<(), Error> {
        self.write_audit(change, audit).await?;
        self.commit_quiet().await
    }

    /// Commits without an audit entry and without bumping the generation: for observations no
    /// instance serves (drift events), so that recording them does not make every instance
    /// rebuild its snapshot.
    pub(crate) async fn commit_quiet(self) -> Result<(), Error> {
        on_backend!(self.tx, c => c.commit().await?);
        Ok(())
    }

    /// Bumps the generation and commits, with no audit entry: for store-internal writes that
    /// no operator made (the key check).
    pub(crate) async fn commit_unaudited(mut self) -> Result<u64, Error> {
        let generation: i64 = on_backend!(&mut self.tx, c =>
            sqlx::query_scalar(
                "UPDATE store_generation SET value = value + 1 WHERE id = 1 RETURNING value",
            )
            .fetch_one(&mut **c)
            .await?
        );
        if let Backend::Postgres(c) = &mut self.tx {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(generation.to_string())
                .execute(&mut **c)
                .await?;
        }
        on_backend!(self.tx, c => c.commit().await?);
        Ok(u64::try_from(generation).unwrap_or(0))
    }
}

/// The key file used beside an SQLite store when no key is configured: `PATH.key`.
pub(crate) fn key_file_beside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".key");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_are_refused_without_leaking_passwords() {
        assert!(
            matches!(Target::parse("sqlite:/var/lib/x.db"), Ok(Target::Sqlite(p)) if p == Path::new("/var/lib/x.db"))
        );
        assert!(
            matches!(Target::parse("sqlite://rel/x.db"), Ok(Target::Sqlite(p)) if p == Path::new("rel/x.db"))
        );
        assert!(matches!(
            Target::parse("postgres://u@127.0.0.1:5432/db"),
            Ok(Target::Postgres(_))
        ));
        for bad in [
            "",
            "sqlite:",
            "sqlite::memory:",
            "mysql://h/db",
            "/path/x.db",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(Error::UnsupportedUrl { .. })),
                "{bad}"
            );
        }
        let Err(e) = Target::parse("postgres://u:hunter2@h:notaport/db") else {
            panic!("a non-numeric port must be refused");
        };
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
