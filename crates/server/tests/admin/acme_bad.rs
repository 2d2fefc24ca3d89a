//! The ACME engine against what goes wrong: a CA that cannot be reached, is not trusted,
//! answers errors, garbage, too much or too slowly (a scripted HTTPS host), a validation
//! that fails (a real Pebble that cannot reach us), and names that do not resolve or cannot
//! be looked up. Each ends as one recorded failure with a reason in plain words and a backoff;
//! nothing half-done stays in the store (no certificate, no challenge, no lease, no account
//! from a failed registration), and a name that is not ours spends nothing of the CA's order
//! budget.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::support::TestDb;
use mtasts_net::dns::{Resolver, ResolverSettings};
use mtasts_server::acme::{AcmeConfig, Challenges, Engine};
use mtasts_server::hosting::Hosting;
use mtasts_store::{AcmeState, Store};
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::https::{HttpResponse, PolicyHost};
use mtasts_testnet::pebble::{Pebble, PebbleOptions};
use mtasts_testnet::pki::{Defect, Pki};
use time::OffsetDateTime;

const DOMAIN: &str = "a.test";
/// The first backoff configured; the recorded next attempt must be at least half of it away.
const RETRY_MIN: Duration = Duration::from_secs(600);

/// A store holding `DOMAIN` (no certificate yet), and a DNS server where `mta-sts.a.test` is
/// 127.0.0.1 (this server) and `mta-sts.nx.test` does not exist.
async fn setup() -> (TestDb, Store, DnsServer) {
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    dns.set_zones([
        ("a.test.", "mta-sts 60 IN A 127.0.0.1\n"),
        ("nx.test.", "www 60 IN A 127.0.0.1\n"),
    ])
    .unwrap();
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    add(&store, DOMAIN).await;
    (db, store, dns)
}

async fn add(store: &Store, domain: &str) {
    crate::support::add_domain(store, domain, Default::default()).await;
}

/// An engine for the CA at `directory` (trusting `root`, a PEM file), resolving through `dns`.
fn make_engine(
    store: &Store,
    directory: &str,
    root: Option<&std::path::Path>,
    dns: SocketAddr,
) -> Engine {
    let cfg = AcmeConfig {
        directory: Some(directory.to_owned()),
        root: root.map(ToOwned::to_owned),
        challenges: vec!["http-01".into()],
        retry_min: RETRY_MIN,
        request_timeout: Duration::from_secs(1),
        order_timeout: Duration::from_secs(10),
        ..AcmeConfig::default()
    };
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![dns],
        timeout: Some(Duration::from_secs(1)),
        ..ResolverSettings::default()
    })
    .unwrap();
    let hosting = Hosting {
        public_addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        ..Hosting::default()
    };
    Engine::new(
        store.clone(),
        cfg,
        hosting,
        resolver,
        Challenges::new(store.clone()),
    )
    .unwrap()
}

/// Rows of `table` in the SQLite store at `url`.
async fn rows(url: &str, table: &str) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut c)
        .await
        .unwrap();
    let _ = c.close().await;
    n
}

/// One round on `domain` failed and left exactly its record: one failure with a reason
/// containing every one of `expect`, a backoff, no lease, no certificate, no challenge.
async fn failed_cleanly(db: &TestDb, store: &Store, domain: &str, expect: &[&str]) -> AcmeState {
    let state = store.acme_state(domain).await.unwrap().unwrap();
    let error = state.last_error.clone().unwrap_or_default();
    for e in expect {
        assert!(error.contains(e), "{domain}: {e:?} not in {error:?}");
    }
    assert_eq!(state.failures, 1, "{state:?}");
    let now = OffsetDateTime::now_utc();
    assert!(
        state.next_attempt > now + RETRY_MIN / 2 - Duration::from_secs(5),
        "backed off: {state:?}"
    );
    assert_eq!(
        (state.lease_holder.as_deref(), state.lease_until),
        (None, None)
    );
    assert!(store.certificate(domain).await.unwrap().is_none());
    assert_eq!(
        rows(&db.url, "acme_challenges").await,
        0,
        "no challenge left"
    );
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_fails_or_answers_garbage_is_one_clear_failure_and_nothing_half_done() {
    let pki = Pki::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, pki.root_pem()).unwrap();
    let cert = pki.issue("localhost", Defect::Valid).unwrap();
    let problem = |status: u16, detail: &str| HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "application/problem+json".into())],
        body: serde_json::json!({
            "type": "urn:ietf:params:acme:error:serverInternal",
            "detail": detail,
        })
        .to_string()
        .into_bytes(),
        delay: None,
    };
    let mut huge = HttpResponse::policy(vec![b'{'; 2 * 1024 * 1024]);
    huge.headers = vec![("Content-Type".into(), "application/json".into())];
    let cases: Vec<(&str, HttpResponse, bool, &[&str])> = vec![
        (
            "an error status with an HTML page",
            {
                let mut r = HttpResponse::html("<h1>502 Bad Gateway</h1>");
                r.status = 502;
                r
            },
            true,
            &[
                "502 Bad Gateway (text/html",
                "not ACME",
                "<h1>502 Bad Gateway</h1>",
            ],
        ),
        (
            "a problem document, its detail hostile",
            problem(503, "down\u{1b}[2J for maintenance"),
            true,
            &[
                "503 Service Unavailable: the CA refused (serverInternal)",
                "down",
                "maintenance",
            ],
        ),
        (
            "200 with something that is not JSON",
            HttpResponse::policy("version: STSv1\r\n"),
            true,
            &["not ACME JSON"],
        ),
        (
            "200 with JSON that is not a directory",
            {
                let mut r = HttpResponse::policy(r#"{"hello": "world"}"#);
                r.headers = vec![("Content-Type".into(), "application/json".into())];
                r
            },
            true,
            &["not ACME JSON"],
        ),
        ("a 2 MiB body", huge, true, &["is larger than 1024 KiB"]),
        (
            "no answer within the request time-out",
            HttpResponse::policy("{}").with_delay(Duration::from_secs(5)),
            true,
            &["did not answer within 1 s"],
        ),
        (
            "a certificate we do not trust (no acme.root)",
            HttpResponse::policy("{}"),
            false,
            &["cannot reach the CA", "certificate"],
        ),
    ];
    for (what, response, trusted, expect) in cases {
        let (db, store, dns) = setup().await;
        let host = PolicyHost::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            cert.server_config.clone(),
            response,
        )
        .await
        .unwrap();
        let url = format!("https://localhost:{}/dir", host.addr().port());
        let engine = make_engine(&store, &url, trusted.then_some(root.as_path()), dns.addr());
        let started = std::time::Instant::now();
        assert_eq!(engine.round().await, 0, "{what}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{what}: bounded"
        );
        let state = failed_cleanly(&db, &store, DOMAIN, expect).await;
        let error = state.last_error.unwrap();
        assert!(!error.chars().any(char::is_control), "{what}: {error:?}");
        assert_eq!(
            rows(&db.url, "acme_accounts").await,
            0,
            "{what}: no account"
        );
        // The next round does nothing: the failure is backed off, not retried at every poll.
        let requests = host.requests();
        assert_eq!(engine.round().await, 0);
        assert_eq!(
            host.requests(),
            requests,
            "{what}: retried before the backoff"
        );
    }

    // Nobody listening.
    let (db, store, dns) = setup().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}/dir",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let engine = make_engine(&store, &url, Some(&root), dns.addr());
    assert_eq!(engine.round().await, 0);
    failed_cleanly(&db, &store, DOMAIN, &["cannot reach the CA", "refused"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_do_not_resolve_or_cannot_be_looked_up_are_not_ordered() {
    let (db, store, dns) = setup().await;
    add(&store, "nx.test").await;
    // The CA is never reached for these: an address nobody listens on would say so.
    let engine = make_engine(&store, "https://localhost:9/dir", None, dns.addr());
    assert_eq!(engine.round().await, 0);
    failed_cleanly(
        &db,
        &store,
        "nx.test",
        &["not ordered", "mta-sts.nx.test does not exist (NXDOMAIN)"],
    )
    .await;
    // (a.test pointed at us: it reached the CA, which is not there.)
    let a = store.acme_state(DOMAIN).await.unwrap().unwrap();
    assert!(a.last_error.unwrap().contains("cannot reach the CA"));

    // DNS out of reach: "could not look", not "does not point at us".
    let (db, store, _dns) = setup().await;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let engine = make_engine(
        &store,
        "https://localhost:9/dir",
        None,
        silent.local_addr().unwrap(),
    );
    assert_eq!(engine.round().await, 0);
    failed_cleanly(
        &db,
        &store,
        DOMAIN,
        &["not ordered", "could not look the name up"],
    )
    .await;
    // Neither spent anything of the CA's order budget.
    assert_eq!(rows(&db.url, "acme_orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_leaves_no_challenge_behind() {
    let (db, store, dns) = setup().await;
    // Pebble's validator connects to 127.0.0.1 on ports nobody listens on: this engine's
    // challenge answers are not wired to any listener.
    let closed = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let Some(pebble) = Pebble::start(PebbleOptions::new(dns.addr(), closed(0), closed(1)))
        .await
        .unwrap()
    else {
        return;
    };
    let engine = make_engine(
        &store,
        &pebble.directory_url(),
        Some(pebble.api_root_pem_path()),
        dns.addr(),
    );
    assert_eq!(engine.round().await, 0);
    let state = failed_cleanly(&db, &store, DOMAIN, &["validation failed"]).await;
    let error = state.last_error.unwrap();
    assert!(
        error.contains("connection refused") || error.contains("connect"),
        "{error}"
    );
    // The account registered on the way is kept (the next attempt reuses it), sealed.
    assert_eq!(rows(&db.url, "acme_accounts").await, 1);
    assert_eq!(rows(&db.url, "acme_orders").await, 1, "one order counted");
}
