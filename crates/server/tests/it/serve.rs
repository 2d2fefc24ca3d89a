//! What is served, and to whom.

use crate::support::{
    LOCALHOST, Running, h1, h2, hosted_domain, policy_for, request, send1, send2,
};
use mtasts_core::policy::Mode;
use mtasts_core::render::build_policy;
use mtasts_net::dns::{Resolver, ResolverSettings};
use mtasts_net::https::{FetchSettings, fetch_policy};
use mtasts_net::tls::CertVerdict;
use mtasts_server::Hosted;
use mtasts_server::http::{ChallengeResponder, POLICY_PATH};
use mtasts_testnet::dns::DnsServer;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn every_hosted_domain_fetches_clean_with_our_own_fetch() {
    let server = Running::start(&["example.test", "other.test", "third.test"]).await;
    for domain in ["example.test", "other.test", "third.test", "EXAMPLE.test."] {
        let f = server.fetch(domain).await;
        assert!(f.is_ok(), "{domain}: {:?}", f.failure);
        let want = policy_for(&domain.trim_end_matches('.').to_ascii_lowercase()).render();
        assert_eq!(f.body.as_deref(), Some(want.as_bytes()), "{domain}");
        assert_eq!(f.content_type.as_deref(), Some("text/plain; charset=utf-8"));
        assert_eq!(f.content_type_is_text_plain(), Some(true));
        let tls = f.tls.unwrap();
        assert_eq!(tls.verdict, CertVerdict::Valid, "{domain}");
    }
}

const ZONE: &str = "mta-sts 300 IN A 127.0.0.1\n";

#[tokio::test]
async fn policy_fetch_through_dns_passes_clean() {
    let server = Running::start(&["example.test"]).await;
    let dns = DnsServer::start(LOCALHOST).await.unwrap();
    dns.set_zone("example.test.", ZONE).unwrap();
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![dns.addr()],
        timeout: Some(Duration::from_millis(500)),
        ..ResolverSettings::default()
    })
    .unwrap();
    let settings = FetchSettings {
        port: server.https.port(),
        timeout: Duration::from_secs(5),
        ..FetchSettings::default()
    };
    let f = fetch_policy("example.test", &resolver, &server.probe_config(), &settings).await;
    assert!(f.is_ok(), "{:?}", f.failure);
    assert_eq!(
        f.body.unwrap(),
        policy_for("example.test").render().as_bytes()
    );
}

#[tokio::test]
async fn http1_keep_alive_serves_get_and_head_with_policy_headers() {
    let server = Running::start(&["example.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut s = h1(tls).await;
    let host = Some("mta-sts.example.test");
    let body = policy_for("example.test").render();
    for _ in 0..3 {
        let r = send1(&mut s, request("GET", POLICY_PATH, host)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.body(), body.as_bytes());
    }
    let r = send1(&mut s, request("HEAD", POLICY_PATH, host)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], body.len().to_string());
    assert!(r.body().is_empty());
    // A Host with a port and in another case names the same host.
    let r = send1(
        &mut s,
        request("GET", POLICY_PATH, Some("MTA-STS.example.test:443")),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_and_serves_the_policy() {
    let server = Running::start(&["example.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut s = h2(tls).await;
    let uri = format!("https://mta-sts.example.test{POLICY_PATH}");
    let body = policy_for("example.test").render();
    for method in ["GET", "HEAD", "GET"] {
        let r = send2(&mut s, request(method, &uri, None)).await;
        assert_eq!(r.status(), 200, "{method}");
        assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
        if method == "GET" {
            assert_eq!(r.body(), body.as_bytes());
        } else {
            assert!(r.body().is_empty());
        }
    }
    let r = send2(
        &mut s,
        request(
            "GET",
            "https://mta-sts.other.test/.well-known/mta-sts.txt",
            None,
        ),
    )
    .await;
    assert_eq!(r.status(), 421);
}

#[tokio::test]
async fn host_header_naming_another_domain_than_sni_is_refused() {
    let server = Running::start(&["example.test", "other.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = h1(tls).await;
    for host in [
        Some("mta-sts.other.test"),
        Some("example.test"),
        Some("unknown.test"),
        None,
    ] {
        let r = send1(&mut s, request("GET", POLICY_PATH, host)).await;
        assert_eq!(r.status(), 421, "{host:?}");
        assert!(r.body().is_empty());
    }
}

#[tokio::test]
async fn nothing_but_the_policy_path_is_served_on_policy_hosts() {
    let server = Running::start(&["example.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = h1(tls).await;
    let host = Some("mta-sts.example.test");
    for path in [
        "/",
        "/.well-known/",
        "/.well-known/mta-sts.txt/",
        "/mta-sts.txt",
        "/.well-known/MTA-STS.TXT",
        "/../.well-known/mta-sts.txt",
    ] {
        let r = send1(&mut s, request("GET", path, host)).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = send1(&mut s, request(method, POLICY_PATH, host)).await;
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "GET, HEAD");
    }
}

/// The error a client sees when the handshake is refused.
async fn refusal(server: &Running, name: &str, sni: bool) -> String {
    let mut config = (*server.client_config(&[b"http/1.1"])).clone();
    config.enable_sni = sni;
    match server.tls_with(Arc::new(config), name).await {
        Ok(_) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn unknown_names_and_no_sni_are_refused_alike() {
    let server = Running::start(&["example.test"]).await;
    let refusals = [
        refusal(&server, "mta-sts.unknown.test", true).await,
        refusal(&server, "mta-sts.examplf.test", true).await,
        refusal(&server, "example.test", true).await,
        refusal(&server, "www.example.test", true).await,
        refusal(&server, "mta-sts.example.test", false).await,
        refusal(&server, "127.0.0.1", true).await,
    ];
    for r in &refusals {
        assert!(r.contains("AccessDenied"), "{r}");
        assert_eq!(r, &refusals[0]);
    }
    assert_eq!(
        refusal(&server, "mta-sts.example.test", true).await,
        "accepted"
    );
}

#[tokio::test]
async fn tls_versions_below_1_2_are_refused() {
    let server = Running::start(&["example.test"]).await;
    // A TLS 1.2-only client is served; rustls offers nothing older, so TLS 1.1 is spoken by hand:
    // a ClientHello whose highest version is TLS 1.1 gets a fatal alert and no ServerHello.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(server.pki.root_store())
        .with_no_client_auth();
    let tls = server
        .tls_with(Arc::new(c), "mta-sts.example.test")
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );

    let mut tcp = tokio::net::TcpStream::connect(server.https).await.unwrap();
    tcp.write_all(&tls11_client_hello("mta-sts.example.test"))
        .await
        .unwrap();
    let (_, reply) = crate::support::read_until_closed(&mut tcp, Duration::from_secs(5))
        .await
        .unwrap();
    // A fatal alert record (type 21, level 2) and nothing else: no ServerHello (type 22).
    assert!(
        reply.len() == 7 && reply[0] == 21 && reply[5] == 2,
        "{reply:?}"
    );
}

/// A minimal TLS 1.1 ClientHello with SNI.
fn tls11_client_hello(name: &str) -> Vec<u8> {
    let mut sni = vec![0u8];
    sni.extend_from_slice(&u16::try_from(name.len()).unwrap().to_be_bytes());
    sni.extend_from_slice(name.as_bytes());
    let mut ext = vec![0, 0]; // server_name
    ext.extend_from_slice(&u16::try_from(sni.len() + 2).unwrap().to_be_bytes());
    ext.extend_from_slice(&u16::try_from(sni.len()).unwrap().to_be_bytes());
    ext.extend_from_slice(&sni);
    let mut body = vec![3, 2]; // TLS 1.1
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 6, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x2f]); // ECDHE GCM suites, RSA CBC
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(&u16::try_from(ext.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&u16::try_from(hs.len()).unwrap().to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[tokio::test]
async fn a_replaced_snapshot_is_served_on_open_connections_and_new_handshakes() {
    let server = Running::start(&["example.test", "other.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = h1(tls).await;
    let host = Some("mta-sts.example.test");
    let first = send1(&mut s, request("GET", POLICY_PATH, host)).await;
    assert_eq!(first.body(), policy_for("example.test").render().as_bytes());

    // example.test changes its policy; other.test is removed; new.test is added.
    let testing = build_policy(Mode::Testing, 3600, &["mx2.example.test"])
        .unwrap()
        .0;
    server.hosted.replace(Hosted::build([
        hosted_domain(&server.pki, "example.test", testing.clone()),
        hosted_domain(&server.pki, "new.test", policy_for("new.test")),
    ]));
    let again = send1(&mut s, request("GET", POLICY_PATH, host)).await;
    assert_eq!(again.body(), testing.render().as_bytes());
    assert!(server.fetch("new.test").await.is_ok());
    assert!(!server.fetch("other.test").await.is_ok());
}

#[tokio::test]
async fn a_domain_removed_after_the_handshake_answers_404() {
    let server = Running::start(&["example.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = h1(tls).await;
    server.hosted.replace(Hosted::default());
    let r = send1(
        &mut s,
        request("GET", POLICY_PATH, Some("mta-sts.example.test")),
    )
    .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn port_80_answers_404_to_everything() {
    let server = Running::start(&["example.test"]).await;
    let tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let mut s = h1(tcp).await;
    for (host, path) in [
        ("mta-sts.example.test", POLICY_PATH),
        ("mta-sts.example.test", "/.well-known/acme-challenge/token"),
        ("anything.test", "/"),
    ] {
        let r = send1(&mut s, request("GET", path, Some(host))).await;
        assert_eq!(r.status(), 404, "{host}{path}");
    }
}

#[derive(Debug)]
struct OneChallenge;

impl ChallengeResponder for OneChallenge {
    fn respond(&self, host: &str, path: &str) -> Option<mtasts_server::http::ChallengeFuture> {
        let found = (host == "mta-sts.example.test" && path == "/.well-known/acme-challenge/tok")
            .then(|| bytes::Bytes::from_static(b"tok.thumbprint"));
        Some(Box::pin(std::future::ready(found)))
    }
}

#[tokio::test]
async fn port_80_hook_answers_what_the_challenge_responder_knows() {
    let mut config = crate::support::test_config();
    config.challenges = Some(Arc::new(OneChallenge));
    let server = Running::start_with(&["example.test"], config).await;
    let tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let mut s = h1(tcp).await;
    let r = send1(
        &mut s,
        request(
            "GET",
            "/.well-known/acme-challenge/tok",
            Some("mta-sts.example.test"),
        ),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().as_ref(), b"tok.thumbprint");
    let r = send1(
        &mut s,
        request(
            "GET",
            "/.well-known/acme-challenge/other",
            Some("mta-sts.example.test"),
        ),
    )
    .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn shutdown_drains_open_connections_and_stops_accepting() {
    let mut server = Running::start(&["example.test"]).await;
    let tls = server
        .tls("mta-sts.example.test", &[b"http/1.1"])
        .await
        .unwrap();
    let mut s = h1(tls).await;
    let r = send1(
        &mut s,
        request("GET", POLICY_PATH, Some("mta-sts.example.test")),
    )
    .await;
    assert_eq!(r.status(), 200);
    let h2tls = server.tls("mta-sts.example.test", &[b"h2"]).await.unwrap();
    let _h2 = h2(h2tls).await;
    // Idle keep-alive connections (HTTP/1.1 and HTTP/2) are closed at once, well within grace.
    let took = server.stop().await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(tokio::net::TcpStream::connect(server.https).await.is_err());
}

#[test]
fn ten_thousand_domains_load_fast_and_every_one_is_found() {
    let pki = mtasts_testnet::pki::Pki::new().unwrap();
    // One certificate shared: this measures the snapshot, not key parsing (bench/serve does both).
    let shared = hosted_domain(&pki, "d0.test", policy_for("d0.test")).cert;
    let domains: Vec<_> = (0..10_000)
        .map(|i| mtasts_server::HostedDomain {
            domain: format!("D{i}.test."),
            policy: policy_for(&format!("d{i}.test")),
            cert: Arc::clone(&shared),
        })
        .collect();
    let started = std::time::Instant::now();
    let hosted = Hosted::build(domains);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(hosted.len(), 10_000);
    for i in (0..10_000).step_by(7) {
        let entry = hosted.get(&format!("mta-sts.d{i}.TEST")).unwrap();
        assert_eq!(
            entry.body.as_deref(),
            Some(policy_for(&format!("d{i}.test")).render().as_bytes())
        );
    }
    assert!(hosted.get("mta-sts.d10000.test").is_none());
    assert!(hosted.get("d1.test").is_none());
}

/// Answers `acme-tls/1` handshakes with a configuration of its own, as TLS-ALPN-01 will.
struct AcmeHook(Arc<rustls::ServerConfig>);

impl std::fmt::Debug for AcmeHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcmeHook")
    }
}

impl mtasts_server::tls::TlsHook for AcmeHook {
    fn config_for(
        &self,
        hello: &rustls::server::ClientHello<'_>,
    ) -> Option<mtasts_server::tls::HookFuture> {
        let mut alpn = hello.alpn()?;
        let config = alpn
            .any(|p| p == b"acme-tls/1")
            .then(|| Arc::clone(&self.0))?;
        Some(Box::pin(std::future::ready(Some(config))))
    }
}

#[tokio::test]
async fn tls_hook_answers_acme_alpn_handshakes_with_its_own_config_then_closes() {
    let pki = mtasts_testnet::pki::Pki::new().unwrap();
    // The validation certificate, for a name that is not hosted.
    let cert = pki
        .issue("mta-sts.pending.test", mtasts_testnet::pki::Defect::Valid)
        .unwrap();
    let mut acme = (*cert.server_config).clone();
    acme.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let mut config = crate::support::test_config();
    config.tls_hook = Some(Arc::new(AcmeHook(Arc::new(acme))));
    let server = Running::start_with(&["example.test"], config).await;

    // The hook's handshake completes, with its certificate, and the connection is then closed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.root_store())
        .with_no_client_auth();
    client.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let mut tls = server
        .tls_with(Arc::new(client), "mta-sts.pending.test")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"acme-tls/1"[..]));
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0],
        *cert.leaf()
    );
    assert!(
        crate::support::read_until_closed(&mut tls, Duration::from_secs(2))
            .await
            .is_some()
    );
    // Without that ALPN the name is unknown as ever; hosted names are served as before.
    assert!(
        server
            .tls("mta-sts.pending.test", &[b"http/1.1"])
            .await
            .is_err()
    );
    assert!(server.fetch("example.test").await.is_ok());
}
