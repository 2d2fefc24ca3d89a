//! DNS lookups through hickory-resolver, with the outcomes a checker must tell apart.
//!
//! A name that does not exist ([`Lookup::NxDomain`]) or has no record of the type
//! ([`Lookup::NoData`]) is an answer. A server failure or a timeout is a [`DnsError`]: the
//! question could not be answered, which a checker reports as "could not test", never as "no
//! record" (DECISIONS D16, catalogue M10).
//!
//! DNSSEC: the plain lookups ([`Resolver::txt`], [`Resolver::mx`], ...) do not validate, so they
//! cost one query each. [`Resolver::mx_validated`] and [`Resolver::tlsa`] go through a second,
//! validating resolver (hickory's validator, from the [`TrustAnchor`] of the settings) and
//! return the [`Proof`] of the answer, as DANE needs (RFC 7672 §2.2). The validator's own
//! queries (NS, DS, DNSKEY up the chain) are shared between lookups and asked in parallel with
//! the query (see `validating.rs`): a validated lookup costs about one round trip, not six. A
//! validated lookup at or below a name already proven to lie in an insecure zone is a plain
//! lookup reported insecure (see `insecure.rs`): no chain of trust can start below one.

mod cname;
mod generations;
mod insecure;
pub use cname::MAX_CNAME_CHAIN;
use cname::check_cname_chain;
mod validating;
pub use insecure::{INSECURE_MEMO_CAPACITY, INSECURE_MEMO_TTL};
pub use validating::{MEMO_CAPACITY, MEMO_MAX_TTL, VALIDATION_CACHE_CAPACITY};

use hickory_proto::dnssec::{Proof as HickoryProof, TrustAnchors};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as ProtoDnsError, NetError};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Default time budget for one query (all attempts).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Records of the asked type.
    Records {
        /// The records, in answer order.
        records: Vec<T>,
        /// The CNAME targets followed on the way, in order (empty when the name had no CNAME).
        cnames: Vec<String>,
    },
    /// The name exists but has no record of this type (NOERROR, empty answer).
    NoData,
    /// The name does not exist (NXDOMAIN).
    NxDomain,
}

impl<T> Lookup<T> {
    /// The records, or an empty slice for NODATA and NXDOMAIN.
    pub fn records(&self) -> &[T] {
        match self {
            Self::Records { records, .. } => records,
            _ => &[],
        }
    }
}

/// A lookup that could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// The server answered SERVFAIL (often a broken zone or a DNSSEC validation failure).
    #[error("{rtype} {name}: the DNS server answered SERVFAIL")]
    ServFail {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
    },
    /// The server refused the query.
    #[error("{rtype} {name}: the DNS server refused the query")]
    Refused {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
    },
    /// No answer within the time budget.
    #[error("{rtype} {name}: no answer within {budget_ms} ms")]
    Timeout {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
        /// The budget, in milliseconds.
        budget_ms: u128,
    },
    /// The name is not a valid DNS name.
    #[error("{name:?} is not a valid DNS name: {message}")]
    BadName {
        /// The name given.
        name: String,
        /// Why.
        message: String,
    },
    /// The CNAME chain at `name` loops back on itself: no resolver can answer.
    #[error("{rtype} {name}: a CNAME loop ({chain})")]
    CnameLoop {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
        /// The chain as followed, `a -> b -> a`.
        chain: String,
    },
    /// The CNAME chain at `name` is longer than senders' resolvers follow
    /// ([`MAX_CNAME_CHAIN`]).
    #[error(
        "{rtype} {name}: a chain of {links} or more CNAME records, longer than the {MAX_CNAME_CHAIN} that senders' resolvers follow"
    )]
    CnameChainTooLong {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
        /// How many links were seen (a lower bound when the resolver gave up first).
        links: usize,
    },
    /// Anything else (network error, malformed answer).
    #[error("{rtype} {name}: {message}")]
    Other {
        /// The name asked.
        name: String,
        /// The record type asked.
        rtype: String,
        /// What happened.
        message: String,
    },
}

/// A TXT record: its character-strings as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txt {
    /// The character-strings, in order.
    pub strings: Vec<Vec<u8>>,
}

impl Txt {
    /// The strings joined with nothing between them (RFC 8461 §3.1, RFC 8460 §3).
    pub fn joined(&self) -> Vec<u8> {
        mtasts_core::record::join_txt_strings(&self.strings)
    }
}

/// An MX record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mx {
    /// Preference: lower is tried first.
    pub preference: u16,
    /// The exchange host, lower case, without the trailing dot (`.` for a null MX, RFC 7505).
    pub host: String,
}

/// Where the resolver sends queries.
#[derive(Debug, Clone, Default)]
pub struct ResolverSettings {
    /// Name servers to ask (`IP:PORT`); empty means the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Time budget per query; [`DEFAULT_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
    /// Where DNSSEC validation starts (validated lookups only).
    pub trust_anchor: TrustAnchor,
}

/// The keys DNSSEC validation trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustAnchor {
    /// The IANA root zone keys hickory ships (KSK-2017 and KSK-2024).
    #[default]
    IanaRoot,
    /// DNSKEY records in zone-file form (a trust-anchor file), e.g. a test root:
    /// `. 3600 IN DNSKEY 257 3 13 <base64>`.
    Keys(String),
}

/// The DNSSEC status of an answer (RFC 4035 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proof {
    /// Validated from a trust anchor.
    Secure,
    /// Provably unsigned: a secure parent says the zone is not signed.
    Insecure,
    /// Should validate but does not (bad or expired signature, missing keys, DS mismatch),
    /// although every record of the chain of trust was fetched.
    Bogus,
    /// Nothing could be decided: no trust anchor covers the name, or the chain of trust could
    /// not be fetched (see [`Validated::why`]).
    Indeterminate,
}

impl Proof {
    /// The word used in reports: `secure`, `insecure`, `bogus`, `indeterminate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
        }
    }

    fn from_hickory(p: HickoryProof) -> Self {
        match p {
            HickoryProof::Secure => Self::Secure,
            HickoryProof::Insecure => Self::Insecure,
            HickoryProof::Bogus => Self::Bogus,
            _ => Self::Indeterminate,
        }
    }

    /// The weaker of two proofs, for an answer made of several RRsets: bogus beats
    /// indeterminate beats insecure beats secure.
    fn weaker(self, other: Self) -> Self {
        let rank = |p: Self| match p {
            Self::Secure => 0,
            Self::Insecure => 1,
            Self::Indeterminate => 2,
            Self::Bogus => 3,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// An answer and its DNSSEC proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated<T> {
    /// The answer. A bogus answer carries no records: hickory drops them (it is reported as
    /// [`Lookup::NoData`] with [`Proof::Bogus`]).
    pub lookup: Lookup<T>,
    /// How far it can be trusted: the weakest proof over the records of the answer (CNAMEs
    /// included), or over the records of the denial of existence (SOA, NSEC) for NODATA and
    /// NXDOMAIN.
    pub proof: Proof,
    /// Why the proof is [`Proof::Indeterminate`] when the validator could not fetch the chain
    /// of trust (a DNSKEY or DS query answered SERVFAIL or REFUSED or timed out, signatures
    /// stripped by the resolver): what a report says instead of "bogus". `None` otherwise.
    pub why: Option<String>,
    /// The proof of the CNAME record owned by the name asked, when the answer starts with one
    /// (RFC 7672 §2.2.2: a host whose first CNAME link is secure is in a signed zone, even when
    /// the chain leads into an unsigned one).
    pub first_link: Option<Proof>,
}

/// The DNSSEC standing of an MX host's address records (RFC 7672 §2.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressesProof {
    /// The weaker proof of the A and AAAA answers that have records (CNAMEs included).
    pub proof: Proof,
    /// Whether the host counts as in a signed zone: its addresses are secure, or they are
    /// insecure only because a secure first CNAME link leads into an unsigned zone.
    pub in_signed_zone: bool,
    /// The CNAME-expanded host name, when the host is a CNAME and the whole chain is secure:
    /// where a sender looks for TLSA records first (RFC 7672 §2.2.2).
    pub expanded: Option<String>,
}

/// A TLSA record (RFC 6698 §2.1), fields as published (unknown values kept).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlsa {
    /// Certificate usage: 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE.
    pub usage: u8,
    /// Selector: 0 full certificate, 1 SubjectPublicKeyInfo.
    pub selector: u8,
    /// Matching type: 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    /// Certificate association data.
    pub data: Vec<u8>,
}

impl std::fmt::Display for Tlsa {
    /// Presentation form, `3 1 1 0A1B...` (upper-case hex, RFC 6698 §2.2).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        self.data.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// A stub resolver.
#[derive(Clone)]
pub struct Resolver {
    inner: TokioResolver,
    validating: validating::Validating,
    /// Names proven insecure; `None` when a trust anchor below the root is configured.
    insecure: Option<Arc<insecure::InsecureNames>>,
    timeout: Duration,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds a resolver. Never reads `/etc/hosts`. Fails only when the system configuration is
    /// asked for and cannot be read.
    pub fn new(settings: &ResolverSettings) -> Result<Self, DnsError> {
        let timeout = settings.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let inner = build(settings, timeout)?;
        let anchors = match &settings.trust_anchor {
            TrustAnchor::IanaRoot => TrustAnchors::default(),
            TrustAnchor::Keys(text) => {
                TrustAnchors::from_str(text).map_err(|e| DnsError::Other {
                    name: "trust anchor".into(),
                    rtype: "DNSKEY".into(),
                    message: e.to_string(),
                })?
            }
        };
        let validating =
            validating::Validating::new(&settings.nameservers, timeout, Arc::new(anchors))?;
        // The memo assumes every chain of trust starts at the root: a key for another name
        // (an island of trust) could make a zone below an insecure one secure.
        let insecure = match &settings.trust_anchor {
            TrustAnchor::IanaRoot => Some(Arc::default()),
            TrustAnchor::Keys(text) => root_only(text).then(Arc::default),
        };
        Ok(Self {
            inner,
            validating,
            insecure,
            timeout,
        })
    }

    /// TXT records of `name`.
    pub async fn txt(&self, name: &str) -> Result<Lookup<Txt>, DnsError> {
        self.lookup(name, RecordType::TXT, |data| match data {
            RData::TXT(txt) => Some(Txt {
                strings: txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            }),
            _ => None,
        })
        .await
    }

    /// MX records of `name`, sorted by preference then host.
    pub async fn mx(&self, name: &str) -> Result<Lookup<Mx>, DnsError> {
        let mut out = self.lookup(name, RecordType::MX, pick_mx).await?;
        if let Lookup::Records { records, .. } = &mut out {
            records.sort();
        }
        Ok(out)
    }

    /// IPv4 addresses of `name`.
    pub async fn a(&self, name: &str) -> Result<Lookup<IpAddr>, DnsError> {
        self.lookup(name, RecordType::A, |data| match data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .await
    }

    /// The CNAME target of `name` itself, not followed: `Records` with the one target when
    /// `name` is an alias, `NoData` when it exists with other records. Unlike an address lookup
    /// through the alias, the answer does not depend on the target resolving (an alias to a
    /// name that holds only TXT records, as a delegated `_mta-sts` is, has no addresses).
    pub async fn cname(&self, name: &str) -> Result<Lookup<String>, DnsError> {
        self.lookup(name, RecordType::CNAME, |data| match data {
            RData::CNAME(t) => Some(host_name(&t.0.to_ascii())),
            _ => None,
        })
        .await
    }

    /// IPv6 addresses of `name`.
    pub async fn aaaa(&self, name: &str) -> Result<Lookup<IpAddr>, DnsError> {
        self.lookup(name, RecordType::AAAA, |data| match data {
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .await
    }

    /// MX records of `name` through the validating resolver, sorted as [`Resolver::mx`], with
    /// their DNSSEC proof: DANE applies to the MX hosts only when it is secure (RFC 7672 §2.2.1).
    pub async fn mx_validated(&self, name: &str) -> Result<Validated<Mx>, DnsError> {
        let mut out = self.validated(name, RecordType::MX, pick_mx).await?;
        if let Lookup::Records { records, .. } = &mut out.lookup {
            records.sort();
        }
        Ok(out)
    }

    /// The DNSSEC proof of `host`'s address records, A and AAAA asked at once through the
    /// validating resolver; DANE applies to an MX host only when it is secure (RFC 7672 §2.2.2).
    /// What a sender connects to counts: the weaker proof of the families that have records
    /// (CNAMEs included), so an unanswered or insecurely denied AAAA does not spoil secure A
    /// records. Bogus if either family is bogus; with no address at all, the weaker of the two
    /// denials; an error only when no family has records and a lookup failed.
    pub async fn addresses_proof(&self, host: &str) -> Result<Proof, DnsError> {
        self.address_records(host).await.map(|a| a.proof)
    }

    /// [`Resolver::addresses_proof`], and whether the host counts as in a signed zone (RFC 7672
    /// §2.2.2): its addresses are secure, or they are insecure behind a secure first CNAME link
    /// (a secure CNAME into an unsigned zone), in every family that has records.
    pub async fn address_records(&self, host: &str) -> Result<AddressesProof, DnsError> {
        let pick_a = |data: &RData| matches!(data, RData::A(_)).then_some(());
        let pick_aaaa = |data: &RData| matches!(data, RData::AAAA(_)).then_some(());
        let (a, aaaa) = tokio::join!(
            self.validated(host, RecordType::A, pick_a),
            self.validated(host, RecordType::AAAA, pick_aaaa)
        );
        let answered = || [&a, &aaaa].into_iter().filter_map(|r| r.as_ref().ok());
        if answered().any(|v| v.proof == Proof::Bogus) {
            return Ok(AddressesProof {
                proof: Proof::Bogus,
                in_signed_zone: false,
                expanded: None,
            });
        }
        let with_records = || answered().filter(|v| !v.lookup.records().is_empty());
        if let Some(proof) = with_records().map(|v| v.proof).reduce(Proof::weaker) {
            let in_signed_zone = with_records().all(|v| {
                v.proof == Proof::Secure
                    || (v.proof == Proof::Insecure && v.first_link == Some(Proof::Secure))
            });
            let expanded = with_records()
                .find_map(|v| match &v.lookup {
                    Lookup::Records { cnames, .. } => cnames.last().cloned(),
                    _ => None,
                })
                .filter(|_| proof == Proof::Secure);
            return Ok(AddressesProof {
                proof,
                in_signed_zone,
                expanded,
            });
        }
        let proof = a?.proof.weaker(aaaa?.proof);
        Ok(AddressesProof {
            proof,
            in_signed_zone: proof == Proof::Secure,
            expanded: None,
        })
    }

    /// The TLSA records of `host` for TCP `port` (`_25._tcp.mx1.example.com`, RFC 7672 §2.2.3),
    /// through the validating resolver, with their DNSSEC proof. A CNAME at the TLSA name is
    /// followed by the resolver (its targets are in [`Lookup::Records::cnames`]); the proof is
    /// the weakest over the CNAMEs and the records.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<Validated<Tlsa>, DnsError> {
        let name = format!("_{port}._tcp.{}", host.trim_end_matches('.'));
        self.validated(&name, RecordType::TLSA, |data| match data {
            RData::TLSA(t) => Some(Tlsa {
                usage: t.cert_usage.into(),
                selector: t.selector.into(),
                matching: t.matching.into(),
                data: t.cert_data.clone(),
            }),
            _ => None,
        })
        .await
    }

    async fn lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Result<Lookup<T>, DnsError> {
        let fq = fully_qualified(name);
        let query = self.inner.lookup(fq.as_str(), rtype);
        self.query(name, rtype, query, pick).await.map(|v| v.lookup)
    }

    /// A lookup through the validating resolver.
    async fn validated<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Result<Validated<T>, DnsError> {
        let fq = hickory_proto::rr::Name::from_str(&fully_qualified(name)).map_err(|e| {
            DnsError::BadName {
                name: name.to_owned(),
                message: e.to_string(),
            }
        })?;
        if self.insecure.as_ref().is_some_and(|m| m.covers(&fq)) {
            let lookup = self.lookup(name, rtype, pick).await?;
            return Ok(Validated {
                lookup,
                proof: Proof::Insecure,
                why: None,
                first_link: None,
            });
        }
        let query = self.validating.lookup(&fq, rtype);
        let mut out = self.query(name, rtype, query, pick).await?;
        if out.proof == Proof::Bogus
            && let Some(why) = self.validating.unfetchable_chain(&fq, rtype).await
        {
            out.proof = Proof::Indeterminate;
            out.why = Some(why);
        }
        // Only records owned by the name itself say that the zone holding it is insecure: not
        // a CNAME's target (another zone), and not a denial, whose proof may come from a CNAME
        // target hickory followed, or be an insecure NSEC3 proof inside a signed zone (too many
        // iterations).
        if let (Some(memo), Lookup::Records { cnames, .. }) = (&self.insecure, &out.lookup)
            && cnames.is_empty()
            && out.proof == Proof::Insecure
        {
            memo.insert(&fq);
        }
        Ok(out)
    }

    async fn query<T>(
        &self,
        name: &str,
        rtype: RecordType,
        query: impl Future<Output = Result<hickory_resolver::lookup::Lookup, NetError>>,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Result<Validated<T>, DnsError> {
        let budget = self.timeout + Duration::from_millis(50);
        let Ok(result) = tokio::time::timeout(budget, query).await else {
            return Err(self.timeout_error(name, rtype));
        };
        match result {
            Ok(lookup) => {
                let mut records = Vec::new();
                let mut cnames = Vec::new();
                let answers: Vec<&Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() != RecordType::RRSIG)
                    .collect();
                let mut links = Vec::new();
                for record in &answers {
                    if rtype != RecordType::CNAME
                        && let RData::CNAME(target) = &record.data
                    {
                        cnames.push(host_name(&target.0.to_ascii()));
                        links.push((
                            host_name(&record.name.to_ascii()),
                            cnames[cnames.len() - 1].clone(),
                        ));
                    } else if let Some(v) = pick(&record.data) {
                        records.push(v);
                    }
                }
                check_cname_chain(name, rtype, &links)?;
                let proof = weakest(answers.iter().copied());
                let first_link = answers
                    .iter()
                    .find(|r| {
                        matches!(r.data, RData::CNAME(_))
                            && host_name(&r.name.to_ascii()) == host_name(name)
                    })
                    .map(|r| Proof::from_hickory(r.proof));
                let lookup = if records.is_empty() {
                    Lookup::NoData
                } else {
                    Lookup::Records { records, cnames }
                };
                Ok(Validated {
                    lookup,
                    proof,
                    why: None,
                    first_link,
                })
            }
            Err(e) => {
                // hickory follows a CNAME chain itself and, when it gives up (a loop, or more
                // links than it follows), answers NODATA for the last name it asked, or for the
                // name itself without the SOA record a real NODATA carries: tell that apart.
                if let NetError::Dns(ProtoDnsError::NoRecordsFound(no)) = &e
                    && no.response_code == ResponseCode::NoError
                    && (no.soa.is_none()
                        || host_name(&no.query.name().to_ascii()) != host_name(name))
                {
                    self.walk_cnames(name, rtype).await?;
                }
                self.classify(name, rtype, &e)
            }
        }
    }

    fn timeout_error(&self, name: &str, rtype: RecordType) -> DnsError {
        DnsError::Timeout {
            name: name.to_owned(),
            rtype: rtype.to_string(),
            budget_ms: self.timeout.as_millis(),
        }
    }

    fn classify<T>(
        &self,
        name: &str,
        rtype: RecordType,
        e: &NetError,
    ) -> Result<Validated<T>, DnsError> {
        let answer = |lookup: Lookup<T>, proof: Proof| {
            Ok(Validated {
                lookup,
                proof,
                why: None,
                first_link: None,
            })
        };
        if let NetError::Dns(ProtoDnsError::Nsec {
            response, proof, ..
        }) = e
        {
            let lookup = if response.response_code == ResponseCode::NXDomain {
                Lookup::NxDomain
            } else {
                Lookup::NoData
            };
            return answer(lookup, Proof::from_hickory(*proof));
        }
        // hickory's caching layer turns any bogus answer, positive or negative, into this error
        // and drops its records: the records of a bogus RRset are not reported.
        if let NetError::Dns(ProtoDnsError::DnssecBogus) = e {
            return answer(Lookup::NoData, Proof::Bogus);
        }
        if let NetError::Dns(ProtoDnsError::NoRecordsFound(no)) = e {
            let proof = weakest(no.authorities.iter().flat_map(|a| a.iter()));
            match no.response_code {
                ResponseCode::NoError => return answer(Lookup::NoData, proof),
                ResponseCode::NXDomain => return answer(Lookup::NxDomain, proof),
                _ => {}
            }
        }
        if e.is_nx_domain() {
            return answer(Lookup::NxDomain, Proof::Indeterminate);
        }
        let other = |message: String| DnsError::Other {
            name: name.to_owned(),
            rtype: rtype.to_string(),
            message,
        };
        match e {
            NetError::Dns(ProtoDnsError::NoRecordsFound(no)) => match no.response_code {
                ResponseCode::ServFail => Err(DnsError::ServFail {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                }),
                ResponseCode::Refused => Err(DnsError::Refused {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                }),
                code => Err(other(format!("the DNS server answered {code}"))),
            },
            NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::ServFail)) => {
                Err(DnsError::ServFail {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                })
            }
            NetError::Dns(ProtoDnsError::ResponseCode(ResponseCode::Refused)) => {
                Err(DnsError::Refused {
                    name: name.to_owned(),
                    rtype: rtype.to_string(),
                })
            }
            NetError::Timeout => Err(self.timeout_error(name, rtype)),
            other_err => Err(other(other_err.to_string())),
        }
    }
}

impl DnsError {
    /// Whether the error is a fault of the zone's data (a CNAME loop or an over-long chain),
    /// which a checker reports as an error, rather than a failure to get an answer.
    pub fn is_zone_fault(&self) -> bool {
        matches!(
            self,
            Self::CnameLoop { .. } | Self::CnameChainTooLong { .. }
        )
    }
}

fn pick_mx(data: &RData) -> Option<Mx> {
    match data {
        RData::MX(mx) => Some(Mx {
            preference: mx.preference,
            host: host_name(&mx.exchange.to_ascii()),
        }),
        _ => None,
    }
}

/// The weakest proof over `records` (signatures left out); indeterminate when there is none.
fn weakest<'a>(records: impl Iterator<Item = &'a Record>) -> Proof {
    records
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| Proof::from_hickory(r.proof))
        .reduce(Proof::weaker)
        .unwrap_or(Proof::Indeterminate)
}

/// Whether a trust-anchor file holds keys for the root only (the owner of every record line is
/// `.`; blank lines and `;` comments skipped).
fn root_only(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .all(|l| l.split_whitespace().next() == Some("."))
}

fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

/// UDP and TCP to each of `servers`.
fn server_configs(servers: &[SocketAddr]) -> Vec<NameServerConfig> {
    servers
        .iter()
        .map(|sa| {
            let mut udp = ConnectionConfig::udp();
            udp.port = sa.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = sa.port();
            NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
        })
        .collect()
}

/// The plain (non-validating) hickory resolver.
fn build(settings: &ResolverSettings, timeout: Duration) -> Result<TokioResolver, DnsError> {
    let mut builder = if settings.nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| DnsError::Other {
            name: "/etc/resolv.conf".into(),
            rtype: "config".into(),
            message: e.to_string(),
        })?
    } else {
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(server_configs(&settings.nameservers)),
            TokioRuntimeProvider::default(),
        )
    };
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 1;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    builder.build().map_err(|e| DnsError::Other {
        name: String::new(),
        rtype: "config".into(),
        message: e.to_string(),
    })
}

/// Lower case, without the trailing root dot; the root itself stays `.`.
fn host_name(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    match lower.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => lower,
    }
}
