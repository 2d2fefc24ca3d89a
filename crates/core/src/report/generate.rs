//! Strict generation of our own TLS-RPT reports (RFC 8460 §4, §5.1, §5.2; DECISIONS D26).

use super::error::GenerateError;
use super::model::{Extra, Report, format_datetime};
use flate2::{Compression, GzBuilder};
use std::io::Write;
use time::{Duration, Time, UtcOffset};

const MAX_EXACT_INT: u64 = 1 << 53;

/// Serialises `report` as RFC 8460 §4.4 JSON, refusing anything a strict reader could reject.
///
/// What comes out: `policies`, `policy-string`, `mx-host` and `failure-details` always arrays;
/// the key `additional-information`; date-times RFC 3339 in UTC with `Z`; `policy-domain`,
/// `mx-host` entries (a leading `*.` is kept), `receiving-mx-hostname` and the domain of
/// `contact-info` as lowercase A-labels; IPv6 in RFC 5952 form. Compact JSON, UTF-8.
///
/// # Errors
/// - [`GenerateError::Missing`]: empty `organization-name` or `report-id`, no `contact-info`,
///   no `policy-domain`.
/// - [`GenerateError::InvalidContact`]: `contact-info` is not `local@domain`.
/// - [`GenerateError::InvalidDomain`]: a domain that IDNA (UTS #46, STD3 rules) cannot turn into
///   an A-label, including empty labels and a trailing dot.
/// - [`GenerateError::NotOneUtcDay`]: the range is not one full UTC day (RFC 8460 §4.1 SHOULD,
///   made a MUST for our reports): it must start at `00:00:00Z` and end either at `23:59:59Z`
///   the same day (the RFC example's inclusive form) or at `00:00:00Z` the next day.
/// - [`GenerateError::UnknownValue`]: a `PolicyType::Other` or `ResultType::Other`.
/// - [`GenerateError::CountTooLarge`]: a count above 2^53 (I-JSON).
/// - [`GenerateError::UnknownMembers`]: a non-empty `extra` map anywhere.
pub fn generate_json(report: &Report) -> Result<String, GenerateError> {
    let r = normalised(report)?;
    // Serialising strings, numbers and string-keyed maps into a String cannot fail.
    Ok(serde_json::to_string(&r).expect("a Report always serialises"))
}

fn a_label(value: &str, path: &str) -> Result<String, GenerateError> {
    idna::domain_to_ascii_strict(value)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GenerateError::InvalidDomain {
            path: path.to_owned(),
            value: value.to_owned(),
        })
}

fn mx_pattern(value: &str, path: &str) -> Result<String, GenerateError> {
    match value.strip_prefix("*.") {
        Some(rest) => Ok(format!("*.{}", a_label(rest, path)?)),
        None => a_label(value, path),
    }
}

fn no_extra(extra: &Extra, path: &str) -> Result<(), GenerateError> {
    if extra.is_empty() {
        return Ok(());
    }
    let members: Vec<&str> = extra.keys().map(String::as_str).collect();
    Err(GenerateError::UnknownMembers {
        path: path.to_owned(),
        members: members.join(", "),
    })
}

fn count(value: u64, path: String) -> Result<(), GenerateError> {
    if value > MAX_EXACT_INT {
        return Err(GenerateError::CountTooLarge { path, value });
    }
    Ok(())
}

fn required(value: &str, path: &str) -> Result<(), GenerateError> {
    if value.trim().is_empty() {
        return Err(GenerateError::Missing {
            path: path.to_owned(),
        });
    }
    Ok(())
}

fn normalised(report: &Report) -> Result<Report, GenerateError> {
    let mut r = report.clone();
    required(&r.organization_name, "organization-name")?;
    required(&r.report_id, "report-id")?;
    no_extra(&r.extra, "")?;

    let contact = r.contact_info.as_deref().ok_or(GenerateError::Missing {
        path: "contact-info".to_owned(),
    })?;
    let (local, domain) = contact
        .rsplit_once('@')
        .filter(|(l, d)| !l.is_empty() && !d.is_empty())
        .ok_or_else(|| GenerateError::InvalidContact {
            value: contact.to_owned(),
        })?;
    r.contact_info = Some(format!("{local}@{}", a_label(domain, "contact-info")?));

    let start = r.date_range.start.to_offset(UtcOffset::UTC);
    let end = r.date_range.end.to_offset(UtcOffset::UTC);
    let day_start = start.time() == Time::MIDNIGHT;
    let next = start.checked_add(Duration::DAY);
    let full_day =
        day_start && next.is_some_and(|n| end == n || Some(end) == n.checked_sub(Duration::SECOND));
    if !full_day {
        return Err(GenerateError::NotOneUtcDay {
            start: format_datetime(start),
            end: format_datetime(end),
        });
    }
    r.date_range.start = start;
    r.date_range.end = end;
    no_extra(&r.date_range.extra, "date-range")?;

    for (i, p) in r.policies.iter_mut().enumerate() {
        let path = format!("policies[{i}]");
        no_extra(&p.extra, &path)?;
        let pp = format!("{path}.policy");
        no_extra(&p.policy.extra, &pp)?;
        if let super::PolicyType::Other(v) = &p.policy.policy_type {
            return Err(GenerateError::UnknownValue {
                path: format!("{pp}.policy-type"),
                value: v.clone(),
            });
        }
        let dpath = format!("{pp}.policy-domain");
        let domain = p
            .policy
            .policy_domain
            .as_deref()
            .ok_or_else(|| GenerateError::Missing {
                path: dpath.clone(),
            })?;
        p.policy.policy_domain = Some(a_label(domain, &dpath)?);
        for (k, mx) in p.policy.mx_host.iter_mut().enumerate() {
            *mx = mx_pattern(mx, &format!("{pp}.mx-host[{k}]"))?;
        }
        let sp = format!("{path}.summary");
        no_extra(&p.summary.extra, &sp)?;
        count(
            p.summary.total_successful_session_count,
            format!("{sp}.total-successful-session-count"),
        )?;
        count(
            p.summary.total_failure_session_count,
            format!("{sp}.total-failure-session-count"),
        )?;
        for (j, d) in p.failure_details.iter_mut().enumerate() {
            let fp = format!("{path}.failure-details[{j}]");
            no_extra(&d.extra, &fp)?;
            if let super::ResultType::Other(v) = &d.result_type {
                return Err(GenerateError::UnknownValue {
                    path: format!("{fp}.result-type"),
                    value: v.clone(),
                });
            }
            if let Some(h) = &d.receiving_mx_hostname {
                d.receiving_mx_hostname = Some(a_label(h, &format!("{fp}.receiving-mx-hostname"))?);
            }
            count(d.failed_session_count, format!("{fp}.failed-session-count"))?;
        }
    }
    Ok(r)
}

/// gzip-compresses a report for delivery (RFC 8460 §5.2 SHOULD), deterministically: no file
/// name, modification time 0, default compression.
pub fn gzip(json: &[u8]) -> Vec<u8> {
    let mut enc = GzBuilder::new().write(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    enc.write_all(json).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// The report file name of RFC 8460 §5.1:
/// `sender "!" policy-domain "!" begin "!" end [ "!" unique-id ] ".json.gz"`.
///
/// `submitter_domain` is the domain of our `contact-info`, `begin_unix`/`end_unix` the date
/// range in Unix seconds. Both domains are converted to A-labels. An empty `unique_id` is left
/// out (the ABNF makes it optional).
///
/// # Errors
/// [`GenerateError::InvalidDomain`] for a domain without an A-label form;
/// [`GenerateError::InvalidUniqueId`] when `unique_id` is not letters and digits only.
pub fn report_filename(
    submitter_domain: &str,
    policy_domain: &str,
    begin_unix: u64,
    end_unix: u64,
    unique_id: &str,
) -> Result<String, GenerateError> {
    let sender = a_label(submitter_domain, "sender")?;
    let domain = a_label(policy_domain, "policy-domain")?;
    if !unique_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(GenerateError::InvalidUniqueId {
            value: unique_id.to_owned(),
        });
    }
    let mut name = format!("{sender}!{domain}!{begin_unix}!{end_unix}");
    if !unique_id.is_empty() {
        name.push('!');
        name.push_str(unique_id);
    }
    name.push_str(".json.gz");
    Ok(name)
}
