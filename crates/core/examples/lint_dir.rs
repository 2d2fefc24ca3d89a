//! Smoke tool: lint every file in a directory and print the findings.
#![allow(clippy::print_stdout)]
fn main() {
    let dir = std::env::args().nth(1).expect("dir");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        let parsed = mtasts_core::policy::parse_policy(&std::fs::read(&p).unwrap());
        println!(
            "== {} valid={} sender={:?}",
            p.file_name().unwrap().to_string_lossy(),
            parsed.is_valid(),
            parsed
                .policy
                .as_ref()
                .map(|p| (p.mode, p.max_age, p.mx.len()))
        );
        for d in &parsed.diagnostics {
            println!("   {d}");
        }
    }
}
