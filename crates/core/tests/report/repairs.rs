//! One focused test per repair (DECISIONS D25).

use crate::support::{detail, ids, only, parse_ok, report_json};
use mtasts_core::Severity;
use mtasts_core::report::{PolicyType, ResultType};
use std::net::IpAddr;

#[test]
fn clean_report_has_no_warnings() {
    let p = parse_ok(&report_json(
        r#","mx-host":["mx.example.com"]"#,
        &detail(""),
    ));
    assert_eq!(p.warnings, []);
    assert!(p.is_clean());
}

#[test]
fn mx_host_string_becomes_array() {
    let p = parse_ok(&report_json(r#","mx-host":"*.example.com""#, &detail("")));
    assert_eq!(p.report.policies[0].policy.mx_host, ["*.example.com"]);
    let w = only(&p, "report.mx-host-string");
    assert_eq!(w.path, "policies[0].policy.mx-host");
    assert_eq!(w.severity, Severity::Warning);
}

#[test]
fn mx_prefix_is_stripped() {
    let p = parse_ok(&report_json(
        r#","mx-host":["mx: a.example.com","MX:b.example.com","c.example.com"]"#,
        &detail(""),
    ));
    assert_eq!(
        p.report.policies[0].policy.mx_host,
        ["a.example.com", "b.example.com", "c.example.com"]
    );
    assert_eq!(
        ids(&p.warnings),
        ["report.mx-host-prefix", "report.mx-host-prefix"]
    );
    assert_eq!(p.warnings[1].path, "policies[0].policy.mx-host[1]");
}

#[test]
fn mx_host_pattern_key_is_read_as_mx_host() {
    let p = parse_ok(&report_json(
        r#","mx-host-pattern":["mx.example.com"]"#,
        &detail(""),
    ));
    assert_eq!(p.report.policies[0].policy.mx_host, ["mx.example.com"]);
    assert!(p.report.policies[0].policy.extra.is_empty());
    only(&p, "report.mx-host-pattern-key");
    // When both are present, `mx-host` wins and the other is kept as an unknown member.
    let p = parse_ok(&report_json(
        r#","mx-host":["a.example"],"mx-host-pattern":["b.example"]"#,
        &detail(""),
    ));
    assert_eq!(p.report.policies[0].policy.mx_host, ["a.example"]);
    assert!(
        p.report.policies[0]
            .policy
            .extra
            .contains_key("mx-host-pattern")
    );
}

#[test]
fn additional_info_uri_key_is_read_as_additional_information() {
    let p = parse_ok(&report_json(
        "",
        &detail(r#","additional-info-uri":"https://x.example/1""#),
    ));
    let d = &p.report.policies[0].failure_details[0];
    assert_eq!(
        d.additional_information.as_deref(),
        Some("https://x.example/1")
    );
    assert_eq!(
        only(&p, "report.additional-info-uri-key").path,
        "policies[0].failure-details[0].additional-info-uri"
    );
    let out = serde_json::to_string(&p.report).unwrap_or_default();
    assert!(
        out.contains(r#""additional-information":"https://x.example/1""#),
        "{out}"
    );
    assert!(!out.contains("additional-info-uri"), "{out}");
}

fn with_dates(start: &str, end: &str) -> String {
    report_json("", &detail(""))
        .replace("2024-01-01T00:00:00Z", start)
        .replace("2024-01-01T23:59:59Z", end)
}

#[test]
fn datetime_without_zone_is_utc_and_flagged() {
    let p = parse_ok(&with_dates("2024-03-26T00:00:00", "2024-03-26T23:59:59"));
    assert_eq!(p.report.date_range.start.unix_timestamp(), 1_711_411_200);
    assert_eq!(ids(&p.warnings), ["report.datetime-no-zone"; 2]);
    assert_eq!(p.warnings[0].path, "date-range.start-datetime");
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert_eq!(out["date-range"]["start-datetime"], "2024-03-26T00:00:00Z");
}

#[test]
fn datetime_space_lowercase_and_offset_are_normalised() {
    let p = parse_ok(&with_dates("2024-01-01 00:00:00Z", "2024-01-01t23:59:59z"));
    assert_eq!(
        ids(&p.warnings),
        [
            "report.datetime-space",
            "report.datetime-lowercase",
            "report.datetime-lowercase"
        ]
    );
    assert!(p.warnings.iter().all(|w| w.severity == Severity::Info));
    let p = parse_ok(&with_dates(
        "2024-01-01T02:00:00+02:00",
        "2023-12-31T23:59:59-00:00",
    ));
    assert_eq!(
        ids(&p.warnings),
        ["report.datetime-offset", "report.date-range-reversed"]
    );
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert_eq!(out["date-range"]["start-datetime"], "2024-01-01T00:00:00Z");
    let p = parse_ok(&with_dates(
        "2024-01-01T00:00:00+0000",
        "2024-01-01T23:59:60Z",
    ));
    assert_eq!(
        ids(&p.warnings),
        ["report.datetime-nonstandard", "report.datetime-leap-second"]
    );
}

#[test]
fn contact_info_null_or_missing() {
    let base = report_json("", &detail(""));
    let p = parse_ok(&base.replace(r#""tlsrpt@org.example""#, "null"));
    assert_eq!(p.report.contact_info, None);
    only(&p, "report.contact-info-missing");
    let p = parse_ok(&base.replace(r#""contact-info":"tlsrpt@org.example","#, ""));
    only(&p, "report.contact-info-missing");
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert!(out.get("contact-info").is_none());
}

#[test]
fn organization_name_missing() {
    let p = parse_ok(&report_json("", &detail("")).replace(r#""organization-name":"Org","#, ""));
    assert_eq!(p.report.organization_name, "");
    only(&p, "report.organization-name-missing");
}

#[test]
fn missing_policy_string_domain_and_failure_details() {
    let json = r#"{"organization-name":"G","date-range":{"start-datetime":"2024-01-01T00:00:00Z",
      "end-datetime":"2024-01-01T23:59:59Z"},"contact-info":"a@b.example","report-id":"x",
      "policies":[{"policy":{"policy-type":"no-policy-found"},
      "summary":{"total-successful-session-count":3,"total-failure-session-count":0}},
      {"policy":{"policy-type":"sts"},
      "summary":{"total-successful-session-count":3,"total-failure-session-count":0}}]}"#;
    let p = parse_ok(json);
    let sev: Vec<(&str, Severity)> = p.warnings.iter().map(|w| (w.id, w.severity)).collect();
    assert_eq!(
        sev,
        [
            ("report.policy-string-missing", Severity::Info),
            ("report.policy-domain-missing", Severity::Info),
            ("report.failure-details-missing", Severity::Info),
            ("report.policy-string-missing", Severity::Warning),
            ("report.policy-domain-missing", Severity::Warning),
            ("report.failure-details-missing", Severity::Info),
        ]
    );
    let pol = &p.report.policies[0];
    assert!(pol.policy.policy_string.is_empty() && pol.policy.policy_domain.is_none());
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert_eq!(out["policies"][0]["failure-details"], serde_json::json!([]));
    assert_eq!(
        out["policies"][0]["policy"]["mx-host"],
        serde_json::json!([])
    );
}

#[test]
fn policy_string_as_string_and_failure_details_as_object() {
    let json = report_json("", &detail(""))
        .replace(
            r#"["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"]"#,
            r#""version: STSv1""#,
        )
        .replace(r#""failure-details":["#, r#""failure-details":"#)
        .replace(r#"}]}]}"#, r#"}}]}"#);
    let p = parse_ok(&json);
    assert_eq!(
        ids(&p.warnings),
        [
            "report.policy-string-string",
            "report.failure-details-object"
        ]
    );
    assert_eq!(p.report.policies[0].failure_details.len(), 1);
}

#[test]
fn empty_sending_ip_is_removed() {
    let p = parse_ok(&report_json(
        "",
        &detail("").replace(r#""192.0.2.1""#, r#""""#),
    ));
    let d = &p.report.policies[0].failure_details[0];
    assert_eq!(d.sending_mta_ip, None);
    assert_eq!(
        ids(&p.warnings),
        ["report.ip-empty", "report.failure-detail-incomplete"]
    );
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert!(
        out["policies"][0]["failure-details"][0]
            .get("sending-mta-ip")
            .is_none()
    );
}

#[test]
fn ip_forms() {
    let d = |ip: &str| {
        let p = parse_ok(&report_json("", &detail("").replace("192.0.2.1", ip)));
        (
            p.report.policies[0].failure_details[0].sending_mta_ip,
            ids(&p.warnings),
        )
    };
    let v6: IpAddr = "2001:db8:abcd:12::1"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d("2001:db8:abcd:0012::1"), (Some(v6), vec![]));
    assert_eq!(
        d("[2001:DB8:ABCD:12::1]"),
        (Some(v6), vec!["report.ip-noncanonical"])
    );
    let v4: IpAddr = "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        d("192.000.002.001"),
        (Some(v4), vec!["report.ip-noncanonical"])
    );
    assert_eq!(
        d("mx.example.com").1,
        ["report.ip-invalid", "report.failure-detail-incomplete"]
    );
    // RFC 5952 output.
    let p = parse_ok(&report_json(
        "",
        &detail("").replace("192.0.2.1", "2001:0DB8:0:0:0:0:0:1"),
    ));
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert_eq!(
        out["policies"][0]["failure-details"][0]["sending-mta-ip"],
        "2001:db8::1"
    );
}

#[test]
fn counts_as_strings_floats_missing_and_huge() {
    let p = parse_ok(&report_json("", &detail("")).replace(
        r#""total-successful-session-count":5"#,
        r#""total-successful-session-count":" 5""#,
    ));
    assert_eq!(
        p.report.policies[0].summary.total_successful_session_count,
        5
    );
    only(&p, "report.count-string");
    let p = parse_ok(&report_json("", &detail("")).replace(r#"":5"#, r#"":5.0"#));
    assert_eq!(
        p.report.policies[0].summary.total_successful_session_count,
        5
    );
    only(&p, "report.count-not-integer");
    let p = parse_ok(&report_json(
        "",
        &detail("").replace(
            r#""failed-session-count":1"#,
            r#""failed-session-count":null"#,
        ),
    ));
    assert_eq!(
        ids(&p.warnings),
        ["report.count-missing", "report.failure-count-mismatch"]
    );
    let p = parse_ok(&report_json("", &detail("")).replace(r#"":5"#, r#"":18446744073709551615"#));
    assert_eq!(
        p.report.policies[0].summary.total_successful_session_count,
        u64::MAX
    );
    only(&p, "report.count-not-interoperable");
}

#[test]
fn counts_need_not_add_up() {
    let p = parse_ok(&report_json("", &format!("{},{}", detail(""), detail(""))));
    let w = only(&p, "report.failure-count-mismatch");
    assert_eq!(
        (w.severity, w.path.as_str()),
        (Severity::Info, "policies[0].summary")
    );
    assert!(p.is_clean());
}

#[test]
fn tlsa_policy_string_holding_a_json_array_is_unpacked() {
    let json = report_json("", &detail(""))
        .replace(r#""policy-type":"sts""#, r#""policy-type":"tlsa""#)
        .replace(
            r#"["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"]"#,
            r#"["[\"3 1 1 AB\",\"3 1 1 CD\"]"]"#,
        );
    let p = parse_ok(&json);
    assert_eq!(
        p.report.policies[0].policy.policy_string,
        ["3 1 1 AB", "3 1 1 CD"]
    );
    assert!(
        only(&p, "report.tlsa-policy-string-json")
            .message
            .contains(r#"[\"3 1 1 AB\""#)
    );
}

#[test]
fn unknown_and_miscased_types_are_kept() {
    let json = report_json("", &detail(""))
        .replace(r#""policy-type":"sts""#, r#""policy-type":"STS""#)
        .replace("certificate-expired", "certificate-revoked");
    let p = parse_ok(&json);
    assert_eq!(p.report.policies[0].policy.policy_type, PolicyType::Sts);
    assert_eq!(
        p.report.policies[0].failure_details[0].result_type,
        ResultType::Other("certificate-revoked".into())
    );
    assert_eq!(
        ids(&p.warnings),
        ["report.keyword-case", "report.result-type-unknown"]
    );
    let out = serde_json::to_value(&p.report).unwrap_or_default();
    assert_eq!(
        out["policies"][0]["failure-details"][0]["result-type"],
        "certificate-revoked"
    );
}

#[test]
fn unknown_members_are_kept_everywhere_in_order() {
    let json = report_json(r#","x-policy":1"#, &detail(r#","x-detail":{"a":[1]}"#))
        .replace(r#""report-id":"r1","#, r#""report-id":"r1","x-top":"t","#)
        .replace(r#""end-datetime""#, r#""x-dr":null,"end-datetime""#)
        .replace(
            r#""total-failure-session-count":1"#,
            r#""total-failure-session-count":1,"x-sum":true"#,
        )
        .replace(r#""failure-details""#, r#""x-pr":[],"failure-details""#);
    let p = parse_ok(&json);
    assert_eq!(p.warnings, []);
    let out = serde_json::to_string(&p.report).unwrap_or_default();
    for key in [
        r#""x-top":"t""#,
        r#""x-dr":null"#,
        r#""x-policy":1"#,
        r#""x-sum":true"#,
        r#""x-pr":[]"#,
        r#""x-detail":{"a":[1]}"#,
    ] {
        assert!(out.contains(key), "{key} lost: {out}");
    }
}

#[test]
fn duplicate_keys_warn_and_last_wins() {
    let json = report_json("", &detail("")).replace(
        r#""report-id":"r1""#,
        r#""report-id":"r0","report-id":"r1""#,
    );
    let p = parse_ok(&json);
    assert_eq!(p.report.report_id, "r1");
    assert_eq!(only(&p, "report.duplicate-key").path, "report-id");
}

#[test]
fn bom_is_ignored() {
    let json = format!("\u{feff}{}", report_json("", &detail("")));
    let p = parse_ok(&json);
    assert_eq!(ids(&p.warnings), ["report.bom"]);
    assert_eq!(p.raw_json, json.as_bytes());
}

#[test]
fn warnings_are_capped() {
    let details: Vec<String> = (0..300)
        .map(|_| detail("").replace(r#""192.0.2.1""#, r#""""#))
        .collect();
    let json = report_json("", &details.join(",")).replace(
        r#""total-failure-session-count":1"#,
        r#""total-failure-session-count":300"#,
    );
    let p = parse_ok(&json);
    assert_eq!(p.warnings.len(), mtasts_core::report::MAX_WARNINGS + 1);
    let last = &p.warnings[p.warnings.len() - 1];
    assert_eq!(last.id, "report.too-many-warnings");
    assert!(last.message.starts_with("400 more"), "{}", last.message);
}

#[test]
fn to_json_adds_warnings_and_source() {
    let p = parse_ok(&report_json(r#","mx-host":"mx.example.com""#, &detail("")));
    let v = p.to_json("dir/file.json");
    assert_eq!(v["source"], "dir/file.json");
    assert_eq!(v["warnings"][0]["id"], "report.mx-host-string");
    assert_eq!(v["warnings"][0]["severity"], "warning");
    let keys: Vec<&String> = v
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "organization-name",
            "date-range",
            "contact-info",
            "report-id",
            "policies",
            "warnings",
            "source"
        ]
    );
}
