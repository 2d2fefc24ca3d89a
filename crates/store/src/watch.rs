//! Learning that another instance (or process) changed the store.
//!
//! Every committed write raises the generation counter. On PostgreSQL it also sends a NOTIFY on
//! [`NOTIFY_CHANNEL`] at commit, so a [`Watcher`] hears of it at once; polling the counter every
//! `poll` interval backs that up (a notification sent while the listener was reconnecting is
//! lost) and is all SQLite uses.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::db::{Backend, NOTIFY_CHANNEL};
use crate::{Error, Store};

/// Waits for the store's generation to change.
#[derive(Debug)]
pub struct Watcher {
    store: Store,
    seen: u64,
    poll: Duration,
    listener: Option<PgListener>,
}

impl Store {
    /// A watcher that reports generations other than `seen` (the one the caller loaded),
    /// polling every `poll` (at least 10 ms) and, on PostgreSQL, listening for notifications.
    pub fn watch(&self, seen: u64, poll: Duration) -> Watcher {
        Watcher {
            store: self.clone(),
            seen,
            poll: poll.max(Duration::from_millis(10)),
            listener: None,
        }
    }
}

impl Watcher {
    /// Waits until the generation differs from the last one seen and returns it. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Database`] when the store cannot be read: the caller keeps what it has and calls
    /// again later (the watcher reconnects by itself).
    pub async fn changed(&mut self) -> Result<u64, Error> {
        loop {
            let now = self.store.generation().await?;
            if now != self.seen {
                self.seen = now;
                return Ok(now);
            }
            self.wait().await;
        }
    }

    /// The generation last reported (or given at creation).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Waits for a notification or the poll interval, whichever comes first.
    async fn wait(&mut self) {
        let Backend::Postgres(pool) = &self.store.pools.inner else {
            tokio::time::sleep(self.poll).await;
            return;
        };
        if self.listener.is_none() {
            // Listen before the next generation read, so no change falls between the two.
            match PgListener::connect_with(pool).await {
                Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => {
                        self.listener = Some(listener);
                        return;
                    }
                    Err(e) => tracing::debug!(error = %e, "store LISTEN failed; polling"),
                },
                Err(e) => tracing::debug!(error = %e, "store listener connect failed; polling"),
            }
            tokio::time::sleep(self.poll).await;
            return;
        }
        let Some(listener) = self.listener.as_mut() else {
            return;
        };
        match tokio::time::timeout(self.poll, listener.try_recv()).await {
            Err(_) | Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) | Ok(Err(_)) => {
                // The connection was lost: notifications may have been missed. Reconnect on the
                // next wait; the generation read in between catches up.
                self.listener = None;
            }
        }
    }
}
