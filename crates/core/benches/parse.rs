//! Parser throughput over the real-world files in `tests/data/` (see BENCHMARKS.md).
//!
//! Run with `cargo bench -p mtasts-core --bench parse`. Each benchmark parses a whole set of
//! files per iteration and reports bytes/s and items/s.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mtasts_core::policy::parse_policy;
use mtasts_core::record::{parse_sts_rrset, parse_tlsrpt_rrset};
use mtasts_core::report::{parse_report_json, parse_report_mail, parse_reports};
use std::hint::black_box;
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data");

/// Every file under `tests/data/<dir>` (one level of subdirectories) whose name ends in `ext`,
/// sorted by path.
fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    fn walk(dir: &Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("test data directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, ext, out);
            } else if path.to_string_lossy().ends_with(ext) {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&Path::new(DATA).join(dir), ext, &mut paths);
    paths.sort();
    assert!(!paths.is_empty(), "no {ext} files under tests/data/{dir}");
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("readable test file"))
        .collect()
}

fn throughput(set: &[Vec<u8>]) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: set.len() as u64,
        bytes: set.iter().map(|f| f.len() as u64).sum(),
    }
}

fn policies(c: &mut Criterion) {
    let set = files("policies", ".txt");
    let mut g = c.benchmark_group("policy");
    g.throughput(throughput(&set));
    g.bench_function("parse/all", |b| {
        b.iter(|| {
            for f in &set {
                black_box(parse_policy(black_box(f)));
            }
        });
    });
    g.finish();
}

/// Typical TXT RRsets as a resolver returns them: the record alone, next to SPF and
/// verification records, split into several character-strings, and broken ones.
const STS_RRSETS: &[&[&str]] = &[
    &["v=STSv1; id=20240101T000000"],
    &["v=STSv1; id=20190429T010101Z"],
    &[
        "v=spf1 include:_spf.google.com ~all",
        "google-site-verification=abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        "v=STSv1; id=2024010100",
    ],
    &["v=STSv1;id=abc; ext=1"],
    &["v=STSv1 ; id=20240101T000000Z;"],
    &["v=STSv1; id=1", "v=STSv1; id=2"],
];
const TLSRPT_RRSETS: &[&[&str]] = &[
    &["v=TLSRPTv1; rua=mailto:tlsrpt@example.net"],
    &["v=TLSRPTv1; rua=mailto:tls@example.net,https://reports.example.net/v1/tlsrpt"],
    &[
        "v=spf1 -all",
        "v=TLSRPTv1;rua=mailto:a@example.com, mailto:b@example.org",
    ],
    &["v=TLSRPTv1; rua=tlsrpt@example.net!10m"],
    &[
        "v=TLSRPTv1; rua=mailto:x@y.example",
        "v=TLSRPTv1; rua=mailto:z@y.example",
    ],
];

fn rrset_bytes(sets: &[&[&str]]) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: sets.len() as u64,
        bytes: sets
            .iter()
            .flat_map(|s| s.iter())
            .map(|r| r.len() as u64)
            .sum(),
    }
}

fn records(c: &mut Criterion) {
    let mut g = c.benchmark_group("txt_record");
    g.throughput(rrset_bytes(STS_RRSETS));
    g.bench_function("sts", |b| {
        b.iter(|| {
            for set in STS_RRSETS {
                black_box(parse_sts_rrset(black_box(set)));
            }
        });
    });
    g.throughput(rrset_bytes(TLSRPT_RRSETS));
    g.bench_function("tlsrpt", |b| {
        b.iter(|| {
            for set in TLSRPT_RRSETS {
                black_box(parse_tlsrpt_rrset(black_box(set)));
            }
        });
    });
    g.finish();
}

fn reports(c: &mut Criterion) {
    let json = files("tlsrpt", ".json");
    let mail = files("tlsrpt", ".eml");
    let mut g = c.benchmark_group("report");
    g.throughput(throughput(&json));
    g.bench_function("json/all", |b| {
        b.iter(|| {
            for f in &json {
                let _ = black_box(parse_report_json(black_box(f)));
            }
        });
    });
    g.throughput(throughput(&mail));
    g.bench_function("mail/all", |b| {
        b.iter(|| {
            for f in &mail {
                let _ = black_box(parse_report_mail(black_box(f)));
            }
        });
    });
    let both: Vec<Vec<u8>> = json.iter().chain(&mail).cloned().collect();
    g.throughput(throughput(&both));
    g.bench_function("sniff/all", |b| {
        b.iter(|| {
            for f in &both {
                let _ = black_box(parse_reports(black_box(f)));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, policies, records, reports);
criterion_main!(benches);
