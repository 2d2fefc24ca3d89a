//! Policy file parser: no panic on any input, and a sender policy survives render → re-parse.

use mtasts_core::policy::parse_policy;
use mtasts_core::render::ID_LEN;

/// Parses `data` as a policy body. When a sender policy results, its canonical text must parse
/// back to the same (canonical) policy, render to the same text again, and its id must be
/// `ID_LEN` lower-case hex digits.
pub fn check(data: &[u8]) {
    let parsed = parse_policy(data);
    for d in &parsed.diagnostics {
        assert!(!d.id.is_empty(), "diagnostic without id: {d:?}");
    }
    let Some(policy) = parsed.policy else {
        return;
    };
    let text = policy.render();
    let again = parse_policy(text.as_bytes());
    let canonical = policy.canonical();
    assert_eq!(
        again.policy.as_ref(),
        Some(&canonical),
        "render → parse changed the policy\ninput: {data:?}\nrendered: {text:?}\nre-parse diagnostics: {:#?}",
        again.diagnostics
    );
    assert_eq!(
        canonical.render(),
        text,
        "render is not idempotent for {data:?}"
    );
    let id = policy.id();
    assert_eq!(id.len(), ID_LEN, "id {id:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "id {id:?} is not lower-case hex"
    );
    assert_eq!(id, canonical.id(), "id depends on pattern order");
}
