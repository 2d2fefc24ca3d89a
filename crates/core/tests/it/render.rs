//! Canonical rendering and content-derived ids.

use crate::find;
use mtasts_core::policy::{Mode, parse_policy};
use mtasts_core::render::{ID_LEN, build_policy};

#[test]
fn canonical_text_has_crlf_fixed_key_order_and_one_mx_per_line() {
    let (p, warnings) = build_policy(
        Mode::Testing,
        86_400,
        &["B.contoso.net", "*.a.contoso.net", "b.contoso.net"],
    )
    .unwrap();
    assert!(warnings.is_empty());
    assert_eq!(
        p.render(),
        "version: STSv1\r\nmode: testing\r\nmx: b.contoso.net\r\nmx: *.a.contoso.net\r\nmax_age: 86400\r\n"
    );
}

#[test]
fn id_is_content_derived_and_alphanumeric() {
    let a = build_policy(
        Mode::Enforce,
        604_800,
        &["mx1.contoso.net", "mx2.contoso.net"],
    )
    .unwrap()
    .0;
    let b = build_policy(
        Mode::Enforce,
        604_800,
        &["MX2.contoso.net", "mx1.contoso.net"],
    )
    .unwrap()
    .0;
    assert_eq!(
        a.id(),
        b.id(),
        "same policy, same id, whatever the order or case"
    );
    assert_eq!(a.id().len(), ID_LEN);
    assert!(a.id().bytes().all(|c| c.is_ascii_alphanumeric()));
    let c = build_policy(
        Mode::Enforce,
        604_801,
        &["mx1.contoso.net", "mx2.contoso.net"],
    )
    .unwrap()
    .0;
    assert_ne!(a.id(), c.id(), "any change gives a new id");
    // The id is a valid TXT record id.
    let rec = mtasts_core::record::parse_sts_rrset(&[format!("v=STSv1; id={}", a.id())]);
    assert!(rec.is_valid());
}

#[test]
fn rendered_policy_parses_back_as_itself_with_no_findings() {
    let (p, _) = build_policy(
        Mode::Enforce,
        1_209_600,
        &["mx1.contoso.net", "*.mail.contoso.net"],
    )
    .unwrap();
    let parsed = parse_policy(p.render().as_bytes());
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.policy.unwrap(), p);
}

#[test]
fn build_repairs_dot_and_u_label_with_a_warning() {
    let (p, w) = build_policy(
        Mode::Enforce,
        604_800,
        &["mx1.contoso.net.", "mx.bücher.de"],
    )
    .unwrap();
    let mx: Vec<String> = p.mx.iter().map(ToString::to_string).collect();
    assert_eq!(mx, ["mx.xn--bcher-kva.de", "mx1.contoso.net"]);
    find(&w, "policy.mx.trailing-dot");
    find(&w, "policy.mx.u-label");
}

#[test]
fn build_rejects_bad_input_with_every_error() {
    let errs =
        build_policy(Mode::Enforce, 40_000_000, &["192.0.2.1", "a_b.contoso.net"]).unwrap_err();
    find(&errs, "policy.max-age.too-large");
    find(&errs, "policy.mx.ip-literal");
    find(&errs, "policy.mx.underscore");
    let errs = build_policy(Mode::Testing, 86_400, &[]).unwrap_err();
    find(&errs, "policy.mx.missing");
    assert!(build_policy(Mode::None, 86_400, &[]).is_ok());
}
