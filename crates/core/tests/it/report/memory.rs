//! Memory of the report parser (issue 10 §2.1): the inputs that blew it up, and every memory
//! budget at its limit and just past it.
//!
//! The peak RSS checks read this process's high-water mark: meaningful under nextest (one
//! process per test), an upper bound under `cargo test`.

use crate::report::limits::peak_rss_kib;
use crate::report::support::{base64, detail, gz, ids, only, report_json};
use mtasts_core::report::{
    Limits, MAX_MAIL_DECOMPRESSED, MAX_MIME_HEADER_FIELDS, MAX_MIME_PARTS, MAX_RAW_JSON,
    MAX_UNKNOWN_MEMBER, ParsedReport, ReportError, RunBudget, parse_reports, parse_reports_in,
    parse_reports_with,
};
use std::io::Write;

const MIB: usize = 1 << 20;

fn assert_peak_below(mib: u64) {
    if let Some(kib) = peak_rss_kib() {
        assert!(kib < mib * 1024, "peak RSS {} MiB", kib / 1024);
    }
}

/// gzip of a report whose top-level member `x-padding` is an array of `n` zeros, streamed.
fn unknown_array_gz(n: usize) -> Vec<u8> {
    let json = report_json("", &detail(""));
    let (head, tail) = json.split_at(json.len() - 1);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let w = |enc: &mut flate2::write::GzEncoder<Vec<u8>>, b: &[u8]| {
        enc.write_all(b).unwrap_or_else(|e| panic!("{e}"));
    };
    w(&mut enc, head.as_bytes());
    w(&mut enc, br#","x-padding":[0"#);
    let chunk = ",0".repeat(1 << 16);
    for _ in 0..n / (1 << 16) {
        w(&mut enc, chunk.as_bytes());
    }
    w(&mut enc, b"]");
    w(&mut enc, tail.as_bytes());
    enc.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// A `multipart/report` mail with a text part and one base64 attachment per element of `parts`.
fn mail(parts: &[&[u8]]) -> Vec<u8> {
    let mut m = String::from(
        "From: tlsrpt@org.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; \
         report-type=\"tlsrpt\"; boundary=\"BOUND\"\r\n\r\n--BOUND\r\nContent-Type: text/plain\r\n\r\n\
         This is a TLS report.\r\n",
    );
    for (i, p) in parts.iter().enumerate() {
        m.push_str(&format!(
            "--BOUND\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Disposition: attachment; \
             filename=\"r{i}.json.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            base64(p)
        ));
    }
    m.push_str("--BOUND--\r\n");
    m.into_bytes()
}

fn assert_padding_dropped(p: &ParsedReport) {
    assert_eq!(p.report.report_id, "r1");
    assert!(!p.report.extra.contains_key("x-padding"));
    let w = only(p, "report.unknown-member-dropped");
    assert_eq!(w.path, "x-padding");
    assert!(w.message.contains("read past and not kept"), "{w}");
}

#[test]
fn huge_unknown_member_in_a_small_gzip_is_read_past_not_kept() {
    // 8 MiB of `,0` (4 million values; the issue's case was 64 MiB, 4.6 GB resident, and is
    // bench/report-memory's `unknown-array.json.gz`): the tree used to take about 150 bytes a
    // value, 600 MB here.
    let data = unknown_array_gz(4 * MIB);
    assert!(data.len() < 64 * 1024, "{} bytes", data.len());
    let reports = parse_reports(&data).unwrap_or_else(|e| panic!("{e}"));
    assert_padding_dropped(&reports[0]);
    assert!(reports[0].raw_json.len() <= MAX_RAW_JSON);
    assert!(reports[0].raw_json_size > 8 * MIB as u64);
    assert_peak_below(256);
}

#[test]
fn mail_with_three_huge_unknown_members_keeps_all_three_reports() {
    let data = unknown_array_gz(2 * MIB);
    let reports = parse_reports(&mail(&[&data, &data, &data])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 3);
    for r in &reports {
        assert_padding_dropped(r);
    }
    assert_peak_below(256);
}

#[test]
fn mail_of_200_padded_reports_stays_within_the_mail_budget() {
    // Each part: a report followed by white space up to just under the per-report limit. The
    // whole JSON used to be kept as raw_json: 200 × 64 MiB, 13 GB. At a sixteenth of the real
    // limits here (an unoptimised build reads ~10 MB/s through the streaming path); the real
    // scale is bench/report-memory's `padded-200.eml` (BENCHMARKS.md, "report parse memory").
    let limits = Limits {
        max_decompressed: 4 * MIB,
        max_mail_decompressed: 16 * MIB,
        max_raw_json: 64 * 1024,
        ..Limits::default()
    };
    let json = report_json("", &detail(""));
    let size = 4 * MIB - 1024;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(json.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    enc.write_all(&vec![b' '; size - json.len()])
        .unwrap_or_else(|e| panic!("{e}"));
    let part = enc.finish().unwrap_or_else(|e| panic!("{e}"));
    let parts = vec![part.as_slice(); 200];
    let mail = mail(&parts);
    let reports = parse_reports_with(&mail, &limits).unwrap_or_else(|e| panic!("{e}"));
    // As many as fit in the mail's decompression budget; each refused part is named.
    assert_eq!(reports.len(), 4);
    for r in &reports {
        assert_eq!(r.raw_json.len(), 64 * 1024);
        assert_eq!(r.raw_json_size, size as u64);
        assert!(ids(&r.warnings).contains(&"report.raw-json-truncated"));
        let w = only(r, "report.mail-part-unreadable");
        assert!(
            w.message.starts_with("196 other part(s) of the same mail")
                && w.message.contains(&format!(
                    "part 7: decompressed data of this mail is larger than the limit of {} bytes",
                    16 * MIB
                ))
                && w.message.contains("and 186 more"),
            "{w}"
        );
    }
    assert_peak_below(256);
    // The real budget holds as many of the real size.
    assert_eq!(MAX_MAIL_DECOMPRESSED / (64 * MIB - 1024), 4);
}

/// A mail of `parts` tiny text parts and the report last.
fn tiny_parts(parts: usize) -> Vec<u8> {
    let mut m = b"From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        .to_vec();
    for _ in 0..parts {
        m.extend_from_slice(b"--B\r\n\r\nx\r\n");
    }
    m.extend_from_slice(b"--B\r\nContent-Type: application/json\r\n\r\n");
    m.extend_from_slice(report_json("", &detail("")).as_bytes());
    m.extend_from_slice(b"\r\n--B--\r\n");
    m
}

#[test]
fn mail_of_millions_of_tiny_parts_or_header_fields_is_cut_before_the_mime_parser() {
    // 3.4 million parts (32 MiB) took 595 MB in mail-parser; now it never sees more than about
    // twice MAX_MIME_PARTS of them.
    let many = tiny_parts(3_000_000);
    assert_eq!(
        parse_reports(&many).err(),
        Some(ReportError::TooManyMimeParts {
            limit: MAX_MIME_PARTS
        })
    );
    // A 32 MiB mail of 6.7 million header fields took 813 MB.
    let mut headers = b"From: a@o.example\r\n".to_vec();
    headers.extend(b"X:y\r\n".repeat(5_000_000));
    headers.extend_from_slice(b"\r\n");
    headers.extend_from_slice(report_json("", &detail("")).as_bytes());
    assert_eq!(
        parse_reports(&headers).err(),
        Some(ReportError::TooManyHeaderFields {
            limit: MAX_MIME_HEADER_FIELDS
        })
    );
    assert_peak_below(256);
}

#[test]
fn millions_of_elements_in_a_known_array_are_refused_within_memory() {
    // `failure-details` past its limit stops while read, not after 20 million elements exist.
    let json = report_json("", &"{},".repeat(10_000_000)).replace(",]", "]");
    let started = std::time::Instant::now();
    let e = parse_reports(json.as_bytes()).err();
    assert!(
        matches!(e, Some(ReportError::TooManyElements { count: 100_001, .. })),
        "{e:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // `policy-string` has no element limit: the memory estimate stops it.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let strings = format!("\"\"{}", ",\"\"".repeat(10_000_000));
    let json = report_json("", &detail("")).replace(
        r#""policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"]"#,
        &format!(r#""policy-string":[{strings}]"#),
    );
    enc.write_all(json.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    drop((json, strings));
    let data = enc.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        parse_reports(&data).err(),
        Some(ReportError::TooLarge {
            what: "parsed report (estimated memory)",
            limit: mtasts_core::report::MAX_REPORT_MEMORY
        })
    );
    assert_peak_below(512);
}

/// The smallest value in 0..=2^30 for which `ok` holds (`ok` must be monotone).
fn smallest(ok: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, 1 << 30);
    assert!(ok(hi));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if ok(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn json_len() -> usize {
    report_json("", &detail("")).len()
}

#[test]
fn mail_decompression_budget_at_and_past_the_limit() {
    let one = gz(report_json("", &detail("")).as_bytes());
    let two = mail(&[&one, &one]);
    let at = Limits {
        max_mail_decompressed: 2 * json_len(),
        ..Limits::default()
    };
    assert_eq!(parse_reports_with(&two, &at).map(|r| r.len()), Ok(2));
    let past = Limits {
        max_mail_decompressed: 2 * json_len() - 1,
        ..Limits::default()
    };
    let reports = parse_reports_with(&two, &past).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 1, "the report that fits is kept");
    assert!(
        only(&reports[0], "report.mail-part-unreadable")
            .message
            .contains(&format!(
                "part 4: decompressed data of this mail is larger than the limit of {} bytes",
                2 * json_len() - 1
            ))
    );
}

#[test]
fn run_decompression_budget_at_and_past_the_limit() {
    let one = gz(report_json("", &detail("")).as_bytes());
    let limits = Limits::default();
    let mut run = RunBudget::new(2 * json_len() as u64);
    for _ in 0..2 {
        assert!(parse_reports_in(&one, &limits, &mut run).is_ok());
    }
    assert_eq!(run.left(), 0);
    let mut run = RunBudget::new(2 * json_len() as u64 - 1);
    assert!(parse_reports_in(&one, &limits, &mut run).is_ok());
    assert_eq!(
        parse_reports_in(&one, &limits, &mut run).err(),
        Some(ReportError::TooLarge {
            what: "decompressed data of this run",
            limit: 2 * json_len() - 1
        })
    );
    // Plain JSON is not decompressed and spends nothing.
    let mut run = RunBudget::new(0);
    assert!(parse_reports_in(report_json("", &detail("")).as_bytes(), &limits, &mut run).is_ok());
}

#[test]
fn report_memory_at_and_past_the_limit() {
    let json = report_json("", &detail(""));
    let with = |max_report_memory| Limits {
        max_report_memory,
        ..Limits::default()
    };
    let at = smallest(|m| parse_reports_with(json.as_bytes(), &with(m)).is_ok());
    assert!(
        at > json.len(),
        "the estimate ({at}) is above the text size"
    );
    assert_eq!(
        parse_reports_with(json.as_bytes(), &with(at - 1)).err(),
        Some(ReportError::TooLarge {
            what: "parsed report (estimated memory)",
            limit: at - 1
        })
    );
}

#[test]
fn mail_memory_at_and_past_the_limit() {
    let one = gz(report_json("", &detail("")).as_bytes());
    let two = mail(&[&one, &one]);
    let with = |max_mail_memory| Limits {
        max_mail_memory,
        max_raw_json: 0,
        ..Limits::default()
    };
    let at = smallest(|m| parse_reports_with(&two, &with(m)).is_ok_and(|r| r.len() == 2));
    let reports = parse_reports_with(&two, &with(at - 1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 1, "the report that fits is kept");
    assert!(
        only(&reports[0], "report.mail-part-unreadable")
            .message
            .contains("part 4: parsed reports of this mail (estimated memory) is larger")
    );
}

#[test]
fn unknown_member_at_and_past_the_limit() {
    let json = report_json(r#","x-note":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#, &detail(""));
    let with = |max_unknown_member| Limits {
        max_unknown_member,
        ..Limits::default()
    };
    let kept = |m| {
        parse_reports_with(json.as_bytes(), &with(m))
            .is_ok_and(|r| r[0].report.policies[0].policy.extra.contains_key("x-note"))
    };
    let at = smallest(kept);
    assert!(at < MAX_UNKNOWN_MEMBER);
    let past = parse_reports_with(json.as_bytes(), &with(at - 1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !past[0].report.policies[0]
            .policy
            .extra
            .contains_key("x-note")
    );
    assert_eq!(
        only(&past[0], "report.unknown-member-dropped").path,
        "policies[0].policy.x-note"
    );
}

#[test]
fn unknown_members_of_a_report_at_and_past_the_total_limit() {
    let member = r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa""#;
    let json = report_json(&format!(r#","x-a":{member},"x-b":{member}"#), &detail(""));
    let with = |max_unknown_total| Limits {
        max_unknown_total,
        ..Limits::default()
    };
    let both = |m| {
        parse_reports_with(json.as_bytes(), &with(m))
            .is_ok_and(|r| r[0].report.policies[0].policy.extra.len() == 2)
    };
    let at = smallest(both);
    let past = parse_reports_with(json.as_bytes(), &with(at - 1)).unwrap_or_else(|e| panic!("{e}"));
    let extra = &past[0].report.policies[0].policy.extra;
    assert!(extra.contains_key("x-a") && !extra.contains_key("x-b"));
    assert_eq!(
        only(&past[0], "report.unknown-member-dropped").path,
        "policies[0].policy.x-b"
    );
}

#[test]
fn raw_json_at_and_past_the_limit() {
    let json = report_json("", &detail(""));
    for input in [json.clone().into_bytes(), gz(json.as_bytes())] {
        let at = Limits {
            max_raw_json: json.len(),
            ..Limits::default()
        };
        let r = &parse_reports_with(&input, &at).unwrap_or_else(|e| panic!("{e}"))[0];
        assert_eq!(
            (r.raw_json.as_slice(), r.raw_json_size),
            (json.as_bytes(), json.len() as u64)
        );
        assert!(!ids(&r.warnings).contains(&"report.raw-json-truncated"));
        let past = Limits {
            max_raw_json: json.len() - 1,
            ..Limits::default()
        };
        let r = &parse_reports_with(&input, &past).unwrap_or_else(|e| panic!("{e}"))[0];
        assert_eq!(r.raw_json, json.as_bytes()[..json.len() - 1]);
        assert_eq!(r.raw_json_size, json.len() as u64);
        assert!(
            only(r, "report.raw-json-truncated")
                .message
                .starts_with(&format!(
                    "the JSON text is {} bytes; only its first {}",
                    json.len(),
                    json.len() - 1
                ))
        );
    }
}
