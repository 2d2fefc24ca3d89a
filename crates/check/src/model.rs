//! The report of one domain, in the JSON schema documented in docs/check-json.md.

use mtasts_core::Severity;
use serde::Serialize;

/// Everything `check` observed and concluded about one domain.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// One finding: a stable id, a severity, what was observed, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id (docs/diagnostics.md).
    pub id: &'static str,
    /// How serious.
    pub severity: Severity,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The raw observation (a record, a policy line, a server reply), when there is one.
    pub observed: Option<String>,
    /// What to do.
    pub fix: String,
    /// True when the check could not be made (timeout, refused connection, DNS failure): not a
    /// failure of the domain, but not a pass either.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub untested: bool,
}

/// The `_mta-sts` record as found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StsRecordReport {
    /// The RFC verdict on the RRset (false also when the lookup failed).
    pub valid: bool,
    /// The policy id a sender would use.
    pub id: Option<String>,
    /// Every TXT record at `_mta-sts.<domain>`, strings joined.
    pub records: Vec<String>,
}

/// The policy fetch and what was read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyReport {
    /// The HTTPS fetch.
    pub fetch: FetchReport,
    /// The RFC verdict on the policy text (false when none was fetched).
    pub valid: bool,
    /// The TLS-RPT result type an RFC-conformant sender would report for the policy
    /// (`sts-policy-fetch-error`, `sts-webpki-invalid`, `sts-policy-invalid`), or null.
    pub failure: Option<&'static str>,
    /// The mode a sender would apply.
    pub mode: Option<String>,
    /// The max_age a sender would apply.
    pub max_age: Option<u32>,
    /// The patterns a sender would apply (null when it applies no policy).
    pub mx: Option<Vec<String>>,
}

/// The HTTPS fetch as observed.
#[derive(Debug, Clone, Default, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct MxReport {
    /// The host name from the MX record.
    pub host: String,
    /// Its preference.
    pub preference: u16,
    /// The policy pattern covering it, or null.
    pub pattern: Option<String>,
    /// Each address probed.
    pub addresses: Vec<AddressReport>,
    /// `success`, a TLS-RPT result type, or `unreachable`; the worst over the addresses.
    pub result: String,
    /// A sender applying the policy must not deliver to this host.
    pub must_refuse: bool,
}

/// One address of an MX host.
#[derive(Debug, Clone, Serialize)]
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
    pub result: String,
    /// What failed, when something did.
    pub error: Option<String>,
}

/// The `_smtp._tls` record as found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsRptReport {
    /// The RFC verdict on the RRset.
    pub valid: bool,
    /// The usable report URIs.
    pub rua: Vec<String>,
    /// The `https:` report URIs checked (R08); absent when there is none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointReport>,
}

/// One `https:` report endpoint, as checked (resolve, TLS verified against the URI host,
/// `OPTIONS`).
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct DaneReport {
    /// The DNSSEC proof of the MX RRset (`secure`, `insecure`, `bogus`, `indeterminate`); DANE
    /// applies to the MX hosts only when it is `secure` (RFC 7672 §2.2.1). Null when the
    /// validated MX lookup failed.
    pub mx_dnssec: Option<&'static str>,
    /// At least one MX host has a usable, DNSSEC-secure TLSA RRset: DANE senders authenticate
    /// TLS to it (what `--summary` counts as DANE adoption).
    pub adopted: bool,
    /// Each MX host (from the validated MX lookup), in preference order.
    pub hosts: Vec<DaneHostReport>,
    /// Why the validated MX lookup failed, when it did.
    pub error: Option<String>,
}

/// The TLSA RRset of one MX host.
#[derive(Debug, Clone, Serialize)]
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
    pub state: &'static str,
    /// The DNSSEC proof of the TLSA answer; null when the lookup failed.
    pub dnssec: Option<&'static str>,
    /// The DNSSEC proof of the host's address records (the weaker of A and AAAA, CNAMEs
    /// included): DANE applies only when it is `secure` (RFC 7672 §2.2.2). Null when they were
    /// not looked up (the MX RRset is not secure, so DANE cannot apply) or the lookup failed.
    pub address_dnssec: Option<&'static str>,
    /// The TLSA records, presentation form (`3 1 1 <HEX>`).
    pub tlsa: Vec<String>,
    /// Same as `state == "usable"`: senders must authenticate TLS by these records.
    pub usable: bool,
    /// Why the lookup failed, when it did.
    pub error: Option<String>,
    /// Each probed address and whether its certificate chain matched (only when `usable`).
    pub addresses: Vec<DaneAddressReport>,
}

/// One address of an MX host against its TLSA records.
#[derive(Debug, Clone, Serialize)]
pub struct DaneAddressReport {
    /// The IP address.
    pub ip: String,
    /// Whether the presented chain matched a usable record.
    pub matched: bool,
    /// The record that matched.
    pub record: Option<String>,
}
