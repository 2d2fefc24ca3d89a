//! Property tests: round trips, wildcard rules, and no panics on arbitrary input.

use mtasts_core::name::{MxPattern, check_pattern};
use mtasts_core::policy::{Mode, parse_policy};
use mtasts_core::record::{parse_sts_rrset, parse_tlsrpt_rrset};
use mtasts_core::render::build_policy;
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    // Not `??--` (RFC 5891 §4.2.3.1 reserves it; `xn--` must then be valid Punycode, which a
    // random label is not: one run in a few hundred drew one).
    "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?"
        .prop_filter("no hyphens in the third and fourth positions", |l| {
            l.get(2..4) != Some("--")
        })
}

fn domain() -> impl Strategy<Value = String> {
    (prop::collection::vec(label(), 1..4), "[a-z]{2,6}")
        .prop_map(|(ls, tld)| format!("{}.{tld}", ls.join(".")))
}

fn pattern() -> impl Strategy<Value = String> {
    (any::<bool>(), domain()).prop_map(|(w, d)| if w { format!("*.{d}") } else { d })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Enforce), Just(Mode::Testing), Just(Mode::None)]
}

proptest! {
    #[test]
    fn render_then_parse_round_trips(mode in mode(), age in 0u64..=31_557_600, mx in prop::collection::vec(pattern(), 1..8)) {
        let refs: Vec<&str> = mx.iter().map(String::as_str).collect();
        let (p, warnings) = build_policy(mode, age, &refs).unwrap();
        prop_assert!(warnings.is_empty());
        let parsed = parse_policy(p.render().as_bytes());
        prop_assert!(parsed.is_valid(), "{:?}", parsed.diagnostics);
        prop_assert_eq!(parsed.policy.as_ref(), Some(&p));
        // Rendering is idempotent, and the id follows the text.
        prop_assert_eq!(parsed.policy.unwrap().id(), p.id());
    }

    #[test]
    fn wildcard_covers_exactly_one_label(first in label(), second in label(), d in domain()) {
        let w: MxPattern = format!("*.{d}").parse().unwrap();
        let first_host = format!("{first}.{d}");
        let deep_host = format!("{second}.{first}.{d}");
        prop_assert!(w.matches(&first_host));
        prop_assert!(w.matches(&first_host.to_uppercase()));
        prop_assert!(!w.matches(&d));
        prop_assert!(!w.matches(&deep_host));
        let exact: MxPattern = d.parse().unwrap();
        let dotted = format!("{d}.");
        prop_assert!(exact.matches(&dotted));
        prop_assert!(!exact.matches(&first_host));
    }

    #[test]
    fn generated_patterns_are_valid(p in pattern()) {
        prop_assert!(check_pattern(&p).is_empty(), "{}", p);
    }

    #[test]
    fn policy_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let p = parse_policy(&bytes);
        // A sender policy implies the required fields were there.
        if let Some(pol) = p.policy {
            prop_assert!(pol.max_age <= 31_557_600);
        }
    }

    #[test]
    fn policy_parser_never_panics_on_policy_shaped_text(
        lines in prop::collection::vec(
            prop_oneof![
                Just("version: STSv1".to_owned()),
                Just("mode: enforce".to_owned()),
                Just("max_age: 86400".to_owned()),
                "mx: [ -~]{0,30}",
                "[a-zA-Z_ -]{0,10}:[ \t]*[ -~]{0,20}",
                "[ -~\t\r]{0,40}",
            ],
            0..20,
        ),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let p = parse_policy(text.as_bytes());
        if p.is_valid() {
            prop_assert!(p.policy.is_some(), "valid for the checker implies usable by a sender: {:?}", text);
        }
    }

    #[test]
    fn sts_record_with_any_alnum_id_round_trips(id in "[A-Za-z0-9]{1,32}") {
        let rec = parse_sts_rrset(&[format!("v=STSv1; id={id}")]);
        prop_assert!(rec.is_valid());
        prop_assert_eq!(rec.record.unwrap().id, id);
    }

    #[test]
    fn txt_parsers_never_panic(recs in prop::collection::vec(prop_oneof![
        "v=STSv1[ -~\t]{0,60}",
        "v=TLSRPTv1[ -~\t]{0,60}",
        prop::collection::vec(any::<u8>(), 0..80).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ], 0..4)) {
        let _ = parse_sts_rrset(&recs);
        let _ = parse_tlsrpt_rrset(&recs);
    }
}
