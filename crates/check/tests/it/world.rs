//! A small test internet for one scenario: DNS, a PKI, a policy host and MX hosts, each on its own
//! loopback address (127.<n>.<x>.<y>, `n` unique per scenario so tests run in parallel).

use mtasts_check::{Env, Settings};
use mtasts_net::dns::{Resolver, ResolverSettings};
use mtasts_net::probe::ProbeBudget;
use mtasts_net::tls::TlsProbeConfig;
use mtasts_testnet::dns::DnsServer;
use mtasts_testnet::https::{HttpResponse, PolicyHost};
use mtasts_testnet::pki::{Defect, Pki};
use mtasts_testnet::smtp::{Behaviour, SmtpHost};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

static NEXT: AtomicU8 = AtomicU8::new(10);

pub(crate) struct World {
    pub(crate) net: u8,
    pub(crate) dns: DnsServer,
    pub(crate) pki: Pki,
    pub(crate) smtp_port: u16,
    pub(crate) https_port: u16,
    hosts: Vec<SmtpHost>,
    policy_hosts: Vec<PolicyHost>,
    zone: String,
}

pub(crate) const DOMAIN: &str = "example.test";

impl World {
    pub(crate) async fn new() -> Self {
        let net = NEXT.fetch_add(1, Ordering::Relaxed);
        let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::new(127, net, 0, 53)))
            .await
            .unwrap();
        // One port for every MX host and one for every policy host, as in the real world (25, 443).
        let smtp_port = free_port(Ipv4Addr::new(127, net, 1, 1));
        let https_port = free_port(Ipv4Addr::new(127, net, 2, 1));
        Self {
            net,
            dns,
            pki: Pki::new().unwrap(),
            smtp_port,
            https_port,
            hosts: Vec::new(),
            policy_hosts: Vec::new(),
            zone: String::new(),
        }
    }

    pub(crate) fn ip(&self, third: u8, fourth: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, third, fourth)
    }

    /// Adds zone lines for `example.test.` (relative names).
    pub(crate) fn zone(&mut self, lines: &str) {
        self.zone.push_str(lines);
        self.zone.push('\n');
        self.dns.set_zone("example.test.", &self.zone).unwrap();
    }

    /// Serves `response` as the policy host `mta-sts.example.test` with a certificate `defect`.
    pub(crate) async fn policy_host(&mut self, defect: Defect, response: HttpResponse) {
        let ip = self.ip(2, 1);
        let cert = self.pki.issue("mta-sts.example.test", defect).unwrap();
        let host = PolicyHost::start(
            SocketAddr::new(IpAddr::V4(ip), self.https_port),
            cert.server_config,
            response,
        )
        .await
        .unwrap();
        self.policy_hosts.push(host);
        self.zone(&format!("mta-sts 300 IN A {ip}"));
    }

    /// Adds an MX host `name` (relative to example.test) at preference `pref` on address
    /// 127.n.1.`idx`.
    pub(crate) async fn mx(&mut self, name: &str, pref: u16, idx: u8, behaviour: Behaviour) {
        let ip = self.ip(1, idx);
        let fqdn = format!("{name}.{DOMAIN}");
        let host = SmtpHost::start(
            SocketAddr::new(IpAddr::V4(ip), self.smtp_port),
            &fqdn,
            behaviour,
        )
        .await
        .unwrap();
        self.hosts.push(host);
        self.zone(&format!("@ 300 IN MX {pref} {fqdn}.\n{name} 300 IN A {ip}"));
    }

    /// A normal MX with a certificate for its name with `defect`.
    pub(crate) async fn mx_with_cert(&mut self, name: &str, pref: u16, idx: u8, defect: Defect) {
        let cert = self.pki.issue(&format!("{name}.{DOMAIN}"), defect).unwrap();
        self.mx(
            name,
            pref,
            idx,
            Behaviour::Normal {
                tls: cert.server_config,
            },
        )
        .await;
    }

    pub(crate) fn env(&self) -> Env {
        let resolver = Resolver::new(&ResolverSettings {
            nameservers: vec![self.dns.addr()],
            timeout: Some(Duration::from_millis(800)),
        })
        .unwrap();
        let tls = TlsProbeConfig::with_roots(self.pki.root_store()).with_now(self.pki.now());
        let mut settings = Settings {
            smtp_port: self.smtp_port,
            ..Settings::default()
        };
        settings.fetch.port = self.https_port;
        settings.fetch.timeout = Duration::from_millis(1500);
        settings.probe_budget = ProbeBudget {
            connect: Duration::from_millis(500),
            smtp: Duration::from_millis(1000),
            tls: Duration::from_millis(1000),
        };
        Env {
            resolver,
            tls,
            settings,
        }
    }
}

fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
