//! DNS lookups against an in-process authority: answers, NODATA vs NXDOMAIN, failures told
//! apart (SERVFAIL, REFUSED, timeout), truncated UDP answers retried over TCP, and faults that
//! hit one record type only.

use mtasts_net::dns::{DnsError, Lookup, Mx, Resolver, ResolverSettings};
use mtasts_testnet::dns::{DnsServer, Fault, RecordType};
use std::time::{Duration, Instant};

const ZONE: &str = r#"
@        300 IN MX 20 MX2.Example.test.
@        300 IN MX 10 mx1.example.test.
@        300 IN TXT "v=spf1 -all"
_mta-sts 300 IN TXT "v=STSv1; " "id=2024" "0101"
mx1      300 IN A 192.0.2.10
mx1      300 IN AAAA 2001:db8::10
www      300 IN A 192.0.2.80
alias    300 IN CNAME _mta-sts.provider.test.
"#;

const PROVIDER: &str = r#"
_mta-sts 300 IN TXT "v=STSv1; id=provider1"
"#;

const NULL_MX: &str = "@ 300 IN MX 0 .\n";

async fn setup() -> (DnsServer, Resolver) {
    let dns = DnsServer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    dns.set_zone("example.test.", ZONE).unwrap();
    dns.set_zone("provider.test.", PROVIDER).unwrap();
    dns.set_zone("nullmx.test.", NULL_MX).unwrap();
    let resolver = resolver_for(&dns, Duration::from_millis(400));
    (dns, resolver)
}

fn resolver_for(dns: &DnsServer, timeout: Duration) -> Resolver {
    Resolver::new(&ResolverSettings {
        nameservers: vec![dns.addr()],
        timeout: Some(timeout),
        ..ResolverSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn txt_keeps_the_strings_and_joins_them_with_nothing_between() {
    let (_dns, r) = setup().await;
    let Lookup::Records { records, cnames } = r.txt("_mta-sts.example.test").await.unwrap() else {
        panic!("no records")
    };
    assert!(cnames.is_empty());
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].strings,
        [b"v=STSv1; ".to_vec(), b"id=2024".to_vec(), b"0101".to_vec()]
    );
    assert_eq!(records[0].joined(), b"v=STSv1; id=20240101");
}

#[tokio::test]
async fn nodata_and_nxdomain_are_answers_not_errors() {
    let (_dns, r) = setup().await;
    assert_eq!(r.txt("www.example.test").await.unwrap(), Lookup::NoData);
    assert_eq!(
        r.txt("_smtp._tls.example.test").await.unwrap(),
        Lookup::NxDomain
    );
    assert_eq!(r.mx("www.example.test").await.unwrap(), Lookup::NoData);
}

#[tokio::test]
async fn mx_is_sorted_lower_case_without_root_dot() {
    let (_dns, r) = setup().await;
    let mx = r.mx("example.test").await.unwrap();
    assert_eq!(
        mx.records(),
        [
            Mx {
                preference: 10,
                host: "mx1.example.test".into()
            },
            Mx {
                preference: 20,
                host: "mx2.example.test".into()
            }
        ]
    );
    let null = r.mx("nullmx.test").await.unwrap();
    assert_eq!(
        null.records(),
        [Mx {
            preference: 0,
            host: ".".into()
        }]
    );
}

#[tokio::test]
async fn addresses() {
    let (_dns, r) = setup().await;
    assert_eq!(
        r.a("mx1.example.test").await.unwrap().records(),
        ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        r.aaaa("mx1.example.test").await.unwrap().records(),
        ["2001:db8::10".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(r.aaaa("www.example.test").await.unwrap(), Lookup::NoData);
}

#[tokio::test]
async fn cname_is_followed_and_reported() {
    let (_dns, r) = setup().await;
    let Lookup::Records { records, cnames } = r.txt("alias.example.test").await.unwrap() else {
        panic!("CNAME not followed")
    };
    assert_eq!(records[0].joined(), b"v=STSv1; id=provider1");
    assert_eq!(cnames, ["_mta-sts.provider.test"]);
}

#[tokio::test]
async fn servfail_is_an_error_not_an_absence() {
    let (dns, r) = setup().await;
    dns.set_fault("_mta-sts.example.test", Some(Fault::ServFail));
    let err = r.txt("_mta-sts.example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::ServFail { .. }), "{err:?}");
    assert!(err.to_string().contains("SERVFAIL"));
    // Other names are unaffected.
    assert!(matches!(
        r.mx("example.test").await.unwrap(),
        Lookup::Records { .. }
    ));
}

#[tokio::test]
async fn refused_for_a_zone_the_server_does_not_serve() {
    let (dns, r) = setup().await;
    dns.set_fault("example.test", Some(Fault::Refused));
    let err = r.mx("example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::Refused { .. }), "{err:?}");
}

#[tokio::test]
async fn silence_is_a_timeout_within_the_budget() {
    let (dns, _) = setup().await;
    let r = resolver_for(&dns, Duration::from_millis(300));
    dns.set_fault("_mta-sts.example.test", Some(Fault::Silent));
    let start = Instant::now();
    let err = r.txt("_mta-sts.example.test").await.unwrap_err();
    assert!(
        matches!(err, DnsError::Timeout { budget_ms: 300, .. }),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn zones_and_faults_change_while_running() {
    let (dns, _) = setup().await;
    dns.set_zone(
        "example.test.",
        &ZONE.replace("\"id=2024\" \"0101\"", "\"id=2025\""),
    )
    .unwrap();
    let fresh = resolver_for(&dns, Duration::from_millis(400));
    let txt = fresh.txt("_mta-sts.example.test").await.unwrap();
    assert_eq!(txt.records()[0].joined(), b"v=STSv1; id=2025");
    dns.set_fault("_mta-sts.example.test", Some(Fault::ServFail));
    dns.set_fault("_mta-sts.example.test", None);
    let fresh = resolver_for(&dns, Duration::from_millis(400));
    assert!(fresh.txt("_mta-sts.example.test").await.is_ok());
    dns.stop().await;
}

#[tokio::test]
async fn bad_zone_text_is_a_clear_error() {
    let dns = DnsServer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let err = dns
        .set_zone("broken.test.", "@ 300 IN MX not-a-number\n")
        .unwrap_err();
    assert!(err.to_string().contains("broken.test."), "{err}");
}

/// A DNS query for `name` TXT, written by hand (RFC 1035 §4.1), so the test sees the raw header.
fn raw_txt_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]); // root, TXT, IN
    q
}

#[tokio::test]
async fn truncated_udp_answers_are_retried_over_tcp() {
    let (dns, r) = setup().await;
    dns.set_type_fault(
        "_mta-sts.example.test",
        RecordType::TXT,
        Some(Fault::Truncate),
    );
    // Over UDP the server really does answer TC=1 with no records.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&raw_txt_query(0x4d54, "_mta-sts.example.test"), dns.addr())
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 12, "short answer: {n} bytes");
    assert_eq!(&buf[..2], &0x4d54u16.to_be_bytes());
    assert_ne!(buf[2] & 0x02, 0, "TC bit not set");
    assert_eq!(&buf[6..8], &[0, 0], "answers in a truncated reply");
    // The resolver gets the whole record set anyway, over TCP.
    let before = dns.query_counts();
    let Lookup::Records { records, .. } = r.txt("_mta-sts.example.test").await.unwrap() else {
        panic!("no records after the TCP retry")
    };
    assert_eq!(records[0].joined(), b"v=STSv1; id=20240101");
    let after = dns.query_counts();
    assert!(after.udp > before.udp, "{before:?} -> {after:?}");
    assert!(
        after.tcp > before.tcp,
        "no TCP retry: {before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn a_fault_can_hit_one_record_type_only() {
    let (dns, r) = setup().await;
    dns.set_type_fault("mx1.example.test", RecordType::AAAA, Some(Fault::ServFail));
    let err = r.aaaa("mx1.example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::ServFail { .. }), "{err:?}");
    // A at the same name is answered.
    assert_eq!(
        r.a("mx1.example.test").await.unwrap().records(),
        ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
    );
    // A fault for the whole name applies to the other types; the per-type one wins for its type.
    dns.set_fault("mx1.example.test", Some(Fault::Refused));
    let fresh = resolver_for(&dns, Duration::from_millis(400));
    let err = fresh.a("mx1.example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::Refused { .. }), "{err:?}");
    let err = fresh.aaaa("mx1.example.test").await.unwrap_err();
    assert!(matches!(err, DnsError::ServFail { .. }), "{err:?}");
    // Clearing both restores normal answers.
    dns.set_fault("mx1.example.test", None);
    dns.set_type_fault("mx1.example.test", RecordType::AAAA, None);
    let fresh = resolver_for(&dns, Duration::from_millis(400));
    assert_eq!(
        fresh.aaaa("mx1.example.test").await.unwrap().records(),
        ["2001:db8::10".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[tokio::test]
async fn many_zones_load_at_once() {
    let dns = DnsServer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let zones: Vec<(String, String)> = (0..2000)
        .map(|i| {
            (
                format!("d{i}.bulk.test."),
                format!("_mta-sts 300 IN TXT \"v=STSv1; id={i}\"\n"),
            )
        })
        .collect();
    dns.set_zones(zones).unwrap();
    let r = resolver_for(&dns, Duration::from_millis(400));
    let txt = r.txt("_mta-sts.d1234.bulk.test").await.unwrap();
    assert_eq!(txt.records()[0].joined(), b"v=STSv1; id=1234");
    assert_eq!(
        r.txt("_smtp._tls.d7.bulk.test").await.unwrap(),
        Lookup::NxDomain
    );
    // One bad zone text rejects the whole batch and changes nothing.
    let err = dns
        .set_zones([
            ("d1.bulk.test.", "_mta-sts 300 IN TXT \"v=STSv1; id=new\"\n"),
            ("bad.test.", "@ 300 IN MX nope\n"),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("bad.test."), "{err}");
    let fresh = resolver_for(&dns, Duration::from_millis(400));
    let txt = fresh.txt("_mta-sts.d1.bulk.test").await.unwrap();
    assert_eq!(txt.records()[0].joined(), b"v=STSv1; id=1");
}

/// Class 8: a CNAME loop is not "no record", and a chain longer than senders' resolvers follow
/// (8 links, `MAX_CNAME_CHAIN`) is refused, whether the server chases it in one answer or the
/// resolver has to, across zones.
#[tokio::test]
async fn cname_loops_and_over_long_chains_are_errors_not_nodata() {
    use mtasts_net::dns::MAX_CNAME_CHAIN;
    let dns = DnsServer::start("127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let mut zone = String::from(
        "loop1 300 IN CNAME loop2\nloop2 300 IN CNAME loop1\nself 300 IN CNAME self\nx0 300 IN CNAME x0.other.test.\n",
    );
    for i in 0..30 {
        zone.push_str(&format!("c{i} 300 IN CNAME c{}\n", i + 1));
    }
    zone.push_str("c30 300 IN TXT \"v=STSv1; id=end\"\n");
    let mut other = String::new();
    for i in 0..12 {
        zone.push_str(&format!("x{} 300 IN CNAME x{}.other.test.\n", i + 1, i + 1));
        other.push_str(&format!("x{i} 300 IN CNAME x{}.example.test.\n", i + 1));
    }
    dns.set_zone("example.test.", &zone).unwrap();
    dns.set_zone("other.test.", &other).unwrap();
    let r = resolver_for(&dns, Duration::from_millis(400));
    for name in ["loop1.example.test", "self.example.test"] {
        let e = r.txt(name).await.unwrap_err();
        assert!(matches!(e, DnsError::CnameLoop { .. }), "{name}: {e:?}");
        assert!(e.is_zone_fault());
        assert!(e.to_string().contains("CNAME loop"), "{e}");
    }
    for name in ["c0.example.test", "x0.example.test"] {
        let e = r.txt(name).await.unwrap_err();
        assert!(
            matches!(e, DnsError::CnameChainTooLong { links, .. } if links > MAX_CNAME_CHAIN),
            "{name}: {e:?}"
        );
    }
    // Exactly the limit is fine.
    let name = format!("c{}.example.test", 30 - MAX_CNAME_CHAIN);
    let ok = r.txt(&name).await.unwrap();
    assert_eq!(ok.records().len(), 1);
}
