//! Single-domain wall time against the critical path of injected latencies (BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p mtasts-check --example critical_path -- [RUNS] [trace]
//! ```
//!
//! Builds one domain on the test internet and injects latency: every DNS answer waits `dns`
//! (every query, the root zone's included), the policy host answers after `http`, the MX host
//! sends its banner after `smtp`. The critical path is what a DANE-checking sender must wait for
//! at least, counting queries that can be sent at the same time once:
//!
//! - the policy: the `mta-sts` address (`dns`), then the fetch (`http`);
//! - the MX chain: MX (`dns`), then the MX address and its TLSA RRset together (`dns`), then the
//!   banner (`smtp`) and STARTTLS and TLS on loopback;
//! - DNSSEC: the proof that the MX RRset and the TLSA RRset are secure or provably insecure
//!   needs the DS of `example.test` (from the root) and the root's DNSKEY, which can be asked
//!   with the MX query, so it adds nothing.
//!
//! So the critical path is max(dns + http, 2 dns + smtp), with DANE or without. For each
//! scenario it prints the median wall time of RUNS checks without DANE (`--no-dane`) and with
//! it, and their ratios to the critical path. With `trace`, it then prints the queries the DNS
//! server received during one more check with DANE, by arrival time in units of `dns` (the
//! round trip they belong to).

#![allow(
    clippy::print_stdout,
    reason = "a benchmark binary: its output is the result"
)]

use mtasts_check::{Env, Settings, check_domain};
use mtasts_net::dns::{Resolver, ResolverSettings, TrustAnchor};
use mtasts_net::tls::TlsProbeConfig;
use mtasts_testnet::dns::LoggedQuery;
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
    let trace = std::env::args().nth(2).is_some_and(|a| a == "trace");
    println!(
        "| dns | http | smtp | critical path | DANE off: median of {runs} | ratio | DANE on: median of {runs} | ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
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
        w.dns.set_delay(Some(dns));
        let critical = (dns + http).max(dns * 2 + smtp);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut row = format!(
            "| {} ms | {} ms | {} ms | {:.0} ms |",
            dns.as_millis(),
            http.as_millis(),
            smtp.as_millis(),
            ms(critical)
        );
        for no_dane in [true, false] {
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                times.push(check_once(&w, no_dane).await);
            }
            times.sort();
            let median = times[times.len() / 2];
            row.push_str(&format!(
                " {:.0} ms | {:.2}x |",
                ms(median),
                median.as_secs_f64() / critical.as_secs_f64()
            ));
        }
        println!("{row}");
        if trace {
            w.dns.log_queries(true);
            let took = check_once(&w, false).await;
            let log = w.dns.take_query_log();
            w.dns.log_queries(false);
            print_trace(&log, dns, took);
        }
    }
}

/// One check of the domain with a fresh resolver (no DNS cache between runs); its wall time.
async fn check_once(w: &World, no_dane: bool) -> Duration {
    let resolver = Resolver::new(&ResolverSettings {
        nameservers: vec![w.dns.addr()],
        timeout: Some(Duration::from_secs(5)),
        trust_anchor: TrustAnchor::Keys(w.trust_anchor()),
    })
    .expect("resolver");
    let tls = TlsProbeConfig::with_roots(w.pki.root_store()).with_now(w.pki.now());
    let mut settings = Settings {
        smtp_port: w.smtp_port,
        no_dane,
        ..Settings::default()
    };
    settings.fetch.port = w.https_port;
    let env = Env::new(resolver, tls, settings);
    let start = Instant::now();
    let report = check_domain(DOMAIN, &env).await;
    let took = start.elapsed();
    assert!(
        report.findings.is_empty(),
        "the scenario must be clean: {:?}",
        report.findings
    );
    assert_eq!(report.dane.is_some(), !no_dane, "DANE checked iff asked");
    took
}

/// The queries of one check, by round trip (arrival time in units of `dns`).
fn print_trace(log: &[LoggedQuery], dns: Duration, took: Duration) {
    let Some(start) = log.first().map(|q| q.at) else {
        return;
    };
    println!();
    println!(
        "queries of one check with DANE (dns = {} ms, wall time {:.0} ms):",
        dns.as_millis(),
        took.as_secs_f64() * 1000.0
    );
    for q in log {
        let offset = q.at.duration_since(start);
        println!(
            "  round {} (+{:>4.0} ms) {} {}{}",
            (offset.as_secs_f64() / dns.as_secs_f64()).floor(),
            offset.as_secs_f64() * 1000.0,
            q.rtype,
            q.name,
            if q.tcp { " (TCP)" } else { "" }
        );
    }
    println!();
}
