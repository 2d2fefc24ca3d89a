//! docs/diagnostics.md documents exactly the ids of the catalogue (`mtasts_core::catalog`), each
//! with the severities it is declared with.

use mtasts_core::Severity;
use mtasts_core::catalog::{CATALOGUE, entry};
use std::collections::BTreeMap;

/// The ids of the doc's tables and the severity cell of each, families expanded:
/// `` `a.b.expired`, `.host-mismatch` `` stands for `a.b.host-mismatch` too, and the
/// `tlsrpt.record.*` row that is "as `sts.*`" takes the severity of the `sts.record.*` row.
/// Rows of the limits table (`MAX_*` constants) are not ids.
fn documented() -> BTreeMap<String, String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../../docs/diagnostics.md")).unwrap();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| `") && !l.starts_with("| `MAX_"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let mut base = String::new();
        for id in cells[0].split('`').skip(1).step_by(2) {
            let full = match id.strip_prefix('.') {
                Some(tail) => format!("{base}.{tail}"),
                None => id.to_owned(),
            };
            base = full
                .rsplit_once('.')
                .map_or_else(String::new, |(b, _)| b.to_owned());
            let sev = if cells[1].starts_with("as `sts") {
                let tail = full.strip_prefix("tlsrpt.record.").unwrap();
                out[&format!("sts.record.{tail}")].clone()
            } else {
                cells[1].to_owned()
            };
            assert!(out.insert(full.clone(), sev).is_none(), "{full} twice");
        }
    }
    out
}

/// The doc's way of writing an entry's severities.
fn letters(id: &str) -> Vec<String> {
    let e = entry(id).unwrap();
    if e.untested {
        return vec!["U".into()];
    }
    let word = |s: &Severity| s.as_str().to_owned();
    let letter = |s: &Severity| s.as_str()[..1].to_uppercase();
    let mut forms = vec![
        e.severities
            .iter()
            .map(letter)
            .collect::<Vec<_>>()
            .join("/"),
        e.severities.iter().map(word).collect::<Vec<_>>().join("/"),
    ];
    if e.severities == [Severity::Info, Severity::Warning] {
        forms.push("info for `no-policy-found`, else warning".into());
    }
    forms
}

#[test]
fn the_doc_lists_exactly_the_catalogue() {
    let doc = documented();
    assert!(
        doc.len() > 150,
        "the doc parse found only {} ids",
        doc.len()
    );
    let catalogued: Vec<&str> = CATALOGUE.iter().map(|e| e.id).collect();
    let undocumented: Vec<&&str> = catalogued
        .iter()
        .filter(|id| !doc.contains_key(**id))
        .collect();
    assert!(undocumented.is_empty(), "not in the doc: {undocumented:?}");
    let uncatalogued: Vec<&String> = doc.keys().filter(|id| entry(id).is_none()).collect();
    assert!(
        uncatalogued.is_empty(),
        "not in the catalogue: {uncatalogued:?}"
    );
    for (id, sev) in &doc {
        assert!(
            letters(id).contains(sev),
            "{id}: the doc says {sev}, the catalogue {:?}",
            letters(id)
        );
    }
}

#[test]
fn a_wrong_severity_in_the_doc_is_caught() {
    // The comparison above is not vacuous: an error id documented as a warning fails it.
    assert!(!letters("policy.mode.invalid").contains(&"W".to_owned()));
    assert!(letters("policy.mode.invalid").contains(&"E".to_owned()));
    assert!(letters("mx.not-covered").contains(&"E/W".to_owned()));
    assert_eq!(letters("mx.unreachable"), ["U"]);
}
