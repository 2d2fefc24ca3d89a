//! The report of one domain, in the JSON schema documented in docs/json-output.md.
//!
//! Every type here is `Serialize + Deserialize`: the JSON `mtasts check` prints reads back into
//! a [`DomainReport`] and writes out again byte for byte (so stored check history can be read
//! and compared). Closed sets of words are enums; the spellings in JSON are those of the schema.

pub use mtasts_core::finding::Finding;
use mtasts_core::report::ResultType;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The version of the report schema, the `schema_version` of every [`DomainReport`]. Raised
/// when a field changes meaning or a reader written for the previous version could misread a
/// report; adding a field or a value to an enum does not raise it.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `check` observed and concluded about one domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainReport {
    /// The schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The domain checked, lower-case A-labels.
    pub domain: String,
    /// The `_mta-sts` TXT record.
    pub sts_record: StsRecordReport,
    /// The policy file.
    pub policy: PolicyReport,
    /// The MX hosts, in preference order.
    pub mx: Vec<MxReport>,
    /// The `_smtp._tls` TXT record.
    pub tlsrpt: TlsRptReport,
    /// DANE (RFC 7672) as a DANE-aware sender sees the MX hosts; null only when DANE was not
    /// tested (invalid or non-existent domain, null MX, `Settings::no_dane`).
    pub dane: Option<DaneReport>,
    /// Every finding, most severe first.
    pub findings: Vec<Finding>,
    /// `pass` (nothing to report), `warn` (warnings only), `fail` (an error), or `incomplete`
    /// (no error, but something could not be tested).
    pub verdict: Verdict,
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// No error and no warning.
    Pass,
    /// Warnings only.
    Warn,
    /// At least one error.
    Fail,
    /// No error, but a step could not be tested (timeout, refused connection, DNS failure).
    Incomplete,
}

/// The `_mta-sts` record as found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StsRecordReport {
    /// The RFC verdict on the RRset (false also when the lookup failed).
    pub valid: bool,
    /// The policy id a sender would use.
    pub id: Option<String>,
    /// Every TXT record at `_mta-sts.<domain>`, strings joined.
    pub records: Vec<String>,
}

/// The policy fetch and what was read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyReport {
    /// The HTTPS fetch.
    pub fetch: FetchReport,
    /// The RFC verdict on the policy text (false when none was fetched).
    pub valid: bool,
    /// The TLS-RPT result type an RFC-conformant sender would report for the policy
    /// (`sts-policy-fetch-error`, `sts-webpki-invalid`, `sts-policy-invalid`), or null.
    pub failure: Option<ResultType>,
    /// The mode a sender would apply.
    pub mode: Option<String>,
    /// The max_age a sender would apply.
    pub max_age: Option<u32>,
    /// The patterns a sender would apply (null when it applies no policy).
    pub mx: Option<Vec<String>>,
}

/// The HTTPS fetch as observed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FetchReport {
    /// The URL fetched.
    pub url: String,
    /// HTTP status.
    pub status: Option<u16>,
    /// `Content-Type` as sent.
    pub content_type: Option<String>,
    /// Body length.
    pub bytes: Option<usize>,
    /// Why the fetch failed, when it did.
    pub error: Option<String>,
    /// The certificate of the policy host.
    pub certificate: Option<CertificateReport>,
    /// The TLS version negotiated.
    pub tls_version: Option<String>,
}

/// A certificate, as shown in reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateReport {
    /// SAN DNS names.
    pub sans: Vec<String>,
    /// Issuer, readable.
    pub issuer: String,
    /// Expiry, RFC 3339.
    pub not_after: String,
    /// Whole days left (negative once expired).
    pub days_left: Option<i64>,
}

/// One MX host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MxReport {
    /// The host name from the MX record.
    pub host: String,
    /// Its preference.
    pub preference: u16,
    /// The policy pattern covering it, or null.
    pub pattern: Option<String>,
    /// Each address probed.
    pub addresses: Vec<AddressReport>,
    /// `success`, a TLS-RPT result type, `unreachable` or `not-tested`; the worst over the
    /// addresses.
    pub result: TlsResult,
    /// A sender applying the policy must not deliver to this host.
    pub must_refuse: bool,
}

/// One address of an MX host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddressReport {
    /// The IP address.
    pub ip: String,
    /// Whether EHLO offered STARTTLS (null when not reached, or `--no-smtp`).
    pub starttls: Option<bool>,
    /// The TLS version negotiated.
    pub tls_version: Option<String>,
    /// The certificate presented.
    pub certificate: Option<CertificateReport>,
    /// `success`, a TLS-RPT result type, `unreachable`, or `not-tested` (`--no-smtp`).
    pub result: TlsResult,
    /// What failed, when something did.
    pub error: Option<String>,
}

/// The `_smtp._tls` record as found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TlsRptReport {
    /// The RFC verdict on the RRset.
    pub valid: bool,
    /// The usable report URIs.
    pub rua: Vec<String>,
    /// The `https:` report URIs checked (R08); absent when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointReport>,
}

/// One `https:` report endpoint, as checked (resolve, TLS verified against the URI host,
/// `OPTIONS`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointReport {
    /// The URI from the record.
    pub uri: String,
    /// The status of the `OPTIONS` answer.
    pub status: Option<u16>,
    /// The TLS version negotiated.
    pub tls_version: Option<String>,
    /// The certificate presented.
    pub certificate: Option<CertificateReport>,
    /// What failed, when something did.
    pub error: Option<String>,
}

/// DANE for SMTP (RFC 7672): the DNSSEC proof of the MX RRset and the TLSA RRset of each MX host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaneReport {
    /// The DNSSEC proof of the MX RRset (`secure`, `insecure`, `bogus`, `indeterminate`); DANE
    /// applies to the MX hosts only when it is `secure` (RFC 7672 §2.2.1). Null when the
    /// validated MX lookup failed.
    pub mx_dnssec: Option<DnssecState>,
    /// At least one MX host has a usable, DNSSEC-secure TLSA RRset: DANE senders authenticate
    /// TLS to it (what `--summary` counts as DANE adoption).
    pub adopted: bool,
    /// Each MX host (from the validated MX lookup), in preference order.
    pub hosts: Vec<DaneHostReport>,
    /// Why the validated MX lookup failed, when it did.
    pub error: Option<String>,
}

/// The TLSA RRset of one MX host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaneHostReport {
    /// The MX host name.
    pub host: String,
    /// Where its TLSA records were found: `_25._tcp.<host>`, or `_25._tcp.<expanded name>` when
    /// the host is a secure CNAME chain with TLSA records at its end (RFC 7672 §2.2.2).
    pub tlsa_name: String,
    /// `usable` (secure, at least one usable record), `unusable` (secure, none usable),
    /// `no-tlsa`, `insecure` (records not protected by DNSSEC: ignored by senders), `bogus`
    /// (validation failed: DANE senders do not deliver), `indeterminate` (the chain of trust
    /// could not be fetched: untested, not bogus), or `lookup-failed`.
    pub state: DaneHostState,
    /// The DNSSEC proof of the TLSA answer; null when the lookup failed.
    pub dnssec: Option<DnssecState>,
    /// The DNSSEC proof of the host's address records (the weaker of A and AAAA, CNAMEs
    /// included): DANE applies only when it is `secure` (RFC 7672 §2.2.2). Null when they were
    /// not looked up (the MX RRset is not secure, so DANE cannot apply) or the lookup failed.
    pub address_dnssec: Option<DnssecState>,
    /// The TLSA records, presentation form (`3 1 1 <HEX>`).
    pub tlsa: Vec<String>,
    /// Same as `state == usable`: senders must authenticate TLS by these records.
    pub usable: bool,
    /// Why the lookup failed, when it did.
    pub error: Option<String>,
    /// Each probed address and whether its certificate chain matched (only when `usable`).
    pub addresses: Vec<DaneAddressReport>,
}

/// One address of an MX host against its TLSA records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaneAddressReport {
    /// The IP address.
    pub ip: String,
    /// Whether the presented chain matched a usable record.
    pub matched: bool,
    /// The record that matched.
    pub record: Option<String>,
}

/// The outcome of a STARTTLS probe of an address, or the worst over a host's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsResult {
    /// `success`: STARTTLS offered, handshake made, certificate valid for the host.
    Success,
    /// `not-tested`: no probe was made (`--no-smtp`), or the server turned the check away for
    /// now (a 4xx or 554 reply, too slow: `mx.smtp.transient`, with `error` saying why).
    NotTested,
    /// `unreachable`: no connection, or no answer in time; says nothing about the host's TLS.
    Unreachable,
    /// A TLS-RPT result type (RFC 8460 §4.3): what a sender would report.
    Failure(ResultType),
}

impl TlsResult {
    /// The word in reports: `success`, `not-tested`, `unreachable` or the result type.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Success => "success",
            Self::NotTested => "not-tested",
            Self::Unreachable => "unreachable",
            Self::Failure(t) => t.as_str(),
        }
    }

    /// The result a word of [`Self::as_str`] stands for; any word that is not one of the three
    /// of this type is a result type.
    pub fn from_name(s: &str) -> Self {
        match s {
            "success" => Self::Success,
            "not-tested" => Self::NotTested,
            "unreachable" => Self::Unreachable,
            other => Self::Failure(ResultType::from_name(other)),
        }
    }

    /// True for a TLS failure a sender would report (not for success, unreachable or not tested).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::Failure(_))
    }
}

impl fmt::Display for TlsResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TlsResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TlsResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::from_name(&s))
    }
}

/// The DNSSEC status of an answer (RFC 4035 §4.3), as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnssecState {
    /// Validated from a trust anchor.
    Secure,
    /// Provably unsigned.
    Insecure,
    /// Should validate but does not.
    Bogus,
    /// Nothing could be decided.
    Indeterminate,
}

impl DnssecState {
    /// The word in reports: `secure`, `insecure`, `bogus`, `indeterminate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
        }
    }
}

impl From<mtasts_net::dns::Proof> for DnssecState {
    fn from(p: mtasts_net::dns::Proof) -> Self {
        use mtasts_net::dns::Proof;
        match p {
            Proof::Secure => Self::Secure,
            Proof::Insecure => Self::Insecure,
            Proof::Bogus => Self::Bogus,
            Proof::Indeterminate => Self::Indeterminate,
        }
    }
}

impl fmt::Display for DnssecState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a DANE sender makes of one MX host's TLSA RRset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaneHostState {
    /// Secure, at least one record usable for SMTP: senders authenticate TLS by it.
    Usable,
    /// Secure, but no record usable for SMTP.
    Unusable,
    /// No TLSA records.
    NoTlsa,
    /// Records not protected by DNSSEC: ignored by senders.
    Insecure,
    /// DNSSEC validation failed: DANE senders do not deliver.
    Bogus,
    /// The chain of trust could not be fetched (a DNSKEY or DS query failed, or signatures
    /// were stripped): untested, not bogus.
    Indeterminate,
    /// The lookup failed: nothing is known.
    LookupFailed,
}

impl DaneHostState {
    /// The word in reports (`usable`, `unusable`, `no-tlsa`, `insecure`, `bogus`,
    /// `indeterminate`, `lookup-failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usable => "usable",
            Self::Unusable => "unusable",
            Self::NoTlsa => "no-tlsa",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
            Self::LookupFailed => "lookup-failed",
        }
    }
}

impl fmt::Display for DaneHostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
