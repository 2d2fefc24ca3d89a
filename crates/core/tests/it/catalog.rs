//! docs/diagnostics.md lists every diagnostic id the code can emit.

#[test]
fn every_emitted_id_is_documented() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../../docs/diagnostics.md")).unwrap();
    let mut missing = Vec::new();
    let mut count = 0;
    let mut files = vec![root.join("src")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        // Every string literal is a piece between two quotes; an id is one whole piece.
        let pieces: Vec<&str> = src.split('"').collect();
        for (i, id) in pieces.iter().enumerate().skip(1) {
            let shaped = id.contains('.')
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-');
            if !shaped || id.ends_with('.') {
                continue;
            }
            // `id!(k, "record.missing")` expands to both `sts.` and `tlsrpt.` ids.
            let fulls: Vec<String> = if pieces[i - 1].ends_with("id!(k, ") {
                vec![format!("sts.{id}"), format!("tlsrpt.{id}")]
            } else if ["policy.", "sts.", "tlsrpt.", "input.", "report."]
                .iter()
                .any(|k| id.starts_with(k))
            {
                vec![(*id).to_owned()]
            } else {
                continue;
            };
            for full in fulls {
                count += 1;
                // `tlsrpt.record.*` ids are documented as `.tail` in a shared row.
                let tail = full
                    .strip_prefix("tlsrpt.record.")
                    .map(|t| format!("`.{t}`"));
                if !doc.contains(&format!("`{full}`")) && !tail.is_some_and(|t| doc.contains(&t)) {
                    missing.push(full);
                }
            }
        }
    }
    assert!(count > 100, "the scan found only {count} ids");
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "undocumented diagnostic ids: {missing:?}"
    );
}
