//! The policy parser: sender view and checker findings, row by row of DECISIONS D1-D10.

use crate::{GOOD, find, ids};
use mtasts_core::Severity;
use mtasts_core::policy::{MAX_AGE_LIMIT, Mode, parse_policy};

fn lint(s: &str) -> mtasts_core::policy::ParsedPolicy {
    parse_policy(s.as_bytes())
}

#[test]
fn good_policy_is_valid_with_no_findings() {
    let p = lint(GOOD);
    assert!(p.is_valid());
    assert!(p.diagnostics.is_empty(), "{:#?}", p.diagnostics);
    let pol = p.policy.unwrap();
    assert_eq!(pol.mode, Mode::Enforce);
    assert_eq!(pol.max_age, 1_209_600);
    let mx: Vec<String> = pol.mx.iter().map(ToString::to_string).collect();
    assert_eq!(mx, ["mx1.contoso.net", "*.mail.contoso.net"]);
}

#[test]
fn s13_required_fields_each_missing_one_invalidates() {
    for (drop, id) in [
        ("version", "policy.version.missing"),
        ("mode", "policy.mode.missing"),
        ("max_age", "policy.max-age.missing"),
    ] {
        let text: String = GOOD
            .lines()
            .filter(|l| !l.starts_with(drop))
            .map(|l| format!("{l}\n"))
            .collect();
        let p = lint(&text);
        assert!(!p.is_valid(), "{drop}");
        assert!(p.policy.is_none(), "{drop}: sender must not apply it");
        assert_eq!(find(&p.diagnostics, id).severity, Severity::Error);
    }
}

#[test]
fn d01_repeated_non_mx_field_first_occurrence_wins() {
    let p = lint(
        "version: STSv1\nmode: testing\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400\nmax_age: 5\n",
    );
    assert!(p.is_valid());
    let pol = p.policy.unwrap();
    assert_eq!(pol.mode, Mode::Testing);
    assert_eq!(pol.max_age, 86_400);
    let dups: Vec<_> = p
        .diagnostics
        .iter()
        .filter(|d| d.id == "policy.key.duplicate")
        .collect();
    assert_eq!(dups.len(), 2);
    assert!(dups.iter().all(|d| d.severity == Severity::Warning));
    assert_eq!(dups[0].line, Some(3));
    // First occurrence counts even when it is the bad one.
    let p =
        lint("version: STSv1\nmode: bogus\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400\n");
    assert!(p.policy.is_none());
}

#[test]
fn d02_max_age_over_limit_is_an_error_for_the_checker_and_clamped_for_the_sender() {
    let p = lint(&GOOD.replace("1209600", "31557601"));
    assert!(!p.is_valid());
    assert_eq!(
        find(&p.diagnostics, "policy.max-age.too-large").line,
        Some(5)
    );
    assert_eq!(p.policy.unwrap().max_age, MAX_AGE_LIMIT);
    let p = lint(&GOOD.replace("1209600", "9999999999"));
    assert_eq!(p.policy.unwrap().max_age, MAX_AGE_LIMIT);
    let p = lint(&GOOD.replace("1209600", "31557600"));
    assert!(p.is_valid());
}

#[test]
fn d03_max_age_sign_separator_exponent_unit_or_too_many_digits_invalidates() {
    for bad in [
        "+86400",
        "-1",
        "86_400",
        "8.64e4",
        "1e5",
        "86400s",
        "1d",
        "10000000000",
        "0x10",
        "86 400",
        "",
    ] {
        let p = lint(&GOOD.replace("1209600", bad));
        assert!(
            p.policy.is_none(),
            "{bad:?} must invalidate the policy for senders"
        );
        assert_eq!(
            find(&p.diagnostics, "policy.max-age.invalid").severity,
            Severity::Error,
            "{bad:?}"
        );
    }
    // Leading zeros are digits: fine (1 to 10 DIGIT).
    assert_eq!(
        lint(&GOOD.replace("1209600", "0001209600"))
            .policy
            .unwrap()
            .max_age,
        1_209_600
    );
    assert_eq!(
        lint(&GOOD.replace("1209600", "0")).policy.unwrap().max_age,
        0
    );
}

#[test]
fn d04_lf_crlf_and_mixed_line_ends_are_all_fine() {
    let crlf = GOOD.replace('\n', "\r\n");
    let mixed = "version: STSv1\r\nmode: enforce\nmx: mx1.contoso.net\r\nmx: *.mail.contoso.net\nmax_age: 1209600";
    for text in [GOOD, crlf.as_str(), mixed] {
        let p = lint(text);
        assert!(
            p.is_valid() && p.diagnostics.is_empty(),
            "{text:?}: {:?}",
            ids(&p.diagnostics)
        );
        assert_eq!(p.policy, lint(GOOD).policy);
    }
}

#[test]
fn d05_bare_cr_invalidates() {
    let p = lint(&GOOD.replace('\n', "\r"));
    assert!(p.policy.is_none());
    let d = find(&p.diagnostics, "policy.bare-cr");
    assert_eq!((d.severity, d.line), (Severity::Error, Some(1)));
    // One bare CR in an otherwise LF file.
    let p = lint("version: STSv1\nmode: enforce\rmx: mx1.contoso.net\nmax_age: 86400\n");
    assert!(p.policy.is_none());
    assert_eq!(find(&p.diagnostics, "policy.bare-cr").line, Some(2));
}

#[test]
fn d05_utf8_bom_invalidates() {
    let p = parse_policy(&[b"\xEF\xBB\xBF".as_slice(), GOOD.as_bytes()].concat());
    assert!(p.policy.is_none());
    assert_eq!(find(&p.diagnostics, "policy.bom").line, Some(1));
}

#[test]
fn d05b_blank_lines_are_invalid_for_the_checker_and_skipped_by_senders() {
    let text = "version: STSv1\n\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400\n\n\n";
    let p = lint(text);
    assert!(
        !p.is_valid(),
        "blank lines are an error for the checker (D5b)"
    );
    assert_eq!(
        find(&p.diagnostics, "policy.blank-line").severity,
        Severity::Error
    );
    let blanks: Vec<_> = p
        .diagnostics
        .iter()
        .filter(|d| d.id == "policy.blank-line")
        .map(|d| d.line)
        .collect();
    assert_eq!(blanks, [Some(2), Some(6), Some(7)]);
    assert_eq!(p.policy.unwrap().mode, Mode::Enforce);
}

#[test]
fn d05b_trailing_whitespace_after_a_value_is_in_the_grammar() {
    let p = lint("version: STSv1 \nmode: enforce\t\nmx: mx1.contoso.net  \nmax_age: 86400 \n");
    assert!(p.is_valid());
    assert!(!ids(&p.diagnostics).iter().any(|i| i.contains("whitespace")));
    assert_eq!(p.policy.unwrap().mx[0].to_string(), "mx1.contoso.net");
}

#[test]
fn d06_leading_whitespace_or_space_before_colon_invalidates() {
    let p = lint(&GOOD.replace("mode: enforce", "  mode: enforce"));
    assert!(p.policy.is_none());
    let d = find(&p.diagnostics, "policy.leading-whitespace");
    assert_eq!((d.line, d.column), (Some(2), Some(1)));
    let p = lint(&GOOD.replace("mode: enforce", "mode : enforce"));
    assert!(p.policy.is_none());
    assert_eq!(
        find(&p.diagnostics, "policy.space-before-colon").column,
        Some(5)
    );
}

#[test]
fn d06_tab_after_colon_is_fine() {
    let p = lint(&GOOD.replace("mx: mx1", "mx:\tmx1"));
    assert!(p.is_valid() && p.diagnostics.is_empty());
}

#[test]
fn d07_keys_and_keywords_are_case_sensitive() {
    for (from, to, id) in [
        ("mode: enforce", "Mode: enforce", "policy.key.case"),
        ("mode: enforce", "mode: Enforce", "policy.mode.invalid"),
        ("version: STSv1", "version: stsv1", "policy.version.invalid"),
        ("max_age:", "MAX_AGE:", "policy.key.case"),
    ] {
        let p = lint(&GOOD.replace(from, to));
        assert!(p.policy.is_none(), "{to}");
        assert_eq!(find(&p.diagnostics, id).severity, Severity::Error, "{to}");
    }
    let p = lint(&GOOD.replace("mode: enforce", "mode: Enforce"));
    assert!(
        find(&p.diagnostics, "policy.mode.invalid")
            .fix
            .contains("`mode: enforce`")
    );
    // A miscased key invalidates the policy even when the correct key is also there.
    for extra in ["MX: mx3.contoso.net", "Mode: none", "Version: STSv1"] {
        let p = lint(&format!("{GOOD}{extra}\n"));
        assert!(p.policy.is_none(), "{extra}");
        assert_eq!(find(&p.diagnostics, "policy.key.case").line, Some(6));
    }
}

#[test]
fn d08_missing_or_unknown_mode_invalidates_and_is_never_none() {
    for bad in [
        "enforcing",
        "enforced",
        "live",
        "report",
        "[enforce|testing|none]",
        "on",
    ] {
        let p = lint(&GOOD.replace("mode: enforce", &format!("mode: {bad}")));
        assert!(p.policy.is_none(), "{bad}");
        let d = find(&p.diagnostics, "policy.mode.invalid");
        assert_eq!(d.line, Some(2));
        assert!(d.message.contains(bad));
    }
    let p = lint(&GOOD.replace("mode: enforce", "mode: report"));
    assert!(
        find(&p.diagnostics, "policy.mode.invalid")
            .fix
            .contains("testing")
    );
    let p = lint(&GOOD.replace("mode: enforce\n", ""));
    assert!(p.policy.is_none());
}

#[test]
fn d09_mode_none_without_mx_is_fine() {
    let p = lint("version: STSv1\nmode: none\nmax_age: 86400\n");
    assert!(p.is_valid());
    let pol = p.policy.unwrap();
    assert_eq!((pol.mode, pol.mx.len()), (Mode::None, 0));
    assert_eq!(
        find(&p.diagnostics, "policy.mode.none").severity,
        Severity::Info
    );
}

#[test]
fn s13_mx_required_unless_mode_none() {
    for mode in ["enforce", "testing"] {
        let p = lint(&format!("version: STSv1\nmode: {mode}\nmax_age: 86400\n"));
        assert!(p.policy.is_none());
        assert_eq!(
            find(&p.diagnostics, "policy.mx.missing").severity,
            Severity::Error
        );
    }
}

#[test]
fn d10_trailing_dot_error_for_checker_stripped_for_sender() {
    let p = lint(&GOOD.replace("mx1.contoso.net", "mx1.contoso.net."));
    assert!(!p.is_valid());
    let d = find(&p.diagnostics, "policy.mx.trailing-dot");
    assert_eq!((d.line, d.column), (Some(3), Some(5)));
    assert!(d.fix.contains("`mx: mx1.contoso.net`"));
    assert_eq!(p.policy.unwrap().mx[0].to_string(), "mx1.contoso.net");
}

#[test]
fn d10_s16_u_label_error_for_checker_converted_for_sender() {
    let p = lint(&GOOD.replace("mx1.contoso.net", "mx.bücher.example"));
    let d = find(&p.diagnostics, "policy.mx.u-label");
    assert_eq!(d.severity, Severity::Error);
    assert!(d.fix.contains("mx.xn--bcher-kva.example"), "{}", d.fix);
    assert_eq!(
        p.policy.unwrap().mx[0].to_string(),
        "mx.xn--bcher-kva.example"
    );
}

#[test]
fn d10_bad_patterns_are_errors_and_dropped_never_handed_on() {
    for (bad, id) in [
        ("192.0.2.25", "policy.mx.ip-literal"),
        ("[192.0.2.25]", "policy.mx.ip-literal"),
        ("2001:db8::25", "policy.mx.ip-literal"),
        ("a.contoso.net,b.contoso.net", "policy.mx.comma-list"),
        ("mx1.your_domain.tld", "policy.mx.underscore"),
        ("alt*.google.com", "policy.mx.bad-wildcard"),
        ("mail.*.contoso.net", "policy.mx.bad-wildcard"),
        ("mx1.contoso.net # primary", "policy.mx.whitespace"),
        (".", "policy.mx.empty"),
        ("", "policy.mx.empty"),
        ("-mx.contoso.net", "policy.mx.bad-label"),
    ] {
        let p = lint(&GOOD.replace("mx1.contoso.net", bad));
        assert_eq!(find(&p.diagnostics, id).severity, Severity::Error, "{bad}");
        let pol = p
            .policy
            .expect("the other pattern is usable, so the policy stands");
        let mx: Vec<String> = pol.mx.iter().map(ToString::to_string).collect();
        assert_eq!(mx, ["*.mail.contoso.net"], "{bad} must be dropped");
    }
}

#[test]
fn d10_no_usable_pattern_left_invalidates_enforce_and_testing() {
    for mode in ["enforce", "testing"] {
        let p = lint(&format!(
            "version: STSv1\nmode: {mode}\nmx: 192.0.2.1\nmx: a_b.contoso.net\nmax_age: 86400\n"
        ));
        assert!(p.policy.is_none(), "{mode}");
        find(&p.diagnostics, "policy.mx.none-usable");
    }
    // In mode none an unusable pattern does not matter to senders.
    let p = lint("version: STSv1\nmode: none\nmx: 192.0.2.1\nmax_age: 86400\n");
    assert_eq!(p.policy.unwrap().mx.len(), 0);
}

#[test]
fn d10_comma_list_fix_shows_one_line_per_pattern() {
    let p = lint(&GOOD.replace("mx1.contoso.net", "a.contoso.net, b.contoso.net"));
    let d = find(&p.diagnostics, "policy.mx.comma-list");
    assert!(
        d.fix.contains("mx: a.contoso.net / mx: b.contoso.net"),
        "{}",
        d.fix
    );
}

#[test]
fn duplicate_mx_lines_warn_and_are_applied_once() {
    let p = lint(&GOOD.replace("mx: *.mail", "mx: MX1.contoso.net\nmx: *.mail"));
    assert!(p.is_valid());
    assert_eq!(find(&p.diagnostics, "policy.mx.duplicate").line, Some(4));
    assert_eq!(p.policy.unwrap().mx.len(), 2);
}

#[test]
fn s17_unknown_fields_are_ignored_with_a_warning() {
    let p = lint(&format!("{GOOD}x-note: managed by mtasts\n"));
    assert!(p.is_valid());
    assert_eq!(
        find(&p.diagnostics, "policy.key.unknown").severity,
        Severity::Warning
    );
    assert_eq!(p.policy, lint(GOOD).policy);
    // The TXT record's id does not belong here: same verdict, pointed message.
    let p = lint(&format!("{GOOD}id: 20240101\n"));
    assert!(
        find(&p.diagnostics, "policy.key.unknown")
            .message
            .contains("TXT record")
    );
}

#[test]
fn misspelled_keys_are_named() {
    for (bad, want) in [
        ("max-age", "max_age"),
        ("maxage", "max_age"),
        ("nmx", "mx"),
        ("moed", "mode"),
        ("verison", "version"),
    ] {
        let p = lint(&format!("{GOOD}{bad}: 1\n"));
        let d = find(&p.diagnostics, "policy.key.misspelled");
        assert!(d.message.contains(want), "{bad}: {}", d.message);
    }
}

#[test]
fn ungrammatical_lines_invalidate() {
    for (line, id) in [
        ("# comment", "policy.syntax"),
        ("---", "policy.syntax"),
        ("just words", "policy.syntax"),
        ("bad key: x", "policy.key.invalid"),
        ("_x: y", "policy.key.invalid"),
        ("x-empty:", "policy.value.invalid"),
        ("x-tab: a\tb", "policy.value.invalid"),
    ] {
        let p = lint(&format!("{GOOD}{line}\n"));
        assert!(p.policy.is_none(), "{line}");
        assert_eq!(find(&p.diagnostics, id).line, Some(6), "{line}");
    }
    let p = lint(&format!("---\nlayout: none\n---\n{GOOD}"));
    assert!(
        find(&p.diagnostics, "policy.syntax")
            .message
            .contains("front matter")
    );
}

#[test]
fn html_body_is_one_clear_error() {
    let p = lint("<!DOCTYPE html><html><body>Just a moment...</body></html>");
    assert_eq!(ids(&p.diagnostics), ["policy.html"]);
    assert!(p.policy.is_none());
}

#[test]
fn empty_body_is_one_clear_error() {
    for body in ["", "\n\n", "  "] {
        let p = lint(body);
        assert_eq!(ids(&p.diagnostics), ["policy.empty"], "{body:?}");
    }
}

#[test]
fn mode_advice() {
    let p = lint(&GOOD.replace("enforce", "testing"));
    assert!(p.is_valid());
    assert_eq!(
        find(&p.diagnostics, "policy.mode.testing").severity,
        Severity::Warning
    );
    let p = lint(&GOOD.replace("1209600", "3600"));
    assert_eq!(
        find(&p.diagnostics, "policy.max-age.short").severity,
        Severity::Warning
    );
    let p = lint(&GOOD.replace("1209600", "86400"));
    assert_eq!(
        find(&p.diagnostics, "policy.max-age.below-week").severity,
        Severity::Info
    );
}

#[test]
fn version_not_first_is_only_advice() {
    let p = lint("mode: enforce\nmx: mx1.contoso.net\nmax_age: 1209600\nversion: STSv1\n");
    assert!(p.is_valid());
    let d = find(&p.diagnostics, "policy.version.not-first");
    assert_eq!((d.severity, d.line), (Severity::Info, Some(4)));
}

#[test]
fn pattern_advice_for_placeholders_single_labels_and_tld_wildcards() {
    let p = lint(&GOOD.replace("mx1.contoso.net", "mx1.example.com"));
    find(&p.diagnostics, "policy.mx.placeholder");
    let p = lint(&GOOD.replace("mx1.contoso.net", "localhost"));
    find(&p.diagnostics, "policy.mx.single-label");
    let p = lint(&GOOD.replace("mx1.contoso.net", "*.com"));
    find(&p.diagnostics, "policy.mx.wildcard-too-broad");
}

#[test]
fn findings_are_sorted_by_line_with_whole_file_findings_last() {
    let p = lint("mode: bogus\nmx: 192.0.2.1\nversion: stsv1\n");
    let lines: Vec<Option<usize>> = p.diagnostics.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| l.unwrap_or(usize::MAX));
    assert_eq!(lines, sorted);
    assert_eq!(lines.last(), Some(&None));
}

#[test]
fn d20_d21_matching_uses_the_mx_name_and_one_label_wildcards() {
    let pol = lint(GOOD).policy.unwrap();
    assert_eq!(
        pol.matching_pattern("mx1.contoso.net").unwrap().to_string(),
        "mx1.contoso.net"
    );
    assert_eq!(
        pol.matching_pattern("MX1.CONTOSO.NET.")
            .unwrap()
            .to_string(),
        "mx1.contoso.net"
    );
    assert_eq!(
        pol.matching_pattern("a.mail.contoso.net")
            .unwrap()
            .to_string(),
        "*.mail.contoso.net"
    );
    assert!(
        pol.matching_pattern("mail.contoso.net").is_none(),
        "never the bare domain"
    );
    assert!(
        pol.matching_pattern("a.b.mail.contoso.net").is_none(),
        "never two labels"
    );
    assert!(pol.matching_pattern("mx2.contoso.net").is_none());
}

#[test]
fn d05b_blank_lines_every_shape_is_an_error_and_the_sender_keeps_the_policy() {
    for text in [
        "\nversion: STSv1\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400\n",
        "version: STSv1\nmode: enforce\n\nmx: mx1.contoso.net\nmax_age: 86400\n",
        "version: STSv1\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400\n\n",
        "version: STSv1\r\nmode: enforce\r\n\r\nmx: mx1.contoso.net\r\nmax_age: 86400\r\n",
        "version: STSv1\nmode: enforce\n \t\nmx: mx1.contoso.net\nmax_age: 86400\n",
    ] {
        let p = lint(text);
        assert!(!p.is_valid(), "{text:?}");
        assert_eq!(
            find(&p.diagnostics, "policy.blank-line").severity,
            Severity::Error,
            "{text:?}"
        );
        let policy = p.policy.expect("the sender view skips blank lines");
        assert_eq!(policy.mode, Mode::Enforce, "{text:?}");
    }
    // One line end after the last field is no blank line, with or without it.
    for text in [
        "version: STSv1\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400\n",
        "version: STSv1\nmode: enforce\nmx: mx1.contoso.net\nmax_age: 86400",
    ] {
        assert!(lint(text).is_valid(), "{text:?}");
    }
}

// ---- class 8: look-alike and invisible characters, invalid Punycode in `mx` ----

fn mx_problem(pattern: &str) -> (String, Option<usize>) {
    let text = format!(
        "version: STSv1\nmode: enforce\nmx: {pattern}\nmx: mx9.contoso.net\nmax_age: 86400\n"
    );
    let p = lint(&text);
    let d = p
        .diagnostics
        .iter()
        .find(|d| d.id.starts_with("policy.mx."))
        .unwrap_or_else(|| panic!("{pattern:?}: {:?}", ids(&p.diagnostics)));
    assert_eq!(d.severity, Severity::Error, "{pattern:?}");
    let kept = p.policy.map(|pol| pol.mx.len());
    (format!("{} {}", d.id, d.message), kept)
}

#[test]
fn mx_lookalike_invisible_and_bad_punycode_are_named_and_dropped() {
    for (pattern, id, names) in [
        (
            "mx1\u{200b}.contoso.net",
            "policy.mx.invisible-character",
            "U+200B",
        ),
        (
            "mx1.con\u{00ad}toso.net",
            "policy.mx.invisible-character",
            "U+00AD",
        ),
        (
            "\u{feff}mx1.contoso.net",
            "policy.mx.invisible-character",
            "U+FEFF",
        ),
        (
            "mx1.c\u{043e}ntoso.net",
            "policy.mx.look-alike",
            "looks like `o`",
        ),
        (
            "\u{0440}\u{0430}y.contoso.net",
            "policy.mx.look-alike",
            "U+0440",
        ),
        (
            "\u{ff4d}x1.contoso.net",
            "policy.mx.look-alike",
            "looks like `m`",
        ),
        ("mx1.xn--a.net", "policy.mx.bad-punycode", "xn--a"),
        ("XN--A.contoso.net", "policy.mx.bad-punycode", "XN--A"),
        (
            "mx1.xn--mx1-1ba.net",
            "policy.mx.bad-punycode",
            "xn--mx1-1ba",
        ),
    ] {
        let (shown, kept) = mx_problem(pattern);
        assert!(shown.starts_with(id), "{pattern:?}: {shown}");
        assert!(shown.contains(names), "{pattern:?}: {shown}");
        assert_eq!(
            kept,
            Some(1),
            "{pattern:?}: the sender drops the pattern, keeps the other"
        );
    }
    // A label wholly in another script is a U-label, converted as before (D10).
    let (shown, kept) = mx_problem("\u{043f}\u{043e}\u{0447}\u{0442}\u{0430}.contoso.net");
    assert!(shown.starts_with("policy.mx.u-label"), "{shown}");
    assert_eq!(kept, Some(2));
    // A valid A-label stays valid.
    let p = lint("version: STSv1\nmode: enforce\nmx: mx.xn--bcher-kva.example\nmax_age: 86400\n");
    assert!(p.is_valid(), "{:?}", ids(&p.diagnostics));
}
