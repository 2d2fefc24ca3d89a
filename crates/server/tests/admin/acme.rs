//! The ACME engine end to end inside `daemon::run`, against a real Pebble (Debian's) whose
//! validator resolves through the testnet DNS: a certificate by HTTP-01, one by TLS-ALPN-01
//! (the challenge answered on the policy listener), and a name that points elsewhere refused
//! before anything is ordered, its reason recorded. Pebble missing: SKIP, a failure when
//! `CI=true` (`mtasts_testnet::pebble`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::support::TestDb;
use mtasts_core::policy::Mode;
use mtasts_net::service;
use mtasts_server::config::ServeConfig;
use mtasts_server::daemon::Daemon;
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_store::{CertSource, Store};
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::pebble::{Pebble, PebbleOptions};
use time::OffsetDateTime;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn add(store: &Store, domain: &str) {
    let req = AddDomain {
        domain: domain.into(),
        mx: MxSource::Patterns(vec![format!("mx.{domain}")]),
        mode: Mode::Testing,
        max_age: None,
        force: None,
        delegation: Default::default(),
    };
    let domains = Domains::new(store.clone(), Default::default()).unwrap();
    domains
        .add(&req, "test", OffsetDateTime::now_utc())
        .await
        .unwrap();
}

/// Waits until `check` holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_issued_by_http01_and_tls_alpn01_and_foreign_names_are_not_ordered() {
    let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    dns.set_zones([
        ("http.test.", "mta-sts 60 IN A 127.0.0.1\n"),
        ("alpn.test.", "mta-sts 60 IN A 127.0.0.1\n"),
        ("elsewhere.test.", "mta-sts 60 IN A 192.0.2.7\n"),
    ])
    .unwrap();
    let (http_port, https_port) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(PebbleOptions::new(dns.addr(), http_port, https_port))
        .await
        .unwrap()
    else {
        return;
    };
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    add(&store, "http.test").await;
    add(&store, "elsewhere.test").await;

    let start = |challenges: &[&str]| {
        let mut config = ServeConfig::default();
        config.store.url = db.url.clone();
        config.https = SocketAddr::from(([127, 0, 0, 1], https_port));
        config.http = Some(SocketAddr::from(([127, 0, 0, 1], http_port)));
        config.admin = "127.0.0.1:0".parse().unwrap();
        config.reload_poll = Duration::from_millis(200);
        config.grace = Duration::from_secs(1);
        config.check.nameservers = vec![dns.addr().to_string()];
        config.check.drift_interval = Duration::ZERO;
        config.acme.directory = Some(pebble.directory_url());
        config.acme.root = Some(pebble.api_root_pem_path().to_owned());
        config.acme.challenges = challenges.iter().map(|c| (*c).to_owned()).collect();
        config.acme.poll = Duration::from_millis(200);
        config.hosting.public_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        config
    };
    let daemon = Daemon::start(start(&["http-01"])).await.unwrap();
    let (control, shutdown) = service::channel();
    let task = tokio::spawn(daemon.run(shutdown));
    eventually(
        Duration::from_secs(30),
        "an HTTP-01 certificate",
        || async { store.certificate("http.test").await.unwrap().is_some() },
    )
    .await;
    let cert = store.certificate("http.test").await.unwrap().unwrap();
    assert_eq!(cert.source, CertSource::Acme);
    let state = store.acme_state("http.test").await.unwrap().unwrap();
    assert!(
        state.next_renewal.unwrap() < cert.not_after,
        "renewal before expiry"
    );
    assert_eq!((state.failures, state.last_error), (0, None));
    // The name that points elsewhere: nothing ordered, the reason recorded.
    eventually(Duration::from_secs(10), "the refusal recorded", || async {
        store
            .acme_state("elsewhere.test")
            .await
            .unwrap()
            .is_some_and(|s| s.failures > 0)
    })
    .await;
    let state = store.acme_state("elsewhere.test").await.unwrap().unwrap();
    let error = state.last_error.unwrap();
    assert!(
        error.contains("192.0.2.7") && error.contains("not ordered"),
        "{error}"
    );
    assert!(store.certificate("elsewhere.test").await.unwrap().is_none());
    control.stop();
    task.await.unwrap();

    // Restarted with TLS-ALPN-01 only: a new domain gets its certificate on the policy port;
    // the first one is not ordered again.
    add(&store, "alpn.test").await;
    let daemon = Daemon::start(start(&["tls-alpn-01"])).await.unwrap();
    let (control, shutdown) = service::channel();
    let task = tokio::spawn(daemon.run(shutdown));
    eventually(
        Duration::from_secs(30),
        "a TLS-ALPN-01 certificate",
        || async { store.certificate("alpn.test").await.unwrap().is_some() },
    )
    .await;
    let again = store.certificate("http.test").await.unwrap().unwrap();
    assert_eq!(again.installed_at, cert.installed_at, "not ordered again");
    control.stop();
    task.await.unwrap();
    if std::env::var_os("MTASTS_TEST_VERBOSE").is_some() {
        eprintln!("{}", pebble.log());
    }
}
