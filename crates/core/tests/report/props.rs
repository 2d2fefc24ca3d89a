//! Property tests: random bytes never panic; generated reports read back identically.

use crate::support::{detail, gz, mail_with, report_json};
use mtasts_core::report::{
    DateRange, Extra, FailureDetail, Policy, PolicyResult, PolicyType, Report, ResultType, Summary,
    generate_json, gzip, parse_report_json, parse_reports,
};
use proptest::prelude::*;
use std::net::IpAddr;
use time::OffsetDateTime;

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,4})?", 1..4)
        .prop_map(|labels| labels.join(".") + ".example")
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u16; 8]>().prop_map(IpAddr::from)
    ]
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including quotes, backslashes, controls and NUL.
    any::<String>().prop_map(|s| s.chars().take(40).collect())
}

fn detail_strategy() -> impl Strategy<Value = FailureDetail> {
    (
        prop::sample::select(ResultType::KNOWN.to_vec()),
        ip(),
        domain(),
        prop::option::of(text()),
        ip(),
        0u64..1 << 40,
        prop::option::of(text()),
        prop::option::of(text()),
    )
        .prop_map(|(rt, s, host, helo, r, n, info, code)| FailureDetail {
            sending_mta_ip: Some(s),
            receiving_mx_hostname: Some(host),
            receiving_mx_helo: helo,
            receiving_ip: Some(r),
            additional_information: info,
            failure_reason_code: code,
            ..FailureDetail::new(rt, n)
        })
}

fn policy_strategy() -> impl Strategy<Value = PolicyResult> {
    (
        prop::sample::select(vec![
            PolicyType::Sts,
            PolicyType::Tlsa,
            PolicyType::NoPolicyFound,
        ]),
        prop::collection::vec(text(), 0..5),
        domain(),
        prop::collection::vec((any::<bool>(), domain()), 0..3),
        0u64..1 << 53,
        prop::collection::vec(detail_strategy(), 0..4),
    )
        .prop_map(
            |(policy_type, mut policy_string, domain, mx, ok, failure_details)| {
                // A lone TLSA string that is itself a JSON array is the Microsoft quirk the reader
                // unpacks; keep the generator away from it.
                if policy_type == PolicyType::Tlsa && policy_string.len() == 1 {
                    policy_string.push("3 1 1 00".into());
                }
                let total_failure = failure_details.iter().map(|d| d.failed_session_count).sum();
                PolicyResult {
                    policy: Policy {
                        policy_type,
                        policy_string,
                        policy_domain: Some(domain),
                        mx_host: mx
                            .into_iter()
                            .map(|(w, d)| if w { format!("*.{d}") } else { d })
                            .collect(),
                        extra: Extra::new(),
                    },
                    summary: Summary {
                        total_successful_session_count: ok,
                        total_failure_session_count: total_failure,
                        extra: Extra::new(),
                    },
                    failure_details,
                    extra: Extra::new(),
                }
            },
        )
}

pub(crate) fn report_strategy() -> impl Strategy<Value = Report> {
    (
        text().prop_filter("non-blank", |s| !s.trim().is_empty()),
        0i64..50_000,
        any::<bool>(),
        ("[a-z0-9._+-]{1,12}", domain()),
        text().prop_filter("non-blank", |s| !s.trim().is_empty()),
        prop::collection::vec(policy_strategy(), 0..4),
    )
        .prop_map(|(org, day, inclusive, (local, cdomain), id, policies)| {
            let start = OffsetDateTime::from_unix_timestamp(day * 86_400)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let end = start + time::Duration::seconds(if inclusive { 86_399 } else { 86_400 });
            Report {
                organization_name: org,
                date_range: DateRange {
                    start,
                    end,
                    extra: Extra::new(),
                },
                contact_info: Some(format!("{local}@{cdomain}")),
                report_id: id,
                policies,
                extra: Extra::new(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_reports_read_back_identically(report in report_strategy()) {
        let json = generate_json(&report).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let parsed = parse_report_json(json.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&parsed.warnings, &vec![]);
        prop_assert_eq!(&parsed.report, &report);
        // And through gzip and the sniffing entry point.
        let again = parse_reports(&gzip(json.as_bytes())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again[0].report, &report);
        // The normalised output is itself a fixed point.
        let normal = serde_json::to_string(&parsed.report).unwrap_or_default();
        let reparsed = parse_report_json(normal.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&reparsed.report, &report);
    }

    #[test]
    fn mail_auth_reads_what_we_generate(mut report in report_strategy()) {
        // mail-auth keeps counts in u32.
        for p in &mut report.policies {
            p.summary.total_successful_session_count %= 1 << 32;
            for d in &mut p.failure_details {
                d.failed_session_count %= 1 << 28;
            }
            p.summary.total_failure_session_count =
                p.failure_details.iter().map(|d| d.failed_session_count).sum();
        }
        let json = generate_json(&report).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let theirs = mail_auth::report::tlsrpt::TlsReport::parse_json(json.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let ours = parse_report_json(json.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(crate::oracle::differences(&ours, &theirs), Vec::<String>::new());
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_reports(&bytes);
        let _ = parse_report_json(&bytes);
        let _ = mtasts_core::report::parse_report_mail(&bytes);
    }

    #[test]
    fn random_bytes_behind_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512), which in 0u8..3) {
        let bytes: Vec<u8> = match which {
            0 => [&[0x1f, 0x8b][..], &tail].concat(),
            1 => [&b"{"[..], &tail].concat(),
            _ => [&b"From: a@b\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"[..], &tail].concat(),
        };
        let _ = parse_reports(&bytes);
    }

    #[test]
    fn mutated_reports_never_panic(pos in 0usize..2000, byte in any::<u8>(), gzipped in any::<bool>(), in_mail in any::<bool>()) {
        let mut json = report_json(r#","mx-host":"mx: a.example""#, &detail("")).into_bytes();
        let at = pos % json.len();
        json[at] = byte;
        let mut bytes = if gzipped { gz(&json) } else { json };
        if in_mail {
            bytes = mail_with("application/octet-stream", "r.json.gz", &bytes);
        }
        let _ = parse_reports(&bytes);
    }

    #[test]
    fn mutated_gzip_never_panics(pos in 0usize..400, byte in any::<u8>()) {
        let mut bytes = gz(report_json("", &detail("")).as_bytes());
        let at = pos % bytes.len();
        bytes[at] = byte;
        let _ = parse_reports(&bytes);
    }
}
