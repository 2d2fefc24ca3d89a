//! Errors of the tolerant report parser and of the strict report generator.

use thiserror::Error;

/// Why bytes could not be read as a TLS-RPT report (RFC 8460 §4.4, §5.3).
///
/// Only problems that leave no usable report are errors; everything the parser can repair is a
/// [`Repair`](super::Repair) instead (see [`crate::report`] for which is which).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The input (or a decoded MIME part) is larger than a limit.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large, e.g. "input" or "decompressed gzip data".
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The data starts with the gzip magic (`1f 8b`) but does not decompress.
    #[error("gzip data is corrupt: {message}")]
    Gzip {
        /// The decoder's message.
        message: String,
    },
    /// The gzip data decompressed to something that is not a JSON object.
    #[error("gzip data does not contain a JSON report (decompressed data starts with {start:?})")]
    NotJsonInGzip {
        /// The first bytes of the decompressed data, lossily decoded.
        start: String,
    },
    /// The JSON text is malformed (syntax, invalid UTF-8, nesting deeper than 128, a number out
    /// of range, trailing data...).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// The JSON document is not an object (RFC 8460 §4.4: a report is one JSON object).
    #[error("a TLS-RPT report is a JSON object, but this document is {found}")]
    NotAnObject {
        /// The JSON type found, e.g. "an array".
        found: &'static str,
    },
    /// The JSON object has none of the members of a TLS-RPT report.
    #[error(
        "this JSON object is not a TLS-RPT report: it has none of `organization-name`, \
         `date-range`, `report-id`, `policies` (its members: {members})"
    )]
    NotAReport {
        /// The object's first member names, comma separated.
        members: String,
    },
    /// A member the parser cannot do without is missing (or `null`).
    #[error("required member `{path}` is missing")]
    MissingField {
        /// JSON path of the missing member, e.g. `date-range.start-datetime`.
        path: String,
    },
    /// A member has a JSON type or value the parser cannot use.
    #[error("`{path}` must be {expected}, found {found}")]
    InvalidField {
        /// JSON path of the member.
        path: String,
        /// What RFC 8460 §4.4 wants there.
        expected: &'static str,
        /// What was there (type, or the value when short).
        found: String,
    },
    /// A date-time that even the tolerant reader cannot read (RFC 3339 §5.6).
    #[error("`{path}` is not an RFC 3339 date-time: {value:?}")]
    InvalidDateTime {
        /// JSON path of the member.
        path: String,
        /// The value as sent.
        value: String,
    },
    /// An array has more elements than the parser accepts. Reading stops at the first element
    /// past the limit.
    #[error("`{path}` has more than {limit} elements")]
    TooManyElements {
        /// JSON path of the array.
        path: String,
        /// How many elements were read when reading stopped: the limit + 1.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The mail has more MIME parts than [`MAX_MIME_PARTS`](super::MAX_MIME_PARTS). An error
    /// only when no report was found in the parts examined; otherwise the reports carry a
    /// `report.mail-truncated` warning.
    #[error("the mail has more than {limit} MIME parts")]
    TooManyMimeParts {
        /// The limit.
        limit: usize,
    },
    /// The mail has more header-like lines than
    /// [`MAX_MIME_HEADER_FIELDS`](super::MAX_MIME_HEADER_FIELDS). As for
    /// [`Self::TooManyMimeParts`], an error only when no report was found before that point.
    #[error("the mail has more than {limit} header fields")]
    TooManyHeaderFields {
        /// The limit.
        limit: usize,
    },
    /// Nested `message/rfc822` parts go deeper than [`MAX_MIME_DEPTH`](super::MAX_MIME_DEPTH).
    #[error("the mail nests messages deeper than {limit} levels")]
    MimeTooDeep {
        /// The limit.
        limit: usize,
    },
    /// The bytes are neither gzip, nor JSON, nor an RFC 5322 message.
    #[error(
        "not a TLS-RPT report: the data is not gzip (no 1f 8b magic), not JSON (does not start \
         with `{{`) and not an RFC 5322 mail (no header fields)"
    )]
    Unrecognised,
    /// The mail parsed, but none of its parts holds a TLS-RPT report (RFC 8460 §5.3).
    #[error("{}", no_report_message(.candidates, .first_error))]
    NoReportInMail {
        /// How many parts looked like gzip or JSON.
        candidates: usize,
        /// Why the first such part was rejected.
        first_error: Option<Box<Self>>,
    },
}

fn no_report_message(candidates: &usize, first: &Option<Box<ReportError>>) -> String {
    match first {
        None => "the mail has no part holding a TLS-RPT report (no gzip or JSON attachment or \
                 inline part)"
            .to_owned(),
        Some(e) => format!(
            "the mail has no part holding a readable TLS-RPT report: {candidates} part(s) \
             looked like gzip or JSON, the first was rejected: {e}"
        ),
    }
}

impl ReportError {
    pub(crate) fn json(e: &serde_json::Error) -> Self {
        Self::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }
}

/// Why [`generate_json`](super::generate_json) or [`report_filename`](super::report_filename)
/// refused to produce a report (RFC 8460 §4, §5.1; DECISIONS D26).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// A required string member is empty or absent.
    #[error("`{path}` is required (RFC 8460 §4.4)")]
    Missing {
        /// JSON path of the member.
        path: String,
    },
    /// A domain cannot be converted to an A-label (RFC 8460 §4.4, §5.1).
    #[error("`{path}` is not a valid domain name: {value:?}")]
    InvalidDomain {
        /// JSON path (or filename part) of the domain.
        path: String,
        /// The value given.
        value: String,
    },
    /// `contact-info` is not an addr-spec of the form `local@domain`.
    #[error("`contact-info` must be an addr-spec `local@domain`, got {value:?}")]
    InvalidContact {
        /// The value given.
        value: String,
    },
    /// The date range is not one full UTC day (RFC 8460 §4.1).
    #[error(
        "the report must cover one full UTC day (RFC 8460 §4.1): start at 00:00:00Z and end \
         at 23:59:59Z or at 00:00:00Z the next day, got {start} to {end}"
    )]
    NotOneUtcDay {
        /// The start as RFC 3339.
        start: String,
        /// The end as RFC 3339.
        end: String,
    },
    /// A `policy-type` or `result-type` outside the registry.
    #[error("`{path}` has the unregistered value {value:?}")]
    UnknownValue {
        /// JSON path of the member.
        path: String,
        /// The value.
        value: String,
    },
    /// A count above 2^53, which I-JSON (RFC 7493) cannot carry exactly.
    #[error("`{path}` is {value}, above 2^53 (I-JSON, RFC 7493 §2.2)")]
    CountTooLarge {
        /// JSON path of the count.
        path: String,
        /// The count.
        value: u64,
    },
    /// The report carries members outside the RFC 8460 schema.
    #[error("`{path}` has members outside the RFC 8460 schema: {members}")]
    UnknownMembers {
        /// JSON path of the object.
        path: String,
        /// The member names, comma separated.
        members: String,
    },
    /// The unique id of a report filename must be letters and digits (RFC 8460 §5.1).
    #[error("the filename unique-id must be 1*(ALPHA / DIGIT), got {value:?}")]
    InvalidUniqueId {
        /// The value given.
        value: String,
    },
}
