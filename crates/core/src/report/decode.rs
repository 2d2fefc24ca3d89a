//! From the bytes of one report (JSON, or gzip'd JSON) to a [`ParsedReport`], streaming and
//! within budgets (see [`crate::report`], "Limits").
//!
//! gzip is decompressed as the JSON parser reads it, never into one buffer: the decoder is
//! wrapped in [`Capped`], which stops at the smallest of the per-report, per-mail and per-run
//! decompression limits and says which one. Only a bounded prefix of the JSON text is kept for
//! [`ParsedReport::raw_json`].
//!
//! Text that is not UTF-8 is read with a repair rather than refused: UTF-16 (detected from the
//! first bytes, RFC 8259 §8.1 / RFC 4627 §3) is converted on the fly; a document that fails
//! with an invalid UTF-8 byte or a lone surrogate escape is read a second time through
//! [`Mend`], which takes bytes that are not UTF-8 as Latin-1 and turns lone surrogate escapes
//! into U+FFFD.

use super::error::ReportError;
use super::json::{self, Caps};
use super::model::{ParsedReport, Repair};
use super::parse::build_report;
use super::{Limits, RunBudget};
use crate::diag::Severity;
use flate2::read::MultiGzDecoder;
use std::cell::Cell;
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

/// How JSON text is encoded, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextKind {
    /// UTF-8; `bom` when it starts with EF BB BF.
    Utf8 { bom: bool },
    /// UTF-16; big or little endian, with or without a byte order mark.
    Utf16 { big_endian: bool, bom: bool },
}

/// The encoding of `prefix` and whether its first character (after white space) opens a JSON
/// object or array (also true when the prefix is all white space).
pub(crate) fn sniff_text(prefix: &[u8]) -> (TextKind, bool) {
    fn opens(mut units: impl Iterator<Item = u32>) -> bool {
        units
            .find(|&c| !matches!(c, 0x20 | 0x09 | 0x0D | 0x0A))
            .is_none_or(|c| c == u32::from(b'{') || c == u32::from(b'['))
    }
    let utf16 = |bytes: &[u8], big_endian: bool, bom: bool| {
        let units = bytes.chunks_exact(2).map(|p| {
            u32::from(if big_endian {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from_le_bytes([p[0], p[1]])
            })
        });
        (TextKind::Utf16 { big_endian, bom }, opens(units))
    };
    match prefix {
        [0xEF, 0xBB, 0xBF, rest @ ..] => (
            TextKind::Utf8 { bom: true },
            opens(rest.iter().map(|&b| u32::from(b))),
        ),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true, true),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false, true),
        // No BOM: an ASCII character next to a zero byte (RFC 4627 §3).
        [0, a, ..] if *a != 0 => utf16(prefix, true, false),
        [a, 0, ..] if *a != 0 => utf16(prefix, false, false),
        _ => (
            TextKind::Utf8 { bom: false },
            opens(prefix.iter().map(|&b| u32::from(b))),
        ),
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
    let mut prefix = Vec::with_capacity(SNIFF);
    let io = |e: io::Error| ReportError::Gzip {
        message: e.to_string(),
    };
    capped
        .by_ref()
        .take(SNIFF as u64)
        .read_to_end(&mut prefix)
        .map_err(io)?;
    let (kind, opens) = sniff_text(&prefix);
    // Plain JSON is the caller's word (or its sniffing): the JSON parser judges it.
    if !opens && let Input::Gzip(_) = input {
        return Err(ReportError::NotJsonInGzip {
            start: String::from_utf8_lossy(&prefix[..prefix.len().min(16)]).into_owned(),
        });
    }
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
            let parsed = json::parse(serde_json::Deserializer::from_slice(body), &caps)?;
            let kept = bytes[..bytes.len().min(raw_cap)].to_vec();
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
            if let TextKind::Utf16 { .. } = kind {
                notes.push(utf16_note(kind, counts.utf16.get()));
            }
            notes.extend(counts.notes());
            (parsed?, tee.kept, tee.total)
        }
    };
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
    if (raw.len() as u64) < raw_size {
        notes.push(note(
            "report.raw-json-truncated",
            Severity::Info,
            format!(
                "the JSON text is {raw_size} bytes; only its first {} are kept as the raw \
                 copy (limit per report: {}, per mail: what is left of {})",
                raw.len(),
                limits.max_raw_json,
                limits.max_mail_memory
            ),
        ));
    }
    spend.memory_left = spend
        .memory_left
        .saturating_sub(parsed.cost.saturating_add(raw.len()));
    build_report(parsed, notes, raw, raw_size, limits)
}

fn note(id: &'static str, severity: Severity, message: String) -> Repair {
    Repair {
        id,
        severity,
        path: String::new(),
        message,
    }
}

fn utf16_note(kind: TextKind, replaced: usize) -> Repair {
    let TextKind::Utf16 { big_endian, bom } = kind else {
        unreachable!("only called for UTF-16")
    };
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

/// What the text decoders changed, read after the parse.
#[derive(Default)]
struct Counts {
    /// UTF-16: unpaired surrogates and odd trailing bytes.
    utf16: Cell<usize>,
    /// Bytes taken as Latin-1.
    latin1: Cell<usize>,
    /// Lone surrogate escapes.
    surrogates: Cell<usize>,
}

impl Counts {
    fn notes(&self) -> Vec<Repair> {
        let mut notes = Vec::new();
        if self.latin1.get() > 0 {
            notes.push(note(
                "report.latin1",
                Severity::Warning,
                format!(
                    "{} byte(s) of the JSON are not UTF-8 (RFC 8259 §8.1 requires it); read as \
                     Latin-1 (ISO-8859-1) characters",
                    self.latin1.get()
                ),
            ));
        }
        if self.surrogates.get() > 0 {
            notes.push(note(
                "report.lone-surrogate",
                Severity::Warning,
                format!(
                    "{} \\u escape(s) name a lone UTF-16 surrogate, which is no character \
                     (RFC 8259 §8.2, I-JSON RFC 7493 §2.1 forbids them); read as U+FFFD",
                    self.surrogates.get()
                ),
            ));
        }
        notes
    }
}

/// Converts UTF-16 to UTF-8 as it is read; unpaired surrogates become U+FFFD.
struct Utf16<'c, R> {
    inner: R,
    big_endian: bool,
    carry: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    eof: bool,
    replaced: &'c Cell<usize>,
}

impl<'c, R: Read> Utf16<'c, R> {
    fn new(inner: R, big_endian: bool, replaced: &'c Cell<usize>) -> Self {
        Self {
            inner,
            big_endian,
            carry: Vec::new(),
            out: Vec::new(),
            pos: 0,
            eof: false,
            replaced,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.inner.read(&mut chunk)?;
        self.eof = n == 0;
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(&chunk[..n]);
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|p| {
                if self.big_endian {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    u16::from_le_bytes([p[0], p[1]])
                }
            })
            .collect();
        let mut take = units.len();
        // A leading surrogate at the end may be completed by the next read.
        if !self.eof && units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            take -= 1;
        }
        self.carry = bytes[take * 2..].to_vec();
        self.out.clear();
        self.pos = 0;
        let mut utf8 = [0u8; 4];
        for c in char::decode_utf16(units[..take].iter().copied()) {
            let c = c.unwrap_or_else(|_| {
                self.replaced.set(self.replaced.get() + 1);
                char::REPLACEMENT_CHARACTER
            });
            self.out
                .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        if self.eof && !self.carry.is_empty() {
            self.carry.clear();
            self.replaced.set(self.replaced.get() + 1);
            self.out.extend_from_slice("\u{FFFD}".as_bytes());
        }
        Ok(())
    }
}

impl<R: Read> Read for Utf16<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.eof {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Mends JSON text that is almost UTF-8 as it is read: bytes that do not form UTF-8 are taken
/// as Latin-1 (ISO-8859-1) characters, and `\u` escapes naming a lone UTF-16 surrogate
/// (RFC 8259 §8.2) become `\uFFFD`.
struct Mend<'c, R> {
    inner: R,
    carry: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    eof: bool,
    in_string: bool,
    counts: &'c Counts,
}

fn hex4(bytes: Option<&[u8]>) -> Option<u16> {
    let text = std::str::from_utf8(bytes?).ok()?;
    u16::from_str_radix(text, 16)
        .ok()
        .filter(|_| text.len() == 4 && !text.starts_with('+'))
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl<'c, R: Read> Mend<'c, R> {
    fn new(inner: R, counts: &'c Counts) -> Self {
        Self {
            inner,
            carry: Vec::new(),
            out: Vec::new(),
            pos: 0,
            eof: false,
            in_string: false,
            counts,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.inner.read(&mut chunk)?;
        self.eof = n == 0;
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(&chunk[..n]);
        self.out.clear();
        self.pos = 0;
        let used = self.mend(&buf);
        self.carry = buf[used..].to_vec();
        Ok(())
    }

    /// Mends as much of `buf` as can be decided; returns how many bytes were used.
    fn mend(&mut self, buf: &[u8]) -> usize {
        let eof = self.eof;
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if b >= 0x80 {
                let width = utf8_width(b);
                if width > 1 && i + width > buf.len() && !eof {
                    break;
                }
                if let Some(seq) = buf.get(i..i + width.max(1))
                    && width > 1
                    && std::str::from_utf8(seq).is_ok()
                {
                    self.out.extend_from_slice(seq);
                    i += width;
                } else {
                    let mut utf8 = [0u8; 4];
                    self.out
                        .extend_from_slice(char::from(b).encode_utf8(&mut utf8).as_bytes());
                    bump(&self.counts.latin1);
                    i += 1;
                }
                continue;
            }
            if !self.in_string || b != b'\\' {
                if b == b'"' {
                    self.in_string = !self.in_string;
                }
                self.out.push(b);
                i += 1;
                continue;
            }
            // A backslash in a string: up to 12 bytes decide (`\uD83D\uDE00`).
            if i + 12 > buf.len() && !eof {
                break;
            }
            let unit = if buf.get(i + 1) == Some(&b'u') {
                hex4(buf.get(i + 2..i + 6))
            } else {
                None
            };
            match unit {
                Some(0xD800..=0xDBFF) => {
                    let next = if buf.get(i + 6..i + 8) == Some(b"\\u") {
                        hex4(buf.get(i + 8..i + 12))
                    } else {
                        None
                    };
                    if let Some(0xDC00..=0xDFFF) = next {
                        self.out.extend_from_slice(&buf[i..i + 12]);
                        i += 12;
                    } else {
                        self.out.extend_from_slice(b"\\uFFFD");
                        bump(&self.counts.surrogates);
                        i += 6;
                    }
                }
                Some(0xDC00..=0xDFFF) => {
                    self.out.extend_from_slice(b"\\uFFFD");
                    bump(&self.counts.surrogates);
                    i += 6;
                }
                // Any other escape: copied as is (two bytes; serde_json judges it).
                _ => {
                    let end = (i + 2).min(buf.len());
                    self.out.extend_from_slice(&buf[i..end]);
                    i = end;
                }
            }
        }
        i
    }
}

impl<R: Read> Read for Mend<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if self.eof && self.carry.is_empty() {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mend_all(input: &[u8], chunk: usize) -> (String, usize, usize) {
        // Feed in small chunks to exercise the carry between reads.
        struct Slow<'a>(&'a [u8], usize);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let counts = Counts::default();
        let mut out = String::new();
        Mend::new(Slow(input, chunk), &counts)
            .read_to_string(&mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        (out, counts.latin1.get(), counts.surrogates.get())
    }

    #[test]
    fn mend_latin1_and_lone_surrogates_at_any_chunk_size() {
        let input = b"{\"a\":\"Soci\xe9t\xe9 \\ud800x \\udc00 \\ud83d\\ude00 \\\" \xc3\xa9\"}";
        for chunk in [1, 2, 3, 5, 7, 64] {
            let (out, latin1, surrogates) = mend_all(input, chunk);
            assert_eq!(
                out, "{\"a\":\"Société \\uFFFDx \\uFFFD \\ud83d\\ude00 \\\" é\"}",
                "chunk {chunk}"
            );
            assert_eq!((latin1, surrogates), (2, 2), "chunk {chunk}");
        }
    }

    #[test]
    fn utf16_both_orders() {
        let text = "{\"a\":\"é😀\"}";
        for big_endian in [true, false] {
            let bytes: Vec<u8> = text
                .encode_utf16()
                .flat_map(|u| {
                    if big_endian {
                        u.to_be_bytes()
                    } else {
                        u.to_le_bytes()
                    }
                })
                .collect();
            assert_eq!(
                sniff_text(&bytes),
                (
                    TextKind::Utf16 {
                        big_endian,
                        bom: false
                    },
                    true
                )
            );
            let replaced = Cell::new(0);
            let mut out = String::new();
            Utf16::new(&bytes[..], big_endian, &replaced)
                .read_to_string(&mut out)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((out.as_str(), replaced.get()), (text, 0));
        }
    }

    #[test]
    fn sniffing_text() {
        assert_eq!(
            sniff_text(b"\xEF\xBB\xBF {"),
            (TextKind::Utf8 { bom: true }, true)
        );
        assert_eq!(sniff_text(b"  "), (TextKind::Utf8 { bom: false }, true));
        assert_eq!(sniff_text(b"hello"), (TextKind::Utf8 { bom: false }, false));
        assert_eq!(
            sniff_text(b"\xFF\xFE{\0"),
            (
                TextKind::Utf16 {
                    big_endian: false,
                    bom: true
                },
                true
            )
        );
        assert_eq!(
            sniff_text(b"\xFE\xFF\0x"),
            (
                TextKind::Utf16 {
                    big_endian: true,
                    bom: true
                },
                false
            )
        );
    }
}
