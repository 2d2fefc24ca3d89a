//! A small internet for one scenario: DNS, a PKI, a policy host and MX hosts for the domain
//! `example.test`, each on its own loopback address (127.`net`.x.y, `net` unique per world so
//! tests run in parallel). MX hosts share one port and policy hosts another, as 25 and 443 do on
//! the real internet.
//!
//! ```no_run
//! # async fn demo() {
//! use mtasts_testnet::world::World;
//! use mtasts_testnet::pki::Defect;
//! use mtasts_testnet::https::HttpResponse;
//! let mut w = World::new().await;
//! w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\"");
//! w.policy_host(Defect::Valid, HttpResponse::policy("version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n")).await;
//! w.mx_with_cert("mx1", 10, 1, Defect::Valid).await;
//! // query w.dns.addr(), trust w.pki.root_pem(), probe port w.smtp_port, fetch on w.https_port
//! # }
//! ```

use crate::dns::DnsServer;
use crate::dnssec::{Tamper, ZoneKey};
use crate::https::{HttpResponse, PolicyHost};
use crate::pki::{Defect, Pki};
use crate::smtp::{Behaviour, SmtpHost};
use rustls_pki_types::CertificateDer;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// The next `net` octet handed out by [`World::new`]; [`World::with_net`] takes values below it.
static NEXT: AtomicU8 = AtomicU8::new(100);

/// One scenario's internet.
pub struct World {
    /// The second octet of every address of this world.
    pub net: u8,
    /// The DNS authority for `example.test.`.
    pub dns: DnsServer,
    /// The PKI issuing every certificate.
    pub pki: Pki,
    /// The port every MX host listens on.
    pub smtp_port: u16,
    /// The port every policy host listens on.
    pub https_port: u16,
    hosts: Vec<SmtpHost>,
    policy_hosts: Vec<PolicyHost>,
    zone: String,
    /// Other zones, unsigned and delegated from the root without DS: `(origin, text)`.
    unsigned: Vec<(String, String)>,
    dnssec: Dnssec,
    tamper: Vec<(String, String, Tamper)>,
    root_key: Arc<ZoneKey>,
    zone_key: Arc<ZoneKey>,
}

/// How `example.test` is secured. Every world also serves a signed root zone `.` that delegates
/// `example.test`; a validating resolver starts from [`World::trust_anchor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dnssec {
    /// Unsigned, and the root delegates it without a DS record: provably insecure.
    #[default]
    Unsigned,
    /// Signed, with the DS record in the root: secure.
    Signed,
    /// Signed, but the root's DS record is for another key: bogus.
    WrongDs,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("net", &self.net)
            .field("dns", &self.dns.addr())
            .finish_non_exhaustive()
    }
}

/// The domain every world serves.
pub const DOMAIN: &str = "example.test";

impl World {
    /// A world on a fresh `net` octet (100 and up).
    pub async fn new() -> Self {
        Self::with_net(NEXT.fetch_add(1, Ordering::Relaxed)).await
    }

    /// A world on a chosen `net` octet (use values below 100, one per test, for output that must
    /// not depend on test order).
    pub async fn with_net(net: u8) -> Self {
        let dns = DnsServer::start(IpAddr::V4(Ipv4Addr::new(127, net, 0, 53)))
            .await
            .expect("test world setup");
        let root_key = Arc::new(ZoneKey::generate().expect("test world setup"));
        let zone_key = Arc::new(ZoneKey::generate().expect("test world setup"));
        // One port for every MX host and one for every policy host, as in the real world (25, 443).
        let smtp_port = free_port(Ipv4Addr::new(127, net, 1, 1));
        let https_port = free_port(Ipv4Addr::new(127, net, 2, 1));
        Self {
            net,
            dns,
            pki: Pki::new().expect("test world setup"),
            smtp_port,
            https_port,
            hosts: Vec::new(),
            policy_hosts: Vec::new(),
            zone: String::new(),
            unsigned: Vec::new(),
            dnssec: Dnssec::Unsigned,
            tamper: Vec::new(),
            root_key,
            zone_key,
        }
    }

    /// Secures `example.test` as `mode` says (the default is [`Dnssec::Unsigned`]).
    pub fn dnssec(&mut self, mode: Dnssec) {
        self.dnssec = mode;
        self.publish();
    }

    /// Spoils the signatures of the `rtype` RRset at `name` (relative to example.test, e.g.
    /// `_25._tcp.mx1`), so that a validating resolver finds it bogus. Only matters once
    /// `example.test` is signed; add the RRset first.
    pub fn tamper(&mut self, name: &str, rtype: &str, how: Tamper) {
        self.tamper
            .push((format!("{name}.{DOMAIN}."), rtype.to_owned(), how));
        self.publish();
    }

    /// The trust anchor of this world's DNS, as a trust-anchor file (the root zone's DNSKEY
    /// record): give it to a validating resolver instead of the IANA root keys.
    pub fn trust_anchor(&self) -> String {
        self.root_key.trust_anchor(".")
    }

    /// The address 127.net.`third`.`fourth`.
    pub fn ip(&self, third: u8, fourth: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.net, third, fourth)
    }

    /// Adds zone lines for `example.test.` (relative names).
    pub fn zone(&mut self, lines: &str) {
        self.zone.push_str(lines);
        self.zone.push('\n');
        self.publish();
    }

    /// Replaces every zone line whose owner (first field) is `owner` with `lines`: a record
    /// changed in place, as an operator updates it.
    pub fn zone_replace(&mut self, owner: &str, lines: &str) {
        let kept: Vec<&str> = self
            .zone
            .lines()
            .filter(|l| l.split_whitespace().next() != Some(owner))
            .collect();
        self.zone = kept.join("\n");
        self.zone.push('\n');
        self.zone(lines);
    }

    /// Serves another zone `origin` (e.g. `other.test.`), unsigned, delegated from the root
    /// without a DS record (provably insecure), with zone lines `text` (relative names): a
    /// provider's zone next to `example.test`.
    pub fn unsigned_zone(&mut self, origin: &str, text: &str) {
        self.unsigned.push((origin.to_owned(), text.to_owned()));
        self.publish();
    }

    /// Serves the root zone, `example.test` and the other zones as they now stand.
    fn publish(&self) {
        let origin = format!("{DOMAIN}.");
        let mut root = format!("{origin} 300 IN NS ns.{origin}\n");
        for (other, text) in &self.unsigned {
            root.push_str(&format!("{other} 300 IN NS ns.{other}\n"));
            self.dns.set_zone(other, text).expect("test world setup");
        }
        match self.dnssec {
            Dnssec::Unsigned => {
                self.dns
                    .set_zone(&origin, &self.zone)
                    .expect("test world setup");
            }
            Dnssec::Signed | Dnssec::WrongDs => {
                let ds_key = if self.dnssec == Dnssec::Signed {
                    Arc::clone(&self.zone_key)
                } else {
                    Arc::new(ZoneKey::generate().expect("test world setup"))
                };
                root.push_str(&ds_key.ds_record(&origin).expect("test world setup"));
                root.push('\n');
                let tamper: Vec<(&str, &str, Tamper)> = self
                    .tamper
                    .iter()
                    .map(|(n, t, h)| (n.as_str(), t.as_str(), *h))
                    .collect();
                self.dns
                    .set_signed_zone(&origin, &self.zone, &self.zone_key, &tamper)
                    .expect("test world setup");
            }
        }
        self.dns
            .set_signed_zone(".", &root, &self.root_key, &[])
            .expect("test world setup");
    }

    /// Serves `response` as the policy host `mta-sts.example.test` with a certificate `defect`.
    pub async fn policy_host(&mut self, defect: Defect, response: HttpResponse) {
        let ip = self.ip(2, 1);
        let cert = self
            .pki
            .issue("mta-sts.example.test", defect)
            .expect("test world setup");
        let host = PolicyHost::start(
            SocketAddr::new(IpAddr::V4(ip), self.https_port),
            cert.server_config,
            response,
        )
        .await
        .expect("test world setup");
        self.policy_hosts.push(host);
        self.zone(&format!("mta-sts 300 IN A {ip}"));
    }

    /// Serves `response` as the HTTPS host `name.example.test` on address 127.net.3.`idx`
    /// (port [`World::https_port`]) with a certificate `defect`, e.g. a TLS-RPT report
    /// endpoint. Returns `https://name.example.test:PORT` (append the path).
    pub async fn https_host(
        &mut self,
        name: &str,
        idx: u8,
        defect: Defect,
        response: HttpResponse,
    ) -> String {
        let ip = self.ip(3, idx);
        let fqdn = format!("{name}.{DOMAIN}");
        let cert = self.pki.issue(&fqdn, defect).expect("test world setup");
        let host = PolicyHost::start(
            SocketAddr::new(IpAddr::V4(ip), self.https_port),
            cert.server_config,
            response,
        )
        .await
        .expect("test world setup");
        self.policy_hosts.push(host);
        self.zone(&format!("{name} 300 IN A {ip}"));
        format!("https://{fqdn}:{}", self.https_port)
    }

    /// Answers later requests to the (first) policy host with `response`.
    pub fn set_policy_response(&self, response: HttpResponse) {
        if let Some(h) = self.policy_hosts.first() {
            h.set_response(response);
        }
    }

    /// The last request the (first) policy host saw.
    pub fn policy_request(&self) -> Option<crate::https::SeenRequest> {
        self.request_at(0)
    }

    /// How many requests the `i`-th HTTPS host (as in [`World::request_at`]) has seen.
    pub fn requests_at(&self, i: usize) -> usize {
        self.policy_hosts.get(i).map_or(0, PolicyHost::requests)
    }

    /// The last request the `i`-th HTTPS host started (policy hosts and [`World::https_host`]
    /// hosts, in the order they were added) saw.
    pub fn request_at(&self, i: usize) -> Option<crate::https::SeenRequest> {
        self.policy_hosts.get(i).and_then(PolicyHost::last_request)
    }

    /// Serves `mta-sts.example.test` from a host that knows nothing newer than TLS 1.0 (see
    /// [`OldTls`](crate::oldtls::OldTls)).
    pub async fn policy_host_old_tls(&mut self, old: crate::oldtls::OldTls) {
        let ip = self.ip(2, 1);
        let host = PolicyHost::start_old_tls(SocketAddr::new(IpAddr::V4(ip), self.https_port), old)
            .await
            .expect("test world setup");
        self.policy_hosts.push(host);
        self.zone(&format!("mta-sts 300 IN A {ip}"));
    }

    /// Adds an MX host `name` (relative to example.test) at preference `pref` on address
    /// 127.n.1.`idx`.
    pub async fn mx(&mut self, name: &str, pref: u16, idx: u8, behaviour: Behaviour) {
        let ip = self.ip(1, idx);
        let fqdn = format!("{name}.{DOMAIN}");
        let host = SmtpHost::start(
            SocketAddr::new(IpAddr::V4(ip), self.smtp_port),
            &fqdn,
            behaviour,
        )
        .await
        .expect("test world setup");
        self.hosts.push(host);
        self.zone(&format!("@ 300 IN MX {pref} {fqdn}.\n{name} 300 IN A {ip}"));
    }

    /// A normal MX with a certificate for its name with `defect`. Returns the chain it serves
    /// (end entity first, then the intermediate CA), e.g. to compute its TLSA records.
    pub async fn mx_with_cert(
        &mut self,
        name: &str,
        pref: u16,
        idx: u8,
        defect: Defect,
    ) -> Vec<CertificateDer<'static>> {
        let cert = self
            .pki
            .issue(&format!("{name}.{DOMAIN}"), defect)
            .expect("test world setup");
        let chain = cert.chain.clone();
        self.mx(
            name,
            pref,
            idx,
            Behaviour::Normal {
                tls: cert.server_config,
            },
        )
        .await;
        chain
    }
}

fn free_port(ip: Ipv4Addr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .expect("test world setup")
        .local_addr()
        .expect("test world setup")
        .port()
}
