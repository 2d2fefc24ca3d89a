//! Answering the CA's validation requests: HTTP-01 on port 80 and TLS-ALPN-01 (RFC 8737) on
//! 443. The instance that placed an order keeps its challenges in memory; every challenge is
//! also in the store, so another instance (the CA may reach any of them) finds it there.
//!
//! Only requests shaped like a challenge reach the store: a path under
//! `/.well-known/acme-challenge/` with a token of at most [`MAX_TOKEN`] base64url characters,
//! or a ClientHello offering `acme-tls/1` with a server name. Everything else is answered
//! (404, or the policy configuration) without I/O. A store lookup is bounded by
//! [`STORE_LOOKUP_TIMEOUT`]; a store that cannot answer means 404 (the CA retries).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mtasts_store::{Challenge, ChallengeKind, Store};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::http::{ChallengeFuture, ChallengeResponder};
use crate::tls::{HookFuture, TlsHook};

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The path prefix of HTTP-01 requests (RFC 8555 §8.3).
const HTTP_PREFIX: &str = "/.well-known/acme-challenge/";

/// Longest token looked up (RFC 8555 tokens carry at least 128 bits; CAs send 43 characters).
const MAX_TOKEN: usize = 128;

/// How long a store lookup for another instance's challenge may take.
const STORE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Most challenges this instance keeps in memory (orders in flight use one each).
const MAX_LOCAL: usize = 10_000;

struct Local {
    challenge: Challenge,
    /// The TLS-ALPN-01 configuration, built on the first handshake and reused for the CA's
    /// further attempts.
    config: Option<Arc<ServerConfig>>,
}

/// The challenge answerer: give it to the server as both hooks (`challenges` and `tls_hook`).
#[derive(Clone)]
pub struct Challenges {
    store: Store,
    local: Arc<Mutex<HashMap<String, Local>>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.local.lock().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("Challenges").field("local", &n).finish()
    }
}

impl Challenges {
    /// Answers from memory, then from `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            local: Arc::default(),
        }
    }

    /// Keeps `challenge` in memory (the engine has already stored it).
    pub fn insert(&self, challenge: Challenge) {
        if let Ok(mut local) = self.local.lock() {
            let now = OffsetDateTime::now_utc();
            local.retain(|_, l| l.challenge.expires_at > now);
            if local.len() < MAX_LOCAL {
                local.insert(
                    challenge.token.clone(),
                    Local {
                        challenge,
                        config: None,
                    },
                );
            }
        }
    }

    /// Forgets the challenge with `token`.
    pub fn remove(&self, token: &str) {
        if let Ok(mut local) = self.local.lock() {
            local.remove(token);
        }
    }

    fn local_http(&self, token: &str) -> Option<Challenge> {
        let local = self.local.lock().ok()?;
        let l = local.get(token)?;
        (l.challenge.kind == ChallengeKind::Http01
            && l.challenge.expires_at > OffsetDateTime::now_utc())
        .then(|| l.challenge.clone())
    }

    /// The memory's TLS-ALPN-01 challenge for `name`, with its configuration once built.
    fn local_alpn(&self, name: &str) -> Option<(Challenge, Option<Arc<ServerConfig>>)> {
        let local = self.local.lock().ok()?;
        let now = OffsetDateTime::now_utc();
        local
            .values()
            .filter(|l| {
                l.challenge.kind == ChallengeKind::TlsAlpn01
                    && l.challenge.name == name
                    && l.challenge.expires_at > now
            })
            .max_by_key(|l| l.challenge.expires_at)
            .map(|l| (l.challenge.clone(), l.config.clone()))
    }

    fn keep_config(&self, token: &str, config: &Arc<ServerConfig>) {
        if let Ok(mut local) = self.local.lock()
            && let Some(l) = local.get_mut(token)
        {
            l.config = Some(Arc::clone(config));
        }
    }
}

fn is_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl ChallengeResponder for Challenges {
    fn respond(&self, host: &str, path: &str) -> Option<ChallengeFuture> {
        let token = path.strip_prefix(HTTP_PREFIX)?;
        if !is_token(token) {
            return None;
        }
        let (this, token, host) = (self.clone(), token.to_owned(), host.to_owned());
        Some(Box::pin(async move {
            let challenge = match this.local_http(&token) {
                Some(c) => c,
                None => {
                    let now = OffsetDateTime::now_utc();
                    let found = tokio::time::timeout(
                        STORE_LOOKUP_TIMEOUT,
                        this.store.http_challenge(&token, now),
                    )
                    .await;
                    match found {
                        Ok(Ok(Some(c))) => c,
                        Ok(Ok(None)) => return None,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "HTTP-01: the store cannot be read");
                            return None;
                        }
                        Err(_) => {
                            tracing::warn!("HTTP-01: the store did not answer in time");
                            return None;
                        }
                    }
                }
            };
            // The CA asks the name it validates; a token is no use for another name.
            same_name(&challenge.name, &host).then(|| Bytes::from(challenge.key_authorization))
        }))
    }
}

impl TlsHook for Challenges {
    fn config_for(&self, hello: &ClientHello<'_>) -> Option<HookFuture> {
        if !hello.alpn()?.any(|p| p == ACME_TLS_ALPN) {
            return None;
        }
        let name = hello
            .server_name()?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let this = self.clone();
        Some(Box::pin(async move {
            let challenge = match this.local_alpn(&name) {
                Some((_, Some(config))) => return Some(config),
                Some((c, None)) => c,
                None => {
                    let now = OffsetDateTime::now_utc();
                    let found = tokio::time::timeout(
                        STORE_LOOKUP_TIMEOUT,
                        this.store.tls_alpn_challenge(&name, now),
                    )
                    .await;
                    match found {
                        Ok(Ok(Some(c))) => c,
                        Ok(Ok(None)) => return None,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "TLS-ALPN-01: the store cannot be read");
                            return None;
                        }
                        Err(_) => {
                            tracing::warn!("TLS-ALPN-01: the store did not answer in time");
                            return None;
                        }
                    }
                }
            };
            match alpn_config(&challenge.name, &challenge.key_authorization) {
                Ok(config) => {
                    this.keep_config(&challenge.token, &config);
                    Some(config)
                }
                Err(e) => {
                    tracing::warn!(name = %challenge.name, error = %e,
                        "TLS-ALPN-01: cannot build the validation certificate");
                    None
                }
            }
        }))
    }
}

#[derive(Debug)]
struct One(Arc<CertifiedKey>);

impl ResolvesServerCert for One {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// The TLS-ALPN-01 configuration for `name`: a self-signed certificate for `name` alone with the
/// critical acmeIdentifier extension holding SHA-256 of `key_authorization` (RFC 8737 §3), and
/// `acme-tls/1` as the only ALPN protocol.
///
/// # Errors
/// The certificate cannot be made (a name rcgen refuses).
pub(crate) fn alpn_config(
    name: &str,
    key_authorization: &str,
) -> Result<Arc<ServerConfig>, String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Not CertifiedKey::from_der: webpki refuses the critical acmeIdentifier extension when it
    // checks the key against the certificate.
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    let certified = CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signing);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(Arc::new(certified))));
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_shaped_paths_are_looked_up() {
        assert!(is_token("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"));
        for bad in ["", "a/b", "a.b", "..", &"a".repeat(MAX_TOKEN + 1), "tok%2F"] {
            assert!(!is_token(bad), "{bad}");
        }
    }

    #[test]
    fn the_alpn_certificate_carries_the_digest_in_a_critical_extension() {
        let config = alpn_config("mta-sts.example.test", "tok.thumb").unwrap();
        assert_eq!(config.alpn_protocols, vec![ACME_TLS_ALPN.to_vec()]);
    }
}
