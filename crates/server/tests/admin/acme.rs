//! The ACME engine end to end inside `daemon::run`, against a real Pebble (Debian's) whose
//! validator resolves through the testnet DNS: a certificate by HTTP-01, one by TLS-ALPN-01
//! (the challenge answered on the policy listener), and a name that points elsewhere refused
//! before anything is ordered, its reason recorded. Pebble missing: SKIP, a failure when
//! `CI=true` (`mtasts_testnet::pebble`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::support::TestDb;
use mtasts_net::service;
use mtasts_server::config::ServeConfig;
use mtasts_server::daemon::Daemon;
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
    crate::support::add_domain(store, domain, Default::default()).await;
}

/// A TLS handshake offering only `acme-tls/1`, as a TLS-ALPN-01 validator makes.
async fn acme_tls_handshake(port: u16, name: &str) -> Result<(), String> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(server, tcp)
        .await
        .map(drop)
        .map_err(|e| format!("{e:?}"))
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
    // A validation handshake for a name with no challenge pending is refused (no protocol in
    // common), not answered with the policy certificate.
    let err = acme_tls_handshake(https_port, "mta-sts.http.test")
        .await
        .unwrap_err();
    assert!(err.contains("NoApplicationProtocol"), "{err}");
    control.stop();
    task.await.unwrap();
    if std::env::var_os("MTASTS_TEST_VERBOSE").is_some() {
        eprintln!("{}", pebble.log());
    }
}

/// Port 80 from strangers: only a token-shaped path under the challenge prefix is looked up
/// at all; a challenge another instance stored is answered, but only for its own name and
/// until it expires; anything else is a 404 (`None`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_answers_only_a_live_token_for_its_own_name() {
    use mtasts_server::acme::Challenges;
    use mtasts_server::http::ChallengeResponder;
    use mtasts_store::{Challenge, ChallengeKind};

    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let now = OffsetDateTime::now_utc();
    let stored = |token: &str, expires_at| Challenge {
        token: token.into(),
        name: "mta-sts.a.test".into(),
        kind: ChallengeKind::Http01,
        key_authorization: format!("{token}.thumbprint"),
        expires_at,
    };
    // Stored by "another instance": this responder's memory is empty.
    store
        .put_challenge(&stored("live", now + time::Duration::minutes(5)))
        .await
        .unwrap();
    store
        .put_challenge(&stored("old", now - time::Duration::seconds(1)))
        .await
        .unwrap();
    let alpn = Challenge {
        token: "alpn".into(),
        kind: ChallengeKind::TlsAlpn01,
        ..stored("x", now + time::Duration::minutes(5))
    };
    store.put_challenge(&alpn).await.unwrap();
    let c = Challenges::new(store.clone());
    let ask = |host: &str, path: &str| {
        let found = c.respond(host, path);
        async move {
            match found {
                Some(f) => Some(f.await),
                None => None,
            }
        }
    };
    let p = "/.well-known/acme-challenge/";
    assert_eq!(
        ask("mta-sts.a.test", &format!("{p}live")).await,
        Some(Some(bytes::Bytes::from_static(b"live.thumbprint")))
    );
    assert_eq!(
        ask("MTA-STS.A.TEST.", &format!("{p}live")).await,
        Some(Some("live.thumbprint".into()))
    );
    // Looked up, not answered: another name, expired, unknown, or a TLS-ALPN-01 token.
    for (host, token) in [
        ("mta-sts.b.test", "live"),
        ("mta-sts.a.test", "old"),
        ("mta-sts.a.test", "nope"),
        ("mta-sts.a.test", "alpn"),
    ] {
        assert_eq!(
            ask(host, &format!("{p}{token}")).await,
            Some(None),
            "{host} {token}"
        );
    }
    // Not even looked up: not a token, or not the challenge path.
    let long = "a".repeat(129);
    for path in [
        p.to_owned(),
        format!("{p}../etc"),
        format!("{p}a.b"),
        format!("{p}{long}"),
        format!("{p}live/x"),
        "/live".into(),
        "/.well-known/acme-challenge".into(),
    ] {
        assert!(ask("mta-sts.a.test", &path).await.is_none(), "{path}");
    }
}
