//! Every real report in tests/data/tlsrpt parses; snapshots of what we read from each.

use crate::report::support::{corpus, ids};
use mtasts_core::report::{ResultType, parse_reports};

#[test]
fn every_corpus_file_parses_and_matches_its_snapshot() {
    for (name, bytes) in corpus() {
        let reports = parse_reports(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!reports.is_empty(), "{name}");
        let value: Vec<serde_json::Value> = reports.iter().map(|r| r.to_json(&name)).collect();
        let snap = name.replace(['/', '!'], "__");
        insta::assert_json_snapshot!(snap, value);
    }
}

#[test]
fn the_normalised_text_written_straight_is_the_trees_text() {
    let mut checked = 0;
    for (name, bytes) in corpus() {
        for r in parse_reports(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")) {
            assert_eq!(
                r.to_json_string(&name),
                r.to_json(&name).to_string(),
                "{name}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "{checked}");
    // Unknown members everywhere, and top-level ones named like the two added members: the
    // tree replaces those in place, and so must the text.
    let doc = br#"{"organization-name":"o","date-range":{"start-datetime":"2024-01-01T00:00:00Z",
        "end-datetime":"2024-01-01T23:59:59Z","x":1},"contact-info":"a@b","report-id":"r",
        "z":[1.5,{"k":null}],"warnings":"theirs","source":7,
        "policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1"],
        "policy-domain":"a.test","mx-host":["mx.a.test"],"p":true},
        "summary":{"total-successful-session-count":1,"total-failure-session-count":2,"s":"t"},
        "failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",
        "receiving-mx-hostname":"mx.a.test","failed-session-count":2,"f":"g"}],"q":{}}]}"#;
    for r in parse_reports(doc).unwrap_or_else(|e| panic!("{e}")) {
        assert_eq!(r.to_json_string("s"), r.to_json("s").to_string());
        let mut plain = r.clone();
        plain
            .report
            .extra
            .retain(|k, _| k != "warnings" && k != "source");
        assert_eq!(plain.to_json_string("s"), plain.to_json("s").to_string());
        assert!(
            plain
                .to_json_string("s")
                .contains(r#""z":[1.5,{"k":null}]"#)
        );
    }
}

#[test]
fn eml_files_agree_with_their_json_twins() {
    for (name, bytes) in corpus() {
        let Some(stem) = name.strip_suffix(".eml") else {
            continue;
        };
        let twin = format!("{}/{stem}.json", crate::report::support::DATA);
        let Ok(json) = std::fs::read(&twin) else {
            continue;
        };
        let from_mail = parse_reports(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let from_json = parse_reports(&json).unwrap_or_else(|e| panic!("{twin}: {e}"));
        assert_eq!(from_mail.len(), 1, "{name}");
        assert_eq!(from_mail[0].report, from_json[0].report, "{name}");
    }
}

#[test]
fn rpt03_is_read_with_its_repairs() {
    let bytes = std::fs::read(format!(
        "{}/mail-auth/rpt03.json",
        crate::report::support::DATA
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &parse_reports(&bytes).unwrap_or_else(|e| panic!("{e}"))[0];
    assert_eq!(
        ids(&p.warnings),
        [
            "report.policy-string-missing",
            "report.policy-domain-missing",
            "report.count-missing",
            "report.failure-details-missing",
            "report.policy-type-unknown",
            "report.policy-string-missing",
            "report.policy-domain-missing",
            "report.count-missing",
            "report.failure-details-missing",
        ]
    );
    assert_eq!(
        p.report.policies[1].policy.policy_type.as_str(),
        "invalid-policy-type"
    );
    assert_eq!(p.report.policies[0].summary.total_failure_session_count, 0);
}

#[test]
fn google_mail_report_is_found_behind_a_gateway_banner() {
    let bytes = std::fs::read(format!(
        "{}/parsedmarc/google.com_smtp_tls_report.eml",
        crate::report::support::DATA
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let reports = parse_reports(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 1);
    let r = &reports[0].report;
    assert_eq!(r.organization_name, "Google Inc.");
    assert_eq!(r.policies[0].policy.policy_type.as_str(), "no-policy-found");
    assert!(reports[0].raw_json.starts_with(b"{"));
}

#[test]
fn mail_ru_counts_are_kept_as_sent() {
    let bytes = std::fs::read(format!(
        "{}/parsedmarc/mail.ru.json",
        crate::report::support::DATA
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &parse_reports(&bytes).unwrap_or_else(|e| panic!("{e}"))[0];
    let pol = &p.report.policies[0];
    assert_eq!(pol.summary.total_failure_session_count, 1);
    assert_eq!(pol.failure_details.len(), 2);
    assert!(
        pol.failure_details
            .iter()
            .all(|d| d.result_type == ResultType::StsPolicyFetchError)
    );
    assert!(ids(&p.warnings).contains(&"report.failure-count-mismatch"));
    // Fetch errors carry no addresses; that is not flagged.
    assert!(!ids(&p.warnings).contains(&"report.failure-detail-incomplete"));
}
