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
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ServerConfig};
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
    let mut provider = rustls::crypto::ring::default_provider();
    // AES-128-GCM with SHA-256 first, whatever the client's order: SHA-256 runs on the CPU's
    // SHA extensions where SHA-384 does not, and every handshake hashes its transcript and
    // derives its keys with the suite's hash (BENCHMARKS.md, "TLS-RPT reports by HTTPS").
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.3 and 1.2")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(hosted)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.send_tls13_tickets = 0;
    config.ignore_client_order = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosted::{Hosted, HostedDomain};
    use mtasts_testnet::pki::{Defect, Pki, handshake_in_memory};
    use rustls::ClientConfig;

    #[test]
    fn aes_128_gcm_with_sha_256_is_chosen_over_a_client_preferring_aes_256() {
        let pki = Pki::new().unwrap();
        let cert = pki.issue("mta-sts.a.test", Defect::Valid).unwrap();
        let policy = mtasts_core::policy::parse_policy(
            b"version: STSv1\r\nmode: testing\r\nmx: mx.a.test\r\nmax_age: 86400\r\n",
        )
        .policy
        .unwrap();
        let domain = HostedDomain::new("a.test", policy, cert.chain, cert.key).unwrap();
        let server = server_config(HostedSet::new(Hosted::build([domain])));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        assert_eq!(
            provider.cipher_suites[0].suite(),
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            "the client here prefers AES-256 with SHA-384, as rustls's does by default"
        );
        for (version, expected) in [
            (
                &rustls::version::TLS13,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
            ),
            (
                &rustls::version::TLS12,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ),
        ] {
            let client = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(pki.root_store())
                .with_no_client_auth();
            let (_, s) =
                handshake_in_memory(Arc::new(client), Arc::clone(&server), "mta-sts.a.test");
            assert_eq!(s.negotiated_cipher_suite().unwrap().suite(), expected);
        }
    }
}
