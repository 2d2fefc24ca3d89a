//! DANE scenarios (catalogue D01–D04 in docs/requirements.md): each finding on a world that
//! produces it, and a secure, matching domain with none.

use crate::world::{DOMAIN, World, env};
use mtasts_check::model::{DaneHostState, DnssecState};
use mtasts_check::{DomainReport, Verdict, check_domain};
use mtasts_core::Severity;
use mtasts_testnet::dns::Fault;
use mtasts_testnet::dnssec::Tamper;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::tlsa::{Matching, Selector, Usage, tlsa_data};
use mtasts_testnet::world::Dnssec;
use rustls_pki_types::CertificateDer;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 1209600\n";
const DANE_IDS: &[&str] = &[
    "dane.tlsa.insecure",
    "dane.dnssec.bogus",
    "dane.tlsa.mismatch",
    "dane.tlsa.no-rollover",
    "dane.tlsa.unusable",
    "dane.untested",
];

/// The clean domain of the scenarios, with the chain its MX serves.
pub(crate) async fn clean() -> (World, Vec<CertificateDer<'static>>) {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=20240101T000000\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    let chain = w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    (w, chain)
}

pub(crate) fn tlsa(cert: &CertificateDer<'_>, u: Usage) -> String {
    let data = tlsa_data(cert, u, Selector::Spki, Matching::Sha256).unwrap();
    format!("_25._tcp.mx1 300 IN TLSA {data}")
}

fn dane_ids(r: &DomainReport) -> Vec<&'static str> {
    r.findings
        .iter()
        .map(|f| f.id)
        .filter(|id| id.starts_with("dane."))
        .collect()
}

fn get<'a>(r: &'a DomainReport, id: &str) -> &'a mtasts_check::Finding {
    r.findings
        .iter()
        .find(|f| f.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:#?}", r.findings))
}

#[tokio::test]
async fn secure_matching_dane_with_a_rollover_scheme_has_no_finding() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[0], Usage::DaneEe));
    w.zone(&tlsa(&chain[1], Usage::DaneTa));
    w.dnssec(Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.verdict, Verdict::Pass);
    let dane = r.dane.as_ref().expect("DANE tested");
    assert_eq!(dane.mx_dnssec, Some(DnssecState::Secure));
    assert!(dane.adopted);
    let h = &dane.hosts[0];
    assert_eq!(h.host, "mx1.example.test");
    assert_eq!(h.tlsa_name, "_25._tcp.mx1.example.test");
    assert_eq!(
        (h.state, h.dnssec, h.address_dnssec, h.usable),
        (
            DaneHostState::Usable,
            Some(DnssecState::Secure),
            Some(DnssecState::Secure),
            true
        )
    );
    assert_eq!(h.tlsa.len(), 2);
    assert_eq!(h.addresses.len(), 1);
    assert!(h.addresses[0].matched);
    assert!(h.addresses[0].record.is_some());
}

#[tokio::test]
async fn clean_domain_without_tlsa_has_no_dane_finding_and_no_adoption() {
    let (w, _) = clean().await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(r.verdict, Verdict::Pass, "{:#?}", r.findings);
    for id in DANE_IDS {
        assert!(!dane_ids(&r).contains(id), "{id}");
    }
    let dane = r.dane.as_ref().expect("DANE tested");
    assert_eq!(dane.mx_dnssec, Some(DnssecState::Insecure));
    assert!(!dane.adopted);
    assert_eq!(dane.hosts[0].state, DaneHostState::NoTlsa);
    assert!(dane.hosts[0].tlsa.is_empty());
}

#[tokio::test]
async fn d01_tlsa_in_an_unsigned_zone_is_ignored_by_senders() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[0], Usage::DaneEe));
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(dane_ids(&r), ["dane.tlsa.insecure"], "{:#?}", r.findings);
    let f = get(&r, "dane.tlsa.insecure");
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.observed.as_deref().unwrap().contains("3 1 1 "));
    assert!(f.fix.contains("DNSSEC"), "{}", f.fix);
    let h = &r.dane.as_ref().unwrap().hosts[0];
    assert_eq!(
        (h.state, h.dnssec, h.address_dnssec, h.usable),
        (
            DaneHostState::Insecure,
            Some(DnssecState::Insecure),
            None,
            false
        )
    );
    assert!(!r.dane.as_ref().unwrap().adopted);
}

#[tokio::test]
async fn d01_signed_tlsa_of_a_host_behind_a_secure_cname_into_an_unsigned_zone_applies() {
    // RFC 7672 §2.2.2 (RFC-DIGEST §4.4, corrected): the MX records and the TLSA records are
    // signed, and mx1 is a secure CNAME into an unsigned provider zone. Its addresses are
    // insecure, not bogus, and the host still counts as in a signed zone: its TLSA records, at
    // the MX host name, apply.
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=20240101T000000\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(Defect::Valid, HttpResponse::policy(POLICY))
        .await;
    let ip = w.ip(1, 9);
    w.unsigned_zone("other.test.", &format!("mx 300 IN A {ip}"));
    w.zone(&format!(
        "@ 300 IN MX 10 mx1.example.test.\nmx1 300 IN CNAME mx.other.test.\n_25._tcp.mx1 300 IN TLSA 3 1 1 {}",
        "AB".repeat(32)
    ));
    w.dnssec(Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert!(
        !dane_ids(&r).contains(&"dane.tlsa.insecure"),
        "{:#?}",
        r.findings
    );
    assert!(
        !dane_ids(&r).contains(&"dane.dnssec.bogus"),
        "{:#?}",
        r.findings
    );
    let dane = r.dane.as_ref().unwrap();
    assert_eq!(dane.mx_dnssec, Some(DnssecState::Secure));
    assert!(dane.adopted);
    let h = &dane.hosts[0];
    assert_eq!(
        (h.state, h.dnssec, h.address_dnssec, h.usable),
        (
            DaneHostState::Usable,
            Some(DnssecState::Secure),
            Some(DnssecState::Insecure),
            true
        )
    );
    assert_eq!(h.tlsa_name, "_25._tcp.mx1.example.test");
}

#[tokio::test]
async fn failed_address_lookups_of_a_dane_host_are_untested() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[0], Usage::DaneEe));
    w.dnssec(Dnssec::Signed);
    w.dns.set_fault("mx1.example.test", Some(Fault::ServFail));
    let r = check_domain(DOMAIN, &env(&w)).await;
    let f = get(&r, "dane.untested");
    assert!(
        f.message.contains("address records of MX mx1.example.test"),
        "{}",
        f.message
    );
    let h = &r.dane.as_ref().unwrap().hosts[0];
    assert_eq!(
        (h.state, h.dnssec, h.address_dnssec),
        (DaneHostState::LookupFailed, Some(DnssecState::Secure), None)
    );
}

#[tokio::test]
async fn d01_bogus_tlsa_is_an_error() {
    for (mode, tamper) in [
        (Dnssec::Signed, Some(Tamper::BadSignature)),
        (Dnssec::Signed, Some(Tamper::Expired)),
        (Dnssec::WrongDs, None),
    ] {
        let (mut w, chain) = clean().await;
        w.zone(&tlsa(&chain[0], Usage::DaneEe));
        w.zone(&tlsa(&chain[1], Usage::DaneTa));
        w.dnssec(mode);
        if let Some(how) = tamper {
            w.tamper("_25._tcp.mx1", "TLSA", how);
        }
        let r = check_domain(DOMAIN, &env(&w)).await;
        assert!(
            dane_ids(&r).contains(&"dane.dnssec.bogus"),
            "{mode:?} {tamper:?}: {:#?}",
            r.findings
        );
        assert_eq!(get(&r, "dane.dnssec.bogus").severity, Severity::Error);
        assert_eq!(r.verdict, Verdict::Fail);
        let dane = r.dane.as_ref().unwrap();
        if mode == Dnssec::WrongDs {
            // The whole zone is bogus, MX RRset included: a bogus MX answer is not "no MX",
            // so the domain is not taken for its own MX host (no `_25._tcp.example.test`).
            assert_eq!(dane.mx_dnssec, Some(DnssecState::Bogus));
            assert!(dane.hosts.is_empty(), "{:?}", dane.hosts);
        } else {
            assert_eq!(dane.hosts[0].state, DaneHostState::Bogus);
        }
    }
}

#[tokio::test]
async fn d02_tlsa_for_another_key_is_an_error_with_the_served_record_as_fix() {
    let (mut w, chain) = clean().await;
    let other = w.pki.issue("mx1.example.test", Defect::Valid).unwrap();
    w.zone(&tlsa(other.leaf(), Usage::DaneEe));
    w.zone(&tlsa(&w.pki.untrusted_root_cert().clone(), Usage::DaneTa));
    w.dnssec(Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(dane_ids(&r), ["dane.tlsa.mismatch"], "{:#?}", r.findings);
    let f = get(&r, "dane.tlsa.mismatch");
    assert_eq!(f.severity, Severity::Error);
    let served = tlsa_data(&chain[0], Usage::DaneEe, Selector::Spki, Matching::Sha256).unwrap();
    assert!(
        f.fix
            .contains(&format!("_25._tcp.mx1.example.test. IN TLSA {served}")),
        "{}",
        f.fix
    );
    assert!(f.observed.as_deref().unwrap().contains(&served));
    let h = &r.dane.as_ref().unwrap().hosts[0];
    assert!(h.usable);
    assert!(!h.addresses[0].matched);
    assert_eq!(r.verdict, Verdict::Fail);
}

#[tokio::test]
async fn d03_a_single_dane_ee_record_has_no_rollover_scheme() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[0], Usage::DaneEe));
    w.dnssec(Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(dane_ids(&r), ["dane.tlsa.no-rollover"], "{:#?}", r.findings);
    let f = get(&r, "dane.tlsa.no-rollover");
    assert_eq!(f.severity, Severity::Warning);
    let ca = tlsa_data(&chain[1], Usage::DaneTa, Selector::Spki, Matching::Sha256).unwrap();
    assert!(f.fix.contains(&ca), "{}", f.fix);
    assert_eq!(r.verdict, Verdict::Warn);
    assert!(r.dane.as_ref().unwrap().hosts[0].addresses[0].matched);
}

#[tokio::test]
async fn d04_pkix_usages_and_full_data_are_flagged() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[0], Usage::DaneEe));
    w.zone(&tlsa(&chain[1], Usage::DaneTa));
    w.zone(&tlsa(&chain[0], Usage::PkixEe));
    let full = tlsa_data(&chain[0], Usage::DaneEe, Selector::Spki, Matching::Full).unwrap();
    w.zone(&format!("_25._tcp.mx1 300 IN TLSA {full}"));
    w.dnssec(Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(dane_ids(&r), ["dane.tlsa.unusable"], "{:#?}", r.findings);
    let f = get(&r, "dane.tlsa.unusable");
    assert_eq!(f.severity, Severity::Warning);
    let observed = f.observed.as_deref().unwrap();
    assert!(observed.contains("usage 1 (PKIX-EE)"), "{observed}");
    assert!(observed.contains("matching type 0"), "{observed}");
    assert!(r.dane.as_ref().unwrap().adopted);
}

#[tokio::test]
async fn d04_only_pkix_records_leave_no_usable_record() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[1], Usage::PkixTa));
    w.dnssec(Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(dane_ids(&r), ["dane.tlsa.unusable"], "{:#?}", r.findings);
    let h = &r.dane.as_ref().unwrap().hosts[0];
    assert_eq!((h.state, h.usable), (DaneHostState::Unusable, false));
    assert!(!r.dane.as_ref().unwrap().adopted);
}

#[tokio::test]
async fn a_failed_tlsa_lookup_is_untested_not_absent() {
    let (mut w, chain) = clean().await;
    w.zone(&tlsa(&chain[0], Usage::DaneEe));
    w.dnssec(Dnssec::Signed);
    w.dns
        .set_fault("_25._tcp.mx1.example.test.", Some(Fault::ServFail));
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(dane_ids(&r), ["dane.untested"], "{:#?}", r.findings);
    assert!(get(&r, "dane.untested").untested);
    assert_eq!(r.verdict, Verdict::Incomplete);
    let h = &r.dane.as_ref().unwrap().hosts[0];
    assert_eq!((h.state, h.dnssec), (DaneHostState::LookupFailed, None));
    assert!(h.error.is_some());
}
