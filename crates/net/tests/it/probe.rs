//! The whole STARTTLS probe against scripted MX hosts with certificates from the test PKI.

use mtasts_net::probe::{MxProbe, ProbeBudget, ProbeFailure, probe_mx};
use mtasts_net::smtp::SmtpError;
use mtasts_net::tls::{CertVerdict, TlsProbeConfig};
use mtasts_testnet::pki::{Defect, Pki};
use mtasts_testnet::smtp::{Behaviour, SmtpHost};
use std::time::Duration;

const MX: &str = "mx1.example.test";

fn budget() -> ProbeBudget {
    ProbeBudget {
        connect: Duration::from_millis(500),
        smtp: Duration::from_millis(800),
        tls: Duration::from_millis(800),
    }
}

async fn run(pki: &Pki, behaviour: Behaviour) -> MxProbe {
    let host = SmtpHost::start("127.0.0.1:0".parse().unwrap(), MX, behaviour)
        .await
        .unwrap();
    let config = TlsProbeConfig::with_roots(pki.root_store()).with_now(pki.now());
    probe_mx(host.addr(), MX, "probe.mtasts.test", &config, budget()).await
}

async fn with_cert(defect: Defect) -> MxProbe {
    let pki = Pki::new().unwrap();
    let cert = pki.issue(MX, defect).unwrap();
    run(
        &pki,
        Behaviour::Normal {
            tls: cert.server_config,
        },
    )
    .await
}

#[tokio::test]
async fn valid_mx_completes_tls_with_a_valid_verdict() {
    let p = with_cert(Defect::Valid).await;
    assert!(p.failure.is_none(), "{:?}", p.failure);
    assert_eq!(p.starttls_offered, Some(true));
    let tls = p.tls.unwrap();
    assert_eq!(tls.verdict, CertVerdict::Valid);
    assert_eq!(tls.protocol_name(), "TLSv1.3");
    assert!(p.banner.unwrap().lines[0].starts_with(MX));
}

#[tokio::test]
async fn certificate_defects_reach_the_verdict_and_the_handshake_completes() {
    for (defect, verdict) in [
        (Defect::Expired, CertVerdict::Expired),
        (Defect::WrongName, CertVerdict::HostMismatch),
        (Defect::UntrustedCa, CertVerdict::NotTrusted),
        (Defect::MissingIntermediate, CertVerdict::NotTrusted),
    ] {
        let p = with_cert(defect.clone()).await;
        assert!(p.failure.is_none(), "{defect:?}: {:?}", p.failure);
        assert_eq!(p.tls.unwrap().verdict, verdict, "{defect:?}");
    }
}

#[tokio::test]
async fn no_starttls_is_observed_not_failed() {
    let p = run(&Pki::new().unwrap(), Behaviour::NoStartTls).await;
    assert_eq!(p.starttls_offered, Some(false));
    assert!(p.tls.is_none() && p.failure.is_none());
}

#[tokio::test]
async fn broken_handshake_is_a_tls_failure() {
    let p = run(&Pki::new().unwrap(), Behaviour::BrokenHandshake).await;
    assert!(
        matches!(p.failure, Some(ProbeFailure::Tls(_))),
        "{:?}",
        p.failure
    );
    assert!(!p.failure.unwrap().is_unreachable());
}

#[tokio::test]
async fn refused_connection_and_silence_are_unreachable() {
    // A port nothing listens on: bind, learn the port, close.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = TlsProbeConfig::new();
    let p = probe_mx(addr, MX, "probe.test", &config, budget()).await;
    let f = p.failure.unwrap();
    assert!(matches!(f, ProbeFailure::Connect(_)), "{f:?}");
    assert!(f.is_unreachable());

    let p = run(&Pki::new().unwrap(), Behaviour::Silent).await;
    let f = p.failure.unwrap();
    assert!(
        matches!(
            f,
            ProbeFailure::Smtp(SmtpError::Timeout {
                stage: "banner",
                ..
            })
        ),
        "{f:?}"
    );
    assert!(f.is_unreachable());
}

#[tokio::test]
async fn tls12_only_server_is_reported_as_tls12() {
    let pki = Pki::new().unwrap();
    let cert = pki.issue(MX, Defect::Valid).unwrap();
    let p = run(
        &pki,
        Behaviour::Normal {
            tls: cert.server_config_tls12_only().unwrap(),
        },
    )
    .await;
    assert_eq!(p.tls.unwrap().protocol_name(), "TLSv1.2");
}
