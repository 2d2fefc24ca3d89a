//! The RFC 2136 publisher against a real knotd (Debian's; SKIP without it, a failure when
//! `CI=true`): a fully delegated domain's TXT records appear in our zone; after a policy
//! change the id is updated only once this instance serves the new policy; an update the
//! server refuses is recorded with its reason and retried; a removed domain's records are
//! withdrawn.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::TestDb;
use mtasts_net::dns::{Lookup, Resolver, ResolverSettings};
use mtasts_server::domains::Domains;
use mtasts_server::hosted::HostedSet;
use mtasts_server::hosting::Hosting;
use mtasts_server::publish::{DnsUpdateConfig, Publisher, Round};
use mtasts_store::{Change, Delegation, Store};
use mtasts_testnet::knot::{Knot, Updates, Zone};
use mtasts_testnet::pki::{Defect, Pki};
use time::OffsetDateTime;

const ZONE: &str = "sts.provider.test";
const KEY: &str = "mtasts.provider.test";
const SECRET: &str = "hK2yc1sC0uVQ8l0m5v0Wb0Jp0lqHcTq3kZ4tqf2mF1E=";

fn config(server: SocketAddr) -> DnsUpdateConfig {
    DnsUpdateConfig {
        server: Some(server),
        zone: Some(ZONE.into()),
        key_name: Some(KEY.into()),
        key_secret: Some(SECRET.into()),
        settle: Duration::ZERO,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(1),
        ..DnsUpdateConfig::default()
    }
}

async fn txt(server: SocketAddr, name: &str) -> Vec<String> {
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![server],
        timeout: Some(Duration::from_secs(1)),
        ..ResolverSettings::default()
    })
    .unwrap();
    match resolver.txt(name).await.expect("knotd answers") {
        Lookup::Records { records, .. } => records
            .iter()
            .map(|t| String::from_utf8_lossy(&t.joined()).into_owned())
            .collect(),
        Lookup::NoData | Lookup::NxDomain => Vec::new(),
    }
}

/// Adds `domain` delegated in full, with a certificate, and returns the operations.
async fn hosted(store: &Store, pki: &Pki, domain: &str) -> Domains {
    let domains = crate::support::add_domain(store, domain, Delegation::Full).await;
    let now = OffsetDateTime::now_utc();
    let cert = pki
        .issue(&format!("mta-sts.{domain}"), Defect::Valid)
        .unwrap();
    domains
        .import_certificate(
            domain,
            &cert.chain_pem(),
            &cert.key_pem(),
            "test",
            None,
            now,
        )
        .await
        .unwrap();
    domains
}

async fn snapshot(store: &Store, set: &HostedSet) {
    set.replace(mtasts_server::daemon::load(store, &[]).await.unwrap().1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_follow_the_served_policy_and_are_withdrawn_with_the_domain() {
    let zones = [Zone {
        origin: ZONE,
        text: "",
        updates: Updates::Key,
    }];
    let Some(knot) = Knot::start_zones(&zones, Some((KEY, "hmac-sha256", SECRET)))
        .await
        .unwrap()
    else {
        return;
    };
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let pki = Pki::new().unwrap();
    let domains = hosted(&store, &pki, "a.test").await;
    let hosting = Hosting {
        zone: Some(ZONE.into()),
        tlsrpt_rua: Some("mailto:tlsrpt@provider.test".into()),
        ..Hosting::default()
    };
    let set = HostedSet::default();
    let cfg = config(knot.addr());
    let server = cfg.update_server().unwrap().unwrap();
    let publisher = Publisher::new(store.clone(), server, hosting, cfg, set.clone());
    let sts_name = format!("a.test._mta-sts.{ZONE}");

    // Not served yet (an empty snapshot): nothing is published.
    assert_eq!(
        publisher.round().await.unwrap(),
        Round {
            waiting: 1,
            ..Round::default()
        }
    );
    assert!(txt(knot.addr(), &sts_name).await.is_empty());
    snapshot(&store, &set).await;
    assert_eq!(
        publisher.round().await.unwrap(),
        Round {
            published: 1,
            ..Round::default()
        }
    );
    let first = store.domain("a.test").await.unwrap().unwrap().policy.id;
    assert_eq!(
        txt(knot.addr(), &sts_name).await,
        [format!("v=STSv1; id={first}")]
    );
    assert_eq!(
        txt(knot.addr(), &format!("a.test._smtp._tls.{ZONE}")).await,
        ["v=TLSRPTv1; rua=mailto:tlsrpt@provider.test"]
    );
    assert_eq!(
        publisher.round().await.unwrap(),
        Round::default(),
        "nothing to do"
    );

    // A new policy: the id waits until this instance serves it.
    let mx = vec!["mx.a.test".to_owned(), "mx2.a.test".to_owned()];
    domains
        .set(
            "a.test",
            Some(&mx),
            None,
            "test",
            None,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let second = store.domain("a.test").await.unwrap().unwrap().policy.id;
    assert_ne!(first, second);
    assert_eq!(
        publisher.round().await.unwrap(),
        Round {
            waiting: 1,
            ..Round::default()
        }
    );
    assert_eq!(
        txt(knot.addr(), &sts_name).await,
        [format!("v=STSv1; id={first}")]
    );
    snapshot(&store, &set).await;
    assert_eq!(
        publisher.round().await.unwrap(),
        Round {
            published: 1,
            ..Round::default()
        }
    );
    assert_eq!(
        txt(knot.addr(), &sts_name).await,
        [format!("v=STSv1; id={second}")]
    );

    // Removed: withdrawn from the zone, and forgotten.
    store
        .remove_domain("a.test", &Change::new("test", OffsetDateTime::now_utc()))
        .await
        .unwrap();
    assert_eq!(
        publisher.round().await.unwrap(),
        Round {
            withdrawn: 1,
            ..Round::default()
        }
    );
    assert!(txt(knot.addr(), &sts_name).await.is_empty());
    assert!(store.dns_published_all().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_update_is_recorded_with_its_reason_and_retried() {
    let zones = [Zone {
        origin: ZONE,
        text: "",
        updates: Updates::Denied,
    }];
    let Some(knot) = Knot::start_zones(&zones, Some((KEY, "hmac-sha256", SECRET)))
        .await
        .unwrap()
    else {
        return;
    };
    let db = TestDb::sqlite().await;
    let store = db.open().await;
    let pki = Pki::new().unwrap();
    hosted(&store, &pki, "a.test").await;
    let set = HostedSet::default();
    snapshot(&store, &set).await;
    let cfg = config(knot.addr());
    let server = cfg.update_server().unwrap().unwrap();
    let hosting = Hosting {
        zone: Some(ZONE.into()),
        ..Hosting::default()
    };
    let publisher = Publisher::new(store.clone(), server, hosting, cfg, set);
    for attempt in 1..=2 {
        assert_eq!(
            publisher.round().await.unwrap(),
            Round {
                failed: 1,
                ..Round::default()
            }
        );
        let p = store.dns_published("a.test").await.unwrap().unwrap();
        assert_eq!((p.failures, p.sts_value.as_deref()), (attempt, None));
        let why = p.last_error.unwrap();
        assert!(why.contains("BADKEY") && why.contains(ZONE), "{why}");
        // `domain show` reports it.
        let domains = Domains::new(store.clone(), Default::default()).unwrap();
        let shown = domains.show("a.test").await.unwrap();
        let u = shown.dns_update.clone().unwrap();
        assert_eq!(
            (u.failures, u.last_error.as_deref()),
            (attempt, Some(why.as_str()))
        );
        assert!(
            shown.to_string().contains("LAST DNS UPDATE ERROR"),
            "{shown}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
