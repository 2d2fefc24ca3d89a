//! Strict generation (DECISIONS D26): what it writes and what it refuses.

use crate::support::{detail, report_json};
use mtasts_core::report::{
    GenerateError, PolicyType, Report, ResultType, generate_json, gzip, parse_report_json,
    report_filename,
};

fn sample() -> Report {
    let p = parse_report_json(
        report_json(
            r#","mx-host":["*.Mail.Example.com","bücher.example"]"#,
            &detail(""),
        )
        .as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p.report
}

#[test]
fn writes_rfc_shapes_and_a_labels() {
    let mut r = sample();
    r.policies[0].policy.policy_domain = Some("Bücher.Example".into());
    r.contact_info = Some("tlsrpt@Bücher.example".into());
    r.policies[0].failure_details[0].sending_mta_ip = Some(
        "2001:db8:0:0:0:0:0:1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    r.policies[0].failure_details[0].additional_information = Some("https://x.example/".into());
    let json = generate_json(&r).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(v["date-range"]["start-datetime"], "2024-01-01T00:00:00Z");
    assert_eq!(v["date-range"]["end-datetime"], "2024-01-01T23:59:59Z");
    assert_eq!(v["contact-info"], "tlsrpt@xn--bcher-kva.example");
    let pol = &v["policies"][0];
    assert_eq!(pol["policy"]["policy-domain"], "xn--bcher-kva.example");
    assert_eq!(
        pol["policy"]["mx-host"],
        serde_json::json!(["*.mail.example.com", "xn--bcher-kva.example"])
    );
    assert_eq!(pol["failure-details"][0]["sending-mta-ip"], "2001:db8::1");
    assert_eq!(
        pol["failure-details"][0]["additional-information"],
        "https://x.example/"
    );
    assert!(
        parse_report_json(json.as_bytes())
            .map(|p| p.warnings.is_empty())
            .unwrap_or(false)
    );
}

#[test]
fn both_full_day_forms_are_accepted_and_nothing_else() {
    let mut r = sample();
    r.date_range.end += time::Duration::SECOND;
    assert!(generate_json(&r).is_ok(), "next-day 00:00:00Z end");
    r.date_range.end += time::Duration::SECOND;
    assert!(matches!(
        generate_json(&r),
        Err(GenerateError::NotOneUtcDay { .. })
    ));
    let mut r = sample();
    r.date_range.start += time::Duration::HOUR;
    r.date_range.end += time::Duration::HOUR;
    let msg = generate_json(&r)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        msg.contains("one full UTC day") && msg.contains("2024-01-01T01:00:00Z"),
        "{msg}"
    );
}

#[test]
fn refusals() {
    let check = |f: &dyn Fn(&mut Report), want: &str| {
        let mut r = sample();
        f(&mut r);
        let got = generate_json(&r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(got.contains(want), "want {want:?}, got {got:?}");
    };
    check(
        &|r| r.organization_name = " ".into(),
        "`organization-name` is required",
    );
    check(&|r| r.report_id.clear(), "`report-id` is required");
    check(&|r| r.contact_info = None, "`contact-info` is required");
    check(&|r| r.contact_info = Some("nobody".into()), "addr-spec");
    check(
        &|r| r.policies[0].policy.policy_domain = None,
        "`policies[0].policy.policy-domain` is required",
    );
    check(
        &|r| r.policies[0].policy.policy_domain = Some("bad_domain.example".into()),
        "not a valid domain",
    );
    check(
        &|r| r.policies[0].policy.policy_domain = Some("example.com.".into()),
        "not a valid domain",
    );
    check(
        &|r| r.policies[0].policy.mx_host = vec!["a..b".into()],
        "policies[0].policy.mx-host[0]",
    );
    check(
        &|r| r.policies[0].policy.policy_type = PolicyType::Other("x".into()),
        "unregistered value \"x\"",
    );
    check(
        &|r| r.policies[0].failure_details[0].result_type = ResultType::Other("y".into()),
        "failure-details[0].result-type",
    );
    check(
        &|r| r.policies[0].summary.total_successful_session_count = (1 << 53) + 1,
        "above 2^53",
    );
    check(
        &|r| {
            r.policies[0].extra.insert("x-a".into(), 1.into());
        },
        "`policies[0]` has members outside the RFC 8460 schema: x-a",
    );
}

#[test]
fn gzip_is_deterministic_and_readable() {
    let json = generate_json(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let a = gzip(json.as_bytes());
    assert_eq!(a, gzip(json.as_bytes()));
    assert_eq!(&a[..2], [0x1f, 0x8b]);
    assert_eq!(&a[4..8], [0, 0, 0, 0], "mtime must be 0");
    let back = mtasts_core::report::gunzip(&a, &Default::default()).unwrap_or_default();
    assert_eq!(back, json.as_bytes());
}

#[test]
fn filenames() {
    assert_eq!(
        report_filename(
            "mail.sndr.example.com",
            "example.net",
            1_470_013_207,
            1_470_186_007,
            "001"
        )
        .as_deref(),
        Ok("mail.sndr.example.com!example.net!1470013207!1470186007!001.json.gz")
    );
    assert_eq!(
        report_filename("Sender.Example", "bücher.example", 0, 86_400, "").as_deref(),
        Ok("sender.example!xn--bcher-kva.example!0!86400.json.gz")
    );
    assert!(matches!(
        report_filename("a.example", "b.example", 0, 1, "a!b"),
        Err(GenerateError::InvalidUniqueId { .. })
    ));
    assert!(matches!(
        report_filename("a b", "b.example", 0, 1, "1"),
        Err(GenerateError::InvalidDomain { .. })
    ));
}
