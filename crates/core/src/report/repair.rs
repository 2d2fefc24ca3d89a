//! The repairs of the tolerant reading (DECISIONS D25), value by value, shared by the tolerant
//! reader ([`super::parse`]) and the fast path ([`super::fast`]): both call them in the same
//! order, so a report gets the same repairs whichever path read it. JSON paths are taken as
//! anything [`Display`] and written out only when a repair is recorded.

use super::MAX_WARNINGS;
use super::datetime::parse_datetime;
use super::error::ReportError;
use super::json;
use super::model::{FailureDetail, PolicyType, Repair, ResultType, Summary};
use crate::diag::Severity;
use std::collections::HashMap;
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr};
use time::OffsetDateTime;

/// Largest integer I-JSON numbers carry exactly (RFC 7493 §2.2).
const MAX_EXACT_INT: u64 = 1 << 53;

/// Collects repairs, at most [`MAX_WARNINGS`] of them.
pub(super) struct Ctx {
    warnings: Vec<Repair>,
    /// Repairs left out past [`MAX_WARNINGS`].
    pub(super) dropped: usize,
    /// Counts not written as plain integers, by path (see [`json::Parsed::counts`]).
    pub(super) counts: HashMap<String, json::CountText>,
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

/// `policy-string` or `mx-host` as sent: one string, or an array of strings.
pub(super) enum Strings {
    One(String),
    Many(Vec<String>),
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
