//! The real reports of tests/data/tlsrpt and how to compare what stores hold of them: shared by
//! the tests that send the corpus through each intake path.

use super::run;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every report file under tests/data/tlsrpt and ../shared/data/tlsrpt (when there, next to the
/// checkout), sorted, each content once.
pub(crate) fn corpus() -> Vec<PathBuf> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for root in [
        here.join("../../tests/data/tlsrpt"),
        here.join("../../../shared/data/tlsrpt"),
    ] {
        if !root.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        files.sort();
        for f in files {
            if seen.insert(std::fs::read(&f).unwrap()) {
                out.push(f);
            }
        }
    }
    assert!(out.len() >= 20, "{out:?}");
    out
}

/// A report mail as reporters send one: multipart/report with the report as a base64
/// `application/tlsrpt+json` part; `.eml` files as they are.
pub(crate) fn as_mail(path: &Path, n: usize) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "eml") {
        return bytes;
    }
    report_mail(
        "tlsrpt@example.test",
        n,
        ("application/tlsrpt+json", "report.json"),
        &bytes,
    )
}

/// Report mail number `n` to `to` from reporter.example (RFC 8460 §5.3): multipart/report with
/// `part` as a base64 attachment of the given content type and file name.
pub(crate) fn report_mail(
    to: &str,
    n: usize,
    (content_type, filename): (&str, &str),
    part: &[u8],
) -> Vec<u8> {
    let b64 = data_encoding::BASE64.encode(part);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: tlsrpt@reporter.example\r\nTo: {to}\r\nSubject: Report {n}\r\n\
         Message-ID: <r{n}@reporter.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=tlsrpt; boundary=\"b{n}\"\r\n\r\n\
         --b{n}\r\nContent-Type: text/plain\r\n\r\nThis is a TLS report.\r\n\
         --b{n}\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n{}\r\n--b{n}--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

/// `mtasts ARGS` with the store key `key`: its JSON output (exit 0 asserted).
pub(crate) async fn json(key: &str, args: &[&str]) -> Value {
    let (code, out, err) = run(
        args.iter().map(|a| (*a).to_owned()).collect(),
        &[("MTASTS_STORE_KEY", key)],
    )
    .await;
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// What a store holds, without what differs by path and time (ids, sources, arrival): per
/// (organization, report-id), the listing fields, the normalised report and the raw JSON.
pub(crate) async fn contents(key: &str, store: &str) -> (BTreeMap<(String, String), Value>, Value) {
    let list = json(
        key,
        &["report", "list", "--store", store, "--format", "json"],
    )
    .await;
    let mut out = BTreeMap::new();
    for r in list.as_array().unwrap() {
        let id = r["id"].to_string();
        let shown = json(
            key,
            &["report", "show", &id, "--store", store, "--format", "json"],
        )
        .await;
        let mut kept = r.clone();
        for k in ["id", "source", "received_at", "via"] {
            kept.as_object_mut().unwrap().remove(k);
        }
        let mut normalised = shown["normalised"].clone();
        normalised.as_object_mut().unwrap().remove("source");
        kept["normalised"] = normalised;
        kept["raw"] = shown["raw"].clone();
        let key = (
            r["organization"].as_str().unwrap().to_owned(),
            r["report_id"].as_str().unwrap().to_owned(),
        );
        out.insert(key, kept);
    }
    let summary = json(
        key,
        &[
            "report", "summary", "--store", store, "--since", "30000d", "--format", "json",
        ],
    )
    .await;
    (out, summary["domains"].clone())
}
