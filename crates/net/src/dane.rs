//! DANE for SMTP (RFC 7672): which TLSA records a sender can use, whether a presented chain
//! matches them, and the state of one MX host as a DANE-aware sender sees it.
//!
//! - [`usability`]: usages 0 and 1 (PKIX-TA, PKIX-EE), unknown usages, selectors and matching
//!   types, and data of the wrong length are unusable for SMTP (RFC 7672 §3.1.3, RFC 6698 §2.1).
//! - [`match_chain`]: DANE-EE (3) matches the leaf with no name or expiry check (§3.1.1);
//!   DANE-TA (2) matches a certificate of the presented chain, which must then chain the leaf
//!   to it, be in date, and name the MX host (§3.1.2, §3.2.2).
//! - [`host_state`]: "does this MX host have a usable, DNSSEC-secure TLSA RRset?", the question
//!   a Postfix policy daemon answers with `dane-only` (DECISIONS D22).
//!
//! Simplifications, stated: the reference identifier for DANE-TA is the MX host name only
//! (not also the next-hop domain); a CNAME at the TLSA name is followed by the resolver and its
//! proof counts. The TLSA base domain is the CNAME-expanded host name when the host's address
//! chain is secure end to end and TLSA records are found there, otherwise the MX host name
//! ([`HostLookups::base`], §2.2.2). A host whose address records are insecure only behind a
//! secure first CNAME link (a CNAME into an unsigned zone) is still in a signed zone (§2.2.2).

use crate::dns::{AddressesProof, DnsError, Lookup, Proof, Resolver, Tlsa, Validated};
use crate::tls::RecordingVerifier;
use ring::digest::{SHA256, SHA512, digest};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The port DANE for SMTP looks up (`_25._tcp.<mx-host>`).
pub const SMTP_PORT: u16 = 25;

/// Why a TLSA record cannot be used by an SMTP sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unusable {
    /// Usage 0 (PKIX-TA) or 1 (PKIX-EE): SMTP senders have no agreed trust roots, so RFC 7672
    /// §3.1.3 makes these unusable.
    #[error("usage {0} (PKIX-{kind}) is unusable for SMTP (RFC 7672 §3.1.3)", kind = if *.0 == 0 { "TA" } else { "EE" })]
    PkixUsage(u8),
    /// A usage other than 0–3.
    #[error("unknown certificate usage {0}")]
    UnknownUsage(u8),
    /// A selector other than 0 (certificate) or 1 (SubjectPublicKeyInfo).
    #[error("unknown selector {0}")]
    UnknownSelector(u8),
    /// A matching type other than 0 (exact), 1 (SHA-256) or 2 (SHA-512).
    #[error("unknown matching type {0}")]
    UnknownMatching(u8),
    /// A digest of the wrong length (SHA-256 is 32 bytes, SHA-512 64), or empty exact data.
    #[error("matching type {matching} needs {expected} bytes of data, the record has {found}")]
    BadLength {
        /// The matching type.
        matching: u8,
        /// The length it needs (0 for "any but empty").
        expected: usize,
        /// The length published.
        found: usize,
    },
}

/// Whether an SMTP sender can use `t`: `Ok` for usages 2 and 3 with a known selector and
/// matching type and data of the right length.
pub fn usability(t: &Tlsa) -> Result<(), Unusable> {
    match t.usage {
        0 | 1 => return Err(Unusable::PkixUsage(t.usage)),
        2 | 3 => {}
        u => return Err(Unusable::UnknownUsage(u)),
    }
    if t.selector > 1 {
        return Err(Unusable::UnknownSelector(t.selector));
    }
    let expected = match t.matching {
        0 => 0,
        1 => 32,
        2 => 64,
        m => return Err(Unusable::UnknownMatching(m)),
    };
    let wrong = if expected == 0 {
        t.data.is_empty()
    } else {
        t.data.len() != expected
    };
    if wrong {
        return Err(Unusable::BadLength {
            matching: t.matching,
            expected,
            found: t.data.len(),
        });
    }
    Ok(())
}

/// The bytes `selector` picks from `cert` (0: the whole DER, 1: the SubjectPublicKeyInfo DER).
/// `None` when the certificate does not parse or the selector is unknown.
pub fn selected_bytes(cert: &CertificateDer<'_>, selector: u8) -> Option<Vec<u8>> {
    match selector {
        0 => Some(cert.as_ref().to_vec()),
        1 => {
            let (_, parsed) = X509Certificate::from_der(cert.as_ref()).ok()?;
            Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
        }
        _ => None,
    }
}

/// The association data of `cert` for `selector` and `matching`: what a TLSA record with
/// those parameters must hold to match it. `None` for unknown parameters or an unparsable
/// certificate.
pub fn association(cert: &CertificateDer<'_>, selector: u8, matching: u8) -> Option<Vec<u8>> {
    let bytes = selected_bytes(cert, selector)?;
    match matching {
        0 => Some(bytes),
        1 => Some(digest(&SHA256, &bytes).as_ref().to_vec()),
        2 => Some(digest(&SHA512, &bytes).as_ref().to_vec()),
        _ => None,
    }
}

/// The TLSA record that pins `cert` with `usage`, `selector` and `matching`, e.g. the fix
/// "publish `3 1 1 <sha256 of the served key>`".
pub fn record_for(
    cert: &CertificateDer<'_>,
    usage: u8,
    selector: u8,
    matching: u8,
) -> Option<Tlsa> {
    Some(Tlsa {
        usage,
        selector,
        matching,
        data: association(cert, selector, matching)?,
    })
}

/// How a presented chain fared against a TLSA RRset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainMatch {
    /// The record at this index of the RRset authenticates the chain.
    Matched(usize),
    /// Usable records exist but none authenticates the chain; one reason per usable record
    /// (its index and why it failed).
    NoMatch(Vec<(usize, String)>),
    /// The RRset has no usable record: TLS is still mandatory, but unauthenticated.
    NoUsableRecord,
}

/// Matches the chain a server presented (end entity first) against `records` (RFC 7672 §3.1):
/// the first usable record that authenticates it wins. `host` is the MX host name, the
/// reference identifier of DANE-TA; `now` is the time DANE-TA validity is checked against.
pub fn match_chain(
    records: &[Tlsa],
    chain: &[CertificateDer<'_>],
    host: &str,
    now: OffsetDateTime,
) -> ChainMatch {
    let mut reasons = Vec::new();
    for (i, t) in records.iter().enumerate() {
        if usability(t).is_err() {
            continue;
        }
        match match_one(t, chain, host, now) {
            Ok(()) => return ChainMatch::Matched(i),
            Err(why) => reasons.push((i, why)),
        }
    }
    if reasons.is_empty() {
        ChainMatch::NoUsableRecord
    } else {
        ChainMatch::NoMatch(reasons)
    }
}

fn match_one(
    t: &Tlsa,
    chain: &[CertificateDer<'_>],
    host: &str,
    now: OffsetDateTime,
) -> Result<(), String> {
    let Some(leaf) = chain.first() else {
        return Err("the server presented no certificate".into());
    };
    let matches = |c: &CertificateDer<'_>| {
        association(c, t.selector, t.matching).is_some_and(|d| d == t.data)
    };
    if t.usage == 3 {
        return if matches(leaf) {
            Ok(())
        } else {
            Err("the server's certificate does not match this DANE-EE record".into())
        };
    }
    // DANE-TA: a certificate of the chain is the trust anchor (the server must send it,
    // RFC 7672 §3.1.2); the leaf must chain to it and name the host.
    let Some(ta) = chain.iter().position(matches) else {
        return Err("no certificate of the presented chain matches this DANE-TA record".into());
    };
    let mut roots = RootCertStore::empty();
    roots
        .add(chain[ta].clone().into_owned())
        .map_err(|e| format!("the matching certificate cannot serve as a trust anchor: {e}"))?;
    let verifier = RecordingVerifier::new(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    );
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host:?} is not a valid host name"))?;
    let secs = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let intermediates = chain.get(1..ta.max(1)).unwrap_or(&[]);
    let v = verifier.check(
        leaf,
        intermediates,
        &name,
        UnixTime::since_unix_epoch(Duration::from_secs(secs)),
    );
    if !v.chain.is_valid() {
        return Err(format!(
            "the chain does not validate up to the DANE-TA trust anchor: {:?}",
            v.chain
        ));
    }
    if !v.name.is_valid() {
        return Err(format!(
            "the certificate does not name {host}: {:?}",
            v.name
        ));
    }
    Ok(())
}

/// One MX host as a DANE-aware SMTP sender sees it (RFC 7672 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneState {
    /// A DNSSEC-secure TLSA RRset with at least one usable record: TLS is mandatory and
    /// authenticated by these records (the whole RRset, unusable ones included).
    Usable(Vec<Tlsa>),
    /// A secure TLSA RRset with no usable record: TLS is mandatory but unauthenticated.
    Unusable(Vec<Tlsa>),
    /// No TLSA record (NODATA or NXDOMAIN): DANE does not apply.
    NoTlsa,
    /// TLSA records exist but are not DNSSEC-secure, or the MX RRset or the host's address
    /// records were not: senders ignore them.
    Insecure(Vec<Tlsa>),
    /// Validation failed although the chain of trust was fetched: a DANE sender must not use
    /// this host (RFC 7672 §2.1.2).
    Bogus,
    /// Validation could not be made (the chain of trust could not be fetched: a DNSKEY or DS
    /// query failed or timed out, signatures stripped), while the MX RRset is secure: nothing
    /// can be decided, and a DANE sender must not use this host either (RFC 7672 §2.1.2), but
    /// the zone is not shown to be broken. Holds the reason.
    Indeterminate(String),
    /// The lookup failed (SERVFAIL, timeout): nothing can be said.
    LookupFailed(DnsError),
}

impl DaneState {
    /// Classifies a TLSA lookup. `mx_secure` is whether the MX RRset that named the host was
    /// itself secure; when it was not, DANE does not apply to the host (RFC 7672 §2.2.1).
    pub fn from_lookup(answer: Result<Validated<Tlsa>, DnsError>, mx_secure: bool) -> Self {
        let v = match answer {
            Err(e) => return Self::LookupFailed(e),
            Ok(v) => v,
        };
        let why = v.why.unwrap_or_else(|| {
            "no trust anchor covers the name, or the proof was incomplete".to_owned()
        });
        let records = match v.lookup {
            Lookup::Records { records, .. } => records,
            Lookup::NoData | Lookup::NxDomain => {
                return match v.proof {
                    Proof::Bogus => Self::Bogus,
                    Proof::Indeterminate if mx_secure => Self::Indeterminate(why),
                    _ => Self::NoTlsa,
                };
            }
        };
        match v.proof {
            Proof::Bogus => Self::Bogus,
            Proof::Indeterminate if mx_secure => Self::Indeterminate(why),
            Proof::Indeterminate => Self::Insecure(records),
            Proof::Insecure => Self::Insecure(records),
            Proof::Secure if !mx_secure => Self::Insecure(records),
            Proof::Secure if records.iter().any(|t| usability(t).is_ok()) => Self::Usable(records),
            Proof::Secure => Self::Unusable(records),
        }
    }

    /// Whether a sender must use authenticated TLS per DANE (`dane-only` to Postfix).
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Usable(_))
    }

    /// Applies the proof of the host's address records (RFC 7672 §2.2.2: DANE applies to a host
    /// only when they are secure): a state that would make DANE apply becomes
    /// [`DaneState::Insecure`] when they are insecure, [`DaneState::Bogus`] when their validation
    /// failed, and [`DaneState::LookupFailed`] when they could not be looked up. Any other state
    /// is kept.
    pub fn with_addresses(self, addresses: Result<Proof, DnsError>) -> Self {
        self.with_address_records(addresses.map(|proof| AddressesProof {
            proof,
            in_signed_zone: proof == Proof::Secure,
            expanded: None,
        }))
    }

    /// [`DaneState::with_addresses`] with the whole standing of the address records: a host
    /// whose addresses are insecure only because a secure CNAME leads into an unsigned zone is
    /// still in a signed zone (RFC 7672 §2.2.2), so its TLSA records (at the MX host name)
    /// still apply.
    pub fn with_address_records(self, addresses: Result<AddressesProof, DnsError>) -> Self {
        let addresses = addresses.map(|a| {
            if a.in_signed_zone {
                Proof::Secure
            } else {
                a.proof
            }
        });
        let records = match self {
            Self::Usable(r) | Self::Unusable(r) => r,
            other => return other,
        };
        match addresses {
            Ok(Proof::Secure) if records.iter().any(|t| usability(t).is_ok()) => {
                Self::Usable(records)
            }
            Ok(Proof::Secure) => Self::Unusable(records),
            Ok(Proof::Insecure) => Self::Insecure(records),
            Ok(Proof::Bogus) => Self::Bogus,
            Ok(Proof::Indeterminate) => Self::Indeterminate(
                "the DNSSEC proof of the host's address records could not be established"
                    .to_owned(),
            ),
            Err(e) => Self::LookupFailed(e),
        }
    }
}

/// What a DANE sender looks up for one MX host (RFC 7672 §2.2): its TLSA RRset at
/// `_<port>._tcp.<host>` and, only when the MX RRset is secure (otherwise DANE cannot apply
/// whatever they are), the proof of its address records, both at once.
#[derive(Debug)]
pub struct HostLookups {
    /// The TLSA lookup, at the TLSA base domain ([`HostLookups::base`]).
    pub tlsa: Result<Validated<Tlsa>, DnsError>,
    /// The TLSA base domain (RFC 7672 §2.2.2): the CNAME-expanded host name when the whole
    /// CNAME chain is secure and TLSA records are found there, otherwise the MX host name.
    pub base: String,
    /// The standing of the host's address records ([`Resolver::address_records`]); `None`
    /// when the MX RRset is not secure, so they were not asked.
    pub addresses: Option<Result<AddressesProof, DnsError>>,
}

impl HostLookups {
    /// Makes the lookups of `host` on `port`.
    pub async fn run(resolver: &Resolver, host: &str, port: u16, mx_secure: bool) -> Self {
        if !mx_secure {
            return Self {
                tlsa: resolver.tlsa(host, port).await,
                base: host.to_owned(),
                addresses: None,
            };
        }
        let (tlsa, addresses) =
            tokio::join!(resolver.tlsa(host, port), resolver.address_records(host));
        // A secure CNAME chain: TLSA records at the expanded name come first; when there are
        // none there, the MX host name's (already asked) apply.
        if let Some(expanded) = addresses.as_ref().ok().and_then(|a| a.expanded.clone()) {
            let at_expanded = resolver.tlsa(&expanded, port).await;
            if at_expanded
                .as_ref()
                .is_ok_and(|v| !v.lookup.records().is_empty())
            {
                return Self {
                    tlsa: at_expanded,
                    base: expanded,
                    addresses: Some(addresses),
                };
            }
        }
        Self {
            tlsa,
            base: host.to_owned(),
            addresses: Some(addresses),
        }
    }

    /// The host's state: [`DaneState::from_lookup`], then [`DaneState::with_addresses`] when
    /// the addresses were asked.
    pub fn state(self, mx_secure: bool) -> DaneState {
        let state = DaneState::from_lookup(self.tlsa, mx_secure);
        match self.addresses {
            Some(addresses) => state.with_address_records(addresses),
            None => state,
        }
    }
}

/// Looks up one MX host and classifies it ([`HostLookups`]).
pub async fn host_state(resolver: &Resolver, host: &str, port: u16, mx_secure: bool) -> DaneState {
    HostLookups::run(resolver, host, port, mx_secure)
        .await
        .state(mx_secure)
}

/// Every MX host of `domain` with its [`DaneState`] on port 25, after a validated MX lookup.
/// `Err` when the MX lookup itself failed; an MX RRset that is not secure makes every host's
/// TLSA records [`DaneState::Insecure`] (RFC 7672 §2.2.1). A bogus or indeterminate MX answer
/// (no usable records) gives that proof and no host, never the domain as its own implicit MX;
/// a domain that does not exist or has a null MX gives no host and no TLSA lookup.
pub async fn domain_states(
    resolver: &Resolver,
    domain: &str,
) -> Result<(Proof, Vec<(String, DaneState)>), DnsError> {
    let mx = resolver.mx_validated(domain).await?;
    let secure = mx.proof == Proof::Secure;
    let hosts: Vec<String> = match &mx.lookup {
        Lookup::Records { records, .. } => records.iter().map(|m| m.host.clone()).collect(),
        // A bogus or indeterminate answer carries no records: it is not "no MX" (which would
        // make the domain its own MX host). No host is known; the caller sees the proof.
        Lookup::NoData if matches!(mx.proof, Proof::Bogus | Proof::Indeterminate) => Vec::new(),
        Lookup::NoData => vec![domain.to_owned()],
        Lookup::NxDomain => Vec::new(),
    };
    let mut out = Vec::with_capacity(hosts.len());
    for host in hosts.into_iter().filter(|h| h != ".") {
        let state = host_state(resolver, &host, SMTP_PORT, secure).await;
        out.push((host, state));
    }
    Ok((mx.proof, out))
}

#[cfg(test)]
mod tests;
