//! Replays the committed fuzz corpora of the protocol targets (`fuzz/corpus/netstring/`,
//! `fuzz/corpus/tcp_table/`, and `fuzz/regressions/` for them) through the fuzz targets' own
//! checks, included from `fuzz/src/proto.rs`, so stable CI runs them without libFuzzer.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

#[path = "../../../../fuzz/src/proto.rs"]
#[allow(
    unreachable_pub,
    reason = "shared with the fuzz crate, where the checks are public"
)]
mod checks;

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz");

fn replay(target: &str, check: fn(&[u8])) {
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = fs::read_dir(Path::new(FUZZ_DIR).join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let open = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("open__"));
            if path.is_file() && !open {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus for `{target}` under {FUZZ_DIR}"
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
        "`{target}` inputs failed:\n{}",
        failed.join("\n")
    );
}

#[test]
fn netstring() {
    replay("netstring", checks::check_netstring);
}

#[test]
fn tcp_table() {
    replay("tcp_table", checks::check_tcp_table);
}
