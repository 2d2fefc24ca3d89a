//! The JSON shapes of stored reports, shared by `mtasts report` and the admin API
//! (docs/json-output.md): one report as listed, one with its raw and normalised forms, and the
//! summary per domain and day.

use mtasts_store::{DayTotal, FailureTotal, ReportDetail, StoredReport};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The most failure rows a summary lists per domain (the largest first).
pub const MAX_FAILURES_PER_DOMAIN: usize = 50;

/// `--since` / `?since=`: a span back from `now` (`14d`, `36h`, at most 100,000 units) or an
/// RFC 3339 time.
///
/// # Errors
/// What was expected, in words.
pub fn parse_since(s: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let span = |n: &str, unit: i64| {
        n.parse::<i64>()
            .ok()
            .filter(|n| (0..=100_000).contains(n))
            .map(|n| now - time::Duration::seconds(n * unit))
    };
    let parsed = if let Some(n) = s.strip_suffix('d') {
        span(n, 86_400)
    } else if let Some(n) = s.strip_suffix('h') {
        span(n, 3_600)
    } else {
        OffsetDateTime::parse(s, &Rfc3339).ok()
    };
    parsed.ok_or_else(|| format!("{s:?}: expected a span like 14d or 36h, or an RFC 3339 time"))
}

/// RFC 3339, or empty for a time that cannot be written (never for a stored one).
pub fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A report as `report list` and `GET /v1/reports` give it.
pub fn listed(r: &StoredReport) -> Value {
    json!({
        "id": r.id,
        "report_id": r.report_id,
        "organization": r.organization,
        "policy_domain": r.policy_domain,
        "contact": r.contact,
        "begin": stamp(r.begin),
        "end": stamp(r.end),
        "success": r.success,
        "failure": r.failure,
        "copies": r.copies,
        "received_at": stamp(r.received_at),
        "via": r.via,
        "source": r.source,
        "dkim": r.dkim,
        "dkim_detail": r.dkim_detail,
    })
}

/// A report as `report show` and `GET /v1/reports/{id}` give it.
pub fn shown(d: &ReportDetail) -> Value {
    let mut v = listed(&d.report);
    v["normalised"] = serde_json::from_str(&d.normalised).unwrap_or(Value::Null);
    v["raw"] = Value::String(String::from_utf8_lossy(&d.raw_json).into_owned());
    v["raw_size"] = json!(d.raw_size);
    v["raw_truncated"] = json!(d.raw_size > d.raw_json.len() as u64);
    v
}

/// The summary as `report summary` and `GET /v1/reports/summary` give it: per policy domain,
/// totals, the days and the failure breakdown (at most [`MAX_FAILURES_PER_DOMAIN`] rows, the
/// largest first). Domains come in the order of their first day row.
pub fn summary(days: &[DayTotal], failures: &[FailureTotal], since: OffsetDateTime) -> Value {
    let mut domains: Vec<Value> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for d in days {
        let i = *index.entry(d.policy_domain.as_str()).or_insert_with(|| {
            domains.push(json!({
                "policy_domain": d.policy_domain, "reports": 0, "success": 0,
                "failure": 0, "days": [], "failures": [],
            }));
            domains.len() - 1
        });
        let Some(v) = domains.get_mut(i) else {
            continue;
        };
        for (k, n) in [
            ("reports", d.reports),
            ("success", d.success),
            ("failure", d.failure),
        ] {
            v[k] = json!(v[k].as_u64().unwrap_or(0).saturating_add(n));
        }
        if let Some(a) = v["days"].as_array_mut() {
            a.push(json!({
                "day": d.day.to_string(), "reports": d.reports,
                "success": d.success, "failure": d.failure,
            }));
        }
    }
    for f in failures {
        if let Some(i) = index.get(f.policy_domain.as_str())
            && let Some(a) = domains
                .get_mut(*i)
                .and_then(|v| v["failures"].as_array_mut())
            && a.len() < MAX_FAILURES_PER_DOMAIN
        {
            a.push(json!({
                "result_type": f.result_type, "receiving_mx": f.receiving_mx,
                "sending_ip": f.sending_ip, "organization": f.organization,
                "sessions": f.sessions,
            }));
        }
    }
    for v in &mut domains {
        let s = v["success"].as_u64().unwrap_or(0);
        let f = v["failure"].as_u64().unwrap_or(0);
        v["failure_rate"] = if s.saturating_add(f) == 0 {
            Value::Null
        } else {
            json!(f as f64 / (s + f) as f64)
        };
    }
    json!({ "since": stamp(since), "domains": domains })
}

/// The same summary as [`summary`], as JSON text built one domain at a time (`days` ordered by
/// domain, as the store gives them): memory is the text and one domain's value, not a value
/// tree of every domain (365 MiB for 14 days of 10,000 domains).
pub fn summary_text(days: &[DayTotal], failures: &[FailureTotal], since: OffsetDateTime) -> String {
    let mut by: std::collections::HashMap<&str, Vec<FailureTotal>> =
        std::collections::HashMap::new();
    for f in failures {
        by.entry(f.policy_domain.as_str())
            .or_default()
            .push(f.clone());
    }
    let mut out = format!("{{\"since\":{},\"domains\":[", Value::String(stamp(since)));
    for (i, chunk) in days
        .chunk_by(|a, b| a.policy_domain == b.policy_domain)
        .enumerate()
    {
        let f = by
            .remove(chunk[0].policy_domain.as_str())
            .unwrap_or_default();
        let mut one = summary(chunk, &f, since);
        if i > 0 {
            out.push(',');
        }
        out.push_str(&one["domains"][0].take().to_string());
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_text_is_the_summary_written_domain_by_domain() {
        let since = time::macros::datetime!(2026-01-01 0:00 UTC);
        let day = |d: &str, n: u8, s: u64, f: u64| DayTotal {
            policy_domain: d.into(),
            day: time::Date::from_calendar_date(2026, time::Month::January, n).unwrap(),
            reports: 1,
            success: s,
            failure: f,
        };
        let days = [
            day("", 1, 1, 0),
            day("a.test", 1, 5, 1),
            day("a.test", 2, 7, 0),
            day("b.test", 2, 0, 3),
        ];
        let failure = |d: &str, n: u64| FailureTotal {
            policy_domain: d.into(),
            result_type: "certificate-expired".into(),
            receiving_mx: format!("mx.{d}"),
            sending_ip: String::new(),
            organization: "Google Inc.".into(),
            sessions: n,
        };
        let failures = [failure("b.test", 3), failure("a.test", 1)];
        let text: Value = serde_json::from_str(&summary_text(&days, &failures, since)).unwrap();
        assert_eq!(text, summary(&days, &failures, since));
        assert_eq!(text["domains"].as_array().unwrap().len(), 3);
        let empty: Value = serde_json::from_str(&summary_text(&[], &[], since)).unwrap();
        assert_eq!(empty, summary(&[], &[], since));
    }

    #[test]
    fn since_takes_days_hours_or_a_time_and_nothing_else() {
        let now = time::macros::datetime!(2026-12-06 12:00 UTC);
        assert_eq!(
            parse_since("14d", now).unwrap(),
            time::macros::datetime!(2026-11-22 12:00 UTC)
        );
        assert_eq!(
            parse_since("36h", now).unwrap(),
            time::macros::datetime!(2026-12-05 0:00 UTC)
        );
        assert_eq!(
            parse_since("2026-01-01T00:00:00Z", now).unwrap(),
            time::macros::datetime!(2026-01-01 0:00 UTC)
        );
        for bad in ["", "d", "-1d", "100001d", "14w", "yesterday", "1e3d"] {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
