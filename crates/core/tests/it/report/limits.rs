//! Each resource limit, at its boundary and at its real value; the gzip bomb.

use crate::report::support::{detail, gz, mail_with, report_json};
use mtasts_core::report::{
    Limits, MAX_DECOMPRESSED_SIZE, MAX_FAILURE_DETAILS, MAX_INPUT_SIZE, MAX_MIME_DEPTH,
    MAX_MIME_PARTS, MAX_POLICIES, ReportError, parse_report_json, parse_reports,
    parse_reports_with,
};
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn limit_values_are_as_documented() {
    assert_eq!(MAX_INPUT_SIZE, 32 << 20);
    assert_eq!(MAX_DECOMPRESSED_SIZE, 64 << 20);
    assert_eq!((MAX_MIME_PARTS, MAX_MIME_DEPTH), (1000, 8));
    assert_eq!((MAX_POLICIES, MAX_FAILURE_DETAILS), (10_000, 100_000));
    assert_eq!(Limits::default().max_input, MAX_INPUT_SIZE);
    // The memory budgets of issue 10 §2.1, as docs/diagnostics.md lists them.
    use mtasts_core::report::{
        MAX_MAIL_DECOMPRESSED, MAX_MAIL_MEMORY, MAX_MIME_HEADER_FIELDS, MAX_RAW_JSON,
        MAX_REPORT_MEMORY, MAX_RUN_DECOMPRESSED, MAX_UNKNOWN_MEMBER, MAX_UNKNOWN_TOTAL,
    };
    assert_eq!(
        (MAX_MAIL_DECOMPRESSED, MAX_RUN_DECOMPRESSED),
        (256 << 20, 4 << 30)
    );
    assert_eq!((MAX_REPORT_MEMORY, MAX_MAIL_MEMORY), (128 << 20, 256 << 20));
    assert_eq!((MAX_UNKNOWN_MEMBER, MAX_UNKNOWN_TOTAL), (64 << 10, 1 << 20));
    assert_eq!((MAX_RAW_JSON, MAX_MIME_HEADER_FIELDS), (1 << 20, 100_000));
    let d = Limits::default();
    assert_eq!(
        (
            d.max_mail_decompressed,
            d.max_run_decompressed,
            d.max_report_memory
        ),
        (
            MAX_MAIL_DECOMPRESSED,
            MAX_RUN_DECOMPRESSED,
            MAX_REPORT_MEMORY
        )
    );
    assert_eq!(
        (
            d.max_mail_memory,
            d.max_unknown_member,
            d.max_unknown_total,
            d.max_raw_json
        ),
        (
            MAX_MAIL_MEMORY,
            MAX_UNKNOWN_MEMBER,
            MAX_UNKNOWN_TOTAL,
            MAX_RAW_JSON
        )
    );
    assert_eq!(d.max_mime_header_fields, MAX_MIME_HEADER_FIELDS);
}

#[test]
fn input_size() {
    let json = report_json("", &detail(""));
    let at = Limits {
        max_input: json.len(),
        ..Limits::default()
    };
    assert!(parse_reports_with(json.as_bytes(), &at).is_ok());
    let below = Limits {
        max_input: json.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_reports_with(json.as_bytes(), &below).err(),
        Some(ReportError::TooLarge {
            what: "input",
            limit: json.len() - 1
        })
    );
    // The real limit, checked before any parsing.
    let mut huge = vec![b' '; MAX_INPUT_SIZE + 1];
    huge[0] = b'{';
    assert_eq!(
        parse_report_json(&huge).err().map(|e| e.to_string()),
        Some(format!(
            "input is larger than the limit of {MAX_INPUT_SIZE} bytes"
        ))
    );
}

#[test]
fn decompressed_size() {
    let json = report_json("", &detail(""));
    let data = gz(json.as_bytes());
    let at = Limits {
        max_decompressed: json.len(),
        ..Limits::default()
    };
    assert!(parse_reports_with(&data, &at).is_ok());
    let below = Limits {
        max_decompressed: json.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_reports_with(&data, &below).err(),
        Some(ReportError::TooLarge {
            what: "decompressed gzip data",
            limit: json.len() - 1
        })
    );
}

/// `{` and 1 GiB of spaces, gzipped in one member, streamed so the test never holds 1 GiB:
/// JSON from its first byte, so only the decompression cap stops it.
fn bomb_single_member() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b"{").unwrap_or_else(|e| panic!("{e}"));
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&chunk).unwrap_or_else(|e| panic!("{e}"));
    }
    enc.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// Peak resident set size of this process, from /proc (None elsewhere).
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn gzip_bomb_is_rejected_fast() {
    let bomb = bomb_single_member();
    assert!(bomb.len() < 8 << 20, "bomb is {} bytes", bomb.len());
    let started = Instant::now();
    let err = parse_reports(&bomb).err();
    assert_eq!(
        err,
        Some(ReportError::TooLarge {
            what: "decompressed gzip data",
            limit: MAX_DECOMPRESSED_SIZE
        })
    );
    // Bounded work: decoding stops one byte past 64 MiB, not at 1 GiB.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    // Bounded memory: decompression is streamed into the JSON parser, so not even the 64 MiB
    // are held (Linux only; the process's peak, which includes the 1 GiB never made).
    if let Some(peak_kib) = peak_rss_kib() {
        assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB");
    }
    // Inside a mail, labelled as a report, too.
    let mail = mail_with("application/tlsrpt+gzip", "bomb.json.gz", &bomb);
    match parse_reports(&mail) {
        Err(ReportError::NoReportInMail {
            candidates: 1,
            first_error: Some(e),
        }) => {
            assert!(matches!(*e, ReportError::TooLarge { .. }), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    // Data that is not JSON is refused from its first bytes, without decompressing the rest.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..1024 {
        enc.write_all(&[0u8; 1 << 20])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let zeros = enc.finish().unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    assert!(matches!(
        parse_reports(&zeros),
        Err(ReportError::NotJsonInGzip { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn multi_member_gzip_bomb_is_rejected() {
    // `{` and 1 GiB of spaces as 1025 concatenated gzip members: MultiGzDecoder reads them
    // all, and the cap still applies to the total.
    let member = gz(&vec![b' '; 1 << 20]);
    let bomb: Vec<u8> = std::iter::once(gz(b"{"))
        .chain(std::iter::repeat_n(member, 1024))
        .flatten()
        .collect();
    assert_eq!(
        parse_reports(&bomb).err(),
        Some(ReportError::TooLarge {
            what: "decompressed gzip data",
            limit: MAX_DECOMPRESSED_SIZE
        })
    );
    // Two members that together hold one report are read as one document.
    let json = report_json("", &detail(""));
    let (a, b) = json.split_at(json.len() / 2);
    let two = [gz(a.as_bytes()), gz(b.as_bytes())].concat();
    assert!(parse_reports(&two).is_ok());
}

fn policies(n: usize) -> String {
    let one = r#"{"policy":{"policy-type":"sts","policy-string":[],"policy-domain":"e.example"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0},"failure-details":[]}"#;
    let all = vec![one; n].join(",");
    format!(
        r#"{{"organization-name":"O","date-range":{{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-02T00:00:00Z"}},"contact-info":"a@o.example","report-id":"1","policies":[{all}]}}"#
    )
}

#[test]
fn policies_per_report() {
    let small = Limits {
        max_policies: 3,
        ..Limits::default()
    };
    assert!(parse_reports_with(policies(3).as_bytes(), &small).is_ok());
    assert_eq!(
        parse_reports_with(policies(4).as_bytes(), &small).err(),
        Some(ReportError::TooManyElements {
            path: "policies".into(),
            count: 4,
            limit: 3
        })
    );
    assert!(parse_reports(policies(MAX_POLICIES).as_bytes()).is_ok());
    assert!(matches!(
        parse_reports(policies(MAX_POLICIES + 1).as_bytes()),
        Err(ReportError::TooManyElements {
            limit: MAX_POLICIES,
            ..
        })
    ));
}

#[test]
fn failure_details_per_policy() {
    let d = r#"{"result-type":"sts-policy-fetch-error","failed-session-count":1}"#;
    let json = |n: usize| {
        report_json("", &vec![d; n].join(",")).replace(
            r#""total-failure-session-count":1"#,
            &format!(r#""total-failure-session-count":{n}"#),
        )
    };
    let small = Limits {
        max_failure_details: 2,
        ..Limits::default()
    };
    assert!(parse_reports_with(json(2).as_bytes(), &small).is_ok());
    assert_eq!(
        parse_reports_with(json(3).as_bytes(), &small).err(),
        Some(ReportError::TooManyElements {
            path: "policies[0].failure-details".into(),
            count: 3,
            limit: 2
        })
    );
    assert!(matches!(
        parse_reports(json(MAX_FAILURE_DETAILS + 1).as_bytes()),
        Err(ReportError::TooManyElements {
            limit: MAX_FAILURE_DETAILS,
            ..
        })
    ));
}

/// A mail with `n` text parts and the report last.
fn mail_with_parts(n: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n",
    );
    for i in 0..n {
        m.push_str(&format!(
            "--B\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    m.push_str("--B\r\nContent-Type: application/tlsrpt+json\r\n\r\n");
    m.push_str(&report_json("", &detail("")));
    m.push_str("\r\n--B--\r\n");
    m.into_bytes()
}

#[test]
fn mime_parts() {
    // Parts: the multipart container, n text parts and the report.
    let mail = mail_with_parts(3);
    let at = Limits {
        max_mime_parts: 5,
        ..Limits::default()
    };
    assert_eq!(parse_reports_with(&mail, &at).map(|r| r.len()), Ok(1));
    let below = Limits {
        max_mime_parts: 4,
        ..Limits::default()
    };
    assert_eq!(
        parse_reports_with(&mail, &below).err(),
        Some(ReportError::TooManyMimeParts { limit: 4 })
    );
    assert!(parse_reports(&mail_with_parts(MAX_MIME_PARTS - 2)).is_ok());
    assert_eq!(
        parse_reports(&mail_with_parts(MAX_MIME_PARTS - 1)).err(),
        Some(ReportError::TooManyMimeParts {
            limit: MAX_MIME_PARTS
        })
    );
}

/// The report inside `levels` nested message/rfc822 parts.
pub(crate) fn nested(levels: usize) -> Vec<u8> {
    let mut inner = format!(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n",
        report_json("", &detail(""))
    );
    for level in 0..levels {
        inner = format!(
            "From: fwd{level}@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; \
             boundary=L{level}\r\n\r\n--L{level}\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--L{level}--\r\n"
        );
    }
    inner.into_bytes()
}

#[test]
fn mime_depth() {
    assert_eq!(
        parse_reports(&nested(MAX_MIME_DEPTH)).map(|r| r.len()),
        Ok(1)
    );
    assert_eq!(
        parse_reports(&nested(MAX_MIME_DEPTH + 1)).err(),
        Some(ReportError::MimeTooDeep {
            limit: MAX_MIME_DEPTH
        })
    );
    let shallow = Limits {
        max_mime_depth: 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_reports_with(&nested(1), &shallow).map(|r| r.len()),
        Ok(1)
    );
    assert_eq!(
        parse_reports_with(&nested(2), &shallow).err(),
        Some(ReportError::MimeTooDeep { limit: 1 })
    );
}
