//! `mtasts serve`'s configuration: one TOML file, every option with a default.
//!
//! ```toml
//! https = "[::]:443"              # the policy listener
//! http = "[::]:80"                # port 80: ACME HTTP-01, 404 otherwise; "none": no listener
//! admin = "127.0.0.1:8443"        # the admin API, /metrics and /health
//! reload_poll = 2                 # seconds between store generation reads (PostgreSQL also LISTENs)
//! grace = 5                       # seconds open connections get on stop
//!
//! [store]
//! url = "sqlite:/var/lib/mtasts/store.db"   # or postgres://user@host/db
//! key = "64 hex digits"           # seals private keys; required for PostgreSQL
//! max_connections = 4
//! acquire_timeout = 5             # seconds
//!
//! [admin_tls]                     # absent: plain HTTP, allowed only on a loopback address
//! cert = "/etc/mtasts/admin.crt"
//! key = "/etc/mtasts/admin.key"
//!
//! [limits]                        # crate::Limits, times in seconds
//! [admin_limits]                  # crate::admin::AdminLimits, times in seconds
//! [rollout]                       # mtasts_core::rollout::RolloutConfig
//!
//! [acme]                          # crate::acme::AcmeConfig; off without a directory
//! directory = "https://acme-v02.api.letsencrypt.org/directory"
//! contact = ["hostmaster@provider.example"]
//!
//! [hosting]                       # crate::hosting::Hosting: where hosted names point
//! public_addresses = ["192.0.2.10", "2001:db8::10"]
//! cname_target = "mta-sts.provider.example"
//! tlsrpt_rua = "mailto:tlsrpt@provider.example"
//!
//! [dns_update]                    # crate::publish::DnsUpdateConfig: RFC 2136 for full delegation
//!
//! [imap]                          # crate::report_imap::ImapConfig: report mail by IMAP; off
//! server = "imap.provider.example:993"      # without a server
//! user = "tlsrpt@provider.example"
//! password_file = "/etc/mtasts/imap.password"
//!
//! [check]                         # the drift checker (the CLI's live check takes its own flags)
//! nameservers = ["127.0.0.53"]    # IP or IP:PORT; empty: the system's
//! ca_file = "/etc/mtasts/extra-roots.pem"   # roots trusted beside the Mozilla ones
//! timeout = 15                    # seconds per network step
//! drift_interval = 3600           # seconds between rounds over every domain; 0: off
//! drift_concurrency = 4           # domains checked at once
//! ```
//!
//! The binary lays flags (`--store`, `--https`, `--http`, `--admin`) and environment variables
//! over what the file says; [`ServeConfig::default`] is what runs with no file at all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use mtasts_core::rollout::RolloutConfig;
use mtasts_store::{StoreKey, StoreOptions};
use serde::{Deserialize, Deserializer};

use crate::Limits;
use crate::admin::AdminLimits;

/// Where the SQLite store lives unless configured otherwise.
pub const DEFAULT_STORE: &str = "sqlite:/var/lib/mtasts/store.db";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit.
    #[error("configuration: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range or inconsistent.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Everything `mtasts serve` needs ([`crate::daemon::run`]). Deserialised from TOML; every
/// field has a default.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// The store.
    pub store: StoreConfig,
    /// The HTTPS policy listener (`--https`). Default `[::]:443`.
    pub https: SocketAddr,
    /// The plain HTTP listener, port 80 (`--http`): ACME HTTP-01 answers, 404 otherwise. Default
    /// `[::]:80`; `None` (`http = "none"` in the file) for no listener.
    #[serde(deserialize_with = "optional_addr")]
    pub http: Option<SocketAddr>,
    /// The admin API listener with `/metrics` and `/health` (`--admin`). Default
    /// `127.0.0.1:8443`.
    pub admin: SocketAddr,
    /// The admin listener's certificate; without one it speaks plain HTTP, and only on a
    /// loopback address.
    pub admin_tls: Option<AdminTlsFiles>,
    /// The policy listeners' limits.
    pub limits: Limits,
    /// The admin listener's limits.
    pub admin_limits: AdminLimits,
    /// The rollout schedule and gates the admin API applies.
    pub rollout: RolloutConfig,
    /// How hosted domains are checked: drift in the background, live checks for promotion.
    pub check: CheckConfig,
    /// Certificates by ACME (`[acme]`; off unless `directory` is set).
    pub acme: crate::acme::AcmeConfig,
    /// Where hosted names must point and what we publish (`[hosting]`).
    pub hosting: crate::hosting::Hosting,
    /// Publishing the TXT records of fully delegated domains by RFC 2136 (`[dns_update]`).
    pub dns_update: crate::publish::DnsUpdateConfig,
    /// TLS-RPT reports by HTTPS `POST` on the policy hosts (`[intake]`).
    pub intake: crate::report_sink::IntakeConfig,
    /// TLS-RPT reports by mail: the SMTP receiver (`[smtp]`; off unless `listen` is set).
    pub smtp: crate::smtp_intake::SmtpConfig,
    /// Alerts on the reports by webhook and e-mail (`[alerts]`; off unless `webhook` or
    /// `email_to` is set).
    pub alerts: crate::alerts::AlertConfig,
    /// TLS-RPT report mail read from an IMAP mailbox (`[imap]`; off unless `server` is set).
    pub imap: crate::report_imap::ImapConfig,
    /// How often the store's generation is read, in seconds (PostgreSQL also wakes on
    /// LISTEN/NOTIFY at once; this bounds the delay when a notification was lost, and is all
    /// SQLite has). Default 2.
    #[serde(deserialize_with = "secs")]
    pub reload_poll: Duration,
    /// On stop, how long open connections may take to finish, in seconds. Default 5.
    #[serde(deserialize_with = "secs")]
    pub grace: Duration,
    /// The Prometheus handle `/metrics` renders. Not in the file: the binary installs the
    /// recorder and puts its handle here.
    #[serde(skip)]
    pub metrics: Option<PrometheusHandle>,
}

/// The `[store]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite:PATH` or `postgres://...` (`--store`). Default [`DEFAULT_STORE`].
    pub url: String,
    /// The key sealing private keys (64 hex digits). Required for PostgreSQL; for SQLite a key
    /// file beside the database is used when absent.
    pub key: Option<String>,
    /// Most database connections. Default 4.
    pub max_connections: u32,
    /// How long an operation waits for a connection (or for PostgreSQL to answer), in seconds:
    /// past it the store counts as unreachable. Default 5.
    #[serde(deserialize_with = "secs")]
    pub acquire_timeout: Duration,
}

/// The `[check]` table: the network the drift checker (and the CLI's live check) uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckConfig {
    /// Name servers, `IP` or `IP:PORT` (`--nameserver`); empty: the system's.
    pub nameservers: Vec<String>,
    /// Extra trusted roots for the policy fetch (PEM), beside the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// The HTTPS port policy hosts are fetched on (443; test set-ups use another).
    pub https_port: u16,
    /// Time budget of each network step, in seconds. Default 15.
    #[serde(deserialize_with = "secs")]
    pub timeout: Duration,
    /// Seconds between drift rounds over every hosted domain; 0 turns the checker off.
    /// Default 3600.
    #[serde(deserialize_with = "secs")]
    pub drift_interval: Duration,
    /// Domains checked at once in a round. Default 4.
    pub drift_concurrency: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            ca_file: None,
            https_port: mtasts_check::env::HTTPS_PORT,
            timeout: mtasts_check::env::CHECKER_TIMEOUT,
            drift_interval: Duration::from_secs(3600),
            drift_concurrency: 4,
        }
    }
}

impl CheckConfig {
    /// The check environment for drift: DNS and policy fetch; no SMTP probes, no DANE, no
    /// TLS-RPT endpoint probes.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the option (a name server that is not an address, an
    /// unreadable CA file, a zero time-out).
    pub fn drift_env(&self) -> Result<mtasts_check::Env, ConfigError> {
        let net = mtasts_check::env::NetOptions {
            nameservers: self.nameservers.clone(),
            trust_anchor: None,
            ca_file: self.ca_file.clone(),
            dns_timeout: self.timeout,
            https_port: self.https_port,
            fetch_timeout: self.timeout,
        }
        .build()
        .map_err(|e| ConfigError::Invalid(format!("check.{}: {}", e.what, e.why)))?;
        let settings = mtasts_check::Settings {
            no_smtp: true,
            no_dane: true,
            // Hosted domains name these: the checker has no use for them, and must not connect
            // wherever a customer points it.
            no_endpoints: true,
            ..mtasts_check::Settings::default()
        };
        Ok(mtasts_check::Env::with_network(net, settings))
    }
}

/// The `[admin_tls]` table: PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTlsFiles {
    /// The certificate chain, end entity first.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let d = StoreOptions::default();
        Self {
            url: DEFAULT_STORE.to_owned(),
            key: None,
            max_connections: d.max_connections,
            acquire_timeout: d.acquire_timeout,
        }
    }
}

impl StoreConfig {
    /// The options [`mtasts_store::Store::open`] takes.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the key is not 64 hex digits.
    pub fn options(&self) -> Result<StoreOptions, ConfigError> {
        let key = self
            .key
            .as_deref()
            .map(StoreKey::from_hex)
            .transpose()
            .map_err(|e| ConfigError::Invalid(format!("store.key: {e}")))?;
        Ok(StoreOptions {
            key,
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
            ..StoreOptions::default()
        })
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            https: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 443)),
            http: Some(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80))),
            admin: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 8443)),
            admin_tls: None,
            limits: Limits::default(),
            admin_limits: AdminLimits::default(),
            rollout: RolloutConfig::default(),
            check: CheckConfig::default(),
            acme: crate::acme::AcmeConfig::default(),
            hosting: crate::hosting::Hosting::default(),
            dns_update: crate::publish::DnsUpdateConfig::default(),
            intake: crate::report_sink::IntakeConfig::default(),
            smtp: crate::smtp_intake::SmtpConfig::default(),
            alerts: crate::alerts::AlertConfig::default(),
            imap: crate::report_imap::ImapConfig::default(),
            reload_poll: Duration::from_secs(2),
            grace: Duration::from_secs(5),
            metrics: None,
        }
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("store", &crate::daemon::redact(&self.store.url))
            .field("https", &self.https)
            .field("http", &self.http)
            .field("admin", &self.admin)
            .field("admin_tls", &self.admin_tls)
            .field("limits", &self.limits)
            .field("admin_limits", &self.admin_limits)
            .field("acme", &self.acme)
            .field("hosting", &self.hosting)
            .field("dns_update", &self.dns_update)
            .field("intake", &self.intake)
            .field("smtp", &self.smtp)
            .field("alerts", &self.alerts)
            .field("imap", &self.imap)
            .field("reload_poll", &self.reload_poll)
            .field("grace", &self.grace)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl ServeConfig {
    /// The service host names served with a certificate of their own from the store (no
    /// policy): `[intake] host` and, when the SMTP receiver is on, `[smtp] hostname`.
    pub fn service_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        if !self.intake.host.is_empty() && !self.intake.path.is_empty() {
            hosts.push(self.intake.host.to_ascii_lowercase());
        }
        if self.smtp.listen.is_some() {
            hosts.push(self.smtp.hostname.to_ascii_lowercase());
        }
        hosts
    }

    /// Parses a configuration file's text.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] (unknown keys included), [`ConfigError::Invalid`].
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration from layers: the file's text (if any), then `overrides`, each a
    /// dotted key and a value (`limits.idle_timeout`, `"7"`), later ones winning. A value is
    /// read as TOML (`7`, `true`, `["a", "b"]`) and, when it does not parse, as a string
    /// (`127.0.0.1:443`). This is how the binary lays `--set KEY=VALUE`, the
    /// `MTASTS_SERVE__<KEY>` environment variables and its own flags over the file, so every
    /// option is a flag and an environment variable without a second list of them.
    ///
    /// # Errors
    /// As [`ServeConfig::from_toml`]; an override of a key that is not an option, or that
    /// descends into a value that is not a table.
    pub fn layered(
        file: Option<&str>,
        overrides: &[(String, toml::Value)],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = match file {
            Some(text) => toml::from_str(text)?,
            None => toml::Table::new(),
        };
        for (key, value) in overrides {
            set_key(&mut table, key, value.clone())?;
        }
        let config: Self = toml::Value::Table(table).try_into()?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a configuration file.
    ///
    /// # Errors
    /// As [`ServeConfig::from_toml`], and [`ConfigError::Read`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks what serde cannot: the store key, the rollout schedule, plain admin HTTP only on
    /// loopback, non-zero counts.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] saying what is wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store.options()?;
        self.rollout
            .validate()
            .map_err(|e| ConfigError::Invalid(format!("rollout: {e}")))?;
        if self.admin_tls.is_none() && !self.admin.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "admin = {} is not a loopback address: plain HTTP needs [admin_tls] cert and key",
                self.admin
            )));
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_ip == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_connections and max_connections_per_ip must be at least 1".into(),
            ));
        }
        let a = &self.admin_limits;
        if a.max_connections == 0 || a.max_connections > MAX_ADMIN_CONNECTIONS {
            return Err(ConfigError::Invalid(format!(
                "admin_limits.max_connections must be between 1 and {MAX_ADMIN_CONNECTIONS}"
            )));
        }
        if a.max_connections_per_ip == 0 {
            return Err(ConfigError::Invalid(
                "admin_limits.max_connections_per_ip must be at least 1".into(),
            ));
        }
        if a.max_body_bytes == 0 || a.max_headers == 0 || a.max_header_bytes == 0 {
            return Err(ConfigError::Invalid(
                "admin_limits.max_body_bytes, max_headers and max_header_bytes must be at least 1"
                    .into(),
            ));
        }
        if [a.header_timeout, a.request_timeout, a.handshake_timeout]
            .iter()
            .any(Duration::is_zero)
        {
            return Err(ConfigError::Invalid(
                "admin_limits timeouts must be more than 0 seconds".into(),
            ));
        }
        if self.check.drift_concurrency == 0 || self.check.drift_concurrency > 256 {
            return Err(ConfigError::Invalid(
                "check.drift_concurrency must be between 1 and 256".into(),
            ));
        }
        if self.check.timeout.is_zero() || self.check.timeout > mtasts_check::env::MAX_TIMEOUT {
            return Err(ConfigError::Invalid(
                "check.timeout must be more than 0 and at most 600 seconds".into(),
            ));
        }
        if self.store.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "store.max_connections must be at least 1".into(),
            ));
        }
        self.acme.validate().map_err(ConfigError::Invalid)?;
        self.dns_update.validate().map_err(ConfigError::Invalid)?;
        self.intake.validate().map_err(ConfigError::Invalid)?;
        self.smtp.validate().map_err(ConfigError::Invalid)?;
        self.alerts.validate().map_err(ConfigError::Invalid)?;
        self.imap.validate().map_err(ConfigError::Invalid)?;
        if let Some(rua) = &self.hosting.tlsrpt_rua {
            let record = crate::hosting::tlsrpt_value(rua);
            let parsed = mtasts_core::record::parse_tlsrpt_rrset(&[record.as_bytes()]);
            if rua.len() > MAX_TLSRPT_RUA || !parsed.is_valid() {
                return Err(ConfigError::Invalid(format!(
                    "hosting.tlsrpt_rua: {rua:?} does not make a valid TLS-RPT record of at most \
                     {MAX_TLSRPT_RUA} bytes of rua (e.g. mailto:tlsrpt@provider.example)"
                )));
            }
        }
        let bare = |z: &str| z.trim_end_matches('.').to_ascii_lowercase();
        if let (Some(h), Some(d)) = (&self.hosting.zone, &self.dns_update.zone)
            && bare(h) != bare(d)
        {
            return Err(ConfigError::Invalid(format!(
                "hosting.zone ({h}) and dns_update.zone ({d}) differ: owners would be told to \
                 point their CNAMEs into one zone while the records are published in the other; \
                 set one of them (dns_update.zone is used for both when hosting.zone is unset)"
            )));
        }
        if self.acme.enabled() {
            let h = &self.hosting;
            if h.public_addresses.is_empty() && h.cname_target.is_none() {
                return Err(ConfigError::Invalid(
                    "acme: names are checked to point at this server before ordering: set \
                     hosting.public_addresses (--public-address) or hosting.cname_target \
                     (--cname-target)"
                        .into(),
                ));
            }
            let kinds = self.acme.challenge_kinds();
            // Without port 80, HTTP-01 is dropped from the list (daemon); something must remain.
            if self.http.is_none()
                && kinds
                    .iter()
                    .all(|k| *k == mtasts_store::ChallengeKind::Http01)
            {
                return Err(ConfigError::Invalid(
                    "acme.challenges: http-01 needs the port-80 listener (http = \"none\")".into(),
                ));
            }
        }
        Ok(())
    }
}

/// An override's value: TOML when it parses as a value, else the text as a string.
pub fn override_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return Err(ConfigError::Invalid(format!(
            "{key:?} is not an option name"
        )));
    }
    let (last, path) = parts.split_last().unwrap_or((&"", &[]));
    let mut t = table;
    for p in path {
        let next = t
            .entry((*p).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = next
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid(format!("{key}: {p} is not a table")))?;
    }
    t.insert((*last).to_owned(), value);
    Ok(())
}

/// The longest `hosting.tlsrpt_rua`: the TXT record made of it stays well under what the store
/// records of a published value (2,048 bytes) and one DNS update carries.
pub const MAX_TLSRPT_RUA: usize = 1024;

/// The most admin connections a configuration may allow (far beyond what an admin listener
/// needs; a larger number is a typo, and one past the semaphore's limit would abort the start).
pub const MAX_ADMIN_CONNECTIONS: usize = 1 << 20;

/// A listener address, or `"none"` (or `""`) for no listener.
fn optional_addr<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let v = String::deserialize(d)?;
    match v.trim() {
        "" | "none" => Ok(None),
        a => a
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{a:?} is not IP:PORT or \"none\""))),
    }
}

/// A duration given in seconds (an integer or a decimal), as every time in the file is.
pub(crate) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = f64::deserialize(d)?;
    Duration::try_from_secs_f64(v)
        .map_err(|_| serde::de::Error::custom(format!("{v} is not a number of seconds")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_in_dist_is_valid() {
        let c = ServeConfig::from_toml(include_str!("../../../dist/serve.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.smtp, crate::smtp_intake::SmtpConfig::default());
        assert_eq!(c.intake, crate::report_sink::IntakeConfig::default());
    }

    #[test]
    fn an_empty_file_gives_every_default() {
        let c = ServeConfig::from_toml("").unwrap();
        assert_eq!(c.store.url, DEFAULT_STORE);
        assert_eq!(c.https.port(), 443);
        assert_eq!(c.http.map(|a| a.port()), Some(80));
        assert!(c.admin.ip().is_loopback());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.reload_poll, Duration::from_secs(2));
    }

    #[test]
    fn every_table_reuses_its_struct_with_times_in_seconds() {
        let c = ServeConfig::from_toml(
            r#"https = "127.0.0.1:4443"
admin = "127.0.0.1:9000"
reload_poll = 0.5
[store]
url = "postgres://u@127.0.0.1/x"
key = "0707070707070707070707070707070707070707070707070707070707070707"
[limits]
idle_timeout = 7
max_headers = 10
[admin_limits]
request_timeout = 3
"#,
        )
        .unwrap();
        assert_eq!(c.https.port(), 4443);
        assert_eq!(c.reload_poll, Duration::from_millis(500));
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(7));
        assert_eq!(c.limits.max_headers, 10);
        assert_eq!(
            c.limits.handshake_timeout,
            Limits::default().handshake_timeout
        );
        assert_eq!(c.admin_limits.request_timeout, Duration::from_secs(3));
        assert!(c.store.options().unwrap().key.is_some());
    }

    #[test]
    fn overrides_win_over_the_file_and_are_checked_like_it() {
        let file = "https = \"127.0.0.1:4443\"\n[limits]\nidle_timeout = 7\n";
        let o = |k: &str, v: &str| (k.to_owned(), override_value(v));
        let c = ServeConfig::layered(
            Some(file),
            &[
                o("limits.idle_timeout", "9"),
                o("https", "127.0.0.1:5443"),
                o("check.nameservers", "[\"127.0.0.53\"]"),
                o("store.url", "sqlite:/tmp/x.db"),
            ],
        )
        .unwrap();
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(9));
        assert_eq!(c.https.port(), 5443);
        assert_eq!(c.check.nameservers, ["127.0.0.53"]);
        assert_eq!(c.store.url, "sqlite:/tmp/x.db");
        let off = ServeConfig::layered(None, &[o("http", "none")]).unwrap();
        assert_eq!(off.http, None);
        for bad in ["limits.idel_timeout", "nope", "https.port", "a..b", ""] {
            assert!(ServeConfig::layered(None, &[o(bad, "1")]).is_err(), "{bad}");
        }
        assert!(ServeConfig::layered(None, &[o("limits.idle_timeout", "soon")]).is_err());
    }

    #[test]
    fn unknown_keys_bad_keys_and_plain_admin_off_loopback_are_refused() {
        assert!(ServeConfig::from_toml("htps = \"127.0.0.1:1\"").is_err());
        assert!(ServeConfig::from_toml("[limits]\nidle = 3").is_err());
        assert!(ServeConfig::from_toml("[store]\nkey = \"abc\"").is_err());
        assert!(ServeConfig::from_toml("[limits]\nidle_timeout = -1").is_err());
        let e = ServeConfig::from_toml("admin = \"192.0.2.1:8443\"").unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn admin_limits_that_would_disable_or_crash_the_admin_listener_are_refused() {
        for bad in [
            "[admin_limits]\nmax_connections = 0",
            "[admin_limits]\nmax_connections = 99999999999",
            "[admin_limits]\nrequest_timeout = 0",
            "[admin_limits]\nheader_timeout = 0",
            "[admin_limits]\nmax_body_bytes = 0",
            "[admin_limits]\nmax_connections_per_ip = 0",
        ] {
            let e = ServeConfig::from_toml(bad).unwrap_err();
            assert!(e.to_string().contains("admin_limits"), "{bad}: {e}");
        }
        assert!(ServeConfig::from_toml("[admin_limits]\nmax_connections = 1").is_ok());
    }

    #[test]
    fn acme_and_dns_update_settings_that_cannot_work_are_refused() {
        let acme = "[acme]\ndirectory = \"https://ca.test/dir\"\n";
        let ours = "[hosting]\npublic_addresses = [\"192.0.2.1\"]\n";
        // Nothing to check names against.
        let e = ServeConfig::from_toml(acme).unwrap_err();
        assert!(e.to_string().contains("public_addresses"), "{e}");
        assert!(ServeConfig::from_toml(&format!("{acme}{ours}")).is_ok());
        // No port 80: HTTP-01 alone cannot work; with TLS-ALPN-01 beside it, it is dropped.
        let only = format!("http = \"none\"\n{acme}challenges = [\"http-01\"]\n{ours}");
        let e = ServeConfig::from_toml(&only).unwrap_err();
        assert!(e.to_string().contains("port-80"), "{e}");
        let both = format!("http = \"none\"\n{acme}{ours}");
        assert!(ServeConfig::from_toml(&both).is_ok());
        // Records shown in one zone, published in another.
        let zones = |h: &str, d: &str| {
            format!(
                "[hosting]\nzone = \"{h}\"\n[dns_update]\nzone = \"{d}\"\n\
                 server = \"127.0.0.1:53\"\nkey_name = \"k\"\nkey_secret = \"c2VjcmV0\"\n"
            )
        };
        let rua = |r: &str| format!("[hosting]\ntlsrpt_rua = \"{r}\"\n");
        assert!(ServeConfig::from_toml(&rua("mailto:tlsrpt@provider.test")).is_ok());
        for bad in [
            "tlsrpt@provider.test",
            "ftp://reports.provider.test",
            &format!("mailto:{}@p.test", "a".repeat(1100)),
        ] {
            let e = ServeConfig::from_toml(&rua(bad)).unwrap_err();
            assert!(e.to_string().contains("tlsrpt_rua"), "{bad}: {e}");
        }
        let e = ServeConfig::from_toml(&zones("a.test", "b.test")).unwrap_err();
        assert!(e.to_string().contains("differ"), "{e}");
        assert!(ServeConfig::from_toml(&zones("A.test.", "a.test")).is_ok());
    }
}
