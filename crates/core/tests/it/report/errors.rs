//! One focused test per fatal error, checking the message names what is wrong.

use crate::report::support::{detail, report_json};
use mtasts_core::report::{ReportError, parse_report_json, parse_reports};

fn err(bytes: &[u8]) -> (ReportError, String) {
    let e = parse_reports(bytes)
        .err()
        .unwrap_or_else(|| panic!("should fail: {}", String::from_utf8_lossy(bytes)));
    let msg = e.to_string();
    (e, msg)
}

fn without(json: &str, member: &str) -> String {
    let out = json.replace(member, "");
    assert_ne!(out, json, "{member} not found");
    out
}

#[test]
fn not_json() {
    let (e, msg) = err(b"{not json");
    assert!(
        matches!(
            e,
            ReportError::Json {
                line: 1,
                column: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(msg.starts_with("invalid JSON at line 1, column 2"), "{msg}");
}

#[test]
fn not_an_object() {
    let (e, msg) = err(b"  [1, 2]");
    assert_eq!(e, ReportError::NotAnObject { found: "an array" });
    assert!(msg.contains("this document is an array"), "{msg}");
}

#[test]
fn object_that_is_not_a_report() {
    let (e, msg) = err(br#"{"feedback": {"report_metadata": {}}, "x": 1}"#);
    assert!(matches!(e, ReportError::NotAReport { .. }), "{e:?}");
    assert!(msg.contains("its members: feedback, x"), "{msg}");
    let (_, msg) = err(b"{}");
    assert!(msg.contains("its members: none"), "{msg}");
}

#[test]
fn missing_required_members() {
    let base = report_json("", &detail(""));
    let (e, _) = err(without(&base, r#""report-id":"r1","#).as_bytes());
    assert_eq!(
        e,
        ReportError::MissingField {
            path: "report-id".into()
        }
    );
    let cut_policies = base
        .split(r#","policies""#)
        .next()
        .unwrap_or_default()
        .to_owned()
        + "}";
    let (e, msg) = err(cut_policies.as_bytes());
    assert_eq!(
        e,
        ReportError::MissingField {
            path: "policies".into()
        }
    );
    assert_eq!(msg, "required member `policies` is missing");

    let no_range = base.replace(
        r#""date-range":{"start-datetime":"2024-01-01T00:00:00Z",
        "end-datetime":"2024-01-01T23:59:59Z"},"#,
        "",
    );
    assert_ne!(no_range, base);
    assert_eq!(
        err(no_range.as_bytes()).0,
        ReportError::MissingField {
            path: "date-range".into()
        }
    );
    let no_end = without(
        &base,
        r#",
        "end-datetime":"2024-01-01T23:59:59Z""#,
    );
    assert_eq!(
        err(no_end.as_bytes()).0,
        ReportError::MissingField {
            path: "date-range.end-datetime".into()
        }
    );
    let null_id = base.replace(r#""report-id":"r1""#, r#""report-id":null"#);
    assert_eq!(
        err(null_id.as_bytes()).0,
        ReportError::MissingField {
            path: "report-id".into()
        }
    );
    let no_type = without(&base, r#""policy-type":"sts","#);
    assert_eq!(
        err(no_type.as_bytes()).0,
        ReportError::MissingField {
            path: "policies[0].policy.policy-type".into()
        }
    );
    let no_rt = without(&base, r#""result-type":"certificate-expired","#);
    assert_eq!(
        err(no_rt.as_bytes()).0,
        ReportError::MissingField {
            path: "policies[0].failure-details[0].result-type".into()
        }
    );
    let no_summary = without(
        &base,
        r#""summary":{"total-successful-session-count":5,"total-failure-session-count":1},"#,
    );
    assert_eq!(
        err(no_summary.as_bytes()).0,
        ReportError::MissingField {
            path: "policies[0].summary".into()
        }
    );
}

#[test]
fn wrong_types() {
    let base = report_json("", &detail(""));
    let p = base.replace(r#""policies":[{"#, r#""policies":"x","y":[{"#);
    let (e, msg) = err(p.as_bytes());
    assert_eq!(
        e,
        ReportError::InvalidField {
            path: "policies".into(),
            expected: "an array",
            found: "a string (\"x\")".into()
        }
    );
    assert_eq!(msg, "`policies` must be an array, found a string (\"x\")");
    let neg = base.replace(
        r#""total-successful-session-count":5"#,
        r#""total-successful-session-count":-5"#,
    );
    assert!(err(neg.as_bytes()).1.contains("policies[0].summary.total-successful-session-count` must be a non-negative integer, found a number (-5)"));
    let frac = base.replace(
        r#""failed-session-count":1"#,
        r#""failed-session-count":1.5"#,
    );
    assert!(matches!(
        err(frac.as_bytes()).0,
        ReportError::InvalidField { .. }
    ));
    let word = base.replace(
        r#""failed-session-count":1"#,
        r#""failed-session-count":"one""#,
    );
    assert!(matches!(
        err(word.as_bytes()).0,
        ReportError::InvalidField { .. }
    ));
    let num_id = base.replace(r#""report-id":"r1""#, r#""report-id":17"#);
    assert_eq!(
        err(num_id.as_bytes()).1,
        "`report-id` must be a string, found a number (17)"
    );
    let mx = base.replace(
        r#""policy-domain":"example.com""#,
        r#""policy-domain":"example.com","mx-host":[1]"#,
    );
    assert!(
        err(mx.as_bytes())
            .1
            .contains("policies[0].policy.mx-host[0]")
    );
    let pol = base.replace(r#""policies":[{"policy":{"#, r#""policies":[3,{"policy":{"#);
    assert!(
        err(pol.as_bytes())
            .1
            .starts_with("`policies[0]` must be an object")
    );
}

#[test]
fn unreadable_datetime() {
    let json = report_json("", &detail("")).replace("2024-01-01T23:59:59Z", "01/01/2024");
    let (e, msg) = err(json.as_bytes());
    assert_eq!(
        e,
        ReportError::InvalidDateTime {
            path: "date-range.end-datetime".into(),
            value: "01/01/2024".into()
        }
    );
    assert_eq!(
        msg,
        "`date-range.end-datetime` is not an RFC 3339 date-time: \"01/01/2024\""
    );
}

#[test]
fn hostile_json() {
    // NUL byte outside a string, deep nesting, huge numbers. (Invalid UTF-8 inside a string
    // is read as Latin-1 since issue 10 §2.7: `repairs::latin1_json_is_read_with_a_warning`.)
    assert!(matches!(err(b"{\"a\":\x001}").0, ReportError::Json { .. }));
    assert_eq!(
        err(b"{\"report-id\":\"\xff\xfe\"}").0,
        ReportError::MissingField {
            path: "policies".into()
        }
    );
    let deep = format!("{}{}", "{\"a\":[".repeat(300), "]}".repeat(300));
    let (e, msg) = err(deep.as_bytes());
    assert!(
        matches!(e, ReportError::Json { .. }) && msg.contains("recursion limit"),
        "{msg}"
    );
    let big = report_json("", &detail("")).replace(
        r#""failed-session-count":1"#,
        r#""failed-session-count":1e999"#,
    );
    // A count is judged from its text (`json::exact_integer`): refused, not out of range.
    assert!(
        err(big.as_bytes())
            .1
            .contains("must be a non-negative integer, found a number (1e999)")
    );
    let big_elsewhere = report_json(r#","x-size":1e999"#, &detail(""));
    assert!(
        err(big_elsewhere.as_bytes())
            .1
            .contains("number out of range")
    );
    let big_int = report_json("", &detail("")).replace(
        r#""failed-session-count":1"#,
        r#""failed-session-count":123456789012345678901234567890"#,
    );
    assert!(matches!(
        err(big_int.as_bytes()).0,
        ReportError::InvalidField { .. }
    ));
    let trailing = report_json("", &detail("")) + " {}";
    assert!(err(trailing.as_bytes()).1.contains("trailing characters"));
    // A JSON NUL escape inside a string is valid JSON and kept.
    let nul =
        report_json("", &detail("")).replace(r#""report-id":"r1""#, r#""report-id":"r\u0000""#);
    assert_eq!(
        crate::report::support::parse_ok(&nul).report.report_id,
        "r\0"
    );
}

#[test]
fn unrecognised_bytes() {
    let (e, msg) = err(b"hello, this is plain text");
    assert_eq!(e, ReportError::Unrecognised);
    assert!(
        msg.contains("not gzip")
            && msg.contains("not JSON")
            && msg.contains("not an RFC 5322 mail"),
        "{msg}"
    );
    assert_eq!(err(b"").0, ReportError::Unrecognised);
    assert_eq!(err(b"\x00\x01\x02").0, ReportError::Unrecognised);
}

#[test]
fn corrupt_gzip_and_gzip_without_json() {
    let mut bytes = crate::report::support::gz(report_json("", &detail("")).as_bytes());
    let n = bytes.len();
    bytes.truncate(n - 12);
    assert!(matches!(err(&bytes).0, ReportError::Gzip { .. }));
    assert!(
        err(&[0x1f, 0x8b, 0, 0])
            .1
            .starts_with("gzip data is corrupt")
    );
    let (e, msg) = err(&crate::report::support::gz(b"<html>oops</html>"));
    assert_eq!(
        e,
        ReportError::NotJsonInGzip {
            start: "<html>oops</html".into()
        }
    );
    assert!(msg.contains("does not contain a JSON report"), "{msg}");
}

#[test]
fn parse_report_json_does_not_sniff() {
    let gz = crate::report::support::gz(report_json("", &detail("")).as_bytes());
    assert!(matches!(
        parse_report_json(&gz),
        Err(ReportError::Json { .. })
    ));
}
