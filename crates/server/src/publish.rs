//! Publishing the TXT records of fully delegated domains in our zone by RFC 2136 update (issue
//! 12 §2b), in the order RFC 8461 §3 asks for: the new policy is served first, and the
//! `_mta-sts` id that announces it is updated after, so that a sender who sees the new id finds
//! the new policy.
//!
//! Every `poll` (and when woken by a store change) the [`Publisher`] compares, for each domain
//! delegated in full, the records it wants (`v=STSv1; id=<served id>`, and `v=TLSRPTv1;
//! rua=...` when `[hosting] tlsrpt_rua` is set) with what the zone holds (the store's
//! `dns_published`, written only after the authoritative server acknowledged). It updates a
//! domain only when this instance serves that policy already, and `settle` seconds after it was
//! published (the time other instances take to load it). A refused or unanswered update is
//! recorded with its reason (`domain show`), counted, and retried with jittered backoff until
//! the server accepts it. A removed domain's records are withdrawn from the zone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mtasts_store::{Change, Delegation, DnsPublished, Store};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::acme::schedule;
use crate::config::secs;
use crate::dnsupdate::{TsigKey, UpdateServer};
use crate::hosted::{HostedSet, POLICY_HOST_PREFIX};
use crate::hosting::{Hosting, sts_target, sts_value, tlsrpt_target, tlsrpt_value};

/// The `[dns_update]` table. Off unless `server` and `zone` are set.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsUpdateConfig {
    /// The authoritative server accepting updates (TCP), `IP:PORT`.
    pub server: Option<SocketAddr>,
    /// The zone we control, where fully delegated names point (`<d>._mta-sts.<zone>`).
    pub zone: Option<String>,
    /// The TSIG key's name; no key: unsigned updates (only for a server that allows them by
    /// address).
    pub key_name: Option<String>,
    /// The TSIG algorithm: `hmac-sha256` (default), `hmac-sha384`, `hmac-sha512`.
    pub key_algorithm: String,
    /// A file holding the TSIG secret in base64 (kept out of the configuration file).
    pub key_file: Option<PathBuf>,
    /// The TSIG secret in base64, when not in `key_file` (also `MTASTS_SERVE__DNS_UPDATE__KEY_SECRET`).
    pub key_secret: Option<String>,
    /// The TTL of the records published, in seconds. Default 300.
    pub ttl: u32,
    /// Seconds one update may take. Default 10.
    #[serde(deserialize_with = "secs")]
    pub timeout: Duration,
    /// Seconds between rounds. Default 30.
    #[serde(deserialize_with = "secs")]
    pub poll: Duration,
    /// Seconds after a policy is published before its id is (other instances load it
    /// meanwhile). Default 5.
    #[serde(deserialize_with = "secs")]
    pub settle: Duration,
    /// The first backoff after a refused update, in seconds (doubled, jittered). Default 10.
    #[serde(deserialize_with = "secs")]
    pub retry_min: Duration,
    /// The longest backoff, in seconds. Default 3600.
    #[serde(deserialize_with = "secs")]
    pub retry_max: Duration,
}

impl Default for DnsUpdateConfig {
    fn default() -> Self {
        Self {
            server: None,
            zone: None,
            key_name: None,
            key_algorithm: "hmac-sha256".into(),
            key_file: None,
            key_secret: None,
            ttl: 300,
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(30),
            settle: Duration::from_secs(5),
            retry_min: Duration::from_secs(10),
            retry_max: Duration::from_secs(3600),
        }
    }
}

impl std::fmt::Debug for DnsUpdateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsUpdateConfig")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("key_name", &self.key_name)
            .field("key_algorithm", &self.key_algorithm)
            .field("key_file", &self.key_file)
            .field(
                "key_secret",
                &self.key_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl DnsUpdateConfig {
    /// Whether updates are configured.
    pub fn enabled(&self) -> bool {
        self.server.is_some() && self.zone.is_some()
    }

    /// Checks what serde cannot.
    ///
    /// # Errors
    /// What is wrong, naming the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.server.is_some() != self.zone.is_some() {
            return Err("dns_update: server and zone go together".into());
        }
        if self.key_file.is_some() && self.key_secret.is_some() {
            return Err("dns_update: key_file or key_secret, not both".into());
        }
        if self.key_name.is_some() != (self.key_file.is_some() || self.key_secret.is_some()) {
            return Err(
                "dns_update: key_name and a secret (key_file or key_secret) go together".into(),
            );
        }
        if self.ttl == 0
            || self.timeout.is_zero()
            || self.poll.is_zero()
            || self.retry_min.is_zero()
        {
            return Err("dns_update: ttl, timeout, poll and retry_min must be more than 0".into());
        }
        if self.retry_max < self.retry_min {
            return Err("dns_update.retry_max: must be at least retry_min".into());
        }
        Ok(())
    }

    /// The update server, its key read and checked.
    ///
    /// # Errors
    /// The key file cannot be read, the key does not parse, the zone is not a name.
    pub fn update_server(&self) -> Result<Option<UpdateServer>, String> {
        let (Some(addr), Some(zone)) = (self.server, &self.zone) else {
            return Ok(None);
        };
        let secret = match (&self.key_file, &self.key_secret) {
            (Some(path), _) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!("dns_update.key_file: cannot read {}: {e}", path.display())
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, Some(s)) => Some(s.trim().to_owned()),
            (None, None) => None,
        };
        let key = match (&self.key_name, secret) {
            (Some(name), Some(secret)) => Some(
                TsigKey::parse(name, &self.key_algorithm, &secret)
                    .map_err(|e| format!("dns_update key: {e}"))?,
            ),
            _ => None,
        };
        UpdateServer::new(addr, zone, key, self.timeout)
            .map(Some)
            .map_err(|e| format!("dns_update: {e}"))
    }
}

/// Keeps the zone's TXT records in step with what is served (see the module docs).
pub struct Publisher {
    store: Store,
    server: UpdateServer,
    zone: String,
    hosting: Hosting,
    cfg: DnsUpdateConfig,
    hosted: HostedSet,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("server", &self.server.addr())
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Domains whose records the server accepted.
    pub published: usize,
    /// Updates refused or unanswered.
    pub failed: usize,
    /// Domains whose new policy this instance does not serve yet (their id waits).
    pub waiting: usize,
    /// Removed domains whose records were withdrawn.
    pub withdrawn: usize,
}

impl Publisher {
    /// A publisher to `server` for the zone `zone`, reading what is served from `hosted`.
    pub fn new(
        store: Store,
        server: UpdateServer,
        hosting: Hosting,
        cfg: DnsUpdateConfig,
        hosted: HostedSet,
    ) -> Self {
        let zone = cfg.zone.clone().unwrap_or_default();
        Self {
            store,
            server,
            zone,
            hosting,
            cfg,
            hosted,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Wakes the publisher for a round now (the snapshot changed).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Rounds every `poll` (or when woken) until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                r = self.round() => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "DNS update: the store cannot be read");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.cfg.poll) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// One pass over every fully delegated domain and every published row.
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn round(&self) -> Result<Round, mtasts_store::Error> {
        let now = OffsetDateTime::now_utc();
        let mut published: HashMap<String, DnsPublished> = self
            .store
            .dns_published_all()
            .await?
            .into_iter()
            .map(|p| (p.domain.clone(), p))
            .collect();
        let mut round = Round::default();
        let served = self.hosted.current();
        for d in self.store.domains().await? {
            if d.delegation != Delegation::Full {
                continue;
            }
            let have = published.remove(&d.name);
            let sts = sts_value(&d.policy.id);
            let tls = self.hosting.tlsrpt_rua.as_deref().map(tlsrpt_value);
            if let Some(p) = &have
                && p.sts_value.as_deref() == Some(sts.as_str())
                && p.tlsrpt_value == tls
            {
                continue;
            }
            if have.as_ref().is_some_and(|p| p.next_attempt > now) {
                continue;
            }
            // RFC 8461 §3: the new policy first. This instance must serve it, and the others
            // have had `settle` to load it.
            let host = format!("{POLICY_HOST_PREFIX}{}", d.name);
            let serving = served
                .get(&host)
                .and_then(|e| e.body.as_ref())
                .is_some_and(|b| b.as_ref() == d.policy.text.as_bytes());
            let settled = d.policy.published_at + self.cfg.settle <= now;
            if !serving || !settled {
                tracing::debug!(domain = %d.name, serving, settled, "DNS update: the id waits");
                round.waiting += 1;
                continue;
            }
            match self
                .update(&d.name, &sts, tls.as_deref(), have.as_ref())
                .await
            {
                Ok(()) => {
                    let change = Change::new("dns-update", OffsetDateTime::now_utc())
                        .because(format!("policy {} served", d.policy.id));
                    self.store
                        .dns_record_published(&d.name, Some(&sts), tls.as_deref(), &change)
                        .await?;
                    metrics::counter!("mtasts_dns_updates_total", "result" => "ok").increment(1);
                    tracing::info!(domain = %d.name, id = %d.policy.id, "DNS update: published");
                    round.published += 1;
                }
                Err(e) => {
                    self.failed(&d.name, have.as_ref(), &e).await?;
                    round.failed += 1;
                }
            }
        }
        // What is left is no longer hosted, or no longer delegated in full: withdraw it.
        for (domain, p) in published {
            if p.sts_value.is_none() && p.tlsrpt_value.is_none() {
                self.store.dns_forget(&domain).await?;
                continue;
            }
            if p.next_attempt > now {
                continue;
            }
            match self.withdraw(&domain).await {
                Ok(()) => {
                    tracing::info!(domain = %domain, "DNS update: records withdrawn");
                    self.store.dns_forget(&domain).await?;
                    round.withdrawn += 1;
                }
                Err(e) => {
                    self.failed(&domain, Some(&p), &e).await?;
                    round.failed += 1;
                }
            }
        }
        Ok(round)
    }

    async fn update(
        &self,
        domain: &str,
        sts: &str,
        tls: Option<&str>,
        have: Option<&DnsPublished>,
    ) -> Result<(), crate::dnsupdate::UpdateError> {
        let ttl = self.cfg.ttl;
        if have.and_then(|p| p.sts_value.as_deref()) != Some(sts) {
            self.server
                .replace_txt(&sts_target(domain, &self.zone), sts, ttl)
                .await?;
        }
        let tls_name = tlsrpt_target(domain, &self.zone);
        match tls {
            Some(v) if have.and_then(|p| p.tlsrpt_value.as_deref()) != Some(v) => {
                self.server.replace_txt(&tls_name, v, ttl).await?;
            }
            None if have.is_some_and(|p| p.tlsrpt_value.is_some()) => {
                self.server.delete_txt(&tls_name).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn withdraw(&self, domain: &str) -> Result<(), crate::dnsupdate::UpdateError> {
        self.server
            .delete_txt(&sts_target(domain, &self.zone))
            .await?;
        self.server
            .delete_txt(&tlsrpt_target(domain, &self.zone))
            .await
    }

    async fn failed(
        &self,
        domain: &str,
        have: Option<&DnsPublished>,
        e: &crate::dnsupdate::UpdateError,
    ) -> Result<(), mtasts_store::Error> {
        let failures = have.map_or(0, |p| p.failures).saturating_add(1);
        let wait = schedule::backoff(
            failures,
            self.cfg.retry_min,
            self.cfg.retry_max,
            schedule::jitter(),
        );
        let now = OffsetDateTime::now_utc();
        metrics::counter!("mtasts_dns_updates_total", "result" => "failed").increment(1);
        tracing::warn!(domain, failures, retry_in_s = wait.as_secs(), error = %e,
            "DNS update failed");
        self.store
            .dns_record_failed(domain, &e.to_string(), now + wait, now)
            .await
    }
}
