//! Text encodings of report JSON that is not UTF-8 (RFC 8259 §8.1), read with a repair:
//! UTF-16 in either byte order, detected from the first bytes ([`sniff_text`], RFC 4627 §3) and
//! converted as it is read ([`Utf16`]); bytes that are not UTF-8 taken as Latin-1 and lone
//! surrogate escapes turned into U+FFFD ([`Mend`]). [`Counts`] says what was changed.

use super::model::Repair;
use crate::diag::Severity;
use std::cell::Cell;
use std::io::{self, Read};

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

/// A repair of the whole document (no JSON path).
pub(crate) fn note(id: &'static str, severity: Severity, message: String) -> Repair {
    Repair {
        id,
        severity,
        path: String::new(),
        message,
    }
}

/// What the text decoders changed, read after the parse.
#[derive(Default)]
pub(crate) struct Counts {
    /// UTF-16: unpaired surrogates and odd trailing bytes.
    pub(crate) utf16: Cell<usize>,
    /// Bytes taken as Latin-1.
    latin1: Cell<usize>,
    /// Lone surrogate escapes.
    surrogates: Cell<usize>,
}

impl Counts {
    pub(crate) fn notes(&self) -> Vec<Repair> {
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
pub(crate) struct Utf16<'c, R> {
    inner: R,
    big_endian: bool,
    carry: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    eof: bool,
    replaced: &'c Cell<usize>,
}

impl<'c, R: Read> Utf16<'c, R> {
    pub(crate) fn new(inner: R, big_endian: bool, replaced: &'c Cell<usize>) -> Self {
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
pub(crate) struct Mend<'c, R> {
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
    pub(crate) fn new(inner: R, counts: &'c Counts) -> Self {
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
