//! Single-domain wall time against the critical path of injected latencies (BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p mtasts-check --example critical_path -- [RUNS]
//! ```
//!
//! Builds one domain on the test internet and injects latency: every DNS answer waits `dns`, the
//! policy host answers after `http`, the MX host sends its banner after `smtp`. The check's two
//! chains are then the DNS lookup of mta-sts, the fetch and `http`; and the MX lookup, the MX
//! address lookup, `smtp` and TLS. So the critical path is max(dns + http, 2 dns + smtp); the
//! record lookups (one `dns`) are shorter. For each scenario it prints the median wall time of
//! RUNS checks and its ratio to the critical path.

#![allow(
    clippy::print_stdout,
    reason = "a benchmark binary: its output is the result"
)]

use mtasts_check::{Env, Settings, check_domain};
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::tls::TlsProbeConfig;
use mtasts_testnet::dns::Fault;
use mtasts_testnet::https::HttpResponse;
use mtasts_testnet::pki::Defect;
use mtasts_testnet::smtp::Behaviour;
use mtasts_testnet::world::{DOMAIN, World};
use std::time::{Duration, Instant};

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 1209600\n";

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(7);
    println!("| dns | http | smtp | critical path | median wall time ({runs} runs) | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (net, (dns, http, smtp)) in [
        (60u8, (50, 200, 100)),
        (61, (100, 100, 300)),
        (62, (100, 300, 100)),
        (63, (20, 20, 20)),
    ]
    .into_iter()
    {
        let (dns, http, smtp) = (
            Duration::from_millis(dns),
            Duration::from_millis(http),
            Duration::from_millis(smtp),
        );
        let mut w = World::with_net(net).await;
        w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@reports.example.net\"\nmta-sts 300 IN AAAA ::1");
        w.policy_host(Defect::Valid, HttpResponse::policy(POLICY).with_delay(http))
            .await;
        let cert = w
            .pki
            .issue("mx1.example.test", Defect::Valid)
            .expect("certificate");
        w.mx(
            "mx1",
            10,
            1,
            Behaviour::SlowBanner {
                delay: smtp,
                then: Box::new(Behaviour::Normal {
                    tls: cert.server_config,
                }),
            },
        )
        .await;
        for name in ["_mta-sts", "_smtp._tls", "mta-sts", "mx1", ""] {
            let fqdn = if name.is_empty() {
                DOMAIN.to_owned()
            } else {
                format!("{name}.{DOMAIN}")
            };
            w.dns.set_fault(&fqdn, Some(Fault::Delay(dns)));
        }
        let critical = (dns + http).max(dns * 2 + smtp);
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            // A fresh resolver each run: no DNS cache between runs.
            let resolver = Resolver::new(&ResolverSettings {
                nameservers: vec![w.dns.addr()],
                timeout: Some(Duration::from_secs(5)),
                trust_anchor: TrustAnchor::Keys(w.trust_anchor()),
            })
            .expect("resolver");
            let tls = TlsProbeConfig::with_roots(w.pki.root_store()).with_now(w.pki.now());
            let mut settings = Settings {
                smtp_port: w.smtp_port,
                ..Settings::default()
            };
            settings.fetch.port = w.https_port;
            let env = Env::new(resolver, tls, settings);
            let start = Instant::now();
            let report = check_domain(DOMAIN, &env).await;
            times.push(start.elapsed());
            assert!(
                report.findings.is_empty(),
                "the scenario must be clean: {:?}",
                report.findings
            );
        }
        times.sort();
        let median = times[times.len() / 2];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {} ms | {} ms | {} ms | {:.0} ms | {:.0} ms | {:.2}x |",
            dns.as_millis(),
            http.as_millis(),
            smtp.as_millis(),
            ms(critical),
            ms(median),
            median.as_secs_f64() / critical.as_secs_f64()
        );
    }
}
