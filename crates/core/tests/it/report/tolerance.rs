//! Reports that real reporters could send slightly wrong and that are read with a repair
//! instead of being dropped (issue 10 §2.7): text that is not UTF-8, lone surrogate escapes,
//! base64 without padding, a report in a mail of more than 1000 parts; and counts that are not
//! exact integers, which are refused rather than rounded.

use crate::report::support::{base64, detail, gz, ids, mail_with, only, report_json};
use mtasts_core::report::{
    Limits, MAX_MIME_PARTS, ParsedReport, ReportError, parse_report_json, parse_reports,
    parse_reports_with,
};

fn read_one(bytes: &[u8]) -> ParsedReport {
    let mut reports = parse_reports(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut units: Vec<u16> = text.encode_utf16().collect();
    if bom {
        units.insert(0, 0xFEFF);
    }
    units
        .into_iter()
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

#[test]
fn utf16_json_with_or_without_bom_is_read_with_a_warning() {
    let json = report_json("", &detail("")).replace("\"Org\"", "\"Org é 😀\"");
    for big_endian in [true, false] {
        for bom in [true, false] {
            let bytes = utf16(&json, big_endian, bom);
            let case = format!("big_endian {big_endian}, bom {bom}");
            // Plain, gzip'd, and as a mail attachment (application/json, base64).
            let mail = mail_with("application/json", "r.json", &bytes);
            for input in [bytes.clone(), gz(&bytes), mail] {
                let p = read_one(&input);
                assert_eq!(p.report.organization_name, "Org é 😀", "{case}");
                let w = only(&p, "report.utf16");
                assert!(
                    w.message
                        .contains(if big_endian { "UTF-16BE" } else { "UTF-16LE" })
                        && w.message
                            .contains(if bom { "with a byte" } else { "without" }),
                    "{case}: {w}"
                );
                // raw_json is the text as sent, before conversion.
                assert_eq!(p.raw_json, bytes, "{case}");
            }
        }
    }
    // The JSON entry point reads it too.
    let p = parse_report_json(&utf16(&json, false, false)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids(&p.warnings)[0], "report.utf16");
}

#[test]
fn latin1_json_is_read_with_a_warning() {
    // "Société Générale" in ISO-8859-1: é is the single byte E9.
    let json = report_json("", &detail("")).replace("\"Org\"", "\"Soci\u{e9}t\u{e9}\"");
    let latin1: Vec<u8> = json.chars().map(|c| c as u8).collect();
    assert!(std::str::from_utf8(&latin1).is_err());
    for input in [latin1.clone(), gz(&latin1)] {
        let p = read_one(&input);
        assert_eq!(p.report.organization_name, "Société");
        assert!(
            only(&p, "report.latin1")
                .message
                .starts_with("2 byte(s) of the JSON are not UTF-8")
        );
        assert_eq!(p.raw_json, latin1);
    }
    // Valid UTF-8 around the Latin-1 byte is kept as UTF-8.
    let mixed = report_json("", &detail(""))
        .replace("\"Org\"", "\"Café \u{e9}\"")
        .into_bytes();
    let mut mixed = mixed;
    let at = mixed
        .windows(2)
        .position(|w| w == b"\xc3\xa9")
        .unwrap_or_else(|| panic!("no é"));
    mixed.splice(at..at + 2, [0xE9]);
    let p = read_one(&mixed);
    assert_eq!(p.report.organization_name, "Café é");
    assert!(only(&p, "report.latin1").message.starts_with("1 byte(s)"));
}

#[test]
fn lone_surrogate_escape_is_read_with_a_warning() {
    for (escaped, want) in [
        (r"r\ud800", "r\u{FFFD}"),
        (r"r\udc00x", "r\u{FFFD}x"),
        (r"\ud800\ud800\ude00", "\u{FFFD}\u{10200}"),
        (r"\ud83d", "\u{FFFD}"),
    ] {
        let json = report_json("", &detail("")).replace(
            r#""report-id":"r1""#,
            &format!(r#""report-id":"{escaped}""#),
        );
        for input in [json.clone().into_bytes(), gz(json.as_bytes())] {
            let p = read_one(&input);
            assert_eq!(p.report.report_id, want, "{escaped}");
            assert!(only(&p, "report.lone-surrogate").message.contains("U+FFFD"));
        }
    }
    // A proper pair is no repair.
    let json = report_json("", &detail(""))
        .replace(r#""report-id":"r1""#, r#""report-id":"\ud83d\ude00""#);
    let p = read_one(json.as_bytes());
    assert_eq!(p.report.report_id, "😀");
    assert!(!ids(&p.warnings).contains(&"report.lone-surrogate"));
    // A malformed escape stays fatal: nothing to mend.
    let bad = report_json("", &detail("")).replace(r#""report-id":"r1""#, r#""report-id":"\u12""#);
    assert!(matches!(
        parse_reports(bad.as_bytes()),
        Err(ReportError::Json { .. })
    ));
}

#[test]
fn base64_without_padding_is_read_with_a_warning() {
    // A gzip whose length needs padding (report-ids of growing length until one does).
    let data = (1..10)
        .map(|n| {
            let id = format!(r#""report-id":"{}""#, "r".repeat(n));
            gz(report_json("", &detail(""))
                .replace(r#""report-id":"r1""#, &id)
                .as_bytes())
        })
        .find(|d| d.len() % 3 != 0)
        .unwrap_or_else(|| panic!("no length needing padding"));
    let padded = base64(&data);
    assert!(padded.ends_with('='));
    let unpadded = padded.trim_end_matches('=');
    let mail = String::from_utf8(mail_with("application/tlsrpt+gzip", "r.json.gz", &data))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace(&padded, unpadded);
    let p = read_one(mail.as_bytes());
    assert!(p.report.report_id.starts_with('r'));
    assert!(
        only(&p, "report.base64-unpadded")
            .message
            .contains("decoded anyway")
    );
    // The padded mail needs no such repair.
    let p = read_one(&mail_with("application/tlsrpt+gzip", "r.json.gz", &data));
    assert!(!ids(&p.warnings).contains(&"report.base64-unpadded"));
}

/// A mail with the report first, then `n` text parts.
fn mail_with_report_then_parts(n: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n",
    );
    m.push_str("--B\r\nContent-Type: application/tlsrpt+json\r\n\r\n");
    m.push_str(&report_json("", &detail("")));
    m.push_str("\r\n");
    for i in 0..n {
        m.push_str(&format!(
            "--B\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--B--\r\n");
    m.into_bytes()
}

#[test]
fn readable_report_in_a_mail_of_more_than_1000_parts_is_read_with_a_warning() {
    for n in [MAX_MIME_PARTS, 5 * MAX_MIME_PARTS] {
        let p = read_one(&mail_with_report_then_parts(n));
        assert_eq!(p.report.report_id, "r1");
        assert_eq!(
            only(&p, "report.mail-truncated").message,
            format!(
                "the mail has more than {MAX_MIME_PARTS} MIME parts: the rest of the mail was not \
                 examined; the report(s) found before that point were read"
            )
        );
    }
    // Up to the limit: no warning. Parts: the container, the report and n text parts.
    let p = read_one(&mail_with_report_then_parts(MAX_MIME_PARTS - 2));
    assert!(!ids(&p.warnings).contains(&"report.mail-truncated"));
}

#[test]
fn mail_with_more_header_fields_than_the_limit_keeps_the_reports_before() {
    let limits = Limits {
        max_mime_header_fields: 20,
        ..Limits::default()
    };
    // The report part and its header, then a part with many header fields.
    let fields = |n: usize| (0..n).map(|i| format!("X-F{i}: v\r\n")).collect::<String>();
    let mail = |n: usize| {
        format!(
            "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
             --B\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--B\r\n{}\r\nbody\r\n--B--\r\n",
            report_json("", &detail("")),
            fields(n)
        )
    };
    // Header lines so far: From, MIME-Version, Content-Type, Content-Type = 4.
    let at = parse_reports_with(mail(16).as_bytes(), &limits).unwrap_or_else(|e| panic!("{e}"));
    assert!(!ids(&at[0].warnings).contains(&"report.mail-truncated"));
    let past = parse_reports_with(mail(17).as_bytes(), &limits).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(past[0].report.report_id, "r1");
    assert!(
        only(&past[0], "report.mail-truncated")
            .message
            .starts_with("the mail has more than 20 header fields")
    );
    // Nothing before the cut: the cut is the error.
    let header_only = format!(
        "From: a@o.example\r\n{}\r\n{}",
        fields(30),
        report_json("", &detail(""))
    );
    assert_eq!(
        parse_reports_with(header_only.as_bytes(), &limits).err(),
        Some(ReportError::TooManyHeaderFields { limit: 20 })
    );
}

fn with_count(count: &str) -> String {
    report_json("", &detail("")).replace(
        r#""failed-session-count":1"#,
        &format!(r#""failed-session-count":{count}"#),
    )
}

#[test]
fn count_that_is_not_an_exact_integer_is_refused_never_rounded() {
    // serde_json reads all of these as floats; 1.0000000000000000001 and
    // 18446744073709551616.0 would round to 1 and 2^64.
    for count in [
        "1.0000000000000000001",
        "0.99999999999999999999",
        "1.5",
        "-1",
        "1e20",
        "1e-1",
        "18446744073709551616",
        "18446744073709551616.0",
        "1e99999999999999999999",
    ] {
        let json = with_count(count);
        assert_eq!(
            parse_reports(json.as_bytes()).err(),
            Some(ReportError::InvalidField {
                path: "policies[0].failure-details[0].failed-session-count".into(),
                expected: "a non-negative integer",
                found: format!("a number ({count})"),
            }),
            "{count}"
        );
    }
    // Exact integers in other forms: read, and flagged with the text as written.
    for (count, n) in [
        ("1.000", 1),
        ("1e0", 1),
        ("1E3", 1000),
        ("1500e-2", 15),
        ("-0", 0),
        ("9007199254740993.0", 9_007_199_254_740_993),
    ] {
        let p = read_one(with_count(count).as_bytes());
        let d = &p.report.policies[0].failure_details[0];
        assert_eq!(d.failed_session_count, n, "{count}");
        assert_eq!(
            only(&p, "report.count-not-integer").message,
            format!("count written as {count} instead of an integer; its exact value is {n}")
        );
    }
    // In the summary and in a single failure-detail object (read as element 0) too.
    let json = report_json("", &detail("")).replace(
        r#""total-successful-session-count":5"#,
        r#""total-successful-session-count":5.0000000000000000001"#,
    );
    assert!(matches!(
        parse_reports(json.as_bytes()),
        Err(ReportError::InvalidField { path, .. })
            if path == "policies[0].summary.total-successful-session-count"
    ));
    let json = with_count("2.0").replace(r#""failure-details":[{"#, r#""failure-details":{"#);
    let json = json.replacen("}]}]}", "}}]}", 1);
    let p = read_one(json.as_bytes());
    assert_eq!(
        p.report.policies[0].failure_details[0].failed_session_count,
        2
    );
    assert!(ids(&p.warnings).contains(&"report.count-not-integer"));
}

#[test]
fn report_beside_a_message_nested_too_deep_is_read_with_a_warning() {
    use mtasts_core::report::MAX_MIME_DEPTH;
    // A report at the top, and a forwarded message whose own report sits one level too deep.
    let deep = String::from_utf8(crate::report::limits::nested(MAX_MIME_DEPTH))
        .unwrap_or_else(|e| panic!("{e}"));
    let mail = format!(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=TOP\r\n\r\n\
         --TOP\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n\
         --TOP\r\nContent-Type: message/rfc822\r\n\r\n{deep}\r\n--TOP--\r\n",
        report_json("", &detail("")).replace(r#""report-id":"r1""#, r#""report-id":"top""#)
    );
    let p = read_one(mail.as_bytes());
    assert_eq!(p.report.report_id, "top");
    assert!(
        only(&p, "report.mail-truncated")
            .message
            .starts_with(&format!(
                "the mail nests messages deeper than {MAX_MIME_DEPTH} levels"
            ))
    );
}
