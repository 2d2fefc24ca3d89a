//! The fast path and the tolerant reader agree: on every test file, on the fuzz corpora, and on
//! generated report-like documents with random deviations.

use super::super::json::Caps;
use super::super::{
    Limits, parse_report_json, parse_report_json_with, parse_report_mail, parse_reports,
    parse_reports_with,
};
use super::{read, without_fast_path};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(ROOT).join(dir), &mut out);
    out.sort();
    out
}

/// Every entry point gives exactly the same result (reports, warnings in order, raw JSON and
/// sizes, or the same error) with and without the fast path.
fn assert_same(bytes: &[u8], what: &str) {
    assert_eq!(
        parse_reports(bytes),
        without_fast_path(|| parse_reports(bytes)),
        "parse_reports: {what}"
    );
    assert_eq!(
        parse_report_json(bytes),
        without_fast_path(|| parse_report_json(bytes)),
        "parse_report_json: {what}"
    );
    assert_eq!(
        parse_report_mail(bytes),
        without_fast_path(|| parse_report_mail(bytes)),
        "parse_report_mail: {what}"
    );
}

/// Limits small enough that the tolerant reader's element, memory and raw-copy limits bite.
fn tight_limits() -> Vec<Limits> {
    let mut out = Vec::new();
    for (policies, details, memory, raw) in [
        (1, 1, 1 << 20, 1 << 20),
        (2, 0, 1 << 20, 10),
        (10, 10, 1500, 1 << 20),
        (10, 10, 3000, 200),
        (10_000, 100_000, 600, 1 << 20),
    ] {
        out.push(Limits {
            max_policies: policies,
            max_failure_details: details,
            max_report_memory: memory,
            max_raw_json: raw,
            ..Limits::default()
        });
    }
    // A mail whose memory budget runs out after a report or two.
    out.push(Limits {
        max_mail_memory: 6000,
        ..Limits::default()
    });
    out
}

fn assert_same_with_limits(bytes: &[u8], what: &str) {
    for limits in tight_limits() {
        assert_eq!(
            parse_reports_with(bytes, &limits),
            without_fast_path(|| parse_reports_with(bytes, &limits)),
            "parse_reports_with {limits:?}: {what}"
        );
        assert_eq!(
            parse_report_json_with(bytes, &limits),
            without_fast_path(|| parse_report_json_with(bytes, &limits)),
            "parse_report_json_with {limits:?}: {what}"
        );
    }
}

#[test]
fn both_paths_agree_on_every_test_file() {
    let mut all = files("tests/data/tlsrpt");
    assert!(all.len() >= 20, "test data missing under {ROOT}/tests/data");
    all.extend(files("tests/data/hostile"));
    all.extend(files("crates/core/tests/it/report"));
    for path in &all {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let what = path.display().to_string();
        assert_same(&bytes, &what);
        assert_same_with_limits(&bytes, &what);
    }
}

#[test]
fn both_paths_agree_on_the_fuzz_corpora() {
    let all: Vec<PathBuf> = ["fuzz/corpus/report_json", "fuzz/corpus/mime"]
        .iter()
        .flat_map(|d| files(d))
        .collect();
    for path in &all {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_same(&bytes, &path.display().to_string());
    }
}

fn default_caps() -> Caps {
    let l = Limits::default();
    Caps {
        memory: l.max_report_memory,
        memory_what: "test",
        unknown_member: l.max_unknown_member,
        unknown_total: l.max_unknown_total,
        max_policies: l.max_policies,
        max_failure_details: l.max_failure_details,
    }
}

/// The test above would pass if the fast path never ran: most real reports must take it.
#[test]
fn real_reports_take_the_fast_path() {
    let json: Vec<PathBuf> = files("tests/data/tlsrpt")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    let fast: Vec<String> = json
        .iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default();
            read(&bytes, &default_caps(), &[]).is_some()
        })
        .map(|p| p.display().to_string())
        .collect();
    // Only rpt03.json (an unregistered policy type is fine, but it also lacks counts and has
    // an extra member) and the reports with `null`s or unknown members may fall back.
    assert!(
        fast.len() * 4 >= json.len() * 3,
        "{} of {}: {fast:?}",
        fast.len(),
        json.len()
    );
}

// Generated documents: a well-formed report, then random deviations.

/// A JSON value as text is built: members may repeat, strings are written as given.
#[derive(Clone, Debug)]
enum J {
    Obj(Vec<(String, Self)>),
    Arr(Vec<Self>),
    /// Raw JSON text (a number, `true`, `null`, a string with its quotes...).
    Raw(String),
}

fn s(text: &str) -> J {
    J::Raw(serde_json::to_string(text).unwrap_or_default())
}

fn render(j: &J, out: &mut String) {
    match j {
        J::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push(':');
                render(v, out);
            }
            out.push('}');
        }
        J::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(v, out);
            }
            out.push(']');
        }
        J::Raw(t) => out.push_str(t),
    }
}

fn key(k: &str) -> String {
    format!("\"{k}\"")
}

/// A small deterministic generator, so one proptest seed is one document.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n as u64)).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// Mostly one of the first `good` items (the well-formed ones), sometimes any.
    fn mostly<'a>(&mut self, items: &[&'a str], good: usize) -> &'a str {
        if self.chance(80) {
            items[self.below(good)]
        } else {
            self.pick(items)
        }
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const TEXTS: &[&str] = &[
    "\"Org\"",
    "\"\"",
    "\" \"",
    "\"caf\\u00e9 \\ud83d\\ude00\"",
    "\"\\ud800 lone\"",
    "\"tab\\there \\\" \\\\ \\/\"",
    "\"Société\"",
];
const DATES: &[&str] = &[
    "\"2024-01-01T00:00:00Z\"",
    "\"2024-01-01T23:59:59Z\"",
    "\"2024-01-01 00:00:00Z\"",
    "\"2024-01-01t00:00:00z\"",
    "\"2024-01-01T00:00:00\"",
    "\"2024-01-01T00:00:00+0200\"",
    "\"2024-01-01T02:00:00+02:00\"",
    "\"2016-12-31T23:59:60Z\"",
    "\" 2024-01-02T00:00:00Z \"",
    "\"2024-01-02T00:00:00.5Z\"",
    "\"yesterday\"",
];
const POLICY_TYPES: &[&str] = &[
    "\"sts\"",
    "\"tlsa\"",
    "\"no-policy-found\"",
    "\"STS\"",
    "\" sts \"",
    "\"other\"",
    "\"\\u0073ts\"",
];
const RESULT_TYPES: &[&str] = &[
    "\"certificate-expired\"",
    "\"starttls-not-supported\"",
    "\"sts-policy-fetch-error\"",
    "\"sts-policy-invalid\"",
    "\"Validation-Failure\"",
    "\"something-new\"",
];
const IPS: &[&str] = &[
    "\"192.0.2.1\"",
    "\"2001:db8::1\"",
    "\"\"",
    "\" 192.0.2.1\"",
    "\"[2001:db8::1]\"",
    "\"192.000.002.001\"",
    "\"not an ip\"",
];
const COUNTS: &[&str] = &[
    "0",
    "1",
    "5",
    "12",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "12.0",
    "1e3",
    "-0",
    "-1",
    "1.5",
    "1e400",
    "\"12\"",
    "\"x\"",
];
const POLICY_STRINGS: &[&str] = &[
    "[\"version: STSv1\",\"mode: enforce\",\"mx: mx.example.com\",\"max_age: 86400\"]",
    "[]",
    "\"version: STSv1\"",
    "[\"[\\\"3 1 1 AB\\\",\\\"3 1 1 CD\\\"]\"]",
    "[\"3 1 1 AB\"]",
    "[1]",
];
const MX: &[&str] = &[
    "[\"mx.example.com\"]",
    "\"mx.example.com\"",
    "[\"mx: mx.example.com\",\"*.example.net\"]",
    "[]",
];
/// Any JSON type, for wrong types and extra members.
const ANY: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-7",
    "1e400",
    "3.25",
    "\"s\"",
    "[]",
    "{}",
    "[1,\"a\",null]",
    "{\"a\":{\"b\":[]}}",
];
const EXTRA_KEYS: &[&str] = &[
    "x-extra",
    "mx-host-pattern",
    "additional-info-uri",
    "\\u0070olicies",
    "report-id",
    "summary",
    "",
];

fn detail(r: &mut Rng) -> J {
    let mut m = vec![
        (key("result-type"), J::Raw(r.mostly(RESULT_TYPES, 4).into())),
        (key("sending-mta-ip"), J::Raw(r.mostly(IPS, 2).into())),
        (key("receiving-mx-hostname"), s("mx.example.com")),
        (key("receiving-mx-helo"), s("mx")),
        (key("receiving-ip"), J::Raw(r.mostly(IPS, 2).into())),
        (
            key("failed-session-count"),
            J::Raw(r.mostly(COUNTS, 4).into()),
        ),
        (key("additional-information"), s("https://example.com/")),
        (key("failure-reason-code"), s("X509_V_ERR")),
    ];
    m.retain(|_| !r.chance(5));
    J::Obj(m)
}

fn policy_result(r: &mut Rng) -> J {
    let policy = J::Obj(vec![
        (key("policy-type"), J::Raw(r.mostly(POLICY_TYPES, 3).into())),
        (
            key("policy-string"),
            J::Raw(r.mostly(POLICY_STRINGS, 2).into()),
        ),
        (
            key("policy-domain"),
            J::Raw(r.pick(&["\"example.com\"", "\"\"", "\" \""]).into()),
        ),
        (key("mx-host"), J::Raw(r.mostly(MX, 2).into())),
    ]);
    let summary = J::Obj(vec![
        (
            key("total-successful-session-count"),
            J::Raw(r.mostly(COUNTS, 4).into()),
        ),
        (
            key("total-failure-session-count"),
            J::Raw(r.mostly(COUNTS, 4).into()),
        ),
    ]);
    let details = (0..r.below(4)).map(|_| detail(r)).collect();
    J::Obj(vec![
        (key("policy"), policy),
        (key("summary"), summary),
        (key("failure-details"), J::Arr(details)),
    ])
}

fn report(r: &mut Rng) -> J {
    let policies = (0..1 + r.below(3)).map(|_| policy_result(r)).collect();
    J::Obj(vec![
        (key("organization-name"), J::Raw(r.mostly(TEXTS, 1).into())),
        (
            key("date-range"),
            J::Obj(vec![
                (key("start-datetime"), J::Raw(r.mostly(DATES, 2).into())),
                (key("end-datetime"), J::Raw(r.mostly(DATES, 2).into())),
            ]),
        ),
        (key("contact-info"), s("tlsrpt@example.com")),
        (key("report-id"), J::Raw(r.mostly(TEXTS, 1).into())),
        (key("policies"), J::Arr(policies)),
    ])
}

/// Every object and array of `j`, depth first, as paths of indices.
fn places(j: &J, here: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    let children: Vec<&J> = match j {
        J::Obj(m) => m.iter().map(|(_, v)| v).collect(),
        J::Arr(a) => a.iter().collect(),
        J::Raw(_) => return,
    };
    out.push(here.clone());
    for (i, c) in children.into_iter().enumerate() {
        here.push(i);
        places(c, here, out);
        here.pop();
    }
}

fn at<'a>(j: &'a mut J, path: &[usize]) -> &'a mut J {
    let Some((first, rest)) = path.split_first() else {
        return j;
    };
    match j {
        J::Obj(m) => at(&mut m[*first].1, rest),
        J::Arr(a) => at(&mut a[*first], rest),
        J::Raw(_) => j,
    }
}

/// One random deviation somewhere in the document.
fn deviate(r: &mut Rng, doc: &mut J) {
    let mut all = Vec::new();
    places(doc, &mut Vec::new(), &mut all);
    let target = at(doc, &all[r.below(all.len())]);
    match target {
        J::Obj(m) => match r.below(6) {
            // Missing member.
            0 if !m.is_empty() => {
                let i = r.below(m.len());
                m.remove(i);
            }
            // Extra member, possibly a duplicate of a known one.
            1 => {
                let k = key(r.pick(EXTRA_KEYS));
                let i = r.below(m.len() + 1);
                m.insert(i, (k, J::Raw(r.pick(ANY).into())));
            }
            // Duplicate member.
            2 if !m.is_empty() => {
                let i = r.below(m.len());
                let dup = m[i].clone();
                m.push(dup);
            }
            // A member of another type (null included).
            3 if !m.is_empty() => {
                let i = r.below(m.len());
                m[i].1 = J::Raw(r.pick(ANY).into());
            }
            // A key written with an escape.
            4 if !m.is_empty() => {
                let i = r.below(m.len());
                let k = m[i].0.replacen('e', "\\u0065", 1);
                m[i].0 = k;
            }
            _ => {
                if let Some(last) = m.last_mut() {
                    last.1 = J::Raw(r.pick(COUNTS).into());
                }
            }
        },
        J::Arr(a) => match r.below(3) {
            0 if !a.is_empty() => {
                let i = r.below(a.len());
                a.remove(i);
            }
            1 => a.push(J::Raw(r.pick(ANY).into())),
            _ => {
                *target = J::Raw(r.pick(ANY).into());
            }
        },
        J::Raw(_) => {}
    }
}

/// A generated document as bytes, sometimes with white space or a BOM around it.
fn generate(seed: u64, deviations: usize) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let mut doc = report(&mut r);
    for _ in 0..deviations {
        deviate(&mut r, &mut doc);
    }
    let mut text = String::new();
    render(&doc, &mut text);
    let mut bytes = Vec::new();
    match r.below(8) {
        0 => bytes.extend_from_slice(b"\xEF\xBB\xBF"),
        1 => bytes.extend_from_slice(b" \n\t"),
        _ => {}
    }
    bytes.extend_from_slice(text.as_bytes());
    match r.below(8) {
        0 => bytes.extend_from_slice(b"\n"),
        1 => bytes.extend_from_slice(b" x"),
        _ => {}
    }
    bytes
}

#[test]
fn generated_documents_take_both_paths() {
    // The generator must give both outcomes often, or the property below proves little.
    let (mut fast, mut slow) = (0, 0);
    for seed in 0..400 {
        let bytes = generate(seed, usize::try_from(seed % 3).unwrap_or(0));
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        if read(body, &default_caps(), &[]).is_some() {
            fast += 1;
        } else {
            slow += 1;
        }
    }
    assert!(fast >= 40 && slow >= 40, "fast {fast}, slow {slow}");
}

/// The fast path charges the mail's memory budget exactly what the tolerant reader would.
#[test]
fn fast_cost_is_the_tolerant_estimate() {
    let mut docs: Vec<Vec<u8>> = (0..600).map(|seed| generate(seed, 0)).collect();
    docs.extend(
        files("tests/data/tlsrpt")
            .iter()
            .filter_map(|p| std::fs::read(p).ok()),
    );
    let mut checked = 0;
    for bytes in &docs {
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let Some(fast) = read(body, &default_caps(), &[]) else {
            continue;
        };
        let tolerant =
            super::super::json::parse(serde_json::Deserializer::from_slice(body), &default_caps())
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            fast.cost,
            tolerant.cost,
            "{}",
            String::from_utf8_lossy(bytes)
        );
        checked += 1;
    }
    assert!(checked >= 100, "{checked}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn fast_and_tolerant_agree_on_generated_reports(seed in any::<u64>(), deviations in 0usize..4) {
        let bytes = generate(seed, deviations);
        let what = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert_eq!(
            parse_report_json(&bytes),
            without_fast_path(|| parse_report_json(&bytes)),
            "{}", what
        );
        for limits in tight_limits() {
            prop_assert_eq!(
                parse_report_json_with(&bytes, &limits),
                without_fast_path(|| parse_report_json_with(&bytes, &limits)),
                "{:?}: {}", limits, what
            );
        }
    }
}
