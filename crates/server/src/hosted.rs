//! What is served: a snapshot of every hosted domain, replaced as a whole.
//!
//! A [`Hosted`] snapshot maps `mta-sts.<domain>` to the pre-rendered policy body (canonical CRLF
//! text, rendered once when the snapshot is built) and the certificate for that name. The
//! listeners read the current snapshot through a [`HostedSet`] (an `ArcSwap`): a lookup is one
//! atomic load and one hash probe, and a new snapshot replaces the old one without stopping
//! anything. Connections that started on the old snapshot keep working; every request looks the
//! name up again, so a changed policy is served from the next request on, and a removed domain
//! answers 404 on connections already open.
//!
//! The store builds a `Vec<HostedDomain>` from its rows and calls [`HostedSet::replace`]; when
//! the store is unreachable nothing is replaced and the last snapshot keeps being served.

use arc_swap::ArcSwap;
use bytes::Bytes;
use mtasts_core::policy::Policy;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::sync::Arc;

/// The label in front of a hosted domain: policies live at `mta-sts.<domain>` (RFC 8461 §3.3).
pub const POLICY_HOST_PREFIX: &str = "mta-sts.";

/// One hosted domain, as the store hands it over: plain values.
#[derive(Debug, Clone)]
pub struct HostedDomain {
    /// The policy domain (`example.com`, not `mta-sts.example.com`); case and a trailing dot do
    /// not matter.
    pub domain: String,
    /// The policy served; it is rendered in canonical form ([`Policy::render`]).
    pub policy: Policy,
    /// The certificate chain and key for `mta-sts.<domain>`.
    pub cert: Arc<CertifiedKey>,
}

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The chain is empty.
    #[error("the certificate chain is empty")]
    EmptyChain,
    /// The key is not one rustls (ring) can sign with, or does not match the certificate.
    #[error("the private key cannot be used with this certificate: {0}")]
    Key(#[from] rustls::Error),
}

impl HostedDomain {
    /// A hosted domain from a DER chain (end entity first) and its private key. The key is
    /// checked against the certificate.
    pub fn new(
        domain: &str,
        policy: Policy,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, CertError> {
        Ok(Self {
            domain: domain.to_owned(),
            policy,
            cert: certified_key(chain, key)?,
        })
    }
}

/// A rustls [`CertifiedKey`] from a DER chain and key, with the ring provider, the key checked
/// against the end-entity certificate.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, CertError> {
    if chain.is_empty() {
        return Err(CertError::EmptyChain);
    }
    let provider: &CryptoProvider = &rustls::crypto::ring::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(chain, key, provider)?))
}

/// What is served for one `mta-sts.<domain>` name, or for a service host (the intake's own
/// host, the SMTP receiver's name), which has a certificate and no policy.
#[derive(Debug)]
pub struct Entry {
    /// The canonical policy text, CRLF line ends, as served; `None` for a service host (its
    /// policy path answers 404).
    pub body: Option<Bytes>,
    /// The certificate sent for this name.
    pub cert: Arc<CertifiedKey>,
}

/// An immutable snapshot of every hosted domain, keyed by `mta-sts.<domain>` in lower case.
#[derive(Debug, Default)]
pub struct Hosted {
    by_host: HashMap<Box<str>, Entry>,
    domains: usize,
}

impl Hosted {
    /// Builds a snapshot, rendering every policy once. When a domain appears twice the last one
    /// wins (the store has one row per domain; this keeps a bad feed from failing the whole
    /// snapshot).
    pub fn build(domains: impl IntoIterator<Item = HostedDomain>) -> Self {
        let domains = domains.into_iter();
        let mut by_host = HashMap::with_capacity(domains.size_hint().0);
        for d in domains {
            let name = d.domain.trim_end_matches('.').to_ascii_lowercase();
            let host = format!("{POLICY_HOST_PREFIX}{name}").into_boxed_str();
            let entry = Entry {
                body: Some(Bytes::from(d.policy.render())),
                cert: d.cert,
            };
            by_host.insert(host, entry);
        }
        by_host.shrink_to_fit();
        let domains = by_host.len();
        Self { by_host, domains }
    }

    /// The same with service hosts added: each name served with its certificate and no policy.
    /// A name that is also a hosted domain's policy host stays the domain's.
    #[must_use]
    pub fn with_hosts(
        mut self,
        hosts: impl IntoIterator<Item = (String, Arc<CertifiedKey>)>,
    ) -> Self {
        for (name, cert) in hosts {
            let name = name
                .trim_end_matches('.')
                .to_ascii_lowercase()
                .into_boxed_str();
            self.by_host
                .entry(name)
                .or_insert(Entry { body: None, cert });
        }
        self
    }

    /// The entry for a policy host name (`mta-sts.example.com`), any case, a trailing dot
    /// ignored.
    pub fn get(&self, host: &str) -> Option<&Entry> {
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(host.to_ascii_lowercase().as_str())
        } else {
            self.by_host.get(host)
        }
    }

    /// Whether `domain` (a policy domain in lower case, without a trailing dot) is hosted in
    /// this snapshot (a service host of the same name does not count).
    pub fn hosts_domain(&self, domain: &str) -> bool {
        self.by_host
            .get(format!("{POLICY_HOST_PREFIX}{domain}").as_str())
            .is_some_and(|e| e.body.is_some())
    }

    /// How many domains are hosted (service hosts not counted).
    pub fn len(&self) -> usize {
        self.domains
    }

    /// No domain is hosted.
    pub fn is_empty(&self) -> bool {
        self.domains == 0
    }
}

/// The current snapshot, shared by the listeners and whoever feeds it (the store). Cheap to
/// clone: every clone sees the same snapshot.
#[derive(Debug, Clone, Default)]
pub struct HostedSet(Arc<ArcSwap<Hosted>>);

impl HostedSet {
    /// A set serving `hosted`.
    pub fn new(hosted: Hosted) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(hosted)))
    }

    /// Replaces the snapshot as a whole; the next request and the next handshake see it.
    pub fn replace(&self, hosted: Hosted) {
        self.0.store(Arc::new(hosted));
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Hosted> {
        self.0.load_full()
    }

    /// The current snapshot without touching the reference count (for one lookup).
    pub(crate) fn guard(&self) -> arc_swap::Guard<Arc<Hosted>> {
        self.0.load()
    }
}
