//! The store's one error type.

use std::io;
use std::path::PathBuf;

/// Why a store operation failed. Database trouble (unreachable, locked, constraint) is
/// [`Error::Database`]; everything else names what was wrong with the request or the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is neither `sqlite:PATH` nor `postgres://...` (a password in it is not shown).
    #[error("store URL {url:?} is neither sqlite:PATH nor postgres://...")]
    UnsupportedUrl {
        /// The URL, password replaced by `***`.
        url: String,
    },
    /// The database could not be reached or refused a statement.
    #[error("store database: {source}")]
    Database {
        /// What sqlx reported.
        #[from]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date (or the database is newer than this build).
    #[error("store schema migration: {source}")]
    Migrate {
        /// What sqlx reported.
        #[from]
        source: sqlx::migrate::MigrateError,
    },
    /// A PostgreSQL store was opened without a configured key.
    #[error(
        "a PostgreSQL store needs an encryption key in the configuration: several instances share \
         the database and must share the key that seals its private keys (a key file beside the \
         database is made only for SQLite); generate one with `openssl rand -hex 32`"
    )]
    KeyRequired,
    /// The configured key is malformed.
    #[error("invalid store key: {why}")]
    InvalidKey {
        /// What is wrong with it.
        why: &'static str,
    },
    /// The key file could not be read or written.
    #[error("store key file {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The key file may be read by others.
    #[error(
        "store key file {} has mode {mode:o}: it must be readable by its owner only (chmod 600)",
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The store already seals keys but its key file is gone.
    #[error(
        "the store already holds sealed data but its key file {} is missing: restore it (or \
         configure the key); a new key could not open what is stored",
        path.display()
    )]
    KeyFileMissing {
        /// Where the key file should be.
        path: PathBuf,
    },
    /// The key given is not the key the store's data was sealed with.
    #[error(
        "the store's private keys were sealed with a different key than the one configured (or \
         in the key file)"
    )]
    WrongKey,
    /// A sealed private key does not open: tampered with, or copied from another domain's row.
    #[error("the private key stored for {domain} does not decrypt (altered or misplaced)")]
    Unseal {
        /// The domain whose key it is.
        domain: String,
    },
    /// The domain is not hosted.
    #[error("{domain} is not a hosted domain")]
    UnknownDomain {
        /// The domain.
        domain: String,
    },
    /// The domain is hosted already.
    #[error("{domain} is already hosted")]
    DomainExists {
        /// The domain.
        domain: String,
    },
    /// The rollout state is not what the caller decided from: someone else changed it meanwhile.
    #[error("the rollout state of {domain} is {actual:?}, not {expected:?}: it changed meanwhile")]
    StateChanged {
        /// The domain.
        domain: String,
        /// The state the caller expected.
        expected: String,
        /// The state it is in.
        actual: String,
    },
    /// An admin token of that name exists already.
    #[error("an admin token named {name:?} exists already")]
    TokenExists {
        /// The name.
        name: String,
    },
    /// No admin token has that name.
    #[error("no admin token is named {name:?}")]
    UnknownToken {
        /// The name.
        name: String,
    },
    /// An argument is out of bounds or malformed.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The database holds a value this build cannot read.
    #[error("the store holds a value this build cannot read: {what}")]
    Corrupt {
        /// What it is.
        what: String,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            why: why.into(),
        }
    }

    /// SQLite answered "database is locked" (`SQLITE_BUSY`, `SQLITE_LOCKED`): another
    /// connection holds the lock.
    pub(crate) fn is_sqlite_busy(&self) -> bool {
        match self {
            Self::Database {
                source: sqlx::Error::Database(d),
            } => matches!(d.code().as_deref(), Some("5" | "6" | "261" | "517")),
            _ => false,
        }
    }

    /// Whether the database could not be reached or did not answer in time: a caller serving
    /// from memory keeps serving and tries again later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Database {
                source: sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            }
        )
    }
}

/// Whether `e` is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
