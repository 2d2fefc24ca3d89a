//! TLS-RPT reports `POST`ed to `https://mta-sts.<domain>/tlsrpt` on a running daemon: stored
//! once and acknowledged only after the commit (201, then 200 for a copy), gzip sniffed
//! whatever the declared type, a domain not hosted here refused (403), and every limit
//! answered before parsing: junk 400, too large 413, a gzip bomb 400, `GET` 405, another
//! host than the connection's 421.

use std::sync::Arc;
use std::time::Duration;

use crate::support::TestDb;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use mtasts_net::service;
use mtasts_server::config::ServeConfig;
use mtasts_server::daemon::Daemon;
use mtasts_store::{Delegation, ReportFilter};
use mtasts_testnet::pki::{Defect, Pki};
use serde_json::{Value, json};
use time::OffsetDateTime;

fn report(id: &str, domain: &str) -> Vec<u8> {
    json!({
        "organization-name": "Google Inc.",
        "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@google.com", "report-id": id,
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
                       "policy-domain": domain, "mx-host": [format!("mx.{domain}")]},
            "summary": {"total-successful-session-count": 100, "total-failure-session-count": 1}
        }]
    })
    .to_string()
    .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    mtasts_core::report::gzip(data)
}

/// A store hosting `a.test` with a certificate for `mta-sts.a.test`.
async fn hosting_a_test() -> (
    TestDb,
    mtasts_store::Store,
    Pki,
    mtasts_server::domains::Domains,
) {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let pki = Pki::at(OffsetDateTime::now_utc()).unwrap();
    let domains = crate::support::add_domain(&store, "a.test", Delegation::Host).await;
    let cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
    domains
        .import_certificate(
            "a.test",
            &cert.chain_pem(),
            &cert.key_pem(),
            "test",
            None,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    (db, store, pki, domains)
}

/// The daemon on `db` on loopback (no port 80, no drift checker), `tweak`ed: its HTTPS port,
/// its control and its task.
async fn serve(
    db: &TestDb,
    tweak: impl FnOnce(&mut ServeConfig),
) -> (u16, service::Control, tokio::task::JoinHandle<()>) {
    let mut config = ServeConfig::default();
    config.store.url = db.url.clone();
    config.https = "127.0.0.1:0".parse().unwrap();
    config.http = None;
    config.admin = "127.0.0.1:0".parse().unwrap();
    config.grace = Duration::from_secs(1);
    config.check.drift_interval = Duration::ZERO;
    tweak(&mut config);
    let daemon = Daemon::start(config).await.unwrap();
    let port = daemon.https_addr().port();
    let (control, shutdown) = service::channel();
    (port, control, tokio::spawn(daemon.run(shutdown)))
}

/// One request over TLS to `127.0.0.1:port` with SNI `sni` and `Host: host`: status and JSON.
async fn post(
    pki: &Pki,
    port: u16,
    sni: &str,
    host: &str,
    method: Method,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, hyper::HeaderMap, Value) {
    let config = mtasts_testnet::https::client_config(pki.root_store());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri("/tlsrpt")
        .header("host", host)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let rsp = match send.send_request(req).await {
        Ok(r) => r,
        // Refused before the body was read: the close cut the client's write of the body.
        Err(e) => {
            let closed = StatusCode::from_u16(599).unwrap();
            return (
                closed,
                hyper::HeaderMap::new(),
                Value::String(e.to_string()),
            );
        }
    };
    let (parts, body) = rsp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_posted_to_a_policy_host_are_stored_once_and_everything_else_refused() {
    let (db, store, pki, _) = hosting_a_test().await;
    let (port, control, task) = serve(&db, |c| {
        c.intake.body_timeout = Duration::from_secs(1);
    })
    .await;
    let host = "mta-sts.a.test";
    let send = |method: Method, ctype: &'static str, body: Vec<u8>| {
        let pki = &pki;
        async move { post(pki, port, host, host, method, ctype, body).await }
    };

    // Stored, and acknowledged after the commit: the report is in the store when 201 arrives.
    let (s, _, v) = send(
        Method::POST,
        "application/tlsrpt+json",
        report("r1", "a.test"),
    )
    .await;
    assert_eq!(
        (s, v["stored"].as_u64()),
        (StatusCode::CREATED, Some(1)),
        "{v}"
    );
    let listed = store.reports(&ReportFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].via.as_str(), listed[0].report_id.as_str()),
        ("https", "r1")
    );
    // A copy: counted, 200.
    let (s, _, v) = send(
        Method::POST,
        "application/tlsrpt+json",
        report("r1", "a.test"),
    )
    .await;
    assert_eq!(
        (s, v["duplicates"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{v}"
    );
    // gzip, declared as JSON: sniffed from the bytes.
    let (s, _, v) = send(
        Method::POST,
        "application/json",
        gzip(&report("r2", "a.test")),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Not a domain hosted here (D27).
    let (s, _, v) = send(
        Method::POST,
        "application/tlsrpt+json",
        report("r3", "b.test"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["reasons"][0]
            .as_str()
            .unwrap()
            .contains("b.test is not a domain hosted here"),
        "{v}"
    );
    // Hosted in the store but not in the snapshot served (no certificate yet, or added since
    // it was built): the store is asked, and it is accepted.
    crate::support::add_domain(&store, "c.test", Delegation::Host).await;
    let (s, _, v) = send(
        Method::POST,
        "application/tlsrpt+json",
        report("r4", "c.test"),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Junk, too large, a gzip bomb, a GET.
    let (s, _, v) = send(
        Method::POST,
        "application/tlsrpt+json",
        b"{\"not\": 1}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("no valid TLS-RPT report"),
        "{v}"
    );
    let (s, _, v) = send(
        Method::POST,
        "application/tlsrpt+gzip",
        vec![b' '; 1024 * 1024 + 1],
    )
    .await;
    // Refused on its Content-Length before the body is read: the client sees the 413, or the
    // connection closed under its write.
    assert!(
        s == StatusCode::PAYLOAD_TOO_LARGE || s.as_u16() == 599,
        "{s} {v}"
    );
    let bomb = gzip(&vec![b' '; 20 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let started = std::time::Instant::now();
    let (s, _, v) = send(Method::POST, "application/tlsrpt+gzip", bomb).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused quickly"
    );
    let (s, headers, _) = send(Method::GET, "text/plain", Vec::new()).await;
    assert_eq!(
        (s, headers["allow"].to_str().unwrap()),
        (StatusCode::METHOD_NOT_ALLOWED, "POST")
    );
    // Another host than the connection's: 421, as for the policy.
    let (s, _, _) = post(
        &pki,
        port,
        host,
        "mta-sts.b.test",
        Method::POST,
        "application/json",
        report("r4", "a.test"),
    )
    .await;
    assert_eq!(s, StatusCode::MISDIRECTED_REQUEST);
    // A sender that announces 600 bytes and sends 10: 408 once body_timeout (1 s) has passed.
    let started = std::time::Instant::now();
    let answer = slow_sender(&pki, port, host).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        store.reports(&ReportFilter::default()).await.unwrap().len(),
        3,
        "r1, r2 and r4 only"
    );
    control.stop();
    task.await.unwrap();
}

/// Sends a `POST` head announcing 600 bytes and 10 of them, then waits for the answer: its
/// status line and headers.
async fn slow_sender(pki: &Pki, port: u16, host: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = mtasts_testnet::https::client_config(pki.root_store());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let head = format!(
        "POST /tlsrpt HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: 600\r\n\r\n{{\"organiz"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_also_received_on_the_configured_intake_host_with_its_own_certificate() {
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let pki = Pki::at(OffsetDateTime::now_utc()).unwrap();
    let domains = crate::support::add_domain(&store, "a.test", Delegation::Host).await;
    let now = OffsetDateTime::now_utc();
    let policy_cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
    domains
        .import_certificate(
            "a.test",
            &policy_cert.chain_pem(),
            &policy_cert.key_pem(),
            "test",
            None,
            now,
        )
        .await
        .unwrap();
    // The intake host's certificate: a certificate for another name is refused.
    let wrong = pki.issue("other.provider.test", Defect::Valid).unwrap();
    let refused = domains
        .import_host_certificate(
            "tlsrpt.provider.test",
            &wrong.chain_pem(),
            &wrong.key_pem(),
            "test",
            now,
        )
        .await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("not valid for tlsrpt.provider.test")
    );
    let cert = pki.issue("tlsrpt.provider.test", Defect::Valid).unwrap();
    let checked = domains
        .import_host_certificate(
            "TLSRPT.provider.test",
            &cert.chain_pem(),
            &cert.key_pem(),
            "test",
            now,
        )
        .await
        .unwrap();
    assert_eq!(checked.name, "tlsrpt.provider.test");
    // A host certificate nobody configured is not served.
    let stray = pki.issue("stray.provider.test", Defect::Valid).unwrap();
    domains
        .import_host_certificate(
            "stray.provider.test",
            &stray.chain_pem(),
            &stray.key_pem(),
            "test",
            now,
        )
        .await
        .unwrap();

    let (port, control, task) = serve(&db, |c| {
        c.intake.host = "tlsrpt.provider.test".into();
    })
    .await;
    let host = "tlsrpt.provider.test";

    let (status, _, v) = post(
        &pki,
        port,
        host,
        host,
        Method::POST,
        "application/tlsrpt+json",
        report("h-1", "a.test"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, _, v) = post(
        &pki,
        port,
        host,
        host,
        Method::POST,
        "application/tlsrpt+gzip",
        gzip(&report("h-1", "a.test")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a copy: {v}");
    // D27 holds there too.
    let (status, _, v) = post(
        &pki,
        port,
        host,
        host,
        Method::POST,
        "application/tlsrpt+json",
        report("h-2", "b.test"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    // The policy host's connection cannot be used for the intake host, and back.
    let (status, _, _) = post(
        &pki,
        port,
        host,
        "mta-sts.a.test",
        Method::POST,
        "application/tlsrpt+json",
        report("h-3", "a.test"),
    )
    .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let stored = store.reports(&ReportFilter::default()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].source.as_deref(),
        Some("https://tlsrpt.provider.test/tlsrpt")
    );

    // It serves no policy.
    let (status, body) = get_policy(&pki, port, host).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = get_policy(&pki, port, "mta-sts.a.test").await;
    assert_eq!(status, StatusCode::OK);
    // The stray host gets no handshake.
    let stray_tls = tls_connect(&pki, port, "stray.provider.test").await;
    assert!(
        stray_tls.is_err(),
        "a host certificate not configured is served"
    );

    control.stop();
    task.await.unwrap();
}

async fn tls_connect(
    pki: &Pki,
    port: u16,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = mtasts_testnet::https::client_config(pki.root_store());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// `GET /.well-known/mta-sts.txt` with SNI and `Host` `host`: status and body.
async fn get_policy(pki: &Pki, port: u16, host: &str) -> (StatusCode, String) {
    let tls = tls_connect(pki, port, host).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/.well-known/mta-sts.txt")
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let rsp = send.send_request(req).await.unwrap();
    let status = rsp.status();
    let body = rsp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_body_is_cut_off_at_max_body_within_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (db, store, pki, _) = hosting_a_test().await;
    let (port, control, task) = serve(&db, |_| {}).await;

    for declared in [true, false] {
        let mut tls = tls_connect(&pki, port, "mta-sts.a.test").await.unwrap();
        let head = if declared {
            "POST /tlsrpt HTTP/1.1\r\nHost: mta-sts.a.test\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Length: 100000000\r\n\r\n".to_owned()
        } else {
            "POST /tlsrpt HTTP/1.1\r\nHost: mta-sts.a.test\r\nContent-Type: application/tlsrpt+gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
        };
        tls.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let chunk = vec![b'x'; 64 * 1024];
        let framed = if declared {
            chunk.clone()
        } else {
            [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat()
        };
        let mut sent = 0usize;
        while sent < 100_000_000 {
            match tokio::time::timeout(Duration::from_secs(5), tls.write_all(&framed)).await {
                Ok(Ok(())) => sent += chunk.len(),
                // The server answered and closed, or stopped reading: it took no more.
                _ => break,
            }
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 413") || sent < 100_000_000,
            "declared {declared}: {sent} bytes taken, answer {answer:?}"
        );
        assert!(
            sent < 32 * 1024 * 1024,
            "declared {declared}: the server read {sent} bytes"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
    // This test runs in its own process (nextest): its peak resident memory bounds what the
    // server kept of the bodies.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kib < 100 * 1024, "peak RSS {peak_kib} KiB");
    assert!(
        store
            .reports(&ReportFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    control.stop();
    task.await.unwrap();
}

/// A report the store refuses (here: a trigger) fails only its own `POST`, even when the writer
/// took it into one group commit with others: the group is retried `POST` by `POST`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_the_store_refuses_fails_only_its_own_post() {
    use sqlx::Connection;
    let (db, store, pki, _) = hosting_a_test().await;
    {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON reports WHEN NEW.report_id = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
    }
    let (port, control, task) = serve(&db, |c| c.intake.max_in_flight = 64).await;
    let host = "mta-sts.a.test";
    let pki = Arc::new(pki);
    // 40 POSTs at once, the poisoned one among them, 3 times over: some share its commit.
    for round in 0..3 {
        let mut posts = tokio::task::JoinSet::new();
        for i in 0..40 {
            let pki = Arc::clone(&pki);
            let id = if i == 20 {
                "poison".to_owned()
            } else {
                format!("g-{round}-{i}")
            };
            posts.spawn(async move {
                let (s, _, v) = post(
                    &pki,
                    port,
                    host,
                    host,
                    Method::POST,
                    "application/tlsrpt+json",
                    report(&id, "a.test"),
                )
                .await;
                (id, s, v)
            });
        }
        while let Some(r) = posts.join_next().await {
            let (id, s, v) = r.unwrap();
            if id == "poison" {
                assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
            } else {
                assert_eq!(s, StatusCode::CREATED, "{id}: {v}");
            }
        }
    }
    assert_eq!(
        store.reports(&ReportFilter::default()).await.unwrap().len(),
        3 * 39
    );
    control.stop();
    task.await.unwrap();
}
