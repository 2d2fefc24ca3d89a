//! A fresh store per test on each backend, the `both!` macro, certificates and fixed times.

use std::sync::atomic::{AtomicU32, Ordering};

use mtasts_store::{Store, StoreKey, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};
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
                $db.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($db) = $crate::support::TestDb::postgres(stringify!($name)).await else {
                    return;
                };
                $body
                $db.finish().await;
            }
        }
    )*};
}
pub(crate) use both;

/// A fresh, empty store for one test.
pub(crate) struct TestDb {
    pub(crate) url: String,
    pub(crate) options: StoreOptions,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        Self {
            url,
            options: StoreOptions::default(),
            _dir: Some(dir),
            pg: None,
        }
    }

    /// `None` (after saying SKIP) when no PostgreSQL is configured and CI is not true.
    pub(crate) async fn postgres(test: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but TEST_DATABASE_URL is not set"
            );
            eprintln!("SKIP {test} (postgres): TEST_DATABASE_URL is not set");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mtasts_server_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_000
        );
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let base = admin.split('?').next().unwrap();
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        Some(Self {
            url,
            options: StoreOptions {
                key: Some(StoreKey::from_bytes([7; 32])),
                ..StoreOptions::default()
            },
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url, &self.options).await.unwrap()
    }

    /// Drops a PostgreSQL test database.
    pub(crate) async fn finish(self) {
        if let Some((admin, name)) = &self.pg {
            let mut conn = PgConnection::connect(admin).await.unwrap();
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}

/// A fixed time: 2026-01-01 plus `secs`.
pub(crate) fn t(secs: i64) -> OffsetDateTime {
    time::macros::datetime!(2026-01-01 0:00 UTC) + time::Duration::seconds(secs)
}

/// A certificate and key (PEM) for `names`, valid from 2025 to `not_after`.
pub(crate) fn cert(names: &[&str], not_after: OffsetDateTime) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = time::macros::datetime!(2025-01-01 0:00 UTC);
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

pub(crate) use mtasts_testnet::relay::Relay;

impl TestDb {
    /// This database's URL, reached through `port` on loopback instead (PostgreSQL only).
    pub(crate) fn url_via(&self, port: u16) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let (userinfo, after) = rest.split_once('@').unwrap();
        let path = &after[after.find('/').unwrap()..];
        format!("{scheme}://{userinfo}@127.0.0.1:{port}{path}")
    }

    /// Where the PostgreSQL server listens (PostgreSQL only).
    pub(crate) fn server_addr(&self) -> std::net::SocketAddr {
        let after = self.url.split_once('@').unwrap().1;
        let host_port = &after[..after.find('/').unwrap()];
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        std::net::ToSocketAddrs::to_socket_addrs(&host_port)
            .unwrap()
            .next()
            .unwrap()
    }
}
