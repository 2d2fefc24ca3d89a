//! A fresh PostgreSQL database for one test, on the server `TEST_DATABASE_URL` names (feature
//! `postgres`). Not hermetic like the rest of this crate: the server is shared, so every test
//! gets a database of its own, dropped when the handle is.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

/// A database made for one test; dropped (connections ended) when this is, failed test or not.
#[derive(Debug)]
pub struct TestDatabase {
    /// The database's URL (`TEST_DATABASE_URL` with the database name replaced).
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates `<prefix>_<pid>_<n>_<nanos>` on the server of `TEST_DATABASE_URL`. `None`, after
    /// saying `SKIP <test>` on stderr, when that variable is unset.
    ///
    /// # Panics
    /// When `CI=true` and `TEST_DATABASE_URL` is unset (CI must not skip), or when the server
    /// does not answer or refuses the database.
    pub async fn create(prefix: &str, test: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but TEST_DATABASE_URL is not set: the PostgreSQL tests cannot run"
            );
            #[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
            {
                eprintln!("SKIP {test} (postgres): TEST_DATABASE_URL is not set");
            }
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{prefix}_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
        );
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("TEST_DATABASE_URL answers");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        let base = admin.split('?').next().unwrap_or(&admin);
        let url = format!("{}/{name}", &base[..base.rfind('/').unwrap_or(base.len())]);
        Some(Self { url, admin, name })
    }

    /// This database's URL reached through `port` on loopback instead (a [`crate::relay`]).
    ///
    /// # Panics
    /// When the URL has no `user@` part.
    pub fn url_via(&self, port: u16) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let (userinfo, after) = rest.split_once('@').expect("user@host in the URL");
        let path = &after[after.find('/').expect("a database name")..];
        format!("{scheme}://{userinfo}@127.0.0.1:{port}{path}")
    }

    /// Where the PostgreSQL server listens (the relay's upstream).
    ///
    /// # Panics
    /// When the URL has no `user@host/` part or the host does not resolve.
    pub fn server_addr(&self) -> SocketAddr {
        let after = self.url.split_once('@').expect("user@host in the URL").1;
        let host_port = &after[..after.find('/').expect("a database name")];
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        std::net::ToSocketAddrs::to_socket_addrs(&host_port)
            .expect("the PostgreSQL host resolves")
            .next()
            .expect("an address")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // On a thread of its own: this may run inside a runtime, or after it. FORCE ends the
        // connections a store handle (or a server under test) still holds.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut c) = PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = c.execute(sqlx::AssertSqlSafe(sql)).await;
                }
            });
        })
        .join();
    }
}
