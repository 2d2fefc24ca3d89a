//! The fast path for well-formed reports: typed deserialisation straight into the report's
//! fields, without the `serde_json::Value` tree the tolerant reader ([`super::parse`]) builds.
//!
//! It accepts only the shapes real reporters send when they follow RFC 8460: every member
//! known, none twice, none `null`, strings where strings belong, counts written as plain
//! integers, and the few common deviations that are a matter of shape alone (a missing
//! `failure-details`, `contact-info` or count; `policy-string` or `mx-host` as one string). Its
//! repairs come from the same functions as the tolerant reader's, called in the same order, so
//! the warnings are the same. On anything else (an unknown or duplicate member, a `null`, a
//! wrong type, a count written otherwise, any limit that could matter, malformed JSON) it gives
//! up and the tolerant reader reads the document from the start: the result is the same either
//! way, only faster here. `fast::tests` checks that on every test file and on generated
//! documents.

use super::error::ReportError;
use super::json::{Caps, ENTRY, NODE};
use super::model::{
    DateRange, Extra, FailureDetail, Policy, PolicyResult, Repair, Report, Summary,
};
use super::repair::{self, Ctx, Strings};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

/// Longest JSON text tried on the fast path: what it builds before it can give up stays small.
const MAX_FAST: usize = 1 << 20;

thread_local! {
    static DISABLED: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the fast path turned off on this thread: everything goes through the tolerant
/// reader. For tests and fuzzing, which compare the two.
#[doc(hidden)]
pub fn without_fast_path<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            DISABLED.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DISABLED.with(|d| d.replace(true)));
    f()
}

/// A report read on the fast path: the report, its repairs (after `notes`) and the estimated
/// memory the tolerant reader would have charged for its tree ([`super::json::Parsed::cost`]).
pub(super) struct Fast {
    pub report: Report,
    pub warnings: Vec<Repair>,
    pub cost: usize,
}

/// Reads `body` (UTF-8 JSON text, without BOM) on the fast path; `None` when the tolerant
/// reader must do it. `notes` are the repairs of the text that come before the report's own.
pub(super) fn read(body: &[u8], caps: &Caps, notes: &[Repair]) -> Option<Fast> {
    if body.len() > MAX_FAST || DISABLED.with(Cell::get) {
        return None;
    }
    // One pass over the whole text is faster than serde_json checking each string.
    let text = std::str::from_utf8(body).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let raw = Object::<RawReport>::deserialize(&mut de).ok()?.0;
    de.end().ok()?;
    if raw.policies.len() > caps.max_policies
        || raw.policies.iter().any(|p| {
            p.failure_details
                .as_ref()
                .is_some_and(|d| d.len() > caps.max_failure_details)
        })
    {
        return None;
    }
    let cost = raw.cost();
    if cost > caps.memory {
        return None;
    }
    let mut ctx = Ctx::new(notes.to_vec(), HashMap::new());
    let report = finish(&mut ctx, raw).ok()?;
    Some(Fast {
        report,
        warnings: ctx.finish(),
        cost,
    })
}

/// Present and not `null` (a `null` fails, so the tolerant reader decides what it means).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A struct read from a JSON object only: serde's derived `Deserialize` also takes an array,
/// element by element, which the tolerant reader refuses.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(MapOnly(d)).map(Object)
    }
}

impl<T> std::ops::Deref for Object<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// A deserializer that reads only a map.
struct MapOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    #[serde(rename = "organization-name", default, deserialize_with = "present")]
    organization_name: Option<String>,
    #[serde(rename = "date-range")]
    date_range: Object<RawDateRange>,
    #[serde(rename = "contact-info", default, deserialize_with = "present")]
    contact_info: Option<String>,
    #[serde(rename = "report-id")]
    report_id: String,
    policies: Vec<Object<RawPolicyResult>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDateRange {
    #[serde(rename = "start-datetime")]
    start: String,
    #[serde(rename = "end-datetime")]
    end: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyResult {
    policy: Object<RawPolicy>,
    summary: Object<RawSummary>,
    #[serde(rename = "failure-details", default, deserialize_with = "present")]
    failure_details: Option<Vec<Object<RawDetail>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(rename = "policy-type")]
    policy_type: String,
    #[serde(rename = "policy-string", default, deserialize_with = "present")]
    policy_string: Option<RawStrings>,
    #[serde(rename = "policy-domain", default, deserialize_with = "present")]
    policy_domain: Option<String>,
    #[serde(rename = "mx-host", default, deserialize_with = "present")]
    mx_host: Option<RawStrings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSummary {
    #[serde(
        rename = "total-successful-session-count",
        default,
        deserialize_with = "present"
    )]
    successful: Option<u64>,
    #[serde(
        rename = "total-failure-session-count",
        default,
        deserialize_with = "present"
    )]
    failure: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetail {
    #[serde(rename = "result-type")]
    result_type: String,
    #[serde(rename = "sending-mta-ip", default, deserialize_with = "present")]
    sending_mta_ip: Option<String>,
    #[serde(
        rename = "receiving-mx-hostname",
        default,
        deserialize_with = "present"
    )]
    receiving_mx_hostname: Option<String>,
    #[serde(rename = "receiving-mx-helo", default, deserialize_with = "present")]
    receiving_mx_helo: Option<String>,
    #[serde(rename = "receiving-ip", default, deserialize_with = "present")]
    receiving_ip: Option<String>,
    #[serde(rename = "failed-session-count", default, deserialize_with = "present")]
    failed_session_count: Option<u64>,
    #[serde(
        rename = "additional-information",
        default,
        deserialize_with = "present"
    )]
    additional_information: Option<String>,
    #[serde(rename = "failure-reason-code", default, deserialize_with = "present")]
    failure_reason_code: Option<String>,
}

/// `policy-string` or `mx-host`: one string or an array of strings, nothing else.
struct RawStrings(Strings);

impl<'de> Deserialize<'de> for RawStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawStrings;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawStrings, E> {
                Ok(RawStrings(Strings::One(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RawStrings, E> {
                Ok(RawStrings(Strings::One(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawStrings, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(RawStrings(Strings::Many(out)))
            }
        }
        d.deserialize_any(V)
    }
}

// The memory the tolerant reader charges for the same document (`json::cost`): a node per
// value, plus the text of each string, plus an entry and the key's text per member.

fn string_cost(s: &str) -> usize {
    NODE + s.len()
}

fn member(key: &str, value: usize) -> usize {
    ENTRY + key.len() + value
}

fn opt_member<T>(key: &str, value: Option<&T>, cost: impl FnOnce(&T) -> usize) -> usize {
    value.map_or(0, |v| member(key, cost(v)))
}

fn opt_string(key: &str, value: Option<&String>) -> usize {
    opt_member(key, value, |s| string_cost(s))
}

fn strings_cost(s: &RawStrings) -> usize {
    match &s.0 {
        Strings::One(s) => string_cost(s),
        Strings::Many(v) => NODE + v.iter().map(|s| string_cost(s)).sum::<usize>(),
    }
}

impl RawReport {
    fn cost(&self) -> usize {
        let dr = NODE
            + member("start-datetime", string_cost(&self.date_range.start))
            + member("end-datetime", string_cost(&self.date_range.end));
        let policies = NODE + self.policies.iter().map(|p| p.cost()).sum::<usize>();
        NODE + opt_string("organization-name", self.organization_name.as_ref())
            + member("date-range", dr)
            + opt_string("contact-info", self.contact_info.as_ref())
            + member("report-id", string_cost(&self.report_id))
            + member("policies", policies)
    }
}

impl RawPolicyResult {
    fn cost(&self) -> usize {
        let p = &self.policy;
        let policy = NODE
            + member("policy-type", string_cost(&p.policy_type))
            + opt_member("policy-string", p.policy_string.as_ref(), strings_cost)
            + opt_string("policy-domain", p.policy_domain.as_ref())
            + opt_member("mx-host", p.mx_host.as_ref(), strings_cost);
        let count = |_: &u64| NODE;
        let s = &self.summary;
        let summary =
            NODE + opt_member(
                "total-successful-session-count",
                s.successful.as_ref(),
                count,
            ) + opt_member("total-failure-session-count", s.failure.as_ref(), count);
        NODE + member("policy", policy)
            + member("summary", summary)
            + opt_member("failure-details", self.failure_details.as_ref(), |d| {
                NODE + d.iter().map(|d| d.cost()).sum::<usize>()
            })
    }
}

impl RawDetail {
    fn cost(&self) -> usize {
        NODE + member("result-type", string_cost(&self.result_type))
            + opt_string("sending-mta-ip", self.sending_mta_ip.as_ref())
            + opt_string("receiving-mx-hostname", self.receiving_mx_hostname.as_ref())
            + opt_string("receiving-mx-helo", self.receiving_mx_helo.as_ref())
            + opt_string("receiving-ip", self.receiving_ip.as_ref())
            + opt_member(
                "failed-session-count",
                self.failed_session_count.as_ref(),
                |_| NODE,
            )
            + opt_string(
                "additional-information",
                self.additional_information.as_ref(),
            )
            + opt_string("failure-reason-code", self.failure_reason_code.as_ref())
    }
}

// From here on, the tolerant reader's steps in its order (`parse::read_report` and below),
// with JSON paths written only for the repairs that are recorded.

fn finish(ctx: &mut Ctx, raw: RawReport) -> Result<Report, ReportError> {
    let RawDateRange { start, end } = raw.date_range.0;
    let start = repair::datetime(ctx, start, "date-range.start-datetime")?;
    let end = repair::datetime(ctx, end, "date-range.end-datetime")?;
    repair::check_date_range(ctx, start, end);
    let organization_name = repair::organization_name(ctx, raw.organization_name);
    let contact_info = repair::contact_info(ctx, raw.contact_info);
    let mut policies = Vec::with_capacity(raw.policies.len());
    for (i, p) in raw.policies.into_iter().enumerate() {
        policies.push(policy_result(ctx, p.0, i));
    }
    Ok(Report {
        organization_name,
        date_range: DateRange {
            start,
            end,
            extra: Extra::new(),
        },
        contact_info,
        report_id: raw.report_id,
        policies,
        extra: Extra::new(),
    })
}

fn policy_result(ctx: &mut Ctx, raw: RawPolicyResult, i: usize) -> PolicyResult {
    let p = raw.policy.0;
    let policy_type = repair::policy_type(
        ctx,
        p.policy_type,
        format_args!("policies[{i}].policy.policy-type"),
    );
    let policy_string = repair::policy_strings(
        ctx,
        p.policy_string.map(|s| s.0),
        &policy_type,
        format_args!("policies[{i}].policy.policy-string"),
    );
    let policy_domain = repair::policy_domain(
        ctx,
        p.policy_domain,
        &policy_type,
        format_args!("policies[{i}].policy.policy-domain"),
    );
    let mx_host = repair::mx_hosts(
        ctx,
        p.mx_host.map(|s| s.0),
        format_args!("policies[{i}].policy.mx-host"),
    );
    let policy = Policy {
        policy_type,
        policy_string,
        policy_domain,
        mx_host,
        extra: Extra::new(),
    };

    let count = |ctx: &mut Ctx, n: Option<u64>, key: &str| match n {
        Some(n) => repair::count_checked(ctx, n, format_args!("policies[{i}].summary.{key}")),
        None => repair::count_missing(ctx, key, format_args!("policies[{i}].summary.{key}")),
    };
    let summary = Summary {
        total_successful_session_count: count(
            ctx,
            raw.summary.successful,
            "total-successful-session-count",
        ),
        total_failure_session_count: count(ctx, raw.summary.failure, "total-failure-session-count"),
        extra: Extra::new(),
    };

    let details = raw.failure_details.unwrap_or_else(|| {
        repair::details_missing(ctx, format_args!("policies[{i}].failure-details"));
        Vec::new()
    });
    let mut failure_details = Vec::with_capacity(details.len());
    for (j, d) in details.into_iter().enumerate() {
        failure_details.push(detail(ctx, d.0, i, j));
    }
    repair::check_failure_count(
        ctx,
        &summary,
        &failure_details,
        format_args!("policies[{i}].summary"),
    );
    PolicyResult {
        policy,
        summary,
        failure_details,
        extra: Extra::new(),
    }
}

fn detail(ctx: &mut Ctx, raw: RawDetail, i: usize, j: usize) -> FailureDetail {
    let at = |key: &'static str| At { i, j, key };
    let result_type = repair::result_type(ctx, raw.result_type, at(".result-type"));
    let sending_mta_ip = raw
        .sending_mta_ip
        .and_then(|t| repair::ip_from_text(ctx, t, at(".sending-mta-ip")));
    let receiving_ip = raw
        .receiving_ip
        .and_then(|t| repair::ip_from_text(ctx, t, at(".receiving-ip")));
    let failed_session_count = match raw.failed_session_count {
        Some(n) => repair::count_checked(ctx, n, at(".failed-session-count")),
        None => repair::count_missing(ctx, "failed-session-count", at(".failed-session-count")),
    };
    let detail = FailureDetail {
        result_type,
        sending_mta_ip,
        receiving_mx_hostname: raw.receiving_mx_hostname,
        receiving_mx_helo: raw.receiving_mx_helo,
        receiving_ip,
        failed_session_count,
        additional_information: raw.additional_information,
        failure_reason_code: raw.failure_reason_code,
        extra: Extra::new(),
    };
    repair::check_detail_complete(ctx, &detail, at(""));
    detail
}

/// The path of failure detail `j` of policy `i`, or of its member `key` (`.name`).
#[derive(Clone, Copy)]
struct At {
    i: usize,
    j: usize,
    key: &'static str,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "policies[{}].failure-details[{}]{}",
            self.i, self.j, self.key
        )
    }
}

#[cfg(test)]
mod tests;
