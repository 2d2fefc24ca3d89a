//! A fixed set of scenario domains served at once: one clean domain and one domain per kind of
//! breakage the checker detects, each with its own DNS zone, policy host and MX host.
//!
//! Every domain is `<name>.scenarios.test`. Its policy host `mta-sts.<domain>` listens on
//! 127.`net`.2.`k` and its MX `mx.<domain>` on 127.`net`.1.`k` (`k` = the scenario's position,
//! from 1); the DNS authority is 127.`net`.0.53. With [`Ports::STANDARD`] they listen on 53
//! (UDP and TCP), 443 and 25, so a third-party tool that cannot be told other ports can be
//! pointed at the same scenarios (binding them needs root). With [`Ports::ANY`] the ports are
//! free ones, for tests.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mtasts_testnet::scenarios::ScenarioError> {
//! use mtasts_testnet::scenarios::{Ports, ScenarioSet};
//! let set = ScenarioSet::start(97, Ports::ANY).await?;
//! for s in &set.scenarios {
//!     // check s.domain; expect the finding s.expect (none for the clean domain)
//!     let _ = (&s.domain, s.expect);
//! }
//! # Ok(()) }
//! ```

use crate::dns::{DnsError, DnsServer};
use crate::https::{HttpResponse, PolicyHost};
use crate::pki::{Defect, Pki, PkiError};
use crate::smtp::{Behaviour, SmtpHost};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The parent of every scenario domain.
pub const PARENT: &str = "scenarios.test";

/// Where the TLS-RPT reports of the scenario domains go (another domain, so no finding).
const RUA: &str = "mailto:tlsrpt@reports.example.net";

/// Something went wrong starting the scenario set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The DNS server could not start or a zone did not parse.
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// A certificate could not be issued.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A host could not listen (a port in use, or 25/443 without the right to bind them).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The ports the scenario hosts listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The DNS authority (UDP and TCP).
    pub dns: u16,
    /// Every MX host.
    pub smtp: u16,
    /// Every policy host.
    pub https: u16,
}

impl Ports {
    /// 53, 25 and 443.
    pub const STANDARD: Self = Self {
        dns: 53,
        smtp: 25,
        https: 443,
    };
    /// Free ports, chosen when the set starts.
    pub const ANY: Self = Self {
        dns: 0,
        smtp: 0,
        https: 0,
    };
}

/// One scenario domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scenario {
    /// Its short name, e.g. `mx-cert-expired`.
    pub name: &'static str,
    /// The domain, `<name>.scenarios.test`.
    pub domain: String,
    /// The finding id (docs/diagnostics.md) `mtasts check` reports for it; `None` for the clean
    /// domain.
    pub expect: Option<&'static str>,
    /// What is wrong, in words.
    pub what: &'static str,
}

/// The `_mta-sts` TXT record of a scenario.
enum Record {
    Valid,
    Absent,
    Text(&'static str),
    Two,
}

/// What the policy host serves.
enum Served {
    /// No policy host at all (no address record for `mta-sts.<domain>`).
    Nothing,
    /// This response, with a certificate for the host with this defect.
    Response(Defect, Response),
}

enum Response {
    /// The domain's policy (`mx: mx.<domain>`), mode `enforce`.
    Policy,
    /// The policy text with `mx: ` naming this host instead.
    PolicyFor(&'static str),
    /// The domain's policy with this mode.
    Mode(&'static str),
    Status(u16),
    Redirect,
    /// The policy with `Content-Type: application/octet-stream`.
    WrongType,
}

enum Tlsrpt {
    Valid,
    Absent,
    Text(&'static str),
    OldName,
}

struct Spec {
    name: &'static str,
    expect: Option<&'static str>,
    what: &'static str,
    record: Record,
    served: Served,
    mx: MxKind,
    tlsrpt: Tlsrpt,
}

enum MxKind {
    Cert(Defect),
    NoStartTls,
}

fn specs() -> Vec<Spec> {
    use Response as R;
    let ok = || Served::Response(Defect::Valid, R::Policy);
    let spec = |name, expect, what, record, served, mx, tlsrpt| Spec {
        name,
        expect,
        what,
        record,
        served,
        mx,
        tlsrpt,
    };
    let valid_mx = || MxKind::Cert(Defect::Valid);
    vec![
        spec(
            "clean",
            None,
            "nothing: record, policy, MX with a valid certificate, TLS-RPT",
            Record::Valid,
            ok(),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "no-record",
            Some("sts.record.missing"),
            "no _mta-sts TXT record (MTA-STS not deployed)",
            Record::Absent,
            ok(),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "bad-record",
            Some("sts.id.invalid"),
            "the _mta-sts record's id has characters RFC 8461 does not allow",
            Record::Text("v=STSv1; id=2024-01-01"),
            ok(),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "two-records",
            Some("sts.record.multiple"),
            "two _mta-sts records",
            Record::Two,
            ok(),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "no-policy-host",
            Some("policy.host.missing"),
            "a record but no policy host (no address for mta-sts.<domain>)",
            Record::Valid,
            Served::Nothing,
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "fetch-404",
            Some("policy.fetch.status"),
            "the policy URL answers 404",
            Record::Valid,
            Served::Response(Defect::Valid, R::Status(404)),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "redirect",
            Some("policy.fetch.redirect"),
            "the policy URL answers a 301 redirect",
            Record::Valid,
            Served::Response(Defect::Valid, R::Redirect),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "content-type",
            Some("policy.fetch.content-type"),
            "the policy is served as application/octet-stream",
            Record::Valid,
            Served::Response(Defect::Valid, R::WrongType),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "policy-cert-expired",
            Some("policy.certificate.expired"),
            "the policy host's certificate has expired",
            Record::Valid,
            Served::Response(Defect::Expired, R::Policy),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "policy-cert-wrong-name",
            Some("policy.certificate.host-mismatch"),
            "the policy host's certificate is for another name",
            Record::Valid,
            Served::Response(Defect::WrongName, R::Policy),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "policy-cert-untrusted",
            Some("policy.certificate.not-trusted"),
            "the policy host's certificate is from an untrusted CA",
            Record::Valid,
            Served::Response(Defect::UntrustedCa, R::Policy),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "invalid-policy",
            Some("policy.mode.invalid"),
            "the policy text says mode: enforcing",
            Record::Valid,
            Served::Response(Defect::Valid, R::Mode("enforcing")),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "mx-not-covered",
            Some("mx.not-covered"),
            "the MX host is not matched by the policy's mx lines",
            Record::Valid,
            Served::Response(Defect::Valid, R::PolicyFor("mail.elsewhere.test")),
            valid_mx(),
            Tlsrpt::Valid,
        ),
        spec(
            "mx-no-starttls",
            Some("mx.starttls.missing"),
            "the MX does not offer STARTTLS",
            Record::Valid,
            ok(),
            MxKind::NoStartTls,
            Tlsrpt::Valid,
        ),
        spec(
            "mx-cert-expired",
            Some("mx.certificate.expired"),
            "the MX certificate has expired",
            Record::Valid,
            ok(),
            MxKind::Cert(Defect::Expired),
            Tlsrpt::Valid,
        ),
        spec(
            "mx-cert-wrong-name",
            Some("mx.certificate.host-mismatch"),
            "the MX certificate is for another name",
            Record::Valid,
            ok(),
            MxKind::Cert(Defect::WrongName),
            Tlsrpt::Valid,
        ),
        spec(
            "mx-cert-untrusted",
            Some("mx.certificate.not-trusted"),
            "the MX certificate is from an untrusted CA",
            Record::Valid,
            ok(),
            MxKind::Cert(Defect::UntrustedCa),
            Tlsrpt::Valid,
        ),
        spec(
            "no-tlsrpt",
            Some("tlsrpt.record.missing"),
            "no _smtp._tls record",
            Record::Valid,
            ok(),
            valid_mx(),
            Tlsrpt::Absent,
        ),
        spec(
            "bad-tlsrpt",
            Some("tlsrpt.rua.no-scheme"),
            "the TLS-RPT rua has no mailto: or https: scheme",
            Record::Valid,
            ok(),
            valid_mx(),
            Tlsrpt::Text("v=TLSRPTv1; rua=tlsrpt@reports.example.net"),
        ),
        spec(
            "tlsrpt-old-name",
            Some("tlsrpt.record.old-name"),
            "the TLS-RPT record is at the draft-era name _smtp-tlsrpt",
            Record::Valid,
            ok(),
            valid_mx(),
            Tlsrpt::OldName,
        ),
    ]
}

/// The running scenario set.
pub struct ScenarioSet {
    /// The DNS authority for every scenario domain.
    pub dns: DnsServer,
    /// The PKI: trust [`Pki::root_pem`].
    pub pki: Arc<Pki>,
    /// The port every MX host listens on.
    pub smtp_port: u16,
    /// The port every policy host listens on.
    pub https_port: u16,
    /// The scenarios, clean first.
    pub scenarios: Vec<Scenario>,
    hosts: Vec<SmtpHost>,
    policy_hosts: Vec<PolicyHost>,
    root_key: Arc<crate::dnssec::ZoneKey>,
}

impl std::fmt::Debug for ScenarioSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScenarioSet")
            .field("dns", &self.dns.addr())
            .field("scenarios", &self.scenarios.len())
            .finish_non_exhaustive()
    }
}

impl ScenarioSet {
    /// Starts every scenario on 127.`net`.x.y with `ports` (see the module docs).
    pub async fn start(net: u8, ports: Ports) -> Result<Self, ScenarioError> {
        let ip = |c: u8, d: u8| IpAddr::V4(Ipv4Addr::new(127, net, c, d));
        let dns = if ports.dns == 0 {
            DnsServer::start(ip(0, 53)).await?
        } else {
            DnsServer::start_on(SocketAddr::new(ip(0, 53), ports.dns)).await?
        };
        let smtp_port = pick(ip(1, 1), ports.smtp)?;
        let https_port = pick(ip(2, 1), ports.https)?;
        let pki = Arc::new(Pki::new()?);
        let root_key =
            Arc::new(
                crate::dnssec::ZoneKey::generate().map_err(|e| DnsError::Zone {
                    origin: ".".to_owned(),
                    message: e.to_string(),
                })?,
            );
        let mut set = Self {
            dns,
            pki,
            smtp_port,
            https_port,
            scenarios: Vec::new(),
            hosts: Vec::new(),
            policy_hosts: Vec::new(),
            root_key,
        };
        let mut zones = Vec::new();
        for (k, spec) in specs().into_iter().enumerate() {
            let k = u8::try_from(k + 1).unwrap_or(u8::MAX);
            let domain = format!("{}.{PARENT}", spec.name);
            let zone = set.serve(&spec, &domain, ip(1, k), ip(2, k)).await?;
            zones.push((format!("{domain}."), zone));
            set.scenarios.push(Scenario {
                name: spec.name,
                domain,
                expect: spec.expect,
                what: spec.what,
            });
        }
        set.dns.set_zones(zones)?;
        // A signed root delegating the (unsigned) parent without DS: every scenario is provably
        // insecure, as most real domains are, so DANE-aware checkers find no TLSA to apply.
        set.dns.set_zone(&format!("{PARENT}."), "")?;
        set.dns.set_signed_zone(
            ".",
            &format!("{PARENT}. 300 IN NS ns.{PARENT}.\n"),
            &set.root_key,
            &[],
        )?;
        Ok(set)
    }

    /// The DNSSEC trust anchor (the signed root's key) a validating resolver starts from.
    pub fn trust_anchor(&self) -> String {
        self.root_key.trust_anchor(".")
    }

    /// Starts the hosts of one scenario; its zone text.
    async fn serve(
        &mut self,
        spec: &Spec,
        domain: &str,
        mx_ip: IpAddr,
        policy_ip: IpAddr,
    ) -> Result<String, ScenarioError> {
        let mut zone = String::new();
        let mx = format!("mx.{domain}");
        // Writing to a String cannot fail.
        let _ = writeln!(zone, "@ 300 IN MX 10 {mx}.\nmx 300 IN A {mx_ip}");
        match &spec.record {
            Record::Valid => {
                let _ = writeln!(zone, "_mta-sts 300 IN TXT \"v=STSv1; id=20240101T000000\"");
            }
            Record::Absent => {}
            Record::Text(t) => {
                let _ = writeln!(zone, "_mta-sts 300 IN TXT \"{t}\"");
            }
            Record::Two => {
                let _ = writeln!(
                    zone,
                    "_mta-sts 300 IN TXT \"v=STSv1; id=1\"\n_mta-sts 300 IN TXT \"v=STSv1; id=2\""
                );
            }
        }
        match &spec.tlsrpt {
            Tlsrpt::Valid => {
                let _ = writeln!(zone, "_smtp._tls 300 IN TXT \"v=TLSRPTv1; rua={RUA}\"");
            }
            Tlsrpt::Absent => {}
            Tlsrpt::Text(t) => {
                let _ = writeln!(zone, "_smtp._tls 300 IN TXT \"{t}\"");
            }
            Tlsrpt::OldName => {
                let _ = writeln!(zone, "_smtp-tlsrpt 300 IN TXT \"v=TLSRPTv1; rua={RUA}\"");
            }
        }
        let behaviour = match &spec.mx {
            MxKind::Cert(defect) => Behaviour::Normal {
                tls: self.pki.issue(&mx, defect.clone())?.server_config,
            },
            MxKind::NoStartTls => Behaviour::NoStartTls,
        };
        let addr = SocketAddr::new(mx_ip, self.smtp_port);
        let host = SmtpHost::start(addr, &mx, behaviour)
            .await
            .map_err(|source| ScenarioError::Bind { addr, source })?;
        self.hosts.push(host);
        if let Served::Response(defect, response) = &spec.served {
            let policy = format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 604800\n");
            let response = match response {
                Response::Policy => HttpResponse::policy(policy),
                Response::PolicyFor(host) => HttpResponse::policy(policy.replace(&mx, host)),
                Response::Mode(mode) => {
                    HttpResponse::policy(policy.replace("mode: enforce", &format!("mode: {mode}")))
                }
                Response::Status(code) => HttpResponse::status(*code),
                Response::Redirect => {
                    HttpResponse::redirect(&format!("https://www.{domain}/.well-known/mta-sts.txt"))
                }
                Response::WrongType => HttpResponse::policy(policy)
                    .with_header("Content-Type", "application/octet-stream"),
            };
            let cert = self
                .pki
                .issue(&format!("mta-sts.{domain}"), defect.clone())?;
            let addr = SocketAddr::new(policy_ip, self.https_port);
            let host = PolicyHost::start(addr, cert.server_config, response)
                .await
                .map_err(|source| ScenarioError::Bind { addr, source })?;
            self.policy_hosts.push(host);
            // The AAAA (::1, where nothing listens on the policy port) only spares every
            // scenario a "no IPv6" warning; clients fall back to the A record.
            let _ = writeln!(
                zone,
                "mta-sts 300 IN A {policy_ip}\nmta-sts 300 IN AAAA ::1"
            );
        }
        Ok(zone)
    }

    /// The domains, one a line, clean first.
    pub fn domain_list(&self) -> String {
        self.scenarios.iter().fold(String::new(), |mut s, sc| {
            s.push_str(&sc.domain);
            s.push('\n');
            s
        })
    }

    /// A table of the scenarios, tab-separated: name, domain, expected finding (`-` for none),
    /// and what is wrong; a header line first.
    pub fn table(&self) -> String {
        let mut s = String::from("name\tdomain\texpect\twhat\n");
        for sc in &self.scenarios {
            let _ = writeln!(
                s,
                "{}\t{}\t{}\t{}",
                sc.name,
                sc.domain,
                sc.expect.unwrap_or("-"),
                sc.what
            );
        }
        s
    }
}

/// `port`, or a free port on `ip` when it is 0.
fn pick(ip: IpAddr, port: u16) -> Result<u16, ScenarioError> {
    if port != 0 {
        return Ok(port);
    }
    let addr = SocketAddr::new(ip, 0);
    std::net::TcpListener::bind(addr)
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| ScenarioError::Bind { addr, source })
}
