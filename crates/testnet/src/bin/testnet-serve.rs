//! Serves a bulk test internet for benchmarks, in its own process so the checker's memory and CPU
//! can be measured alone.
//!
//! ```text
//! testnet-serve DOMAINS DIR                  # a bulk world of DOMAINS domains
//! testnet-serve --scenarios DIR              # the scenario set, on free ports
//! testnet-serve --standard-ports DIR         # the scenario set on ports 53, 25 and 443 (root)
//! testnet-serve --mail DIR                   # three enforce domains for a real MTA (root)
//! testnet-serve --resolver-bench P N C DNS_MS HTTP_MS DIR   # policy daemons' world (root)
//! ```
//!
//! **Resolver benchmark world** (`--resolver-bench`), for `bench/resolver/run.sh`: on standard
//! ports (DNS 127.26.0.53:53, policy hosts on 443), so a third-party daemon that cannot be told
//! other ports can be measured against the same domains. P policy domains `pI.sts.test` (three in
//! four `mode: enforce`, every fourth `mode: testing`), N domains without a policy `nI.nosts.test`
//! (an MX record, no `_mta-sts` record: NXDOMAIN), and C cold domains `cI.cold.test` (enforce)
//! whose `_mta-sts` and `mta-sts` names answer after DNS_MS milliseconds and whose policy host
//! answers after HTTP_MS, to compare a cold miss with the round trips it needs. Each domain is its
//! own DNS zone, under a signed root that delegates every parent without DS (DANE lookups are
//! provably insecure, as for most real domains). Writes `DIR/root.pem`, `DIR/root.key` (the
//! DNSSEC trust anchor), `DIR/policy.txt`, `DIR/nopolicy.txt`, `DIR/cold.txt` (one domain a line),
//! `DIR/env` and `DIR/ready`.
//!
//! **Scenario set** (`mtasts_testnet::scenarios`): a clean domain and one domain per kind of
//! breakage the checker detects, `<name>.scenarios.test`, on 127.25.x.y. With `--standard-ports`
//! the DNS authority is 127.25.0.53 port 53 (UDP and TCP), the MX hosts listen on 25 and the
//! policy hosts on 443, so tools that cannot be told other ports can be measured on the same
//! domains. Writes `DIR/root.pem`, `DIR/domains.txt`, `DIR/scenarios.tsv` (name, domain, the
//! finding `mtasts check` reports, what is wrong), `DIR/env` and `DIR/ready` as below.
//!
//! **Mail world** (`--mail`, for `tests/e2e/postfix/run.sh`): three domains with an `enforce`
//! policy (`mx: mx.<domain>`) on standard ports, DNS authority 127.26.0.53:53: `good.test` (MX
//! 127.26.1.1 with a valid certificate for its name), `nostarttls.test` (MX 127.26.1.2 without
//! STARTTLS) and `wrongcert.test` (MX 127.26.1.3 presenting a certificate for
//! `wrong-name.example.invalid`); policy hosts on 127.26.2.k:443. Every MX accepts whole messages;
//! each one accepted is written to `DIR/mail/<domain>.<n>.eml`: the lines `MAIL FROM:<..>`,
//! `RCPT TO:<..>` (one a recipient), `TLS: yes|no`, a blank line, then the message. Writes
//! `DIR/root.pem`, `DIR/env` and `DIR/ready` like the others.
//!
//! **Bulk world:**
//! Serves DOMAINS domains `d0.bulk.test` … each with an `_mta-sts` record, a policy (`mode:
//! enforce`, `mx: *.provider.test`), a TLS-RPT record, and an MX on one of four shared MX hosts
//! `mx0..3.provider.test` (valid STARTTLS); one policy host serves every `mta-sts.<domain>` with a
//! certificate issued for the SNI name at its first handshake (then kept). Each domain is its own
//! DNS zone. A signed root zone delegates `bulk.test` and `provider.test` without DS records
//! (unsigned, provably insecure), so DANE lookups validate. Writes `DIR/root.pem` (the CA to
//! trust), `DIR/root.key` (the DNSSEC trust anchor), `DIR/domains.txt` and `DIR/env`
//! (`NAMESERVER=`, `SMTP_PORT=`, `HTTPS_PORT=`), then `DIR/ready`, and serves until standard
//! input closes or it is killed. Everything listens on 127.77.x.y.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool"
)]

use mtasts_testnet::dns::{DnsServer, Fault};
use mtasts_testnet::dnssec::ZoneKey;
use mtasts_testnet::https::{HttpResponse, PolicyHost};
use mtasts_testnet::pki::{Defect, Pki, on_demand_server_config};
use mtasts_testnet::scenarios::{Ports, ScenarioSet};
use mtasts_testnet::smtp::Received;
use mtasts_testnet::smtp::{Behaviour, SmtpHost};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const POLICY: &str = "version: STSv1\nmode: enforce\nmx: *.provider.test\nmax_age: 604800\n";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--scenarios", dir] => scenarios(Ports::ANY, dir).await,
        ["--standard-ports", dir] | ["--scenarios", "--standard-ports", dir] => {
            scenarios(Ports::STANDARD, dir).await
        }
        ["--mail", dir] => mail(dir).await,
        ["--resolver-bench", p, n, c, dns_ms, http_ms, dir] => {
            let num = |s: &str| {
                s.parse::<u64>()
                    .map_err(|e| format!("--resolver-bench: {s:?}: {e}"))
            };
            let size = |s: &str| num(s).map(|v| usize::try_from(v).unwrap_or(usize::MAX));
            let world = BenchWorld {
                policies: size(p)?,
                no_policy: size(n)?,
                cold: size(c)?,
                dns_delay: Duration::from_millis(num(dns_ms)?),
                http_delay: Duration::from_millis(num(http_ms)?),
            };
            resolver_bench(world, dir).await
        }
        _ => bulk(args).await,
    }
}

/// Serves the scenario set until standard input closes.
async fn scenarios(ports: Ports, dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let set = ScenarioSet::start(25, ports).await?;
    std::fs::write(dir.join("root.pem"), set.pki.root_pem())?;
    std::fs::write(dir.join("domains.txt"), set.domain_list())?;
    std::fs::write(dir.join("scenarios.tsv"), set.table())?;
    std::fs::write(dir.join("root.key"), set.trust_anchor())?;
    std::fs::write(
        dir.join("env"),
        format!(
            "NAMESERVER={}\nSMTP_PORT={}\nHTTPS_PORT={}\n",
            set.dns.addr(),
            set.smtp_port,
            set.https_port
        ),
    )?;
    std::fs::write(dir.join("ready"), "")?;
    eprintln!(
        "testnet-serve: {} scenario domains ready; DNS {}, SMTP port {}, HTTPS port {}",
        set.scenarios.len(),
        set.dns.addr(),
        set.smtp_port,
        set.https_port
    );
    wait_for_stdin_close().await?;
    set.dns.stop().await;
    Ok(())
}

/// Serves the mail world (see the crate docs) until standard input closes.
async fn mail(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(dir);
    let spool = dir.join("mail");
    std::fs::create_dir_all(&spool)?;
    let ip = |c: u8, d: u8| IpAddr::V4(Ipv4Addr::new(127, 26, c, d));
    let pki = Arc::new(Pki::new()?);
    let dns = DnsServer::start_on(SocketAddr::new(ip(0, 53), 53)).await?;
    let mut hosts = Vec::new();
    let mut policy_hosts = Vec::new();
    let mut zones = Vec::new();
    for (k, domain) in [
        (1u8, "good.test"),
        (2, "nostarttls.test"),
        (3, "wrongcert.test"),
    ] {
        let mx = format!("mx.{domain}");
        let behaviour = match k {
            1 => Behaviour::Normal {
                tls: pki.issue(&mx, Defect::Valid)?.server_config,
            },
            2 => Behaviour::NoStartTls,
            _ => Behaviour::Normal {
                tls: pki.issue(&mx, Defect::WrongName)?.server_config,
            },
        };
        let host = SmtpHost::start(SocketAddr::new(ip(1, k), 25), &mx, behaviour).await?;
        hosts.push((domain, host));
        let policy = format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 604800\n");
        let cert = pki.issue(&format!("mta-sts.{domain}"), Defect::Valid)?;
        policy_hosts.push(
            PolicyHost::start(
                SocketAddr::new(ip(2, k), 443),
                cert.server_config,
                HttpResponse::policy(policy),
            )
            .await?,
        );
        let zone = format!(
            "@ 300 IN MX 10 {mx}.\nmx 300 IN A {}\n_mta-sts 300 IN TXT \"v=STSv1; id=1\"\nmta-sts 300 IN A {}\n",
            ip(1, k),
            ip(2, k)
        );
        zones.push((format!("{domain}."), zone));
    }
    dns.set_zones(zones)?;
    std::fs::write(dir.join("root.pem"), pki.root_pem())?;
    std::fs::write(
        dir.join("env"),
        format!("NAMESERVER={}\nSMTP_PORT=25\nHTTPS_PORT=443\n", dns.addr()),
    )?;
    std::fs::write(dir.join("ready"), "")?;
    eprintln!("testnet-serve: mail world ready; DNS {}", dns.addr());
    // Copy each accepted message to the spool, until standard input closes.
    let stop = tokio::spawn(wait_for_stdin_close());
    let mut written = vec![0usize; hosts.len()];
    loop {
        for ((domain, host), done) in hosts.iter().zip(written.iter_mut()) {
            for (n, m) in host.received().iter().enumerate().skip(*done) {
                let tmp = spool.join(format!(".{domain}.{n}.tmp"));
                std::fs::write(&tmp, spooled(m))?;
                std::fs::rename(&tmp, spool.join(format!("{domain}.{n}.eml")))?;
                *done = n + 1;
            }
        }
        if stop.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((hosts, policy_hosts));
    dns.stop().await;
    Ok(())
}

/// A received message as a spool file: the envelope, whether it came over TLS, a blank line,
/// the message.
fn spooled(m: &Received) -> Vec<u8> {
    let mut head = format!("MAIL FROM:<{}>\n", m.from);
    for to in &m.to {
        let _ = writeln!(head, "RCPT TO:<{to}>");
    }
    let _ = writeln!(head, "TLS: {}\n", if m.tls { "yes" } else { "no" });
    let mut out = head.into_bytes();
    out.extend_from_slice(&m.data);
    out
}

/// Blocks until standard input closes (the parent's signal to stop).
async fn wait_for_stdin_close() -> Result<(), tokio::task::JoinError> {
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    })
    .await
}

/// Serves the bulk world until standard input closes.
async fn bulk(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut args = args.into_iter();
    let (Some(n), Some(dir)) = (
        args.next().and_then(|n| n.parse::<usize>().ok()),
        args.next(),
    ) else {
        eprintln!(
            "usage: testnet-serve DOMAINS DIR | testnet-serve --scenarios DIR | testnet-serve --standard-ports DIR\n       testnet-serve --resolver-bench POLICIES NO_POLICY COLD DNS_MS HTTP_MS DIR"
        );
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

    // One small zone per domain: hickory's in-memory zone scans every name it holds for each
    // negative answer, so one zone of 500 000 records slowed every NXDOMAIN down.
    let mut zones = Vec::with_capacity(n);
    let mut list = String::with_capacity(n * 16);
    for i in 0..n {
        let d = format!("d{i}.bulk.test.");
        let mut zone = String::with_capacity(320);
        writeln!(zone, "@ 300 IN MX 10 mx{}.provider.test.", i % 4)?;
        writeln!(zone, "_mta-sts 300 IN TXT \"v=STSv1; id=1\"")?;
        writeln!(
            zone,
            "_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.net\""
        )?;
        writeln!(zone, "mta-sts 300 IN A {}", ip(2, 1))?;
        writeln!(zone, "mta-sts 300 IN AAAA ::1")?;
        writeln!(list, "d{i}.bulk.test")?;
        zones.push((d, zone));
    }
    dns.set_zones(zones)?;
    // The parent of the per-domain zones, so the validator's DS query for bulk.test is answered.
    dns.set_zone("bulk.test.", "")?;
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
    wait_for_stdin_close().await?;
    drop((hosts, policy_host));
    dns.stop().await;
    Ok(())
}

/// The sizes and delays of the resolver benchmark world.
#[derive(Debug, Clone, Copy)]
struct BenchWorld {
    policies: usize,
    no_policy: usize,
    cold: usize,
    dns_delay: Duration,
    http_delay: Duration,
}

/// The most domains of each kind (each is a DNS zone held in memory).
const BENCH_MAX_DOMAINS: usize = 200_000;

/// Serves the resolver benchmark world on standard ports until standard input closes.
async fn resolver_bench(w: BenchWorld, dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    if [w.policies, w.no_policy, w.cold]
        .iter()
        .any(|&n| n > BENCH_MAX_DOMAINS)
    {
        return Err(
            format!("--resolver-bench: at most {BENCH_MAX_DOMAINS} domains of each kind").into(),
        );
    }
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let ip = |c: u8, d: u8| IpAddr::V4(Ipv4Addr::new(127, 26, c, d));
    let pki = Arc::new(Pki::new()?);
    let dns = DnsServer::start_on(SocketAddr::new(ip(0, 53), 53)).await?;
    let policy = |mode: &str| {
        format!(
            "version: STSv1\nmode: {mode}\nmx: *.provider.test\nmx: mx.backup.test\nmax_age: 604800\n"
        )
    };
    // One host per kind of answer: enforce, testing, and the cold domains' slow host.
    let hosts = [
        (ip(2, 1), HttpResponse::policy(policy("enforce"))),
        (ip(2, 2), HttpResponse::policy(policy("testing"))),
        (
            ip(2, 3),
            HttpResponse::policy(policy("enforce")).with_delay(w.http_delay),
        ),
    ];
    let mut policy_hosts = Vec::new();
    for (addr, response) in hosts {
        policy_hosts.push(
            PolicyHost::start(
                SocketAddr::new(addr, 443),
                on_demand_server_config(&pki),
                response,
            )
            .await?,
        );
    }
    let mut zones = Vec::with_capacity(w.policies + w.no_policy + w.cold);
    let mut lists = [String::new(), String::new(), String::new()];
    let sts_zone = |host: IpAddr| {
        format!(
            "@ 300 IN MX 10 mx1.provider.test.\n_mta-sts 300 IN TXT \"v=STSv1; id=20261122\"\nmta-sts 300 IN A {host}\n"
        )
    };
    for i in 0..w.policies {
        let host = if i % 4 == 3 { ip(2, 2) } else { ip(2, 1) };
        writeln!(lists[0], "p{i}.sts.test")?;
        zones.push((format!("p{i}.sts.test."), sts_zone(host)));
    }
    for i in 0..w.no_policy {
        writeln!(lists[1], "n{i}.nosts.test")?;
        zones.push((
            format!("n{i}.nosts.test."),
            "@ 300 IN MX 10 mx1.provider.test.\n".to_owned(),
        ));
    }
    for i in 0..w.cold {
        writeln!(lists[2], "c{i}.cold.test")?;
        zones.push((format!("c{i}.cold.test."), sts_zone(ip(2, 3))));
        for name in [
            format!("_mta-sts.c{i}.cold.test."),
            format!("mta-sts.c{i}.cold.test."),
        ] {
            dns.set_fault(&name, Some(Fault::Delay(w.dns_delay)));
        }
    }
    zones.push((
        "provider.test.".to_owned(),
        format!("mx1 300 IN A {}\n", ip(1, 1)),
    ));
    // A signed root delegating every parent without DS, as for most real domains: a validating
    // resolver given DIR/root.key proves the DANE lookups insecure (not bogus, as it would with
    // the IANA root keys, which cannot validate this root).
    let parents = ["sts.test.", "nosts.test.", "cold.test."];
    zones.extend(parents.iter().map(|p| ((*p).to_owned(), String::new())));
    dns.set_zones(zones)?;
    let root_key = Arc::new(ZoneKey::generate()?);
    let root: String = parents
        .iter()
        .chain(&["provider.test."])
        .map(|p| format!("{p} 300 IN NS ns.{p}\n"))
        .collect();
    dns.set_signed_zone(".", &root, &root_key, &[])?;
    std::fs::write(dir.join("root.key"), root_key.trust_anchor("."))?;
    std::fs::write(dir.join("root.pem"), pki.root_pem())?;
    for (name, list) in ["policy.txt", "nopolicy.txt", "cold.txt"]
        .iter()
        .zip(&lists)
    {
        std::fs::write(dir.join(name), list)?;
    }
    std::fs::write(
        dir.join("env"),
        format!("NAMESERVER={}\nHTTPS_PORT=443\n", dns.addr()),
    )?;
    std::fs::write(dir.join("ready"), "")?;
    eprintln!(
        "testnet-serve: resolver bench world ready: {} policy, {} no-policy, {} cold domains; DNS {}",
        w.policies,
        w.no_policy,
        w.cold,
        dns.addr()
    );
    wait_for_stdin_close().await?;
    drop(policy_hosts);
    dns.stop().await;
    Ok(())
}
