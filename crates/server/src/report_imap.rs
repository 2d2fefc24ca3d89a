//! The `[imap]` table: `mtasts serve` reads TLS-RPT report mail from an IMAP mailbox (the
//! `rua=mailto:` address) with intake's importer, for the domains hosted here only (D27, D54),
//! until it stops. Off while `server` is empty.
//!
//! ```toml
//! [imap]
//! server = "imap.provider.example:993"   # implicit TLS
//! user = "tlsrpt@provider.example"
//! password_file = "/etc/mtasts/imap.password"
//! # tls_name = "imap.provider.example"   # default: the server's host
//! # ca_file = "/etc/mtasts/imap-ca.pem"  # roots trusted beside the Mozilla ones
//! # folder = "INBOX"
//! # processed_folder = "TLSRPT.processed"
//! # unreadable_folder = "TLSRPT.unreadable"
//! # refused_folder = "TLSRPT.refused"
//! # max_messages = 500                   # per round
//! # max_message_size = 33554432          # bytes; larger mail goes to unreadable unfetched
//! # poll_interval = 300                  # seconds, when the server offers no IDLE
//! # idle = 1500                          # seconds an IDLE lasts before it is re-issued (<= 1740)
//! # timeout = 60                         # seconds of silence while a command waits
//! ```

use std::path::PathBuf;
use std::time::Duration;

use mtasts_intake::imap::{
    DEFAULT_FOLDER, DEFAULT_PROCESSED, DEFAULT_REFUSED, DEFAULT_UNREADABLE, Folders, ImapLimits,
    ImapSettings, Importer, MAX_IDLE, Sorted, parse_server, read_password_file, tls_config,
};
use mtasts_intake::{Accept, Intake};
use mtasts_store::Store;
use serde::Deserialize;

use crate::config::secs;

/// The `[imap]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// `HOST:PORT` of the IMAP server (implicit TLS); `""`: no importer. Default `""`.
    pub server: String,
    /// The name the server's certificate must carry; `""`: the host of `server`.
    pub tls_name: String,
    /// The user.
    pub user: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// PEM roots trusted beside the Mozilla ones.
    pub ca_file: Option<PathBuf>,
    /// The folder read. Default `INBOX`.
    pub folder: String,
    /// Where mail goes once its reports are stored. Default `TLSRPT.processed`.
    pub processed_folder: String,
    /// Where mail without a valid report, or too large, goes. Default `TLSRPT.unreadable`.
    pub unreadable_folder: String,
    /// Where mail whose every report was refused goes. Default `TLSRPT.refused`.
    pub refused_folder: String,
    /// Most messages per round. Default 500.
    pub max_messages: u32,
    /// The largest message fetched, in bytes. Default 32 MiB.
    pub max_message_size: u32,
    /// Seconds between rounds when the server offers no IDLE. Default 300.
    #[serde(deserialize_with = "secs")]
    pub poll_interval: Duration,
    /// Seconds an IDLE lasts before it is re-issued; at most 1740 (29 minutes). Default 1500.
    #[serde(deserialize_with = "secs")]
    pub idle: Duration,
    /// Seconds the server may stay silent while a command waits; a command may take five
    /// times this in all. Default 60.
    #[serde(deserialize_with = "secs")]
    pub timeout: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        let l = ImapLimits::default();
        Self {
            server: String::new(),
            tls_name: String::new(),
            user: String::new(),
            password_file: None,
            ca_file: None,
            folder: DEFAULT_FOLDER.into(),
            processed_folder: DEFAULT_PROCESSED.into(),
            unreadable_folder: DEFAULT_UNREADABLE.into(),
            refused_folder: DEFAULT_REFUSED.into(),
            max_messages: l.max_per_round,
            max_message_size: l.max_message,
            poll_interval: l.poll_interval,
            idle: l.idle,
            timeout: l.read_timeout,
        }
    }
}

impl ImapConfig {
    /// Checks what serde cannot, without reading files.
    ///
    /// # Errors
    /// What is wrong, naming the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.server.is_empty() {
            return Ok(());
        }
        parse_server(&self.server).map_err(|e| format!("imap.server: {e}"))?;
        if self.user.is_empty() || self.password_file.is_none() {
            return Err("imap: user and password_file are required with server".into());
        }
        self.folders().check().map_err(|e| format!("imap: {e}"))?;
        if self.max_messages == 0 || self.max_message_size == 0 {
            return Err("imap.max_messages and max_message_size must be at least 1".into());
        }
        if self.poll_interval.is_zero() || self.timeout.is_zero() || self.idle.is_zero() {
            return Err("imap.poll_interval, idle and timeout must be more than 0 seconds".into());
        }
        if self.idle > MAX_IDLE {
            return Err(format!(
                "imap.idle: at most {} seconds (RFC 2177: servers may log off a client idle for \
                 30 minutes)",
                MAX_IDLE.as_secs()
            ));
        }
        Ok(())
    }

    fn folders(&self) -> Folders {
        Folders {
            source: self.folder.clone(),
            processed: self.processed_folder.clone(),
            unreadable: self.unreadable_folder.clone(),
            refused: self.refused_folder.clone(),
        }
    }

    /// The importer this table describes, storing into `store` for hosted domains only; `None`
    /// when `server` is empty. Reads the password and CA files.
    ///
    /// # Errors
    /// What is wrong, naming the option.
    pub fn importer(&self, store: &Store) -> Result<Option<Importer>, String> {
        if self.server.is_empty() {
            return Ok(None);
        }
        self.validate()?;
        let (host, port) = parse_server(&self.server).map_err(|e| e.to_string())?;
        let password_file = self
            .password_file
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        let password = read_password_file(password_file).map_err(|e| format!("imap: {e}"))?;
        let extra = match &self.ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| format!("imap.ca_file: cannot read {}: {e}", p.display()))?,
            ),
            None => None,
        };
        let tls = tls_config(extra.as_deref()).map_err(|e| format!("imap.ca_file: {e}"))?;
        let settings = ImapSettings {
            tls_name: if self.tls_name.is_empty() {
                host.clone()
            } else {
                self.tls_name.clone()
            },
            host,
            port,
            user: self.user.clone(),
            password,
            folders: self.folders(),
            tls,
            limits: ImapLimits {
                max_message: self.max_message_size,
                max_per_round: self.max_messages,
                read_timeout: self.timeout,
                command_timeout: self.timeout * 5,
                idle: self.idle,
                poll_interval: self.poll_interval,
                ..ImapLimits::default()
            },
        };
        let intake = Intake::new(store.clone(), Accept::Hosted);
        Importer::new(settings, intake)
            .map(Some)
            .map_err(|e| format!("imap: {e}"))
    }
}

/// Runs `importer` until `stop`, logging each round that took mail and each failure.
pub async fn run(importer: Importer, stop: impl Future<Output = ()>) {
    let s = importer.settings();
    tracing::info!(server = %format!("{}:{}", s.host, s.port), user = %s.user,
        folder = %s.folders.source, "IMAP importer started");
    importer
        .run(stop, |r| match r {
            Ok(round) if round.mails.is_empty() => {}
            Ok(round) => {
                let (stored, duplicates, refused) = round.reports();
                // The HTTPS intake's counters, by `via`: a mail without a valid report is one
                // `invalid`, as a body without one is.
                let invalid = round
                    .mails
                    .iter()
                    .filter(|m| m.sorted == Sorted::Unreadable)
                    .count();
                for (result, n) in [
                    ("stored", stored),
                    ("duplicate", duplicates),
                    ("refused", refused),
                    ("invalid", invalid),
                ] {
                    metrics::counter!("mtasts_intake_reports_total", "via" => "imap", "result" => result)
                        .increment(n as u64);
                }
                tracing::info!(
                    mails = round.mails.len(),
                    processed = round.mails_to(Sorted::Processed),
                    unreadable = round.mails_to(Sorted::Unreadable),
                    refused_mails = round.mails_to(Sorted::Refused),
                    stored,
                    duplicates,
                    refused,
                    left = round.left,
                    "IMAP round"
                );
            }
            Err(e) => tracing::warn!(error = %e, "IMAP importer"),
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_dist_serve_toml_parses_once_uncommented() {
        let dist = include_str!("../../../dist/serve.toml");
        let table: String = dist
            .lines()
            .skip_while(|l| !l.starts_with("# [imap]"))
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(table.contains("refused_folder"), "{table}");
        let c = crate::config::ServeConfig::from_toml(&table).unwrap();
        assert_eq!(c.imap.server, "imap.provider.example:993");
        assert_eq!(c.imap.idle, Duration::from_secs(1500));
        assert_eq!(
            ImapConfig {
                server: String::new(),
                user: String::new(),
                password_file: None,
                ca_file: None,
                ..c.imap
            },
            ImapConfig::default(),
            "dist/serve.toml shows the defaults"
        );
    }

    #[test]
    fn an_empty_table_is_off_and_a_half_filled_one_refused() {
        assert!(ImapConfig::default().validate().is_ok());
        let mut c = ImapConfig {
            server: "imap.example:993".into(),
            ..ImapConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("required"));
        c.user = "u".into();
        c.password_file = Some("/nonexistent".into());
        assert!(c.validate().is_ok());
        c.idle = Duration::from_secs(1800);
        assert!(c.validate().unwrap_err().contains("imap.idle"));
        c.idle = Duration::from_secs(60);
        c.processed_folder = "INBOX".into();
        assert!(c.validate().unwrap_err().contains("taken again"));
        c.processed_folder = DEFAULT_PROCESSED.into();
        c.server = "imap.example".into();
        assert!(c.validate().unwrap_err().contains("imap.server"));
    }
}
