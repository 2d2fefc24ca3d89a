//! The TLS-RPT report model (RFC 8460 §4.4) and its normalised JSON form.
//!
//! These are our own types: they keep every value a reporter sent, including unknown
//! `policy-type` / `result-type` values (verbatim, in `Other`) and unknown JSON members (in each
//! object's `extra` map). Serialising a [`Report`] with serde gives RFC 8460's own JSON schema,
//! normalised: RFC 3339 UTC date-times with `Z`, `mx-host` and `failure-details` always arrays,
//! absent values left out, IP addresses in RFC 5952 form.

use crate::diag::Severity;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use time::OffsetDateTime;

/// Unknown JSON members of an object, kept verbatim and in document order.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// One TLS-RPT aggregate report (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `organization-name`: who produced the report. Empty when the reporter left it out.
    #[serde(rename = "organization-name")]
    pub organization_name: String,
    /// `date-range`: the period the report covers.
    #[serde(rename = "date-range")]
    pub date_range: DateRange,
    /// `contact-info`: an RFC 5322 addr-spec; `None` when missing or `null`.
    #[serde(rename = "contact-info", skip_serializing_if = "Option::is_none")]
    pub contact_info: Option<String>,
    /// `report-id`: free-form unique identifier chosen by the reporter.
    #[serde(rename = "report-id")]
    pub report_id: String,
    /// `policies`: one entry per policy the reporter applied (RFC 8460 §4: always an array).
    pub policies: Vec<PolicyResult>,
    /// Unknown top-level members.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `date-range` (RFC 8460 §4.4): start and end as RFC 3339 date-times, held in UTC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DateRange {
    /// `start-datetime`, in UTC.
    #[serde(rename = "start-datetime", serialize_with = "ser_datetime")]
    pub start: OffsetDateTime,
    /// `end-datetime`, in UTC. Reporters send either the last second of the day (`23:59:59Z`, as
    /// in the RFC example) or the start of the next day (`00:00:00Z`).
    #[serde(rename = "end-datetime", serialize_with = "ser_datetime")]
    pub end: OffsetDateTime,
    /// Unknown members of `date-range`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One element of `policies`: a policy and what happened to sessions under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyResult {
    /// `policy`: which policy was applied.
    pub policy: Policy,
    /// `summary`: session counts.
    pub summary: Summary,
    /// `failure-details`: empty when the reporter left the member out.
    #[serde(rename = "failure-details")]
    pub failure_details: Vec<FailureDetail>,
    /// Unknown members of this `policies[]` element.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `policy` (RFC 8460 §4.4, §4.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// `policy-type`.
    #[serde(rename = "policy-type")]
    pub policy_type: PolicyType,
    /// `policy-string`: for `sts` one element per policy line; for `tlsa` one element per TLSA
    /// record. Empty when the reporter left it out (normal for `no-policy-found`).
    #[serde(rename = "policy-string")]
    pub policy_string: Vec<String>,
    /// `policy-domain` (an A-label). Some reporters omit it for `no-policy-found`.
    #[serde(rename = "policy-domain", skip_serializing_if = "Option::is_none")]
    pub policy_domain: Option<String>,
    /// `mx-host`: the MX patterns of an `sts` policy. Always an array (erratum 6241).
    #[serde(rename = "mx-host")]
    pub mx_host: Vec<String>,
    /// Unknown members of `policy`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `summary` (RFC 8460 §4.4). The totals need not equal the sum of the failure details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `total-successful-session-count`.
    #[serde(rename = "total-successful-session-count")]
    pub total_successful_session_count: u64,
    /// `total-failure-session-count`.
    #[serde(rename = "total-failure-session-count")]
    pub total_failure_session_count: u64,
    /// Unknown members of `summary`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One element of `failure-details` (RFC 8460 §4.4).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureDetail {
    /// `result-type`.
    #[serde(rename = "result-type")]
    pub result_type: ResultType,
    /// `sending-mta-ip`. `None` when absent or sent as `""`.
    #[serde(rename = "sending-mta-ip", skip_serializing_if = "Option::is_none")]
    pub sending_mta_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`.
    #[serde(
        rename = "receiving-mx-hostname",
        skip_serializing_if = "Option::is_none"
    )]
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    #[serde(rename = "receiving-mx-helo", skip_serializing_if = "Option::is_none")]
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`. `None` when absent or sent as `""`.
    #[serde(rename = "receiving-ip", skip_serializing_if = "Option::is_none")]
    pub receiving_ip: Option<IpAddr>,
    /// `failed-session-count`.
    #[serde(rename = "failed-session-count")]
    pub failed_session_count: u64,
    /// `additional-information` (a URI; the RFC text calls it `additional-info-uri`).
    #[serde(
        rename = "additional-information",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_information: Option<String>,
    /// `failure-reason-code`, free text such as `X509_V_ERR_…`.
    #[serde(
        rename = "failure-reason-code",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason_code: Option<String>,
    /// Unknown members of this failure detail.
    #[serde(flatten)]
    pub extra: Extra,
}

impl FailureDetail {
    /// A failure detail with only a result type and a count; every optional field empty.
    pub fn new(result_type: ResultType, failed_session_count: u64) -> Self {
        Self {
            result_type,
            sending_mta_ip: None,
            receiving_mx_hostname: None,
            receiving_mx_helo: None,
            receiving_ip: None,
            failed_session_count,
            additional_information: None,
            failure_reason_code: None,
            extra: Extra::new(),
        }
    }
}

/// `policy-type` (RFC 8460 §4.4). Unknown values are kept verbatim in [`PolicyType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PolicyType {
    /// `tlsa`: DANE (RFC 7672).
    Tlsa,
    /// `sts`: MTA-STS (RFC 8461).
    Sts,
    /// `no-policy-found`.
    NoPolicyFound,
    /// Any other value, verbatim.
    Other(String),
}

impl PolicyType {
    /// The JSON string for this type.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Tlsa => "tlsa",
            Self::Sts => "sts",
            Self::NoPolicyFound => "no-policy-found",
            Self::Other(s) => s,
        }
    }

    /// The known type whose name is exactly `s`, or `Other(s)`.
    pub fn from_name(s: &str) -> Self {
        match s {
            "tlsa" => Self::Tlsa,
            "sts" => Self::Sts,
            "no-policy-found" => Self::NoPolicyFound,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// `result-type` (RFC 8460 §4.3, IANA "STARTTLS Validation Result Types"). The registry can
/// grow, so unknown values are kept verbatim in [`ResultType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResultType {
    /// `starttls-not-supported`.
    StarttlsNotSupported,
    /// `certificate-host-mismatch`.
    CertificateHostMismatch,
    /// `certificate-expired`.
    CertificateExpired,
    /// `certificate-not-trusted`.
    CertificateNotTrusted,
    /// `validation-failure`.
    ValidationFailure,
    /// `tlsa-invalid`.
    TlsaInvalid,
    /// `dnssec-invalid`.
    DnssecInvalid,
    /// `dane-required`.
    DaneRequired,
    /// `sts-policy-fetch-error`.
    StsPolicyFetchError,
    /// `sts-policy-invalid`.
    StsPolicyInvalid,
    /// `sts-webpki-invalid`.
    StsWebpkiInvalid,
    /// Any other value, verbatim.
    Other(String),
}

impl ResultType {
    /// The eleven values of the IANA registry (RFC 8460 §6.6), in registry order.
    pub const KNOWN: [Self; 11] = [
        Self::StarttlsNotSupported,
        Self::CertificateHostMismatch,
        Self::CertificateExpired,
        Self::CertificateNotTrusted,
        Self::ValidationFailure,
        Self::TlsaInvalid,
        Self::DnssecInvalid,
        Self::DaneRequired,
        Self::StsPolicyFetchError,
        Self::StsPolicyInvalid,
        Self::StsWebpkiInvalid,
    ];

    /// The JSON string for this type.
    pub fn as_str(&self) -> &str {
        match self {
            Self::StarttlsNotSupported => "starttls-not-supported",
            Self::CertificateHostMismatch => "certificate-host-mismatch",
            Self::CertificateExpired => "certificate-expired",
            Self::CertificateNotTrusted => "certificate-not-trusted",
            Self::ValidationFailure => "validation-failure",
            Self::TlsaInvalid => "tlsa-invalid",
            Self::DnssecInvalid => "dnssec-invalid",
            Self::DaneRequired => "dane-required",
            Self::StsPolicyFetchError => "sts-policy-fetch-error",
            Self::StsPolicyInvalid => "sts-policy-invalid",
            Self::StsWebpkiInvalid => "sts-webpki-invalid",
            Self::Other(s) => s,
        }
    }

    /// The registered type whose name is exactly `s`, or `Other(s)`.
    pub fn from_name(s: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or_else(|| Self::Other(s.to_owned()))
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PolicyType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for ResultType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Reads the exact name ([`ResultType::from_name`]): unregistered values are kept verbatim.
impl<'de> serde::Deserialize<'de> for ResultType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::from_name(&s))
    }
}

/// Formats a date-time as RFC 3339 in UTC with `Z` (fractional seconds only when non-zero).
pub(crate) fn format_datetime(dt: OffsetDateTime) -> String {
    let dt = dt.to_offset(time::UtcOffset::UTC);
    // Rfc3339 formatting fails only for years outside 0..=9999, which our parser never yields;
    // fall back to a plain rendering rather than panicking.
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| dt.to_string())
}

fn ser_datetime<S: Serializer>(dt: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_datetime(*dt))
}

/// What the tolerant parser repaired or noticed while reading a report (RFC 8460 deviations seen
/// in real traffic, see DECISIONS D25). The report was still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    /// Stable identifier, e.g. `report.mx-host-string`. See [`crate::report`] for the list.
    pub id: &'static str,
    /// `warning`: the document deviates from RFC 8460 and was repaired; `info`: allowed or
    /// commonly seen, noted for completeness.
    pub severity: Severity,
    /// JSON path of the value concerned, e.g. `policies[0].policy.mx-host` (empty for the
    /// whole document).
    pub path: String,
    /// What was seen and what was done about it.
    pub message: String,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{} [{}]: {}", self.severity, self.id, self.message)
        } else {
            write!(
                f,
                "{} [{}] at {}: {}",
                self.severity, self.id, self.path, self.message
            )
        }
    }
}

/// A report as read by the tolerant parser, with what had to be repaired.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReport {
    /// The normalised report.
    pub report: Report,
    /// Repairs and notes, in document order.
    pub warnings: Vec<Repair>,
    /// The JSON document exactly as the reporter sent it (after gzip and MIME decoding, before
    /// any change of text encoding), kept beside the normalised form (D25): at most its first
    /// [`MAX_RAW_JSON`](super::MAX_RAW_JSON) bytes (less when the mail's memory budget is
    /// nearly spent); a `report.raw-json-truncated` note says when it was cut.
    pub raw_json: Vec<u8>,
    /// The size of the whole JSON document, in bytes (`raw_json.len()` unless it was cut).
    pub raw_json_size: u64,
}

impl ParsedReport {
    /// The normalised report as RFC 8460 JSON, followed by `"warnings": [...]` and
    /// `"source": source` (e.g. the file name), as the CLI prints it per report.
    pub fn to_json(&self, source: &str) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.report).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut value {
            let warnings = serde_json::to_value(&self.warnings)
                .unwrap_or(serde_json::Value::Array(Vec::new()));
            map.insert("warnings".to_owned(), warnings);
            map.insert(
                "source".to_owned(),
                serde_json::Value::String(source.to_owned()),
            );
        }
        value
    }

    /// [`ParsedReport::to_json`] as compact JSON text, written straight from the report
    /// instead of through a [`serde_json::Value`] tree (the same text, byte for byte; about
    /// half the time and allocations when a store keeps every normalised report).
    pub fn to_json_string(&self, source: &str) -> String {
        // The tree's `insert` replaces an unknown top-level member named `warnings` or `source`
        // in place; written straight, it would come out twice. Rare: take the tree then.
        if self.report.extra.contains_key("warnings") || self.report.extra.contains_key("source") {
            return self.to_json(source).to_string();
        }
        #[derive(Serialize)]
        struct Normalised<'a> {
            #[serde(flatten)]
            report: &'a Report,
            warnings: &'a [Repair],
            source: &'a str,
        }
        serde_json::to_string(&Normalised {
            report: &self.report,
            warnings: &self.warnings,
            source,
        })
        .unwrap_or_else(|_| self.to_json(source).to_string())
    }

    /// True when no repair has [`Severity::Warning`] (only notes, if anything).
    pub fn is_clean(&self) -> bool {
        !self
            .warnings
            .iter()
            .any(|w| w.severity >= Severity::Warning)
    }
}
