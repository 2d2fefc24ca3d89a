//! TLS-RPT reports (RFC 8460 §4): model, tolerant parsing and strict generation.
//!
//! # Reading (DECISIONS D25)
//! [`parse_reports`] takes raw bytes and decides what they are from the bytes alone (never from a
//! Content-Type or file name): gzip (magic `1f 8b`), JSON (`{` or `[` after an optional UTF-8 BOM
//! and white space), otherwise an RFC 5322 mail whose parts are searched (any Content-Type,
//! attachment or inline, nested `message/rfc822` too) for gzip or JSON that reads as a report.
//! [`parse_report_json`] reads one JSON document; [`parse_report_mail`] reads a mail only.
//!
//! The reader is tolerant: what real reporters get wrong is repaired and recorded as a
//! [`Repair`] in [`ParsedReport::warnings`], with a stable id:
//!
//! | id | severity | what was seen → what we did |
//! |---|---|---|
//! | `report.mx-host-string` | warning | `mx-host` a string (erratum 6241) → one-element array |
//! | `report.mx-host-prefix` | warning | `mx-host` entry `mx: host` → `host` |
//! | `report.mx-host-pattern-key` | warning | key `mx-host-pattern` → `mx-host` |
//! | `report.additional-info-uri-key` | warning | key `additional-info-uri` → `additional-information` |
//! | `report.datetime-no-zone` | warning | date-time without zone → read as UTC |
//! | `report.datetime-space` | info | space instead of `T` |
//! | `report.datetime-lowercase` | info | lowercase `t` / `z` |
//! | `report.datetime-offset` | info | offset other than `Z` → converted to UTC |
//! | `report.datetime-nonstandard` | warning | offset `+hhmm`/`+hh`, white space around |
//! | `report.datetime-leap-second` | info | `:60` → `:59` |
//! | `report.date-range-reversed` | warning | end before start (kept as sent) |
//! | `report.organization-name-missing` | warning | missing or null → empty string |
//! | `report.contact-info-missing` | warning | missing or null → `None` |
//! | `report.policy-string-missing` | info for `no-policy-found`, else warning | → empty array |
//! | `report.policy-string-string` | warning | a string → one-element array |
//! | `report.tlsa-policy-string-json` | warning | `tlsa` `policy-string` is one string holding a JSON array (Microsoft) → unpacked, one element per record; the original is quoted in the message |
//! | `report.policy-domain-missing` | info for `no-policy-found`, else warning | missing, null or empty → `None` |
//! | `report.policy-type-unknown` | warning | unregistered `policy-type` → `PolicyType::Other`, verbatim |
//! | `report.result-type-unknown` | warning | unregistered `result-type` → `ResultType::Other`, verbatim |
//! | `report.keyword-case` | warning | `STS`, ` sts ` → registered value |
//! | `report.failure-details-missing` | info | missing → empty array |
//! | `report.failure-details-object` | warning | a single object → one-element array |
//! | `report.failure-detail-incomplete` | info | no sending IP / receiving host / receiving IP (not flagged for `sts-policy-fetch-error` and `sts-policy-invalid`) |
//! | `report.ip-empty` | warning | `""` (Google) → removed |
//! | `report.ip-noncanonical` | warning | `[::1]`, white space, IPv4 leading zeros → parsed |
//! | `report.ip-invalid` | warning | not an IP → removed, value quoted in the message |
//! | `report.count-missing` | warning | missing count → 0 (e.g. mail-auth's rpt03.json) |
//! | `report.count-string` | warning | `"12"` → 12 |
//! | `report.count-not-integer` | warning | `12.0` → 12 |
//! | `report.count-not-interoperable` | info | count above 2^53 (I-JSON) |
//! | `report.failure-count-mismatch` | info | total failures ≠ sum of details (allowed by the RFC) |
//! | `report.duplicate-key` | warning | duplicate member (I-JSON forbids) → last one wins |
//! | `report.bom` | info | UTF-8 BOM before the JSON → ignored |
//! | `report.utf16` | warning | the JSON is UTF-16 (BE or LE, with or without BOM) → converted to UTF-8 |
//! | `report.latin1` | warning | bytes that are not UTF-8 → read as Latin-1 (ISO-8859-1) characters |
//! | `report.lone-surrogate` | warning | a `\u` escape naming a lone UTF-16 surrogate → U+FFFD |
//! | `report.unknown-member-dropped` | warning | an unknown member larger than [`MAX_UNKNOWN_MEMBER`] (or than what is left of [`MAX_UNKNOWN_TOTAL`]) → read past, not kept |
//! | `report.raw-json-truncated` | info | JSON text longer than [`MAX_RAW_JSON`] → only that prefix kept in [`ParsedReport::raw_json`] |
//! | `report.base64-unpadded` | warning | a base64 part of the mail without its `=` padding → decoded anyway |
//! | `report.mail-truncated` | warning | the mail goes past [`MAX_MIME_PARTS`], [`MAX_MIME_HEADER_FIELDS`] or [`MAX_MIME_DEPTH`] → the reports found before that point kept, the rest not examined |
//! | `report.too-many-warnings` | info | more than [`MAX_WARNINGS`] repairs; the rest were counted |
//! | `report.mail-part-unreadable` | warning | other parts of the same mail looked like gzip or JSON but are not readable reports (or went past a budget of the mail) → this report kept, each refused part named with its error |
//!
//! Unknown members of every object are kept in its `extra` map and written back out, within
//! [`MAX_UNKNOWN_MEMBER`] each and [`MAX_UNKNOWN_TOTAL`] per report.
//!
//! What is fatal ([`ReportError`]): bytes that are not gzip, JSON or a mail; corrupt gzip; gzip
//! holding something other than JSON; malformed JSON (syntax, invalid UTF-8, NUL bytes outside
//! strings, nesting deeper than 128, numbers out of range, trailing data); a document that is
//! not an object, or an object with none of the report members; missing (or `null`)
//! `policies`, `date-range`, `start-datetime`, `end-datetime`, `report-id`, `policies[].policy`,
//! `policy-type`, `policies[].summary`, `failure-details[].result-type`; a date-time the
//! tolerant reader cannot read; a known member of the wrong JSON type (e.g. `policies` not an
//! array, a count that is negative, fractional or not a number); exceeding a limit below; a mail
//! with no part holding a readable report.
//!
//! # Writing (DECISIONS D26)
//! [`generate_json`], [`gzip`] and [`report_filename`] produce our own reports strictly: see
//! their docs for what they refuse.
//!
//! # Printing
//! [`write_text`] writes a parsed report as readable text, every foreign field escaped;
//! [`JsonArray`] writes reports as one JSON array, one at a time.
//!
//! # Limits
//! Every limit is a `pub const` and a field of [`Limits`]; the `*_with` functions take custom
//! limits. They bound memory and work whatever the input:
//!
//! - per input: [`MAX_INPUT_SIZE`] bytes read at all; a mail is cut before it goes past
//!   [`MAX_MIME_PARTS`] parts or [`MAX_MIME_HEADER_FIELDS`] header fields, which is what the MIME
//!   parser's memory grows with;
//! - per report: gzip is decompressed while the JSON is read (never whole in memory) and stops
//!   at [`MAX_DECOMPRESSED_SIZE`]; the tree the JSON parser builds is charged an estimate of
//!   its memory and stops at [`MAX_REPORT_MEMORY`]; unknown members are kept up to
//!   [`MAX_UNKNOWN_MEMBER`] each and [`MAX_UNKNOWN_TOTAL`] together; the raw JSON kept beside
//!   the report is cut at [`MAX_RAW_JSON`];
//! - per mail (one input): [`MAX_MAIL_DECOMPRESSED`] decompressed bytes and
//!   [`MAX_MAIL_MEMORY`] of kept reports across all its parts; a part that would go past them is
//!   refused with [`ReportError::TooLarge`] naming the budget, and the reports already read are
//!   kept (with `report.mail-part-unreadable`);
//! - per run (several inputs, [`RunBudget`]): [`MAX_RUN_DECOMPRESSED`] decompressed bytes.
//!
//! Peak memory is then a small multiple of [`MAX_MAIL_MEMORY`]: BENCHMARKS.md, "report parse
//! memory", has the worst inputs found and their figures.

mod datetime;
mod decode;
mod error;
mod fast;
mod generate;
mod json;
mod mime;
mod model;
mod parse;
mod render;
mod repair;
mod text;

pub use error::{GenerateError, ReportError};
#[doc(hidden)]
pub use fast::without_fast_path;
pub use generate::{generate_json, gzip, report_filename};
pub use model::{
    DateRange, Extra, FailureDetail, ParsedReport, Policy, PolicyResult, PolicyType, Repair,
    Report, ResultType, Summary,
};
pub use render::{JsonArray, write_text};

/// Largest input accepted, in bytes, before any decoding: 32 MiB (a mail, a gzip file or JSON).
pub const MAX_INPUT_SIZE: usize = 32 * 1024 * 1024;
/// Largest decompressed gzip data accepted for one report, in bytes: 64 MiB. Decompression is
/// streamed into the JSON parser and stops one byte past it, so a gzip bomb costs work up to
/// this much and no buffer of that size.
pub const MAX_DECOMPRESSED_SIZE: usize = 64 * 1024 * 1024;
/// Most decompressed bytes for all the gzip parts of one mail together: 256 MiB.
pub const MAX_MAIL_DECOMPRESSED: usize = 256 * 1024 * 1024;
/// Most decompressed bytes for a whole run of several inputs sharing one [`RunBudget`]
/// (e.g. all files of one `mtasts report parse`): 4 GiB.
pub const MAX_RUN_DECOMPRESSED: u64 = 4 * 1024 * 1024 * 1024;
/// Most memory the parsed JSON of one report may take, as estimated while it is built (every
/// value, member and string counted): 128 MiB. Room for [`MAX_FAILURE_DETAILS`] complete
/// failure details.
pub const MAX_REPORT_MEMORY: usize = 128 * 1024 * 1024;
/// Most memory the reports of one mail may take together, as estimated for
/// [`MAX_REPORT_MEMORY`], raw JSON kept included: 256 MiB.
pub const MAX_MAIL_MEMORY: usize = 256 * 1024 * 1024;
/// Most memory one unknown JSON member may take and still be kept in an `extra` map: 64 KiB.
/// A larger one is read past and reported (`report.unknown-member-dropped`).
pub const MAX_UNKNOWN_MEMBER: usize = 64 * 1024;
/// Most memory all unknown members of one report may take together: 1 MiB.
pub const MAX_UNKNOWN_TOTAL: usize = 1024 * 1024;
/// Most bytes of a report's JSON text kept in [`ParsedReport::raw_json`]: 1 MiB.
pub const MAX_RAW_JSON: usize = 1024 * 1024;
/// Most MIME parts examined in one mail, nested messages included: 1000. Reports found in them
/// are read (with `report.mail-truncated`) when the mail has more.
pub const MAX_MIME_PARTS: usize = 1000;
/// Most header-like lines (`name:` at the start of a line) in one mail before it is cut:
/// 100 000. The MIME parser takes about 150 bytes per header field.
pub const MAX_MIME_HEADER_FIELDS: usize = 100_000;
/// Deepest nesting of `message/rfc822` parts accepted: 8 (the top-level message is depth 0).
pub const MAX_MIME_DEPTH: usize = 8;
/// Most `policies` accepted in one report: 10 000.
pub const MAX_POLICIES: usize = 10_000;
/// Most `failure-details` accepted in one policy: 100 000.
pub const MAX_FAILURE_DETAILS: usize = 100_000;
/// Most [`Repair`]s kept per report: 200; past it one `report.too-many-warnings` counts the rest.
pub const MAX_WARNINGS: usize = 200;

/// Resource limits of the parser. [`Limits::default`] uses the `MAX_*` constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_INPUT_SIZE`].
    pub max_input: usize,
    /// See [`MAX_DECOMPRESSED_SIZE`].
    pub max_decompressed: usize,
    /// See [`MAX_MAIL_DECOMPRESSED`].
    pub max_mail_decompressed: usize,
    /// See [`MAX_RUN_DECOMPRESSED`]: the budget of the [`RunBudget`] the functions without one
    /// start.
    pub max_run_decompressed: u64,
    /// See [`MAX_REPORT_MEMORY`].
    pub max_report_memory: usize,
    /// See [`MAX_MAIL_MEMORY`].
    pub max_mail_memory: usize,
    /// See [`MAX_UNKNOWN_MEMBER`].
    pub max_unknown_member: usize,
    /// See [`MAX_UNKNOWN_TOTAL`].
    pub max_unknown_total: usize,
    /// See [`MAX_RAW_JSON`].
    pub max_raw_json: usize,
    /// See [`MAX_MIME_PARTS`].
    pub max_mime_parts: usize,
    /// See [`MAX_MIME_HEADER_FIELDS`].
    pub max_mime_header_fields: usize,
    /// See [`MAX_MIME_DEPTH`].
    pub max_mime_depth: usize,
    /// See [`MAX_POLICIES`].
    pub max_policies: usize,
    /// See [`MAX_FAILURE_DETAILS`].
    pub max_failure_details: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input: MAX_INPUT_SIZE,
            max_decompressed: MAX_DECOMPRESSED_SIZE,
            max_mail_decompressed: MAX_MAIL_DECOMPRESSED,
            max_run_decompressed: MAX_RUN_DECOMPRESSED,
            max_report_memory: MAX_REPORT_MEMORY,
            max_mail_memory: MAX_MAIL_MEMORY,
            max_unknown_member: MAX_UNKNOWN_MEMBER,
            max_unknown_total: MAX_UNKNOWN_TOTAL,
            max_raw_json: MAX_RAW_JSON,
            max_mime_parts: MAX_MIME_PARTS,
            max_mime_header_fields: MAX_MIME_HEADER_FIELDS,
            max_mime_depth: MAX_MIME_DEPTH,
            max_policies: MAX_POLICIES,
            max_failure_details: MAX_FAILURE_DETAILS,
        }
    }
}

/// The decompression budget of a run: several inputs read one after the other (the files of
/// one `mtasts report parse`, the mails of an intake). Each gzip'd report spends what it
/// decompresses; once the budget is spent, further gzip'd reports are refused with
/// [`ReportError::TooLarge`] ("decompressed data of this run").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunBudget {
    limit: u64,
    left: u64,
}

impl RunBudget {
    /// A budget of `limit` decompressed bytes (usually [`Limits::max_run_decompressed`]).
    pub fn new(limit: u64) -> Self {
        Self { limit, left: limit }
    }

    /// The budget it started with.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Decompressed bytes still allowed.
    pub fn left(&self) -> u64 {
        self.left
    }

    pub(crate) fn spend(&mut self, bytes: u64) {
        self.left = self.left.saturating_sub(bytes);
    }
}

impl Default for RunBudget {
    fn default() -> Self {
        Self::new(MAX_RUN_DECOMPRESSED)
    }
}

/// Reads every TLS-RPT report in `bytes`: gzip, JSON or a MIME mail, sniffed from the bytes.
///
/// Gzip and JSON input give exactly one report; a mail gives one per part holding a report
/// (parts that look like gzip or JSON but are not reports are skipped when another part is a
/// report).
///
/// # Errors
/// Any [`ReportError`]: see the [module docs](self) for what is fatal.
///
/// # Example
/// ```
/// let json = br#"{"organization-name":"Org","date-range":{"start-datetime":"2024-01-01T00:00:00Z",
///   "end-datetime":"2024-01-01T23:59:59Z"},"contact-info":"tlsrpt@org.example",
///   "report-id":"1","policies":[{"policy":{"policy-type":"sts","policy-string":[],
///   "policy-domain":"example.com","mx-host":"mx.example.com"},
///   "summary":{"total-successful-session-count":5,"total-failure-session-count":0},
///   "failure-details":[]}]}"#;
/// let reports = mtasts_core::report::parse_reports(json)?;
/// assert_eq!(reports[0].report.policies[0].policy.mx_host, ["mx.example.com"]);
/// assert_eq!(reports[0].warnings[0].id, "report.mx-host-string");
/// # Ok::<(), mtasts_core::report::ReportError>(())
/// ```
pub fn parse_reports(bytes: &[u8]) -> Result<Vec<ParsedReport>, ReportError> {
    parse_reports_with(bytes, &Limits::default())
}

/// [`parse_reports`] with custom limits.
///
/// # Errors
/// As [`parse_reports`].
pub fn parse_reports_with(bytes: &[u8], limits: &Limits) -> Result<Vec<ParsedReport>, ReportError> {
    mime::parse_any(
        bytes,
        limits,
        &mut RunBudget::new(limits.max_run_decompressed),
    )
}

/// [`parse_reports_with`], spending from a [`RunBudget`] shared with the other inputs of a run.
///
/// # Errors
/// As [`parse_reports`]; [`ReportError::TooLarge`] ("decompressed data of this run") once the
/// run's budget is spent.
pub fn parse_reports_in(
    bytes: &[u8],
    limits: &Limits,
    run: &mut RunBudget,
) -> Result<Vec<ParsedReport>, ReportError> {
    mime::parse_any(bytes, limits, run)
}

/// Reads one JSON report (not gzip, not mail), tolerantly.
///
/// # Errors
/// [`ReportError::TooLarge`] above [`MAX_INPUT_SIZE`], [`ReportError::Json`] and the structural
/// errors listed in the [module docs](self).
pub fn parse_report_json(bytes: &[u8]) -> Result<ParsedReport, ReportError> {
    parse_report_json_with(bytes, &Limits::default())
}

/// [`parse_report_json`] with custom limits.
///
/// # Errors
/// As [`parse_report_json`].
pub fn parse_report_json_with(bytes: &[u8], limits: &Limits) -> Result<ParsedReport, ReportError> {
    mime::parse_json_only(
        bytes,
        limits,
        &mut RunBudget::new(limits.max_run_decompressed),
    )
}

/// Reads the reports in an RFC 5322 / MIME mail (RFC 8460 §5.3), whatever the parts' types.
///
/// # Errors
/// [`ReportError::Unrecognised`] when the bytes have no header fields,
/// [`ReportError::NoReportInMail`] when no part holds a report, the MIME limits
/// ([`ReportError::TooManyMimeParts`], [`ReportError::TooManyHeaderFields`],
/// [`ReportError::MimeTooDeep`]) when they stopped the reading before any report was found,
/// [`ReportError::TooLarge`].
pub fn parse_report_mail(bytes: &[u8]) -> Result<Vec<ParsedReport>, ReportError> {
    parse_report_mail_with(bytes, &Limits::default())
}

/// [`parse_report_mail`] with custom limits.
///
/// # Errors
/// As [`parse_report_mail`].
pub fn parse_report_mail_with(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<ParsedReport>, ReportError> {
    mime::parse_mail(
        bytes,
        limits,
        &mut RunBudget::new(limits.max_run_decompressed),
    )
}

/// Decompresses gzip data (multi-member allowed) under `limits.max_decompressed`.
///
/// # Errors
/// [`ReportError::Gzip`] for corrupt data, [`ReportError::TooLarge`] past the limit.
pub fn gunzip(bytes: &[u8], limits: &Limits) -> Result<Vec<u8>, ReportError> {
    mime::gunzip(bytes, limits)
}
