//! Report mails of every shape: content is sniffed, the Content-Type is never trusted.

use crate::report::support::{base64, detail, gz, ids, mail_with, only, report_json};
use mtasts_core::report::{ReportError, parse_report_mail, parse_reports};

fn one(bytes: &[u8]) -> String {
    let reports = parse_reports(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 1);
    reports[0].report.report_id.clone()
}

#[test]
fn octet_stream_named_json_gz() {
    let mail = mail_with(
        "application/octet-stream",
        "x!y!1!2.json.gz",
        &gz(report_json("", &detail("")).as_bytes()),
    );
    assert_eq!(one(&mail), "r1");
    assert_eq!(parse_report_mail(&mail).map(|r| r.len()), Ok(1));
}

#[test]
fn plain_json_labelled_gzip() {
    let mail = mail_with(
        "application/tlsrpt+gzip",
        "r.json.gz",
        report_json("", &detail("")).as_bytes(),
    );
    assert_eq!(one(&mail), "r1");
}

#[test]
fn gzip_labelled_json_and_odd_types() {
    for ct in [
        "application/tlsrpt+json",
        "application/tlsrpt",
        "application/gzip",
        "application/json",
        "text/plain",
    ] {
        let mail = mail_with(ct, "report", &gz(report_json("", &detail("")).as_bytes()));
        assert_eq!(one(&mail), "r1", "{ct}");
    }
}

#[test]
fn inline_json_part_without_transfer_encoding() {
    let mail = format!(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary=B\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B\r\nContent-Type: application/tlsrpt+json\r\n\
         Content-Disposition: inline\r\n\r\n{}\r\n--B--\r\n",
        report_json("", &detail(""))
    );
    assert_eq!(one(mail.as_bytes()), "r1");
}

#[test]
fn single_part_mail_whose_body_is_the_report() {
    let mail = format!(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64(&gz(report_json("", &detail("")).as_bytes()))
    );
    assert_eq!(one(mail.as_bytes()), "r1");
}

#[test]
fn nested_message_rfc822() {
    assert_eq!(one(&crate::report::limits::nested(1)), "r1");
    assert_eq!(one(&crate::report::limits::nested(3)), "r1");
}

#[test]
fn nested_message_base64_encoded() {
    // A forwarded report mail attached as a base64 message/rfc822 part, four levels deep:
    // deeper than mail-parser descends into encoded messages by itself.
    let mut inner = mail_with(
        "application/tlsrpt+gzip",
        "r.json.gz",
        &gz(report_json("", &detail("")).as_bytes()),
    );
    for level in 0..4 {
        inner = format!(
            "From: fwd@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=N{level}\r\n\r\n\
             --N{level}\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--N{level}--\r\n",
            base64(&inner)
        )
        .into_bytes();
    }
    assert_eq!(one(&inner), "r1");
}

#[test]
fn two_reports_in_one_mail() {
    let a = report_json("", &detail(""));
    let b = a.replace(r#""report-id":"r1""#, r#""report-id":"r2""#);
    let mail = format!(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
         --B\r\nContent-Type: application/tlsrpt+json\r\n\r\n{a}\r\n\
         --B\r\nContent-Type: application/json\r\n\r\n{{\"not\":\"a report\"}}\r\n\
         --B\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        base64(&gz(b.as_bytes()))
    );
    let ids: Vec<String> = parse_reports(mail.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| r.report.report_id)
        .collect();
    assert_eq!(ids, ["r1", "r2"]);
}

#[test]
fn a_good_report_beside_a_corrupt_one_is_kept_and_says_so() {
    let good = report_json("", &detail(""));
    let mut corrupt = gz(good.as_bytes());
    let n = corrupt.len();
    corrupt.truncate(n / 2);
    let mail = format!(
        "From: a@o.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
         --B\r\nContent-Type: application/tlsrpt+json\r\n\r\n{good}\r\n\
         --B\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        base64(&corrupt)
    );
    let reports = parse_reports(mail.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reports.len(), 1);
    let w = only(&reports[0], "report.mail-part-unreadable");
    assert!(w.message.starts_with("1 other part(s)"), "{}", w.message);
    assert!(!reports[0].is_clean());
    // A mail whose every candidate is readable carries no such warning.
    let clean = mail_with("application/tlsrpt+gzip", "r.json.gz", &gz(good.as_bytes()));
    let reports = parse_reports(&clean).unwrap_or_else(|e| panic!("{e}"));
    assert!(!ids(&reports[0].warnings).contains(&"report.mail-part-unreadable"));
}

#[test]
fn mail_without_a_report() {
    let mail = b"From: a@o.example\r\nSubject: hi\r\n\r\nJust text.\r\n";
    let err = parse_reports(mail).err();
    assert_eq!(
        err,
        Some(ReportError::NoReportInMail {
            candidates: 0,
            first_error: None
        })
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("no part holding a TLS-RPT report"), "{msg}");
}

#[test]
fn mail_whose_only_candidate_is_not_a_report() {
    let mail = mail_with("application/json", "data.json", br#"{"hello":"world"}"#);
    let err = parse_reports(&mail).err();
    match &err {
        Some(ReportError::NoReportInMail {
            candidates: 1,
            first_error: Some(e),
        }) => {
            assert!(matches!(**e, ReportError::NotAReport { .. }), "{e:?}");
        }
        other => panic!("{other:?}"),
    }
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("1 part(s) looked like gzip or JSON") && msg.contains("not a TLS-RPT report"),
        "{msg}"
    );
}

#[test]
fn mail_entry_point_rejects_non_mail() {
    assert_eq!(
        parse_report_mail(b"").err(),
        Some(ReportError::Unrecognised)
    );
    assert!(parse_report_mail(report_json("", &detail("")).as_bytes()).is_err());
}
