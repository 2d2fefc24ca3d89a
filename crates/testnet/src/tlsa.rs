//! TLSA record data (RFC 6698 §2.1) computed from a test certificate, to publish in a test zone.
//!
//! Written apart from the matcher in `mtasts-net` on purpose: a test that publishes what this
//! module computes and expects the matcher to accept it checks one against the other.

use ring::digest::{SHA256, SHA512, digest};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The certificate usage field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// 0: PKIX-TA (unusable for SMTP, RFC 7672 §3.1.3).
    PkixTa = 0,
    /// 1: PKIX-EE (unusable for SMTP).
    PkixEe = 1,
    /// 2: DANE-TA, a trust anchor in the chain.
    DaneTa = 2,
    /// 3: DANE-EE, the server's own certificate or key.
    DaneEe = 3,
}

/// The selector field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// 0: the whole certificate (DER).
    Cert = 0,
    /// 1: the SubjectPublicKeyInfo (DER).
    Spki = 1,
}

/// The matching type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    /// 0: the selected bytes themselves.
    Full = 0,
    /// 1: their SHA-256.
    Sha256 = 1,
    /// 2: their SHA-512.
    Sha512 = 2,
}

/// The TLSA record data `"<usage> <selector> <matching> <HEX>"` for `cert`, ready to follow
/// `IN TLSA` in a zone. Fails only when `cert` does not parse as X.509.
pub fn tlsa_data(
    cert: &CertificateDer<'_>,
    usage: Usage,
    selector: Selector,
    matching: Matching,
) -> Result<String, String> {
    let selected: Vec<u8> = match selector {
        Selector::Cert => cert.as_ref().to_vec(),
        Selector::Spki => {
            let (_, parsed) =
                X509Certificate::from_der(cert.as_ref()).map_err(|e| e.to_string())?;
            parsed.tbs_certificate.subject_pki.raw.to_vec()
        }
    };
    let data = match matching {
        Matching::Full => selected,
        Matching::Sha256 => digest(&SHA256, &selected).as_ref().to_vec(),
        Matching::Sha512 => digest(&SHA512, &selected).as_ref().to_vec(),
    };
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    Ok(format!(
        "{} {} {} {hex}",
        usage as u8, selector as u8, matching as u8
    ))
}
