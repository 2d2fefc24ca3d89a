//! `daemon::run`: the store, the snapshot, the listeners and the store's changes, end to end.
//! Policies are fetched with our own client (`mtasts_net::https`) trusting the testnet PKI.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::api::{call, token};
use crate::support::{Relay, TestDb, both};
use hyper::{Method, StatusCode};
use mtasts_core::policy::{Mode, parse_policy};
use mtasts_net::https::{FetchSettings, PolicyFetch, fetch_policy_at};
use mtasts_net::service::{self, Control};
use mtasts_net::tls::TlsProbeConfig;
use mtasts_server::config::ServeConfig;
use mtasts_server::daemon::Daemon;
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_store::{StoreOptions, TokenScope};
use mtasts_testnet::pki::{Defect, Pki};
use serde_json::json;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A running daemon and its switch.
struct Running {
    https: u16,
    admin: std::net::SocketAddr,
    control: Control,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(url: &str, options: &StoreOptions) -> Self {
        let mut config = ServeConfig::default();
        config.store.url = url.to_owned();
        config.store.key = options.key.as_ref().map(|k| k.to_hex());
        config.store.acquire_timeout = Duration::from_secs(1);
        config.https = "127.0.0.1:0".parse().unwrap();
        config.http = Some("127.0.0.1:0".parse().unwrap());
        config.admin = "127.0.0.1:0".parse().unwrap();
        config.reload_poll = Duration::from_millis(200);
        config.grace = Duration::from_secs(1);
        let daemon = Daemon::start(config).await.unwrap();
        let (control, shutdown) = service::channel();
        let (https, admin) = (daemon.https_addr().port(), daemon.admin_addr());
        assert!(daemon.http_addr().is_some());
        let task = tokio::spawn(daemon.run(shutdown));
        Self {
            https,
            admin,
            control,
            task,
        }
    }

    async fn fetch(&self, pki: &Pki, domain: &str) -> PolicyFetch {
        let settings = FetchSettings {
            port: self.https,
            timeout: Duration::from_secs(5),
            ..FetchSettings::default()
        };
        let tls = TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now());
        fetch_policy_at(domain, &[LOCALHOST], &tls, &settings).await
    }

    /// Fetches until the served body contains `needle`, for at most `within`.
    async fn served_within(&self, pki: &Pki, domain: &str, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let f = self.fetch(pki, domain).await;
            let body = String::from_utf8_lossy(f.body.as_deref().unwrap_or_default()).into_owned();
            if body.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle} not served within {within:?}: {:?} {body}",
                f.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(self) {
        self.control.stop();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the daemon drains within its grace")
            .unwrap();
    }
}

/// A testnet PKI certificate for `mta-sts.<domain>`: (chain PEM, key PEM).
fn cert_pem(pki: &Pki, domain: &str) -> (String, String) {
    let issued = pki
        .issue(&format!("mta-sts.{domain}"), Defect::Valid)
        .unwrap();
    (issued.chain_pem(), issued.key_pem())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Adds `domain` (testing, `mx`) through the domain operations and imports its certificate.
async fn add_hosted(domains: &Domains, pki: &Pki, domain: &str, mx: &str) {
    let req = AddDomain {
        domain: domain.to_owned(),
        mx: MxSource::Patterns(vec![mx.to_owned()]),
        mode: Mode::Testing,
        max_age: None,
        force: None,
        delegation: Default::default(),
    };
    domains.add(&req, "cli", now()).await.unwrap();
    let (chain, key) = cert_pem(pki, domain);
    domains
        .import_certificate(domain, &chain, &key, "cli", None, now())
        .await
        .unwrap();
}

fn domains_of(store: mtasts_store::Store) -> Domains {
    Domains::new(store, mtasts_core::rollout::RolloutConfig::default()).unwrap()
}

both! {
    async fn daemon_serves_stored_domains_and_skips_those_without_a_certificate(db) {
        let pki = Pki::new().unwrap();
        let store = db.open().await;
        let domains = domains_of(store.clone());
        add_hosted(&domains, &pki, "served.example", "mx1.served.example").await;
        let bare = AddDomain {
            domain: "nocert.example".into(),
            mx: MxSource::Patterns(vec!["mx.nocert.example".into()]),
            mode: Mode::Testing,
            max_age: None,
            force: None,
            delegation: Default::default(),
        };
        domains.add(&bare, "cli", now()).await.unwrap();
        let running = Running::start(&db.url, &db.options).await;
        let f = running.fetch(&pki, "served.example").await;
        assert_eq!(f.status, Some(200), "{:?}", f.failure);
        assert!(f.failure.is_none(), "{:?}", f.failure);
        let body = f.body.unwrap();
        let parsed = parse_policy(&body);
        // Clean: valid, and warned only that it is in testing and that `.example` names look
        // like placeholders.
        assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        assert!(
            parsed
                .diagnostics
                .iter()
                .all(|d| ["policy.mode.testing", "policy.mx.placeholder"].contains(&d.id)),
            "{:?}",
            parsed.diagnostics
        );
        assert_eq!(parsed.policy.unwrap().mode, Mode::Testing);
        let stored = store.domain("served.example").await.unwrap().unwrap();
        assert_eq!(body, stored.policy.text.as_bytes(), "the stored text is what is served");
        // No certificate: not served, and refused like any unknown name.
        let f = running.fetch(&pki, "nocert.example").await;
        assert_eq!(f.status, None);
        assert!(f.failure.is_some());
        running.stop().await;
    }

    async fn a_change_made_while_running_is_served_within_seconds(db) {
        let pki = Pki::new().unwrap();
        let domains = domains_of(db.open().await);
        add_hosted(&domains, &pki, "live.example", "mx1.live.example").await;
        let running = Running::start(&db.url, &db.options).await;
        running.served_within(&pki, "live.example", "mx1.live.example", Duration::from_secs(1)).await;
        domains
            .set("live.example", Some(&["mx2.live.example".to_owned()]), None, "cli", None, now())
            .await
            .unwrap();
        running.served_within(&pki, "live.example", "mx2.live.example", Duration::from_secs(3)).await;
        // A domain added (with its certificate) while running is served too.
        add_hosted(&domains, &pki, "later.example", "mx.later.example").await;
        running.served_within(&pki, "later.example", "mx.later.example", Duration::from_secs(3)).await;
        running.stop().await;
    }

    async fn reload_event_rereads_the_snapshot_and_stop_drains(db) {
        let pki = Pki::new().unwrap();
        let domains = domains_of(db.open().await);
        let running = Running::start(&db.url, &db.options).await;
        add_hosted(&domains, &pki, "hup.example", "mx.hup.example").await;
        running.control.reload();
        running.served_within(&pki, "hup.example", "mx.hup.example", Duration::from_secs(3)).await;
        let (status, _, health) = call(running.admin, Method::GET, "/health", None, None).await;
        assert_eq!(status, StatusCode::OK, "{health}");
        assert_eq!(health["serving"]["domains"], 1, "{health}");
        assert_eq!(health["serving"]["stale"], false, "{health}");
        assert_eq!(health["serving"]["generation"], health["generation"], "{health}");
        let started = Instant::now();
        running.stop().await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// Two daemons on one PostgreSQL: what one instance's admin API writes, the other serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_serve_a_domain_added_through_either_within_5_s() {
    let Some(db) = TestDb::postgres("two_instances").await else {
        return;
    };
    let pki = Pki::new().unwrap();
    let store = db.open().await;
    let a = Running::start(&db.url, &db.options).await;
    let b = Running::start(&db.url, &db.options).await;
    let secret = token(&store, "ops", TokenScope::All).await;
    let (status, _, body) = call(
        a.admin,
        Method::POST,
        "/v1/domains",
        Some(&secret),
        Some(json!({ "domain": "shared.example", "mx": ["mx.shared.example"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (chain_pem, key_pem) = cert_pem(&pki, "shared.example");
    let started = Instant::now();
    let (status, _, body) = call(
        a.admin,
        Method::PUT,
        "/v1/domains/shared.example/certificate",
        Some(&secret),
        Some(json!({ "chain_pem": chain_pem, "key_pem": key_pem })),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    b.served_within(
        &pki,
        "shared.example",
        "mx.shared.example",
        Duration::from_secs(5),
    )
    .await;
    eprintln!("served by the other instance after {:?}", started.elapsed());
    a.served_within(
        &pki,
        "shared.example",
        "mx.shared.example",
        Duration::from_secs(5),
    )
    .await;
    a.stop().await;
    b.stop().await;
    store.close().await;
}

/// PostgreSQL cut off (every connection through a relay dropped): both instances keep serving,
/// `/health` says the store is unavailable, and they catch up once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_cut_off_leaves_both_instances_serving_and_they_catch_up() {
    let Some(db) = TestDb::postgres("store_cut_off").await else {
        return;
    };
    let pki = Pki::new().unwrap();
    let direct = domains_of(db.open().await);
    add_hosted(&direct, &pki, "steady.example", "mx1.steady.example").await;
    let mut relay = Relay::start(0, db.server_addr()).await;
    let via = db.url_via(relay.port);
    let a = Running::start(&via, &db.options).await;
    let b = Running::start(&via, &db.options).await;
    for r in [&a, &b] {
        r.served_within(
            &pki,
            "steady.example",
            "mx1.steady.example",
            Duration::from_secs(1),
        )
        .await;
    }
    relay.cut().await;
    // A change the instances cannot see while the store is cut off.
    direct
        .set(
            "steady.example",
            Some(&["mx2.steady.example".to_owned()]),
            None,
            "cli",
            None,
            now(),
        )
        .await
        .unwrap();
    // Past a few reload polls and store timeouts, both still serve the last snapshot.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for r in [&a, &b] {
        r.served_within(
            &pki,
            "steady.example",
            "mx1.steady.example",
            Duration::from_secs(1),
        )
        .await;
        let (status, _, health) = call(r.admin, Method::GET, "/health", None, None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
        assert_eq!(health["status"], "unavailable");
        assert_eq!(health["serving"]["stale"], true, "{health}");
        assert_eq!(health["serving"]["domains"], 1, "{health}");
    }
    relay.restore().await;
    for r in [&a, &b] {
        r.served_within(
            &pki,
            "steady.example",
            "mx2.steady.example",
            Duration::from_secs(10),
        )
        .await;
    }
    a.stop().await;
    b.stop().await;
}

/// PostgreSQL cut off and back with nothing changed meanwhile: the outage ends all the same
/// (`/health` no longer says the snapshot is stale), without waiting for the next change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_back_unchanged_ends_the_outage() {
    let Some(db) = TestDb::postgres("store_back_unchanged").await else {
        return;
    };
    let mut relay = Relay::start(0, db.server_addr()).await;
    let r = Running::start(&db.url_via(relay.port), &db.options).await;
    let stale_within = |want: bool| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, _, health) = call(r.admin, Method::GET, "/health", None, None).await;
            if health["serving"]["stale"] == want {
                return health;
            }
            assert!(Instant::now() < deadline, "stale is not {want}: {health}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    relay.cut().await;
    stale_within(true).await;
    relay.restore().await;
    let health = stale_within(false).await;
    assert_eq!(health["status"], "ok", "{health}");
    r.stop().await;
}
