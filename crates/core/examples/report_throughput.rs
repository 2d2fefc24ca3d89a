//! Report parsing throughput, for the comparison with parsedmarc in `bench/parsedmarc/`.
//!
//! ```text
//! cargo run --release -p mtasts-core --example report_throughput -- [--list-accepted] [-n N] FILE...
//! ```
//!
//! Reads every FILE into memory, parses each with [`parse_report_json`] once as a warm-up, then
//! times N (default 1000) passes over all of them and prints one line in the format
//! `bench/parsedmarc/bench.py` also uses:
//! `mtasts reports=<files> iterations=<N> seconds=<s> reports_per_s=<r>`.
//! With `--list-accepted` it prints instead the files the parser accepts, one per line.
//! With `--entry file` it times [`parse_reports`] instead (the entry point for a report file:
//! it sniffs JSON, gzip or mail), to compare with parsedmarc's `parse_report_file`.
//! With `--serde-value` it times only `serde_json::from_slice::<serde_json::Value>` (the first
//! step of our parser) and prints `serde_value ...`: a ceiling for a parser built on `Value`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark binary: its output is the result"
)]

use mtasts_core::report::{parse_report_json, parse_reports};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut iterations: u32 = 1000;
    let mut list_accepted = false;
    let mut serde_value = false;
    let mut entry_file = false;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list-accepted" => list_accepted = true,
            "--serde-value" => serde_value = true,
            "--entry" => match args.next().as_deref() {
                Some("json") => entry_file = false,
                Some("file") => entry_file = true,
                _ => {
                    eprintln!("--entry takes json or file");
                    return ExitCode::from(2);
                }
            },
            "-n" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => iterations = n,
                _ => {
                    eprintln!("-n needs a positive number");
                    return ExitCode::from(2);
                }
            },
            _ => paths.push(arg),
        }
    }
    if paths.is_empty() {
        eprintln!("usage: report_throughput [--list-accepted] [--entry json|file] [-n N] FILE...");
        return ExitCode::from(2);
    }
    let mut inputs = Vec::with_capacity(paths.len());
    for path in &paths {
        match std::fs::read(path) {
            Ok(bytes) => inputs.push(bytes),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    // One file, one parse; an error names what is wrong.
    let parse = |bytes: &[u8]| -> Result<(), String> {
        if entry_file {
            parse_reports(bytes)
                .map(|r| drop(black_box(r)))
                .map_err(|e| e.to_string())
        } else {
            parse_report_json(bytes)
                .map(|r| drop(black_box(r)))
                .map_err(|e| e.to_string())
        }
    };
    if list_accepted {
        for (path, bytes) in paths.iter().zip(&inputs) {
            match parse(bytes) {
                Ok(()) => println!("{path}"),
                Err(e) => eprintln!("mtasts rejects {path}: {e}"),
            }
        }
        return ExitCode::SUCCESS;
    }

    // Warm-up, and make sure every timed parse is a successful one.
    for (path, bytes) in paths.iter().zip(&inputs) {
        if let Err(e) = parse(bytes) {
            eprintln!("mtasts rejects {path}: {e}; pass only accepted files");
            return ExitCode::FAILURE;
        }
    }
    let start = Instant::now();
    for _ in 0..iterations {
        for bytes in &inputs {
            if serde_value {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(bytes)).ok());
            } else {
                black_box(parse(black_box(bytes)).ok());
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let reports = inputs.len() as f64 * f64::from(iterations);
    println!(
        "{} reports={} iterations={iterations} seconds={seconds:.6} reports_per_s={:.1}",
        if serde_value { "serde_value" } else { "mtasts" },
        inputs.len(),
        reports / seconds
    );
    ExitCode::SUCCESS
}
