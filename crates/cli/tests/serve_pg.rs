//! Two `mtasts serve` processes on one PostgreSQL, reached through a relay the test can cut: a
//! domain added and its certificate imported by `mtasts domain --server` through instance 1's
//! admin API is served by instance 2 within 5 s; with PostgreSQL cut off both keep serving and
//! `/health` says unavailable; once it is back a change is served by both. Also the admin API's
//! refusals as the CLI reports them (a token scoped to another domain, a wrong token). Needs
//! `TEST_DATABASE_URL`: SKIP on stderr without it, a failure when `CI=true`.
#![allow(
    clippy::print_stderr,
    reason = "the measured delay is printed to be quoted"
)]

mod support;

use mtasts_net::https::{FetchSettings, fetch_policy_at};
use mtasts_net::tls::TlsProbeConfig;
use mtasts_testnet::pg::TestDatabase;
use mtasts_testnet::pki::{Defect, Pki};
use mtasts_testnet::relay::Relay;
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use support::{Serve, bin, free_addr, health, run};

const DOMAIN: &str = "shared.example";
const KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

/// Runs the binary with the store key: (status, stdout, stderr).
async fn mtasts(args: Vec<String>) -> (i32, String, String) {
    run(args, &[("MTASTS_STORE_KEY", KEY)]).await
}

/// `mtasts token create NAME [--domain D]... --store URL --format json`: the secret.
async fn token(store: &str, name: &str, domains: &[&str]) -> String {
    let mut a: Vec<String> = [
        "token", "create", name, "--store", store, "--format", "json",
    ]
    .map(str::to_owned)
    .into();
    for d in domains {
        a.extend(["--domain".to_owned(), (*d).to_owned()]);
    }
    let (code, out, err) = mtasts(a).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v["secret"].as_str().unwrap().to_owned()
}

/// `mtasts domain <args> --server http://ADMIN --token T --format json`: status and JSON.
async fn domain(admin: SocketAddr, token: &str, args: &[&str]) -> (i32, Value) {
    let mut a: Vec<String> = vec!["domain".into()];
    a.extend(args.iter().map(|x| (*x).to_owned()));
    let server = format!("http://{admin}");
    a.extend(["--server", &server, "--token", token, "--format", "json"].map(str::to_owned));
    let (code, out, err) = mtasts(a).await;
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}\nstderr: {err}"));
    (code, v)
}

/// A refusal or failure as the CLI reports it: (exit status, the error code on stdout).
fn failure((code, v): (i32, Value)) -> (i32, String) {
    let e = v["error"]["code"].as_str();
    (
        code,
        e.unwrap_or_else(|| panic!("no error: {v}")).to_owned(),
    )
}

fn start_serve(dir: &tempfile::TempDir, n: u8, store: &str) -> (Serve, SocketAddr, SocketAddr) {
    let ip = Ipv4Addr::new(127, 0, 0, n);
    let (https, admin) = (free_addr(ip), free_addr(ip));
    let log = dir.path().join(format!("serve{n}.log"));
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
        .args(["--set", "store.acquire_timeout=1", "--set", "grace=1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (Serve { child, log }, https, admin)
}

/// Waits (at most 15 s) until `/health` answers `status` with `"serving": {"stale": stale}`.
async fn health_is(admin: SocketAddr, status: u16, stale: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(admin).await;
        if let Some((s, v)) = &h
            && *s == status
            && v["serving"]["stale"] == stale
        {
            return v.clone();
        }
        assert!(Instant::now() < deadline, "{admin}: /health {h:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The policy served at `https` for `mta-sts.<DOMAIN>` (SNI), if any.
async fn policy(pki: &Pki, https: SocketAddr) -> Option<String> {
    let settings = FetchSettings {
        port: https.port(),
        timeout: Duration::from_secs(3),
        ..FetchSettings::default()
    };
    let tls = TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now());
    let f = fetch_policy_at(DOMAIN, &[https.ip()], &tls, &settings).await;
    let body = f.body.filter(|_| f.status == Some(200))?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

/// Fetches until the policy contains `needle`, for at most `within`; how long it took.
async fn served_within(pki: &Pki, https: SocketAddr, needle: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let body = policy(pki, https).await;
        if body.as_deref().is_some_and(|b| b.contains(needle)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{https}: {needle:?} not served within {within:?}: {body:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_postgres_share_changes_and_survive_its_loss() {
    let Some(db) = TestDatabase::create("mtasts_cli", "two_serve_processes").await else {
        return;
    };
    let mut relay = Relay::start(0, db.server_addr()).await;
    let via = db.url_via(relay.port);
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new().unwrap();
    let secret = token(&via, "ops", &[]).await;
    let scoped = token(&via, "other", &["other.example"]).await;

    let (_s1, https1, admin1) = start_serve(&dir, 1, &via);
    let (_s2, https2, admin2) = start_serve(&dir, 2, &via);
    for admin in [admin1, admin2] {
        let h = health_is(admin, 200, false).await;
        assert_eq!(h["status"], "ok", "{h}");
    }

    // Added and its certificate imported through instance 1; served by instance 2.
    let mx = "mx.shared.example";
    let (code, v) = domain(admin1, &secret, &["add", DOMAIN, "--mx", mx]).await;
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["domain"]["state"], "testing", "{v}");
    let cert = pki
        .issue(&format!("mta-sts.{DOMAIN}"), Defect::Valid)
        .unwrap();
    let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&c, cert.chain_pem()).unwrap();
    std::fs::write(&k, cert.key_pem()).unwrap();
    let (c, k) = (c.display().to_string(), k.display().to_string());
    let import = ["cert", "import", DOMAIN, "--cert", &c, "--key", &k];
    let started = Instant::now();
    let (code, v) = domain(admin1, &secret, &import).await;
    let cli = started.elapsed();
    assert_eq!(code, 0, "{v}");
    let after = served_within(&pki, https2, mx, Duration::from_secs(5).saturating_sub(cli)).await;
    eprintln!(
        "instance 2 served {DOMAIN} {after:?} after `mtasts domain cert import --server \
         <instance 1>` returned ({:?} after it started)",
        cli + after
    );
    served_within(&pki, https1, mx, Duration::from_secs(1)).await;

    // Refusals as the CLI reports them: exit 1, the admin API's code on stdout.
    let r = failure(domain(admin2, &scoped, &["show", DOMAIN]).await);
    assert_eq!(r, (1, "not_found".into()));
    let r = failure(domain(admin1, &scoped, &["set", DOMAIN, "--max-age", "600"]).await);
    assert_eq!(r, (1, "not_found".into()));
    let wrong = format!("mtasts_{}", "0".repeat(64));
    let r = failure(domain(admin1, &wrong, &["show", DOMAIN]).await);
    assert_eq!(r, (1, "unauthorized".into()));

    // PostgreSQL cut off: both say so on /health and keep serving the last snapshot; a write
    // cannot be made (exit 3: out of reach, not refused).
    relay.cut().await;
    for (https, admin) in [(https1, admin1), (https2, admin2)] {
        let h = health_is(admin, 503, true).await;
        assert_eq!(h["status"], "unavailable", "{h}");
        assert_eq!(h["serving"]["domains"], 1, "{h}");
        served_within(&pki, https, mx, Duration::from_secs(1)).await;
    }
    let r = failure(domain(admin2, &secret, &["set", DOMAIN, "--max-age", "600"]).await);
    assert_eq!(r, (3, "store_unavailable".into()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    for https in [https1, https2] {
        served_within(&pki, https, mx, Duration::from_secs(1)).await;
    }

    // Back: a change made through instance 2 is served by both.
    relay.restore().await;
    for admin in [admin1, admin2] {
        health_is(admin, 200, false).await;
    }
    let (code, v) = domain(admin2, &secret, &["set", DOMAIN, "--max-age", "3600"]).await;
    assert_eq!(code, 0, "{v}");
    for https in [https2, https1] {
        served_within(&pki, https, "max_age: 3600", Duration::from_secs(5)).await;
    }
}
