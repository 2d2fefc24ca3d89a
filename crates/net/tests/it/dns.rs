//! DNS lookups against an in-process authority: answers, NODATA vs NXDOMAIN, and failures told
//! apart (SERVFAIL, REFUSED, timeout).

use mtasts_net::dns::{DnsError, Lookup, Mx, Resolver, ResolverSettings};
use mtasts_testnet::dns::{DnsServer, Fault};
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
