//! Every real report in tests/data/tlsrpt parses; snapshots of what we read from each.

use crate::support::{corpus, ids};
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
fn eml_files_agree_with_their_json_twins() {
    for (name, bytes) in corpus() {
        let Some(stem) = name.strip_suffix(".eml") else {
            continue;
        };
        let twin = format!("{}/{stem}.json", crate::support::DATA);
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
    let bytes = std::fs::read(format!("{}/mail-auth/rpt03.json", crate::support::DATA))
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
        crate::support::DATA
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
    let bytes = std::fs::read(format!("{}/parsedmarc/mail.ru.json", crate::support::DATA))
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
