//! The daemon's options as command-line flags and environment variables (`MTASTS_RESOLVER_*`),
//! declared once: a binary flattens [`Flags`] into its command (clap), and [`Flags::config`] lays
//! them over the configuration file with [`Config::load`] (flag > environment > file > default).

use crate::config::{Config, ConfigError};
use std::path::PathBuf;

/// Options of `mtasts resolver`; each is also an environment variable, and (except `--config`
/// and `--log`) a configuration file key.
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// Configuration file (TOML); see docs/resolver.md.
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Socketmap listener, `IP:PORT` or `unix:PATH` (repeatable) [default: 127.0.0.1:8461].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_LISTEN",
        value_delimiter = ','
    )]
    pub listen: Vec<String>,
    /// tcp_table listener, `IP:PORT` or `IP:PORT=ZONE` (repeatable).
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_TCP_TABLE",
        value_delimiter = ','
    )]
    pub tcp_table: Vec<String>,
    /// DNS server, `IP` or `IP:PORT` (repeatable) [default: the system's].
    #[arg(
        long = "nameserver",
        global = true,
        env = "MTASTS_RESOLVER_NAMESERVER",
        value_delimiter = ',',
        value_name = "IP[:PORT]"
    )]
    pub nameservers: Vec<String>,
    /// Extra trusted roots (PEM) for policy hosts, beside the Mozilla roots.
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_CA_FILE",
        value_name = "PEM"
    )]
    pub ca_file: Option<PathBuf>,
    /// The Postfix version answers are rendered for, X.Y[.Z] [default: 3.7].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_POSTFIX_VERSION",
        value_name = "X.Y[.Z]"
    )]
    pub postfix_version: Option<String>,
    /// The persisted cache: a SQLite file, or `memory` [default: /var/lib/mtasts/resolver.sqlite].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_CACHE",
        value_name = "PATH|memory"
    )]
    pub cache: Option<String>,
    /// Serve Prometheus `/metrics` on IP:PORT.
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_METRICS",
        value_name = "IP:PORT"
    )]
    pub metrics: Option<String>,
    /// With DNS failing and nothing cached: `deliver` (NOTFOUND) or `defer` (TEMP).
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_ON_DNS_ERROR",
        value_name = "deliver|defer"
    )]
    pub on_dns_error: Option<String>,
    /// Seconds for one policy fetch [default: 60].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_FETCH_TIMEOUT",
        value_name = "SECS"
    )]
    pub fetch_timeout: Option<u64>,
    /// Seconds a lookup for an uncached domain waits for the network [default: 15].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_MISS_WAIT",
        value_name = "SECS"
    )]
    pub miss_wait: Option<u64>,
    /// Do not check DANE: never answer `dane-only`, nor defer for an MX RRset that does not
    /// validate (D22).
    #[arg(long, global = true, env = "MTASTS_RESOLVER_NO_DANE")]
    pub no_dane: bool,
    /// DNSSEC trust anchor (DNSKEY lines) instead of the IANA root keys (test set-ups).
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_TRUST_ANCHOR",
        value_name = "FILE"
    )]
    pub trust_anchor: Option<PathBuf>,
    /// HTTPS port of policy hosts (test set-ups) [default: 443].
    #[arg(long, global = true, env = "MTASTS_RESOLVER_HTTPS_PORT")]
    pub https_port: Option<u16>,
    /// Threads answering requests: 1 runs the daemon on one thread (tokio's single-threaded
    /// scheduler), N > 1 a pool of N [default: the number of CPUs the process may run on].
    #[arg(long, global = true, env = "MTASTS_RESOLVER_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Permission bits of unix socket listeners, octal [default: 0660].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_SOCKET_MODE",
        value_name = "MODE"
    )]
    pub socket_mode: Option<String>,
    /// Group of unix socket listeners, a name or a number (e.g. `postfix`) [default: the
    /// daemon's].
    #[arg(
        long,
        global = true,
        env = "MTASTS_RESOLVER_SOCKET_GROUP",
        value_name = "GROUP"
    )]
    pub socket_group: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "MTASTS_RESOLVER_LOG", default_value = "text", value_parser = ["text", "json"])]
    pub log: String,
}

impl Flags {
    /// The options these flags set, as a [`Config`] to lay over the file (`--no-dane` is
    /// `dane = Some(false)`; an absent flag leaves the file's value).
    pub fn overrides(&self) -> Config {
        Config {
            listen: self.listen.clone(),
            tcp_table: self.tcp_table.clone(),
            nameservers: self.nameservers.clone(),
            ca_file: self.ca_file.clone(),
            cache: self.cache.clone(),
            metrics: self.metrics.clone(),
            postfix_version: self.postfix_version.clone(),
            on_dns_error: self.on_dns_error.clone(),
            fetch_timeout: self.fetch_timeout,
            miss_wait: self.miss_wait,
            https_port: self.https_port,
            dane: self.no_dane.then_some(false),
            trust_anchor: self.trust_anchor.clone(),
            threads: self.threads,
            socket_mode: self.socket_mode.clone(),
            socket_group: self.socket_group.clone(),
            ..Config::default()
        }
    }

    /// The configuration file (`--config`) with these flags laid over it ([`Config::load`]).
    pub fn config(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref(), self.overrides())
    }
}

#[cfg(test)]
mod tests {
    use super::Flags;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        flags: Flags,
    }

    fn flags(args: &[&str]) -> Flags {
        Cli::try_parse_from(std::iter::once("mtasts").chain(args.iter().copied()))
            .unwrap()
            .flags
    }

    #[test]
    fn no_dane_flag_turns_dane_off_and_its_absence_leaves_the_file_value() {
        assert_eq!(flags(&["--no-dane"]).overrides().dane, Some(false));
        assert_eq!(flags(&[]).overrides().dane, None);
    }

    #[test]
    fn every_flag_reaches_the_overrides() {
        let o = flags(&[
            "--listen=127.0.0.1:1,unix:/tmp/s",
            "--tcp-table=127.0.0.1:2=t",
            "--nameserver=127.0.0.1:53",
            "--ca-file=ca.pem",
            "--postfix-version=3.10",
            "--cache=memory",
            "--metrics=127.0.0.1:3",
            "--on-dns-error=defer",
            "--fetch-timeout=5",
            "--miss-wait=6",
            "--trust-anchor=root.key",
            "--https-port=8443",
            "--threads=2",
            "--socket-mode=0600",
            "--socket-group=postfix",
        ])
        .overrides();
        assert_eq!(o.listen, ["127.0.0.1:1", "unix:/tmp/s"]);
        assert_eq!(o.tcp_table, ["127.0.0.1:2=t"]);
        assert_eq!(o.nameservers, ["127.0.0.1:53"]);
        assert_eq!(o.ca_file.as_deref(), Some("ca.pem".as_ref()));
        assert_eq!(o.postfix_version.as_deref(), Some("3.10"));
        assert_eq!(o.cache.as_deref(), Some("memory"));
        assert_eq!(o.metrics.as_deref(), Some("127.0.0.1:3"));
        assert_eq!(o.on_dns_error.as_deref(), Some("defer"));
        assert_eq!((o.fetch_timeout, o.miss_wait), (Some(5), Some(6)));
        assert_eq!(o.trust_anchor.as_deref(), Some("root.key".as_ref()));
        assert_eq!((o.https_port, o.threads), (Some(8443), Some(2)));
        assert_eq!(o.socket_mode.as_deref(), Some("0600"));
        assert_eq!(o.socket_group.as_deref(), Some("postfix"));
        assert_eq!(o.dane, None);
    }
}
