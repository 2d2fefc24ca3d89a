//! The `_mta-sts` and `_smtp._tls` TXT records: selection (D13, T12) and strict parsing
//! (D11, D12, docs/requirements.md §2.1, §2.3).

use crate::{find, ids};
use mtasts_core::Severity;
use mtasts_core::record::{join_txt_strings, parse_sts_rrset, parse_tlsrpt_rrset};

fn sts(rrset: &[&str]) -> mtasts_core::record::ParsedRecord<mtasts_core::record::StsRecord> {
    parse_sts_rrset(rrset)
}

fn sts_id(rrset: &[&str]) -> Option<String> {
    sts(rrset).record.map(|r| r.id)
}

#[test]
fn s5_valid_records_in_their_grammatical_shapes() {
    for (rec, id) in [
        ("v=STSv1; id=20240101T000000", "20240101T000000"),
        ("v=STSv1;id=abc", "abc"),
        ("v=STSv1; id=abc;", "abc"),
        ("v=STSv1 ;id=abc", "abc"), // erratum 6285: grammatical; see d13 for the warning
        ("v=STSv1;\tid=abc\t; ", "abc"),
        ("v=STSv1; id=abc; ext_1=x.y-z", "abc"),
    ] {
        assert_eq!(sts_id(&[rec]).as_deref(), Some(id), "{rec}");
    }
}

#[test]
fn d11_id_with_non_alphanumerics_or_too_long_means_no_policy() {
    for bad in ["2016-08-31", "a.b", "a_b", "ü", &"a".repeat(33)] {
        let p = sts(&[&format!("v=STSv1; id={bad}")]);
        assert!(p.record.is_none(), "{bad}");
        if bad.is_ascii() {
            let d = find(&p.diagnostics, "sts.id.invalid");
            assert_eq!(d.severity, Severity::Error);
            assert!(
                d.message
                    .contains("ignore the record, and with it the whole MTA-STS policy")
            );
        } else {
            find(&p.diagnostics, "sts.record.syntax");
        }
    }
    assert_eq!(
        find(
            &sts(&["v=STSv1; id=2016-08-31"]).diagnostics,
            "sts.id.invalid"
        )
        .fix,
        "publish `v=STSv1; id=20160831`"
    );
    assert_eq!(
        sts_id(&[&format!("v=STSv1; id={}", "a".repeat(32))])
            .unwrap()
            .len(),
        32
    );
}

#[test]
fn d12_records_not_starting_with_v_stsv1_or_in_the_wrong_case_mean_no_policy() {
    for (rec, id) in [
        ("v=stsv1; id=abc", "sts.record.version-case"),
        ("V=STSv1; id=abc", "sts.record.version-case"),
        (" v=STSv1; id=abc", "sts.record.leading-space"),
        ("id=abc; v=STSv1", "sts.record.unrelated"),
        ("v=STSv10; id=abc", "sts.record.bad-start"),
        ("v=STSv1 id=abc", "sts.record.bad-start"),
        ("v=STSv1", "sts.record.bad-start"),
        ("v=spf1 include:_spf.google.com ~all", "sts.record.spf"),
        (
            "v=TLSRPTv1; rua=mailto:a@b.example",
            "sts.record.wrong-kind",
        ),
    ] {
        let p = sts(&[rec]);
        assert!(p.record.is_none(), "{rec}");
        // The discarded record is explained, but the verdict comes from the missing record.
        assert_ne!(find(&p.diagnostics, id).severity, Severity::Error, "{rec}");
        assert_eq!(
            find(&p.diagnostics, "sts.record.missing").severity,
            Severity::Error,
            "{rec}"
        );
    }
}

#[test]
fn d13_rrset_selection_filters_by_prefix_and_needs_exactly_one() {
    // Unrelated records are dropped (with a warning); the one STS record is used.
    let p = sts(&["google-site-verification=xyz", "v=STSv1; id=abc"]);
    assert_eq!(p.record.unwrap().id, "abc");
    assert_eq!(
        find(&p.diagnostics, "sts.record.unrelated").severity,
        Severity::Warning
    );
    // Two records: no policy, even if they agree.
    let p = sts(&["v=STSv1; id=abc", "v=STSv1; id=abc"]);
    assert!(p.record.is_none());
    assert!(
        find(&p.diagnostics, "sts.record.multiple")
            .message
            .contains("records 1, 2")
    );
    // None at all.
    let p = parse_sts_rrset::<&str>(&[]);
    assert_eq!(ids(&p.diagnostics), ["sts.record.missing"]);
    // Erratum 6285: `v=STSv1 ;` still selected, with a warning that strict filters drop it.
    let p = sts(&["v=STSv1 ; id=abc"]);
    assert_eq!(p.record.unwrap().id, "abc");
    assert_eq!(
        find(&p.diagnostics, "sts.record.space-before-delimiter").severity,
        Severity::Warning
    );
}

#[test]
fn d01_s18_repeated_txt_field_first_wins_with_a_warning() {
    let p = sts(&["v=STSv1; id=first; id=second"]);
    assert!(p.is_valid());
    assert_eq!(
        find(&p.diagnostics, "sts.field.duplicate").severity,
        Severity::Warning
    );
    assert_eq!(p.record.unwrap().id, "first");
}

#[test]
fn s17_unknown_txt_fields_are_ignored_with_a_warning() {
    let p = sts(&["v=STSv1; id=abc; foo=bar"]);
    assert_eq!(p.record.unwrap().id, "abc");
    find(&p.diagnostics, "sts.field.unknown");
    let p = sts(&["v=STSv1; ID=abc"]);
    assert!(p.record.is_none(), "`ID` is not `id`");
    assert!(
        find(&p.diagnostics, "sts.field.unknown")
            .message
            .contains("case-sensitive")
    );
    find(&p.diagnostics, "sts.id.missing");
}

#[test]
fn txt_grammar_violations_mean_no_policy() {
    for rec in [
        "v=STSv1; id=abc;;",    // two trailing delimiters
        "v=STSv1;; id=abc",     // empty field
        "v=STSv1; id = abc",    // spaces around =
        "v=STSv1; id=abc ",     // trailing white space without ;
        "v=STSv1; id=",         // empty value
        "v=STSv1; id=abc=def",  // = in value
        "v=STSv1; id=abc, x",   // stray text
        "v=STSv1; =abc",        // no name
        "v=STSv1;",             // no field, so no id
        "v=STSv1; id=abc\u{1}", // control character
    ] {
        let p = sts(&[rec]);
        assert!(p.record.is_none(), "{rec:?}");
        assert!(!p.is_valid(), "{rec:?}");
    }
}

#[test]
fn s3_non_ascii_txt_record_means_no_policy() {
    let p = parse_sts_rrset(&["v=STSv1; id=abc; x=\u{e9}".as_bytes()]);
    assert!(p.record.is_none());
    assert!(
        find(&p.diagnostics, "sts.record.syntax")
            .message
            .contains("non-ASCII")
    );
    let p = parse_sts_rrset(&[b"v=STSv1; id=abc; x=\xff".as_slice()]);
    assert!(p.record.is_none());
}

#[test]
fn s9_t13_multi_string_records_join_with_nothing_between() {
    let joined = join_txt_strings(&[b"v=STSv1; id=20".as_slice(), b"240101".as_slice()]);
    assert_eq!(parse_sts_rrset(&[joined]).record.unwrap().id, "20240101");
}

#[test]
fn diagnostics_name_the_record_position() {
    let p = sts(&["v=spf1 -all", "v=STSv1; id=a-b"]);
    assert_eq!(find(&p.diagnostics, "sts.record.spf").line, Some(1));
    let d = find(&p.diagnostics, "sts.id.invalid");
    assert_eq!((d.line, d.column), (Some(2), Some(13)));
}

// ---- TLS-RPT ----

fn rpt(rrset: &[&str]) -> mtasts_core::record::ParsedRecord<mtasts_core::record::TlsRptRecord> {
    parse_tlsrpt_rrset(rrset)
}

#[test]
fn t2_t3_valid_tlsrpt_records() {
    let p = rpt(&["v=TLSRPTv1; rua=mailto:tlsrpt@contoso.net"]);
    assert!(
        p.is_valid() && p.diagnostics.is_empty(),
        "{:?}",
        ids(&p.diagnostics)
    );
    assert_eq!(p.record.unwrap().rua, ["mailto:tlsrpt@contoso.net"]);
    // `=` is allowed inside a URI (a query), though not in other field values.
    let p = rpt(&[
        "v=TLSRPTv1; rua=mailto:tlsrpt@contoso.net?subject=tlsrpt,https://r.contoso.net/in?k=v",
    ]);
    assert_eq!(
        p.record.unwrap().rua,
        [
            "mailto:tlsrpt@contoso.net?subject=tlsrpt",
            "https://r.contoso.net/in?k=v"
        ]
    );
    assert!(
        rpt(&["v=TLSRPTv1; rua=mailto:a@contoso.net; x=a=b"])
            .record
            .is_none()
    );
    let p = rpt(&["v=TLSRPTv1;rua=https://reports.contoso.net/v1/tlsrpt"]);
    assert_eq!(
        p.record.unwrap().rua,
        ["https://reports.contoso.net/v1/tlsrpt"]
    );
    // Several URIs with white space around the comma.
    let p = rpt(&["v=TLSRPTv1; rua=mailto:a@contoso.net , https://r.contoso.net/x"]);
    assert!(p.is_valid());
    assert_eq!(p.record.unwrap().rua.len(), 2);
    assert_eq!(
        find(&p.diagnostics, "tlsrpt.rua.multiple").severity,
        Severity::Warning
    );
}

#[test]
fn t12_tlsrpt_rrset_selection() {
    let p = rpt(&[
        "v=TLSRPTv1; rua=mailto:a@contoso.net",
        "v=TLSRPTv1; rua=mailto:b@contoso.net",
    ]);
    assert!(p.record.is_none());
    find(&p.diagnostics, "tlsrpt.record.multiple");
    let p = rpt(&["v=spf1 -all"]);
    find(&p.diagnostics, "tlsrpt.record.spf");
    find(&p.diagnostics, "tlsrpt.record.missing");
    let p = rpt(&["v=tlsrptv1; rua=mailto:a@contoso.net"]);
    find(&p.diagnostics, "tlsrpt.record.version-case");
}

#[test]
fn t3_rua_problems() {
    for (rec, id, usable) in [
        (
            "v=TLSRPTv1; rua=tlsrpt@contoso.net",
            "tlsrpt.rua.no-scheme",
            false,
        ),
        (
            "v=TLSRPTv1; rua=mailto:tlsrpt@contoso.net!10m",
            "tlsrpt.rua.bang",
            false,
        ),
        (
            "v=TLSRPTv1; rua=http://r.contoso.net/x",
            "tlsrpt.rua.scheme",
            false,
        ),
        (
            "v=TLSRPTv1; rua=mailto:nobody",
            "tlsrpt.rua.bad-mailto",
            false,
        ),
        ("v=TLSRPTv1; rua=https://", "tlsrpt.rua.bad-https", false),
        (
            "v=TLSRPTv1; rua=http://r.contoso.net/x,mailto:a@contoso.net",
            "tlsrpt.rua.scheme",
            true,
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@contoso.net,mailto:a@contoso.net",
            "tlsrpt.rua.duplicate",
            true,
        ),
    ] {
        let p = rpt(&[rec]);
        find(&p.diagnostics, id);
        assert_eq!(p.record.is_some(), usable, "{rec}");
        if !usable {
            assert!(!p.is_valid(), "{rec}");
        }
    }
    let p = rpt(&["v=TLSRPTv1; rua=tlsrpt@contoso.net"]);
    assert_eq!(
        find(&p.diagnostics, "tlsrpt.rua.no-scheme").fix,
        "write `rua=mailto:tlsrpt@contoso.net`"
    );
    let p = rpt(&["v=TLSRPTv1; rua=mailto:a@contoso.net!10m"]);
    assert!(
        find(&p.diagnostics, "tlsrpt.rua.bang")
            .message
            .contains("DMARC-style")
    );
}

#[test]
fn t11_t15_tlsrpt_grammar() {
    // No white space right after rua=.
    assert!(
        rpt(&["v=TLSRPTv1; rua= mailto:a@contoso.net"])
            .record
            .is_none()
    );
    // rua is required.
    let p = rpt(&["v=TLSRPTv1; foo=bar"]);
    find(&p.diagnostics, "tlsrpt.rua.missing");
    find(&p.diagnostics, "tlsrpt.field.unknown");
    // Unknown fields are ignored.
    let p = rpt(&["v=TLSRPTv1; rua=mailto:a@contoso.net; ext=1"]);
    assert!(p.is_valid());
    // A second rua= field: first one wins (D1).
    let p = rpt(&["v=TLSRPTv1; rua=mailto:a@contoso.net; rua=mailto:b@contoso.net"]);
    assert_eq!(p.record.unwrap().rua, ["mailto:a@contoso.net"]);
    find(&p.diagnostics, "tlsrpt.field.duplicate");
}

#[test]
fn extension_field_names_are_at_most_32_characters() {
    // EXTNAME: a letter or digit, then up to 31 letters, digits, `_`, `-` or `.` (§2.1).
    let ok = format!("v=STSv1; id=abc; {}=x", "a".repeat(32));
    assert_eq!(sts_id(&[&ok]).as_deref(), Some("abc"));
    let too_long = format!("v=STSv1; id=abc; {}=x", "a".repeat(33));
    let p = sts(&[&too_long]);
    assert!(p.record.is_none());
    assert!(
        find(&p.diagnostics, "sts.record.syntax")
            .message
            .contains("not a valid field name")
    );
}

// ---- class 1: records senders discard never make a valid RRset invalid ----

/// Every shape of record a sender drops before counting (RFC 8461 §3.1, RFC 8460 §3).
const DISCARDED_BESIDE_STS: &[(&str, &str)] = &[
    ("v=spf1 include:_spf.example.net ~all", "sts.record.spf"),
    ("V=STSv1; id=other", "sts.record.version-case"),
    ("v=stsv1; id=other", "sts.record.version-case"),
    ("v=STSv10; id=other", "sts.record.bad-start"),
    ("v=STSv1 id=other", "sts.record.bad-start"),
    ("v=STSv1", "sts.record.bad-start"),
    (" v=STSv1; id=other", "sts.record.leading-space"),
    ("\tv=STSv1; id=other", "sts.record.leading-space"),
    (
        "v=TLSRPTv1; rua=mailto:a@example.net",
        "sts.record.wrong-kind",
    ),
    ("google-site-verification=abc", "sts.record.unrelated"),
    ("", "sts.record.unrelated"),
];

#[test]
fn rrset_with_one_sts_record_and_discarded_records_is_valid() {
    for (other, id) in DISCARDED_BESIDE_STS {
        let other = (*other).to_owned();
        for rrset in [
            [other.as_str(), "v=STSv1; id=abc"],
            ["v=STSv1; id=abc", other.as_str()],
        ] {
            let p = sts(&rrset);
            assert!(p.is_valid(), "{rrset:?}: {:?}", ids(&p.diagnostics));
            assert_eq!(p.record.as_ref().map(|r| r.id.as_str()), Some("abc"));
            let d = find(&p.diagnostics, id);
            assert!(d.severity <= Severity::Warning, "{rrset:?}");
        }
    }
}

#[test]
fn rrset_with_one_tlsrpt_record_and_discarded_records_is_valid() {
    for (other, id) in [
        ("v=spf1 -all", "tlsrpt.record.spf"),
        (
            "V=TLSRPTv1; rua=mailto:b@example.net",
            "tlsrpt.record.version-case",
        ),
        (
            "v=TLSRPTv10; rua=mailto:b@example.net",
            "tlsrpt.record.bad-start",
        ),
        (
            " v=TLSRPTv1; rua=mailto:b@example.net",
            "tlsrpt.record.leading-space",
        ),
        ("v=STSv1; id=abc", "tlsrpt.record.wrong-kind"),
        ("hello", "tlsrpt.record.unrelated"),
    ] {
        let p = rpt(&[other, "v=TLSRPTv1; rua=mailto:a@example.net"]);
        assert!(p.is_valid(), "{other}: {:?}", ids(&p.diagnostics));
        assert_eq!(p.record.unwrap().rua, ["mailto:a@example.net"]);
        assert!(find(&p.diagnostics, id).severity <= Severity::Warning);
    }
}

#[test]
fn rrset_with_only_discarded_records_is_invalid_by_the_missing_record_alone() {
    let p = sts(&["v=spf1 -all", "V=STSv1; id=abc"]);
    assert!(!p.is_valid());
    let errors: Vec<&str> = p
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.id)
        .collect();
    assert_eq!(errors, ["sts.record.missing"]);
}

// ---- class 8: big RRsets ----

#[test]
fn big_rrset_past_256_records_still_yields_the_sts_record() {
    let mut rrset = vec!["v=spf1 -all"; 300];
    rrset.push("v=STSv1; id=last");
    let p = sts(&rrset);
    assert_eq!(p.record.as_ref().unwrap().id, "last");
    assert!(p.is_valid(), "{:?}", ids(&p.diagnostics));
    assert_eq!(
        find(&p.diagnostics, "sts.record.too-many").severity,
        Severity::Warning
    );
}

#[test]
fn big_rrset_of_similar_discarded_records_gives_one_finding_per_reason() {
    let mut rrset = vec!["v=spf1 -all"; 500];
    rrset.extend(vec!["junk"; 500]);
    rrset.push("v=STSv1; id=abc");
    let p = sts(&rrset);
    assert_eq!(p.record.unwrap().id, "abc");
    let spf: Vec<_> = p
        .diagnostics
        .iter()
        .filter(|d| d.id == "sts.record.spf")
        .collect();
    assert_eq!(spf.len(), 1);
    assert!(spf[0].message.contains("499 more"), "{}", spf[0].message);
    assert_eq!(
        p.diagnostics
            .iter()
            .filter(|d| d.id == "sts.record.unrelated")
            .count(),
        1
    );
    assert!(p.diagnostics.len() <= 4, "{:?}", ids(&p.diagnostics));
}

#[test]
fn big_rrset_with_many_sts_records_lists_a_few_of_them() {
    let rrset = vec!["v=STSv1; id=abc"; 400];
    let p = sts(&rrset);
    assert!(p.record.is_none());
    let m = find(&p.diagnostics, "sts.record.multiple");
    assert!(m.message.starts_with("400 records"), "{}", m.message);
    assert!(m.message.len() < 200, "{}", m.message);
}
