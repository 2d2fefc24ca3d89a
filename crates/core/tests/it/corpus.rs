//! Every real policy in tests/data/policies parses without panic, and a snapshot pins what we
//! read from each: the verdict, the sender view and every finding.

use crate::data_dir;
use mtasts_core::policy::parse_policy;
use serde_json::json;

#[test]
fn real_policies_snapshot() {
    let mut paths: Vec<_> = std::fs::read_dir(data_dir("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 38, "test data missing: {}", paths.len());
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let parsed = parse_policy(&std::fs::read(&path).unwrap());
        let findings: Vec<_> = parsed
            .diagnostics
            .iter()
            .map(|d| json!({"id": d.id, "severity": d.severity, "line": d.line, "column": d.column, "message": d.message, "fix": d.fix}))
            .collect();
        insta::assert_json_snapshot!(
            format!("policy__{name}"),
            json!({"valid": parsed.is_valid(), "policy": parsed.policy, "findings": findings})
        );
    }
}
