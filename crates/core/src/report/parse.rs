//! Tolerant reading of one TLS-RPT JSON document into a [`Report`] (RFC 8460 §4.4, DECISIONS
//! D25). See [`crate::report`] for which deviations are repaired and which are fatal.

use super::Limits;
use super::error::ReportError;
use super::json;
use super::model::{
    DateRange, Extra, FailureDetail, ParsedReport, Policy, PolicyResult, Repair, Report, Summary,
};
use super::repair::{
    Ctx, Strings, check_date_range, check_detail_complete, check_failure_count, contact_info,
    count_checked, count_missing, datetime, details_missing, ip_from_text, mx_hosts,
    organization_name, policy_domain, policy_strings, policy_type, result_type,
};
use crate::diag::Severity;
use serde_json::Value;
use std::net::IpAddr;
use time::OffsetDateTime;

const REPORT_KEYS: [&str; 4] = ["organization-name", "date-range", "report-id", "policies"];

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
                    join(path, "mx-host-pattern"),
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
                    join(path, "additional-info-uri"),
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
