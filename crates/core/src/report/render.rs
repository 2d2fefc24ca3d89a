//! Reports as output: the readable text of one report ([`write_text`]), and a JSON array written
//! one report at a time ([`JsonArray`]), so that a run over many files holds one file's reports
//! in memory, never the whole output.

use super::ParsedReport;
use crate::text::escape;
use serde::Serialize;
use std::io::{self, Write};

/// Writes `parsed` as text: a header naming the source `src`, the report and its sender, the
/// period, a line per policy with its session counts and a line per failure detail, then what was
/// repaired. Every field of a report is foreign, so every one is escaped
/// ([`escape`]): a forged one cannot act on the terminal. `emphasis` marks the counts of a
/// policy with failed sessions (a binary passes its colour; `|s| s` for none).
pub fn write_text(
    out: &mut impl Write,
    src: &str,
    parsed: &ParsedReport,
    emphasis: impl Fn(String) -> String,
) -> io::Result<()> {
    let r = &parsed.report;
    let contact = escape(r.contact_info.as_deref().unwrap_or("no contact"));
    writeln!(
        out,
        "{}: report {} from {} ({contact})",
        escape(src),
        escape(&r.report_id),
        escape(&r.organization_name)
    )?;
    writeln!(
        out,
        "  period: {} to {}",
        crate::rollout::stamp(r.date_range.start),
        crate::rollout::stamp(r.date_range.end)
    )?;
    for p in &r.policies {
        let domain = escape(p.policy.policy_domain.as_deref().unwrap_or("(no domain)"));
        let failed = p.summary.total_failure_session_count;
        let counts = format!(
            "{} successful, {failed} failed",
            p.summary.total_successful_session_count
        );
        let counts = if failed > 0 { emphasis(counts) } else { counts };
        writeln!(
            out,
            "  policy {} {domain}: {counts}",
            escape(p.policy.policy_type.as_str())
        )?;
        for f in &p.failure_details {
            let mut line = format!(
                "    {}: {} session(s)",
                escape(f.result_type.as_str()),
                f.failed_session_count
            );
            if let Some(h) = &f.receiving_mx_hostname {
                line.push_str(&format!(", mx {}", escape(h)));
            }
            if let Some(ip) = f.receiving_ip {
                line.push_str(&format!(" ({ip})"));
            }
            if let Some(ip) = f.sending_mta_ip {
                line.push_str(&format!(", from {ip}"));
            }
            if let Some(code) = &f.failure_reason_code {
                line.push_str(&format!(", reason {}", escape(code)));
            }
            writeln!(out, "{line}")?;
        }
    }
    for w in &parsed.warnings {
        writeln!(out, "  repaired: {}", escape(&w.to_string()))?;
    }
    Ok(())
}

/// A JSON array written element by element, byte for byte as `serde_json::to_writer_pretty` would
/// write the whole array, followed by a line end; no element is held once written.
#[derive(Debug)]
pub struct JsonArray<W: Write> {
    out: W,
    written: usize,
}

impl<W: Write> JsonArray<W> {
    /// An array to be written to `out` (nothing is written before the first element).
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    /// Writes one element.
    pub fn push(&mut self, element: &impl Serialize) -> io::Result<()> {
        let out = &mut self.out;
        out.write_all(if self.written == 0 {
            b"[\n  "
        } else {
            b",\n  "
        })?;
        serde_json::to_writer_pretty(Indent(out), element)?;
        self.written += 1;
        Ok(())
    }

    /// Closes the array (`[]` when nothing was pushed) and the line.
    pub fn finish(mut self) -> io::Result<()> {
        let end = if self.written == 0 { "[]" } else { "\n]" };
        writeln!(self.out, "{end}")
    }
}

/// Indents every line after the first by two spaces (JSON strings never hold a raw line break).
struct Indent<W>(W);

impl<W: Write> Write for Indent<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for (i, line) in buf.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                self.0.write_all(b"\n  ")?;
            }
            self.0.write_all(line)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::JsonArray;
    use serde_json::json;

    fn streamed(elements: &[serde_json::Value]) -> String {
        let mut out = Vec::new();
        let mut array = JsonArray::new(&mut out);
        for e in elements {
            array.push(e).unwrap();
        }
        array.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn streamed_json_array_is_byte_for_byte_the_pretty_printed_array() {
        let cases = [
            vec![],
            vec![json!({})],
            vec![
                json!({"a": [1, {"b": "x\ny"}], "c": []}),
                json!([]),
                json!("s"),
            ],
        ];
        for elements in cases {
            let whole = serde_json::to_string_pretty(&elements).unwrap() + "\n";
            assert_eq!(streamed(&elements), whole);
        }
    }
}
