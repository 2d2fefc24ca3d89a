//! The state of mtasts' long-running services, on SQLite (one file, the default) or PostgreSQL
//! (several instances sharing it): hosted domains, their policies with full history, the rollout
//! state and its transitions, certificates with private keys sealed at rest, admin tokens kept
//! as hashes, an audit history written with every change, drift events, and a change signal.
//!
//! # Layout
//! - [`Store`] (`lib.rs`): open, migrate, the change generation.
//! - `domains.rs`: domains, policies, rollout state and transitions.
//! - `certs.rs`: certificates and their sealed keys; `crypto.rs`: the sealing.
//! - `acme.rs`: ACME accounts, each domain's certificate work and order lease, challenges.
//! - `dns.rs`: the delegation model of a domain and the TXT records published by DNS update.
//! - `tokens.rs`: admin tokens; `history.rs`: audit and drift events; `watch.rs`: [`Watcher`].
//! - `db.rs`: the two backends behind one API and the write transaction.
//!
//! Every write is one transaction that also writes its audit entry and bumps the generation
//! counter; a write that fails leaves nothing behind. Domain names are taken as the caller gives
//! them and must already be normalised (lowercase ASCII, A-labels, no trailing dot).
//!
//! # Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mtasts_store::Error> {
//! use mtasts_core::policy::Mode;
//! use mtasts_store::{Change, NewPolicy, Store, StoreOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let url = format!("sqlite:{}", dir.path().join("store.db").display());
//! let store = Store::open(&url, &StoreOptions::default()).await?;
//!
//! let policy = NewPolicy {
//!     text: "version: STSv1\r\nmode: testing\r\nmx: mail.example.com\r\nmax_age: 86400\r\n".into(),
//!     id: "20260101T000000".into(),
//!     mode: Mode::Testing,
//!     max_age: 86_400,
//!     mx: vec!["mail.example.com".into()],
//! };
//! let change = Change::new("cli", time::OffsetDateTime::now_utc());
//! store.add_domain("example.com", &policy, "testing", &change).await?;
//! let domain = store.domain("example.com").await?.expect("just added");
//! assert_eq!(domain.policy.id, "20260101T000000");
//! assert_eq!(store.audit(Some("example.com"), 10).await?[0].action, "domain.add");
//! # Ok(()) }
//! ```
#![warn(missing_docs, clippy::print_stdout)]

mod acme;
mod alerts;
mod certs;
mod crypto;
mod db;
mod dns;
mod domains;
mod error;
mod history;
mod hosts;
mod report_insert;
mod reports;
mod tokens;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

pub use acme::{AcmeDue, AcmeState, Challenge, ChallengeKind, Lease, OrderBudget};
pub use alerts::AlertState;
pub use certs::{CertSource, Certificate, NewCertificate, PrivateKeyPem};
pub use crypto::StoreKey;
pub use db::Migration;
pub use dns::DnsPublished;
pub use domains::{
    Delegation, HostedDomain, NewPolicy, Rollout, StoredPolicy, Transition, TransitionRecord,
};
pub use error::Error;
pub use history::{AuditEntry, DriftEvent, DriftObservation};
pub use hosts::HostCertificate;
pub use report_insert::PreparedReport;
pub use reports::{
    Arrival, DayTotal, Dkim, DkimVerdict, FailureTotal, Inserted, MAX_FAILURE_ROWS, MAX_LIST,
    MAX_REPORT_TEXT, ReportDetail, ReportFilter, ReporterTotal, StoredReport, Via,
};
pub use tokens::{AdminToken, NewToken, TokenScope, TokenSecret};
pub use watch::Watcher;

use crate::crypto::Sealer;
use crate::db::{Backend, Pools, Target, on_backend};

/// How to open a store. `Default` suits a single SQLite instance.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The key that seals private keys. Required for PostgreSQL; for SQLite, when `None`, a key
    /// file `PATH.key` beside the database is used (created with mode 0600 on first run).
    pub key: Option<StoreKey>,
    /// Most connections to open (PostgreSQL), or read connections (SQLite, which also keeps one
    /// writer).
    pub max_connections: u32,
    /// How long an SQLite statement waits for another process's write lock.
    pub busy_timeout: Duration,
    /// How long an operation waits for a free connection (or for PostgreSQL to answer a
    /// connect) before it fails: a store that went away is reported, not waited on forever.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            key: None,
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Who makes a change, when, and why: what the audit history records with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Who: e.g. `cli:alice`, `token:ops`, `checker`.
    pub actor: String,
    /// When (the caller's clock, so tests and the rollout machine can inject time).
    pub at: OffsetDateTime,
    /// Why, as the operator gave it (`--reason`).
    pub reason: Option<String>,
}

impl Change {
    /// A change by `actor` at `at`, with no reason given.
    pub fn new(actor: impl Into<String>, at: OffsetDateTime) -> Self {
        Self {
            actor: actor.into(),
            at,
            reason: None,
        }
    }

    /// The same change, with a reason.
    #[must_use]
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub(crate) fn at_unix(&self) -> i64 {
        self.at.unix_timestamp()
    }

    fn check(&self) -> Result<(), Error> {
        check_text("actor", &self.actor, 1, MAX_SHORT)?;
        if let Some(reason) = &self.reason {
            check_text("reason", reason, 0, MAX_REASON)?;
        }
        Ok(())
    }
}

/// Longest actor, state, kind or token name.
const MAX_SHORT: usize = 256;
/// Longest reason or drift detail.
const MAX_REASON: usize = 4096;

/// A handle on the store; cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    pools: Pools,
    sealer: Arc<Sealer>,
}

/// How many times [`Store::open`] tries a SQLite file that another process holds locked while
/// creating it.
const OPEN_ATTEMPTS: u32 = 8;

impl Store {
    /// Opens the store at `url` (`sqlite:PATH` or `postgres://...`), creating an SQLite file on
    /// first run, applies any pending migrations, and checks the sealing key against the one
    /// the store was first opened with.
    ///
    /// # Errors
    /// [`Error::UnsupportedUrl`]; [`Error::Database`] when the database cannot be reached;
    /// [`Error::Migrate`]; [`Error::KeyRequired`] for PostgreSQL without `options.key`;
    /// [`Error::KeyFile`], [`Error::KeyFilePermissions`], [`Error::KeyFileMissing`] for the
    /// SQLite key file; [`Error::WrongKey`] when the key is not the store's.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, Error> {
        let target = Target::parse(url)?;
        if matches!(target, Target::Postgres(_)) && options.key.is_none() {
            return Err(Error::KeyRequired);
        }
        // Processes opening a new SQLite file at the same moment can meet SQLITE_BUSY before
        // the busy timeout applies (switching the new file to WAL takes an exclusive lock):
        // such an open is tried again, a bounded number of times, with a growing pause.
        let mut attempt = 1;
        loop {
            match Self::open_target(&target, options).await {
                Err(e) if e.is_sqlite_busy() && attempt < OPEN_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "store open met a locked database; again");
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn open_target(target: &Target, options: &StoreOptions) -> Result<Self, Error> {
        let pools = Pools::connect(target, options).await?;
        let result = Self::open_pools(&pools, target, options).await;
        if result.is_err() {
            pools.close().await;
        }
        Ok(Self {
            sealer: Arc::new(result?),
            pools,
        })
    }

    async fn open_pools(
        pools: &Pools,
        target: &Target,
        options: &StoreOptions,
    ) -> Result<Sealer, Error> {
        pools.migrate().await?;
        let stored_check = on_backend!(pools.reader(), p =>
            sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT value FROM store_meta WHERE name = 'key_check'",
            )
            .fetch_optional(p)
            .await?
        );
        let key = match (&options.key, target) {
            (Some(key), _) => key.clone(),
            (None, Target::Sqlite(path)) => {
                crypto::load_or_create_key_file(&db::key_file_beside(path), stored_check.is_none())?
            }
            (None, Target::Postgres(_)) => return Err(Error::KeyRequired),
        };
        let sealer = Sealer::new(&key);
        let check = match stored_check {
            Some(check) => check,
            None => {
                // First open: record the key check. Two instances racing here both insert; the
                // first wins and the second is then checked against it like any later open.
                let mine = sealer.key_check()?;
                let mut tx = db::WriteTx::begin(pools).await?;
                on_backend!(&mut tx.tx, c => {
                    sqlx::query(
                        "INSERT INTO store_meta (name, value) VALUES ('key_check', $1) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(&mine)
                    .execute(&mut **c)
                    .await?;
                });
                tx.commit_unaudited().await?;
                on_backend!(pools.reader(), p =>
                    sqlx::query_scalar::<_, Vec<u8>>(
                        "SELECT value FROM store_meta WHERE name = 'key_check'",
                    )
                    .fetch_one(p)
                    .await?
                )
            }
        };
        if !sealer.verifies(&check) {
            return Err(Error::WrongKey);
        }
        Ok(sealer)
    }

    /// Which backend this store runs on: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.pools.inner {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// The change generation: a number every committed write raises. An instance that saw
    /// generation `g` and now reads another number must reload.
    ///
    /// # Errors
    /// [`Error::Database`].
    pub async fn generation(&self) -> Result<u64, Error> {
        let value: i64 = on_backend!(self.pools.reader(), p =>
            sqlx::query_scalar("SELECT value FROM store_generation WHERE id = 1")
                .fetch_one(p)
                .await?
        );
        Ok(u64::try_from(value).unwrap_or(0))
    }

    /// Records a setting the instances share (`name` under 64 bytes, `value` under 64 KiB), such
    /// as the rollout schedule `mtasts serve` runs with, so that `mtasts domain --store` applies
    /// the same gates. Not audited (configuration, not an operator's change to a domain), and
    /// no new generation (nothing served changes).
    ///
    /// # Errors
    /// [`Error::Invalid`]; [`Error::Database`].
    pub async fn put_setting(&self, name: &str, value: &str) -> Result<(), Error> {
        check_text("setting name", name, 1, 63)?;
        if value.len() > 64 * 1024 {
            return Err(Error::invalid("setting value", "at most 64 KiB"));
        }
        let key = format!("setting:{name}");
        let mut tx = db::WriteTx::begin(&self.pools).await?;
        on_backend!(&mut tx.tx, c => {
            sqlx::query(
                "INSERT INTO store_meta (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )
            .bind(&key)
            .bind(value.as_bytes())
            .execute(&mut **c)
            .await?;
        });
        tx.commit_quiet().await
    }

    /// A setting recorded by [`Store::put_setting`], if any.
    ///
    /// # Errors
    /// [`Error::Database`]; [`Error::Corrupt`] when it is not UTF-8.
    pub async fn setting(&self, name: &str) -> Result<Option<String>, Error> {
        let key = format!("setting:{name}");
        let value: Option<Vec<u8>> = on_backend!(self.pools.reader(), p =>
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = $1")
                .bind(&key)
                .fetch_optional(p)
                .await?
        );
        value
            .map(|v| {
                String::from_utf8(v).map_err(|_| Error::Corrupt {
                    what: format!("setting {name} is not UTF-8"),
                })
            })
            .transpose()
    }

    /// Closes every connection; other clones of this handle stop working.
    pub async fn close(&self) {
        self.pools.close().await;
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }
}

/// Applies the pending schema migrations at `url` and returns those applied now (empty when
/// the schema was up to date): what `mtasts store migrate` runs. Needs no sealing key.
///
/// # Errors
/// [`Error::UnsupportedUrl`], [`Error::Database`], [`Error::Migrate`] (also when the database
/// has migrations this build does not know: it is newer than this build).
pub async fn migrate(url: &str, options: &StoreOptions) -> Result<Vec<Migration>, Error> {
    let target = Target::parse(url)?;
    let pools = Pools::connect(&target, options).await?;
    let applied = pools.migrate().await;
    pools.close().await;
    applied
}

/// A time read from the store.
pub(crate) fn from_unix(what: &str, seconds: i64) -> Result<OffsetDateTime, Error> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| Error::Corrupt {
        what: format!("{what} {seconds} is not a time"),
    })
}

/// An error message from a stranger (a CA's problem detail, a DNS server's answer) made fit
/// to keep: control characters escaped (they would be refused, and the failure not recorded),
/// cut to a quarter of [`MAX_REASON`] characters; never empty.
pub(crate) fn clip_reason(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_REASON / 4) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if out.trim().is_empty() {
        out = "(no reason given)".into();
    }
    out
}

/// Checks a caller's text: length in bytes within `min..=max`, no control characters.
pub(crate) fn check_text(what: &'static str, s: &str, min: usize, max: usize) -> Result<(), Error> {
    if s.len() < min || s.len() > max {
        return Err(Error::invalid(
            what,
            format!("{} bytes, expected {min} to {max}", s.len()),
        ));
    }
    if s.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Error::invalid(what, "contains control characters"));
    }
    Ok(())
}

/// Checks a domain name the caller normalised: 1 to 253 bytes of lowercase letters, digits,
/// hyphens and dots, no empty label, no trailing dot.
pub(crate) fn check_domain(domain: &str) -> Result<(), Error> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "domain",
            format!(
                "{:?} is not a normalised domain name (lowercase A-labels, no trailing dot)",
                domain.chars().take(300).collect::<String>()
            ),
        ))
    }
}
