//! The domain operations on either target `mtasts domain` accepts: the store itself
//! (`--store URL`) or a running server's admin API (`--server URL` with a token). Both answer
//! the same JSON (the admin API's bodies) and fail with the same [`Failure`] (the admin API's
//! stable error codes), so the binary prints one shape whichever target it was given.

use hyper::Method;
use mtasts_core::policy::Mode;
use mtasts_core::rollout::Evidence;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::admin::client::{AdminClient, ClientError};
use crate::admin::error::ApiError;
use crate::domains::{AddDomain, DomainError, Domains, MxSource};

/// Why an operation failed, as the admin API would say it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The stable code (`not_found`, `not_ready`, `needs_force`, `unexplained_mx`,
    /// `store_unavailable`, `unreachable`, ...).
    pub code: String,
    /// What happened, in words.
    pub message: String,
    /// Data: the promotion blockers, the unexplained MX hosts, when removal is safe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// True when the rules refused the operation (gate, force, state), as opposed to the store
    /// or server being out of reach.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self.code.as_str(),
            "store_unavailable" | "internal" | "unreachable" | "timeout" | "bad_answer"
        )
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        // The message of the operation itself (it names the domain); the code and details as
        // the admin API gives them.
        let message = match &e {
            DomainError::Store(s) if s.is_unavailable() => {
                format!("the store cannot be reached: {s}")
            }
            other => other.to_string(),
        };
        let api = ApiError::from(e);
        Self {
            code: api.code.to_owned(),
            message,
            details: api.details,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::Api {
                code,
                message,
                details,
                ..
            } => Self {
                code,
                message,
                details,
            },
            ClientError::Connect(_) | ClientError::Url(_) | ClientError::Ca(_) => Self {
                code: "unreachable".into(),
                message,
                details: None,
            },
            ClientError::Timeout(_) => Self {
                code: "timeout".into(),
                message,
                details: None,
            },
            ClientError::Answer(_) => Self {
                code: "bad_answer".into(),
                message,
                details: None,
            },
        }
    }
}

/// Where the operations go.
#[derive(Debug)]
pub enum Target {
    /// The store, directly; `actor` is what the audit history records (`cli:<user>`).
    Store {
        /// The operations.
        domains: Domains,
        /// Who acts.
        actor: String,
    },
    /// A running server's admin API (the token's name is the actor).
    Server(AdminClient),
}

fn value(v: &impl Serialize) -> Result<Value, Failure> {
    serde_json::to_value(v).map_err(|e| Failure {
        code: "internal".into(),
        message: e.to_string(),
        details: None,
    })
}

fn path(domain: &str, tail: &str) -> Result<String, Failure> {
    Ok(AdminClient::domain_path(domain, tail)?)
}

fn with_reason(mut body: Value, force: bool, reason: Option<&str>) -> Value {
    if force {
        body["force"] = json!(true);
    }
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    body
}

impl Target {
    /// Adds a domain (see [`Domains::add`]).
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn add(&self, req: &AddDomain, now: OffsetDateTime) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, actor } => value(&domains.add(req, actor, now).await?),
            Self::Server(c) => {
                let mut body = json!({ "domain": req.domain });
                match &req.mx {
                    MxSource::Patterns(p) => body["mx"] = json!(p),
                    MxSource::Live { hosts, confirmed } => {
                        body["mx_hosts"] = json!(hosts);
                        body["confirm"] = json!(confirmed);
                    }
                }
                body["mode"] = json!(if req.mode == Mode::Enforce {
                    "enforce"
                } else {
                    "testing"
                });
                if let Some(a) = req.max_age {
                    body["max_age"] = json!(a);
                }
                body["delegation"] = json!(req.delegation.as_str());
                let body = with_reason(body, req.force.is_some(), req.force.as_deref());
                Ok(c.call(Method::POST, "/v1/domains", Some(&body)).await?)
            }
        }
    }

    /// Every domain the caller may see: `{"domains": [...]}`.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn list(&self) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, .. } => {
                Ok(json!({ "domains": value(&domains.list(|_| true).await?)? }))
            }
            Self::Server(c) => Ok(c.call(Method::GET, "/v1/domains", None).await?),
        }
    }

    /// One domain.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn show(&self, domain: &str) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, .. } => value(&domains.show(domain).await?),
            Self::Server(c) => Ok(c.call(Method::GET, &path(domain, "")?, None).await?),
        }
    }

    /// Changes the `mx` patterns and/or the `max_age` served.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn set(
        &self,
        domain: &str,
        mx: Option<&[String]>,
        max_age: Option<u32>,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, actor } => {
                value(&domains.set(domain, mx, max_age, actor, reason, now).await?)
            }
            Self::Server(c) => {
                let mut body = json!({});
                if let Some(mx) = mx {
                    body["mx"] = json!(mx);
                }
                if let Some(a) = max_age {
                    body["max_age"] = json!(a);
                }
                let body = with_reason(body, false, reason);
                Ok(c.call(Method::PATCH, &path(domain, "")?, Some(&body))
                    .await?)
            }
        }
    }

    /// Promotes a domain one step, on `evidence` (or forced, with a reason).
    ///
    /// # Errors
    /// [`Failure`]; `not_ready` with the blockers in `details`.
    pub async fn promote(
        &self,
        domain: &str,
        evidence: Option<&Evidence>,
        force: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, actor } => {
                value(&domains.promote(domain, evidence, force, actor, now).await?)
            }
            Self::Server(c) => {
                let mut body = with_reason(json!({}), force.is_some(), force);
                if let Some(e) = evidence {
                    body["evidence"] = value(e)?;
                }
                Ok(
                    c.call(Method::POST, &path(domain, "/promote")?, Some(&body))
                        .await?,
                )
            }
        }
    }

    /// Rolls a domain back to `testing`.
    ///
    /// # Errors
    /// [`Failure`].
    pub async fn rollback(
        &self,
        domain: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, actor } => {
                value(&domains.rollback(domain, reason, actor, now).await?)
            }
            Self::Server(c) => {
                let body = with_reason(json!({}), false, reason);
                Ok(
                    c.call(Method::POST, &path(domain, "/rollback")?, Some(&body))
                        .await?,
                )
            }
        }
    }

    /// Withdraws a domain (serves `mode: none` until removal is safe), then deletes it.
    ///
    /// # Errors
    /// [`Failure`]; `too_early` with `safe_at` in `details`.
    pub async fn remove(
        &self,
        domain: &str,
        force: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, actor } => {
                value(&domains.remove(domain, force, actor, now).await?)
            }
            Self::Server(c) => {
                let body = with_reason(json!({}), force.is_some(), force);
                Ok(c.call(Method::POST, &path(domain, "/remove")?, Some(&body))
                    .await?)
            }
        }
    }

    /// Installs a certificate for `mta-sts.<domain>`.
    ///
    /// # Errors
    /// [`Failure`]; `certificate` when it does not fit.
    pub async fn import_certificate(
        &self,
        domain: &str,
        chain_pem: &str,
        key_pem: &str,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Value, Failure> {
        match self {
            Self::Store { domains, actor } => value(
                &domains
                    .import_certificate(domain, chain_pem, key_pem, actor, reason, now)
                    .await?,
            ),
            Self::Server(c) => {
                let body = with_reason(
                    json!({ "chain_pem": chain_pem, "key_pem": key_pem }),
                    false,
                    reason,
                );
                Ok(
                    c.call(Method::PUT, &path(domain, "/certificate")?, Some(&body))
                        .await?,
                )
            }
        }
    }
}
