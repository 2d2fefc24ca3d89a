//! Checking an imported (or ACME-issued) certificate before it is stored: the PEM parses, the key matches the
//! end-entity certificate, the certificate names `mta-sts.<domain>` (exactly or by a wildcard),
//! and it has not expired. The chain's trust is not checked here: a private CA is the owner's
//! choice, and `mtasts check` reports an untrusted chain from the outside.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::ParsedCertificate;
use serde::Serialize;
use time::OffsetDateTime;

use super::DomainError;
use crate::hosted::{POLICY_HOST_PREFIX, certified_key};

/// Most certificates in an imported chain.
pub const MAX_CHAIN_CERTS: usize = 10;

/// What the check found in a certificate that passed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateCheck {
    /// The name it was checked for: `mta-sts.<domain>`.
    pub name: String,
    /// Certificates in the chain, end entity first.
    pub chain_len: usize,
    /// When the end-entity certificate becomes valid.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// When the end-entity certificate expires.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The end-entity certificate's issuer (RFC 4514 form).
    pub issuer: String,
}

fn bad(why: impl Into<String>) -> DomainError {
    DomainError::Certificate(why.into())
}

/// Checks `chain_pem` (end entity first) and `key_pem` for `mta-sts.<domain>` at `now`.
///
/// # Errors
/// [`DomainError::Certificate`] saying what does not fit.
pub fn check_certificate(
    domain: &str,
    chain_pem: &str,
    key_pem: &str,
    now: OffsetDateTime,
) -> Result<CertificateCheck, DomainError> {
    check_certificate_for(
        format!("{POLICY_HOST_PREFIX}{domain}"),
        chain_pem,
        key_pem,
        now,
    )
}

/// Checks `chain_pem` and `key_pem` for the host `name` at `now` (a service host's
/// certificate: the intake's own host, the SMTP receiver's name).
///
/// # Errors
/// [`DomainError::Certificate`] saying what does not fit.
pub fn check_certificate_for(
    name: String,
    chain_pem: &str,
    key_pem: &str,
    now: OffsetDateTime,
) -> Result<CertificateCheck, DomainError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .take(MAX_CHAIN_CERTS + 1)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("the chain PEM does not parse: {e}")))?;
    if chain.is_empty() {
        return Err(bad("the chain PEM holds no CERTIFICATE block"));
    }
    if chain.len() > MAX_CHAIN_CERTS {
        return Err(bad(format!(
            "the chain holds more than {MAX_CHAIN_CERTS} certificates"
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad(format!("the key PEM holds no usable private key: {e}")))?;
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| bad(format!("the end-entity certificate does not parse: {e}")))?;
    let not_after = OffsetDateTime::from_unix_timestamp(leaf.validity().not_after.timestamp())
        .map_err(|_| bad("the end-entity certificate's notAfter is out of range"))?;
    let not_before = OffsetDateTime::from_unix_timestamp(leaf.validity().not_before.timestamp())
        .map_err(|_| bad("the end-entity certificate's notBefore is out of range"))?;
    let issuer = leaf.issuer().to_string();
    if not_after <= now {
        return Err(bad(format!("the certificate expired at {not_after}")));
    }
    let parsed = ParsedCertificate::try_from(&chain[0])
        .map_err(|e| bad(format!("the end-entity certificate is not usable: {e}")))?;
    let server_name = ServerName::try_from(name.as_str())
        .map_err(|_| bad(format!("{name} is not a valid server name")))?;
    rustls::client::verify_server_name(&parsed, &server_name)
        .map_err(|_| bad(format!("the certificate is not valid for {name}")))?;
    let chain_len = chain.len();
    certified_key(chain, key)
        .map_err(|e| bad(format!("the key does not match the certificate: {e}")))?;
    Ok(CertificateCheck {
        name,
        chain_len,
        not_before,
        not_after,
        issuer,
    })
}

impl super::Domains {
    /// Checks and installs a certificate for the service host `name` (`[intake] host`,
    /// `[smtp] hostname`): it must name the host and not have expired, and the key must fit.
    ///
    /// # Errors
    /// [`DomainError::Invalid`] for a name that is not a host name;
    /// [`DomainError::Certificate`]; the store's errors.
    pub async fn import_host_certificate(
        &self,
        name: &str,
        chain_pem: &str,
        key_pem: &str,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<CertificateCheck, DomainError> {
        let name = super::normalize_domain(name)?;
        let checked = check_certificate_for(name.clone(), chain_pem, key_pem, now)?;
        let cert = mtasts_store::NewCertificate {
            chain_pem: chain_pem.to_owned(),
            key: mtasts_store::PrivateKeyPem::new(key_pem),
            not_after: checked.not_after,
            source: mtasts_store::CertSource::Imported,
        };
        self.store
            .put_host_certificate(&name, &cert, &mtasts_store::Change::new(actor, now))
            .await?;
        Ok(checked)
    }
}
