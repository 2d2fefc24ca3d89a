//! A throw-away public key infrastructure for tests, generated with rcgen at run time (no files).
//!
//! [`Pki`] holds a trusted root CA, an intermediate CA signed by it, and a second, untrusted root.
//! [`Pki::issue`] makes a server certificate with a scripted [`Defect`] and hands back everything
//! a loopback TLS server needs: the chain to send, the private key and a ready
//! [`rustls::ServerConfig`] (ring provider).
//!
//! All validity periods are relative to one reference time, [`Pki::now`], which a test can fix
//! with [`Pki::at`] and pass to the client too, so "days left" is exact. Serial numbers are fixed
//! (1, 2, 3 for the CAs, then 1000, 1001, … for leaves in issue order). Keys are ECDSA P-256 and
//! random.
//!
//! ```
//! use mtasts_testnet::pki::{Defect, Pki};
//! let pki = Pki::new().unwrap();
//! let leaf = pki.issue("mta-sts.example.test", Defect::Valid).unwrap();
//! assert_eq!(leaf.chain.len(), 2); // leaf + intermediate
//! assert!(pki.root_pem().starts_with("-----BEGIN CERTIFICATE-----"));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// The name a [`Defect::WrongName`] certificate is issued for.
pub const WRONG_NAME: &str = "wrong-name.example.invalid";

/// What is wrong with an issued server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// Nothing: SAN = the name, chain = leaf + intermediate, valid from 30 days before
    /// [`Pki::now`] to 60 days after.
    Valid,
    /// `not_after` one day before [`Pki::now`].
    Expired,
    /// `not_before` one day after [`Pki::now`].
    NotYetValid,
    /// SAN (and CN) for [`WRONG_NAME`] instead of the requested name.
    WrongName,
    /// A self-signed leaf (SAN = the name); the chain is the leaf alone.
    SelfSigned,
    /// Signed by a second root that is not in the trust store; the chain is leaf + that root.
    UntrustedCa,
    /// A valid leaf, signed by the intermediate, but the server sends only the leaf.
    MissingIntermediate,
    /// The SAN is this pattern (e.g. `*.example.test`) instead of the requested name.
    WildcardSan(String),
    /// No subjectAltName extension; the CN is the requested name.
    NoSan,
    /// Valid now, `not_after` exactly this many days after [`Pki::now`].
    ExpiresInDays(i64),
    /// A self-signed certificate marked as a CA (`basicConstraints CA:TRUE`, as `openssl req
    /// -x509` makes by default), served alone.
    SelfSignedCa,
    /// Issued by the intermediate for TLS clients only (extended key usage `clientAuth`, no
    /// `serverAuth`).
    ClientAuthOnly,
    /// Signed by a certificate that is not a CA (an end-entity certificate issued by the
    /// intermediate); the chain is leaf + that certificate + the intermediate.
    IssuedByEndEntity,
}

/// Errors building the PKI or a server configuration.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the certificate, key or protocol versions.
    #[error("server configuration failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// One CA: its certificate and the issuer (parameters + key) used to sign below it.
struct Ca {
    cert: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A root CA, an intermediate CA and an untrusted root, plus a leaf factory. See the module docs.
pub struct Pki {
    now: OffsetDateTime,
    root: Ca,
    intermediate: Ca,
    untrusted_root: Ca,
    provider: Arc<CryptoProvider>,
    next_serial: AtomicU64,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A server certificate issued by [`Pki::issue`].
#[derive(Debug)]
pub struct IssuedCert {
    /// The certificates the server sends, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The end entity's private key (PKCS#8).
    pub key: PrivateKeyDer<'static>,
    /// A server configuration offering TLS 1.3 and 1.2 with this chain (ring provider).
    pub server_config: Arc<ServerConfig>,
    provider: Arc<CryptoProvider>,
}

impl IssuedCert {
    /// The chain as PEM, end entity first (what an operator imports).
    pub fn chain_pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| pem_encode("CERTIFICATE", c))
            .collect()
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        pem_encode("PRIVATE KEY", self.key.secret_der())
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// A server configuration with this chain that offers only the given protocol versions,
    /// e.g. `&[&rustls::version::TLS12]` for a TLS 1.2-only server.
    pub fn server_config_with_versions(
        &self,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Result<Arc<ServerConfig>, PkiError> {
        server_config(
            &self.provider,
            versions,
            self.chain.clone(),
            self.key.clone_key(),
        )
    }

    /// A server configuration with this chain that offers TLS 1.2 only.
    pub fn server_config_tls12_only(&self) -> Result<Arc<ServerConfig>, PkiError> {
        self.server_config_with_versions(&[&rustls::version::TLS12])
    }
}

impl Pki {
    /// A new PKI whose reference time is the current time (whole seconds).
    pub fn new() -> Result<Self, PkiError> {
        Self::at(OffsetDateTime::now_utc())
    }

    /// A new PKI whose validity periods are relative to `now` (truncated to whole seconds).
    /// The CAs are valid from a year before `now` to ten years after.
    pub fn at(now: OffsetDateTime) -> Result<Self, PkiError> {
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let root = self_signed_ca(now, 1, "mtasts testnet root CA")?;
        let intermediate = {
            let key = KeyPair::generate()?;
            let params = ca_params(now, 2, "mtasts testnet intermediate CA");
            let cert = params.signed_by(&key, &root.issuer)?;
            Ca {
                cert: cert.der().clone(),
                pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        };
        let untrusted_root = self_signed_ca(now, 3, "mtasts testnet untrusted root CA")?;
        Ok(Self {
            now,
            root,
            intermediate,
            untrusted_root,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            next_serial: AtomicU64::new(1000),
        })
    }

    /// The reference time all validity periods are relative to.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// The trusted root certificate (DER).
    pub fn root_cert(&self) -> &CertificateDer<'static> {
        &self.root.cert
    }

    /// The trusted root certificate as PEM, what a client passes as `--ca-file`.
    pub fn root_pem(&self) -> &str {
        &self.root.pem
    }

    /// The intermediate CA certificate (DER), sent by servers after the leaf.
    pub fn intermediate_cert(&self) -> &CertificateDer<'static> {
        &self.intermediate.cert
    }

    /// The second root, which is deliberately not in [`Pki::root_store`].
    pub fn untrusted_root_cert(&self) -> &CertificateDer<'static> {
        &self.untrusted_root.cert
    }

    /// A root store holding only the trusted root.
    pub fn root_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        store
            .add(self.root.cert.clone())
            .expect("rcgen root certificate parses");
        store
    }

    /// Issues a server certificate for `name` (a DNS name) with the given defect, and a server
    /// configuration offering TLS 1.3 and 1.2.
    pub fn issue(&self, name: &str, defect: Defect) -> Result<IssuedCert, PkiError> {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let days = Duration::days;
        let (not_before, not_after) = match defect {
            Defect::Expired => (self.now - days(120), self.now - days(1)),
            Defect::NotYetValid => (self.now + days(1), self.now + days(90)),
            Defect::ExpiresInDays(n) => (self.now - days(30), self.now + days(n)),
            _ => (self.now - days(30), self.now + days(60)),
        };
        let (sans, cn): (Vec<String>, &str) = match &defect {
            Defect::WrongName => (vec![WRONG_NAME.to_owned()], WRONG_NAME),
            Defect::WildcardSan(pattern) => (vec![pattern.clone()], pattern.as_str()),
            Defect::NoSan => (Vec::new(), name),
            _ => (vec![name.to_owned()], name),
        };
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = not_before;
        params.not_after = not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if defect == Defect::ClientAuthOnly {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate()?;
        let chain = match defect {
            Defect::SelfSigned => {
                params.use_authority_key_identifier_extension = false;
                vec![params.self_signed(&key)?.der().clone()]
            }
            Defect::SelfSignedCa => {
                params.use_authority_key_identifier_extension = false;
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages.push(KeyUsagePurpose::KeyCertSign);
                vec![params.self_signed(&key)?.der().clone()]
            }
            Defect::IssuedByEndEntity => {
                // The "issuer" is a server certificate for another name, not a CA.
                let mut issuer_params = CertificateParams::new(vec![WRONG_NAME.to_owned()])?;
                issuer_params.distinguished_name = rcgen::DistinguishedName::new();
                issuer_params
                    .distinguished_name
                    .push(DnType::CommonName, WRONG_NAME);
                issuer_params.serial_number = Some(SerialNumber::from(serial + 1_000_000));
                issuer_params.not_before = not_before;
                issuer_params.not_after = not_after;
                issuer_params.is_ca = IsCa::ExplicitNoCa;
                issuer_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                issuer_params.use_authority_key_identifier_extension = true;
                let issuer_key = KeyPair::generate()?;
                let issuer_cert =
                    issuer_params.signed_by(&issuer_key, &self.intermediate.issuer)?;
                let issuer = Issuer::new(issuer_params, issuer_key);
                vec![
                    params.signed_by(&key, &issuer)?.der().clone(),
                    issuer_cert.der().clone(),
                    self.intermediate.cert.clone(),
                ]
            }
            Defect::UntrustedCa => vec![
                params
                    .signed_by(&key, &self.untrusted_root.issuer)?
                    .der()
                    .clone(),
                self.untrusted_root.cert.clone(),
            ],
            Defect::MissingIntermediate => {
                vec![
                    params
                        .signed_by(&key, &self.intermediate.issuer)?
                        .der()
                        .clone(),
                ]
            }
            _ => vec![
                params
                    .signed_by(&key, &self.intermediate.issuer)?
                    .der()
                    .clone(),
                self.intermediate.cert.clone(),
            ],
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let server_config = server_config(
            &self.provider,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            chain.clone(),
            key.clone_key(),
        )?;
        Ok(IssuedCert {
            chain,
            key,
            server_config,
            provider: Arc::clone(&self.provider),
        })
    }
}

fn ca_params(now: OffsetDateTime, serial: u64, cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "mtasts testnet");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    params.not_before = now - Duration::days(365);
    params.not_after = now + Duration::days(3650);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = serial != 1 && serial != 3;
    params
}

fn self_signed_ca(now: OffsetDateTime, serial: u64, cn: &str) -> Result<Ca, PkiError> {
    let key = KeyPair::generate()?;
    let params = ca_params(now, serial, cn);
    let cert = params.self_signed(&key)?;
    Ok(Ca {
        cert: cert.der().clone(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    })
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// Issues a valid certificate for whatever name the client asks for (SNI): one policy host can
/// then serve `mta-sts.<d>` for any number of domains, as a hosting provider does. Each name's
/// certificate is issued at its first handshake and kept for the next ones.
pub struct OnDemandCerts {
    pki: Arc<Pki>,
    issued: Mutex<HashMap<String, Arc<rustls::sign::CertifiedKey>>>,
}

impl fmt::Debug for OnDemandCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnDemandCerts").finish_non_exhaustive()
    }
}

impl rustls::server::ResolvesServerCert for OnDemandCerts {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        let lock = || {
            self.issued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(known) = lock().get(&name) {
            return Some(Arc::clone(known));
        }
        // Issue outside the lock; if two handshakes race for one new name, the first kept wins.
        let issued = self.pki.issue(&name, Defect::Valid).ok()?;
        let key = self
            .pki
            .provider
            .key_provider
            .load_private_key(issued.key)
            .ok()?;
        let certified = Arc::new(rustls::sign::CertifiedKey::new(issued.chain, key));
        Some(Arc::clone(lock().entry(name).or_insert(certified)))
    }
}

/// A TLS 1.2/1.3 server configuration that issues a valid certificate for any SNI name on demand,
/// once per name (see [`OnDemandCerts`]).
pub fn on_demand_server_config(pki: &Arc<Pki>) -> Arc<ServerConfig> {
    let config = ServerConfig::builder_with_provider(Arc::clone(&pki.provider))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OnDemandCerts {
            pki: Arc::clone(pki),
            issued: Mutex::new(HashMap::new()),
        }));
    Arc::new(config)
}

/// Runs a TLS handshake between `client` and `server` in memory, for the server name `name`:
/// both ends, once it completed.
///
/// # Panics
/// When either side fails the handshake or it does not complete in ten flights.
pub fn handshake_in_memory(
    client: Arc<rustls::ClientConfig>,
    server: Arc<ServerConfig>,
    name: &str,
) -> (rustls::ClientConnection, rustls::ServerConnection) {
    let sni = rustls_pki_types::ServerName::try_from(name.to_owned()).expect("a server name");
    let mut c = rustls::ClientConnection::new(client, sni).expect("a client connection");
    let mut s = rustls::ServerConnection::new(server).expect("a server connection");
    let mut buf = Vec::new();
    for _ in 0..10 {
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        buf.clear();
        c.write_tls(&mut buf).expect("client flight");
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).expect("server read");
            s.process_new_packets().expect("server handshake");
        }
        buf.clear();
        s.write_tls(&mut buf).expect("server flight");
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).expect("client read");
            c.process_new_packets().expect("client handshake");
        }
    }
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "the handshake did not finish"
    );
    (c, s)
}

/// `der` as PEM with the given label (64-column base64).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            text.push(if i <= chunk.len() {
                B64[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_have_the_scripted_shape() {
        let pki = Pki::new().unwrap();
        let name = "mx.example.test";
        let len = |d| pki.issue(name, d).unwrap().chain.len();
        assert_eq!(len(Defect::Valid), 2);
        assert_eq!(len(Defect::SelfSigned), 1);
        assert_eq!(len(Defect::MissingIntermediate), 1);
        let untrusted = pki.issue(name, Defect::UntrustedCa).unwrap();
        assert_eq!(&untrusted.chain[1], pki.untrusted_root_cert());
        let valid = pki.issue(name, Defect::Valid).unwrap();
        assert_eq!(&valid.chain[1], pki.intermediate_cert());
        assert_eq!(pki.root_store().len(), 1);
        valid.server_config_tls12_only().unwrap();
    }

    /// A full TLS handshake in memory against `server` for `name`; the leaf the server sent.
    fn leaf_served(pki: &Pki, server: &Arc<ServerConfig>, name: &str) -> CertificateDer<'static> {
        let client = crate::https::client_config(pki.root_store());
        let (c, _) = handshake_in_memory(client, Arc::clone(server), name);
        c.peer_certificates().unwrap()[0].clone()
    }

    #[test]
    fn on_demand_certificates_are_issued_once_per_name() {
        let pki = Arc::new(Pki::new().unwrap());
        let server = on_demand_server_config(&pki);
        let a1 = leaf_served(&pki, &server, "mta-sts.a.test");
        let a2 = leaf_served(&pki, &server, "MTA-STS.A.test");
        let b = leaf_served(&pki, &server, "mta-sts.b.test");
        assert_eq!(
            a1, a2,
            "the second handshake for a name got a new certificate"
        );
        assert_ne!(a1, b);
        // Two leaves issued in all: serials 1000 and 1001, the next one is 1002.
        assert_eq!(pki.next_serial.load(Ordering::Relaxed), 1002);
    }

    #[test]
    fn reference_time_is_whole_seconds() {
        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + Duration::milliseconds(250);
        let pki = Pki::at(t).unwrap();
        assert_eq!(pki.now().unix_timestamp(), 1_700_000_000);
        assert_eq!(pki.now().nanosecond(), 0);
    }
}
