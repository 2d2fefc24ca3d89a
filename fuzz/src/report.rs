//! TLS-RPT report readers (JSON, and gzip/JSON/MIME sniffing): no panic on any input, the fast
//! path and the tolerant reader agree, and what our strict generator writes from a parsed report
//! reads back cleanly and regenerates identically.

use mtasts_core::report::{
    ParsedReport, generate_json, parse_report_json, parse_report_mail, parse_reports,
    without_fast_path,
};

/// Reads `data` as one JSON report; see [`roundtrip`] for what an accepted report must satisfy.
pub fn check_json(data: &[u8]) {
    let parsed = parse_report_json(data);
    assert_eq!(
        parsed,
        without_fast_path(|| parse_report_json(data)),
        "the fast path and the tolerant reader disagree"
    );
    if let Ok(parsed) = parsed {
        roundtrip(&parsed, data);
    }
}

/// Reads `data` as a mail and with the sniffing entry point; see [`roundtrip`] for each report.
pub fn check_mime(data: &[u8]) {
    if let Ok(reports) = parse_report_mail(data) {
        assert!(!reports.is_empty(), "Ok(empty) from parse_report_mail");
        for parsed in &reports {
            roundtrip(parsed, data);
        }
    }
    if let Ok(reports) = parse_reports(data) {
        assert!(!reports.is_empty(), "Ok(empty) from parse_reports");
        for parsed in &reports {
            roundtrip(parsed, data);
        }
    }
}

/// Every accepted report serialises for the CLI, and when the strict generator accepts it, its
/// output parses back without repairs (notes allowed) and generates the same text again.
pub fn roundtrip(parsed: &ParsedReport, input: &[u8]) {
    let _ = parsed.to_json("fuzz");
    let Ok(json) = generate_json(&parsed.report) else {
        return;
    };
    let again = match parse_report_json(json.as_bytes()) {
        Ok(again) => again,
        Err(e) => panic!(
            "our own generated report does not parse: {e}\ngenerated: {json}\ninput: {:?}",
            String::from_utf8_lossy(input)
        ),
    };
    assert!(
        again.is_clean(),
        "our own generated report needs repairs: {:#?}\ngenerated: {json}",
        again.warnings
    );
    let json2 = generate_json(&again.report)
        .unwrap_or_else(|e| panic!("regenerating failed: {e}\ngenerated: {json}"));
    assert_eq!(json, json2, "generate → parse → generate is not stable");
}
