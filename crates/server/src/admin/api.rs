//! The routes and their handlers. [`ROUTES`] is the one table the router matches and the
//! OpenAPI test compares with `docs/openapi.json`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use mtasts_core::policy::Mode;
use mtasts_core::rollout::Evidence;
use mtasts_store::AdminToken;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AdminLimits, Clock};
use crate::domains::{AddDomain, Domains, MxSource, normalize_domain};

/// Every route: method, path pattern (`{domain}`, `{id}`: one path segment), whether it needs a
/// token. A literal route comes before a pattern that would also match it.
pub const ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/health", false),
    ("GET", "/metrics", false),
    ("GET", "/openapi.json", false),
    ("GET", "/v1/domains", true),
    ("POST", "/v1/domains", true),
    ("GET", "/v1/domains/{domain}", true),
    ("PATCH", "/v1/domains/{domain}", true),
    ("POST", "/v1/domains/{domain}/promote", true),
    ("POST", "/v1/domains/{domain}/rollback", true),
    ("POST", "/v1/domains/{domain}/remove", true),
    ("PUT", "/v1/domains/{domain}/certificate", true),
    ("GET", "/v1/domains/{domain}/audit", true),
    ("GET", "/v1/reports", true),
    ("GET", "/v1/reports/summary", true),
    ("GET", "/v1/reports/readiness", true),
    ("GET", "/v1/reports/{id}", true),
];

/// Longest bearer secret looked up (ours are 71 bytes); longer ones are refused unread.
const MAX_SECRET: usize = 256;
/// Most audit entries returned.
const AUDIT_LIMIT: u32 = 100;

pub(super) struct State {
    pub(super) domains: Domains,
    pub(super) limits: AdminLimits,
    pub(super) metrics: Option<PrometheusHandle>,
    pub(super) clock: Clock,
    pub(super) serving: Option<super::Serving>,
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

fn ok(status: StatusCode, body: &impl serde::Serialize) -> Result<Response<Full<Bytes>>, ApiError> {
    let value = serde_json::to_value(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(json_response(status, &value))
}

/// Matches `path` against the route patterns: the index of the route and the `{domain}`
/// segment, or which methods the path allows when the method does not match.
fn route(method: &Method, path: &str) -> Result<(usize, Option<String>), Vec<&'static str>> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut allowed = Vec::new();
    // Once a literal route matched the path (`/v1/reports/summary`), a pattern (`{id}`) that
    // would also match it is not that path.
    let mut literal = false;
    for (i, (m, pattern, _)) in ROUTES.iter().enumerate() {
        if literal && pattern.contains('{') {
            continue;
        }
        let pat: Vec<&str> = pattern.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut domain = None;
        let matched = pat.iter().zip(&segs).all(|(p, s)| {
            if p.starts_with('{') {
                domain = Some((*s).to_owned());
                !s.is_empty()
            } else {
                p == s
            }
        });
        if matched {
            if method.as_str() == *m {
                return Ok((i, domain));
            }
            allowed.push(*m);
            literal |= !pattern.contains('{');
        }
    }
    Err(allowed)
}

pub(super) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (label, result) = match route(req.method(), req.uri().path()) {
        Ok((i, domain)) => {
            let label = ROUTES[i].1;
            let writes = req.method() != Method::GET;
            // The work runs in its own task: past the timeout the client is answered, but a
            // write under way is never cut between its commit and its answer, and the answer
            // says it may have been applied.
            let st = Arc::clone(&state);
            let work = tokio::spawn(async move { dispatch(&st, i, domain, req).await });
            let result = match tokio::time::timeout(state.limits.request_timeout, work).await {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the request failed; see the server log",
                )),
                Err(_) if writes => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long; the change may still be applied: read the domain back before trying again",
                )),
                Err(_) => Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "timeout",
                    "the request took too long",
                )),
            };
            (label, result)
        }
        Err(allowed) if allowed.is_empty() => ("unknown", Err(ApiError::not_found())),
        Err(allowed) => {
            let mut r = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("allowed: {}", allowed.join(", ")),
            )
            .response();
            if let Ok(v) = header::HeaderValue::from_str(&allowed.join(", ")) {
                r.headers_mut().insert(header::ALLOW, v);
            }
            ("unknown", Ok(r))
        }
    };
    let resp = result.unwrap_or_else(|e| e.response());
    metrics::counter!(
        "mtasts_admin_requests_total",
        "route" => label,
        "status" => resp.status().as_u16().to_string()
    )
    .increment(1);
    Ok(resp)
}

async fn authenticate(state: &State, req: &Request<Incoming>) -> Result<AdminToken, ApiError> {
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_SECRET)
        .ok_or_else(ApiError::unauthorized)?;
    match state.domains.store().authenticate(secret).await {
        Ok(Some(token)) => Ok(token),
        Ok(None) => Err(ApiError::unauthorized()),
        Err(e) => Err(crate::domains::DomainError::from(e).into()),
    }
}

/// The normalised domain when the token may act on it; 404 otherwise (as for an unhosted one).
fn scoped(token: &AdminToken, raw: Option<String>) -> Result<String, ApiError> {
    let d = raw
        .and_then(|r| normalize_domain(&r).ok())
        .ok_or_else(ApiError::not_found)?;
    if token.scope.allows(&d) {
        Ok(d)
    } else {
        Err(ApiError::not_found())
    }
}

async fn body<T: DeserializeOwned>(state: &State, req: Request<Incoming>) -> Result<T, ApiError> {
    let max = state.limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is limited to {max} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        state.limits.request_timeout,
        Limited::new(req.into_body(), max).collect(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    })?;
    let bytes = read
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "the body could not be read",
                )
            }
        })?
        .to_bytes();
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not the JSON expected: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    domain: String,
    mx: Option<Vec<String>>,
    mx_hosts: Option<Vec<String>>,
    #[serde(default)]
    confirm: Vec<String>,
    #[serde(default)]
    mode: Option<String>,
    max_age: Option<u32>,
    #[serde(default)]
    force: bool,
    reason: Option<String>,
    delegation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    mx: Option<Vec<String>>,
    max_age: Option<u32>,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    evidence: Option<Evidence>,
    #[serde(default)]
    force: bool,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    force: bool,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CertBody {
    chain_pem: String,
    key_pem: String,
    reason: Option<String>,
}

/// The `--force --reason` pair: a reason is required with force.
fn force(force: bool, reason: Option<&str>) -> Result<Option<String>, ApiError> {
    match (force, reason) {
        (false, _) => Ok(None),
        (true, Some(r)) if !r.trim().is_empty() => Ok(Some(r.to_owned())),
        (true, _) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "needs_force",
            "force needs a reason",
        )),
    }
}

async fn dispatch(
    state: &State,
    route: usize,
    domain: Option<String>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (_, path, needs_token) = ROUTES[route];
    if !needs_token {
        return match path {
            "/health" => Ok(health(state).await),
            "/metrics" => match &state.metrics {
                Some(h) => {
                    let mut r = Response::new(Full::new(Bytes::from(h.render())));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(
                            "text/plain; version=0.0.4; charset=utf-8",
                        ),
                    );
                    Ok(r)
                }
                None => Err(ApiError::not_found()),
            },
            _ => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    super::openapi::DOCUMENT.as_bytes(),
                )));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                Ok(r)
            }
        };
    }
    let token = authenticate(state, &req).await?;
    let actor = format!("token:{}", token.name);
    let now = (state.clock)();
    let ops = &state.domains;
    let method = req.method().clone();
    match (method, path) {
        (Method::GET, "/v1/domains") => {
            let list = ops.list(|d| token.scope.allows(d)).await?;
            ok(StatusCode::OK, &json!({ "domains": list }))
        }
        (Method::POST, "/v1/domains") => {
            let b: AddBody = body(state, req).await?;
            let name = normalize_domain(&b.domain)?;
            if !token.scope.allows(&name) {
                return Err(ApiError::not_found());
            }
            let mx = match (b.mx, b.mx_hosts) {
                (Some(p), None) => MxSource::Patterns(p),
                (None, Some(hosts)) => MxSource::Live {
                    hosts,
                    confirmed: b.confirm,
                },
                _ => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid",
                        "give exactly one of mx (patterns) and mx_hosts (live MX hosts)",
                    ));
                }
            };
            let mode = match b.mode.as_deref() {
                None | Some("testing") => Mode::Testing,
                Some("enforce") => Mode::Enforce,
                Some(_) => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid",
                        "mode is testing or enforce",
                    ));
                }
            };
            let delegation = match b.delegation.as_deref() {
                None => mtasts_store::Delegation::Host,
                Some(d) => mtasts_store::Delegation::parse(d).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "invalid",
                        "delegation is host or full",
                    )
                })?,
            };
            let req = AddDomain {
                domain: name,
                mx,
                mode,
                max_age: b.max_age,
                force: force(b.force, b.reason.as_deref())?,
                delegation,
            };
            ok(StatusCode::CREATED, &ops.add(&req, &actor, now).await?)
        }
        (Method::GET, "/v1/domains/{domain}") => {
            let d = scoped(&token, domain)?;
            ok(StatusCode::OK, &ops.show(&d).await?)
        }
        (Method::PATCH, "/v1/domains/{domain}") => {
            let d = scoped(&token, domain)?;
            let b: SetBody = body(state, req).await?;
            let out = ops
                .set(
                    &d,
                    b.mx.as_deref(),
                    b.max_age,
                    &actor,
                    b.reason.as_deref(),
                    now,
                )
                .await?;
            ok(StatusCode::OK, &out)
        }
        (Method::POST, "/v1/domains/{domain}/promote") => {
            let d = scoped(&token, domain)?;
            let b: PromoteBody = body(state, req).await?;
            let f = force(b.force, b.reason.as_deref())?;
            let out = ops
                .promote(&d, b.evidence.as_ref(), f.as_deref(), &actor, now)
                .await?;
            ok(StatusCode::OK, &out)
        }
        (Method::POST, "/v1/domains/{domain}/rollback") => {
            let d = scoped(&token, domain)?;
            let b: ReasonBody = body(state, req).await?;
            ok(
                StatusCode::OK,
                &ops.rollback(&d, b.reason.as_deref(), &actor, now).await?,
            )
        }
        (Method::POST, "/v1/domains/{domain}/remove") => {
            let d = scoped(&token, domain)?;
            let b: ReasonBody = body(state, req).await?;
            let f = force(b.force, b.reason.as_deref())?;
            ok(
                StatusCode::OK,
                &ops.remove(&d, f.as_deref(), &actor, now).await?,
            )
        }
        (Method::PUT, "/v1/domains/{domain}/certificate") => {
            let d = scoped(&token, domain)?;
            let b: CertBody = body(state, req).await?;
            let out = ops
                .import_certificate(
                    &d,
                    &b.chain_pem,
                    &b.key_pem,
                    &actor,
                    b.reason.as_deref(),
                    now,
                )
                .await?;
            ok(StatusCode::OK, &out)
        }
        (Method::GET, "/v1/domains/{domain}/audit") => {
            let d = scoped(&token, domain)?;
            ops.show(&d).await?;
            let entries = ops
                .store()
                .audit(Some(&d), AUDIT_LIMIT)
                .await
                .map_err(crate::domains::DomainError::from)?;
            let entries: Vec<Value> = entries
                .into_iter()
                .map(|e| {
                    json!({
                        "seq": e.seq,
                        "at": e.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                        "actor": e.actor,
                        "action": e.action,
                        "domain": e.domain,
                        "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::String(e.detail)),
                        "reason": e.reason,
                    })
                })
                .collect();
            ok(StatusCode::OK, &json!({ "entries": entries }))
        }
        (Method::GET, "/v1/reports") => {
            let q = ReportQuery::parse(req.uri().query(), &token, now, LIST_KEYS)?;
            let filter = mtasts_store::ReportFilter {
                domain: q.domain,
                since: q.since,
                limit: q.limit,
            };
            let list = ops
                .store()
                .reports(&filter)
                .await
                .map_err(crate::domains::DomainError::from)?;
            let list: Vec<Value> = list.iter().map(mtasts_intake::views::listed).collect();
            ok(StatusCode::OK, &json!({ "reports": list }))
        }
        (Method::GET, "/v1/reports/summary") => {
            let q = ReportQuery::parse(req.uri().query(), &token, now, SUMMARY_KEYS)?;
            let since = q.since.unwrap_or(now - time::Duration::days(14));
            let store = ops.store();
            let days = store
                .report_days(q.domain.as_deref(), since)
                .await
                .map_err(crate::domains::DomainError::from)?;
            let failures = store
                .report_failures(q.domain.as_deref(), since)
                .await
                .map_err(crate::domains::DomainError::from)?;
            let text = mtasts_intake::views::summary_text(&days, &failures, since);
            let mut r = json_response(StatusCode::OK, &Value::Null);
            *r.body_mut() = Full::new(Bytes::from(text));
            Ok(r)
        }
        (Method::GET, "/v1/reports/readiness") => {
            let q = ReportQuery::parse(req.uri().query(), &token, now, READINESS_KEYS)?;
            let domain = q
                .domain
                .ok_or_else(|| invalid("domain is required: ?domain="))?;
            let days = q.days.unwrap_or(mtasts_intake::readiness::DEFAULT_DAYS);
            // No live check here: the server does not probe port 25 inside a request (D38).
            let r = mtasts_intake::readiness::load(ops.store(), &domain, days, now, None)
                .await
                .map_err(crate::domains::DomainError::from)?;
            ok(StatusCode::OK, &r)
        }
        (Method::GET, "/v1/reports/{id}") => {
            let id: i64 = domain
                .as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or_else(ApiError::not_found)?;
            let detail = ops
                .store()
                .report(id)
                .await
                .map_err(crate::domains::DomainError::from)?
                .filter(|d| token.scope.allows(&d.report.policy_domain))
                .ok_or_else(ApiError::not_found)?;
            ok(StatusCode::OK, &mtasts_intake::views::shown(&detail))
        }
        _ => Err(ApiError::not_found()),
    }
}

fn invalid(why: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", why)
}

/// The query keys of `GET /v1/reports`, `/v1/reports/summary` and `/v1/reports/readiness`.
const LIST_KEYS: &[&str] = &["domain", "since", "limit"];
const SUMMARY_KEYS: &[&str] = &["domain", "since"];
const READINESS_KEYS: &[&str] = &["domain", "days"];

/// The query of the report routes: `domain`, `since` (`14d`, `36h`, RFC 3339), `limit`,
/// `days` (1 to 366), each only where the route takes it (`known`). A token scoped to domains
/// must name one of them; unknown or repeated keys are refused.
struct ReportQuery {
    domain: Option<String>,
    since: Option<time::OffsetDateTime>,
    limit: Option<u32>,
    days: Option<u32>,
}

impl ReportQuery {
    fn parse(
        query: Option<&str>,
        token: &AdminToken,
        now: time::OffsetDateTime,
        known: &[&str],
    ) -> Result<Self, ApiError> {
        let mut q = Self {
            domain: None,
            since: None,
            limit: None,
            days: None,
        };
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !seen.insert(k.clone()) {
                return Err(invalid(format!("{k} is given twice")));
            }
            if !known.contains(&k.as_ref()) {
                return Err(invalid(format!(
                    "unknown query parameter {:?}; known: {}",
                    k.chars().take(64).collect::<String>(),
                    known.join(", ")
                )));
            }
            match k.as_ref() {
                "domain" => {
                    q.domain = Some(
                        normalize_domain(&v).map_err(|_| invalid("domain is not a domain name"))?,
                    );
                }
                "since" => {
                    q.since = Some(mtasts_intake::views::parse_since(&v, now).map_err(invalid)?);
                }
                "limit" => {
                    let n: u32 = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=mtasts_store::MAX_LIST).contains(n))
                        .ok_or_else(|| {
                            invalid(format!("limit is 1 to {}", mtasts_store::MAX_LIST))
                        })?;
                    q.limit = Some(n);
                }
                _ => {
                    let max = mtasts_intake::readiness::MAX_DAYS;
                    let n: u32 = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=max).contains(n))
                        .ok_or_else(|| invalid(format!("days is 1 to {max}")))?;
                    q.days = Some(n);
                }
            }
        }
        match (&token.scope, &q.domain) {
            (mtasts_store::TokenScope::All, _) => {}
            (_, Some(d)) if token.scope.allows(d) => {}
            (_, Some(_)) => return Err(ApiError::not_found()),
            (_, None) => {
                return Err(invalid(
                    "a token scoped to domains must name one of them: ?domain=",
                ));
            }
        }
        Ok(q)
    }
}

async fn health(state: &State) -> Response<Full<Bytes>> {
    let backend = state.domains.store().backend();
    let (status, mut body) = match state.domains.store().generation().await {
        Ok(g) => (
            StatusCode::OK,
            json!({ "status": "ok", "store": backend, "generation": g }),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "unavailable", "store": backend }),
        ),
    };
    if let Some(serving) = &state.serving {
        body["serving"] = serving.to_json();
    }
    json_response(status, &body)
}
