//! End-to-end tests of the `mtasts` binary: JSON shapes, exit codes, text output.

use assert_cmd::Command;
use serde_json::Value;
use std::io::Write;

fn mtasts() -> Command {
    let mut c = Command::cargo_bin("mtasts").unwrap();
    c.env("NO_COLOR", "1");
    c
}

fn data(rel: &str) -> String {
    format!("{}/../../tests/data/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

const GOOD: &str = "version: STSv1\nmode: enforce\nmx: mx1.contoso.net\nmx: *.mail.contoso.net\nmax_age: 1209600\n";

#[test]
fn policy_lint_json_shape_and_exit_0() {
    let out = mtasts()
        .args([
            "--format",
            "json",
            "policy",
            "lint",
            "-",
            "--mx",
            "a.mail.contoso.net",
            "--mx",
            "mx9.contoso.net",
        ])
        .write_stdin(GOOD)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an uncovered --mx host is a finding"
    );
    let v = json_of(&out);
    assert_eq!(keys(&v), ["valid", "policy", "findings", "mx"]);
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["policy"],
        serde_json::json!({"mode": "enforce", "max_age": 1209600, "mx": ["mx1.contoso.net", "*.mail.contoso.net"]})
    );
    assert_eq!(
        v["mx"],
        serde_json::json!([
            {"host": "a.mail.contoso.net", "matched": true, "pattern": "*.mail.contoso.net"},
            {"host": "mx9.contoso.net", "matched": false, "pattern": null},
        ])
    );
    let out = mtasts()
        .args(["--format", "json", "policy", "lint"])
        .write_stdin(GOOD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    assert_eq!(
        keys(&v),
        ["valid", "policy", "findings"],
        "no mx key without --mx"
    );
}

#[test]
fn policy_lint_invalid_exit_1_with_findings_shape() {
    let out = mtasts()
        .args([
            "--format",
            "json",
            "policy",
            "lint",
            &data("policies/AntonioFeijaoUK__www-cyberantonio-com.txt"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["policy"], Value::Null);
    let f = &v["findings"][0];
    assert_eq!(keys(f), ["id", "severity", "line", "message", "fix"]);
    assert_eq!(f["id"], "policy.mode.invalid");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["line"], 2);
}

#[test]
fn policy_lint_unreadable_input_exit_3() {
    let out = mtasts()
        .args(["policy", "lint", "/nonexistent/policy.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/policy.txt") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["policy", "frob"][..],
        &["record", "lint", "--kind", "dmarc", "x"],
        &["policy", "render", "--mode", "strict", "--max-age", "1"],
        &["--format", "yaml", "policy", "lint"],
    ] {
        let out = mtasts().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn policy_lint_reads_at_most_the_cap_from_stdin() {
    let big = vec![b'a'; 5 * 1024 * 1024];
    let out = mtasts()
        .args(["--format", "json", "policy", "lint"])
        .write_stdin(big)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["findings"][0]["id"], "policy.too-large");
}

#[test]
fn record_lint_non_utf8_record_gets_the_us_ascii_verdict_not_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    for bytes in [b"v=STSv1; id=\xff\xfe".as_slice(), b"\xc3(".as_slice()] {
        let out = mtasts()
            .args(["--format", "json", "record", "lint", "--kind", "sts"])
            .arg(std::ffi::OsStr::from_bytes(bytes))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "a verdict, not exit 2");
        let v = json_of(&out);
        assert_eq!(v["valid"], false);
        assert!(v["record"].is_null());
    }
    // Beside a valid record, a non-UTF-8 record that does not start with `v=STSv1;` is
    // discarded like any other: the RRset is valid.
    let out = mtasts()
        .args(["record", "lint", "--kind", "sts", "v=STSv1; id=abc"])
        .arg(std::ffi::OsStr::from_bytes(b"x\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = mtasts()
        .args(["--format", "json", "record", "lint", "--kind", "sts"])
        .arg(std::ffi::OsStr::from_bytes(b"v=STSv1; id=\xff"))
        .output()
        .unwrap();
    assert_eq!(json_of(&out)["findings"][0]["id"], "sts.record.syntax");
}

#[test]
fn record_lint_rrset_with_spf_and_one_sts_record_is_valid() {
    let out = mtasts()
        .args([
            "record",
            "lint",
            "--kind",
            "sts",
            "v=spf1 -all",
            "V=STSv1; id=x",
            "v=STSv10; id=y",
            "v=STSv1; id=abc",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn record_lint_sts_and_tlsrpt_json() {
    let out = mtasts()
        .args([
            "--format",
            "json",
            "record",
            "lint",
            "--kind",
            "sts",
            "v=STSv1; id=20240101T000000",
            "google-site-verification=x",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "an unrelated record is only a warning"
    );
    let v = json_of(&out);
    assert_eq!(keys(&v), ["valid", "record", "findings"]);
    assert_eq!(v["record"], serde_json::json!({"id": "20240101T000000"}));
    assert_eq!(v["findings"][0]["id"], "sts.record.unrelated");

    let out = mtasts()
        .args([
            "--format",
            "json",
            "record",
            "lint",
            "--kind",
            "tlsrpt",
            "v=TLSRPTv1; rua=mailto:tlsrpt@contoso.net",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json_of(&out)["record"],
        serde_json::json!({"rua": ["mailto:tlsrpt@contoso.net"]})
    );

    let out = mtasts()
        .args([
            "--format",
            "json",
            "record",
            "lint",
            "--kind",
            "sts",
            "v=STSv1; id=a-b",
            "v=STSv1; id=c",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json_of(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["record"], Value::Null);
}

#[test]
fn policy_render_text_is_the_policy_byte_for_byte() {
    let out = mtasts()
        .args([
            "policy",
            "render",
            "--mode",
            "enforce",
            "--max-age",
            "604800",
            "--mx",
            "mx2.contoso.net",
            "--mx",
            "mx1.contoso.net",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, b"version: STSv1\r\nmode: enforce\r\nmx: mx1.contoso.net\r\nmx: mx2.contoso.net\r\nmax_age: 604800\r\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("v=STSv1; id="), "{err}");
}

#[test]
fn policy_render_json_and_errors() {
    let out = mtasts()
        .args([
            "--format",
            "json",
            "policy",
            "render",
            "--mode",
            "testing",
            "--max-age",
            "86400",
            "--mx",
            "*.contoso.net",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json_of(&out);
    assert_eq!(keys(&v), ["text", "id", "record", "policy", "findings"]);
    let id = v["id"].as_str().unwrap();
    assert_eq!(v["record"], format!("v=STSv1; id={id}"));
    // The rendered text lints clean.
    let lint = mtasts()
        .args(["--format", "json", "policy", "lint"])
        .write_stdin(v["text"].as_str().unwrap())
        .output()
        .unwrap();
    assert_eq!(json_of(&lint)["valid"], true);

    let out = mtasts()
        .args([
            "--format",
            "json",
            "policy",
            "render",
            "--mode",
            "enforce",
            "--max-age",
            "86400",
            "--mx",
            "192.0.2.1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_of(&out)["findings"][0]["id"], "policy.mx.ip-literal");
}

#[test]
fn text_output_snapshots() {
    let mut broken = tempfile::NamedTempFile::new().unwrap();
    broken.write_all(b"version: STSv1\nmode: enforce\nmx: mx1.contoso.net.\nmx: 192.0.2.1\nmax_age: 86400\n\n").unwrap();
    for (name, args) in [
        (
            "policy_lint_clean",
            vec![
                "policy".to_owned(),
                "lint".into(),
                data("policies/gip-inclusion__mta-sts.txt"),
                "--mx".into(),
                "aspmx.l.google.com".into(),
            ],
        ),
        (
            "policy_lint_broken",
            vec![
                "policy".to_owned(),
                "lint".into(),
                broken.path().to_string_lossy().into_owned(),
            ],
        ),
        (
            "record_lint_sts",
            vec![
                "record".to_owned(),
                "lint".into(),
                "--kind".into(),
                "sts".into(),
                "v=STSv1; id=2024-01-01".into(),
            ],
        ),
    ] {
        let out = mtasts().args(&args).output().unwrap();
        let text = String::from_utf8(out.stdout)
            .unwrap()
            .replace(&broken.path().to_string_lossy().into_owned(), "<file>")
            .replace(&data(""), "<data>/");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn report_parse_json_shape_bad_files_named_others_still_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A gzip'd report written to a file with a misleading name: sniffed from the bytes.
    let json = std::fs::read(data("tlsrpt/mail-auth/rpt02.json")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&json).unwrap();
    let gz_path = dir.path().join("report.txt");
    std::fs::write(&gz_path, enc.finish().unwrap()).unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"hello\": 1}").unwrap();
    let out = mtasts()
        .args([
            "--format",
            "json",
            "report",
            "parse",
            &data("tlsrpt/parsedmarc/rfc8460.json"),
            bad.to_str().unwrap(),
            gz_path.to_str().unwrap(),
            &data("tlsrpt/mail-auth/rpt01.eml"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.json") && err.contains("no valid TLS-RPT report"),
        "{err}"
    );
    let v = json_of(&out);
    let reports = v.as_array().unwrap();
    assert_eq!(reports.len(), 3);
    assert_eq!(
        keys(&reports[0]),
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
    assert!(
        reports[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("rfc8460.json")
    );
    assert_eq!(
        reports[0]["policies"][0]["policy"]["mx-host"],
        serde_json::json!(["*.mail.company-y.example"])
    );
    assert_eq!(reports[0]["warnings"][0]["id"], "report.mx-host-string");
    assert!(
        reports[1]["source"]
            .as_str()
            .unwrap()
            .ends_with("report.txt")
    );
    assert!(
        reports[2]["source"]
            .as_str()
            .unwrap()
            .ends_with("rpt01.eml")
    );
    assert!(
        reports[0]["date-range"]["start-datetime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

#[test]
fn report_parse_streams_json_output_identical_to_one_pretty_array() {
    // Reports are printed file by file (memory stays that of one file); the output is still
    // exactly the pretty-printed array, and `[]` when nothing was read.
    for files in [
        vec![],
        vec![data("tlsrpt/mail-auth/rpt02.json")],
        vec![
            data("tlsrpt/parsedmarc/rfc8460.json"),
            data("tlsrpt/mail-auth/rpt01.eml"),
            data("tlsrpt/mta-sts-exporter/google.json"),
        ],
    ] {
        let mut args = vec![
            "--format".to_owned(),
            "json".into(),
            "report".into(),
            "parse".into(),
        ];
        if files.is_empty() {
            args.push("/nonexistent.json".into());
        }
        args.extend(files.iter().cloned());
        let out = mtasts().args(&args).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(files.len()));
        assert_eq!(text, serde_json::to_string_pretty(&v).unwrap() + "\n");
    }
}

#[test]
fn report_parse_all_good_exit_0_and_unreadable_exit_3() {
    let out = mtasts()
        .args([
            "report",
            "parse",
            &data("tlsrpt/mta-sts-exporter/google.json"),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy sts"));
    let out = mtasts()
        .args([
            "report",
            "parse",
            &data("tlsrpt/mta-sts-exporter/google.json"),
            "/nonexistent.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("policy sts"),
        "the readable file is still reported"
    );
}
