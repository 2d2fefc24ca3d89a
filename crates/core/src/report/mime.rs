//! Input sniffing, gzip and MIME: from raw bytes to JSON documents (RFC 8460 §5.2, §5.3).
//!
//! The format is decided from the bytes, never from a Content-Type or a file name: reporters
//! label plain JSON `application/tlsrpt+gzip`, send `application/octet-stream`, or name the
//! file oddly (docs/decisions.md, D25).

use super::decode::{Input, SNIFF, Spend, read_report};
use super::error::ReportError;
use super::model::{ParsedReport, Repair};
use super::text::{TextKind, sniff_text};
use super::{Limits, RunBudget};
use crate::diag::Severity;
use flate2::read::MultiGzDecoder;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use std::io::Read;

/// What some bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Starts with the gzip magic `1f 8b` (RFC 1952 §2.3.1).
    Gzip,
    /// Starts with `{` or `[` after an optional UTF-8 BOM and white space, or is UTF-16 text
    /// that does.
    Json,
    /// Anything else: maybe an RFC 5322 message.
    Other,
}

fn sniff(bytes: &[u8]) -> Kind {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Kind::Gzip;
    }
    if let (TextKind::Utf16 { .. }, true) = sniff_text(&bytes[..bytes.len().min(SNIFF)]) {
        return Kind::Json;
    }
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        Some(b'{' | b'[') => Kind::Json,
        _ => Kind::Other,
    }
}

fn check_input(bytes: &[u8], limits: &Limits) -> Result<(), ReportError> {
    if bytes.len() > limits.max_input {
        return Err(ReportError::TooLarge {
            what: "input",
            limit: limits.max_input,
        });
    }
    Ok(())
}

/// Decompresses (possibly multi-member) gzip, reading at most `max_decompressed + 1` bytes.
pub(crate) fn gunzip(bytes: &[u8], limits: &Limits) -> Result<Vec<u8>, ReportError> {
    let limit = limits.max_decompressed;
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes)
        .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ReportError::Gzip {
            message: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(ReportError::TooLarge {
            what: "decompressed gzip data",
            limit,
        });
    }
    Ok(out)
}

/// Reads gzip, JSON or a mail, as sniffed from the bytes. See [`super::parse_reports`].
pub(crate) fn parse_any(
    bytes: &[u8],
    limits: &Limits,
    run: &mut RunBudget,
) -> Result<Vec<ParsedReport>, ReportError> {
    check_input(bytes, limits)?;
    let mut spend = Spend::new(limits, run);
    match sniff(bytes) {
        Kind::Gzip => Ok(vec![read_report(Input::Gzip(bytes), limits, &mut spend)?]),
        Kind::Json => Ok(vec![read_report(Input::Json(bytes), limits, &mut spend)?]),
        Kind::Other => parse_mail_unchecked(bytes, limits, &mut spend),
    }
}

/// Reads one JSON document. See [`super::parse_report_json`].
pub(crate) fn parse_json_only(
    bytes: &[u8],
    limits: &Limits,
    run: &mut RunBudget,
) -> Result<ParsedReport, ReportError> {
    check_input(bytes, limits)?;
    read_report(Input::Json(bytes), limits, &mut Spend::new(limits, run))
}

/// Reads a mail. See [`super::parse_report_mail`].
pub(crate) fn parse_mail(
    bytes: &[u8],
    limits: &Limits,
    run: &mut RunBudget,
) -> Result<Vec<ParsedReport>, ReportError> {
    check_input(bytes, limits)?;
    parse_mail_unchecked(bytes, limits, &mut Spend::new(limits, run))
}

/// Most refused parts named one by one in `report.mail-part-unreadable`.
const MAX_NAMED_ERRORS: usize = 10;

#[derive(Default)]
struct Walk {
    parts: usize,
    /// Parts that looked like gzip or JSON and were refused: (part number, why).
    refused: Vec<(usize, ReportError)>,
    refused_more: usize,
    reports: Vec<ParsedReport>,
    /// Why the rest of the mail was not examined.
    stopped: Option<ReportError>,
    /// Parts whose base64 lacked its padding.
    unpadded: usize,
}

impl Walk {
    fn refuse(&mut self, e: ReportError) {
        if self.refused.len() < MAX_NAMED_ERRORS {
            self.refused.push((self.parts, e));
        } else {
            self.refused_more += 1;
        }
    }
}

/// True when the line is an RFC 5322 header field (`name:`, name of printable ASCII without `:`).
fn is_field_line(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        _ => false,
    }
}

/// True when the first line is an RFC 5322 header field, after an optional mbox `From ` line.
/// mail-parser alone accepts any text.
fn looks_like_mail(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    if rest.starts_with(b"From ") {
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => rest = &rest[nl + 1..],
            None => return false,
        }
    }
    is_field_line(rest.split(|&b| b == b'\n').next().unwrap_or_default())
}

/// The part of the mail handed to mail-parser, whose memory grows with the number of parts and
/// header fields (about 150 bytes each: 3.4 million tiny parts in 32 MiB took 595 MB): the
/// mail is cut before the line that takes it past twice [`Limits::max_mime_parts`] boundary
/// lines or past [`Limits::max_mime_header_fields`] header-like lines, with the reason.
fn cut_mail<'m>(bytes: &'m [u8], limits: &Limits) -> (&'m [u8], Option<ReportError>) {
    let max_delimiters = limits.max_mime_parts.saturating_mul(2).saturating_add(2);
    let (mut delimiters, mut fields, mut pos) = (0usize, 0usize, 0usize);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"--") && line.get(2).is_some_and(|b| !b.is_ascii_whitespace()) {
            delimiters += 1;
            if delimiters > max_delimiters {
                let limit = limits.max_mime_parts;
                return (&bytes[..pos], Some(ReportError::TooManyMimeParts { limit }));
            }
        } else if !matches!(line.first(), Some(b'"' | b'{')) && is_field_line(line) {
            fields += 1;
            if fields > limits.max_mime_header_fields {
                let limit = limits.max_mime_header_fields;
                return (
                    &bytes[..pos],
                    Some(ReportError::TooManyHeaderFields { limit }),
                );
            }
        }
        pos += line.len();
    }
    (bytes, None)
}

fn parse_mail_unchecked(
    bytes: &[u8],
    limits: &Limits,
    spend: &mut Spend<'_>,
) -> Result<Vec<ParsedReport>, ReportError> {
    if !looks_like_mail(bytes) {
        return Err(ReportError::Unrecognised);
    }
    let (bytes, cut) = cut_mail(bytes, limits);
    let message = MessageParser::new()
        .parse(bytes)
        .ok_or(ReportError::Unrecognised)?;
    let mut walk = Walk {
        stopped: cut,
        ..Walk::default()
    };
    walk_message(&message, limits, spend, 0, &mut walk);
    drop(message);
    if walk.reports.is_empty() {
        // Nothing read: the reason the walk stopped, else the parts refused.
        if let Some(e) = walk.stopped {
            return Err(e);
        }
        let candidates = walk.refused.len() + walk.refused_more;
        return Err(ReportError::NoReportInMail {
            candidates,
            first_error: walk.refused.into_iter().next().map(|(_, e)| Box::new(e)),
        });
    }
    // The readable reports are kept; what was not read is not dropped in silence: each report
    // of the mail says so.
    let mut notes = Vec::new();
    if !walk.refused.is_empty() {
        let named: Vec<String> = walk
            .refused
            .iter()
            .map(|(part, e)| format!("part {part}: {e}"))
            .collect();
        let more = match walk.refused_more {
            0 => String::new(),
            n => format!("; and {n} more"),
        };
        notes.push(Repair {
            id: "report.mail-part-unreadable",
            severity: Severity::Warning,
            path: String::new(),
            message: format!(
                "{} other part(s) of the same mail looked like gzip or JSON but could not be \
                 read as a TLS-RPT report ({}{more}); only the readable report(s) were kept",
                walk.refused.len() + walk.refused_more,
                named.join("; ")
            ),
        });
    }
    if let Some(e) = &walk.stopped {
        notes.push(Repair {
            id: "report.mail-truncated",
            severity: Severity::Warning,
            path: String::new(),
            message: format!(
                "{e}: the rest of the mail was not examined; the report(s) found before that \
                 point were read"
            ),
        });
    }
    if walk.unpadded > 0 {
        notes.push(Repair {
            id: "report.base64-unpadded",
            severity: Severity::Warning,
            path: String::new(),
            message: format!(
                "{} base64 part(s) of the mail lack their `=` padding (RFC 2045 §6.8); decoded \
                 anyway",
                walk.unpadded
            ),
        });
    }
    for r in &mut walk.reports {
        r.warnings.extend(notes.iter().cloned());
    }
    Ok(walk.reports)
}

/// The base64 body of a part decoded again from the raw mail, as bytes, and whether its padding
/// was missing. mail-parser turns text parts into (lossy) UTF-8, so a gzip sent as base64
/// `text/plain` would be corrupted; and it decodes unpadded base64 without saying so.
fn raw_base64(message: &Message<'_>, part: &MessagePart<'_>) -> Option<(Vec<u8>, bool)> {
    if part.encoding != Encoding::Base64 {
        return None;
    }
    let start = usize::try_from(part.offset_body).ok()?;
    let end = usize::try_from(part.offset_end).ok()?;
    let raw = message.raw_message().get(start..end)?;
    let symbols = raw
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .count();
    let unpadded = symbols % 4 != 0;
    if matches!(part.body, PartType::Text(_) | PartType::Html(_)) || unpadded {
        return Some((base64_decode(raw)?, unpadded));
    }
    None
}

fn walk_message(
    message: &Message<'_>,
    limits: &Limits,
    spend: &mut Spend<'_>,
    depth: usize,
    walk: &mut Walk,
) {
    if depth > limits.max_mime_depth {
        walk.stopped.get_or_insert(ReportError::MimeTooDeep {
            limit: limits.max_mime_depth,
        });
        return;
    }
    for part in &message.parts {
        if walk.parts >= limits.max_mime_parts {
            walk.stopped.get_or_insert(ReportError::TooManyMimeParts {
                limit: limits.max_mime_parts,
            });
            return;
        }
        walk.parts += 1;
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) => walk_message(nested, limits, spend, depth + 1, walk),
            PartType::Text(_)
            | PartType::Html(_)
            | PartType::Binary(_)
            | PartType::InlineBinary(_) => {
                let decoded = raw_base64(message, part);
                let data = decoded.as_ref().map_or_else(|| part.contents(), |(d, _)| d);
                let is_message = part
                    .content_type()
                    .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("message"));
                let kind = sniff(data);
                if kind != Kind::Other && decoded.as_ref().is_some_and(|(_, u)| *u) {
                    walk.unpadded += 1;
                }
                match kind {
                    Kind::Gzip | Kind::Json => {
                        let input = if kind == Kind::Gzip {
                            Input::Gzip(data)
                        } else {
                            Input::Json(data)
                        };
                        match read_report(input, limits, spend) {
                            Ok(report) => walk.reports.push(report),
                            Err(e) => walk.refuse(e),
                        }
                    }
                    // A message/* part that mail-parser left unparsed (it stops descending
                    // into encoded messages after 3 levels): parse it here, under our own
                    // depth limit.
                    Kind::Other if is_message => {
                        if let Some(nested) = MessageParser::new().parse(data) {
                            walk_message(&nested, limits, spend, depth + 1, walk);
                        }
                    }
                    Kind::Other => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Kind::Gzip);
        assert_eq!(sniff(b"\xEF\xBB\xBF \r\n\t{}"), Kind::Json);
        assert_eq!(sniff(b"[1]"), Kind::Json);
        assert_eq!(sniff(b"From: a\r\n\r\n{}"), Kind::Other);
        assert_eq!(sniff(b""), Kind::Other);
        assert_eq!(sniff(&[0x1f]), Kind::Other);
    }

    #[test]
    fn mail_detection() {
        assert!(looks_like_mail(b"From: a@b\r\n\r\nx"));
        assert!(looks_like_mail(b"Received:from x"));
        assert!(looks_like_mail(
            b"From a@b Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody"
        ));
        assert!(!looks_like_mail(b"From a@b Mon Jan  1 00:00:00 2024"));
        assert!(!looks_like_mail(b"hello world\nSubject: x"));
        assert!(!looks_like_mail(b": no name"));
        assert!(!looks_like_mail(b"bad name: x"));
        assert!(!looks_like_mail(b""));
    }
}
