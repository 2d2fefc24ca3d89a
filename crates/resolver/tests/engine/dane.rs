//! D22: a usable DNSSEC-validated TLSA set wins over MTA-STS (`dane-only` to Postfix).

use crate::fixture::*;
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::https::FetchSettings;
use mtasts_net::tls::TlsProbeConfig;
use mtasts_resolver::discover::Net;
use mtasts_resolver::{Engine, Reply};
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
    let dns = Resolver::new(&ResolverSettings {
        nameservers: vec![w.dns.addr()],
        timeout: Some(Duration::from_millis(800)),
        trust_anchor: TrustAnchor::Keys(w.trust_anchor()),
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
        (Dnssec::WrongDs, true, "bogus zone"),
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
