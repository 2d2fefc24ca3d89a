//! No acknowledged report is lost: `mtasts serve` is killed with SIGKILL while 1,000 TLS-RPT
//! reports are being `POST`ed to it concurrently (`rua=https://mta-sts.<domain>/tlsrpt`); after
//! a restart every report that got a 2xx is in the store exactly once, whole (its policy row
//! counted in the summary), and nothing else is half-written. On SQLite, and on PostgreSQL
//! with `TEST_DATABASE_URL` (SKIP on stderr without it, a failure when `CI=true`): the reports of
//! concurrent `POST`s are committed together on both.
#![allow(
    clippy::print_stderr,
    reason = "the figures of the run are printed to be quoted"
)]

mod support;

use mtasts_testnet::https::post;
use mtasts_testnet::pg::TestDatabase;
use mtasts_testnet::pki::{Defect, Pki};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{Serve, bin, free_addr, health, run};

const KEY: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";
const REPORTS: usize = 1000;
const AT_ONCE: usize = 32;

async fn mtasts(args: &[&str]) -> (i32, String, String) {
    run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", KEY)],
    )
    .await
}

fn report(i: usize) -> Vec<u8> {
    json!({
        "organization-name": "Google Inc.",
        "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@google.com", "report-id": format!("kill-{i}"),
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing"],
                       "policy-domain": "a.test", "mx-host": ["mx.a.test"]},
            "summary": {"total-successful-session-count": 10, "total-failure-session-count": 0}
        }]
    })
    .to_string()
    .into_bytes()
}

fn start(dir: &std::path::Path, n: u8, store: &str, https: SocketAddr) -> (Serve, SocketAddr) {
    let admin = free_addr(Ipv4Addr::LOCALHOST);
    let log = dir.join(format!("serve{n}.log"));
    let child = bin()
        .env("MTASTS_STORE_KEY", KEY)
        .args(["serve", "--store", store, "--http", "none"])
        .args(["--https", &https.to_string(), "--admin", &admin.to_string()])
        .args([
            "--set",
            "reload_poll=0.2",
            "--set",
            "check.drift_interval=0",
        ])
        .args(["--set", "intake.max_in_flight=64", "--set", "grace=1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Serve { child, log }, admin)
}

/// Waits until the server serves one domain.
async fn serving(admin: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, v)) = health(admin).await
            && v["serving"]["domains"] == 1
        {
            return;
        }
        assert!(Instant::now() < deadline, "{admin}: not serving");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_acknowledged_before_a_sigkill_is_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("store.db").display());
    killed_while_posting(&dir, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_acknowledged_before_a_sigkill_is_stored_exactly_once_on_postgres() {
    let Some(db) = TestDatabase::create("mtasts_cli", "intake_kill").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    killed_while_posting(&dir, &db.url).await;
}

/// The test, on the store at `store` (empty).
async fn killed_while_posting(dir: &tempfile::TempDir, store: &str) {
    let store = store.to_owned();
    let pki = Pki::new().unwrap();
    let (code, out, err) = mtasts(&[
        "domain",
        "add",
        "a.test",
        "--mx",
        "mx.a.test",
        "--store",
        &store,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
    let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let (code, out, err) = mtasts(&[
        "domain", "cert", "import", "a.test", "--cert", &c, "--key", &k, "--store", &store,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");

    let https = free_addr(Ipv4Addr::LOCALHOST);
    let (mut serve, admin) = start(dir.path(), 1, &store, https);
    serving(admin).await;

    // 1,000 reports, 32 at a time; the server is killed once 300 were acknowledged.
    let acked = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..AT_ONCE {
        let (acked, next, roots) = (Arc::clone(&acked), Arc::clone(&next), pki.root_store());
        tasks.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= REPORTS {
                    return seen;
                }
                let got = post(
                    https,
                    "mta-sts.a.test",
                    roots.clone(),
                    "/tlsrpt",
                    "application/tlsrpt+json",
                    report(i),
                    Duration::from_secs(10),
                )
                .await;
                let status = got.as_ref().map_or(0, |p| p.status);
                if (200..300).contains(&status) {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                seen.push((i, status));
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < 300 {
        assert!(
            Instant::now() < deadline,
            "300 reports not acknowledged within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    serve.child.kill().unwrap(); // SIGKILL
    let killed_at = acked.load(Ordering::Relaxed);
    let _ = serve.child.wait();
    let mut statuses: HashMap<usize, u16> = HashMap::new();
    while let Some(seen) = tasks.join_next().await {
        statuses.extend(seen.unwrap());
    }
    let ok: HashSet<String> = statuses
        .iter()
        .filter(|(_, s)| (200..300).contains(*s))
        .map(|(i, _)| format!("kill-{i}"))
        .collect();
    let unanswered = statuses.values().filter(|s| **s == 0).count();

    // Restarted on the same store: every acknowledged report is there, once, whole.
    let (serve2, admin2) = start(dir.path(), 2, &store, https);
    serving(admin2).await;
    let (code, out, err) = mtasts(&["report", "list", "--store", &store, "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let list = list.as_array().unwrap();
    let stored: HashSet<String> = list
        .iter()
        .map(|r| r["report_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored.len(), list.len(), "each report once");
    let lost: Vec<&String> = ok.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    for r in list {
        assert_eq!(r["copies"], 1, "{r}");
    }
    // Whole: each stored report's policy row is counted (a half-written one would not be).
    let (_, out, _) = mtasts(&[
        "report", "summary", "--store", &store, "--since", "30000d", "--format", "json",
    ])
    .await;
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        summary["domains"][0]["reports"].as_u64(),
        Some(list.len() as u64),
        "{summary}"
    );
    assert_eq!(
        summary["domains"][0]["success"].as_u64(),
        Some(10 * list.len() as u64),
        "{summary}"
    );
    eprintln!(
        "{REPORTS} reports posted {AT_ONCE} at a time; SIGKILL after {killed_at} acknowledged: \
         {} acknowledged in all, {} stored (each once), {unanswered} without an answer, 0 lost \
         ({})",
        ok.len(),
        stored.len(),
        store.split(':').next().unwrap_or("?")
    );
    drop(serve2);
}
