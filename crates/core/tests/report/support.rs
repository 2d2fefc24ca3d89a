//! Shared helpers: the test-data directory, report builders and MIME builders.

use mtasts_core::report::{ParsedReport, Repair, parse_report_json};
use std::path::{Path, PathBuf};

/// `tests/data/tlsrpt` at the repository root.
pub(crate) const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/tlsrpt");

/// Every file under [`DATA`], sorted, as (path relative to DATA, bytes).
pub(crate) fn corpus() -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = Path::new(DATA);
    let mut files = Vec::new();
    walk(root, &mut files);
    files.sort();
    assert!(files.len() >= 20, "test data missing under {DATA}");
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (rel, bytes)
        })
        .collect()
}

/// A minimal valid report with one `sts` policy; `policy_extra` is spliced into the `policy`
/// object and `detail` is the one failure detail.
pub(crate) fn report_json(policy_extra: &str, detail: &str) -> String {
    format!(
        r#"{{"organization-name":"Org","date-range":{{"start-datetime":"2024-01-01T00:00:00Z",
        "end-datetime":"2024-01-01T23:59:59Z"}},"contact-info":"tlsrpt@org.example",
        "report-id":"r1","policies":[{{"policy":{{"policy-type":"sts",
        "policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],
        "policy-domain":"example.com"{policy_extra}}},
        "summary":{{"total-successful-session-count":5,"total-failure-session-count":1}},
        "failure-details":[{detail}]}}]}}"#
    )
}

/// A complete failure detail; `extra` is spliced in.
pub(crate) fn detail(extra: &str) -> String {
    format!(
        r#"{{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1",
        "receiving-mx-hostname":"mx.example.com","receiving-ip":"192.0.2.2",
        "failed-session-count":1{extra}}}"#
    )
}

/// Parses JSON that must be a report.
pub(crate) fn parse_ok(json: &str) -> ParsedReport {
    parse_report_json(json.as_bytes()).unwrap_or_else(|e| panic!("should parse: {e}\n{json}"))
}

/// The ids of the repairs.
pub(crate) fn ids(warnings: &[Repair]) -> Vec<&'static str> {
    warnings.iter().map(|w| w.id).collect()
}

/// The one repair with `id`, failing when there is not exactly one.
pub(crate) fn only<'a>(p: &'a ParsedReport, id: &str) -> &'a Repair {
    let found: Vec<&Repair> = p.warnings.iter().filter(|w| w.id == id).collect();
    assert_eq!(found.len(), 1, "expected one {id} in {:#?}", p.warnings);
    found[0]
}

/// gzip with flate2 directly (independent of the crate under test).
pub(crate) fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    enc.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// Standard base64 with line breaks every 76 characters.
pub(crate) fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push_str("\r\n");
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(A[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `multipart/report` mail with a text part and one base64 attachment.
pub(crate) fn mail_with(content_type: &str, filename: &str, data: &[u8]) -> Vec<u8> {
    format!(
        "From: tlsrpt@org.example\r\nTo: rua@example.com\r\nSubject: Report Domain: example.com \
         Submitter: org.example Report-ID: <r1@org.example>\r\nTLS-Report-Domain: example.com\r\n\
         TLS-Report-Submitter: org.example\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"BOUND\"\r\n\r\n\
         --BOUND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThis is a TLS report.\r\n\
         --BOUND\r\nContent-Type: {content_type}\r\nContent-Disposition: attachment; \
         filename=\"{filename}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--BOUND--\r\n",
        base64(data)
    )
    .into_bytes()
}
