//! Tolerant reading of one TLS-RPT JSON document into a [`Report`] (RFC 8460 §4.4, DECISIONS
//! D25). See [`crate::report`] for which deviations are repaired and which are fatal.

use super::datetime::parse_datetime;
use super::error::ReportError;
use super::json;
use super::model::{
    DateRange, Extra, FailureDetail, ParsedReport, Policy, PolicyResult, PolicyType, Repair,
    Report, ResultType, Summary,
};
use super::{Limits, MAX_WARNINGS};
use crate::diag::Severity;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr};
use time::OffsetDateTime;

/// Largest integer I-JSON numbers carry exactly (RFC 7493 §2.2).
const MAX_EXACT_INT: u64 = 1 << 53;

const REPORT_KEYS: [&str; 4] = ["organization-name", "date-range", "report-id", "policies"];

/// Collects repairs, at most [`MAX_WARNINGS`] of them.
pub(super) struct Ctx {
    warnings: Vec<Repair>,
    dropped: usize,
    /// Counts not written as plain integers, by path (see [`json::Parsed::counts`]).
    counts: HashMap<String, json::CountText>,
}

impl Ctx {
    /// A context that starts with `notes` (the repairs made while decoding the text).
    pub(super) fn new(notes: Vec<Repair>, counts: HashMap<String, json::CountText>) -> Self {
        let mut ctx = Self {
            warnings: Vec::new(),
            dropped: 0,
            counts,
        };
        for n in notes {
            ctx.warn(n.id, n.severity, &n.path, n.message);
        }
        ctx
    }

    /// Records a repair; `path` is turned into text only when the repair is kept.
    pub(super) fn warn(
        &mut self,
        id: &'static str,
        severity: Severity,
        path: impl Display,
        message: String,
    ) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(Repair {
                id,
                severity,
                path: path.to_string(),
                message,
            });
        } else {
            self.dropped += 1;
        }
    }

    pub(super) fn finish(mut self) -> Vec<Repair> {
        if self.dropped > 0 {
            self.warnings.push(Repair {
                id: "report.too-many-warnings",
                severity: Severity::Info,
                path: String::new(),
                message: format!("{} more warnings were left out", self.dropped),
            });
        }
        self.warnings
    }
}

/// Turns a JSON document read by [`json::parse`] into a report. `notes` are the repairs made
/// while decoding the text (they come first); `raw` is the kept prefix of the `raw_size` bytes
/// of JSON text.
pub(crate) fn build_report(
    parsed: json::Parsed,
    notes: Vec<Repair>,
    raw: Vec<u8>,
    raw_size: u64,
    limits: &Limits,
) -> Result<ParsedReport, ReportError> {
    let mut ctx = Ctx::new(notes, parsed.counts);
    let report = read_report(&mut ctx, parsed.value)?;
    for path in parsed.dups {
        ctx.warn(
            "report.duplicate-key",
            Severity::Warning,
            &path,
            "member name appears more than once (I-JSON, RFC 7493 §2.3, forbids this); the \
             last value was used"
                .to_owned(),
        );
    }
    ctx.dropped += parsed.dups_more + parsed.dropped_more;
    for d in parsed.dropped {
        ctx.warn(
            "report.unknown-member-dropped",
            Severity::Warning,
            &d.path,
            format!(
                "this member is not in RFC 8460 and would take more than {} bytes in memory \
                 (the limit for unknown members, {} per member and {} per report); it was read \
                 past and not kept",
                d.cap, limits.max_unknown_member, limits.max_unknown_total
            ),
        );
    }
    Ok(ParsedReport {
        report,
        warnings: ctx.finish(),
        raw_json: raw,
        raw_json_size: raw_size,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Describes a value for an error message: its type, plus the value itself when short.
fn describe(v: &Value) -> String {
    match v {
        Value::Array(_) | Value::Object(_) | Value::Null => type_name(v).to_owned(),
        other => {
            let text = other.to_string();
            if text.len() <= 40 {
                format!("{} ({text})", type_name(v))
            } else {
                type_name(v).to_owned()
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn invalid(path: String, expected: &'static str, found: &Value) -> ReportError {
    ReportError::InvalidField {
        path,
        expected,
        found: describe(found),
    }
}

/// Removes `key`, keeping the order of the remaining members; `null` counts as absent.
fn take(obj: &mut Extra, key: &str) -> Option<Value> {
    obj.shift_remove(key).filter(|v| !v.is_null())
}

fn take_required(obj: &mut Extra, parent: &str, key: &str) -> Result<Value, ReportError> {
    take(obj, key).ok_or_else(|| ReportError::MissingField {
        path: join(parent, key),
    })
}

fn as_object(v: Value, path: String) -> Result<Extra, ReportError> {
    match v {
        Value::Object(o) => Ok(o),
        other => Err(invalid(path, "an object", &other)),
    }
}

fn as_string(v: Value, path: String) -> Result<String, ReportError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(invalid(path, "a string", &other)),
    }
}

fn opt_string(obj: &mut Extra, parent: &str, key: &str) -> Result<Option<String>, ReportError> {
    take(obj, key)
        .map(|v| as_string(v, join(parent, key)))
        .transpose()
}

fn read_report(ctx: &mut Ctx, value: Value) -> Result<Report, ReportError> {
    let mut obj = match value {
        Value::Object(o) => o,
        other => {
            return Err(ReportError::NotAnObject {
                found: type_name(&other),
            });
        }
    };
    if !REPORT_KEYS.iter().any(|k| obj.contains_key(*k)) {
        let mut members: Vec<&str> = obj.keys().take(10).map(String::as_str).collect();
        if obj.len() > 10 {
            members.push("...");
        }
        let members = if members.is_empty() {
            "none".to_owned()
        } else {
            members.join(", ")
        };
        return Err(ReportError::NotAReport { members });
    }

    let policies = match take_required(&mut obj, "", "policies")? {
        Value::Array(a) => a,
        other => return Err(invalid("policies".to_owned(), "an array", &other)),
    };
    let date_range = read_date_range(ctx, take_required(&mut obj, "", "date-range")?)?;
    let report_id = as_string(
        take_required(&mut obj, "", "report-id")?,
        "report-id".to_owned(),
    )?;

    let organization_name = organization_name(ctx, opt_string(&mut obj, "", "organization-name")?);
    let contact_info = contact_info(ctx, opt_string(&mut obj, "", "contact-info")?);

    let mut results = Vec::with_capacity(policies.len());
    for (i, p) in policies.into_iter().enumerate() {
        results.push(read_policy_result(ctx, p, &format!("policies[{i}]"))?);
    }

    Ok(Report {
        organization_name,
        date_range,
        contact_info,
        report_id,
        policies: results,
        extra: obj,
    })
}

/// `organization-name`, or the empty string with a repair.
pub(super) fn organization_name(ctx: &mut Ctx, name: Option<String>) -> String {
    name.unwrap_or_else(|| {
        ctx.warn(
            "report.organization-name-missing",
            Severity::Warning,
            "organization-name",
            "`organization-name` is missing (required by RFC 8460 §4.4); left empty".to_owned(),
        );
        String::new()
    })
}

/// `contact-info`, with a repair when it is missing.
pub(super) fn contact_info(ctx: &mut Ctx, contact: Option<String>) -> Option<String> {
    if contact.is_none() {
        ctx.warn(
            "report.contact-info-missing",
            Severity::Warning,
            "contact-info",
            "`contact-info` is missing or null (required by RFC 8460 §4.4)".to_owned(),
        );
    }
    contact
}

/// Reads the date-time `text` found at `path`, recording its repairs.
pub(super) fn datetime(
    ctx: &mut Ctx,
    text: String,
    path: impl Display,
) -> Result<OffsetDateTime, ReportError> {
    let Some((dt, notes)) = parse_datetime(&text) else {
        return Err(ReportError::InvalidDateTime {
            path: path.to_string(),
            value: text,
        });
    };
    for (id, severity, message) in notes {
        ctx.warn(id, severity, &path, message);
    }
    Ok(dt)
}

/// Notes a `date-range` that ends before it starts.
pub(super) fn check_date_range(ctx: &mut Ctx, start: OffsetDateTime, end: OffsetDateTime) {
    if end < start {
        ctx.warn(
            "report.date-range-reversed",
            Severity::Warning,
            "date-range",
            "`end-datetime` is before `start-datetime`".to_owned(),
        );
    }
}

fn read_date_range(ctx: &mut Ctx, v: Value) -> Result<DateRange, ReportError> {
    let mut obj = as_object(v, "date-range".to_owned())?;
    let mut read = |ctx: &mut Ctx, key: &str| -> Result<OffsetDateTime, ReportError> {
        let path = join("date-range", key);
        let text = as_string(take_required(&mut obj, "date-range", key)?, path.clone())?;
        datetime(ctx, text, path)
    };
    let start = read(ctx, "start-datetime")?;
    let end = read(ctx, "end-datetime")?;
    check_date_range(ctx, start, end);
    Ok(DateRange {
        start,
        end,
        extra: obj,
    })
}

fn read_policy_result(ctx: &mut Ctx, v: Value, path: &str) -> Result<PolicyResult, ReportError> {
    let mut obj = as_object(v, path.to_owned())?;
    let policy_path = join(path, "policy");
    let policy = read_policy(ctx, take_required(&mut obj, path, "policy")?, &policy_path)?;
    let summary_path = join(path, "summary");
    let mut summary_obj = as_object(
        take_required(&mut obj, path, "summary")?,
        summary_path.clone(),
    )?;
    let summary = Summary {
        total_successful_session_count: read_count(
            ctx,
            &mut summary_obj,
            &summary_path,
            "total-successful-session-count",
        )?,
        total_failure_session_count: read_count(
            ctx,
            &mut summary_obj,
            &summary_path,
            "total-failure-session-count",
        )?,
        extra: summary_obj,
    };

    let fd_path = join(path, "failure-details");
    let details = match take(&mut obj, "failure-details") {
        None => {
            details_missing(ctx, &fd_path);
            Vec::new()
        }
        Some(Value::Array(a)) => a,
        Some(Value::Object(o)) => {
            ctx.warn(
                "report.failure-details-object",
                Severity::Warning,
                &fd_path,
                "`failure-details` is a single object, not an array (RFC 8460 §4.4); wrapped \
                 in an array"
                    .to_owned(),
            );
            vec![Value::Object(o)]
        }
        Some(other) => return Err(invalid(fd_path, "an array", &other)),
    };
    let mut failure_details = Vec::with_capacity(details.len());
    for (j, d) in details.into_iter().enumerate() {
        failure_details.push(read_failure_detail(ctx, d, &format!("{fd_path}[{j}]"))?);
    }

    check_failure_count(ctx, &summary, &failure_details, &summary_path);
    Ok(PolicyResult {
        policy,
        summary,
        failure_details,
        extra: obj,
    })
}

/// Notes a missing `failure-details` (read as an empty array).
pub(super) fn details_missing(ctx: &mut Ctx, path: impl Display) {
    ctx.warn(
        "report.failure-details-missing",
        Severity::Info,
        path,
        "`failure-details` is missing; read as an empty array".to_owned(),
    );
}

/// Notes a total of failures that is not the sum of the details' counts.
pub(super) fn check_failure_count(
    ctx: &mut Ctx,
    summary: &Summary,
    details: &[FailureDetail],
    summary_path: impl Display,
) {
    let sum = details
        .iter()
        .fold(0u64, |acc, d| acc.saturating_add(d.failed_session_count));
    if sum != summary.total_failure_session_count {
        ctx.warn(
            "report.failure-count-mismatch",
            Severity::Info,
            summary_path,
            format!(
                "`total-failure-session-count` is {} but the `failed-session-count`s add up \
                 to {sum}; RFC 8460 does not require them to match (failure types may \
                 overlap, some failures may go unreported)",
                summary.total_failure_session_count
            ),
        );
    }
}

/// Matches a registered keyword, tolerating case and surrounding space with a warning.
fn keyword<T>(
    ctx: &mut Ctx,
    raw: String,
    path: impl Display,
    from_name: fn(&str) -> T,
    is_other: fn(&T) -> bool,
    unknown_id: &'static str,
) -> T {
    let exact = from_name(&raw);
    if !is_other(&exact) {
        return exact;
    }
    let folded = from_name(&raw.trim().to_ascii_lowercase());
    if !is_other(&folded) {
        ctx.warn(
            "report.keyword-case",
            Severity::Warning,
            &path,
            format!(
                "{raw:?} is not in the exact registered spelling; read as the registered value"
            ),
        );
        return folded;
    }
    ctx.warn(
        unknown_id,
        Severity::Warning,
        path,
        format!("{raw:?} is not a registered value (RFC 8460 §4.4, §6.6); kept verbatim"),
    );
    exact
}

/// `policy-type`, matched as [`keyword`] does.
pub(super) fn policy_type(ctx: &mut Ctx, raw: String, path: impl Display) -> PolicyType {
    keyword(
        ctx,
        raw,
        path,
        PolicyType::from_name,
        |t| matches!(t, PolicyType::Other(_)),
        "report.policy-type-unknown",
    )
}

/// `result-type`, matched as [`keyword`] does.
pub(super) fn result_type(ctx: &mut Ctx, raw: String, path: impl Display) -> ResultType {
    keyword(
        ctx,
        raw,
        path,
        ResultType::from_name,
        |t| matches!(t, ResultType::Other(_)),
        "report.result-type-unknown",
    )
}

/// How a missing `policy-string` or `policy-domain` is rated: expected for `no-policy-found`.
fn expected_severity(policy_type: &PolicyType) -> Severity {
    if *policy_type == PolicyType::NoPolicyFound {
        Severity::Info
    } else {
        Severity::Warning
    }
}

/// `policy-string` or `mx-host` as sent: one string, or an array of strings.
pub(super) enum Strings {
    One(String),
    Many(Vec<String>),
}

fn strings(v: Value, path: &str) -> Result<Strings, ReportError> {
    match v {
        Value::String(s) => Ok(Strings::One(s)),
        other => string_array(other, path).map(Strings::Many),
    }
}

fn read_policy(ctx: &mut Ctx, v: Value, path: &str) -> Result<Policy, ReportError> {
    let mut obj = as_object(v, path.to_owned())?;
    let type_path = join(path, "policy-type");
    let raw_type = as_string(
        take_required(&mut obj, path, "policy-type")?,
        type_path.clone(),
    )?;
    let policy_type = policy_type(ctx, raw_type, &type_path);

    let ps_path = join(path, "policy-string");
    let sent = take(&mut obj, "policy-string")
        .map(|v| strings(v, &ps_path))
        .transpose()?;
    let policy_string = policy_strings(ctx, sent, &policy_type, &ps_path);

    let domain_path = join(path, "policy-domain");
    let policy_domain = policy_domain(
        ctx,
        opt_string(&mut obj, path, "policy-domain")?,
        &policy_type,
        &domain_path,
    );

    let mx_path = join(path, "mx-host");
    let mx_value = match take(&mut obj, "mx-host") {
        Some(v) => Some(v),
        None => {
            let alias = take(&mut obj, "mx-host-pattern");
            if alias.is_some() {
                ctx.warn(
                    "report.mx-host-pattern-key",
                    Severity::Warning,
                    &join(path, "mx-host-pattern"),
                    "member is named `mx-host-pattern` (the RFC 8460 §4.4 description label) \
                     instead of the JSON key `mx-host`; read as `mx-host`"
                        .to_owned(),
                );
            }
            alias
        }
    };
    let sent = mx_value.map(|v| strings(v, &mx_path)).transpose()?;
    let mx_host = mx_hosts(ctx, sent, &mx_path);

    Ok(Policy {
        policy_type,
        policy_string,
        policy_domain,
        mx_host,
        extra: obj,
    })
}

/// `policy-string` as read: missing and single strings repaired, Microsoft's packed TLSA
/// records unpacked.
pub(super) fn policy_strings(
    ctx: &mut Ctx,
    sent: Option<Strings>,
    policy_type: &PolicyType,
    path: impl Display,
) -> Vec<String> {
    let mut policy_string = match sent {
        None => {
            ctx.warn(
                "report.policy-string-missing",
                expected_severity(policy_type),
                &path,
                "`policy-string` is missing; read as an empty array".to_owned(),
            );
            Vec::new()
        }
        Some(Strings::One(s)) => {
            ctx.warn(
                "report.policy-string-string",
                Severity::Warning,
                &path,
                "`policy-string` is a string, not an array of strings (RFC 8460 §4.4); \
                 wrapped in an array"
                    .to_owned(),
            );
            vec![s]
        }
        Some(Strings::Many(v)) => v,
    };
    if *policy_type == PolicyType::Tlsa
        && policy_string.len() == 1
        && let Some(unpacked) = unpack_json_array(&policy_string[0])
    {
        ctx.warn(
            "report.tlsa-policy-string-json",
            Severity::Warning,
            &path,
            format!(
                "`policy-string` held one string that is itself a JSON array of {} TLSA \
                     records (seen from Microsoft); unpacked to one element per record as \
                     RFC 8460 §4.5 wants. Original: {:?}",
                unpacked.len(),
                policy_string[0]
            ),
        );
        policy_string = unpacked;
    }
    policy_string
}

/// `policy-domain` as read: empty counts as missing.
pub(super) fn policy_domain(
    ctx: &mut Ctx,
    sent: Option<String>,
    policy_type: &PolicyType,
    path: impl Display,
) -> Option<String> {
    let policy_domain = sent.filter(|d| !d.trim().is_empty());
    if policy_domain.is_none() {
        ctx.warn(
            "report.policy-domain-missing",
            expected_severity(policy_type),
            path,
            "`policy-domain` is missing or empty (required by RFC 8460 §4.4)".to_owned(),
        );
    }
    policy_domain
}

/// `mx-host` as read: a single string wrapped, `mx:` prefixes stripped.
pub(super) fn mx_hosts(ctx: &mut Ctx, sent: Option<Strings>, path: impl Display) -> Vec<String> {
    let mut mx_host = match sent {
        None => Vec::new(),
        Some(Strings::One(s)) => {
            ctx.warn(
                "report.mx-host-string",
                Severity::Warning,
                &path,
                "`mx-host` is a string, not an array (RFC 8460 erratum 6241); wrapped in an \
                 array"
                    .to_owned(),
            );
            vec![s]
        }
        Some(Strings::Many(v)) => v,
    };
    for (k, host) in mx_host.iter_mut().enumerate() {
        if let Some(stripped) = strip_mx_prefix(host) {
            ctx.warn(
                "report.mx-host-prefix",
                Severity::Warning,
                format_args!("{path}[{k}]"),
                format!("{host:?} carries the policy-file key `mx:`; stripped to {stripped:?}"),
            );
            *host = stripped;
        }
    }
    mx_host
}

fn string_array(v: Value, path: &str) -> Result<Vec<String>, ReportError> {
    let Value::Array(items) = v else {
        return Err(invalid(path.to_owned(), "an array of strings", &v));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| as_string(item, format!("{path}[{i}]")))
        .collect()
}

/// `["3 1 1 AB..", "3 1 1 CD.."]` packed into one string: the unpacked strings, if that is what
/// it is.
fn unpack_json_array(s: &str) -> Option<Vec<String>> {
    if !s.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s)
        .ok()
        .filter(|v| !v.is_empty())
}

/// `mx: host` → `host` (case-insensitive key, any space after the colon).
fn strip_mx_prefix(host: &str) -> Option<String> {
    let t = host.trim_start();
    let head = t.get(..3)?;
    if !head.eq_ignore_ascii_case("mx:") {
        return None;
    }
    Some(t[3..].trim().to_owned())
}

fn read_count(ctx: &mut Ctx, obj: &mut Extra, parent: &str, key: &str) -> Result<u64, ReportError> {
    let path = join(parent, key);
    let Some(v) = take(obj, key) else {
        return Ok(count_missing(ctx, key, &path));
    };
    let n = match &v {
        // Written as something else than a plain integer: judged from the exact text, never
        // from serde_json's float (which reads `1.0000000000000000001` as 1.0).
        Value::Number(_) if let Some(form) = ctx.counts.get(&path) => match form.exact {
            Some(n) => {
                ctx.warn(
                    "report.count-not-integer",
                    Severity::Warning,
                    &path,
                    format!(
                        "count written as {} instead of an integer; its exact value is {n}",
                        form.text
                    ),
                );
                n
            }
            None => {
                return Err(ReportError::InvalidField {
                    path,
                    expected: "a non-negative integer",
                    found: format!("a number ({})", form.text),
                });
            }
        },
        Value::Number(n) => match n.as_u64() {
            Some(n) => n,
            None => return Err(invalid(path, "a non-negative integer", &v)),
        },
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) => {
                ctx.warn(
                    "report.count-string",
                    Severity::Warning,
                    &path,
                    format!("count is the string {s:?}, not a JSON number (RFC 8460 §4.4)"),
                );
                n
            }
            Err(_) => return Err(invalid(path, "a non-negative integer", &v)),
        },
        _ => return Err(invalid(path, "a non-negative integer", &v)),
    };
    Ok(count_checked(ctx, n, &path))
}

/// A missing count: 0, with a repair.
pub(super) fn count_missing(ctx: &mut Ctx, key: &str, path: impl Display) -> u64 {
    ctx.warn(
        "report.count-missing",
        Severity::Warning,
        path,
        format!("`{key}` is missing (required by RFC 8460 §4.4); read as 0"),
    );
    0
}

/// A count, noted when I-JSON cannot carry it exactly.
pub(super) fn count_checked(ctx: &mut Ctx, n: u64, path: impl Display) -> u64 {
    if n > MAX_EXACT_INT {
        ctx.warn(
            "report.count-not-interoperable",
            Severity::Info,
            path,
            format!("{n} is above 2^53, which I-JSON (RFC 7493 §2.2) cannot carry exactly"),
        );
    }
    n
}

fn read_ip(
    ctx: &mut Ctx,
    obj: &mut Extra,
    parent: &str,
    key: &str,
) -> Result<Option<IpAddr>, ReportError> {
    let path = join(parent, key);
    let Some(text) = opt_string(obj, parent, key)? else {
        return Ok(None);
    };
    Ok(ip_from_text(ctx, text, &path))
}

/// An IP address as sent: empty, bracketed or zero-padded ones repaired, others removed.
pub(super) fn ip_from_text(ctx: &mut Ctx, text: String, path: impl Display) -> Option<IpAddr> {
    let t = text.trim();
    if t.is_empty() {
        ctx.warn(
            "report.ip-empty",
            Severity::Warning,
            &path,
            "IP address is the empty string (seen from Google); removed".to_owned(),
        );
        return None;
    }
    let bare = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if bare != text {
            ctx.warn(
                "report.ip-noncanonical",
                Severity::Warning,
                &path,
                format!("IP address {text:?} has extra characters; read as {ip}"),
            );
        }
        return Some(ip);
    }
    if let Some(ip) = lenient_ipv4(bare) {
        ctx.warn(
            "report.ip-noncanonical",
            Severity::Warning,
            &path,
            format!("IPv4 address {text:?} has leading zeros (RFC 8460 §4.4); read as {ip}"),
        );
        return Some(IpAddr::V4(ip));
    }
    ctx.warn(
        "report.ip-invalid",
        Severity::Warning,
        &path,
        format!("{text:?} is not an IP address; removed"),
    );
    None
}

/// Dotted quad with leading zeros, read as decimal.
fn lenient_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

fn read_failure_detail(ctx: &mut Ctx, v: Value, path: &str) -> Result<FailureDetail, ReportError> {
    let mut obj = as_object(v, path.to_owned())?;
    let rt_path = join(path, "result-type");
    let raw = as_string(
        take_required(&mut obj, path, "result-type")?,
        rt_path.clone(),
    )?;
    let result_type = result_type(ctx, raw, &rt_path);
    let sending_mta_ip = read_ip(ctx, &mut obj, path, "sending-mta-ip")?;
    let receiving_mx_hostname = opt_string(&mut obj, path, "receiving-mx-hostname")?;
    let receiving_mx_helo = opt_string(&mut obj, path, "receiving-mx-helo")?;
    let receiving_ip = read_ip(ctx, &mut obj, path, "receiving-ip")?;
    let failed_session_count = read_count(ctx, &mut obj, path, "failed-session-count")?;
    let additional_information = match opt_string(&mut obj, path, "additional-information")? {
        Some(s) => Some(s),
        None => {
            let alias = opt_string(&mut obj, path, "additional-info-uri")?;
            if alias.is_some() {
                ctx.warn(
                    "report.additional-info-uri-key",
                    Severity::Warning,
                    &join(path, "additional-info-uri"),
                    "member is named `additional-info-uri` (the RFC 8460 §4.4 description \
                     label) instead of the JSON key `additional-information`; read as \
                     `additional-information`"
                        .to_owned(),
                );
            }
            alias
        }
    };
    let failure_reason_code = opt_string(&mut obj, path, "failure-reason-code")?;

    let detail = FailureDetail {
        result_type,
        sending_mta_ip,
        receiving_mx_hostname,
        receiving_mx_helo,
        receiving_ip,
        failed_session_count,
        additional_information,
        failure_reason_code,
        extra: obj,
    };
    check_detail_complete(ctx, &detail, path);
    Ok(detail)
}

/// Notes a failure detail without the addresses the RFC schema lists.
pub(super) fn check_detail_complete(ctx: &mut Ctx, detail: &FailureDetail, path: impl Display) {
    // Policy-fetch and policy-syntax failures happen before any SMTP session, so addresses are
    // meaningless there; for the other types the RFC schema lists them.
    if !matches!(
        detail.result_type,
        ResultType::StsPolicyFetchError | ResultType::StsPolicyInvalid
    ) {
        let missing: Vec<&str> = [
            ("sending-mta-ip", detail.sending_mta_ip.is_none()),
            (
                "receiving-mx-hostname",
                detail.receiving_mx_hostname.is_none(),
            ),
            ("receiving-ip", detail.receiving_ip.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, m)| m.then_some(k))
        .collect();
        if !missing.is_empty() {
            ctx.warn(
                "report.failure-detail-incomplete",
                Severity::Info,
                path,
                format!("no {} in this failure detail", missing.join(", ")),
            );
        }
    }
}
