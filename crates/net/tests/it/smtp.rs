//! The plaintext STARTTLS prelude against scripted MX hosts.

use mtasts_net::smtp::{SmtpError, starttls_prelude};
use mtasts_testnet::smtp::{Behaviour, SmtpHost};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

const BUDGET: Duration = Duration::from_millis(800);

/// A server config whose certificate is never used: these tests stop before the handshake.
fn dummy_tls() -> Arc<rustls::ServerConfig> {
    Arc::new(no_certificate_config())
}

fn no_certificate_config() -> rustls::ServerConfig {
    // A resolver with no certificate: fine as long as no handshake happens.
    #[derive(Debug)]
    struct NoCert;
    impl rustls::server::ResolvesServerCert for NoCert {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCert))
}

async fn probe(b: Behaviour) -> Result<mtasts_net::smtp::Prelude, SmtpError> {
    let host = SmtpHost::start("127.0.0.1:0".parse().unwrap(), "mx.example.test", b)
        .await
        .unwrap();
    let tcp = TcpStream::connect(host.addr()).await.unwrap();
    starttls_prelude(tcp, "probe.mtasts.test", BUDGET).await
}

#[tokio::test]
async fn starttls_offered_yields_a_stream_ready_for_tls() {
    let p = probe(Behaviour::Normal { tls: dummy_tls() }).await.unwrap();
    assert_eq!(p.banner.code, 220);
    assert!(p.banner.lines[0].starts_with("mx.example.test"));
    assert!(p.ehlo.offers_starttls());
    assert_eq!(p.starttls.as_ref().unwrap().code, 220);
    assert!(p.stream.is_some());
    assert!(p.ehlo.text().starts_with("250-mx.example.test"));
}

#[tokio::test]
async fn no_starttls_is_an_observation_not_an_error() {
    let p = probe(Behaviour::NoStartTls).await.unwrap();
    assert!(!p.ehlo.offers_starttls());
    assert!(p.starttls.is_none() && p.stream.is_none());
}

#[tokio::test]
async fn injected_bytes_after_starttls_are_refused() {
    let err = probe(Behaviour::InjectAfterStartTls { tls: dummy_tls() })
        .await
        .unwrap_err();
    assert!(
        matches!(err, SmtpError::Injection { count } if count > 0),
        "{err:?}"
    );
}

#[tokio::test]
async fn silence_times_out_within_the_budget() {
    let start = Instant::now();
    let err = probe(Behaviour::Silent).await.unwrap_err();
    assert!(
        matches!(
            err,
            SmtpError::Timeout {
                stage: "banner",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(start.elapsed() < BUDGET * 3);
}

#[tokio::test]
async fn slow_banner_within_budget_is_fine_beyond_it_times_out() {
    let fast = probe(Behaviour::SlowBanner {
        delay: Duration::from_millis(100),
        then: Box::new(Behaviour::NoStartTls),
    })
    .await;
    assert!(fast.is_ok());
    let slow = probe(Behaviour::SlowBanner {
        delay: Duration::from_secs(5),
        then: Box::new(Behaviour::NoStartTls),
    })
    .await;
    assert!(matches!(slow, Err(SmtpError::Timeout { .. })));
}

#[tokio::test]
async fn reject_banner_is_reported_with_the_reply() {
    let err = probe(Behaviour::Reject).await.unwrap_err();
    let SmtpError::Refused { stage, reply } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*stage, reply.code), ("banner", 554));
    assert!(err.to_string().contains("554 5.7.1"));
}

#[tokio::test]
async fn malformed_and_oversized_replies_are_errors() {
    use tokio::io::AsyncWriteExt;
    for junk in [
        b"hello there\r\n".to_vec(),
        vec![b'2'; 10_000],
        b"220-a\r\n250 b\r\n".to_vec(),
        b"220x\r\n".to_vec(),
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let junk2 = junk.clone();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(&junk2).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let err = starttls_prelude(tcp, "probe.test", BUDGET)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SmtpError::Malformed { .. } | SmtpError::Timeout { .. }),
            "{junk:?}: {err:?}"
        );
    }
}
