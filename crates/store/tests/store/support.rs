//! The per-test database and the `both!` macro.

use mtasts_core::policy::Mode;
use mtasts_store::{Change, NewPolicy, Store, StoreKey, StoreOptions};
use mtasts_testnet::pg::TestDatabase;
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};
use time::OffsetDateTime;

/// Defines each test twice, as `<name>::sqlite` and `<name>::postgres`.
macro_rules! both {
    ($(async fn $name:ident($db:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports, reason = "each test uses some of them")]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = $crate::support::TestDb::sqlite().await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($db) = $crate::support::TestDb::postgres(stringify!($name)).await else {
                    return;
                };
                $body
            }
        }
    )*};
}
pub(crate) use both;

/// Which backend a test database is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh, empty database for one test; a PostgreSQL one is dropped when this is.
pub(crate) struct TestDb {
    pub(crate) kind: Kind,
    pub(crate) url: String,
    pub(crate) options: StoreOptions,
    /// The SQLite file's directory.
    pub(crate) dir: Option<tempfile::TempDir>,
    /// PostgreSQL: this test's database, dropped with it.
    pg: Option<TestDatabase>,
}

impl TestDb {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        Self {
            kind: Kind::Sqlite,
            url,
            options: StoreOptions::default(),
            dir: Some(dir),
            pg: None,
        }
    }

    /// `None` (after saying SKIP) when no PostgreSQL is configured and CI is not true.
    pub(crate) async fn postgres(test: &str) -> Option<Self> {
        let pg = TestDatabase::create("mtasts_store", test).await?;
        Some(Self {
            kind: Kind::Postgres,
            url: pg.url.clone(),
            options: StoreOptions {
                key: Some(StoreKey::from_bytes([42; 32])),
                ..StoreOptions::default()
            },
            dir: None,
            pg: Some(pg),
        })
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url, &self.options).await.unwrap()
    }

    /// Runs raw SQL on a connection of its own (what an attacker with a dump, or a fault, does).
    pub(crate) async fn raw(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                c.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                    .await
                    .unwrap();
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                c.execute(sqlx::AssertSqlSafe(sql.to_owned()))
                    .await
                    .unwrap();
            }
        }
    }

    /// The bytes of one column of every row a query returns.
    pub(crate) async fn raw_bytes(&self, sql: &str) -> Vec<Vec<u8>> {
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut c)
                    .await
                    .unwrap()
            }
        }
    }

    /// How many rows a `SELECT COUNT(*) ...` counts.
    pub(crate) async fn count(&self, sql: &str) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
        }
    }
}

/// A fixed clock for tests: 2026-01-01T00:00:00Z plus `secs`.
pub(crate) fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600 + secs).unwrap()
}

/// A change by `cli:test` at `t(secs)`.
pub(crate) fn change(secs: i64) -> Change {
    Change::new("cli:test", t(secs))
}

/// A valid policy; its id is derived from the content, as the caller's would be.
pub(crate) fn policy(mode: Mode, max_age: u32, mx: &[&str]) -> NewPolicy {
    let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        text.push_str(&format!("mx: {m}\r\n"));
    }
    text.push_str(&format!("max_age: {max_age}\r\n"));
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let id = digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    NewPolicy {
        text,
        id,
        mode,
        max_age,
        mx: mx.iter().map(|m| (*m).to_owned()).collect(),
    }
}

/// The usual first policy: testing, one day, one MX.
pub(crate) fn testing() -> NewPolicy {
    policy(Mode::Testing, 86_400, &["mail.example.com"])
}

pub(crate) use mtasts_testnet::relay::Relay;

impl TestDb {
    fn pg(&self) -> &TestDatabase {
        self.pg.as_ref().expect("a PostgreSQL test database")
    }

    /// This database's URL, reached through `port` on loopback instead (PostgreSQL only).
    pub(crate) fn url_via(&self, port: u16) -> String {
        self.pg().url_via(port)
    }

    /// Where the PostgreSQL server listens (PostgreSQL only).
    pub(crate) fn server_addr(&self) -> std::net::SocketAddr {
        self.pg().server_addr()
    }
}
