//! Replays the committed fuzz corpora through the fuzz targets' own checks, on stable.
//!
//! Every file under `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the
//! same `check` function that `fuzz/fuzz_targets/<target>.rs` calls: the files in `fuzz/src/` are
//! included here with `#[path]`, so CI catches a regression without libFuzzer or nightly. See
//! `fuzz/README.md`.
//!
//! A regression whose file name starts with `open__` is a known, still unfixed crash: it is kept
//! in the repository but skipped here until the fix lands (then drop the prefix).

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../../../../fuzz/src/policy.rs"]
#[allow(
    unreachable_pub,
    reason = "shared with the fuzz crate, where the checks are public"
)]
mod policy_checks;

#[path = "../../../../fuzz/src/record.rs"]
#[allow(
    unreachable_pub,
    reason = "shared with the fuzz crate, where the checks are public"
)]
mod record_checks;

#[path = "../../../../fuzz/src/report.rs"]
#[allow(
    unreachable_pub,
    reason = "shared with the fuzz crate, where the checks are public"
)]
mod report_checks;

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz");

/// Prefix of regression inputs for crashes that are not fixed yet; they are skipped.
const OPEN: &str = "open__";

/// The corpus and regression inputs of one target (without open regressions), sorted by path.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = Path::new(FUZZ_DIR).join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let open = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(OPEN));
            if path.is_file() && !open {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Runs `check` on every input of `target`, then fails once, naming every input that panicked.
fn replay(target: &str, check: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no corpus for `{target}` under {FUZZ_DIR}/corpus/{target}"
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = fs::read(path).expect("readable corpus file");
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} `{target}` inputs failed (panic messages above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn policy() {
    replay("policy", policy_checks::check);
}

#[test]
fn txt_record() {
    replay("txt_record", record_checks::check);
}

#[test]
fn report_json() {
    replay("report_json", report_checks::check_json);
}

#[test]
fn mime() {
    replay("mime", report_checks::check_mime);
}
