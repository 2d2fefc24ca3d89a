//! The intake on a store, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL. Without
//! `TEST_DATABASE_URL` the PostgreSQL half says SKIP on stderr, and fails when `CI=true`.

mod readiness;

use mtasts_store::{Store, StoreKey, StoreOptions};
use mtasts_testnet::pg::TestDatabase;

/// Defines each test twice, as `<name>::sqlite` and `<name>::postgres`.
macro_rules! both {
    ($(async fn $name:ident($db:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports, reason = "each test uses some of them")]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = $crate::TestDb::sqlite().await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($db) = $crate::TestDb::postgres(stringify!($name)).await else {
                    return;
                };
                $body
            }
        }
    )*};
}
pub(crate) use both;

/// A fresh, empty store for one test; a PostgreSQL one is dropped when this is.
pub(crate) struct TestDb {
    url: String,
    options: StoreOptions,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("store.db").display());
        Self {
            url,
            options: StoreOptions::default(),
            _dir: Some(dir),
            _pg: None,
        }
    }

    /// `None` (after saying SKIP) when no PostgreSQL is configured and CI is not true.
    async fn postgres(test: &str) -> Option<Self> {
        let pg = TestDatabase::create("mtasts_intake", test).await?;
        Some(Self {
            url: pg.url.clone(),
            options: StoreOptions {
                key: Some(StoreKey::from_bytes([5; 32])),
                ..StoreOptions::default()
            },
            _dir: None,
            _pg: Some(pg),
        })
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url, &self.options).await.unwrap()
    }
}
