//! docs/diagnostics.md lists every finding id `check` can emit.

#[test]
fn every_check_finding_id_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../../docs/diagnostics.md")).unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(root.join("src")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            continue;
        }
        let src = std::fs::read_to_string(entry.path()).unwrap();
        for id in src.split('"') {
            let shaped = id.contains('.')
                && !id.ends_with('.')
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-');
            if !shaped
                || ![
                    "check.", "domain.", "dns.", "sts.", "tlsrpt.", "policy.", "mx.", "dane.",
                ]
                .iter()
                .any(|p| id.starts_with(p))
            {
                continue;
            }
            count += 1;
            // Families are documented as `a.b.expired`, `.host-mismatch`, ... in one row.
            let tail = id.rsplit_once('.').map(|(_, t)| format!("`.{t}`"));
            if !doc.contains(&format!("`{id}`")) && !tail.is_some_and(|t| doc.contains(&t)) {
                missing.push(id.to_owned());
            }
        }
    }
    assert!(count > 40, "the scan found only {count} ids");
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "undocumented finding ids: {missing:?}");
}
