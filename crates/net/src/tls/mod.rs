//! TLS client handshakes that observe instead of enforce: the certificate chain, its verdict,
//! the protocol version and the cipher suite.
//!
//! [`tls_connect`] runs a handshake over any stream (plain TCP for the HTTPS policy fetch, the
//! stream after `220` to STARTTLS for the SMTP probe) through a [`RecordingVerifier`], so a bad
//! certificate is a [`CertVerdict`] in the [`TlsObservation`], while a handshake that cannot
//! complete (no common protocol version, the peer closes, a timeout) is a [`TlsError`].
//!
//! Name checks follow RFC 9525 as rustls/webpki implement them, which is what RFC 8461 wants
//! (DECISIONS D21): SAN DNS-IDs only, `*` only as the whole left-most label matching exactly
//! one label, no fallback to the subject CN.

mod cert;
mod verifier;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::time_provider::TimeProvider;
use rustls::{AlertDescription, ClientConfig, PeerIncompatible, ProtocolVersion, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use cert::{CertInfo, PresentedCert, days_left};
pub use verifier::{
    CertVerdict, CertVerification, REASON_NOT_YET_VALID, Recorded, RecordingVerifier,
};

/// How to run a probe handshake: trusted roots, crypto provider (ring), clock and ALPN.
#[derive(Debug, Clone)]
pub struct TlsProbeConfig {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    now: Option<UnixTime>,
    alpn: Vec<Vec<u8>>,
}

impl Default for TlsProbeConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsProbeConfig {
    /// Trusts the Mozilla root set (webpki-roots), so a verdict does not depend on the host;
    /// uses the ring provider and the system clock.
    pub fn new() -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::with_roots(roots)
    }

    /// Trusts exactly `roots` (nothing from webpki-roots).
    pub fn with_roots(roots: RootCertStore) -> Self {
        Self {
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            now: None,
            alpn: Vec::new(),
        }
    }

    /// Also trusts every certificate in `pem` (what `--ca-file` reads). Returns how many were
    /// added; a file with no certificate, or one rustls cannot use as a trust anchor, is an error.
    pub fn add_pem_roots(&mut self, pem: &[u8]) -> Result<usize, RootsError> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RootsError::Pem(e.to_string()))?;
        if certs.is_empty() {
            return Err(RootsError::NoCertificates);
        }
        let n = certs.len();
        for cert in certs {
            self.add_root(cert)?;
        }
        Ok(n)
    }

    /// Also trusts `cert` (DER).
    pub fn add_root(&mut self, cert: CertificateDer<'_>) -> Result<(), RootsError> {
        Arc::make_mut(&mut self.roots)
            .add(cert)
            .map_err(|e| RootsError::Unusable(e.to_string()))
    }

    /// Checks certificates against `now` instead of the system clock (tests, replays). The
    /// same time is used for [`TlsObservation::days_left`].
    pub fn with_now(mut self, now: OffsetDateTime) -> Self {
        let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
        self.now = Some(UnixTime::since_unix_epoch(Duration::from_secs(secs)));
        self
    }

    /// Offers these ALPN protocols (e.g. `b"http/1.1"` for the policy fetch).
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self
    }

    /// The trusted roots.
    pub fn roots(&self) -> &RootCertStore {
        &self.roots
    }

    /// A fresh client configuration whose verifier is `verifier`: TLS 1.3 and 1.2, no
    /// resumption (a resumed session would skip the certificate check).
    fn client_config(&self, verifier: Arc<RecordingVerifier>) -> Result<ClientConfig, TlsError> {
        let provider = Arc::clone(&self.provider);
        let builder = match self.now {
            Some(t) => ClientConfig::builder_with_details(provider, Arc::new(FixedTime(t))),
            None => ClientConfig::builder_with_provider(provider),
        };
        let mut config = builder
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols.clone_from(&self.alpn);
        config.resumption = Resumption::disabled();
        Ok(config)
    }
}

/// A clock stuck at one instant.
#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

/// Why extra trust anchors were refused.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// The PEM text is malformed.
    #[error("bad PEM: {0}")]
    Pem(String),
    /// The PEM text holds no `CERTIFICATE` block.
    #[error("no certificate found in the PEM data")]
    NoCertificates,
    /// rustls cannot turn the certificate into a trust anchor.
    #[error("unusable trust anchor: {0}")]
    Unusable(String),
}

/// Why a handshake did not complete. Certificate problems are never here: they are a
/// [`CertVerdict`] in a completed [`TlsObservation`].
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The expected name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// The client configuration could not be built.
    #[error("TLS client configuration: {0}")]
    Config(rustls::Error),
    /// The handshake did not finish within the budget.
    #[error("TLS handshake timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The peer closed the connection before the handshake finished.
    #[error("the server closed the connection during the TLS handshake")]
    Closed,
    /// The TLS protocol failed: an alert from the server, no common version or cipher suite,
    /// garbage instead of TLS, a bad handshake signature.
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// A socket error (e.g. connection reset).
    #[error("I/O error during the TLS handshake: {0}")]
    Io(io::Error),
    /// The handshake finished but the verifier saw no certificate (should not happen).
    #[error("TLS handshake completed without a server certificate")]
    NoCertificate,
}

impl TlsError {
    /// Whether the failure means the server offers no protocol version we speak (TLS 1.2 or
    /// 1.3): it sent a `protocol_version` alert, or its ServerHello chose an older version
    /// (rustls: `PeerIncompatible::ServerDoesNotSupportTls12Or13`, e.g. TLS 1.0 or 1.1).
    pub fn is_protocol_version(&self) -> bool {
        matches!(
            self,
            Self::Handshake(
                rustls::Error::AlertReceived(AlertDescription::ProtocolVersion)
                    | rustls::Error::PeerIncompatible(
                        PeerIncompatible::ServerDoesNotSupportTls12Or13
                            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                            | PeerIncompatible::SupportedVersionsExtensionRequired
                    )
            )
        )
    }

    fn from_io(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return Self::Closed;
        }
        // tokio-rustls wraps protocol errors as `io::Error::new(InvalidData, rustls::Error)`.
        match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(r) => Self::Handshake(r.clone()),
            None => Self::Io(e),
        }
    }
}

/// What a completed handshake showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsObservation {
    /// The name the certificate was checked against (also sent as SNI when it is a DNS name).
    pub server_name: String,
    /// The negotiated protocol version.
    pub protocol_version: ProtocolVersion,
    /// The negotiated cipher suite, IANA-style name as rustls spells it
    /// (e.g. `TLS13_AES_256_GCM_SHA384`, `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384`).
    pub cipher_suite: String,
    /// The ALPN protocol the server chose, if any.
    pub alpn: Option<Vec<u8>>,
    /// The certificates the server sent, end entity first.
    pub chain: Vec<PresentedCert>,
    /// The chain and name checks.
    pub verification: CertVerification,
    /// The verdict a sender would report: [`CertVerification::verdict`].
    pub verdict: CertVerdict,
    /// Whole days until the end entity expires, against
    /// [`CertVerification::checked_at`]; `None` if the end entity could not be parsed.
    pub days_left: Option<i64>,
}

impl TlsObservation {
    /// `"TLSv1.3"`, `"TLSv1.2"`, … for display.
    pub fn protocol_name(&self) -> String {
        protocol_name(self.protocol_version)
    }

    /// The end entity's parsed details, if it parsed.
    pub fn leaf(&self) -> Option<&CertInfo> {
        self.chain.first().and_then(|c| c.details.as_ref().ok())
    }
}

/// `"TLSv1.3"`, `"TLSv1.2"`, … (or rustls' debug form for anything else).
pub fn protocol_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        ProtocolVersion::TLSv1_1 => "TLSv1.1".into(),
        ProtocolVersion::TLSv1_0 => "TLSv1.0".into(),
        ProtocolVersion::SSLv3 => "SSLv3".into(),
        other => format!("{other:?}"),
    }
}

/// Runs a TLS handshake on `stream` expecting `server_name`, within `timeout`, and returns the
/// TLS stream (for the HTTP request that follows) with what the handshake showed.
pub async fn tls_connect<S>(
    stream: S,
    server_name: &str,
    config: &TlsProbeConfig,
    timeout: Duration,
) -> Result<(TlsStream<S>, TlsObservation), TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()))?;
    let verifier = Arc::new(RecordingVerifier::new(
        Arc::clone(&config.roots),
        Arc::clone(&config.provider),
    ));
    let client = config.client_config(Arc::clone(&verifier))?;
    let connect = TlsConnector::from(Arc::new(client)).connect(name, stream);
    let tls = match tokio::time::timeout(timeout, connect).await {
        Err(_) => return Err(TlsError::Timeout(timeout)),
        Ok(Err(e)) => return Err(TlsError::from_io(e)),
        Ok(Ok(tls)) => tls,
    };
    let record = verifier.take().ok_or(TlsError::NoCertificate)?;
    let conn = tls.get_ref().1;
    let chain: Vec<PresentedCert> = record.chain.into_iter().map(PresentedCert::new).collect();
    let verification = record.verification;
    let days_left = chain
        .first()
        .and_then(|c| c.details.as_ref().ok())
        .map(|leaf| leaf.days_left(verification.checked_at));
    let observation = TlsObservation {
        server_name: server_name.to_owned(),
        protocol_version: conn.protocol_version().ok_or(TlsError::NoCertificate)?,
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| {
                let s = s.suite();
                s.as_str().map_or_else(|| format!("{s:?}"), str::to_owned)
            })
            .unwrap_or_default(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        verdict: verification.verdict().clone(),
        chain,
        verification,
        days_left,
    };
    Ok((tls, observation))
}

/// [`tls_connect`] for when only the observation matters; the connection is dropped.
pub async fn tls_handshake<S>(
    stream: S,
    server_name: &str,
    config: &TlsProbeConfig,
    timeout: Duration,
) -> Result<TlsObservation, TlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tls_connect(stream, server_name, config, timeout)
        .await
        .map(|(_, o)| o)
}
