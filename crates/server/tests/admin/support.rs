//! A fresh store per test on each backend, the `both!` macro, certificates and fixed times.

use mtasts_store::{Store, StoreKey, StoreOptions};
use mtasts_testnet::pg::TestDatabase;
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

/// A fresh, empty store for one test; a PostgreSQL one is dropped when this is.
pub(crate) struct TestDb {
    pub(crate) url: String,
    pub(crate) options: StoreOptions,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: this test's database, dropped with it.
    pg: Option<TestDatabase>,
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
        let pg = TestDatabase::create("mtasts_server", test).await?;
        Some(Self {
            url: pg.url.clone(),
            options: StoreOptions {
                key: Some(StoreKey::from_bytes([7; 32])),
                ..StoreOptions::default()
            },
            _dir: None,
            pg: Some(pg),
        })
    }

    pub(crate) async fn open(&self) -> Store {
        Store::open(&self.url, &self.options).await.unwrap()
    }
}

/// Adds `domain` (in testing, `mx.<domain>`, delegated as `delegation`) through the domain
/// operations, now.
pub(crate) async fn add_domain(
    store: &Store,
    domain: &str,
    delegation: mtasts_store::Delegation,
) -> mtasts_server::domains::Domains {
    use mtasts_server::domains::{AddDomain, Domains, MxSource};
    let req = AddDomain {
        domain: domain.into(),
        mx: MxSource::Patterns(vec![format!("mx.{domain}")]),
        mode: mtasts_core::policy::Mode::Testing,
        max_age: None,
        force: None,
        delegation,
    };
    let domains = Domains::new(store.clone(), Default::default()).unwrap();
    domains
        .add(&req, "test", OffsetDateTime::now_utc())
        .await
        .unwrap();
    domains
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
