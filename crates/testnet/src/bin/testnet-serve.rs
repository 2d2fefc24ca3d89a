//! Serves a bulk test internet for benchmarks, in its own process so the checker's memory and CPU
//! can be measured alone.
//!
//! ```text
//! testnet-serve DOMAINS DIR
//! ```
//!
//! Serves DOMAINS domains `d0.bulk.test` … each with an `_mta-sts` record, a policy (`mode:
//! enforce`, `mx: *.provider.test`), a TLS-RPT record, and an MX on one of four shared MX hosts
//! `mx0..3.provider.test` (valid STARTTLS); one policy host serves every `mta-sts.<domain>` with a
//! certificate issued for the SNI name. A signed root zone delegates `bulk.test` and
//! `provider.test` without DS records (unsigned, provably insecure), so DANE lookups validate.
//! Writes `DIR/root.pem` (the CA to trust), `DIR/root.key` (the DNSSEC trust anchor),
//! `DIR/domains.txt` and `DIR/env` (`NAMESERVER=`, `SMTP_PORT=`, `HTTPS_PORT=`), then
//! `DIR/ready`, and serves until standard input closes or it is killed. Everything listens on
//! 127.77.x.y.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::dnssec::ZoneKey;
use mtasts_testnet::https::{HttpResponse, PolicyHost};
use mtasts_testnet::pki::{Defect, Pki, on_demand_server_config};
use mtasts_testnet::smtp::{Behaviour, SmtpHost};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: *.provider.test\nmax_age: 604800\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(n), Some(dir)) = (
        args.next().and_then(|n| n.parse::<usize>().ok()),
        args.next(),
    ) else {
        eprintln!("usage: testnet-serve DOMAINS DIR");
        std::process::exit(2);
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let ip = |c: u8, d: u8| IpAddr::V4(Ipv4Addr::new(127, 77, c, d));
    let pki = Arc::new(Pki::new()?);
    let dns = DnsServer::start(ip(0, 53)).await?;
    let smtp_port = std::net::TcpListener::bind((ip(1, 1), 0))?
        .local_addr()?
        .port();
    let https_port = std::net::TcpListener::bind((ip(2, 1), 0))?
        .local_addr()?
        .port();

    let mut provider = String::new();
    let mut hosts = Vec::new();
    for k in 0..4u8 {
        let name = format!("mx{k}.provider.test");
        let cert = pki.issue(&name, Defect::Valid)?;
        hosts.push(
            SmtpHost::start(
                SocketAddr::new(ip(1, k + 1), smtp_port),
                &name,
                Behaviour::Normal {
                    tls: cert.server_config,
                },
            )
            .await?,
        );
        writeln!(provider, "mx{k} 300 IN A {}", ip(1, k + 1))?;
    }
    dns.set_zone("provider.test.", &provider)?;
    let policy_host = PolicyHost::start(
        SocketAddr::new(ip(2, 1), https_port),
        on_demand_server_config(&pki),
        HttpResponse::policy(POLICY),
    )
    .await?;

    let mut zone = String::with_capacity(n * 200);
    let mut list = String::with_capacity(n * 16);
    for i in 0..n {
        let d = format!("d{i}");
        writeln!(zone, "{d} 300 IN MX 10 mx{}.provider.test.", i % 4)?;
        writeln!(zone, "_mta-sts.{d} 300 IN TXT \"v=STSv1; id=1\"")?;
        writeln!(
            zone,
            "_smtp._tls.{d} 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\""
        )?;
        writeln!(zone, "mta-sts.{d} 300 IN A {}", ip(2, 1))?;
        writeln!(zone, "mta-sts.{d} 300 IN AAAA ::1")?;
        writeln!(list, "{d}.bulk.test")?;
    }
    dns.set_zone("bulk.test.", &zone)?;
    let root_key = Arc::new(ZoneKey::generate()?);
    dns.set_signed_zone(
        ".",
        "bulk.test. 300 IN NS ns.bulk.test.\nprovider.test. 300 IN NS ns.provider.test.\n",
        &root_key,
        &[],
    )?;
    std::fs::write(dir.join("root.key"), root_key.trust_anchor("."))?;
    std::fs::write(dir.join("root.pem"), pki.root_pem())?;
    std::fs::write(dir.join("domains.txt"), list)?;
    std::fs::write(
        dir.join("env"),
        format!(
            "NAMESERVER={}\nSMTP_PORT={smtp_port}\nHTTPS_PORT={https_port}\n",
            dns.addr()
        ),
    )?;
    std::fs::write(dir.join("ready"), "")?;
    eprintln!(
        "testnet-serve: {n} domains ready; DNS {}, SMTP port {smtp_port}, HTTPS port {https_port}",
        dns.addr()
    );
    // Serve until standard input closes.
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await?;
    drop((hosts, policy_host));
    dns.stop().await;
    Ok(())
}
