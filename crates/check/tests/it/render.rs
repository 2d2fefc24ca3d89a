//! Text rendering of hostile strings: an MX banner, host name or record that carries escape
//! sequences is shown escaped, never acted on.

use mtasts_check::model::DomainReport;
use mtasts_check::render;

/// A report as a hostile MX would leave it: its banner (the observation of `mx.smtp.failed`)
/// clears the screen and prints a passing verdict line, and its DNS name carries a CR.
fn hostile() -> DomainReport {
    let banner = "554 \u{1b}[2J\u{1b}[H\u{1b}[32mexample.test: PASS (0 errors, 0 warnings)\u{1b}[0m\r\n554 bye";
    serde_json::from_value(serde_json::json!({
        "schema_version": 1,
        "domain": "example.test",
        "sts_record": {"valid": false, "id": null, "records": []},
        "policy": {
            "fetch": {"url": "https://mta-sts.example.test/.well-known/mta-sts.txt", "status": null,
                      "content_type": null, "bytes": null, "error": "no address", "certificate": null,
                      "tls_version": null},
            "valid": false, "failure": "sts-policy-fetch-error", "mode": null, "max_age": null, "mx": null
        },
        "mx": [{
            "host": "mx.example.test\r\u{1b}[2K", "preference": 10, "pattern": null,
            "addresses": [{"ip": "127.0.0.1", "starttls": null, "tls_version": null, "certificate": null,
                           "result": "validation-failure", "error": "refused"}],
            "result": "validation-failure", "must_refuse": false
        }],
        "tlsrpt": {"valid": false, "rua": []},
        "dane": null,
        "findings": [{
            "id": "mx.smtp.failed", "severity": "error",
            "message": "the SMTP dialogue with MX mx.example.test (127.0.0.1) failed",
            "observed": banner, "fix": "check the MX host's SMTP service"
        }],
        "verdict": "fail"
    }))
    .unwrap()
}

#[test]
fn an_mx_banner_with_escape_sequences_prints_escaped() {
    let mut out = Vec::new();
    render::text::write(&mut out, &hostile(), false).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        !text.chars().any(|c| c != '\n' && c.is_control()),
        "raw control characters in {text:?}"
    );
    assert!(
        text.starts_with("example.test: FAIL (1 error, 0 warnings)\n"),
        "{text}"
    );
    assert!(
        text.contains("observed: 554 \\u{1b}[2J\\u{1b}[H\\u{1b}[32mexample.test: PASS (0 errors, 0 warnings)\\u{1b}[0m\\r\n                  554 bye"),
        "{text}"
    );
    assert!(
        text.contains("MX  10 mx.example.test\\r\\u{1b}[2K  no policy applies"),
        "{text}"
    );
    // Colours are ours only: with colour on, the only escape sequences are the verdict's and
    // the severity's.
    let mut out = Vec::new();
    render::text::write(&mut out, &hostile(), true).unwrap();
    let coloured = String::from_utf8(out).unwrap();
    assert_eq!(coloured.matches('\u{1b}').count(), 4, "{coloured}");
}

#[test]
fn csv_quotes_what_it_must_and_keeps_the_rest() {
    let row = render::csv::row(&hostile());
    assert_eq!(row.split(',').next(), Some("example.test"));
    assert!(row.contains("\"mx.example.test\r\u{1b}[2K\""), "{row}");
    assert!(row.contains(",sts-policy-fetch-error,"), "{row}");
    assert_eq!(
        render::csv::HEADER.split(',').count(),
        14,
        "one column per field of the row"
    );
}
