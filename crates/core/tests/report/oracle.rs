//! Differential test against Stalwart mail-auth 0.13.3's TLS-RPT parser, on every corpus file it
//! can read. We assert agreement on every field both model; where we differ on purpose, the
//! difference is listed per file and our behaviour is asserted to be the better one.

use crate::support::corpus;
use mail_auth::report::tlsrpt::{self as ma, TlsReport};
use mtasts_core::report::{ParsedReport, PolicyType, parse_reports};

fn policy_type(t: &ma::PolicyType) -> &'static str {
    match t {
        ma::PolicyType::Tlsa => "tlsa",
        ma::PolicyType::Sts => "sts",
        ma::PolicyType::NoPolicyFound => "no-policy-found",
        ma::PolicyType::Other => "<other>",
    }
}

fn result_type(t: &ma::ResultType) -> String {
    // mail-auth serialises its enum with the RFC names, except the collapsed `Other`.
    match t {
        ma::ResultType::Other => "<other>".to_owned(),
        known => serde_json::to_value(known)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

/// Compares field by field; returns the names of the fields that differ.
pub(crate) fn differences(ours: &ParsedReport, theirs: &TlsReport) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |field: String, same: bool| {
        if !same {
            diffs.push(field);
        }
    };
    let r = &ours.report;
    check(
        "organization-name".into(),
        Some(&r.organization_name) == theirs.organization_name.as_ref(),
    );
    check(
        "start-datetime".into(),
        r.date_range.start.unix_timestamp() == theirs.date_range.start_datetime.to_timestamp(),
    );
    check(
        "end-datetime".into(),
        r.date_range.end.unix_timestamp() == theirs.date_range.end_datetime.to_timestamp(),
    );
    check("contact-info".into(), r.contact_info == theirs.contact_info);
    check("report-id".into(), r.report_id == theirs.report_id);
    check(
        "policies.len".into(),
        r.policies.len() == theirs.policies.len(),
    );
    for (i, (p, q)) in r.policies.iter().zip(&theirs.policies).enumerate() {
        let at = |f: &str| format!("policies[{i}].{f}");
        let ours_type = match &p.policy.policy_type {
            PolicyType::Other(_) => "<other>",
            t => t.as_str(),
        };
        check(
            at("policy-type"),
            ours_type == policy_type(&q.policy.policy_type),
        );
        check(
            at("policy-string"),
            p.policy.policy_string == q.policy.policy_string,
        );
        check(
            at("policy-domain"),
            p.policy.policy_domain.as_deref().unwrap_or("") == q.policy.policy_domain,
        );
        check(at("mx-host"), p.policy.mx_host == q.policy.mx_host);
        check(
            at("total-successful-session-count"),
            p.summary.total_successful_session_count == u64::from(q.summary.total_success),
        );
        check(
            at("total-failure-session-count"),
            p.summary.total_failure_session_count == u64::from(q.summary.total_failure),
        );
        check(
            at("failure-details.len"),
            p.failure_details.len() == q.failure_details.len(),
        );
        for (j, (d, e)) in p.failure_details.iter().zip(&q.failure_details).enumerate() {
            let at = |f: &str| format!("policies[{i}].failure-details[{j}].{f}");
            check(
                at("result-type"),
                d.result_type.as_str() == result_type(&e.result_type),
            );
            check(at("sending-mta-ip"), d.sending_mta_ip == e.sending_mta_ip);
            check(at("receiving-ip"), d.receiving_ip == e.receiving_ip);
            check(
                at("receiving-mx-hostname"),
                d.receiving_mx_hostname == e.receiving_mx_hostname,
            );
            check(
                at("receiving-mx-helo"),
                d.receiving_mx_helo == e.receiving_mx_helo,
            );
            check(
                at("failed-session-count"),
                d.failed_session_count == u64::from(e.failed_session_count),
            );
            check(
                at("failure-reason-code"),
                d.failure_reason_code == e.failure_reason_code,
            );
            check(
                at("additional-information"),
                d.additional_information == e.additional_information,
            );
        }
    }
    diffs
}

/// Files where we differ from mail-auth on purpose, with the fields and why. (rpt03.json's unknown
/// `policy-type` compares equal here because both sides map it to "other"; that mail-auth loses
/// the value is shown in `where_we_differ_we_are_better`.)
const EXPECTED: &[(&str, &[&str], &str)] = &[
    (
        "dmarc-report-viewer/microsoft.json",
        &["policies[1].policy-string"],
        "Microsoft packs the TLSA records into one JSON-encoded string; we unpack them to one \
         element per record (RFC 8460 §4.5) and say so in report.tlsa-policy-string-json",
    ),
    (
        "dmarc-report-viewer/no-contact.json",
        &["policies[0].mx-host"],
        "mx-host entry `mx: mx.server.com`: we strip the stray policy-file key",
    ),
];

#[test]
fn agrees_with_mail_auth_on_every_shared_field() {
    let mut compared = 0;
    let mut unread = Vec::new();
    for (name, bytes) in corpus() {
        let theirs = if name.ends_with(".eml") {
            TlsReport::parse_rfc5322(&bytes, 32 << 20)
        } else {
            TlsReport::parse_json(&bytes)
        };
        let ours = parse_reports(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Ok(theirs) = theirs else {
            unread.push(name);
            continue;
        };
        compared += 1;
        let diffs = differences(&ours[0], &theirs);
        let expected: Vec<String> = EXPECTED
            .iter()
            .find(|(f, _, _)| *f == name)
            .map(|(_, fields, _)| fields.iter().map(|s| (*s).to_owned()).collect())
            .unwrap_or_default();
        assert_eq!(
            diffs, expected,
            "{name}: unexpected disagreement with mail-auth"
        );
    }
    // mail-auth cannot read `mx-host` as a string (erratum 6241, the RFC's own example); we can.
    assert_eq!(
        unread,
        ["mta-sts-exporter/rfc.json", "parsedmarc/rfc8460.json"]
    );
    assert!(compared >= 18, "compared only {compared} files");
}

#[test]
fn where_we_differ_we_are_better() {
    let read = |f: &str| {
        let bytes = std::fs::read(format!("{}/{f}", crate::support::DATA))
            .unwrap_or_else(|e| panic!("{e}"));
        let ours = parse_reports(&bytes)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        let theirs = TlsReport::parse_json(&bytes).ok();
        (ours, theirs)
    };
    // Unknown policy type: kept verbatim, and flagged.
    let (ours, theirs) = read("mail-auth/rpt03.json");
    assert_eq!(
        ours.report.policies[1].policy.policy_type,
        PolicyType::Other("invalid-policy-type".into())
    );
    assert!(matches!(
        theirs.map(|t| t.policies[1].policy.policy_type),
        Some(ma::PolicyType::Other)
    ));
    // TLSA records unpacked, one per element.
    let (ours, _) = read("dmarc-report-viewer/microsoft.json");
    let tlsa = &ours.report.policies[1].policy.policy_string;
    assert_eq!(tlsa.len(), 2);
    assert!(tlsa.iter().all(|s| s.starts_with("3 1 1 ")));
    // mx-host as a string: mail-auth fails the whole report.
    let (ours, theirs) = read("parsedmarc/rfc8460.json");
    assert!(theirs.is_none());
    assert_eq!(
        ours.report.policies[0].policy.mx_host,
        ["*.mail.company-y.example"]
    );
}

#[test]
fn bad_dates_are_errors_not_epoch_zero() {
    let json = crate::support::report_json("", &crate::support::detail(""))
        .replace("2024-01-01T00:00:00Z", "yesterday");
    let theirs = TlsReport::parse_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
    // mail-auth silently turns an unreadable date into the epoch...
    assert_eq!(theirs.date_range.start_datetime.to_timestamp(), 0);
    // ...we refuse the report and say which member is wrong.
    let err = parse_reports(json.as_bytes())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("date-range.start-datetime"), "{err}");
}
