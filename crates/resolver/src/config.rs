//! The daemon's configuration: a TOML file, every option also a flag or an environment variable
//! (the CLI overlays those; precedence: flag > environment > file > default).
//!
//! ```toml
//! listen = ["127.0.0.1:8461", "unix:/run/mtasts/resolver.sock"]
//! nameservers = ["127.0.0.1:53"]
//! cache = "/var/lib/mtasts/resolver.sqlite"   # or "memory"
//! metrics = "127.0.0.1:9461"
//! postfix_version = "3.7"
//! on_dns_error = "deliver"                    # or "defer"
//!
//! [zones.postfix]                             # the socketmap name in main.cf
//! postfix_version = "3.10.5"
//! overrides = { "broken-partner.example" = "none" }
//! ```

use crate::engine::{Override, Settings, Zone};
use crate::reply::{OnDnsError, PostfixVersion, ReplySettings};
use mtasts_net::env::{NetOptions, Network};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The socketmap name used when the configuration names none.
pub const DEFAULT_ZONE: &str = "postfix";
/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8461";

/// The longest reply data a tcp_table zone sends, %-encoded: Postfix reads reply lines of up to
/// 4096 bytes, and `200 ` and the LF take 5.
pub const TCP_TABLE_MAX_DATA: usize = crate::proto::tcp_table::MAX_REPLY_LINE - 5;

/// The configuration file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where this configuration came from, so that a reload reads it again the same way (the
    /// file, with the same flags and environment laid over it). Not a file key.
    #[serde(skip)]
    pub source: Option<Source>,
    /// Socketmap listeners: `IP:PORT`, `[IPv6]:PORT` or `unix:PATH`.
    #[serde(default)]
    pub listen: Vec<String>,
    /// tcp_table listeners, `IP:PORT`; each serves the zone [`DEFAULT_ZONE`] unless written
    /// `IP:PORT=ZONE`.
    #[serde(default)]
    pub tcp_table: Vec<String>,
    /// Name servers (`IP` or `IP:PORT`); empty: the system's.
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Extra trust roots (PEM) for policy hosts, beside the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// The cache beyond memory: a SQLite file path, `redis://...` (shared), or `memory`.
    pub cache: Option<String>,
    /// Where `/metrics` is served (`IP:PORT`); none when absent.
    pub metrics: Option<String>,
    /// The Postfix version of zones that do not set their own.
    pub postfix_version: Option<String>,
    /// D16 for zones that do not set their own: `deliver` (default) or `defer`.
    pub on_dns_error: Option<String>,
    /// Seconds allowed for one policy fetch (default 60, D14).
    pub fetch_timeout: Option<u64>,
    /// Seconds a lookup for an uncached domain waits (default 15).
    pub miss_wait: Option<u64>,
    /// Seconds between TXT id checks of a cached policy (default 3600).
    pub refresh_interval: Option<u64>,
    /// Seconds "no policy" is cached (default 3600).
    pub negative_ttl: Option<u64>,
    /// The HTTPS port of policy hosts (443; for test set-ups).
    pub https_port: Option<u16>,
    /// Check DANE for MTA-STS domains (D22; default true): `dane-only` when the MX RRset is
    /// secure and a host has TLSA records or a failed TLSA lookup, `TEMP` when the MX RRset
    /// cannot be validated (see `engine::Dane`).
    pub dane: Option<bool>,
    /// DNSSEC trust anchor file (DNSKEY lines) instead of the IANA root keys (test set-ups).
    pub trust_anchor: Option<PathBuf>,
    /// Threads answering requests (default: the CPUs the process may run on; 1 is
    /// a single-threaded runtime).
    pub threads: Option<usize>,
    /// Per socketmap name settings.
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneConfig>,
    /// The unix socket listeners' permission bits, octal (default 0660: see
    /// [`crate::proto::DEFAULT_UNIX_MODE`]).
    pub socket_mode: Option<String>,
    /// The group the unix socket listeners belong to (a name or a number; default: the
    /// daemon's own group). Postfix's smtp(8) runs as `postfix`, so `postfix` is usual.
    pub socket_group: Option<String>,
}

/// Where a [`Config`] came from: a file (or none) with flags and environment laid over it.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The configuration file.
    pub file: Option<PathBuf>,
    /// Flags and environment, laid over the file (their zones table is not used).
    pub overrides: Box<Config>,
}

/// One socketmap name's settings, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The Postfix version that uses this name.
    pub postfix_version: Option<String>,
    /// Send the TLSRPT attributes (Postfix 3.10+; default true).
    pub tlsrpt: Option<bool>,
    /// The level of non-blocking answers (default `may`).
    pub base_level: Option<String>,
    /// `<level> policy_type=no-policy-found` for domains without a policy (default: off).
    pub no_policy_level: Option<String>,
    /// `deliver` or `defer`.
    pub on_dns_error: Option<String>,
    /// Longest reply in bytes (default 99936 for socketmap; a zone served over tcp_table is held
    /// to [`TCP_TABLE_MAX_DATA`] bytes as %-encoded on the wire, whatever is set here).
    pub max_reply: Option<usize>,
    /// Domain -> `none` (ignore MTA-STS) or `testing` (never block).
    #[serde(default)]
    pub overrides: BTreeMap<String, String>,
}

/// A configuration error, saying which option and why.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {why}")]
pub struct ConfigError {
    what: String,
    why: String,
}

fn bad(what: impl Into<String>, why: impl std::fmt::Display) -> ConfigError {
    ConfigError {
        what: what.into(),
        why: why.to_string(),
    }
}

impl Config {
    /// The file's configuration (none: the defaults) with `overrides` laid over it: every option
    /// `overrides` sets replaces the file's (flag > environment > file > default); with no
    /// socketmap listener anywhere, [`DEFAULT_LISTEN`]. The result remembers both, so that
    /// [`Config::reload`] reads them again the same way.
    pub fn load(file: Option<&Path>, overrides: Self) -> Result<Self, ConfigError> {
        let mut c = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        c.overlay(&overrides);
        if c.listen.is_empty() {
            c.listen.push(DEFAULT_LISTEN.to_owned());
        }
        c.source = Some(Source {
            file: file.map(Path::to_path_buf),
            overrides: Box::new(overrides),
        });
        Ok(c)
    }

    /// Reads the configuration again from where [`Config::load`] read it (a configuration built
    /// otherwise is returned as it is).
    pub fn reload(&self) -> Result<Self, ConfigError> {
        match &self.source {
            Some(source) => Self::load(source.file.as_deref(), (*source.overrides).clone()),
            None => Ok(self.clone()),
        }
    }

    /// Lays every option `o` sets over `self`.
    fn overlay(&mut self, o: &Self) {
        fn list(slot: &mut Vec<String>, v: &[String]) {
            if !v.is_empty() {
                slot.clear();
                slot.extend_from_slice(v);
            }
        }
        fn one<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
            if v.is_some() {
                slot.clone_from(v);
            }
        }
        list(&mut self.listen, &o.listen);
        list(&mut self.tcp_table, &o.tcp_table);
        list(&mut self.nameservers, &o.nameservers);
        one(&mut self.ca_file, &o.ca_file);
        one(&mut self.cache, &o.cache);
        one(&mut self.metrics, &o.metrics);
        one(&mut self.postfix_version, &o.postfix_version);
        one(&mut self.on_dns_error, &o.on_dns_error);
        one(&mut self.fetch_timeout, &o.fetch_timeout);
        one(&mut self.miss_wait, &o.miss_wait);
        one(&mut self.refresh_interval, &o.refresh_interval);
        one(&mut self.negative_ttl, &o.negative_ttl);
        one(&mut self.https_port, &o.https_port);
        one(&mut self.dane, &o.dane);
        one(&mut self.trust_anchor, &o.trust_anchor);
        one(&mut self.threads, &o.threads);
        one(&mut self.socket_mode, &o.socket_mode);
        one(&mut self.socket_group, &o.socket_group);
    }

    /// The network environment's options (the sender's defaults, D14, where none is set).
    pub fn net_options(&self) -> NetOptions {
        let d = NetOptions::sender();
        NetOptions {
            nameservers: self.nameservers.clone(),
            trust_anchor: self.trust_anchor.clone(),
            ca_file: self.ca_file.clone(),
            https_port: self.https_port.unwrap_or(d.https_port),
            fetch_timeout: self
                .fetch_timeout
                .map_or(d.fetch_timeout, Duration::from_secs),
            ..d
        }
    }

    /// The network environment, built (the files read, the values checked: `fetch_timeout = 0`
    /// and the like are refused by [`NetOptions::build`]).
    pub fn network(&self) -> Result<Network, ConfigError> {
        self.net_options().build().map_err(|e| bad(e.what, e.why))
    }

    /// Checks every option that is not checked where it is used: a value that would silently
    /// disable something (a zero time-out or interval, no threads) is refused with the
    /// option's name and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |what: &str, v: Option<u64>, why: &str| match v {
            Some(0) => Err(bad(what, format!("0 {why} (use at least 1)"))),
            _ => Ok(()),
        };
        positive(
            "miss_wait",
            self.miss_wait,
            "would answer every uncached domain as if DNS had failed",
        )?;
        positive(
            "refresh_interval",
            self.refresh_interval,
            "would re-check every cached policy on every sweep",
        )?;
        positive(
            "negative_ttl",
            self.negative_ttl,
            "would ask DNS again on every lookup of a domain without a policy",
        )?;
        if self.threads == Some(0) {
            return Err(bad(
                "threads",
                "threads must be at least 1 (0 would answer nothing)",
            ));
        }
        self.unix_socket()?;
        self.zones()?;
        Ok(())
    }

    /// The unix socket listeners' mode and group.
    pub fn unix_socket(&self) -> Result<crate::proto::UnixSocket, ConfigError> {
        crate::proto::UnixSocket::parse(self.socket_mode.as_deref(), self.socket_group.as_deref())
            .map_err(|why| bad("socket_mode/socket_group", why))
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path.display().to_string(), e))?;
        Self::from_toml(&text).map_err(|e| bad(path.display().to_string(), e))
    }

    /// Reads TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| bad("configuration", e.to_string().trim_end()))
    }

    /// The engine settings.
    pub fn settings(&self) -> Settings {
        let d = Settings::default();
        let secs = |v: Option<u64>, def: Duration| v.map_or(def, Duration::from_secs);
        Settings {
            miss_wait: secs(self.miss_wait, d.miss_wait),
            refresh_interval: secs(self.refresh_interval, d.refresh_interval),
            negative_ttl: secs(self.negative_ttl, d.negative_ttl),
            dane: self.dane.unwrap_or(d.dane),
            ..d
        }
    }

    /// The zones, checked; [`DEFAULT_ZONE`] with the global settings when none is configured.
    pub fn zones(&self) -> Result<HashMap<String, Zone>, ConfigError> {
        let global_version = parse_version("postfix_version", self.postfix_version.as_deref())?;
        let global_dns = parse_on_dns_error("on_dns_error", self.on_dns_error.as_deref())?;
        let mut configured = self.zones.clone();
        if configured.is_empty() {
            configured.insert(DEFAULT_ZONE.to_owned(), ZoneConfig::default());
        }
        let over_tcp: Vec<&str> = self
            .tcp_table
            .iter()
            .map(|spec| spec.split_once('=').map_or(DEFAULT_ZONE, |(_, zone)| zone))
            .collect();
        configured
            .into_iter()
            .map(|(name, z)| {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(bad(format!("zones.{name:?}"), "a socketmap name is one word"));
                }
                let at = |o: &str| format!("zones.{name}.{o}");
                let d = ReplySettings::default();
                let reply = ReplySettings {
                    postfix: match &z.postfix_version {
                        Some(v) => parse_version(&at("postfix_version"), Some(v))?,
                        None => global_version,
                    },
                    tlsrpt: z.tlsrpt.unwrap_or(d.tlsrpt),
                    base_level: check_level(&at("base_level"), z.base_level)?.unwrap_or(d.base_level),
                    no_policy_level: check_level(&at("no_policy_level"), z.no_policy_level)?,
                    on_dns_error: match &z.on_dns_error {
                        Some(v) => parse_on_dns_error(&at("on_dns_error"), Some(v))?,
                        None => global_dns,
                    },
                    max_reply: z.max_reply.unwrap_or(d.max_reply),
                    escaped: false,
                };
                // A zone served over tcp_table must fit Postfix's 4096-byte reply line once
                // %-encoded; its policy_string attributes are dropped first, never the policy.
                let reply = if over_tcp.contains(&name.as_str()) {
                    ReplySettings {
                        max_reply: reply.max_reply.min(TCP_TABLE_MAX_DATA),
                        escaped: true,
                        ..reply
                    }
                } else {
                    reply
                };
                let mut overrides = HashMap::new();
                for (domain, what) in &z.overrides {
                    let key = crate::key::policy_domain(domain)
                        .map_err(|s| bad(at("overrides"), format!("{domain:?} is not a domain ({})", s.as_str())))?;
                    let o = match what.as_str() {
                        "none" => Override::None,
                        "testing" => Override::Testing,
                        other => {
                            return Err(bad(
                                at("overrides"),
                                format!("{domain}: {other:?} is not an override (use \"none\" or \"testing\")"),
                            ));
                        }
                    };
                    overrides.insert(key, o);
                }
                Ok((name, Zone { reply, overrides }))
            })
            .collect()
    }
}

fn parse_version(what: &str, v: Option<&str>) -> Result<PostfixVersion, ConfigError> {
    v.map_or(Ok(PostfixVersion::default()), |v| {
        v.parse().map_err(|e| bad(what, e))
    })
}

fn parse_on_dns_error(what: &str, v: Option<&str>) -> Result<OnDnsError, ConfigError> {
    match v {
        None | Some("deliver") => Ok(OnDnsError::Deliver),
        Some("defer") => Ok(OnDnsError::Defer),
        Some(other) => Err(bad(
            what,
            format!("{other:?}: use \"deliver\" or \"defer\""),
        )),
    }
}

/// The Postfix TLS levels a non-blocking answer may use.
const LEVELS: [&str; 5] = ["none", "may", "encrypt", "dane", "verify"];

fn check_level(what: &str, v: Option<String>) -> Result<Option<String>, ConfigError> {
    match v {
        Some(l) if !LEVELS.contains(&l.as_str()) => Err(bad(
            what,
            format!(
                "{l:?} is not a level for this (use one of {})",
                LEVELS.join(", ")
            ),
        )),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_one_zone() {
        let c = Config::from_toml("").unwrap();
        let zones = c.zones().unwrap();
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[DEFAULT_ZONE].reply.postfix, PostfixVersion::default());
        assert_eq!(c.net_options().fetch_timeout, Duration::from_secs(60));
    }

    #[test]
    fn a_full_file() {
        let c = Config::from_toml(
            r#"
            listen = ["127.0.0.1:8461", "unix:/run/r.sock"]
            postfix_version = "3.9"
            on_dns_error = "defer"
            miss_wait = 5
            [zones.postfix]
            postfix_version = "3.10.5"
            no_policy_level = "may"
            overrides = { "Broken.Example" = "none", "soft.example" = "testing" }
            [zones.old]
            "#,
        )
        .unwrap();
        let z = c.zones().unwrap();
        assert_eq!(z["postfix"].reply.postfix, PostfixVersion::new(3, 10, 5));
        assert_eq!(z["old"].reply.postfix, PostfixVersion::new(3, 9, 0));
        assert_eq!(z["old"].reply.on_dns_error, OnDnsError::Defer);
        assert_eq!(z["postfix"].overrides["broken.example"], Override::None);
        assert_eq!(z["postfix"].overrides["soft.example"], Override::Testing);
        assert_eq!(c.settings().miss_wait, Duration::from_secs(5));
    }

    #[test]
    fn zones_served_over_tcp_table_fit_its_reply_line() {
        let c = Config::from_toml(
            r#"
            tcp_table = ["127.0.0.1:8462=tcp"]
            [zones.tcp]
            [zones.sm]
            max_reply = 50000
            "#,
        )
        .unwrap();
        let zones = c.zones().unwrap();
        assert_eq!(zones["tcp"].reply.max_reply, TCP_TABLE_MAX_DATA);
        assert!(zones["tcp"].reply.escaped);
        assert_eq!(zones["sm"].reply.max_reply, 50000);
        assert!(!zones["sm"].reply.escaped);
        let default = Config::from_toml(r#"tcp_table = ["127.0.0.1:8462"]"#).unwrap();
        assert!(default.zones().unwrap()[DEFAULT_ZONE].reply.escaped);
    }

    #[test]
    fn mistakes_are_named() {
        let err = |t: &str| {
            Config::from_toml(t)
                .and_then(|c| c.zones().map(|_| ()))
                .unwrap_err()
                .to_string()
        };
        assert!(err("lisen = []").contains("lisen"));
        assert!(err("postfix_version = \"three\"").contains("postfix_version"));
        assert!(err("[zones.a]\nbase_level = \"secure\"").contains("zones.a.base_level"));
        assert!(err("[zones.a]\noverrides = { \"x.example\" = \"off\" }").contains("\"off\""));
        assert!(err("[zones.a]\noverrides = { \"1.2.3.4\" = \"none\" }").contains("ip-literal"));
        assert!(err("on_dns_error = \"maybe\"").contains("on_dns_error"));
    }
}
