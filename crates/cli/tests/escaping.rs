//! Terminal injection: foreign strings in text output (report fields, records, policies) are
//! escaped, so they cannot rewrite a line, clear the screen or recolour the verdict.

use assert_cmd::Command;

fn mtasts() -> Command {
    let mut c = Command::cargo_bin("mtasts").unwrap();
    c.env("NO_COLOR", "1");
    c
}

/// No byte a terminal acts on (other than the line ends of the output itself).
fn assert_inert(text: &str) {
    for (i, c) in text.char_indices() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "raw {c:?} at {i} in {text:?}"
        );
    }
}

/// A report with 303 failed sessions whose organisation name and MX host try to overwrite
/// the count line with "0 failed".
#[test]
fn forged_report_fields_cannot_make_the_text_say_0_failed() {
    let forged = "\r  policy sts example.com: 0 successful, 0 failed\u{1b}[K\n";
    let report = serde_json::json!({
        "organization-name": format!("Evil Corp{forged}"),
        "date-range": {"start-datetime": "2024-01-01T00:00:00Z", "end-datetime": "2024-01-01T23:59:59Z"},
        "contact-info": "\u{1b}]0;owned\u{7}",
        "report-id": "r1\u{1b}[2J",
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1"], "policy-domain": "example.com"},
            "summary": {"total-successful-session-count": 0, "total-failure-session-count": 303},
            "failure-details": [{
                "result-type": "certificate-expired",
                "receiving-mx-hostname": format!("mx.example.com{forged}"),
                "failed-session-count": 303
            }]
        }]
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.json");
    std::fs::write(&path, report.to_string()).unwrap();
    let out = mtasts()
        .args(["report", "parse", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_inert(&text);
    assert!(text.contains(": 0 successful, 303 failed"), "{text}");
    assert!(
        text.contains(
            "from Evil Corp\\r  policy sts example.com: 0 successful, 0 failed\\u{1b}[K\\n"
        ),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.ends_with(": 0 successful, 0 failed")),
        "{text}"
    );
    // JSON keeps the strings as they were sent (JSON quoting already makes them inert).
    let out = mtasts()
        .args([
            "report",
            "parse",
            "--format",
            "json",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["organization-name"]
            .as_str()
            .unwrap()
            .ends_with("0 failed\u{1b}[K\n")
    );
}

/// A policy pattern with a bidi override (which reorders the rest of the line on screen) and
/// a record with an escape sequence are quoted escaped by `policy lint` and `record lint`.
#[test]
fn lint_text_escapes_policy_lines_and_records() {
    let out = mtasts()
        .args(["policy", "lint", "-"])
        .write_stdin("version: STSv1\nmode: enforce\nmx: mx\u{202e}moc.elpmaxe\nmax_age: 86400\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_inert(&text);
    assert!(text.contains("mx\\u{202e}moc.elpmaxe"), "{text}");
    let out = mtasts()
        .args([
            "record",
            "lint",
            "--kind",
            "tlsrpt",
            "v=TLSRPTv1; rua=mailto:a@example.com\u{1b}[2J\r",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_inert(&text);
    assert!(text.contains("\\u{1b}"), "{text}");
}

/// `mtasts check` text: a `_mta-sts` record carrying `ESC [2J` and a forged verdict line
/// shows escaped in the finding that quotes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_text_escapes_records_it_quotes() {
    use mtasts_testnet::world::{DOMAIN, World};
    let mut w = World::new().await;
    w.zone("_mta-sts 300 IN TXT \"v=STSv1; id=1\u{1b}[2J\u{b}example.test: PASS\"");
    let args = vec![
        "check".to_owned(),
        DOMAIN.into(),
        "--nameserver".into(),
        w.dns.addr().to_string(),
        "--no-smtp".into(),
        "--no-dane".into(),
        "--timeout".into(),
        "2".into(),
        "--https-port".into(),
        w.https_port.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || mtasts().args(&args).output().unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_inert(&text);
    assert!(
        text.contains("\\u{1b}[2J\\u{b}example.test: PASS"),
        "{text}"
    );
}

/// `resolver query` text: a lookup key with an escape sequence and a CR is echoed escaped (the
/// key is not a domain, so nothing is looked up).
#[test]
fn resolver_query_text_escapes_the_key() {
    let out = mtasts()
        .args(["resolver", "query", "ex\u{1b}[2Jample.com\rPASS"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_inert(&text);
    assert!(
        text.starts_with("ex\\u{1b}[2Jample.com\\rPASS (table postfix)\n"),
        "{text}"
    );
    assert!(text.contains("Postfix gets: NOTFOUND"), "{text}");
}
