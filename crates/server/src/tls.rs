//! TLS for the policy listener: the certificate chosen by SNI from the current snapshot, TLS 1.2
//! and 1.3 only, ALPN `h2` and `http/1.1`, ring as the only provider.
//!
//! An unknown name, an IP literal and a ClientHello without SNI all end the same way: the
//! resolver finds nothing and rustls sends a fatal `access_denied` alert. Nothing in the answer
//! depends on which domains are hosted.
//!
//! The handshake goes through `tokio_rustls::LazyConfigAcceptor`, so the ClientHello (its ALPN
//! list) is seen before a configuration is chosen: [`TlsHook`] lets the ACME work answer
//! `acme-tls/1` handshakes (TLS-ALPN-01) with a configuration of its own.

use crate::hosted::HostedSet;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The ALPN protocols offered, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Chooses the certificate by SNI from the current [`HostedSet`] snapshot.
#[derive(Debug)]
pub struct SniResolver {
    hosted: HostedSet,
}

impl SniResolver {
    /// A resolver reading `hosted`.
    pub fn new(hosted: HostedSet) -> Self {
        Self { hosted }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        self.hosted.guard().get(name).map(|e| Arc::clone(&e.cert))
    }
}

/// The server configuration of the policy listener: TLS 1.3 and 1.2 (nothing older exists in
/// rustls), the ring provider, certificates from `hosted` by SNI, ALPN `h2` then `http/1.1`.
///
/// No TLS 1.3 session tickets are sent: senders fetch a policy once per `max_age` and do not
/// resume, so tickets would only cost every handshake two encryptions and a write.
pub fn server_config(hosted: HostedSet) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.3 and 1.2")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(hosted)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// What a [`TlsHook`] answers with: the configuration for the handshake, found asynchronously
/// (another instance may have stored the challenge), or `None` for the policy configuration.
pub type HookFuture = Pin<Box<dyn Future<Output = Option<Arc<ServerConfig>>> + Send>>;

/// A hook that sees every ClientHello before the handshake goes on: returning a configuration
/// makes the handshake use it instead of the policy configuration. The ACME work answers
/// `acme-tls/1` (TLS-ALPN-01, RFC 8737) here ([`crate::acme::Challenges`]); a connection that
/// completes through a hook's configuration is closed after the handshake (a TLS-ALPN-01
/// validator sends no request). The handshake time-out covers the hook's future.
pub trait TlsHook: Send + Sync + 'static {
    /// `None` when the hook has no interest in this ClientHello (decided at once, without
    /// I/O); otherwise the future that finds the configuration.
    fn config_for(&self, hello: &ClientHello<'_>) -> Option<HookFuture>;
}
