//! The HTTPS policy fetch against scripted policy hosts with certificates from the test PKI.

use mtasts_net::dns::{Resolver, ResolverSettings};
use mtasts_net::https::{
    FetchFailure, FetchSettings, MAX_POLICY_BODY, PolicyFetch, fetch_policy, fetch_policy_at,
};
use mtasts_net::tls::{CertVerdict, TlsProbeConfig};
use mtasts_testnet::dns::{DnsServer, Fault};
use mtasts_testnet::https::{HttpResponse, PolicyHost};
use mtasts_testnet::pki::{Defect, Pki};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DOMAIN: &str = "example.test";
const HOST: &str = "mta-sts.example.test";
const POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct Setup {
    pki: Pki,
    host: PolicyHost,
}

impl Setup {
    async fn new(defect: Defect, response: HttpResponse) -> Self {
        let pki = Pki::new().unwrap();
        let cert = pki.issue(HOST, defect).unwrap();
        let host = PolicyHost::start("127.0.0.1:0".parse().unwrap(), cert.server_config, response)
            .await
            .unwrap();
        Self { pki, host }
    }

    fn tls(&self) -> TlsProbeConfig {
        TlsProbeConfig::with_roots(self.pki.root_store()).with_now(self.pki.now())
    }

    fn settings(&self) -> FetchSettings {
        settings(self.host.addr().port())
    }

    async fn fetch(&self) -> PolicyFetch {
        fetch_policy_at(DOMAIN, &[LOCALHOST], &self.tls(), &self.settings()).await
    }
}

fn settings(port: u16) -> FetchSettings {
    FetchSettings {
        port,
        timeout: Duration::from_secs(5),
        ..FetchSettings::default()
    }
}

async fn serve(response: HttpResponse) -> (Setup, PolicyFetch) {
    let s = Setup::new(Defect::Valid, response).await;
    let f = s.fetch().await;
    (s, f)
}

/// A port nothing listens on: bind, learn the port, close.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn defaults_are_port_443_15_s_and_64_kib() {
    let d = FetchSettings::default();
    assert_eq!(
        (d.port, d.timeout, d.max_body),
        (443, Duration::from_secs(15), 65536)
    );
    assert_eq!(MAX_POLICY_BODY, 65536);
}

#[tokio::test]
async fn policy_200_text_plain_is_ok() {
    let (s, f) = serve(HttpResponse::policy(POLICY)).await;
    assert!(f.failure.is_none(), "{:?}", f.failure);
    assert!(f.is_ok());
    assert_eq!(
        f.url,
        "https://mta-sts.example.test/.well-known/mta-sts.txt"
    );
    assert_eq!(f.host, HOST);
    assert_eq!(f.addresses, [LOCALHOST]);
    assert_eq!(f.addr, Some(s.host.addr()));
    assert_eq!(f.status, Some(200));
    assert_eq!(f.body.as_deref(), Some(POLICY.as_bytes()));
    assert_eq!(f.bytes, Some(POLICY.len()));
    assert_eq!(f.content_type.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(f.content_type_is_text_plain(), Some(true));
    assert!(f.location.is_none());
    let tls = f.tls.unwrap();
    assert_eq!(tls.verdict, CertVerdict::Valid);
    assert_eq!(tls.server_name, HOST);
}

#[tokio::test]
async fn the_request_is_one_plain_get_with_host_user_agent_and_accept() {
    let (s, _) = serve(HttpResponse::policy(POLICY)).await;
    assert_eq!(s.host.requests(), 1);
    let r = s.host.last_request().unwrap();
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/.well-known/mta-sts.txt");
    assert_eq!(r.version, "HTTP/1.1");
    assert_eq!(r.host.as_deref(), Some(HOST));
    let ua = r.user_agent.unwrap();
    assert_eq!(
        ua,
        format!("mtasts/{} (MTA-STS checker)", env!("CARGO_PKG_VERSION"))
    );
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("accept"), Some("text/plain"));
    assert_eq!(header("connection"), Some("close"));
    // Nothing that would invite a cache or a compressed body.
    assert_eq!(header("cache-control"), None);
    assert_eq!(header("accept-encoding"), None);
}

#[tokio::test]
async fn content_type_media_type_is_case_insensitive_and_parameters_are_ignored() {
    let s = Setup::new(Defect::Valid, HttpResponse::policy(POLICY)).await;
    for (value, plain) in [
        ("text/plain", true),
        ("text/plain; charset=utf-8", true),
        ("TEXT/PLAIN", true),
        ("Text/Plain ; charset=US-ASCII", true),
        ("application/octet-stream", false),
        ("text/html", false),
        ("text/plainx", false),
    ] {
        s.host
            .set_response(HttpResponse::policy(POLICY).with_header("Content-Type", value));
        let f = s.fetch().await;
        assert_eq!(f.content_type.as_deref(), Some(value));
        assert_eq!(f.content_type_is_text_plain(), Some(plain), "{value}");
        // The media type is the caller's judgement (D15): the body is still there.
        assert!(f.is_ok(), "{value}");
    }
    s.host
        .set_response(HttpResponse::policy(POLICY).without_header("Content-Type"));
    let f = s.fetch().await;
    assert_eq!(f.content_type, None);
    assert_eq!(f.content_type_is_text_plain(), None);
}

#[tokio::test]
async fn status_404_is_recorded_without_a_body() {
    let (_, f) = serve(HttpResponse::status(404)).await;
    assert!(f.failure.is_none(), "{:?}", f.failure);
    assert_eq!(f.status, Some(404));
    assert!(f.body.is_none() && f.bytes.is_none());
    assert!(!f.is_ok());
    assert_eq!(f.tls.unwrap().verdict, CertVerdict::Valid);
}

#[tokio::test]
async fn a_redirect_is_recorded_and_not_followed() {
    let (s, f) = serve(HttpResponse::redirect(
        "https://www.example.test/.well-known/mta-sts.txt",
    ))
    .await;
    assert_eq!(f.status, Some(301));
    assert_eq!(
        f.location.as_deref(),
        Some("https://www.example.test/.well-known/mta-sts.txt")
    );
    assert!(f.body.is_none());
    assert!(!f.is_ok());
    assert_eq!(s.host.requests(), 1);
}

#[tokio::test]
async fn an_html_page_is_recorded_as_is() {
    let page = "<!DOCTYPE html>\n<html><body>Please log in</body></html>\n";
    let (_, f) = serve(HttpResponse::html(page)).await;
    assert_eq!(f.status, Some(200));
    assert_eq!(f.body.as_deref(), Some(page.as_bytes()));
    assert_eq!(f.content_type_is_text_plain(), Some(false));
}

#[tokio::test]
async fn body_of_exactly_the_cap_is_read_and_one_byte_more_is_too_large() {
    let s = Setup::new(
        Defect::Valid,
        HttpResponse::policy(vec![b'a'; MAX_POLICY_BODY]),
    )
    .await;
    let f = s.fetch().await;
    assert!(f.is_ok(), "{:?}", f.failure);
    assert_eq!(f.bytes, Some(MAX_POLICY_BODY));

    s.host
        .set_response(HttpResponse::policy(vec![b'a'; MAX_POLICY_BODY + 1]));
    let f = s.fetch().await;
    assert!(
        matches!(
            f.failure,
            Some(FetchFailure::BodyTooLarge {
                limit: MAX_POLICY_BODY
            })
        ),
        "{:?}",
        f.failure
    );
    assert_eq!(f.status, Some(200));
    assert_eq!(f.content_type_is_text_plain(), Some(true));
    assert!(f.body.is_none());
    assert_eq!(f.bytes, Some(MAX_POLICY_BODY + 1));
    assert!(!f.is_ok());
    assert!(!f.failure.unwrap().is_unreachable());

    // A smaller cap, and a body far beyond it: reading stops at the cap.
    s.host
        .set_response(HttpResponse::policy(vec![b'a'; 1 << 20]));
    let f = fetch_policy_at(
        DOMAIN,
        &[LOCALHOST],
        &s.tls(),
        &FetchSettings {
            max_body: 100,
            ..s.settings()
        },
    )
    .await;
    assert!(matches!(
        f.failure,
        Some(FetchFailure::BodyTooLarge { limit: 100 })
    ));
    assert_eq!(f.bytes, Some(101));
}

#[tokio::test]
async fn a_slow_response_times_out_within_the_budget() {
    let s = Setup::new(
        Defect::Valid,
        HttpResponse::policy(POLICY).with_delay(Duration::from_secs(3)),
    )
    .await;
    let start = Instant::now();
    let f = fetch_policy_at(
        DOMAIN,
        &[LOCALHOST],
        &s.tls(),
        &FetchSettings {
            timeout: Duration::from_millis(500),
            ..s.settings()
        },
    )
    .await;
    let elapsed = start.elapsed();
    assert!(
        matches!(f.failure, Some(FetchFailure::Timeout)),
        "{:?}",
        f.failure
    );
    assert!(elapsed < Duration::from_millis(1500), "took {elapsed:?}");
    assert!(f.failure.as_ref().unwrap().is_unreachable());
    // The handshake had completed: it stays recorded.
    assert_eq!(f.tls.unwrap().verdict, CertVerdict::Valid);
    assert_eq!(f.status, None);
}

/// Accepts TCP connections on `addr` and never says anything.
async fn silent_server(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).await.unwrap()
}

#[tokio::test]
async fn a_stalled_tls_handshake_on_the_only_address_is_a_timeout() {
    let silent = silent_server("127.0.0.1:0".parse().unwrap()).await;
    let port = silent.local_addr().unwrap().port();
    let start = Instant::now();
    let f = fetch_policy_at(
        DOMAIN,
        &[LOCALHOST],
        &TlsProbeConfig::new(),
        &FetchSettings {
            timeout: Duration::from_millis(400),
            ..settings(port)
        },
    )
    .await;
    assert!(
        matches!(f.failure, Some(FetchFailure::Timeout)),
        "{:?}",
        f.failure
    );
    assert!(start.elapsed() < Duration::from_millis(1200));
}

#[tokio::test]
async fn a_stalled_first_address_leaves_time_for_the_next() {
    let s = Setup::new(Defect::Valid, HttpResponse::policy(POLICY)).await;
    let port = s.host.addr().port();
    let stalled: IpAddr = "127.0.0.2".parse().unwrap();
    let _silent = silent_server(SocketAddr::new(stalled, port)).await;
    let start = Instant::now();
    let f = fetch_policy_at(
        DOMAIN,
        &[stalled, LOCALHOST],
        &s.tls(),
        &FetchSettings {
            timeout: Duration::from_millis(1500),
            ..s.settings()
        },
    )
    .await;
    assert!(f.is_ok(), "{:?}", f.failure);
    assert_eq!(f.addr, Some(s.host.addr()));
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1400),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn certificate_defects_do_not_stop_the_fetch_and_reach_the_verdict() {
    for (defect, verdict) in [
        (Defect::Expired, CertVerdict::Expired),
        (Defect::WrongName, CertVerdict::HostMismatch),
        (Defect::UntrustedCa, CertVerdict::NotTrusted),
        (Defect::SelfSigned, CertVerdict::NotTrusted),
    ] {
        let s = Setup::new(defect.clone(), HttpResponse::policy(POLICY)).await;
        let f = s.fetch().await;
        assert!(f.failure.is_none(), "{defect:?}: {:?}", f.failure);
        assert_eq!(f.status, Some(200), "{defect:?}");
        assert_eq!(f.body.as_deref(), Some(POLICY.as_bytes()), "{defect:?}");
        assert_eq!(f.tls.as_ref().unwrap().verdict, verdict, "{defect:?}");
        assert!(!f.is_ok(), "{defect:?}");
    }
}

#[tokio::test]
async fn connection_refused_is_a_connect_failure_and_unreachable() {
    let port = closed_port();
    let f = fetch_policy_at(
        DOMAIN,
        &[LOCALHOST],
        &TlsProbeConfig::new(),
        &settings(port),
    )
    .await;
    let failure = f.failure.unwrap();
    let FetchFailure::Connect { addr, .. } = &failure else {
        panic!("{failure:?}")
    };
    assert_eq!(*addr, SocketAddr::new(LOCALHOST, port));
    assert!(failure.is_unreachable());
    assert_eq!(
        failure.to_string(),
        format!("cannot connect to 127.0.0.1:{port}: connection refused")
    );
    assert!(f.tls.is_none() && f.status.is_none() && f.addr.is_none());
}

#[tokio::test]
async fn addresses_are_tried_in_order_until_a_handshake_completes() {
    let s = Setup::new(Defect::Valid, HttpResponse::policy(POLICY)).await;
    // 127.0.0.2 is loopback too, but nothing listens there on this port.
    let refused: IpAddr = "127.0.0.2".parse().unwrap();
    let f = fetch_policy_at(DOMAIN, &[refused, LOCALHOST], &s.tls(), &s.settings()).await;
    assert!(f.is_ok(), "{:?}", f.failure);
    assert_eq!(f.addr, Some(s.host.addr()));
    assert_eq!(f.addresses, [refused, LOCALHOST]);

    // When none works, the last failure is the one reported.
    let port = closed_port();
    let f = fetch_policy_at(DOMAIN, &[LOCALHOST, refused], &s.tls(), &settings(port)).await;
    assert!(
        matches!(f.failure, Some(FetchFailure::Connect { addr, .. }) if addr.ip() == refused),
        "{:?}",
        f.failure
    );
}

#[tokio::test]
async fn no_address_given_is_no_address() {
    let f = fetch_policy_at(DOMAIN, &[], &TlsProbeConfig::new(), &settings(443)).await;
    assert!(matches!(f.failure, Some(FetchFailure::NoAddress)));
    assert!(!f.failure.unwrap().is_unreachable());
}

/// A TCP server that answers the first bytes it reads with `reply`, then closes; with `tls`,
/// after a TLS handshake.
async fn raw_server(tls: Option<Arc<rustls::ServerConfig>>, reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                match tls {
                    None => {
                        let _ = tcp.read(&mut buf).await;
                        let _ = tcp.write_all(reply).await;
                    }
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        let Ok(mut s) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(reply).await;
                        let _ = s.shutdown().await;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_a_tls_failure() {
    let port = raw_server(
        None,
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let f = fetch_policy_at(
        DOMAIN,
        &[LOCALHOST],
        &TlsProbeConfig::new(),
        &settings(port),
    )
    .await;
    let failure = f.failure.unwrap();
    assert!(
        matches!(failure, FetchFailure::Tls { addr, .. } if addr.port() == port),
        "{failure:?}"
    );
    assert!(!failure.is_unreachable());
    assert!(
        failure
            .to_string()
            .starts_with(&format!("TLS with 127.0.0.1:{port}: "))
    );
}

#[tokio::test]
async fn malformed_or_truncated_responses_are_http_failures() {
    let pki = Pki::new().unwrap();
    let cert = pki.issue(HOST, Defect::Valid).unwrap();
    let tls = TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now());

    let port = raw_server(Some(Arc::clone(&cert.server_config)), b"garbage\r\n\r\n").await;
    let f = fetch_policy_at(DOMAIN, &[LOCALHOST], &tls, &settings(port)).await;
    let failure = f.failure.unwrap();
    assert!(matches!(failure, FetchFailure::Http { .. }), "{failure:?}");
    assert!(
        failure.to_string().contains(&format!("127.0.0.1:{port}")),
        "{failure}"
    );
    assert!(f.tls.is_some() && f.status.is_none());

    let port = raw_server(
        Some(cert.server_config),
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nversion: S",
    )
    .await;
    let f = fetch_policy_at(DOMAIN, &[LOCALHOST], &tls, &settings(port)).await;
    assert!(
        matches!(f.failure, Some(FetchFailure::Http { .. })),
        "{:?}",
        f.failure
    );
    assert_eq!(f.status, Some(200));
    assert_eq!(f.bytes, Some(10));
    assert!(f.body.is_none() && !f.is_ok());
}

const ZONE: &str = r#"
mta-sts   300 IN A 127.0.0.1
mta-sts   300 IN AAAA ::1
"#;

#[tokio::test]
async fn fetch_through_dns() {
    let s = Setup::new(Defect::Valid, HttpResponse::policy(POLICY)).await;
    let dns = DnsServer::start(LOCALHOST).await.unwrap();
    dns.set_zone("example.test.", ZONE).unwrap();
    // A fresh resolver each time: hickory caches answers.
    let resolver = || {
        Resolver::new(&ResolverSettings {
            nameservers: vec![dns.addr()],
            timeout: Some(Duration::from_millis(500)),
            ..ResolverSettings::default()
        })
        .unwrap()
    };

    let f = fetch_policy(DOMAIN, &resolver(), &s.tls(), &s.settings()).await;
    assert!(f.is_ok(), "{:?}", f.failure);
    let v6: IpAddr = "::1".parse().unwrap();
    assert_eq!(f.addresses, [LOCALHOST, v6]);
    assert_eq!(f.addr, Some(s.host.addr()));
    assert_eq!(
        s.host.last_request().unwrap().host.as_deref(),
        Some("mta-sts.example.test")
    );

    // A trailing dot and upper case in the domain make no difference.
    let f = fetch_policy("Example.TEST.", &resolver(), &s.tls(), &s.settings()).await;
    assert_eq!(f.host, HOST);
    assert!(f.is_ok(), "{:?}", f.failure);

    // NXDOMAIN: no address.
    let f = fetch_policy("missing.example.test", &resolver(), &s.tls(), &s.settings()).await;
    assert!(
        matches!(f.failure, Some(FetchFailure::NoAddress)),
        "{:?}",
        f.failure
    );

    // SERVFAIL for both A and AAAA: could not test.
    dns.set_fault(HOST, Some(Fault::ServFail));
    let f = fetch_policy(DOMAIN, &resolver(), &s.tls(), &s.settings()).await;
    let failure = f.failure.unwrap();
    assert!(matches!(failure, FetchFailure::Dns(_)), "{failure:?}");
    assert!(failure.is_unreachable());
    assert!(f.addresses.is_empty());
}
