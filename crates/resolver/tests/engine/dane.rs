//! D22: a usable DNSSEC-validated TLSA set wins over MTA-STS (`dane-only` to Postfix).

use crate::fixture::*;
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::https::FetchSettings;
use mtasts_net::tls::TlsProbeConfig;
use mtasts_resolver::discover::Net;
use mtasts_resolver::{Engine, Reply};
use mtasts_testnet::dnssec::Tamper;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::tlsa::{Matching, Selector, Usage, tlsa_data};
use mtasts_testnet::world::Dnssec;
use tokio::time::Duration;

/// `example.test` with an enforce policy for mx1 and, when `tlsa`, a TLSA record matching mx1.
async fn world(dnssec: Dnssec, tlsa: bool) -> World {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
    w.policy_host(
        Defect::Valid,
        HttpResponse::policy(
            "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n",
        ),
    )
    .await;
    let chain = w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    if tlsa {
        let data = tlsa_data(&chain[0], Usage::DaneEe, Selector::Spki, Matching::Sha256).unwrap();
        w.zone(&format!("_25._tcp.mx1 300 IN TLSA {data}"));
    }
    w.dnssec(dnssec);
    w
}

fn engine(w: &World, dane: bool) -> Engine {
    engine_with_anchor(w, dane, w.trust_anchor())
}

fn engine_with_anchor(w: &World, dane: bool, anchor: String) -> Engine {
    let dns = Resolver::new(&ResolverSettings {
        nameservers: vec![w.dns.addr()],
        timeout: Some(Duration::from_millis(800)),
        trust_anchor: TrustAnchor::Keys(anchor),
    })
    .unwrap();
    let net = Net {
        dns,
        tls: TlsProbeConfig::with_roots(w.pki.root_store()).with_now(w.pki.now()),
        fetch: FetchSettings {
            port: w.https_port,
            timeout: Duration::from_secs(2),
            ..FetchSettings::default()
        },
    };
    let settings = mtasts_resolver::Settings { dane, ..quick() };
    Engine::new(net, settings, zones(v310()))
}

const ENFORCE: &str = "secure match=mx1.example.test servername=hostname";

#[tokio::test]
async fn a_secure_usable_tlsa_set_wins_over_mta_sts() {
    let w = world(Dnssec::Signed, true).await;
    let a = engine(&w, true).query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::Ok("dane-only".into()), "{}", a.why);
    assert!(a.why.contains("D22"), "{}", a.why);
    // With DANE switched off, the MTA-STS policy applies.
    let a = engine(&w, false).query("postfix", DOMAIN).await;
    assert!(
        matches!(&a.reply, Reply::Ok(r) if r.starts_with(ENFORCE)),
        "{:?}",
        a.reply
    );
}

#[tokio::test]
async fn without_a_usable_secure_tlsa_set_mta_sts_applies() {
    for (dnssec, tlsa, what) in [
        (Dnssec::Signed, false, "signed zone, no TLSA"),
        (Dnssec::Unsigned, true, "TLSA in an unsigned zone"),
    ] {
        let w = world(dnssec, tlsa).await;
        let a = engine(&w, true).query("postfix", DOMAIN).await;
        assert!(
            matches!(&a.reply, Reply::Ok(r) if r.starts_with(ENFORCE)),
            "{what}: {:?}",
            a.reply
        );
    }
}

/// RFC 7672 §2.1.2 and RFC 8461 §2: a host whose TLSA lookup is bogus must not be used, and the
/// MTA-STS answer must not let Postfix deliver to it over WebPKI.
#[tokio::test]
async fn a_bogus_tlsa_lookup_enforces_dane_instead_of_falling_back_to_mta_sts() {
    let mut w = world(Dnssec::Signed, true).await;
    w.tamper("_25._tcp.mx1", "TLSA", Tamper::BadSignature);
    let a = engine(&w, true).query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::Ok("dane-only".into()), "{}", a.why);
    assert!(a.why.contains("never overrides"), "{}", a.why);
}

/// One host with TLSA records is enough: `dane-only` lets Postfix enforce DANE per host.
#[tokio::test]
async fn one_host_with_tlsa_among_several_enforces_dane() {
    let mut w = world(Dnssec::Signed, true).await;
    w.mx_with_cert("mx2", 20, 2, Defect::Valid).await;
    let a = engine(&w, true).query("postfix", DOMAIN).await;
    assert_eq!(a.reply, Reply::Ok("dane-only".into()), "{}", a.why);
}

/// A bogus MX RRset: nothing can be decided, so the lookup is deferred with the reason.
#[tokio::test]
async fn a_bogus_mx_rrset_defers_rather_than_answering_mta_sts() {
    let w = world(Dnssec::WrongDs, true).await;
    let e = engine(&w, true);
    let a = e.query("postfix", DOMAIN).await;
    assert!(
        matches!(&a.reply, Reply::Temp(t) if t.contains("could not be DNSSEC-validated")),
        "{:?} {}",
        a.reply,
        a.why
    );
    assert_eq!(
        e.dnssec_root().valid(),
        Some(true),
        "the root itself validates"
    );
    assert!(e.health().await.is_ok());
}

/// A validator that cannot validate the root at all is this system's fault: said loudly
/// (health, metrics), and no domain's answer is turned into a deferral because of it.
#[tokio::test]
async fn a_validator_that_cannot_validate_the_root_is_a_system_fault() {
    let w = world(Dnssec::Signed, true).await;
    let other = World::new().await;
    let e = engine_with_anchor(&w, true, other.trust_anchor());
    let a = e.query("postfix", DOMAIN).await;
    assert!(
        matches!(&a.reply, Reply::Ok(r) if r.starts_with(ENFORCE)),
        "{:?} {}",
        a.reply,
        a.why
    );
    assert_eq!(e.dnssec_root().valid(), Some(false));
    let why = e.health().await.unwrap_err();
    assert!(why.contains("DNSSEC validation is broken"), "{why}");
    assert!(e.metrics().contains("mtasts_resolver_dnssec_root_valid 0"));
}
