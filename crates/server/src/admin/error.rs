//! The admin API's one error shape: `{"error": {"code": "...", "message": "...", "details": ...}}`.
//!
//! `code` is stable (clients match on it); `message` is for people; `details` (optional) holds
//! data: the promotion blockers, the unexplained MX hosts, when removal is safe.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use mtasts_core::rollout::RolloutError;
use serde_json::{Value, json};

use crate::domains::DomainError;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: &'static str,
    /// What happened, in words.
    pub message: String,
    /// Data about it, when there is any.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    fn with(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401: no token, a malformed header or a wrong token (never says which).
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// 404: no such route, or a domain that is not hosted or not in the token's scope (the same
    /// answer, so a scoped token learns nothing about other domains).
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }

    /// The response.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut body = json!({ "code": self.code, "message": self.message });
        if let Some(d) = &self.details {
            body["details"] = d.clone();
        }
        let mut resp = super::api::json_response(self.status, &json!({ "error": body }));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        use mtasts_store::Error as S;
        let msg = e.to_string();
        match e {
            DomainError::NotFound(_) | DomainError::Store(S::UnknownDomain { .. }) => {
                Self::not_found()
            }
            DomainError::Store(S::DomainExists { .. }) => {
                Self::new(StatusCode::CONFLICT, "exists", msg)
            }
            DomainError::Store(S::StateChanged { .. }) => {
                Self::new(StatusCode::CONFLICT, "state_changed", msg)
            }
            DomainError::Store(S::Invalid { .. }) | DomainError::Invalid { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", msg)
            }
            DomainError::Store(ref s) if s.is_unavailable() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store cannot be reached; try again",
            ),
            DomainError::Store(_) | DomainError::Corrupt(_) => {
                tracing::error!(error = %msg, "admin API: store failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the store failed; see the server log",
                )
            }
            DomainError::Rollout(RolloutError::NotReady { blockers }) => {
                let details = json!({
                    "blockers": blockers,
                    "messages": blockers.iter().map(ToString::to_string).collect::<Vec<_>>(),
                });
                Self::new(StatusCode::CONFLICT, "not_ready", msg).with(details)
            }
            DomainError::Rollout(RolloutError::TooEarly { safe_at }) => {
                let at = safe_at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                Self::new(StatusCode::CONFLICT, "too_early", msg).with(json!({ "safe_at": at }))
            }
            DomainError::Rollout(RolloutError::Unchanged) => {
                Self::new(StatusCode::CONFLICT, "unchanged", msg)
            }
            DomainError::Rollout(RolloutError::Illegal { .. }) => {
                Self::new(StatusCode::CONFLICT, "illegal_transition", msg)
            }
            DomainError::Rollout(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", msg),
            DomainError::Unexplained(hosts) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unexplained_mx", msg)
                    .with(json!({ "hosts": hosts }))
            }
            DomainError::NeedsForce(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "needs_force", msg)
            }
            DomainError::Certificate(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "certificate", msg)
            }
        }
    }
}
