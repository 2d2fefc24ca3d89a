//! The network flags `check`, `domain add|promote|check` and `serve` share: which DNS servers
//! to ask, which roots to trust, which ports and time budgets to use.

use anyhow::Result;
use clap::Args;
use mtasts_check::env::NetOptions;
use mtasts_check::{Env, Settings};
use std::time::Duration;

/// Network options of a check.
#[derive(Debug, Clone, Args)]
pub(crate) struct NetArgs {
    /// DNS server to ask, IP or IP:PORT (repeatable); default: the system's.
    #[arg(long = "nameserver", value_name = "IP[:PORT]")]
    pub(crate) nameservers: Vec<String>,
    /// DNSSEC trust anchor for the DANE lookups: a file of DNSKEY records in zone-file form
    /// (`. 3600 IN DNSKEY 257 3 13 ...`); default: the IANA root keys.
    #[arg(long, value_name = "FILE")]
    pub(crate) trust_anchor: Option<std::path::PathBuf>,
    /// Extra trusted root certificates (PEM), on top of the Mozilla roots.
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<std::path::PathBuf>,
    /// SMTP port of the MX hosts.
    #[arg(long, default_value_t = 25)]
    pub(crate) smtp_port: u16,
    /// HTTPS port of the policy host.
    #[arg(long, default_value_t = mtasts_check::env::HTTPS_PORT)]
    pub(crate) https_port: u16,
    /// Time budget, in seconds, for each network step (DNS query, fetch, each probe stage).
    #[arg(long, default_value_t = mtasts_check::env::CHECKER_TIMEOUT.as_secs_f64(), value_name = "SECS", value_parser = parse_timeout)]
    pub(crate) timeout: f64,
    /// Do not probe the MX hosts on port 25 (where outbound SMTP is blocked).
    #[arg(long)]
    pub(crate) no_smtp: bool,
    /// Skip DANE (the DNSSEC-validated MX and TLSA lookups), e.g. for faster bulk scans.
    #[arg(long)]
    pub(crate) no_dane: bool,
}

/// `--timeout`: seconds, more than 0 and at most 600 (a zero budget would fail every step
/// at once and call every domain untested).
fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= 600.0 => Ok(t),
        Ok(_) => Err("out of range: more than 0 and at most 600 seconds".into()),
        Err(_) => Err("not a number of seconds (more than 0, at most 600)".into()),
    }
}

impl NetArgs {
    /// The time budget of one step.
    pub(crate) fn step(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// The budget of one domain's whole check: its stages in sequence, and a little more.
    pub(crate) fn domain_budget(&self) -> Duration {
        Duration::from_secs_f64(self.timeout * 4.0 + 5.0)
    }

    /// The check environment these flags describe.
    pub(crate) fn env(&self) -> Result<Env> {
        let timeout = self.step();
        let net = NetOptions {
            nameservers: self.nameservers.clone(),
            trust_anchor: self.trust_anchor.clone(),
            ca_file: self.ca_file.clone(),
            dns_timeout: timeout,
            https_port: self.https_port,
            fetch_timeout: timeout,
        }
        .build()
        .map_err(|e| anyhow::anyhow!("--{} {}", flag(e.what), e.why))?;
        let mut settings = Settings {
            smtp_port: self.smtp_port,
            no_smtp: self.no_smtp,
            no_dane: self.no_dane,
            ..Settings::default()
        };
        settings.probe_budget.connect = timeout;
        settings.probe_budget.smtp = timeout;
        settings.probe_budget.tls = timeout;
        Ok(Env::with_network(net, settings))
    }
}

impl NetArgs {
    /// The environment of a look at a domain's DNS and policy host only, as `mtasts serve`'s
    /// drift checker makes it (`CheckConfig::drift_env`): no SMTP probes, no DANE, and no
    /// connection to the TLS-RPT endpoints the domain names.
    pub(crate) fn drift_env(&self) -> Result<Env> {
        let mut net = self.clone();
        net.no_smtp = true;
        net.no_dane = true;
        let mut env = net.env()?;
        env.settings.no_endpoints = true;
        Ok(env)
    }
}

/// The flag for a network option named by its configuration key.
fn flag(option: &str) -> &str {
    match option {
        "nameservers" => "nameserver",
        "trust_anchor" => "trust-anchor",
        "ca_file" => "ca-file",
        "https_port" => "https-port",
        _ => "timeout",
    }
}
