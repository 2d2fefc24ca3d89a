//! The network environment, built once from one options struct: the DNS resolver (with its
//! DNSSEC trust anchor), the TLS trust roots and the policy fetch limits.
//!
//! Every service takes a [`Network`] built here, so the defaults and the checks of each option
//! live in one place: [`NetOptions::checker`] for `mtasts check` (15 s per step, D14) and
//! [`NetOptions::sender`] for the resolver daemon (60 s per policy fetch, D14). Callers set the
//! fields the operator gave and call [`NetOptions::build`]; a value that would silently disable
//! something (a zero time-out, port 0) is refused with the option's name.
//!
//! ```
//! let mut options = mtasts_net::env::NetOptions::sender();
//! options.nameservers = vec!["127.0.0.1".into(), "[::1]:5353".into()];
//! let net = options.build().expect("valid options");
//! assert_eq!(net.fetch.timeout, std::time::Duration::from_secs(60));
//! options.fetch_timeout = std::time::Duration::ZERO;
//! assert!(options.build().unwrap_err().to_string().contains("fetch_timeout"));
//! ```

use crate::dns::{Resolver, ResolverSettings, TrustAnchor};
use crate::https::{FetchSettings, MAX_POLICY_BODY};
use crate::tls::TlsProbeConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The checker's time budget per step (DNS query, policy fetch), D14.
pub const CHECKER_TIMEOUT: Duration = Duration::from_secs(15);
/// The HTTPS port of policy hosts (RFC 8461 §3.3).
pub const HTTPS_PORT: u16 = 443;

/// The longest time-out any option accepts (10 minutes): longer ones are typing mistakes.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// The options of the network environment, as the operator gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOptions {
    /// Name servers, `IP` (port 53) or `IP:PORT` / `[IPv6]:PORT`; empty: the system's
    /// (`/etc/resolv.conf`).
    pub nameservers: Vec<String>,
    /// A file of DNSKEY records in zone-file form to trust instead of the IANA root keys.
    pub trust_anchor: Option<PathBuf>,
    /// Extra trusted root certificates (PEM), beside the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Time budget of one DNS query.
    pub dns_timeout: Duration,
    /// The HTTPS port of policy hosts (443; test set-ups use another).
    pub https_port: u16,
    /// Time budget of one whole policy fetch (DNS, connect, TLS, request, body).
    pub fetch_timeout: Duration,
}

impl NetOptions {
    /// The checker's defaults: 15 s per DNS query and per policy fetch (D14), the system's name
    /// servers, the IANA root keys, the Mozilla roots.
    pub fn checker() -> Self {
        Self {
            nameservers: Vec::new(),
            trust_anchor: None,
            ca_file: None,
            dns_timeout: CHECKER_TIMEOUT,
            https_port: HTTPS_PORT,
            fetch_timeout: CHECKER_TIMEOUT,
        }
    }

    /// A sender's defaults (the resolver daemon): 5 s per DNS query, 60 s per policy fetch
    /// (D14: a sender waits longer than a checker before it gives up on a policy).
    pub fn sender() -> Self {
        Self {
            dns_timeout: crate::dns::DEFAULT_TIMEOUT,
            fetch_timeout: Duration::from_secs(60),
            ..Self::checker()
        }
    }

    /// Reads the files, parses the name servers and builds the environment.
    ///
    /// # Errors
    /// An option is out of range, a name server is not an address, a file cannot be read or
    /// holds nothing usable; the error names the option.
    pub fn build(&self) -> Result<Network, EnvError> {
        check_timeout("dns_timeout", self.dns_timeout)?;
        check_timeout("fetch_timeout", self.fetch_timeout)?;
        if self.https_port == 0 {
            return Err(bad("https_port", "0 is not a port"));
        }
        let nameservers = self
            .nameservers
            .iter()
            .map(|s| parse_nameserver(s))
            .collect::<Result<Vec<_>, _>>()?;
        let trust_anchor = match &self.trust_anchor {
            None => TrustAnchor::IanaRoot,
            Some(path) => TrustAnchor::Keys(std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "trust_anchor",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?),
        };
        let dns = Resolver::new(&ResolverSettings {
            nameservers,
            timeout: Some(self.dns_timeout),
            trust_anchor,
        })
        .map_err(|e| match &self.trust_anchor {
            Some(path) => bad(
                "trust_anchor",
                format!("{}: not a file of DNSKEY records ({e})", path.display()),
            ),
            None => bad("nameservers", e),
        })?;
        let mut tls = TlsProbeConfig::new();
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                bad(
                    "ca_file",
                    format!("{}: cannot read it ({e})", path.display()),
                )
            })?;
            tls.add_pem_roots(&pem)
                .map_err(|e| bad("ca_file", format!("{}: {e}", path.display())))?;
        }
        let fetch = FetchSettings {
            port: self.https_port,
            timeout: self.fetch_timeout,
            max_body: MAX_POLICY_BODY,
        };
        Ok(Network { dns, tls, fetch })
    }
}

/// `IP` (port 53), `IP:PORT` or `[IPv6]:PORT`.
///
/// # Errors
/// The text is none of these.
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, EnvError> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| bad("nameservers", format!("{s}: not an IP address or IP:PORT")))
}

fn check_timeout(what: &'static str, t: Duration) -> Result<(), EnvError> {
    if t.is_zero() {
        return Err(bad(
            what,
            "0 would give up on every lookup at once (use 1 to 600 seconds)",
        ));
    }
    if t > MAX_TIMEOUT {
        return Err(bad(
            what,
            format!(
                "{} s is longer than the longest allowed, {} s",
                t.as_secs(),
                MAX_TIMEOUT.as_secs()
            ),
        ));
    }
    Ok(())
}

/// An option of the network environment that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {why}")]
pub struct EnvError {
    /// The option, by its configuration key.
    pub what: &'static str,
    /// Why.
    pub why: String,
}

fn bad(what: &'static str, why: impl std::fmt::Display) -> EnvError {
    EnvError {
        what,
        why: why.to_string(),
    }
}

/// What a service needs from the network: DNS, trust roots, the policy fetch. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Network {
    /// DNS (with the DNSSEC trust anchor for validated lookups).
    pub dns: Resolver,
    /// Trust roots for certificates (policy hosts, MX hosts, TLS-RPT endpoints).
    pub tls: TlsProbeConfig,
    /// The policy fetch: port, time budget, size cap.
    pub fetch: FetchSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_servers_take_three_forms() {
        assert_eq!(
            parse_nameserver("192.0.2.1").unwrap(),
            "192.0.2.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("192.0.2.1:5353").unwrap(),
            "192.0.2.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("[::1]:53").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        let e = parse_nameserver("dns.example").unwrap_err();
        assert_eq!(e.what, "nameservers");
    }

    #[test]
    fn values_that_disable_something_are_refused_by_name() {
        let ok = NetOptions {
            nameservers: vec!["127.0.0.1".into()],
            ..NetOptions::sender()
        };
        assert!(ok.build().is_ok());
        for (options, what) in [
            (
                NetOptions {
                    fetch_timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "fetch_timeout",
            ),
            (
                NetOptions {
                    dns_timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "dns_timeout",
            ),
            (
                NetOptions {
                    fetch_timeout: Duration::from_secs(601),
                    ..ok.clone()
                },
                "fetch_timeout",
            ),
            (
                NetOptions {
                    https_port: 0,
                    ..ok.clone()
                },
                "https_port",
            ),
            (
                NetOptions {
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..ok.clone()
                },
                "ca_file",
            ),
            (
                NetOptions {
                    trust_anchor: Some("/nonexistent/root.key".into()),
                    ..ok
                },
                "trust_anchor",
            ),
        ] {
            let e = options.build().unwrap_err();
            assert_eq!(e.what, what, "{e}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("mtasts-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("empty.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let options = NetOptions {
            nameservers: vec!["127.0.0.1".into()],
            ca_file: Some(file),
            ..NetOptions::checker()
        };
        let e = options.build().unwrap_err();
        assert_eq!(e.what, "ca_file");
        assert!(e.why.contains("no certificate"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
