//! The verdict classes that outside test suites showed to be wrong: one test (or more) per class,
//! named after it. See docs/conformance.md, "Verdict classes".

use crate::scenarios::{get, has, ids};
use crate::world::{DOMAIN, World, env};
use mtasts_check::{Verdict, check_domain};
use mtasts_core::Severity;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::smtp::Behaviour;
use std::time::Duration;

/// A domain whose policy covers every `*.example.test` MX, in `enforce`.
async fn enforced_world() -> World {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(
        Defect::Valid,
        HttpResponse::policy(
            "version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 1209600\n",
        ),
    )
    .await;
    w
}

// ---- class 1: records senders discard ----

#[tokio::test]
async fn rrset_with_spf_lookalikes_and_one_sts_record_is_valid_in_check() {
    let mut w = enforced_world().await;
    w.zone(concat!(
        "_mta-sts 300 IN TXT \"v=spf1 -all\"\n",
        "_mta-sts 300 IN TXT \"V=STSv1; id=2\"\n",
        "_mta-sts 300 IN TXT \"v=STSv10; id=3\"\n",
        "_mta-sts 300 IN TXT \"v=TLSRPTv1; rua=mailto:a@b.example\"",
    ));
    w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert!(r.sts_record.valid, "{:?}", ids(&r));
    assert_eq!(r.sts_record.id.as_deref(), Some("1"));
    for id in [
        "sts.record.spf",
        "sts.record.version-case",
        "sts.record.bad-start",
        "sts.record.wrong-kind",
    ] {
        assert_eq!(get(&r, id).severity, Severity::Warning, "{id}");
    }
    assert!(
        r.findings.iter().all(|f| f.severity != Severity::Error),
        "{:#?}",
        r.findings
    );
}

// ---- class 6: SMTP refusals are not TLS failures ----

#[tokio::test]
async fn smtp_refusals_and_slow_servers_are_untested_never_must_refuse() {
    let mut w = enforced_world().await;
    let cases: [(&str, Behaviour); 7] = [
        ("banner421", Behaviour::Banner("421 4.7.0 try again later")),
        ("banner554", Behaviour::Reject),
        (
            "ehlo421",
            Behaviour::RefuseEhlo("421 4.7.0 too many connections"),
        ),
        (
            "ehlo554",
            Behaviour::RefuseEhlo("554 5.7.1 your address is listed"),
        ),
        (
            "starttls421",
            Behaviour::RefuseStartTls("421 4.3.2 shutting down"),
        ),
        ("slowehlo", Behaviour::SlowEhlo(Duration::from_secs(3))),
        ("stalled", Behaviour::StalledHandshake),
    ];
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    for (i, (name, behaviour)) in cases.into_iter().enumerate() {
        w.mx(name, 10, u8::try_from(i + 1).unwrap(), behaviour)
            .await;
    }
    let r = check_domain(DOMAIN, &env(&w)).await;
    for name in &names {
        let m =
            r.mx.iter()
                .find(|m| m.host == format!("{name}.example.test"))
                .unwrap();
        assert_eq!(m.result.as_str(), "not-tested", "{name}: {m:?}");
        assert!(!m.must_refuse, "{name}");
    }
    let transient: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.id == "mx.smtp.transient")
        .collect();
    // Three shown one by one, the other four grouped (many_similar_findings_are_grouped).
    assert_eq!(transient.len(), 4, "{:#?}", r.findings);
    assert!(
        transient[3].message.starts_with("4 more"),
        "{}",
        transient[3].message
    );
    assert!(
        transient
            .iter()
            .all(|f| f.untested && f.severity == Severity::Warning)
    );
    assert!(
        !has(&r, "mx.smtp.failed") && !has(&r, "mx.tls.failed") && !has(&r, "mx.starttls.refused")
    );
    assert_eq!(r.verdict, Verdict::Incomplete);
}

#[tokio::test]
async fn smtp_permanent_refusal_of_starttls_is_still_a_failure() {
    let mut w = enforced_world().await;
    w.mx(
        "mx1",
        10,
        1,
        Behaviour::RefuseStartTls("554 5.5.1 no TLS for you"),
    )
    .await;
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(r.mx[0].result.as_str(), "starttls-not-supported");
    assert!(r.mx[0].must_refuse);
    assert_eq!(get(&r, "mx.starttls.refused").severity, Severity::Error);
}

// ---- class 4: could not validate is not bogus; no DANE for what does not exist ----

#[tokio::test]
async fn dnssec_chain_unfetchable_is_indeterminate_not_bogus() {
    use mtasts_testnet::dns::{Fault, RecordType};
    for fault in [Fault::Refused, Fault::ServFail] {
        let (mut w, chain) = crate::dane::clean().await;
        w.zone(&crate::dane::tlsa(
            &chain[0],
            mtasts_testnet::tlsa::Usage::DaneEe,
        ));
        w.dnssec(mtasts_testnet::world::Dnssec::Signed);
        w.dns
            .set_type_fault("example.test.", RecordType::DNSKEY, Some(fault));
        let r = check_domain(DOMAIN, &env(&w)).await;
        assert!(
            !has(&r, "dane.dnssec.bogus"),
            "{fault:?}: {:#?}",
            r.findings
        );
        let f = get(&r, "dane.untested");
        assert!(f.untested, "{fault:?}");
        assert!(f.message.contains("DNSKEY"), "{fault:?}: {}", f.message);
        assert!(
            !f.fix.contains("DS record"),
            "no advice to remove the DS record"
        );
        assert_ne!(r.verdict, Verdict::Fail, "{fault:?}: {:#?}", r.findings);
    }
    // A DNSKEY query that times out: untested too, never bogus.
    let (mut w, chain) = crate::dane::clean().await;
    w.zone(&crate::dane::tlsa(
        &chain[0],
        mtasts_testnet::tlsa::Usage::DaneEe,
    ));
    w.dnssec(mtasts_testnet::world::Dnssec::Signed);
    w.dns
        .set_type_fault("example.test.", RecordType::DNSKEY, Some(Fault::Silent));
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert!(!has(&r, "dane.dnssec.bogus"), "{:#?}", r.findings);
    assert!(get(&r, "dane.untested").untested);
}

#[tokio::test]
async fn dnssec_really_bogus_stays_bogus_when_the_chain_was_fetched() {
    let (mut w, chain) = crate::dane::clean().await;
    w.zone(&crate::dane::tlsa(
        &chain[0],
        mtasts_testnet::tlsa::Usage::DaneEe,
    ));
    w.dnssec(mtasts_testnet::world::Dnssec::Signed);
    w.tamper(
        "_25._tcp.mx1",
        "TLSA",
        mtasts_testnet::dnssec::Tamper::BadSignature,
    );
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(get(&r, "dane.dnssec.bogus").severity, Severity::Error);
}

/// A name server that answers NXDOMAIN for every name, as on a machine without internet.
async fn nxdomain_everywhere() -> mtasts_testnet::dns::DnsServer {
    let dns = mtasts_testnet::dns::DnsServer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    dns.set_outside(Some(mtasts_testnet::dns::Fault::NxDomain));
    dns
}

#[tokio::test]
async fn nxdomain_domain_gives_only_that_it_does_not_exist_and_no_dane_lookups() {
    let dns = nxdomain_everywhere().await;
    let w = World::new().await;
    let anchor = w.trust_anchor();
    let e = crate::world::env_for(dns.addr(), anchor, &w.pki, (w.smtp_port, w.https_port));
    dns.log_queries(true);
    let started = std::time::Instant::now();
    let r = check_domain("example.com", &e).await;
    let took = started.elapsed();
    assert_eq!(ids(&r), ["domain.nxdomain"], "{:#?}", r.findings);
    assert!(r.dane.is_none());
    assert_eq!(r.verdict, Verdict::Fail);
    assert!(took < Duration::from_millis(500), "{took:?}");
    let log = dns.take_query_log();
    assert!(
        log.iter()
            .all(|q| !matches!(q.rtype.to_string().as_str(), "TLSA" | "DNSKEY" | "DS")),
        "{log:?}"
    );
}

#[tokio::test]
async fn nxdomain_and_null_mx_make_no_dane_lookup_in_a_signed_world() {
    let (mut w, _) = crate::dane::clean().await;
    w.zone("nomail 300 IN MX 0 .\nnomail 300 IN TXT \"x\"");
    w.dnssec(mtasts_testnet::world::Dnssec::Signed);
    for name in ["nosuch.example.test", "nomail.example.test"] {
        w.dns.log_queries(true);
        let r = check_domain(name, &env(&w)).await;
        let log = w.dns.take_query_log();
        assert!(r.dane.is_none(), "{name}");
        assert!(
            log.iter().all(|q| q.rtype.to_string() != "TLSA"),
            "{name}: {log:?}"
        );
    }
}

// ---- class 7: a check past its time budget keeps what was learnt ----

#[tokio::test]
async fn time_budget_keeps_finished_steps_and_marks_the_rest_untested() {
    let mut w = enforced_world().await;
    w.mx(
        "mx1",
        10,
        1,
        Behaviour::SlowBanner {
            delay: Duration::from_secs(5),
            then: Box::new(Behaviour::NoStartTls),
        },
    )
    .await;
    let r = mtasts_check::check_domain_within(DOMAIN, &env(&w), Duration::from_millis(700)).await;
    assert!(r.sts_record.valid, "{:#?}", r.findings);
    assert_eq!(r.policy.mode.as_deref(), Some("enforce"));
    assert!(r.tlsrpt.valid);
    assert_eq!(r.mx.len(), 1, "the MX lookup finished");
    assert_eq!(r.mx[0].result.as_str(), "not-tested");
    assert!(!r.mx[0].must_refuse);
    let f = get(&r, "check.timeout");
    assert!(
        f.untested && f.message.contains("mx1.example.test"),
        "{}",
        f.message
    );
    assert_eq!(r.verdict, Verdict::Incomplete);
}

// ---- class 8: odd DNS answers ----

#[tokio::test]
async fn cname_loop_at_mta_sts_is_reported_as_a_loop_not_as_no_record() {
    let mut w2 = World::new().await;
    w2.zone("_mta-sts 300 IN CNAME sts-a\nsts-a 300 IN CNAME _mta-sts");
    w2.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
    let r = check_domain(DOMAIN, &env(&w2)).await;
    let f = get(&r, "dns.cname.loop");
    assert_eq!(f.severity, Severity::Error);
    assert!(f.observed.as_deref().unwrap().contains("->"), "{f:?}");
    assert!(!has(&r, "sts.record.missing"), "{:?}", ids(&r));
    // An MX host behind a chain longer than senders follow.
    let mut chain = String::from("@ 300 IN MX 10 deep0\n");
    for i in 0..12 {
        chain.push_str(&format!("deep{i} 300 IN CNAME deep{}\n", i + 1));
    }
    chain.push_str("deep12 300 IN A 127.0.0.9\n");
    let mut w = enforced_world().await;
    w.zone(&chain);
    let r = check_domain(DOMAIN, &env(&w)).await;
    assert_eq!(
        get(&r, "dns.cname.too-long").severity,
        Severity::Error,
        "{:?}",
        ids(&r)
    );
}

#[tokio::test]
async fn many_similar_findings_are_grouped() {
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\nmta-sts 300 IN AAAA ::1");
    w.policy_host(
        Defect::Valid,
        HttpResponse::policy(
            "version: STSv1\nmode: enforce\nmx: mx0.example.test\nmax_age: 86400\n",
        ),
    )
    .await;
    let mut zone = String::new();
    for i in 0..300 {
        zone.push_str(&format!("@ 300 IN MX 10 mx{i}.example.test.\n"));
    }
    w.zone(&zone);
    let mut e = env(&w);
    e.settings.no_smtp = true;
    let r = check_domain(DOMAIN, &e).await;
    assert_eq!(r.mx.len(), 300);
    let not_covered: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.id == "mx.not-covered")
        .collect();
    assert_eq!(not_covered.len(), 4, "three shown, the rest grouped");
    let grouped = not_covered.last().unwrap();
    assert!(
        grouped.message.starts_with("296 more findings"),
        "{}",
        grouped.message
    );
    assert!(grouped.observed.as_deref().unwrap().contains("(286 more)"));
    assert_eq!(grouped.severity, Severity::Error);
    assert_eq!(
        grouped.grouped, 296,
        "the grouped finding counts what it stands for"
    );
    assert!(r.findings.len() < 20, "{} findings", r.findings.len());
    // Counts in the text header and the CSV row are of findings, not of lines.
    let errors: usize = r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(mtasts_core::Finding::weight)
        .sum();
    assert!(
        errors >= 299,
        "299 hosts not covered, each an error: {errors}"
    );
    let mut text = Vec::new();
    mtasts_check::render::text::write(&mut text, &r, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.lines()
            .next()
            .unwrap()
            .contains(&format!("({errors} errors,")),
        "{}",
        text.lines().next().unwrap()
    );
    let row = mtasts_check::render::csv::row(&r);
    assert!(row.contains(&format!(",{errors},")), "{row}");
}

// ---- class 9 (b): a secure CNAME into an unsigned zone ----

#[tokio::test]
async fn dane_secure_cname_into_unsigned_zone_is_insecure_addresses_not_bogus() {
    let (mut w, chain) = crate::dane::clean().await;
    let ip = w.ip(1, 1);
    // `alias.example.test` (signed zone) is a CNAME to a host in the unsigned `other.test`,
    // served by the same SMTP host as mx1; its TLSA record sits at the original name.
    w.unsigned_zone("other.test.", &format!("real 300 IN A {ip}"));
    w.zone("@ 300 IN MX 20 alias.example.test.\nalias 300 IN CNAME real.other.test.");
    let data = mtasts_testnet::tlsa::tlsa_data(
        &chain[0],
        mtasts_testnet::tlsa::Usage::DaneEe,
        mtasts_testnet::tlsa::Selector::Spki,
        mtasts_testnet::tlsa::Matching::Sha256,
    )
    .unwrap();
    w.zone(&format!("_25._tcp.alias 300 IN TLSA {data}"));
    w.dnssec(mtasts_testnet::world::Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    let dane = r.dane.as_ref().unwrap();
    let alias = dane
        .hosts
        .iter()
        .find(|h| h.host == "alias.example.test")
        .unwrap();
    assert_ne!(
        alias.state.as_str(),
        "bogus",
        "{alias:?}\n{:#?}",
        r.findings
    );
    assert!(!has(&r, "dane.dnssec.bogus"), "{:#?}", r.findings);
    assert_eq!(
        alias.address_dnssec.map(|p| p.as_str()),
        Some("insecure"),
        "{alias:?}"
    );
    assert_eq!(alias.tlsa_name, "_25._tcp.alias.example.test");
    assert_eq!(
        alias.state.as_str(),
        "usable",
        "RFC 7672 §2.2.2: still in a signed zone: {alias:?}"
    );
}

#[tokio::test]
async fn dane_secure_cname_chain_looks_up_tlsa_at_the_expanded_name_first() {
    let (mut w, chain) = crate::dane::clean().await;
    let data = mtasts_testnet::tlsa::tlsa_data(
        &chain[0],
        mtasts_testnet::tlsa::Usage::DaneEe,
        mtasts_testnet::tlsa::Selector::Spki,
        mtasts_testnet::tlsa::Matching::Sha256,
    )
    .unwrap();
    // `alias` is a secure CNAME to mx1 (same signed zone); records at the expanded name only,
    // and at the original name only for `alias2`.
    w.zone(&format!(
        "@ 300 IN MX 20 alias.example.test.\nalias 300 IN CNAME mx1.example.test.\n_25._tcp.mx1 300 IN TLSA {data}\n@ 300 IN MX 30 alias2.example.test.\nalias2 300 IN CNAME mx1.example.test.\n"
    ));
    w.dnssec(mtasts_testnet::world::Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w)).await;
    let dane = r.dane.as_ref().unwrap();
    let alias = dane
        .hosts
        .iter()
        .find(|h| h.host == "alias.example.test")
        .unwrap();
    assert_eq!(alias.tlsa_name, "_25._tcp.mx1.example.test", "{alias:?}");
    assert_eq!(alias.state.as_str(), "usable", "{alias:?}");
    // Records only at the original name: found there after nothing at the expanded name.
    let mut w2 = crate::dane::clean().await.0;
    w2.zone(&format!(
        "@ 300 IN MX 20 alias.example.test.\nalias 300 IN CNAME other.example.test.\nother 300 IN A {}\n_25._tcp.alias 300 IN TLSA {data}\n",
        w2.ip(1, 1)
    ));
    w2.dnssec(mtasts_testnet::world::Dnssec::Signed);
    let r = check_domain(DOMAIN, &env(&w2)).await;
    let dane = r.dane.as_ref().unwrap();
    let alias = dane
        .hosts
        .iter()
        .find(|h| h.host == "alias.example.test")
        .unwrap();
    assert_eq!(alias.tlsa_name, "_25._tcp.alias.example.test", "{alias:?}");
    assert_eq!(alias.state.as_str(), "usable", "{alias:?}");
}
