//! Certificates by ACME (RFC 8555) for every hosted `mta-sts.<domain>`, kept valid by the
//! server itself.
//!
//! - [`Engine`] (`engine.rs`): looks for due work in the store every `poll` (and when woken),
//!   checks that the name points at this server before ordering, takes the store's order lease
//!   (exactly one instance orders a name; the CA's order budget is shared by all), orders,
//!   answers the challenge, finalizes with a fresh key, and installs the chain: every instance
//!   then serves it. A failure is recorded with its reason and retried with jittered backoff;
//!   the certificate served meanwhile stays in service.
//! - [`Challenges`] (`challenge.rs`): answers HTTP-01 on port 80 and TLS-ALPN-01 (`acme-tls/1`)
//!   on 443, from this instance's memory or else from the store, so any instance can answer a
//!   validation another instance started.
//! - `client.rs`: the HTTP client instant-acme talks through (our trust roots, a time-out per
//!   request and a cap on every response body), and the account, kept sealed in the store.
//! - [`schedule`]: when to renew and how long to back off (pure).
//!
//! Renewal happens at `renew_at` (two thirds) of the certificate's lifetime. The CA's renewal
//! information (ARI, RFC 9773) is not asked for yet: Pebble 2.4, the CA of the tests, offers
//! none, and an untested path would be worse than none.

mod challenge;
mod client;
mod engine;
pub mod schedule;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use challenge::{ACME_TLS_ALPN, Challenges};
pub use engine::{Engine, IssueError, PREFLIGHT_RETRY_MAX};

use crate::config::secs;

/// The `[acme]` table. ACME is off unless `directory` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's directory URL (`--acme-directory`); `None`: no ACME.
    pub directory: Option<String>,
    /// A PEM file of roots trusted for the CA's own API, beside the Mozilla roots
    /// (`--acme-root`; Pebble's API certificate needs it).
    pub root: Option<PathBuf>,
    /// Contact e-mail addresses for the account (`--acme-contact`).
    pub contact: Vec<String>,
    /// The challenge types to use, preferred first: `http-01` (port 80), `tls-alpn-01` (443).
    /// A failed validation tries the next one at the next attempt.
    pub challenges: Vec<String>,
    /// The fraction of a certificate's lifetime after which it is renewed. Default 2/3.
    pub renew_at: f64,
    /// Seconds between looks for due work. Default 60.
    #[serde(deserialize_with = "secs")]
    pub poll: Duration,
    /// The first backoff after a failure, in seconds (doubled per failure, jittered). Default 60.
    #[serde(deserialize_with = "secs")]
    pub retry_min: Duration,
    /// The longest backoff, in seconds. Default 21,600 (6 h).
    #[serde(deserialize_with = "secs")]
    pub retry_max: Duration,
    /// Seconds one order may take from the first request to the installed certificate; the
    /// store lease is held a minute longer. Default 180.
    #[serde(deserialize_with = "secs")]
    pub order_timeout: Duration,
    /// Seconds one request to the CA may take. Default 30.
    #[serde(deserialize_with = "secs")]
    pub request_timeout: Duration,
    /// The order budget's window, in seconds. Default 10,800 (3 h, as Let's Encrypt counts).
    #[serde(deserialize_with = "secs")]
    pub rate_window: Duration,
    /// Most orders in any window, over every instance. Default 300 (Let's Encrypt's new
    /// orders per account per 3 h).
    pub rate_max_orders: u32,
    /// Orders in flight at once on this instance. Default 4.
    pub concurrency: usize,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: None,
            root: None,
            contact: Vec::new(),
            challenges: vec!["http-01".into(), "tls-alpn-01".into()],
            renew_at: 2.0 / 3.0,
            poll: Duration::from_secs(60),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
            order_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            rate_window: Duration::from_secs(3 * 3600),
            rate_max_orders: 300,
            concurrency: 4,
        }
    }
}

impl AcmeConfig {
    /// Whether ACME is on.
    pub fn enabled(&self) -> bool {
        self.directory.is_some()
    }

    /// Checks the values serde cannot.
    ///
    /// # Errors
    /// What is wrong, naming the option.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(d) = &self.directory
            && !d.starts_with("https://")
        {
            return Err(format!("acme.directory: {d:?} is not an https:// URL"));
        }
        if self.challenges.is_empty() {
            return Err("acme.challenges: name at least one of http-01, tls-alpn-01".into());
        }
        for c in &self.challenges {
            if mtasts_store::ChallengeKind::parse(c).is_none() {
                return Err(format!(
                    "acme.challenges: {c:?} is not http-01 or tls-alpn-01"
                ));
            }
        }
        if !(self.renew_at > 0.0 && self.renew_at < 1.0) {
            return Err("acme.renew_at: a fraction between 0 and 1 (exclusive)".into());
        }
        for (what, d) in [
            ("poll", self.poll),
            ("retry_min", self.retry_min),
            ("order_timeout", self.order_timeout),
            ("request_timeout", self.request_timeout),
            ("rate_window", self.rate_window),
        ] {
            if d.is_zero() {
                return Err(format!("acme.{what}: must be more than 0"));
            }
        }
        if self.retry_max < self.retry_min {
            return Err("acme.retry_max: must be at least acme.retry_min".into());
        }
        if self.rate_max_orders == 0 || self.concurrency == 0 {
            return Err("acme.rate_max_orders and acme.concurrency: must be at least 1".into());
        }
        for c in &self.contact {
            if c.is_empty() || c.contains(char::is_whitespace) || !c.contains('@') {
                return Err(format!("acme.contact: {c:?} is not an e-mail address"));
            }
        }
        Ok(())
    }

    /// The challenge kinds, preferred first.
    pub fn challenge_kinds(&self) -> Vec<mtasts_store::ChallengeKind> {
        self.challenges
            .iter()
            .filter_map(|c| mtasts_store::ChallengeKind::parse(c))
            .collect()
    }
}
