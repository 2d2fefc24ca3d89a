//! Hostile inputs: answered with a clear finding, within bounded memory and time, never a panic.

use crate::{find, ids};
use mtasts_core::policy::{MAX_POLICY_SIZE, parse_policy};
use mtasts_core::record::{MAX_RECORD_LEN, MAX_RRSET, parse_sts_rrset, parse_tlsrpt_rrset};

#[test]
fn ten_megabyte_policy_is_rejected_whole() {
    let big = "mx: a.contoso.net\n".repeat(10 * 1024 * 1024 / 18);
    let p = parse_policy(big.as_bytes());
    assert_eq!(ids(&p.diagnostics), ["policy.too-large"]);
    assert!(p.policy.is_none());
}

#[test]
fn hundred_thousand_mx_lines_are_rejected_by_size() {
    let body = format!(
        "version: STSv1\nmode: enforce\nmax_age: 86400\n{}",
        "mx: a.contoso.net\n".repeat(100_000)
    );
    assert!(body.len() > MAX_POLICY_SIZE);
    assert_eq!(
        ids(&parse_policy(body.as_bytes()).diagnostics),
        ["policy.too-large"]
    );
}

#[test]
fn the_most_mx_lines_that_fit_parse_with_capped_findings() {
    // ~8000 distinct patterns just under the size cap, each with a problem, so every line yields
    // a finding: the output is capped, the verdict kept.
    let mut body = String::from("version: STSv1\nmode: enforce\nmax_age: 86400\n");
    let mut i = 0;
    while body.len() < MAX_POLICY_SIZE - 16 {
        body.push_str(&format!("mx: m{i}.c.net.\n"));
        i += 1;
    }
    let p = parse_policy(body.as_bytes());
    assert!(p.diagnostics.len() <= mtasts_core::diag::MAX_DIAGNOSTICS + 1);
    find(&p.diagnostics, "input.too-many-findings");
    assert!(!p.is_valid());
    assert_eq!(
        p.policy.unwrap().mx.len(),
        i,
        "every pattern still applies once repaired"
    );
}

#[test]
fn nul_bytes_and_control_characters() {
    let p = parse_policy(b"version: STSv1\0\nmode: enforce\nmx: a.contoso.net\nmax_age: 86400\n");
    assert_eq!(find(&p.diagnostics, "policy.control-char").line, Some(1));
    assert!(p.policy.is_none());
    let p = parse_policy(&[0u8; 4096]);
    assert!(p.policy.is_none());
    assert!(!p.is_valid());
}

#[test]
fn invalid_utf8() {
    let p =
        parse_policy(b"version: STSv1\nmode: enforce\xff\xfe\nmx: a.contoso.net\nmax_age: 86400\n");
    let d = find(&p.diagnostics, "policy.encoding");
    assert_eq!((d.line, d.column), (Some(2), Some(14)));
    assert!(p.policy.is_none());
    let p = parse_sts_rrset(&[b"v=STSv1; id=\xff".as_slice()]);
    assert!(p.record.is_none());
}

#[test]
fn utf8_in_an_extension_value_is_grammatical() {
    let p = parse_policy(
        "version: STSv1\nmode: enforce\nmx: a.contoso.net\nmax_age: 86400\nnote: café\n".as_bytes(),
    );
    assert!(p.is_valid());
}

#[test]
fn oversized_and_overcrowded_rrsets() {
    let long = format!("v=STSv1; id=abc; x={}", "a".repeat(MAX_RECORD_LEN));
    let p = parse_sts_rrset(&[long]);
    find(&p.diagnostics, "sts.record.too-long");
    assert!(p.record.is_none());
    let many = vec!["unrelated"; MAX_RRSET + 10];
    let p = parse_tlsrpt_rrset(&many);
    find(&p.diagnostics, "tlsrpt.record.too-many");
    assert!(p.diagnostics.len() <= mtasts_core::diag::MAX_DIAGNOSTICS + 2);
}

#[test]
fn record_with_thousands_of_fields_stays_linear_and_capped() {
    let mut rec = String::from("v=STSv1; id=abc");
    for i in 0..6000 {
        rec.push_str(&format!("; f{i}=v"));
    }
    rec.push_str("; id=dup");
    let p = parse_sts_rrset(&[rec]);
    assert_eq!(p.record.unwrap().id, "abc");
    find(&p.diagnostics, "input.too-many-findings");
}

#[test]
fn bom_only_body_is_a_bom_and_an_empty_policy() {
    // Found by the policy fuzz target (fuzz/regressions/policy/bom-only): it used to panic.
    for body in [&b"\xEF\xBB\xBF"[..], b"\xEF\xBB\xBF\r\n"] {
        let p = parse_policy(body);
        assert_eq!(ids(&p.diagnostics), ["policy.bom", "policy.empty"]);
        assert!(p.policy.is_none());
    }
}

#[test]
fn fuzz_found_gzip_bytes_read_as_mail_are_a_clear_error() {
    // Found by the mime fuzz target (on an earlier sniffer): read as mail, these bytes reached a
    // debug_assert in mail-parser 0.11.9. The sniffer now requires a header line first, so they
    // are rejected before mail-parser; they must stay a clear error, never a panic.
    let bytes = std::fs::read(crate::data_dir("hostile/mime-invalid-part-id.bin")).unwrap();
    let err = mtasts_core::report::parse_report_mail(&bytes).unwrap_err();
    assert!(err.to_string().contains("not an RFC 5322 mail"), "{err}");
    // Sniffed, they are a corrupt gzip stream ("incomplete deflate stream").
    assert!(mtasts_core::report::parse_reports(&bytes).is_err());
}
