//! The admin API over its listener: tokens, scope, audit, limits, the OpenAPI document.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::support::{TestDb, both, cert, t};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use mtasts_core::rollout::RolloutConfig;
use mtasts_server::admin::{AdminConfig, AdminError, AdminLimits, AdminServer, AdminTls, ROUTES};
use mtasts_server::domains::Domains;
use mtasts_store::{Change, Store, TokenScope};
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// A running admin API on loopback plain HTTP, its store, and the shutdown switch.
struct Api {
    addr: SocketAddr,
    store: Store,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(db: &TestDb, metrics: bool) -> Api {
    start_with(db, metrics, AdminLimits::default()).await
}

async fn start_with(db: &TestDb, metrics: bool, limits: AdminLimits) -> Api {
    let store = db.open().await;
    let domains = Domains::new(store.clone(), RolloutConfig::default()).unwrap();
    let mut cfg = AdminConfig::new("127.0.0.1:0".parse().unwrap(), AdminTls::PlainLoopback);
    cfg.limits = limits;
    cfg.clock = Arc::new(|| t(0));
    if metrics {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        cfg.metrics = Some(recorder.handle());
        let _ = metrics::set_global_recorder(recorder);
    }
    let server = AdminServer::bind(cfg).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(domains, async move {
        let _ = rx.await;
    }));
    Api {
        addr,
        store,
        _stop: tx,
    }
}

/// One request on a fresh connection: the status, the JSON body (or the text as a JSON string).
pub(crate) async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, hyper::HeaderMap, Value) {
    call_raw(
        addr,
        method,
        path,
        token,
        body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
    )
    .await
}

async fn call_raw(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, hyper::HeaderMap, Value) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, headers, value)
}

pub(crate) async fn token(store: &Store, name: &str, scope: TokenScope) -> String {
    let made = store
        .create_token(name, &scope, &Change::new("cli", t(0)))
        .await
        .unwrap();
    made.secret.expose().to_owned()
}

fn add_body(domain: &str) -> Value {
    json!({ "domain": domain, "mx": ["mx1.example.net"], "reason": "onboarding" })
}

/// Every route that needs a token, with a concrete path.
fn authed_routes() -> Vec<(Method, String)> {
    ROUTES
        .iter()
        .filter(|r| r.2)
        .map(|(m, p, _)| {
            let p = p.replace("{domain}", "example.com").replace("{id}", "1");
            (m.parse().unwrap(), p)
        })
        .collect()
}

fn tlsrpt(org: &str, id: &str, domain: &str, failed: u64) -> Vec<u8> {
    json!({
        "organization-name": org,
        "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
        "contact-info": "tlsrpt@reporter.example", "report-id": id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1"], "policy-domain": domain,
                       "mx-host": [format!("mx.{domain}")]},
            "summary": {"total-successful-session-count": 10, "total-failure-session-count": failed},
            "failure-details": [{"result-type": "certificate-expired", "receiving-mx-hostname": format!("mx.{domain}"),
                                 "sending-mta-ip": "192.0.2.1", "failed-session-count": failed}]
        }]
    })
    .to_string()
    .into_bytes()
}

both! {
    async fn reports_are_listed_shown_and_summarised_within_the_token_scope(db) {
        let api = start(&db, false).await;
        let arrival = mtasts_store::Arrival { via: mtasts_store::Via::File, source: None, at: t(0), dkim: None };
        for (org, id, domain, failed) in [("Google Inc.", "g1", "a.example", 2), ("Microsoft", "m1", "b.example", 0)] {
            let parsed = mtasts_core::report::parse_report_json(&tlsrpt(org, id, domain, failed)).unwrap();
            api.store.insert_report(&parsed, &arrival).await.unwrap();
        }
        let all = token(&api.store, "ops", TokenScope::All).await;
        let scoped = token(&api.store, "a", TokenScope::Domains(vec!["a.example".into()])).await;
        let get = |path: String, tok: String| async move { call(api.addr, Method::GET, &path, Some(&tok), None).await };

        let (s, _, v) = get("/v1/reports?since=2025-12-01T00:00:00Z".into(), all.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let list = v["reports"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{v}");
        let id_b = list.iter().find(|r| r["policy_domain"] == "b.example").unwrap()["id"].clone();
        let (s, _, v) = get("/v1/reports?domain=a.example&limit=1".into(), all.clone()).await;
        assert_eq!((s, v["reports"][0]["report_id"].as_str()), (StatusCode::OK, Some("g1")), "{v}");
        let id_a = v["reports"][0]["id"].clone();
        let (s, _, v) = get(format!("/v1/reports/{id_a}"), all.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["normalised"]["report-id"], "g1");
        assert!(v["raw"].as_str().unwrap().contains("\"report-id\":\"g1\""), "{v}");
        let (s, _, v) = get("/v1/reports/summary?since=30000d".into(), all.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let a = v["domains"].as_array().unwrap().iter().find(|d| d["policy_domain"] == "a.example").unwrap().clone();
        assert_eq!((a["success"].as_u64(), a["failure"].as_u64()), (Some(10), Some(2)), "{v}");
        assert_eq!(a["failures"][0]["result_type"], "certificate-expired", "{v}");

        // The scoped token sees its own domain only, and must name it.
        let (s, _, v) = get("/v1/reports?domain=a.example".into(), scoped.clone()).await;
        assert_eq!((s, v["reports"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "{v}");
        for path in ["/v1/reports".to_owned(), "/v1/reports/summary".to_owned()] {
            let (s, _, v) = get(path.clone(), scoped.clone()).await;
            assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{path} {v}");
        }
        for path in ["/v1/reports?domain=b.example".to_owned(), format!("/v1/reports/{id_b}")] {
            let (s, _, v) = get(path.clone(), scoped.clone()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path} {v}");
        }
        // Bad queries are 422 in the one error shape; unknown ids 404.
        for q in ["since=yesterday", "limit=0", "limit=100001", "domain=a..b", "colour=red", "limit=1&limit=2", "since=%00"] {
            let (s, _, v) = get(format!("/v1/reports?{q}"), all.clone()).await;
            assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{q} {v}");
        }
        let (s, _, v) = get("/v1/reports/summary?limit=3".into(), all.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        for path in ["/v1/reports/999999", "/v1/reports/x", "/v1/reports/-1"] {
            let (s, _, _) = get(path.into(), all.clone()).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        }
        let (s, _, _) = call(api.addr, Method::POST, "/v1/reports/summary", Some(&all), None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    }

    async fn d53_readiness_is_answered_per_domain_within_the_token_scope(db) {
        let api = start(&db, false).await;
        let arrival = mtasts_store::Arrival { via: mtasts_store::Via::File, source: None, at: t(0), dkim: None };
        for (org, id, domain, failed) in [("Google Inc.", "g1", "a.example", 2), ("Microsoft Corporation", "m1", "b.example", 0)] {
            let parsed = mtasts_core::report::parse_report_json(&tlsrpt(org, id, domain, failed)).unwrap();
            api.store.insert_report(&parsed, &arrival).await.unwrap();
        }
        let all = token(&api.store, "ops", TokenScope::All).await;
        let scoped = token(&api.store, "a", TokenScope::Domains(vec!["a.example".into()])).await;
        let get = |path: &str, tok: &str| {
            let (path, tok) = (path.to_owned(), tok.to_owned());
            async move { call(api.addr, Method::GET, &path, Some(&tok), None).await }
        };

        // Failures at one MX: no-go naming it, with its fix; no live check from the server.
        let (s, _, v) = get("/v1/reports/readiness?domain=A.example.", &scoped).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!((v["domain"].as_str(), v["verdict"].as_str()), (Some("a.example"), Some("no-go")), "{v}");
        assert_eq!(v["blockers"][0]["receiving_mx"], "mx.a.example", "{v}");
        assert_eq!(v["blockers"][0]["result_type"], "certificate-expired");
        assert_eq!(v["blockers"][0]["failed_sessions"], 2);
        assert_eq!(v["blockers"][0]["reporters"], json!(["Google Inc."]));
        assert!(v["blockers"][0]["fix"].as_str().unwrap().starts_with("renew the certificate of mx.a.example"), "{v}");
        assert_eq!((v["evidence"]["reports"].as_u64(), v["live_check"].is_null()), (Some(1), true), "{v}");
        assert!(v["notes"].as_array().unwrap().iter().any(|n| n["id"] == "no-live-check"), "{v}");
        assert_eq!(v["days"], 14);
        // Clean: go. Nothing: unknown.
        let (_, _, v) = get("/v1/reports/readiness?domain=b.example&days=30", &all).await;
        assert_eq!((v["verdict"].as_str(), v["days"].as_u64()), (Some("go"), Some(30)), "{v}");
        let (_, _, v) = get("/v1/reports/readiness?domain=c.example", &all).await;
        assert_eq!(v["verdict"], "unknown", "{v}");
        // One day still reaches today's report.
        let (s, _, v) = get("/v1/reports/readiness?domain=a.example&days=1", &all).await;
        assert_eq!((s, v["verdict"].as_str()), (StatusCode::OK, Some("no-go")), "{v}");

        // Scope: another domain is 404 as an unhosted one; the domain is required.
        let (s, _, _) = get("/v1/reports/readiness?domain=b.example", &scoped).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        for (q, tok) in [("", &all), ("", &scoped), ("domain=a.example&days=0", &all), ("domain=a.example&days=367", &all),
                         ("domain=a.example&days=x", &all), ("domain=a.example&since=14d", &all),
                         ("domain=a.example&limit=1", &all), ("domain=a.example&domain=a.example", &all)] {
            let (s, _, v) = get(&format!("/v1/reports/readiness?{q}"), tok).await;
            assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{q} {v}");
        }
        // The other report routes do not take days.
        let (s, _, _) = get("/v1/reports/summary?days=3", &all).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn no_token_or_a_wrong_token_is_401_on_every_route(db) {
        let api = start(&db, false).await;
        let good = token(&api.store, "ops", TokenScope::All).await;
        // The good secret with its last digit changed (to another digit: a secret ending in 0
        // once made "wrong" the good one, one run in sixteen).
        let last = if good.ends_with('0') { "1" } else { "0" };
        let wrong = format!("{}{last}", &good[..good.len() - 1]);
        assert_ne!(wrong, good);
        for (m, p) in authed_routes() {
            for tok in [None, Some("mtasts_nonsense"), Some(wrong.as_str()), Some("")] {
                let (status, headers, body) = call(api.addr, m.clone(), &p, tok, Some(add_body("example.com"))).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{m} {p} {tok:?}");
                assert_eq!(headers["www-authenticate"], "Bearer");
                assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            }
        }
        // "Basic" or a bare secret is not a bearer token either.
        let tcp_body = call_raw(api.addr, Method::GET, "/v1/domains", None, vec![]).await;
        assert_eq!(tcp_body.0, StatusCode::UNAUTHORIZED);
        assert!(api.store.domains().await.unwrap().is_empty(), "nothing written without a token");
        let (status, _, _) = call(api.addr, Method::GET, "/v1/domains", Some(&good), None).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn a_scoped_token_cannot_read_or_change_another_domain(db) {
        let api = start(&db, false).await;
        let admin = token(&api.store, "admin", TokenScope::All).await;
        let mine = token(&api.store, "tenant-a", TokenScope::Domains(vec!["a.example".into()])).await;
        for d in ["a.example", "b.example"] {
            let (s, _, b) = call(api.addr, Method::POST, "/v1/domains", Some(&admin), Some(add_body(d))).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        let (s, _, list) = call(api.addr, Method::GET, "/v1/domains", Some(&mine), None).await;
        assert_eq!(s, StatusCode::OK);
        let names: Vec<&str> = list["domains"].as_array().unwrap().iter().map(|d| d["domain"].as_str().unwrap()).collect();
        assert_eq!(names, ["a.example"]);
        let (s, _, b) = call(api.addr, Method::GET, "/v1/domains/a.example", Some(&mine), None).await;
        assert_eq!((s, b["state"].as_str()), (StatusCode::OK, Some("testing")));
        // Another tenant's domain and a domain nobody hosts answer the same 404.
        let hosted_other = call(api.addr, Method::GET, "/v1/domains/b.example", Some(&mine), None).await;
        let unhosted = call(api.addr, Method::GET, "/v1/domains/zz.example", Some(&mine), None).await;
        assert_eq!(hosted_other.0, StatusCode::NOT_FOUND);
        assert_eq!((hosted_other.0, hosted_other.2.clone()), (unhosted.0, unhosted.2));
        for (m, p) in authed_routes().into_iter().filter(|(_, p)| p.contains("example.com")) {
            let p = p.replace("example.com", "b.example");
            let body = json!({ "force": true, "reason": "hostile", "mx": ["evil.example.net"], "chain_pem": "x", "key_pem": "y" });
            let (s, _, b) = call(api.addr, m.clone(), &p, Some(&mine), Some(body)).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{m} {p}: {b}");
        }
        let (s, _, _) = call(api.addr, Method::POST, "/v1/domains", Some(&mine), Some(add_body("c.example"))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "adding outside the scope");
        let b = api.store.domain("b.example").await.unwrap().unwrap();
        assert_eq!((b.rollout.state.as_str(), b.policy.mx.as_slice()), ("testing", &["mx1.example.net".to_owned()][..]));
        assert!(api.store.domain("c.example").await.unwrap().is_none());
        let audit = api.store.audit(Some("b.example"), 50).await.unwrap();
        assert!(audit.iter().all(|a| a.actor == "token:admin"), "the scoped token wrote nothing: {audit:?}");
    }

    async fn every_write_through_the_api_is_audited_with_who_when_what_why(db) {
        let api = start(&db, false).await;
        let tok = token(&api.store, "ops", TokenScope::All).await;
        let (s, _, b) = call(api.addr, Method::POST, "/v1/domains", Some(&tok), Some(add_body("example.com"))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert!(b["domain"]["txt_record"].as_str().unwrap().starts_with("v=STSv1; id="));
        let (s, _, b) = call(api.addr, Method::PATCH, "/v1/domains/example.com", Some(&tok),
            Some(json!({ "mx": ["mx1.example.net", "mx2.example.net"], "reason": "second MX" }))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, _, b) = call(api.addr, Method::POST, "/v1/domains/example.com/promote", Some(&tok), None).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_ready")), "{b}");
        assert!(b["error"]["details"]["blockers"].as_array().is_some_and(|a| !a.is_empty()));
        let (s, _, b) = call(api.addr, Method::POST, "/v1/domains/example.com/promote", Some(&tok), Some(json!({ "force": true }))).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("needs_force")));
        let (s, _, b) = call(api.addr, Method::POST, "/v1/domains/example.com/promote", Some(&tok),
            Some(json!({ "force": true, "reason": "checked by hand" }))).await;
        assert_eq!((s, b["domain"]["state"].as_str()), (StatusCode::OK, Some("enforce")), "{b}");
        let (c, k) = cert(&["mta-sts.example.com"], t(90 * 86_400));
        let (s, _, b) = call(api.addr, Method::PUT, "/v1/domains/example.com/certificate", Some(&tok),
            Some(json!({ "chain_pem": c, "key_pem": k, "reason": "renewed" }))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, _, _) = call(api.addr, Method::POST, "/v1/domains/example.com/rollback", Some(&tok), Some(json!({ "reason": "MX broke" }))).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _, b) = call(api.addr, Method::POST, "/v1/domains/example.com/remove", Some(&tok), Some(json!({}))).await;
        assert_eq!((s, b["domain"]["state"].as_str()), (StatusCode::OK, Some("withdrawing")), "{b}");
        let (s, _, audit) = call(api.addr, Method::GET, "/v1/domains/example.com/audit", Some(&tok), None).await;
        assert_eq!(s, StatusCode::OK);
        let entries = audit["entries"].as_array().unwrap();
        let mut actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
        actions.reverse();
        assert_eq!(actions, ["domain.add", "policy.set", "rollout.transition", "certificate.put", "rollout.transition", "rollout.transition"].map(|a| a), "{audit}");
        for e in entries {
            assert_eq!(e["actor"], "token:ops");
            assert_eq!(e["at"], "2026-01-01T00:00:00Z");
            assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
        }
        let reasons: Vec<&str> = entries.iter().map(|e| e["reason"].as_str().unwrap()).collect();
        assert!(reasons.iter().any(|r| r.contains("checked by hand")) && reasons.contains(&"renewed") && reasons.contains(&"second MX"), "{reasons:?}");
    }

    async fn hostile_requests_get_json_errors_in_the_one_shape(db) {
        let api = start(&db, false).await;
        let tok = token(&api.store, "ops", TokenScope::All).await;
        let cases: Vec<(Method, &str, Vec<u8>, StatusCode, &str)> = vec![
            (Method::POST, "/v1/domains", vec![b'x'; 2 << 20], StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            (Method::POST, "/v1/domains", b"{not json".to_vec(), StatusCode::BAD_REQUEST, "bad_request"),
            (Method::POST, "/v1/domains", br#"{"domain":"a.example","mx":["m.example"],"admin":true}"#.to_vec(), StatusCode::BAD_REQUEST, "bad_request"),
            (Method::POST, "/v1/domains", br#"{"domain":"a.example"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (Method::POST, "/v1/domains", br#"{"domain":"a.example","mx":["m.example"],"mode":"enforce"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "needs_force"),
            (Method::POST, "/v1/domains", br#"{"domain":"-bad-","mx":["m.example"]}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            (Method::POST, "/v1/domains", br#"{"domain":"a.example","mx_hosts":["mx.unknown-host.example"]}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "unexplained_mx"),
            (Method::DELETE, "/v1/domains", vec![], StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            (Method::GET, "/v2/nothing", vec![], StatusCode::NOT_FOUND, "not_found"),
        ];
        for (m, p, body, want, code) in cases {
            let (s, h, b) = call_raw(api.addr, m.clone(), p, Some(&tok), body).await;
            assert_eq!((s, b["error"]["code"].as_str()), (want, Some(code)), "{m} {p}: {b}");
            assert_eq!(h["content-type"], "application/json");
            assert!(b["error"]["message"].is_string());
        }
        assert!(api.store.domains().await.unwrap().is_empty());
        let (s, _, _) = call(api.addr, Method::POST, "/v1/domains", Some(&tok), Some(add_body("a.example"))).await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, _, b) = call(api.addr, Method::POST, "/v1/domains", Some(&tok), Some(add_body("a.example"))).await;
        assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("exists")));
    }

    async fn health_metrics_and_the_openapi_document_need_no_token(db) {
        let api = start(&db, true).await;
        let (s, _, b) = call(api.addr, Method::GET, "/health", None, None).await;
        assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
        let (s, _, doc) = call(api.addr, Method::GET, "/openapi.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(doc["openapi"], "3.0.3");
        call(api.addr, Method::GET, "/v1/domains", None, None).await;
        let (s, h, text) = call(api.addr, Method::GET, "/metrics", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert!(h["content-type"].to_str().unwrap().starts_with("text/plain"));
        let text = text.as_str().unwrap();
        assert!(text.contains("mtasts_admin_requests_total{route=\"/v1/domains\",status=\"401\"} 1"), "{text}");
    }
}

#[test]
fn every_route_is_in_the_openapi_document_and_nothing_else() {
    let doc: Value = serde_json::from_str(mtasts_server::admin::openapi::DOCUMENT).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            if method != "parameters" {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routes.sort();
    assert_eq!(routes, documented);
    for (m, p, needs_token) in ROUTES {
        let op = &paths[*p][m.to_lowercase()];
        let open = op["security"].as_array().is_some_and(Vec::is_empty);
        assert_eq!(
            open, !needs_token,
            "{m} {p}: security in the document matches the router"
        );
    }
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback_and_tls_serves_the_api() {
    let cfg = AdminConfig::new("0.0.0.0:0".parse().unwrap(), AdminTls::PlainLoopback);
    assert!(matches!(
        AdminServer::bind(cfg).await,
        Err(AdminError::PlainNotLoopback(_))
    ));
    assert!(matches!(
        AdminTls::from_pem("nope", "nope"),
        Err(AdminError::Tls(_))
    ));

    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let (chain, key) = cert(&["admin.test"], t(400 * 86_400));
    let cfg = AdminConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        AdminTls::from_pem(&chain, &key).unwrap(),
    );
    let server = AdminServer::bind(cfg).await.unwrap();
    let addr = server.local_addr();
    let domains = Domains::new(store, RolloutConfig::default()).unwrap();
    tokio::spawn(server.run(domains, std::future::pending()));

    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(chain.as_bytes()).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect("admin.test".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            Request::get("/v1/domains")
                .header("host", "admin.test")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Plain HTTP on the TLS port gets no answer.
    let (s, _, _) = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        match hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)).await {
            Ok((mut send, conn)) => {
                tokio::spawn(conn);
                match send
                    .send_request(
                        Request::get("/health")
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await
                {
                    Ok(r) => (r.status(), (), ()),
                    Err(_) => (StatusCode::IM_A_TEAPOT, (), ()),
                }
            }
            Err(_) => (StatusCode::IM_A_TEAPOT, (), ()),
        }
    })
    .await
    .unwrap();
    assert_eq!(
        s,
        StatusCode::IM_A_TEAPOT,
        "no HTTP answer on the TLS listener"
    );
}

#[tokio::test]
async fn slow_heads_and_stalled_bodies_are_cut_at_their_timeouts() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = TestDb::sqlite().await;
    let limits = AdminLimits {
        header_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(300),
        ..AdminLimits::default()
    };
    let api = start_with(&db, false, limits).await;
    let tok = token(&api.store, "ops", TokenScope::All).await;
    // Slowloris: a head that never ends; the connection is closed at the head timeout.
    let mut tcp = TcpStream::connect(api.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let began = Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "closed, not left open");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
    // A body that stalls after its head: 503 `timeout` at the request timeout.
    let mut tcp = TcpStream::connect(api.addr).await.unwrap();
    let head = format!(
        "POST /v1/domains HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"domain\""
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let began = Instant::now();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
    assert!(began.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_client_speaks_tls_to_the_api_and_reports_errors_by_code() {
    use mtasts_server::admin::client::{AdminClient, ClientError};
    assert!(matches!(
        AdminClient::new("http://192.0.2.1:8443", "t", None),
        Err(ClientError::Url(_))
    ));
    assert!(matches!(
        AdminClient::new("ftp://x", "t", None),
        Err(ClientError::Url(_))
    ));
    assert!(matches!(
        AdminClient::new("https://localhost:1", "t", Some("junk")),
        Err(ClientError::Ca(_))
    ));

    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let secret = token(&store, "ops", TokenScope::All).await;
    let (chain, key) = cert(&["localhost"], t(400 * 86_400));
    let cfg = AdminConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        AdminTls::from_pem(&chain, &key).unwrap(),
    );
    let server = AdminServer::bind(cfg).await.unwrap();
    let port = server.local_addr().port();
    tokio::spawn(server.run(
        Domains::new(store, RolloutConfig::default()).unwrap(),
        std::future::pending(),
    ));

    let url = format!("https://localhost:{port}");
    let untrusted = AdminClient::new(&url, &secret, None).unwrap();
    assert!(matches!(
        untrusted.call(Method::GET, "/v1/domains", None).await,
        Err(ClientError::Connect(_))
    ));
    let wrong = AdminClient::new(&url, "mtasts_wrong", Some(&chain)).unwrap();
    match wrong.call(Method::GET, "/v1/domains", None).await {
        Err(ClientError::Api {
            status: 401, code, ..
        }) => assert_eq!(code, "unauthorized"),
        other => panic!("{other:?}"),
    }
    let client = AdminClient::new(&url, &secret, Some(&chain)).unwrap();
    let added = client
        .call(Method::POST, "/v1/domains", Some(&add_body("example.com")))
        .await
        .unwrap();
    assert_eq!(added["domain"]["state"], "testing");
    let path = AdminClient::domain_path("Example.COM.", "/promote").unwrap();
    assert_eq!(path, "/v1/domains/example.com/promote");
    match client.call(Method::POST, &path, None).await {
        Err(ClientError::Api {
            status: 409,
            code,
            details,
            ..
        }) => {
            assert_eq!(code, "not_ready");
            assert!(details.unwrap()["blockers"].is_array());
        }
        other => panic!("{other:?}"),
    }
    assert!(AdminClient::domain_path("../etc", "").is_err());
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_accept() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let db = TestDb::sqlite().await;
    let limits = AdminLimits {
        max_connections: 2,
        ..AdminLimits::default()
    };
    let api = start_with(&db, false, limits).await;
    let held: Vec<TcpStream> = vec![
        TcpStream::connect(api.addr).await.unwrap(),
        TcpStream::connect(api.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(api.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed at once: {n:?}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (s, _, _) = call(api.addr, Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK, "a slot is free again");
}

#[tokio::test]
async fn one_client_cannot_hold_every_admin_connection_and_quiet_ones_make_room() {
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    let db = TestDb::sqlite().await;
    let limits = AdminLimits {
        max_connections: 3,
        max_connections_per_ip: 2,
        ..AdminLimits::default()
    };
    let api = start_with(&db, false, limits).await;
    let closed = |mut s: TcpStream| async move {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        matches!(n, Ok(Ok(0)) | Ok(Err(_)))
    };
    // 127.0.0.1 may hold two; the third from it is closed at accept.
    let mut held = vec![
        TcpStream::connect(api.addr).await.unwrap(),
        TcpStream::connect(api.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(closed(TcpStream::connect(api.addr).await.unwrap()).await);
    // Another client address still gets in (the listener is on 127.0.0.1; bind the source).
    let from = |ip: [u8; 4]| async move {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind((std::net::Ipv4Addr::from(ip), 0).into()).unwrap();
        s.connect(api.addr).await.unwrap()
    };
    held.push(from([127, 0, 0, 2]).await);
    // The total is reached; after a quiet second the quietest idle connection makes room.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let s = call_from(api.addr, [127, 0, 0, 3]).await;
    assert_eq!(s, StatusCode::OK, "a quiet connection was closed for it");
    assert!(
        closed(held.remove(0)).await,
        "the oldest idle connection was the one closed"
    );
}

/// `GET /health` from a chosen source address.
async fn call_from(addr: SocketAddr, ip: [u8; 4]) -> StatusCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind((std::net::Ipv4Addr::from(ip), 0).into()).unwrap();
    let mut c = s.connect(addr).await.unwrap();
    c.write_all(b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    c.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    StatusCode::from_u16(code).unwrap()
}
