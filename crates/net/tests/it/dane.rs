//! DANE against signed test zones: TLSA and MX proofs (secure, insecure, bogus), failures told
//! apart from "no TLSA", and the state of an MX host as a DANE sender sees it.

use hickory_proto::rr::RecordType;
use mtasts_net::dane::{ChainMatch, DaneState, SMTP_PORT, domain_states, host_state, match_chain};
use mtasts_net::dns::{DnsError, Lookup, Proof, Resolver, ResolverSettings, TrustAnchor};
use mtasts_testnet::dns::Fault;
use mtasts_testnet::dnssec::Tamper;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::tlsa::{Matching, Selector, Usage, tlsa_data};
use mtasts_testnet::world::{Dnssec, World};
use std::time::Duration;

const HOST: &str = "mx1.example.test";

fn resolver(w: &World) -> Resolver {
    resolver_with(w, TrustAnchor::Keys(w.trust_anchor()))
}

fn resolver_with(w: &World, trust_anchor: TrustAnchor) -> Resolver {
    Resolver::new(&ResolverSettings {
        nameservers: vec![w.dns.addr()],
        timeout: Some(Duration::from_millis(1500)),
        trust_anchor,
    })
    .unwrap()
}

/// A world whose MX mx1 has a DANE-EE record for the certificate it serves.
async fn world(mode: Dnssec) -> (World, Vec<rustls_pki_types::CertificateDer<'static>>) {
    let mut w = World::new().await;
    let chain = w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let ee = tlsa_data(&chain[0], Usage::DaneEe, Selector::Spki, Matching::Sha256).unwrap();
    w.zone(&format!("_25._tcp.mx1 300 IN TLSA {ee}"));
    w.dnssec(mode);
    (w, chain)
}

#[tokio::test]
async fn signed_zone_gives_a_secure_tlsa_rrset_that_matches_the_served_chain() {
    let (w, chain) = world(Dnssec::Signed).await;
    let r = resolver(&w);
    let v = r.tlsa(HOST, SMTP_PORT).await.unwrap();
    assert_eq!(v.proof, Proof::Secure);
    let Lookup::Records { records, .. } = &v.lookup else {
        panic!("no TLSA: {v:?}")
    };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].usage, 3);
    assert_eq!(
        match_chain(records, &chain, HOST, w.pki.now()),
        ChainMatch::Matched(0)
    );
    let mx = r.mx_validated("example.test").await.unwrap();
    assert_eq!(mx.proof, Proof::Secure);
    assert_eq!(mx.lookup.records()[0].host, HOST);
    assert!(host_state(&r, HOST, SMTP_PORT, true).await.is_usable());
    let (proof, hosts) = domain_states(&r, "example.test").await.unwrap();
    assert_eq!(proof, Proof::Secure);
    assert_eq!(hosts.len(), 1);
    assert!(hosts[0].1.is_usable(), "{hosts:?}");
}

#[tokio::test]
async fn signed_zone_without_tlsa_is_a_secure_denial() {
    let mut w = World::new().await;
    w.zone(&format!("@ 300 IN MX 10 {HOST}.\nmx1 300 IN A 127.0.0.1"));
    w.dnssec(Dnssec::Signed);
    let r = resolver(&w);
    let v = r.tlsa(HOST, SMTP_PORT).await.unwrap();
    assert!(v.lookup.records().is_empty(), "{v:?}");
    assert_eq!(
        host_state(&r, HOST, SMTP_PORT, true).await,
        DaneState::NoTlsa
    );
}

#[tokio::test]
async fn unsigned_zone_under_a_signed_root_is_insecure() {
    let (w, _) = world(Dnssec::Unsigned).await;
    let r = resolver(&w);
    let v = r.tlsa(HOST, SMTP_PORT).await.unwrap();
    assert_eq!(v.proof, Proof::Insecure, "{v:?}");
    assert_eq!(v.lookup.records().len(), 1);
    assert_eq!(
        r.mx_validated("example.test").await.unwrap().proof,
        Proof::Insecure
    );
    assert!(matches!(
        host_state(&r, HOST, SMTP_PORT, false).await,
        DaneState::Insecure(_)
    ));
}

#[tokio::test]
async fn ds_for_another_key_makes_the_zone_bogus() {
    let (w, _) = world(Dnssec::WrongDs).await;
    let r = resolver(&w);
    let v = r.tlsa(HOST, SMTP_PORT).await;
    assert!(matches!(&v, Ok(v) if v.proof == Proof::Bogus), "{v:?}");
    assert_eq!(
        host_state(&r, HOST, SMTP_PORT, true).await,
        DaneState::Bogus
    );
}

#[tokio::test]
async fn a_spoiled_or_expired_tlsa_signature_is_bogus_and_the_rest_stays_secure() {
    for how in [Tamper::BadSignature, Tamper::Expired] {
        let (mut w, _) = world(Dnssec::Signed).await;
        w.tamper("_25._tcp.mx1", "TLSA", how);
        let r = resolver(&w);
        let v = r.tlsa(HOST, SMTP_PORT).await;
        assert!(
            matches!(&v, Ok(v) if v.proof == Proof::Bogus),
            "{how:?}: {v:?}"
        );
        assert_eq!(
            host_state(&r, HOST, SMTP_PORT, true).await,
            DaneState::Bogus
        );
        let mx = r.mx_validated("example.test").await.unwrap();
        assert_eq!(mx.proof, Proof::Secure, "{how:?}");
    }
}

#[tokio::test]
async fn secure_tlsa_of_a_host_behind_a_secure_cname_into_an_unsigned_zone_applies() {
    // RFC 7672 §2.2.2: a host whose first CNAME link is secure is in a signed zone even when
    // the chain leads into an unsigned zone (its addresses are insecure, not bogus). Here mx1
    // is a secure CNAME into an unsigned provider zone, and its TLSA records are signed.
    let mut w = World::new().await;
    let ip = w.ip(1, 1);
    w.unsigned_zone("other.test.", &format!("mx 300 IN A {ip}"));
    w.zone(&format!(
        "@ 300 IN MX 10 {HOST}.\nmx1 300 IN CNAME mx.other.test.\n_25._tcp.mx1 300 IN TLSA 3 1 1 {}",
        "AB".repeat(32)
    ));
    w.dnssec(Dnssec::Signed);
    let r = resolver(&w);
    // The addresses first: the insecure answers at the CNAME's target (an A record, and a
    // denial for AAAA) must not make mx1.example.test itself count as insecure.
    assert_eq!(r.addresses_proof(HOST).await.unwrap(), Proof::Insecure);
    assert_eq!(r.tlsa(HOST, SMTP_PORT).await.unwrap().proof, Proof::Secure);
    let records = r.address_records(HOST).await.unwrap();
    assert!(records.in_signed_zone, "{records:?}");
    let state = host_state(&r, HOST, SMTP_PORT, true).await;
    assert!(
        matches!(state, DaneState::Usable(ref t) if t.len() == 1),
        "{state:?}"
    );
    let (proof, hosts) = domain_states(&r, "example.test").await.unwrap();
    assert_eq!(proof, Proof::Secure);
    assert!(matches!(hosts[0].1, DaneState::Usable(_)), "{hosts:?}");
    // The same host with a plain, signed A record: DANE applies.
    let (w, _) = world(Dnssec::Signed).await;
    let r = resolver(&w);
    assert_eq!(r.addresses_proof(HOST).await.unwrap(), Proof::Secure);
    assert!(host_state(&r, HOST, SMTP_PORT, true).await.is_usable());
}

#[tokio::test]
async fn the_address_proof_counts_the_families_that_answer() {
    let (w, _) = world(Dnssec::Signed).await;
    // mx1 has a signed A record and no AAAA (a secure denial).
    let r = resolver(&w);
    assert_eq!(r.addresses_proof(HOST).await.unwrap(), Proof::Secure);
    // An unanswered AAAA does not spoil the secure A records a sender connects to.
    w.dns
        .set_type_fault(HOST, RecordType::AAAA, Some(Fault::ServFail));
    let r = resolver(&w);
    assert_eq!(r.addresses_proof(HOST).await.unwrap(), Proof::Secure);
    assert!(host_state(&r, HOST, SMTP_PORT, true).await.is_usable());
    // With no address answered at all, the proof cannot be told.
    w.dns.set_fault(HOST, Some(Fault::ServFail));
    let r = resolver(&w);
    assert!(matches!(
        r.addresses_proof(HOST).await,
        Err(DnsError::ServFail { .. })
    ));
    assert!(matches!(
        host_state(&r, HOST, SMTP_PORT, true).await,
        DaneState::LookupFailed(DnsError::ServFail { .. })
    ));
}

#[tokio::test]
async fn a_trust_anchor_below_the_root_turns_the_insecure_shortcut_off() {
    // The same unsigned world, but the anchor file also holds a key for example.test (an
    // island of trust): below an insecure parent an answer may still be secure, so the TLSA
    // lookup after an insecure MX lookup must validate, not take the shortcut.
    let (w, _) = world(Dnssec::Unsigned).await;
    let island = mtasts_testnet::dnssec::ZoneKey::generate()
        .unwrap()
        .trust_anchor("example.test.");
    let anchor = format!("{}\n{island}", w.trust_anchor().trim_end());
    let r = resolver_with(&w, TrustAnchor::Keys(anchor));
    // Insecure: with the shortcut on, this would mark example.test and all below it.
    assert_eq!(
        r.mx_validated("example.test").await.unwrap().proof,
        Proof::Insecure
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // the MX lookup's warm-up
    w.dns.log_queries(true);
    let _ = r.tlsa(HOST, SMTP_PORT).await;
    let asked: Vec<String> = w
        .dns
        .take_query_log()
        .iter()
        .map(|q| format!("{} {}", q.rtype, q.name))
        .collect();
    assert!(
        asked.iter().any(|q| !q.starts_with("TLSA")),
        "the TLSA lookup validated (asked more than the TLSA itself): {asked:?}"
    );
}

#[tokio::test]
async fn servfail_is_a_failed_lookup_not_no_tlsa() {
    let (w, _) = world(Dnssec::Signed).await;
    w.dns
        .set_fault("_25._tcp.mx1.example.test.", Some(Fault::ServFail));
    let r = resolver(&w);
    assert!(matches!(
        r.tlsa(HOST, SMTP_PORT).await,
        Err(DnsError::ServFail { .. })
    ));
    assert!(matches!(
        host_state(&r, HOST, SMTP_PORT, true).await,
        DaneState::LookupFailed(DnsError::ServFail { .. })
    ));
}

#[tokio::test]
async fn a_foreign_trust_anchor_cannot_validate_the_test_root() {
    let (w, _) = world(Dnssec::Signed).await;
    // The IANA root keys do not sign the test root.
    let r = resolver_with(&w, TrustAnchor::IanaRoot);
    let v = r.tlsa(HOST, SMTP_PORT).await;
    assert!(matches!(&v, Ok(v) if v.proof != Proof::Secure), "{v:?}");
    // A malformed anchor is an error, not a panic.
    let bad = Resolver::new(&ResolverSettings {
        trust_anchor: TrustAnchor::Keys(". 3600 IN DNSKEY not base64".into()),
        ..ResolverSettings::default()
    });
    assert!(bad.is_err());
}

#[tokio::test]
async fn plain_lookups_of_a_signed_zone_are_unchanged() {
    let (w, _) = world(Dnssec::Signed).await;
    let r = resolver(&w);
    let mx = r.mx("example.test").await.unwrap();
    assert_eq!(mx.records()[0].host, HOST);
    assert_eq!(r.a(HOST).await.unwrap().records().len(), 1);
}

/// A UDP relay to `upstream` that drops every RRSIG record from the answers, as a resolver or
/// middlebox that strips DNSSEC signatures does.
async fn stripping_relay(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    use hickory_proto::op::Message;
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
    let socket = std::sync::Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, client)) = socket.recv_from(&mut buf).await {
            let query = buf[..n].to_vec();
            let socket = std::sync::Arc::clone(&socket);
            tokio::spawn(async move {
                let up = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
                up.send_to(&query, upstream).await.unwrap();
                let mut answer = vec![0u8; 65_535];
                let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(2), up.recv(&mut answer)).await
                else {
                    return;
                };
                let Ok(mut message) = Message::from_bytes(&answer[..n]) else {
                    return;
                };
                message
                    .answers
                    .retain(|r| r.record_type() != RecordType::RRSIG);
                message
                    .authorities
                    .retain(|r| r.record_type() != RecordType::RRSIG);
                message
                    .additionals
                    .retain(|r| r.record_type() != RecordType::RRSIG);
                if let Ok(bytes) = message.to_bytes() {
                    let _ = socket.send_to(&bytes, client).await;
                }
            });
        }
    });
    addr
}

/// Class 4: a resolver that strips DNSSEC signatures (the records arrive, their RRSIGs do not)
/// cannot validate anything: the answer is indeterminate with that reason, never bogus.
#[tokio::test]
async fn stripped_signatures_are_indeterminate_not_bogus() {
    let (w, _) = world(Dnssec::Signed).await;
    let relay = stripping_relay(w.dns.addr()).await;
    let r = Resolver::new(&ResolverSettings {
        nameservers: vec![relay],
        timeout: Some(Duration::from_millis(800)),
        trust_anchor: TrustAnchor::Keys(w.trust_anchor()),
    })
    .unwrap();
    let mx = r.mx_validated("example.test").await.unwrap();
    assert_eq!(mx.proof, Proof::Indeterminate, "{mx:?}");
    assert!(
        mx.why.as_deref().is_some_and(|w| w.contains("strips")),
        "{mx:?}"
    );
    let (proof, hosts) = domain_states(&r, "example.test").await.unwrap();
    assert_eq!(proof, Proof::Indeterminate);
    assert!(
        hosts.is_empty(),
        "an unusable MX answer is not 'no MX': {hosts:?}"
    );
    // Through the server itself, the same zone validates.
    assert_eq!(
        resolver(&w)
            .mx_validated("example.test")
            .await
            .unwrap()
            .proof,
        Proof::Secure
    );
}
