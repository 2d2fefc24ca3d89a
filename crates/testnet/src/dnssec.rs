//! DNSSEC for the test DNS server: zone keys, the DS and trust-anchor lines that chain them, and
//! the tampering that turns a signed answer bogus.
//!
//! One ECDSA P-256 key (algorithm 13) per zone serves as both key-signing and zone-signing key.
//! A resolver validates the test zones from a trust anchor for the test root zone `.`
//! ([`ZoneKey::trust_anchor`]), as a real one does from the IANA root keys: the root zone holds
//! the DS record of each secure child zone ([`ZoneKey::ds_record`]) and only the NS record of an
//! insecure one (a provably unsigned delegation, RFC 4035 §5.2).

use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, DnssecSigner, PublicKeyBuf, SigningKey};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordSet};
use rustls_pki_types::PrivatePkcs8KeyDer;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

/// How long the signatures of a signed zone stay valid.
const SIG_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// A key could not be made or used.
#[derive(Debug, thiserror::Error)]
#[error("DNSSEC key: {0}")]
pub struct KeyError(String);

/// The signing key of one zone (ECDSA P-256 with SHA-256, DNSSEC algorithm 13).
pub struct ZoneKey {
    pkcs8: Vec<u8>,
    public: PublicKeyBuf,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneKey")
            .field("dnskey", &self.dnskey().to_string())
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let pkcs8 = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256)
            .map_err(|e| KeyError(e.to_string()))?;
        let key = EcdsaSigningKey::from_pkcs8(&pkcs8, Algorithm::ECDSAP256SHA256)
            .map_err(|e| KeyError(e.to_string()))?;
        let public = key.to_public_key().map_err(|e| KeyError(e.to_string()))?;
        Ok(Self {
            pkcs8: pkcs8.secret_pkcs8_der().to_vec(),
            public,
        })
    }

    /// The DNSKEY record data (flags 257: zone key and secure entry point).
    pub fn dnskey(&self) -> DNSKEY {
        DNSKEY::new(true, true, false, self.public.clone())
    }

    /// The DNSKEY record of zone `origin` in zone-file form, which is also the form of a trust
    /// anchor file: `. 3600 IN DNSKEY 257 3 13 <base64>`.
    pub fn trust_anchor(&self, origin: &str) -> String {
        format!("{} 3600 IN DNSKEY {}", fqdn(origin), self.dnskey())
    }

    /// The DS record (SHA-256 digest) that a parent zone publishes for the child zone `origin`
    /// signed with this key, in zone-file form.
    pub fn ds_record(&self, origin: &str) -> Result<String, KeyError> {
        let name = Name::from_str(&fqdn(origin)).map_err(|e| KeyError(e.to_string()))?;
        let dnskey = self.dnskey();
        let tag = dnskey
            .calculate_key_tag()
            .map_err(|e| KeyError(e.to_string()))?;
        let digest = dnskey
            .to_digest(&name, DigestType::SHA256)
            .map_err(|e| KeyError(e.to_string()))?;
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Ok(format!("{name} 300 IN DS {tag} 13 2 {hex}"))
    }

    /// A signer for zone `origin` whose signatures last `duration`.
    pub(crate) fn signer(
        &self,
        origin: &Name,
        duration: Duration,
    ) -> Result<DnssecSigner, KeyError> {
        let key = EcdsaSigningKey::from_pkcs8(
            &PrivatePkcs8KeyDer::from(self.pkcs8.clone()),
            Algorithm::ECDSAP256SHA256,
        )
        .map_err(|e| KeyError(e.to_string()))?;
        Ok(DnssecSigner::new(
            self.dnskey(),
            Box::new(key),
            origin.clone(),
            duration,
        ))
    }

    /// The signer the zone is signed with.
    pub(crate) fn zone_signer(&self, origin: &Name) -> Result<DnssecSigner, KeyError> {
        self.signer(origin, SIG_DURATION)
    }
}

/// How the signatures over one RRset of a signed zone are spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tamper {
    /// One byte of each signature flipped: the RRSIG does not verify (bogus).
    BadSignature,
    /// Signed correctly, but the signatures expired ten days ago (bogus).
    Expired,
}

/// Replaces the signatures of `rrset` as `tamper` says.
pub(crate) fn tamper(
    rrset: &mut RecordSet,
    tamper: Tamper,
    key: &ZoneKey,
    origin: &Name,
) -> Result<(), KeyError> {
    let rrsigs: Vec<Record> = match tamper {
        Tamper::BadSignature => rrset
            .rrsigs()
            .iter()
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) => {
                    let mut bytes = sig.sig().to_vec();
                    if let Some(b) = bytes.first_mut() {
                        *b ^= 0xff;
                    }
                    let spoiled = RRSIG::from_sig(sig.input().clone(), bytes);
                    Some(Record::from_rdata(
                        r.name.clone(),
                        r.ttl,
                        RData::DNSSEC(DNSSECRData::RRSIG(spoiled)),
                    ))
                }
                _ => None,
            })
            .collect(),
        Tamper::Expired => {
            let signer = key.signer(origin, Duration::from_secs(86_400))?;
            let inception = OffsetDateTime::now_utc() - time::Duration::days(11);
            let sig = RRSIG::from_rrset(rrset, DNSClass::IN, inception, &signer)
                .map_err(|e| KeyError(e.to_string()))?;
            vec![Record::from_rdata(
                rrset.name().clone(),
                rrset.ttl(),
                RData::DNSSEC(DNSSECRData::RRSIG(sig)),
            )]
        }
    };
    rrset.set_rrsigs(rrsigs);
    Ok(())
}

fn fqdn(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}
