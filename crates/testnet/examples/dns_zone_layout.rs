//! Answer time of the testnet DNS server for N bulk domains, laid out as one zone holding every
//! domain or as one zone per domain (what `testnet-serve` does), for a name that exists and for
//! one that does not (NXDOMAIN).
//!
//! ```text
//! cargo run --release -p mtasts-testnet --example dns_zone_layout -- 100000 one
//! cargo run --release -p mtasts-testnet --example dns_zone_layout -- 100000 per-domain
//! ```
//!
//! Sends 2 000 queries of each kind, one at a time over UDP on loopback, to random domains, and
//! prints the median and 90th percentile of the round trip.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "an example")]

use mtasts_testnet::dns::DnsServer;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

const QUERIES: u16 = 2000;

fn records(zone: &mut String, prefix: &str) {
    let _ = writeln!(zone, "{prefix}300 IN MX 10 mx0.provider.test.");
    let p = if prefix.is_empty() {
        String::new()
    } else {
        format!(".{}", prefix.trim_end())
    };
    let _ = writeln!(zone, "_mta-sts{p} 300 IN TXT \"v=STSv1; id=1\"");
    let _ = writeln!(
        zone,
        "_smtp._tls{p} 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@x.test\""
    );
    let _ = writeln!(zone, "mta-sts{p} 300 IN A 127.0.0.1");
    let _ = writeln!(zone, "mta-sts{p} 300 IN AAAA ::1");
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(63));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 16, 0, 1]);
    q
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let layout = args.next().unwrap_or_else(|| "per-domain".into());
    let dns = DnsServer::start("127.0.0.1".parse()?).await?;
    let start = Instant::now();
    if layout == "one" {
        let mut zone = String::with_capacity(n * 200);
        for i in 0..n {
            records(&mut zone, &format!("d{i} "));
        }
        dns.set_zone("bulk.test.", &zone)?;
    } else {
        let zones = (0..n).map(|i| {
            let mut zone = String::new();
            records(&mut zone, "");
            (format!("d{i}.bulk.test."), zone)
        });
        dns.set_zones(zones)?;
    }
    println!(
        "{n} domains, layout {layout}: loaded in {:.1?}",
        start.elapsed()
    );
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for (kind, prefix) in [("existing TXT", "_mta-sts"), ("NXDOMAIN", "_smtp-tlsrpt")] {
        let mut times = Vec::with_capacity(usize::from(QUERIES));
        let mut buf = [0u8; 1500];
        for id in 0..QUERIES {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let d = usize::try_from(seed % n as u64).unwrap_or(0);
            let t = Instant::now();
            sock.send_to(&query(id, &format!("{prefix}.d{d}.bulk.test")), dns.addr())
                .await?;
            tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await??;
            times.push(t.elapsed());
        }
        times.sort();
        let at = |q: usize| times[times.len() * q / 100];
        println!(
            "  {kind:<12} median {:>9.1?}  p90 {:>9.1?}  (rcode of the last answer: {})",
            at(50),
            at(90),
            buf[3] & 15
        );
    }
    dns.stop().await;
    Ok(())
}
