//! The HTTPS intake benchmark of BENCHMARKS.md ("TLS-RPT reports by HTTPS"):
//!
//! ```text
//! intake_bench [--reports N] [--concurrency C] [--store URL] [--path P] [--client full|lean]
//! ```
//!
//! Starts the `serve` daemon in this process on loopback with one hosted domain (a testnet
//! certificate), then `POST`s N distinct reports (about 600 bytes of JSON each) to
//! `https://mta-sts.a.test/tlsrpt`, C at a time, each on a new TLS connection (as senders
//! do), and counts the 2xx answers; then checks that the store holds exactly the reports
//! acknowledged. Prints one JSON line: reports/s, p50/p99 latency, stored, lost. With
//! `--path /.well-known/mta-sts.txt` the same requests are answered 405 unread: the floor of
//! new TLS connections and requests on this machine.
//!
//! The load generator shares the machine with the server. `--client full` (the default) is a
//! sender as rustls makes one: a new configuration per report and the certificate chain
//! verified up to the root (three ECDSA verifications per connection). `--client lean` shares
//! one configuration and accepts exactly the server's end-entity certificate, so the client
//! spends less of the CPU; it still checks the handshake signature and never resumes a session,
//! so the server does the same work per report (a full handshake: its signature, its key
//! exchange) either way.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mtasts_net::service;
use mtasts_server::config::ServeConfig;
use mtasts_server::daemon::Daemon;
use mtasts_server::domains::{AddDomain, Domains, MxSource};
use mtasts_store::{ReportFilter, Store, StoreKey, StoreOptions};
use mtasts_testnet::https::{client_config, post_with};
use mtasts_testnet::pki::{Defect, Pki};
use time::OffsetDateTime;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse().unwrap_or_else(|_| panic!("bad {name}: {v}"))
        })
}

/// Accepts exactly one end-entity certificate (the server's) and checks the handshake
/// signatures with it: the `--client lean` load generator.
#[derive(Debug)]
struct Pinned {
    leaf: rustls_pki_types::CertificateDer<'static>,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the server's certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn report(i: usize) -> Vec<u8> {
    serde_json::json!({
        "organization-name": "Google Inc.",
        "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@google.com", "report-id": format!("bench-{i}"),
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: enforce",
                       "mx: mx.a.test", "max_age: 86400"], "policy-domain": "a.test",
                       "mx-host": ["mx.a.test"]},
            "summary": {"total-successful-session-count": 1000, "total-failure-session-count": 1},
            "failure-details": [{"result-type": "certificate-expired", "sending-mta-ip": "192.0.2.1",
                                 "receiving-mx-hostname": "mx.a.test", "failed-session-count": 1}]
        }]
    })
    .to_string()
    .into_bytes()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--reports", 5000);
    let c: usize = arg(&args, "--concurrency", 32);
    // `--path /.well-known/mta-sts.txt`: the floor, the same connections and requests answered
    // 405 before any body is read or stored.
    let path: String = arg(&args, "--path", "/tlsrpt".to_owned());
    let client: String = arg(&args, "--client", "full".to_owned());
    assert!(
        client == "full" || client == "lean",
        "--client full or lean, not {client}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let url: String = arg(
        &args,
        "--store",
        format!("sqlite:{}", tmp.path().join("store.db").display()),
    );
    let options = StoreOptions {
        key: Some(StoreKey::from_bytes([5; 32])),
        ..StoreOptions::default()
    };
    let store = Store::open(&url, &options).await.unwrap();
    let pki = Pki::at(OffsetDateTime::now_utc()).unwrap();
    let domains = Domains::new(store.clone(), Default::default()).unwrap();
    let now = OffsetDateTime::now_utc();
    let add = AddDomain {
        domain: "a.test".into(),
        mx: MxSource::Patterns(vec!["mx.a.test".into()]),
        mode: mtasts_core::policy::Mode::Testing,
        max_age: None,
        force: None,
        delegation: Default::default(),
    };
    domains.add(&add, "bench", now).await.unwrap();
    let cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
    let lean = (client == "lean").then(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let pinned = Pinned {
            leaf: cert.leaf().clone(),
            algs: provider.signature_verification_algorithms,
        };
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pinned))
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    });
    domains
        .import_certificate(
            "a.test",
            &cert.chain_pem(),
            &cert.key_pem(),
            "bench",
            None,
            now,
        )
        .await
        .unwrap();
    let mut config = ServeConfig::default();
    config.store.url = url.clone();
    config.store.key = Some("05".repeat(32));
    config.https = "127.0.0.1:0".parse().unwrap();
    config.http = None;
    config.admin = "127.0.0.1:0".parse().unwrap();
    config.check.drift_interval = Duration::ZERO;
    config.intake.max_in_flight = c.max(1);
    let daemon = Daemon::start(config).await.unwrap();
    let addr = daemon.https_addr();
    let (control, shutdown) = service::channel();
    let task = tokio::spawn(daemon.run(shutdown));

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (next, roots, path) = (Arc::clone(&next), pki.root_store(), path.clone());
        let lean = lean.clone();
        tasks.spawn(async move {
            let (mut ok, mut other, mut lat) = (0usize, 0usize, Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return (ok, other, lat);
                }
                let t = Instant::now();
                let got = post_with(
                    addr,
                    "mta-sts.a.test",
                    // A new configuration a report (as senders do), or the lean one.
                    lean.clone().unwrap_or_else(|| client_config(roots.clone())),
                    &path,
                    "application/tlsrpt+json",
                    report(i),
                    Duration::from_secs(30),
                )
                .await;
                lat.push(t.elapsed());
                match got {
                    Ok(p) if (200..300).contains(&p.status) => ok += 1,
                    _ => other += 1,
                }
            }
        });
    }
    let (mut ok, mut other, mut lat) = (0, 0, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (o, x, l) = r.unwrap();
        ok += o;
        other += x;
        lat.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    control.stop();
    let _ = task.await;
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let filter = ReportFilter {
        limit: Some(mtasts_store::MAX_LIST),
        ..ReportFilter::default()
    };
    let stored = store.reports(&filter).await.unwrap().len();
    println!(
        "{}",
        serde_json::json!({
            "store": url.split(':').next().unwrap_or("?"), "reports": n, "concurrency": c,
            "acknowledged": ok, "not_acknowledged": other, "stored": stored,
            "lost": ok.saturating_sub(stored),
            "seconds": (secs * 100.0).round() / 100.0,
            "reports_per_second": (ok as f64 / secs).round(),
            "requests_per_second": ((ok + other) as f64 / secs).round(), "path": path,
            "client": client,
            "p50_ms": (pct(0.5) * 10.0).round() / 10.0, "p99_ms": (pct(0.99) * 10.0).round() / 10.0,
        })
    );
    store.close().await;
}
