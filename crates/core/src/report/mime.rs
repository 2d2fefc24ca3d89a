//! Input sniffing, gzip and MIME: from raw bytes to JSON documents (RFC 8460 §5.2, §5.3).
//!
//! The format is decided from the bytes, never from a Content-Type or a file name: reporters
//! label plain JSON `application/tlsrpt+gzip`, send `application/octet-stream`, or name the
//! file oddly (docs/decisions.md, D25).

use super::Limits;
use super::error::ReportError;
use super::model::{ParsedReport, Repair};
use super::parse::parse_document;
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
    /// Starts with `{` or `[` after an optional UTF-8 BOM and white space.
    Json,
    /// Anything else: maybe an RFC 5322 message.
    Other,
}

fn sniff(bytes: &[u8]) -> Kind {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Kind::Gzip;
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

fn parse_gzip(bytes: &[u8], limits: &Limits) -> Result<ParsedReport, ReportError> {
    let json = gunzip(bytes, limits)?;
    if sniff(&json) != Kind::Json {
        let start = String::from_utf8_lossy(&json[..json.len().min(16)]).into_owned();
        return Err(ReportError::NotJsonInGzip { start });
    }
    parse_document(&json, limits)
}

/// Reads gzip, JSON or a mail, as sniffed from the bytes. See [`super::parse_reports`].
pub(crate) fn parse_any(bytes: &[u8], limits: &Limits) -> Result<Vec<ParsedReport>, ReportError> {
    check_input(bytes, limits)?;
    match sniff(bytes) {
        Kind::Gzip => Ok(vec![parse_gzip(bytes, limits)?]),
        Kind::Json => Ok(vec![parse_document(bytes, limits)?]),
        Kind::Other => parse_mail_unchecked(bytes, limits),
    }
}

/// Reads one JSON document. See [`super::parse_report_json`].
pub(crate) fn parse_json_only(bytes: &[u8], limits: &Limits) -> Result<ParsedReport, ReportError> {
    check_input(bytes, limits)?;
    parse_document(bytes, limits)
}

/// Reads a mail. See [`super::parse_report_mail`].
pub(crate) fn parse_mail(bytes: &[u8], limits: &Limits) -> Result<Vec<ParsedReport>, ReportError> {
    check_input(bytes, limits)?;
    parse_mail_unchecked(bytes, limits)
}

#[derive(Default)]
struct Walk {
    parts: usize,
    candidates: usize,
    first_error: Option<ReportError>,
    reports: Vec<ParsedReport>,
}

/// True when the first line is an RFC 5322 header field (`name:`, name of printable ASCII
/// without `:`), after an optional mbox `From ` line. mail-parser alone accepts any text.
fn looks_like_mail(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    if rest.starts_with(b"From ") {
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => rest = &rest[nl + 1..],
            None => return false,
        }
    }
    let line = rest.split(|&b| b == b'\n').next().unwrap_or_default();
    match line.iter().position(|&b| b == b':') {
        Some(colon) if colon > 0 => line[..colon].iter().all(|&b| (33..=126).contains(&b)),
        _ => false,
    }
}

fn parse_mail_unchecked(bytes: &[u8], limits: &Limits) -> Result<Vec<ParsedReport>, ReportError> {
    if !looks_like_mail(bytes) {
        return Err(ReportError::Unrecognised);
    }
    let message = MessageParser::new()
        .parse(bytes)
        .ok_or(ReportError::Unrecognised)?;
    let mut walk = Walk::default();
    walk_message(&message, limits, 0, &mut walk)?;
    if walk.reports.is_empty() {
        return Err(ReportError::NoReportInMail {
            candidates: walk.candidates,
            first_error: walk.first_error.map(Box::new),
        });
    }
    // The readable reports are kept; a part that looked like a report and could not be read is
    // not dropped in silence: each report of the mail says so.
    if let Some(e) = &walk.first_error {
        let message = format!(
            "{} other part(s) of the same mail looked like gzip or JSON but could not be read as a TLS-RPT report (first: {e}); only the readable report(s) were kept",
            walk.candidates
        );
        for r in &mut walk.reports {
            r.warnings.push(Repair {
                id: "report.mail-part-unreadable",
                severity: Severity::Warning,
                path: String::new(),
                message: message.clone(),
            });
        }
    }
    Ok(walk.reports)
}

/// mail-parser turns text parts into (lossy) UTF-8; a gzip sent as base64 `text/plain` is then
/// corrupted. For base64 text parts, decode the raw body again, as bytes.
fn raw_base64_text(message: &Message<'_>, part: &MessagePart<'_>) -> Option<Vec<u8>> {
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_))
        || part.encoding != Encoding::Base64
    {
        return None;
    }
    let start = usize::try_from(part.offset_body).ok()?;
    let end = usize::try_from(part.offset_end).ok()?;
    let raw = message.raw_message().get(start..end)?;
    base64_decode(raw)
}

fn walk_message(
    message: &Message<'_>,
    limits: &Limits,
    depth: usize,
    walk: &mut Walk,
) -> Result<(), ReportError> {
    if depth > limits.max_mime_depth {
        return Err(ReportError::MimeTooDeep {
            limit: limits.max_mime_depth,
        });
    }
    for part in &message.parts {
        walk.parts += 1;
        if walk.parts > limits.max_mime_parts {
            return Err(ReportError::TooManyMimeParts {
                limit: limits.max_mime_parts,
            });
        }
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(nested) => walk_message(nested, limits, depth + 1, walk)?,
            PartType::Text(_)
            | PartType::Html(_)
            | PartType::Binary(_)
            | PartType::InlineBinary(_) => {
                let decoded = raw_base64_text(message, part);
                let data = decoded.as_deref().unwrap_or_else(|| part.contents());
                let is_message = part
                    .content_type()
                    .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("message"));
                match sniff(data) {
                    kind @ (Kind::Gzip | Kind::Json) => {
                        let result = if kind == Kind::Gzip {
                            parse_gzip(data, limits)
                        } else {
                            parse_document(data, limits)
                        };
                        match result {
                            Ok(report) => walk.reports.push(report),
                            Err(e) => {
                                walk.candidates += 1;
                                walk.first_error.get_or_insert(e);
                            }
                        }
                    }
                    // A message/* part that mail-parser left unparsed (it stops descending
                    // into encoded messages after 3 levels): parse it here, under our own
                    // depth limit.
                    Kind::Other if is_message => {
                        if let Some(nested) = MessageParser::new().parse(data) {
                            walk_message(&nested, limits, depth + 1, walk)?;
                        }
                    }
                    Kind::Other => {}
                }
            }
        }
    }
    Ok(())
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
