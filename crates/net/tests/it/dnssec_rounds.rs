//! Validated lookups cost about one round trip: the validator's own queries (NS, DS, DNSKEY up
//! the chain) are asked in parallel with the query and shared, and the glue in the additional
//! section is not validated. Every answer of the test DNS server waits [`DELAY`], so a lookup
//! that took its chain of trust one query at a time would take several times as long.

use mtasts_net::dane::SMTP_PORT;
use mtasts_net::dns::{Proof, Resolver, ResolverSettings, TrustAnchor};
use mtasts_testnet::dns::LoggedQuery;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::world::{Dnssec, World};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const DELAY: Duration = Duration::from_millis(200);

async fn world(mode: Dnssec) -> World {
    let mut w = World::new().await;
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    w.zone("_25._tcp.mx1 300 IN TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF");
    w.dnssec(mode);
    w.dns.set_delay(Some(DELAY));
    w.dns.log_queries(true);
    w
}

fn resolver(w: &World) -> Resolver {
    Resolver::new(&ResolverSettings {
        nameservers: vec![w.dns.addr()],
        timeout: Some(Duration::from_secs(5)),
        trust_anchor: TrustAnchor::Keys(w.trust_anchor()),
    })
    .unwrap()
}

/// Queries asked more than once, among those the server answers (names outside its zones are
/// refused, and refusals are asked again).
fn repeated(log: &[LoggedQuery]) -> Vec<String> {
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for q in log
        .iter()
        .filter(|q| q.name.ends_with("example.test.") || q.name == ".")
    {
        *seen
            .entry((q.name.clone(), q.rtype.to_string()))
            .or_default() += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|((name, t), n)| format!("{t} {name} x{n}"))
        .collect()
}

#[tokio::test]
async fn validated_mx_of_an_insecure_domain_takes_one_round_trip_and_skips_the_glue() {
    let w = world(Dnssec::Unsigned).await;
    let r = resolver(&w);
    let start = Instant::now();
    let mx = r.mx_validated("example.test").await.unwrap();
    let took = start.elapsed();
    assert_eq!(mx.proof, Proof::Insecure);
    assert_eq!(mx.lookup.records()[0].host, "mx1.example.test");
    assert!(
        took < DELAY * 2,
        "took {took:?}: more than one round trip of {DELAY:?}"
    );
    tokio::time::sleep(DELAY * 2).await; // let the warm-up finish before reading the log
    let log = w.dns.take_query_log();
    assert!(
        !log.iter().any(|q| q.name == "mx1.example.test."),
        "the glue A record of mx1 must not be validated (no query for mx1): {log:?}"
    );
    assert_eq!(repeated(&log), Vec::<String>::new(), "{log:?}");
}

#[tokio::test]
async fn validated_mx_and_tlsa_of_a_signed_domain_take_one_round_trip_each() {
    let w = world(Dnssec::Signed).await;
    let r = resolver(&w);
    let start = Instant::now();
    let mx = r.mx_validated("example.test").await.unwrap();
    let took = start.elapsed();
    assert_eq!(mx.proof, Proof::Secure);
    // MX, then DNSKEY of example.test, DS from the root, DNSKEY of the root: four rounds
    // if asked one after the other.
    assert!(
        took < DELAY * 2,
        "MX took {took:?}: more than one round trip of {DELAY:?}"
    );
    let start = Instant::now();
    let tlsa = r.tlsa("mx1.example.test", SMTP_PORT).await.unwrap();
    let took = start.elapsed();
    assert_eq!(tlsa.proof, Proof::Secure);
    assert_eq!(tlsa.lookup.records().len(), 1);
    assert!(
        took < DELAY * 2,
        "TLSA took {took:?}: the chain of example.test is known by now"
    );
    tokio::time::sleep(DELAY * 2).await;
    assert_eq!(repeated(&w.dns.take_query_log()), Vec::<String>::new());
}

#[tokio::test]
async fn tlsa_below_a_zone_proven_insecure_is_one_plain_query() {
    let w = world(Dnssec::Unsigned).await;
    let r = resolver(&w);
    let mx = r.mx_validated("example.test").await.unwrap();
    assert_eq!(mx.proof, Proof::Insecure);
    tokio::time::sleep(DELAY * 2).await; // the MX lookup's warm-up
    w.dns.take_query_log();
    let start = Instant::now();
    let tlsa = r.tlsa("mx1.example.test", SMTP_PORT).await.unwrap();
    let took = start.elapsed();
    assert_eq!(tlsa.proof, Proof::Insecure);
    assert_eq!(tlsa.lookup.records().len(), 1, "the records are reported");
    assert!(took < DELAY * 2, "TLSA took {took:?}");
    tokio::time::sleep(DELAY * 2).await;
    let asked: Vec<String> = w
        .dns
        .take_query_log()
        .iter()
        .map(|q| format!("{} {}", q.rtype, q.name))
        .collect();
    assert_eq!(
        asked,
        ["TLSA _25._tcp.mx1.example.test."],
        "no NS walk, DS or DNSKEY below a zone known to be insecure"
    );
}

#[tokio::test]
async fn a_secure_zone_is_not_taken_for_insecure() {
    // The same lookups in a signed zone still validate, and the TLSA is secure.
    let w = world(Dnssec::Signed).await;
    let r = resolver(&w);
    assert_eq!(
        r.mx_validated("example.test").await.unwrap().proof,
        Proof::Secure
    );
    let tlsa = r.tlsa("mx1.example.test", SMTP_PORT).await.unwrap();
    assert_eq!(tlsa.proof, Proof::Secure);
}
