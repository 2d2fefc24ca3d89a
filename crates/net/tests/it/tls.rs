//! `tls_handshake` against loopback tokio-rustls servers serving each `Pki` defect, and against
//! misbehaving servers that never complete a handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mtasts_net::tls::{
    CertVerdict, RootsError, TlsError, TlsObservation, TlsProbeConfig, tls_connect, tls_handshake,
};
use mtasts_testnet::pki::{Defect, IssuedCert, Pki, WRONG_NAME};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

const NAME: &str = "mx1.example.test";
const BUDGET: Duration = Duration::from_secs(10);

/// Serves `config` on a fresh loopback port: every connection gets a TLS handshake, then the
/// server waits for the client to close.
async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 64];
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    addr
}

/// A fixed-clock client trusting only the test root.
fn client(pki: &Pki) -> TlsProbeConfig {
    TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now())
}

async fn probe(addr: SocketAddr, name: &str, config: &TlsProbeConfig) -> TlsObservation {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls_handshake(tcp, name, config, BUDGET).await.unwrap()
}

/// Issues `defect` for `NAME`, serves it (TLS 1.2 + 1.3) and probes it.
async fn observe(pki: &Pki, defect: Defect) -> (IssuedCert, TlsObservation) {
    let issued = pki.issue(NAME, defect).unwrap();
    let addr = serve(Arc::clone(&issued.server_config)).await;
    let obs = probe(addr, NAME, &client(pki)).await;
    (issued, obs)
}

fn result_type(obs: &TlsObservation) -> Option<String> {
    obs.verdict.result_type().map(|r| r.as_str().to_owned())
}

/// The DER bytes the client recorded equal what the server sent.
fn assert_chain_captured(issued: &IssuedCert, obs: &TlsObservation) {
    let got: Vec<_> = obs.chain.iter().map(|c| c.der.clone()).collect();
    assert_eq!(got, issued.chain);
}

#[tokio::test]
async fn valid_chain_is_valid_over_tls13_with_details() {
    let pki = Pki::new().unwrap();
    let (issued, obs) = observe(&pki, Defect::Valid).await;
    assert_eq!(obs.verdict, CertVerdict::Valid);
    assert_eq!(result_type(&obs), None);
    assert_chain_captured(&issued, &obs);
    assert_eq!(obs.chain.len(), 2);
    assert_eq!(obs.protocol_version, ProtocolVersion::TLSv1_3);
    assert_eq!(obs.protocol_name(), "TLSv1.3");
    assert!(
        obs.cipher_suite.starts_with("TLS13_"),
        "{}",
        obs.cipher_suite
    );
    assert_eq!(obs.server_name, NAME);
    let leaf = obs.leaf().unwrap();
    assert_eq!(leaf.san_dns, [NAME]);
    assert_eq!(leaf.subject_cn.as_deref(), Some(NAME));
    assert!(
        leaf.issuer.contains("mtasts testnet intermediate CA"),
        "{}",
        leaf.issuer
    );
    assert_eq!(leaf.not_after, pki.now() + time::Duration::days(60));
    assert_eq!(
        leaf.not_before_unix(),
        (pki.now() - time::Duration::days(30)).unix_timestamp()
    );
    assert_eq!(obs.days_left, Some(60));
    assert_eq!(obs.verification.checked_at, pki.now());
    let inter = obs.chain[1].details.as_ref().unwrap();
    assert!(inter.is_ca);
    assert!(
        inter.issuer.contains("mtasts testnet root CA"),
        "{}",
        inter.issuer
    );
}

#[tokio::test]
async fn valid_chain_with_the_system_clock() {
    let pki = Pki::new().unwrap();
    let issued = pki.issue(NAME, Defect::Valid).unwrap();
    let addr = serve(Arc::clone(&issued.server_config)).await;
    let obs = probe(addr, NAME, &TlsProbeConfig::with_roots(pki.root_store())).await;
    assert_eq!(obs.verdict, CertVerdict::Valid);
    assert!(
        matches!(obs.days_left, Some(59 | 60)),
        "{:?}",
        obs.days_left
    );
}

#[tokio::test]
async fn expired_is_certificate_expired() {
    let pki = Pki::new().unwrap();
    let (issued, obs) = observe(&pki, Defect::Expired).await;
    assert_eq!(obs.verdict, CertVerdict::Expired);
    assert_eq!(result_type(&obs).as_deref(), Some("certificate-expired"));
    assert_eq!(obs.verification.name, CertVerdict::Valid);
    assert_eq!(obs.days_left, Some(-1));
    assert_chain_captured(&issued, &obs);
}

#[tokio::test]
async fn not_yet_valid_is_a_validation_failure() {
    let pki = Pki::new().unwrap();
    let (_, obs) = observe(&pki, Defect::NotYetValid).await;
    assert_eq!(obs.verdict, CertVerdict::NotYetValid);
    assert_eq!(result_type(&obs).as_deref(), Some("validation-failure"));
    assert_eq!(
        obs.verdict.failure_reason_code(),
        Some("certificate-not-yet-valid")
    );
}

#[tokio::test]
async fn wrong_name_is_host_mismatch() {
    let pki = Pki::new().unwrap();
    let (_, obs) = observe(&pki, Defect::WrongName).await;
    assert_eq!(obs.verdict, CertVerdict::HostMismatch);
    assert_eq!(
        result_type(&obs).as_deref(),
        Some("certificate-host-mismatch")
    );
    assert_eq!(obs.verification.chain, CertVerdict::Valid);
    assert_eq!(obs.leaf().unwrap().san_dns, [WRONG_NAME]);
}

#[tokio::test]
async fn self_signed_is_not_trusted() {
    let pki = Pki::new().unwrap();
    let (issued, obs) = observe(&pki, Defect::SelfSigned).await;
    assert_eq!(obs.verdict, CertVerdict::NotTrusted);
    assert_eq!(
        result_type(&obs).as_deref(),
        Some("certificate-not-trusted")
    );
    assert_eq!(obs.chain.len(), 1);
    assert!(obs.leaf().unwrap().self_issued);
    assert_eq!(obs.verification.name, CertVerdict::Valid);
    assert_chain_captured(&issued, &obs);
}

#[tokio::test]
async fn untrusted_ca_is_not_trusted_until_its_root_is_added() {
    let pki = Pki::new().unwrap();
    let (issued, obs) = observe(&pki, Defect::UntrustedCa).await;
    assert_eq!(obs.verdict, CertVerdict::NotTrusted);
    assert_eq!(
        result_type(&obs).as_deref(),
        Some("certificate-not-trusted")
    );
    assert_chain_captured(&issued, &obs);
    assert!(obs.leaf().unwrap().issuer.contains("untrusted root"));

    let addr = serve(Arc::clone(&issued.server_config)).await;
    let mut config = client(&pki);
    config.add_root(pki.untrusted_root_cert().clone()).unwrap();
    assert_eq!(probe(addr, NAME, &config).await.verdict, CertVerdict::Valid);
}

#[tokio::test]
async fn missing_intermediate_is_not_trusted() {
    let pki = Pki::new().unwrap();
    let (issued, obs) = observe(&pki, Defect::MissingIntermediate).await;
    assert_eq!(obs.verdict, CertVerdict::NotTrusted);
    assert_eq!(
        result_type(&obs).as_deref(),
        Some("certificate-not-trusted")
    );
    assert_eq!(obs.chain.len(), 1);
    assert!(!obs.leaf().unwrap().self_issued);
    assert_chain_captured(&issued, &obs);
}

#[tokio::test]
async fn wildcard_san_matches_exactly_one_label() {
    let pki = Pki::new().unwrap();
    let issued = pki
        .issue(NAME, Defect::WildcardSan("*.example.test".into()))
        .unwrap();
    let addr = serve(Arc::clone(&issued.server_config)).await;
    let config = client(&pki);
    let obs = probe(addr, "mx1.example.test", &config).await;
    assert_eq!(obs.verdict, CertVerdict::Valid);
    assert_eq!(obs.leaf().unwrap().san_dns, ["*.example.test"]);
    assert_eq!(
        probe(addr, "MX2.Example.Test", &config).await.verdict,
        CertVerdict::Valid
    );
    for name in ["a.mx1.example.test", "example.test", "mx1.example.org"] {
        let obs = probe(addr, name, &config).await;
        assert!(
            matches!(obs.verdict, CertVerdict::HostMismatch),
            "{name}: {:?}",
            obs.verdict
        );
        assert_eq!(obs.verification.chain, CertVerdict::Valid);
    }
}

#[tokio::test]
async fn no_san_is_host_mismatch_even_when_the_cn_matches() {
    let pki = Pki::new().unwrap();
    let (_, obs) = observe(&pki, Defect::NoSan).await;
    let leaf = obs.leaf().unwrap();
    assert!(leaf.san_dns.is_empty());
    assert_eq!(leaf.subject_cn.as_deref(), Some(NAME));
    assert!(
        matches!(obs.verdict, CertVerdict::HostMismatch),
        "{:?}",
        obs.verdict
    );
    assert_eq!(
        result_type(&obs).as_deref(),
        Some("certificate-host-mismatch")
    );
    assert_eq!(obs.verification.chain, CertVerdict::Valid);
}

#[tokio::test]
async fn days_left_counts_against_the_injected_now() {
    let now = time::macros::datetime!(2030-06-01 12:00 UTC);
    let pki = Pki::at(now).unwrap();
    for n in [21, 7, 0] {
        let (_, obs) = observe(&pki, Defect::ExpiresInDays(n)).await;
        assert_eq!(obs.verdict, CertVerdict::Valid, "{n}");
        assert_eq!(obs.days_left, Some(n));
        assert_eq!(obs.verification.checked_at, now);
    }
    // The same certificate one hour later: 6 whole days left.
    let issued = pki.issue(NAME, Defect::ExpiresInDays(7)).unwrap();
    let addr = serve(Arc::clone(&issued.server_config)).await;
    let later = client(&pki).with_now(now + time::Duration::HOUR);
    assert_eq!(probe(addr, NAME, &later).await.days_left, Some(6));
}

#[tokio::test]
async fn tls12_only_server_negotiates_tls12() {
    let pki = Pki::new().unwrap();
    let issued = pki.issue(NAME, Defect::Valid).unwrap();
    let addr = serve(issued.server_config_tls12_only().unwrap()).await;
    let obs = probe(addr, NAME, &client(&pki)).await;
    assert_eq!(obs.protocol_version, ProtocolVersion::TLSv1_2);
    assert_eq!(obs.protocol_name(), "TLSv1.2");
    assert!(
        obs.cipher_suite.starts_with("TLS_ECDHE_ECDSA_"),
        "{}",
        obs.cipher_suite
    );
    assert_eq!(obs.verdict, CertVerdict::Valid);
}

#[tokio::test]
async fn ca_file_pem_adds_to_the_webpki_roots() {
    let pki = Pki::new().unwrap();
    let issued = pki.issue(NAME, Defect::Valid).unwrap();
    let addr = serve(Arc::clone(&issued.server_config)).await;
    let webpki_only = TlsProbeConfig::new();
    assert_eq!(
        probe(addr, NAME, &webpki_only).await.verdict,
        CertVerdict::NotTrusted
    );
    let mut with_ca_file = TlsProbeConfig::new();
    let before = with_ca_file.roots().len();
    assert_eq!(
        with_ca_file
            .add_pem_roots(pki.root_pem().as_bytes())
            .unwrap(),
        1
    );
    assert_eq!(with_ca_file.roots().len(), before + 1);
    assert_eq!(
        probe(addr, NAME, &with_ca_file).await.verdict,
        CertVerdict::Valid
    );
    assert!(matches!(
        with_ca_file.add_pem_roots(b"not a pem file"),
        Err(RootsError::NoCertificates)
    ));
}

#[tokio::test]
async fn tls_connect_returns_a_usable_stream() {
    let pki = Pki::new().unwrap();
    let issued = pki.issue(NAME, Defect::Valid).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::clone(&issued.server_config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(&buf).await.unwrap();
        tls.shutdown().await.unwrap();
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let config = client(&pki).with_alpn(vec![b"http/1.1".to_vec()]);
    let (mut tls, obs) = tls_connect(tcp, NAME, &config, BUDGET).await.unwrap();
    assert_eq!(obs.alpn, None); // the test server offers no ALPN
    tls.write_all(b"ping").await.unwrap();
    let mut echo = Vec::new();
    tls.read_to_end(&mut echo).await.unwrap();
    assert_eq!(echo, b"ping");
    server.await.unwrap();
}

/// Reads one TLS record (the ClientHello) from `tcp`.
async fn read_record(tcp: &mut TcpStream) {
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).await.unwrap();
    assert_eq!(header[0], 22, "expected a handshake record");
    let mut body = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    tcp.read_exact(&mut body).await.unwrap();
}

/// A server that handles one connection with `f`.
async fn raw_server<F, Fut>(f: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        f(tcp).await;
    });
    addr
}

async fn handshake_err(addr: SocketAddr, budget: Duration) -> TlsError {
    let pki = Pki::new().unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls_handshake(tcp, NAME, &client(&pki), budget)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn server_closing_mid_handshake_is_closed() {
    let addr = raw_server(|mut tcp| async move {
        read_record(&mut tcp).await;
        tcp.shutdown().await.unwrap();
    })
    .await;
    let err = handshake_err(addr, BUDGET).await;
    assert!(matches!(err, TlsError::Closed), "{err:?}");
    assert!(!err.is_protocol_version());
}

#[tokio::test]
async fn tls10_only_server_is_a_protocol_version_failure() {
    let addr = raw_server(|mut tcp| async move {
        read_record(&mut tcp).await;
        // alert record, TLS 1.0, length 2: fatal protocol_version (70)
        tcp.write_all(&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 70])
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
    })
    .await;
    let err = handshake_err(addr, BUDGET).await;
    assert!(err.is_protocol_version(), "{err:?}");
    assert!(err.to_string().contains("ProtocolVersion"), "{err}");
}

#[tokio::test]
async fn plaintext_server_is_a_handshake_failure() {
    let addr = raw_server(|mut tcp| async move {
        read_record(&mut tcp).await;
        tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        tcp.shutdown().await.unwrap();
    })
    .await;
    let err = handshake_err(addr, BUDGET).await;
    assert!(matches!(err, TlsError::Handshake(_)), "{err:?}");
}

#[tokio::test]
async fn silent_server_times_out_within_the_budget() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let addr = raw_server(|tcp| async move {
        let _ = rx.await; // hold the connection open, never speak
        drop(tcp);
    })
    .await;
    let budget = Duration::from_millis(300);
    let start = Instant::now();
    let err = handshake_err(addr, budget).await;
    let elapsed = start.elapsed();
    assert!(
        matches!(err, TlsError::Timeout(d) if d == budget),
        "{err:?}"
    );
    assert!(elapsed >= budget && elapsed < budget * 5, "{elapsed:?}");
    drop(tx);
}

#[tokio::test]
async fn invalid_server_name_is_refused_before_connecting() {
    let pki = Pki::new().unwrap();
    let (a, _b) = tokio::io::duplex(64);
    let err = tls_handshake(a, "not a name!", &client(&pki), BUDGET)
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::InvalidServerName(_)), "{err:?}");
}

/// Serves a valid chain but signs the handshake with an unrelated key.
#[derive(Debug)]
struct WrongKey(Arc<CertifiedKey>);

impl ResolvesServerCert for WrongKey {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[tokio::test]
async fn handshake_signatures_are_still_verified() {
    let pki = Pki::new().unwrap();
    let good = pki.issue(NAME, Defect::Valid).unwrap();
    let other = pki.issue("other.example.test", Defect::Valid).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = provider
        .key_provider
        .load_private_key(other.key.clone_key())
        .unwrap();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let resolver = WrongKey(Arc::new(CertifiedKey::new(
            good.chain.clone(),
            Arc::clone(&key),
        )));
        let config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        let addr = serve(Arc::new(config)).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = tls_handshake(tcp, NAME, &client(&pki), BUDGET)
            .await
            .unwrap_err();
        assert!(matches!(err, TlsError::Handshake(_)), "{err:?}");
        assert!(
            err.to_string().to_lowercase().contains("signature"),
            "{err}"
        );
    }
}

/// RFC 8460 §4.3.1: every certificate defect the test PKI makes, with the result type a sender
/// reports for it.
#[tokio::test]
async fn certificate_result_types_per_testnet_defect() {
    let pki = Pki::new().unwrap();
    for (defect, want) in [
        (Defect::Valid, None),
        (Defect::Expired, Some("certificate-expired")),
        (Defect::NotYetValid, Some("validation-failure")),
        (Defect::WrongName, Some("certificate-host-mismatch")),
        (Defect::NoSan, Some("certificate-host-mismatch")),
        (
            Defect::WildcardSan("*.other.test".into()),
            Some("certificate-host-mismatch"),
        ),
        (Defect::SelfSigned, Some("certificate-not-trusted")),
        (Defect::SelfSignedCa, Some("certificate-not-trusted")),
        (Defect::UntrustedCa, Some("certificate-not-trusted")),
        (Defect::MissingIntermediate, Some("certificate-not-trusted")),
        (Defect::IssuedByEndEntity, Some("certificate-not-trusted")),
        (Defect::ClientAuthOnly, Some("validation-failure")),
        (Defect::ExpiresInDays(3), None),
    ] {
        let label = format!("{defect:?}");
        let (_, obs) = observe(&pki, defect).await;
        assert_eq!(
            result_type(&obs).as_deref(),
            want,
            "{label}: {:?}",
            obs.verification
        );
    }
}
