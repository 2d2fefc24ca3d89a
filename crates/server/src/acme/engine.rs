//! The ACME engine: due work from the store, one order per `mta-sts.<domain>`, the result
//! installed in the store for every instance to serve.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, OrderStatus, RetryPolicy,
};
use mtasts_net::dns::Resolver;
use mtasts_store::{
    AcmeDue, CertSource, Challenge, ChallengeKind, Change, Lease, NewCertificate, OrderBudget,
    PrivateKeyPem, Store,
};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::client::{CaClient, account, account_unknown, describe};
use super::{AcmeConfig, Challenges, schedule};
use crate::hosting::{Hosting, PointsElsewhere, points_at_us};

/// The longest wait before looking again at a name that did not point at this server (or
/// could not be looked up): only a DNS lookup is spent, never an order.
pub const PREFLIGHT_RETRY_MAX: Duration = Duration::from_secs(15 * 60);

/// Why one attempt at a certificate failed, in plain words (what `domain show` reports as
/// `last_error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The name does not point at this server: nothing was ordered (no CA rate limit spent).
    #[error("not ordered: {0}")]
    NotOurs(String),
    /// DNS could not be asked whether the name points at us: nothing was ordered.
    #[error("not ordered: {0}")]
    CouldNotLook(String),
    /// The CA refused, failed or could not be reached.
    #[error("{0}")]
    Ca(String),
    /// The CA could not validate the challenge.
    #[error("validation failed: {0}")]
    Validation(String),
    /// The CA issued something we cannot serve.
    #[error("the issued certificate cannot be used: {0}")]
    BadCertificate(String),
    /// The order took longer than `acme.order_timeout`.
    #[error("the order did not complete within {0} s")]
    Timeout(u64),
}

/// What one round did with one due domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Issued,
    Failed,
    /// Another instance holds the lease, or the CA's order budget is spent.
    Deferred,
}

/// Keeps every hosted domain's certificate valid (see the module docs of [`crate::acme`]).
pub struct Engine {
    store: Store,
    cfg: AcmeConfig,
    hosting: Hosting,
    resolver: Resolver,
    challenges: Challenges,
    holder: String,
    client: CaClient,
    account: tokio::sync::Mutex<Option<Account>>,
    wake: Arc<Notify>,
    budget_spent_until: Mutex<Option<OffsetDateTime>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("directory", &self.cfg.directory)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine on `store` for the CA of `cfg`, checking names against `hosting` with
    /// `resolver`, answering challenges through `challenges` (the hooks the server was given).
    ///
    /// # Errors
    /// `acme.root` cannot be read or holds no usable root.
    pub fn new(
        store: Store,
        cfg: AcmeConfig,
        hosting: Hosting,
        resolver: Resolver,
        challenges: Challenges,
    ) -> Result<Self, String> {
        let root = cfg
            .root
            .as_ref()
            .map(|p| {
                std::fs::read_to_string(p)
                    .map_err(|e| format!("acme.root: cannot read {}: {e}", p.display()))
            })
            .transpose()?;
        let client = CaClient::new(root.as_deref(), cfg.request_timeout)?;
        let holder = format!(
            "{}:{}:{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "mtasts".into()),
            std::process::id(),
            (schedule::jitter() * f64::from(u32::MAX)) as u32
        );
        Ok(Self {
            store,
            cfg,
            hosting,
            resolver,
            challenges,
            holder,
            client,
            account: tokio::sync::Mutex::new(None),
            wake: Arc::new(Notify::new()),
            budget_spent_until: Mutex::new(None),
        })
    }

    /// Wakes the engine for a round now (a domain was added).
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Rounds every `acme.poll` (or when woken) until `stop` resolves. An order in flight when
    /// the stop comes is dropped; its lease expires and another instance (or the next start)
    /// orders again.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = self.round() => {}
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.cfg.poll) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// One round: every domain due now, `acme.concurrency` at a time. Returns how many
    /// certificates were installed.
    pub async fn round(&self) -> usize {
        let now = OffsetDateTime::now_utc();
        if let Ok(until) = self.budget_spent_until.lock()
            && until.is_some_and(|u| u > now)
        {
            return 0;
        }
        let limit = u32::try_from(self.cfg.concurrency.saturating_mul(16)).unwrap_or(u32::MAX);
        let due = match self.store.acme_due(now, limit).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "ACME: cannot read the due work from the store");
                return 0;
            }
        };
        use futures_util::StreamExt;
        let outcomes: Vec<Outcome> = futures_util::stream::iter(due)
            .map(|d| self.attempt(d))
            .buffer_unordered(self.cfg.concurrency)
            .collect()
            .await;
        outcomes.iter().filter(|o| **o == Outcome::Issued).count()
    }

    async fn attempt(&self, due: AcmeDue) -> Outcome {
        let due = &due;
        let name = format!("mta-sts.{}", due.domain);
        let failed = |e: IssueError, leased: bool| async move {
            let failures = due.failures.saturating_add(1);
            // A name that does not point at us yet costs the CA nothing: look again within
            // PREFLIGHT_RETRY_MAX, so that fixing the record is noticed within minutes.
            let max = match e {
                IssueError::NotOurs(_) | IssueError::CouldNotLook(_) => {
                    self.cfg.retry_max.min(PREFLIGHT_RETRY_MAX)
                }
                _ => self.cfg.retry_max,
            };
            let wait = schedule::backoff(
                failures,
                self.cfg.retry_min.min(max),
                max,
                schedule::jitter(),
            );
            let now = OffsetDateTime::now_utc();
            let msg = e.to_string();
            tracing::warn!(domain = %due.domain, failures, retry_in_s = wait.as_secs(),
                error = %msg, "ACME: no certificate this time");
            metrics::counter!("mtasts_acme_failures_total", "kind" => kind_label(&e)).increment(1);
            let holder = leased.then_some(self.holder.as_str());
            if let Err(e) = self
                .store
                .acme_failed(&due.domain, holder, &msg, now + wait, now)
                .await
            {
                tracing::warn!(domain = %due.domain, error = %e, "ACME: cannot record the failure");
            }
            Outcome::Failed
        };
        match points_at_us(&self.resolver, &name, &self.hosting).await {
            Ok(()) => {}
            Err(PointsElsewhere::Wrong(why)) => {
                return failed(IssueError::NotOurs(why), false).await;
            }
            Err(e @ PointsElsewhere::CouldNotLook(_)) => {
                return failed(IssueError::CouldNotLook(e.to_string()), false).await;
            }
        }
        let directory = self.cfg.directory.as_deref().unwrap_or_default();
        let budget = OrderBudget {
            directory,
            window: self.cfg.rate_window,
            max_orders: self.cfg.rate_max_orders,
        };
        let lease_for = self.cfg.order_timeout + Duration::from_secs(60);
        let now = OffsetDateTime::now_utc();
        match self
            .store
            .acme_take_lease(&due.domain, &self.holder, now, lease_for, &budget)
            .await
        {
            Ok(Lease::Taken) => {}
            Ok(Lease::Busy) => return Outcome::Deferred,
            Ok(Lease::RateLimited { until }) => {
                tracing::info!(directory, %until, "ACME: the CA's order budget is spent; waiting");
                metrics::counter!("mtasts_acme_rate_limited_total").increment(1);
                if let Ok(mut u) = self.budget_spent_until.lock() {
                    *u = Some(until);
                }
                return Outcome::Deferred;
            }
            Err(e) => {
                tracing::warn!(domain = %due.domain, error = %e, "ACME: cannot take the lease");
                return Outcome::Deferred;
            }
        }
        let started = Instant::now();
        let order = tokio::time::timeout(self.cfg.order_timeout, self.order(&name, due.failures));
        let result = match order.await {
            Ok(r) => r,
            Err(_) => Err(IssueError::Timeout(self.cfg.order_timeout.as_secs())),
        };
        let (cert, renewal) = match result {
            Ok(issued) => issued,
            Err(e) => return failed(e, true).await,
        };
        let change =
            Change::new("acme", OffsetDateTime::now_utc()).because(if due.not_after.is_some() {
                "renewed"
            } else {
                "first certificate"
            });
        match self
            .store
            .acme_issued(&due.domain, &self.holder, &cert, renewal, &change)
            .await
        {
            Ok(()) => {
                metrics::counter!("mtasts_acme_issued_total").increment(1);
                metrics::histogram!("mtasts_acme_order_seconds")
                    .record(started.elapsed().as_secs_f64());
                tracing::info!(domain = %due.domain, not_after = %cert.not_after,
                    next_renewal = %renewal, seconds = started.elapsed().as_secs_f64(),
                    "ACME: certificate installed");
                Outcome::Issued
            }
            Err(e) => {
                tracing::warn!(domain = %due.domain, error = %e, "ACME: cannot install the certificate");
                failed(IssueError::Ca(format!("the store: {e}")), true).await
            }
        }
    }

    async fn account(&self, recreate: bool) -> Result<Account, IssueError> {
        let mut cached = self.account.lock().await;
        if !recreate && let Some(a) = cached.as_ref() {
            return Ok(a.clone());
        }
        let a = account(&self.store, &self.cfg, &self.client, recreate)
            .await
            .map_err(IssueError::Ca)?;
        *cached = Some(a.clone());
        Ok(a)
    }

    /// One order for `name`, from the first request to the checked chain and its key, and the
    /// renewal time.
    async fn order(
        &self,
        name: &str,
        failures: u32,
    ) -> Result<(NewCertificate, OffsetDateTime), IssueError> {
        let ca = |e: instant_acme::Error| IssueError::Ca(describe(&e));
        let ids = [Identifier::Dns(name.to_owned())];
        let mut account = self.account(false).await?;
        let mut order = match account.new_order(&NewOrder::new(&ids)).await {
            Err(e) if account_unknown(&e) => {
                account = self.account(true).await?;
                account.new_order(&NewOrder::new(&ids)).await.map_err(ca)?
            }
            other => other.map_err(ca)?,
        };
        let kinds = self.cfg.challenge_kinds();
        let start = usize::try_from(failures).unwrap_or(0) % kinds.len().max(1);
        let expires = OffsetDateTime::now_utc() + self.cfg.order_timeout;
        let mut tokens = Vec::new();
        let set_up = async {
            let mut authzs = order.authorizations();
            while let Some(authz) = authzs.next().await {
                let mut authz = authz.map_err(ca)?;
                match authz.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    other => {
                        return Err(IssueError::Validation(format!(
                            "the authorization for {name} is {other:?}"
                        )));
                    }
                }
                let offered: Vec<ChallengeKind> = kinds
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(kinds.len())
                    .copied()
                    .filter(|k| authz.challenges.iter().any(|c| c.r#type == acme_type(*k)))
                    .collect();
                let Some(kind) = offered.first().copied() else {
                    return Err(IssueError::Ca(format!(
                        "the CA offers none of the configured challenges ({})",
                        self.cfg.challenges.join(", ")
                    )));
                };
                let mut challenge = authz
                    .challenge(acme_type(kind))
                    .ok_or_else(|| IssueError::Ca("the challenge vanished".into()))?;
                let c = Challenge {
                    token: challenge.token.clone(),
                    name: name.to_owned(),
                    kind,
                    key_authorization: challenge.key_authorization().as_str().to_owned(),
                    expires_at: expires,
                };
                self.store
                    .put_challenge(&c)
                    .await
                    .map_err(|e| IssueError::Ca(format!("the store: {e}")))?;
                tokens.push(c.token.clone());
                self.challenges.insert(c);
                tracing::debug!(name, kind = kind.as_str(), "ACME: challenge ready");
                challenge.set_ready().await.map_err(ca)?;
            }
            Ok(())
        };
        let set_up: Result<(), IssueError> = set_up.await;
        let result = match set_up {
            Ok(()) => self.finish(&mut order, name).await,
            Err(e) => Err(e),
        };
        let now = OffsetDateTime::now_utc();
        for t in &tokens {
            self.challenges.remove(t);
            if let Err(e) = self.store.delete_challenge(t, now).await {
                tracing::debug!(error = %e, "ACME: challenge left to expire in the store");
            }
        }
        result
    }

    async fn finish(
        &self,
        order: &mut instant_acme::Order,
        name: &str,
    ) -> Result<(NewCertificate, OffsetDateTime), IssueError> {
        let ca = |e: instant_acme::Error| IssueError::Ca(describe(&e));
        let retry = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(self.cfg.order_timeout);
        match order.poll_ready(&retry).await {
            Ok(OrderStatus::Ready) => {}
            Ok(_) => return Err(IssueError::Validation(validation_errors(order).await)),
            Err(instant_acme::Error::Api(p)) => {
                let mut why = describe(&instant_acme::Error::Api(p));
                let more = validation_errors(order).await;
                if !more.is_empty() {
                    why = format!("{why}; {more}");
                }
                return Err(IssueError::Validation(why));
            }
            Err(e) => return Err(ca(e)),
        }
        let key =
            rcgen::KeyPair::generate().map_err(|e| IssueError::BadCertificate(e.to_string()))?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()])
            .map_err(|e| IssueError::BadCertificate(e.to_string()))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| IssueError::BadCertificate(e.to_string()))?;
        order.finalize_csr(csr.der()).await.map_err(ca)?;
        let chain = order.poll_certificate(&retry).await.map_err(ca)?;
        let key_pem = key.serialize_pem();
        let domain = name
            .strip_prefix(crate::hosted::POLICY_HOST_PREFIX)
            .unwrap_or(name);
        let (not_before, not_after) = check_chain(domain, &chain, &key_pem)?;
        let renewal = schedule::renewal_time(not_before, not_after, self.cfg.renew_at);
        Ok((
            NewCertificate {
                chain_pem: chain,
                key: PrivateKeyPem::new(key_pem),
                not_after,
                source: CertSource::Acme,
            },
            renewal,
        ))
    }
}

fn acme_type(kind: ChallengeKind) -> ChallengeType {
    match kind {
        ChallengeKind::Http01 => ChallengeType::Http01,
        ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

fn kind_label(e: &IssueError) -> &'static str {
    match e {
        IssueError::NotOurs(_) => "not_ours",
        IssueError::CouldNotLook(_) => "dns",
        IssueError::Ca(_) => "ca",
        IssueError::Validation(_) => "validation",
        IssueError::BadCertificate(_) => "certificate",
        IssueError::Timeout(_) => "timeout",
    }
}

/// What the CA said about each failed challenge of `order`, in one line.
async fn validation_errors(order: &mut instant_acme::Order) -> String {
    let mut out = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(Ok(mut authz)) = authzs.next().await {
        if let Ok(state) = authz.refresh().await {
            for c in &state.challenges {
                if let Some(p) = &c.error {
                    out.push(format!(
                        "{:?}: {}",
                        c.r#type,
                        describe(&instant_acme::Error::Api(p.clone()))
                    ));
                }
            }
        }
    }
    if out.is_empty() {
        "the CA marked the order invalid without saying why".into()
    } else {
        out.join("; ")
    }
}

/// Checks that `chain_pem` is a chain whose leaf names `mta-sts.<domain>` and fits `key_pem`
/// ([`crate::domains::check_certificate`], as for an import); returns the leaf's validity.
fn check_chain(
    domain: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<(OffsetDateTime, OffsetDateTime), IssueError> {
    let now = OffsetDateTime::now_utc();
    crate::domains::check_certificate(domain, chain_pem, key_pem, now)
        .map(|c| (c.not_before, c.not_after))
        .map_err(|e| IssueError::BadCertificate(e.to_string()))
}
