//! From the bytes of one report (JSON, or gzip'd JSON) to a [`ParsedReport`], streaming and
//! within budgets (see [`crate::report`], "Limits").
//!
//! gzip is decompressed as the JSON parser reads it, never into one buffer: the decoder is
//! wrapped in [`Capped`], which stops at the smallest of the per-report, per-mail and per-run
//! decompression limits and says which one. Only a bounded prefix of the JSON text is kept for
//! [`ParsedReport::raw_json`].
//!
//! Text that is not UTF-8 is read with a repair rather than refused ([`super::text`]): UTF-16
//! is converted on the fly; a document that fails with an invalid UTF-8 byte or a lone
//! surrogate escape is read a second time through [`Mend`].

use super::error::ReportError;
use super::fast;
use super::json::{self, Caps};
use super::model::{ParsedReport, Repair};
use super::parse::build_report;
use super::text::{Counts, Mend, TextKind, Utf16, note, sniff_text};
use super::{Limits, RunBudget};
use crate::diag::Severity;
use flate2::read::MultiGzDecoder;
use std::io::{self, BufReader, Read};

/// Bytes read ahead to decide what the decompressed data is.
pub(crate) const SNIFF: usize = 4096;

/// The bytes of one report as found: plain JSON or gzip.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    /// JSON text (any encoding [`sniff_text`] knows).
    Json(&'a [u8]),
    /// gzip data (RFC 1952), possibly several members.
    Gzip(&'a [u8]),
}

/// What the reports of one input (a mail, or one gzip or JSON file) and its run may still use.
pub(crate) struct Spend<'r> {
    /// Decompressed bytes left for this input.
    pub decompressed_left: u64,
    /// Estimated memory left for this input's reports (trees and kept raw JSON).
    pub memory_left: usize,
    /// The run's budget.
    pub run: &'r mut RunBudget,
}

impl<'r> Spend<'r> {
    pub(crate) fn new(limits: &Limits, run: &'r mut RunBudget) -> Self {
        Self {
            decompressed_left: u64::try_from(limits.max_mail_decompressed).unwrap_or(u64::MAX),
            memory_left: limits.max_mail_memory,
            run,
        }
    }
}

/// Reads one report from `input`, charging `spend`.
pub(crate) fn read_report(
    input: Input<'_>,
    limits: &Limits,
    spend: &mut Spend<'_>,
) -> Result<ParsedReport, ReportError> {
    match attempt(input, limits, spend, false) {
        Err(ReportError::Json { message, .. })
            if [
                "invalid unicode code point",
                "lone leading surrogate",
                "end of hex escape",
            ]
            .iter()
            .any(|m| message.contains(m)) =>
        {
            attempt(input, limits, spend, true)
        }
        other => other,
    }
}

/// The smallest decompression limit that applies, and what it is called.
fn decompression_cap(limits: &Limits, spend: &Spend<'_>) -> (u64, &'static str, usize) {
    let report = u64::try_from(limits.max_decompressed).unwrap_or(u64::MAX);
    let mut cap = (report, "decompressed gzip data", limits.max_decompressed);
    if spend.decompressed_left < cap.0 {
        cap = (
            spend.decompressed_left,
            "decompressed data of this mail",
            limits.max_mail_decompressed,
        );
    }
    if spend.run.left() < cap.0 {
        cap = (
            spend.run.left(),
            "decompressed data of this run",
            usize::try_from(spend.run.limit()).unwrap_or(usize::MAX),
        );
    }
    cap
}

fn attempt(
    input: Input<'_>,
    limits: &Limits,
    spend: &mut Spend<'_>,
    mend: bool,
) -> Result<ParsedReport, ReportError> {
    let (source, cap): (Box<dyn Read + '_>, _) = match input {
        Input::Json(bytes) => (Box::new(bytes), (u64::MAX, "input", limits.max_input)),
        Input::Gzip(bytes) => (
            Box::new(MultiGzDecoder::new(bytes)),
            decompression_cap(limits, spend),
        ),
    };
    let mut capped = Capped {
        inner: source,
        left: cap.0,
        read: 0,
        failure: None,
        too_large: ReportError::TooLarge {
            what: cap.1,
            limit: cap.2,
        },
    };
    let result = read_text(input, &mut capped, limits, spend, mend);
    if let Input::Gzip(_) = input {
        spend.decompressed_left = spend.decompressed_left.saturating_sub(capped.read);
        spend.run.spend(capped.read);
    }
    match capped.failure {
        Some(e) => Err(e),
        None => result,
    }
}

fn read_text(
    input: Input<'_>,
    capped: &mut Capped<'_>,
    limits: &Limits,
    spend: &mut Spend<'_>,
    mend: bool,
) -> Result<ParsedReport, ReportError> {
    let io = |e: io::Error| ReportError::Gzip {
        message: e.to_string(),
    };
    // What the text is, from its first bytes: read ahead (and kept for the parser) for gzip.
    let mut prefix = Vec::new();
    let kind = match input {
        Input::Json(bytes) => sniff_text(&bytes[..bytes.len().min(SNIFF)]).0,
        Input::Gzip(_) => {
            capped
                .by_ref()
                .take(SNIFF as u64)
                .read_to_end(&mut prefix)
                .map_err(io)?;
            let (kind, opens) = sniff_text(&prefix);
            if !opens {
                return Err(ReportError::NotJsonInGzip {
                    start: String::from_utf8_lossy(&prefix[..prefix.len().min(16)]).into_owned(),
                });
            }
            kind
        }
    };
    let raw_cap = limits.max_raw_json.min(spend.memory_left);
    let mut notes = Vec::new();
    let mut caps = Caps {
        memory: limits.max_report_memory,
        memory_what: "parsed report (estimated memory)",
        unknown_member: limits.max_unknown_member,
        unknown_total: limits.max_unknown_total,
        max_policies: limits.max_policies,
        max_failure_details: limits.max_failure_details,
    };
    let left = spend.memory_left.saturating_sub(raw_cap);
    if left < caps.memory {
        caps.memory = left;
        caps.memory_what = "parsed reports of this mail (estimated memory)";
    }

    let (parsed, raw, raw_size) = match (input, kind, mend) {
        // The fast path: JSON already in memory, UTF-8.
        (Input::Json(bytes), TextKind::Utf8 { bom }, false) => {
            let body = if bom { &bytes[3..] } else { bytes };
            let kept = bytes[..bytes.len().min(raw_cap)].to_vec();
            // Well-formed reports take the typed fast path, which gives the same result.
            let text_notes = outer_notes(kind, kept.len(), bytes.len() as u64, limits, Vec::new());
            if let Some(fast) = fast::read(body, &caps, &text_notes) {
                spend.memory_left = spend
                    .memory_left
                    .saturating_sub(fast.cost.saturating_add(kept.len()));
                return Ok(ParsedReport {
                    report: fast.report,
                    warnings: fast.warnings,
                    raw_json: kept,
                    raw_json_size: bytes.len() as u64,
                });
            }
            let parsed = json::parse(serde_json::Deserializer::from_slice(body), &caps)?;
            (parsed, kept, bytes.len() as u64)
        }
        _ => {
            let mut tee = Tee {
                inner: io::Cursor::new(prefix).chain(capped),
                kept: Vec::new(),
                cap: raw_cap,
                total: 0,
            };
            let counts = Counts::default();
            let parsed = {
                let mut reader: Box<dyn Read + '_> = Box::new(&mut tee);
                match kind {
                    TextKind::Utf8 { bom: true } => {
                        let mut bom = [0; 3];
                        reader.read_exact(&mut bom).map_err(io)?;
                    }
                    TextKind::Utf16 { big_endian, bom } => {
                        if bom {
                            let mut bom = [0; 2];
                            reader.read_exact(&mut bom).map_err(io)?;
                        }
                        reader = Box::new(Utf16::new(reader, big_endian, &counts.utf16));
                    }
                    TextKind::Utf8 { bom: false } => {}
                }
                if mend {
                    reader = Box::new(Mend::new(reader, &counts));
                }
                let reader = BufReader::with_capacity(1 << 16, reader);
                json::parse(serde_json::Deserializer::from_reader(reader), &caps)
            };
            if let TextKind::Utf16 { big_endian, bom } = kind {
                notes.push(utf16_note(big_endian, bom, counts.utf16.get()));
            }
            notes.extend(counts.notes());
            (parsed?, tee.kept, tee.total)
        }
    };
    let notes = outer_notes(kind, raw.len(), raw_size, limits, notes);
    spend.memory_left = spend
        .memory_left
        .saturating_sub(parsed.cost.saturating_add(raw.len()));
    build_report(parsed, notes, raw, raw_size, limits)
}

/// `notes` (those of the text decoders) with the notes on the BOM and on a cut raw copy.
fn outer_notes(
    kind: TextKind,
    raw_len: usize,
    raw_size: u64,
    limits: &Limits,
    mut notes: Vec<Repair>,
) -> Vec<Repair> {
    if let TextKind::Utf8 { bom: true } = kind {
        notes.insert(
            0,
            note(
                "report.bom",
                Severity::Info,
                "UTF-8 byte order mark before the JSON (RFC 8259 §8.1: must not be added) was \
                 ignored"
                    .to_owned(),
            ),
        );
    }
    if (raw_len as u64) < raw_size {
        notes.push(note(
            "report.raw-json-truncated",
            Severity::Info,
            format!(
                "the JSON text is {raw_size} bytes; only its first {raw_len} are kept as the raw \
                 copy (limit per report: {}, per mail: what is left of {})",
                limits.max_raw_json, limits.max_mail_memory
            ),
        ));
    }
    notes
}

fn utf16_note(big_endian: bool, bom: bool, replaced: usize) -> Repair {
    let mut message = format!(
        "the JSON is UTF-16{} {}, not UTF-8 as RFC 8259 §8.1 requires; converted",
        if big_endian { "BE" } else { "LE" },
        if bom {
            "with a byte order mark"
        } else {
            "without a byte order mark"
        }
    );
    if replaced > 0 {
        message.push_str(&format!(
            "; {replaced} unpaired surrogate(s) or odd trailing byte(s) became U+FFFD"
        ));
    }
    note("report.utf16", Severity::Warning, message)
}

/// A reader that stops past `left` bytes and keeps the first error (a limit, or the gzip
/// decoder's) for the caller, since the JSON parser reports I/O errors only as text.
struct Capped<'a> {
    inner: Box<dyn Read + 'a>,
    left: u64,
    read: u64,
    failure: Option<ReportError>,
    too_large: ReportError,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::other("stopped"));
        }
        // One byte past the limit tells "exactly at" from "over".
        let room = usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                self.failure = Some(ReportError::Gzip {
                    message: e.to_string(),
                });
                return Err(e);
            }
        };
        self.read += n as u64;
        if n as u64 > self.left {
            self.failure = Some(self.too_large.clone());
            return Err(io::Error::other("limit"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Passes bytes through, keeping the first `cap` and counting all.
struct Tee<R> {
    inner: R,
    kept: Vec<u8>,
    cap: usize,
    total: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let room = self.cap.saturating_sub(self.kept.len()).min(n);
        self.kept.extend_from_slice(&buf[..room]);
        self.total += n as u64;
        Ok(n)
    }
}
