//! The `[smtp]` table: the SMTP receiver for `rua=mailto:` reports
//! ([`mtasts_intake::smtp`]), started by the daemon beside the policy listener when `listen` is
//! set (decisions D51).
//!
//! `STARTTLS` uses the certificates the policy listener serves: the one whose name the client
//! sends in SNI when it is a hosted policy host, otherwise the one of `hostname` when that is a
//! hosted policy host (`mta-sts.<domain>`, or an intake host), otherwise the handshake fails
//! and the sender goes on in the clear or retries (report mail is opportunistic TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtasts_intake::smtp::SmtpLimits;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use crate::config::secs;
use crate::hosted::HostedSet;

/// The `[smtp]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// The address to listen on (`IP:PORT`); absent: no SMTP receiver.
    pub listen: Option<SocketAddr>,
    /// The name in the greeting and the `EHLO` answer, and the certificate offered when the
    /// client's SNI names no hosted host. Default `localhost`.
    pub hostname: String,
    /// The largest mail, in bytes. Default 10 MiB.
    pub max_message: usize,
    /// Recipients per mail. Default 50.
    pub max_recipients: usize,
    /// Mails per connection. Default 100.
    pub max_messages: usize,
    /// Commands per connection. Default 1,000.
    pub max_commands: usize,
    /// Bad commands per connection before it is closed. Default 10.
    pub max_errors: usize,
    /// Connections at once; more are told `421` and closed. Default 64.
    pub max_connections: usize,
    /// Connections at once from one address (IPv6 by /64). Default 8.
    pub max_connections_per_ip: usize,
    /// Seconds to send one command. Default 300.
    #[serde(deserialize_with = "secs")]
    pub command_timeout: Duration,
    /// Seconds to send a whole mail after `DATA`. Default 600.
    #[serde(deserialize_with = "secs")]
    pub data_timeout: Duration,
    /// Seconds for a whole connection. Default 1,800.
    #[serde(deserialize_with = "secs")]
    pub session_timeout: Duration,
    /// Check each mail's DKIM signature and record the verdict. Default true.
    pub verify_dkim: bool,
    /// Refuse (`550 5.7.20`) mail without a passing DKIM signature. Default false: kept, with
    /// its verdict recorded (RFC 8460 §3 allows either).
    pub require_dkim: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        let l = SmtpLimits::default();
        Self {
            listen: None,
            hostname: l.hostname,
            max_message: l.max_message,
            max_recipients: l.max_recipients,
            max_messages: l.max_messages,
            max_commands: l.max_commands,
            max_errors: l.max_errors,
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            command_timeout: l.command_timeout,
            data_timeout: l.data_timeout,
            session_timeout: l.session_timeout,
            verify_dkim: true,
            require_dkim: l.require_dkim,
        }
    }
}

impl SmtpConfig {
    /// Checks what serde cannot.
    ///
    /// # Errors
    /// A description of the first bad value.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("smtp.max_message", self.max_message),
            ("smtp.max_recipients", self.max_recipients),
            ("smtp.max_messages", self.max_messages),
            ("smtp.max_commands", self.max_commands),
            ("smtp.max_connections", self.max_connections),
            ("smtp.max_connections_per_ip", self.max_connections_per_ip),
        ];
        for (key, n) in counts {
            if n == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        for (key, t) in [
            ("smtp.command_timeout", self.command_timeout),
            ("smtp.data_timeout", self.data_timeout),
            ("smtp.session_timeout", self.session_timeout),
        ] {
            if t.is_zero() {
                return Err(format!("{key} must be more than 0 seconds"));
            }
        }
        if self.max_message > mtasts_core::report::MAX_INPUT_SIZE {
            return Err(format!(
                "smtp.max_message: at most {} bytes (the report reader's input limit)",
                mtasts_core::report::MAX_INPUT_SIZE
            ));
        }
        if self.require_dkim && !self.verify_dkim {
            return Err("smtp.require_dkim needs smtp.verify_dkim".into());
        }
        if self.hostname.is_empty()
            || self.hostname.len() > 253
            || self.hostname.ends_with('.')
            || !self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(format!(
                "smtp.hostname {:?} is not a host name",
                self.hostname
            ));
        }
        Ok(())
    }

    /// The receiver's limits.
    pub fn limits(&self) -> SmtpLimits {
        SmtpLimits {
            hostname: self.hostname.clone(),
            max_message: self.max_message,
            max_recipients: self.max_recipients,
            max_messages: self.max_messages,
            max_commands: self.max_commands,
            max_errors: self.max_errors,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            command_timeout: self.command_timeout,
            data_timeout: self.data_timeout,
            session_timeout: self.session_timeout,
            require_dkim: self.require_dkim,
        }
    }
}

/// The certificate for `STARTTLS`: by SNI among the hosted hosts, else `hostname`'s.
#[derive(Debug)]
struct SmtpCerts {
    hosted: HostedSet,
    hostname: String,
}

impl ResolvesServerCert for SmtpCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let hosted = self.hosted.guard();
        hello
            .server_name()
            .and_then(|n| hosted.get(n))
            .or_else(|| hosted.get(&self.hostname))
            .map(|e| Arc::clone(&e.cert))
    }
}

/// Whether `hostname` has a certificate to offer now (a client without SNI gets it).
pub fn tls_ready(hosted: HostedSet, hostname: &str) -> mtasts_intake::smtp::TlsReady {
    let hostname = hostname.to_ascii_lowercase();
    Arc::new(move || hosted.guard().get(&hostname).is_some())
}

/// The TLS configuration of `STARTTLS`: TLS 1.3 and 1.2 with ring, certificates as
/// `SmtpCerts` chooses (SNI, else the hostname), no ALPN.
pub fn tls_config(hosted: HostedSet, hostname: &str) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.3 and 1.2")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SmtpCerts {
            hosted,
            hostname: hostname.to_ascii_lowercase(),
        }));
    Arc::new(config)
}
