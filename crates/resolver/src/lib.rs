//! The sender side of MTA-STS (RFC 8461) for Postfix.
//!
//! Postfix asks, per next-hop domain, which TLS policy applies (`smtp_tls_policy_maps`); this
//! crate answers over the socketmap and tcp_table protocols ([`proto`]) from a policy cache
//! that is refreshed in the background, so no cached answer ever waits on the network.
//!
//! The protocol servers only know the [`Handler`] trait: one lookup in, one [`Reply`] out.
//! [`daemon::run`] is the whole daemon as one call: configuration in, listeners, cache tiers,
//! refresh, metrics, reload and drain inside.

pub mod cache_file;
pub mod cached;
pub mod config;
pub mod daemon;
pub mod discover;
pub mod engine;
pub mod explain;
pub mod flags;
pub mod key;
pub mod metrics;
pub mod proto;
pub mod redis_tier;
pub mod reply;
mod slots;
pub mod stats;

pub use engine::{Engine, Settings, Zone};
/// The network environment every service takes ([`config::Config::network`] builds it).
pub use mtasts_net::env;
/// The reload/stop life cycle shared by every service ([`daemon::run`] takes its [`service::Shutdown`]).
pub use mtasts_net::service;

use std::future::Future;

/// One answer to a table lookup, independent of the wire protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Found: the policy text (`secure match=...`, never empty).
    Ok(String),
    /// Not found: Postfix goes on with the next table, then its main.cf default.
    NotFound,
    /// A temporary error: Postfix defers the mail and tries again later.
    Temp(String),
    /// A time-out (socketmap only; tcp_table has no such status and sends it as a temporary error).
    Timeout(String),
    /// A permanent (configuration) error: Postfix defers the mail and logs a configuration problem.
    Perm(String),
}

/// What the protocol servers call for each request.
pub trait Handler: Send + Sync + 'static {
    /// Answers one lookup of `key` in the table `name` (the socketmap name; for tcp_table, the
    /// name configured on the listener).
    fn lookup(&self, name: &str, key: &str) -> impl Future<Output = Reply> + Send;
}
