//! Postfix's tcp_table protocol (`tcp_table(5)`, `dict_tcp.c`): request `get SP key LF`, replies
//! `200 SP data LF` (found), `500 SP text LF` (not found), `400 SP text LF` (temporary error).
//! Keys, data and texts are `%XX`-encoded in both directions: `%`, whitespace and every byte
//! outside printable ASCII (Postfix's `hex_quote`).
//!
//! ```text
//! client: get example.com\n
//! server: 200 secure%20match=mx1.example.com:.example.net%20servername=hostname\n
//! ```
//!
//! Choices where Postfix leaves room:
//! - the table has no name on the wire: [`serve`] passes the name it was given to the handler;
//! - a reply line is at most [`Limits::max_reply`] bytes including the LF (Postfix's client
//!   limit is 4096). A longer `200` becomes `400` with the reason; a longer error text is cut;
//! - `TEMP`, `TIMEOUT` and `PERM` all become `400`: tcp_table has no other error status, and
//!   `500` would let the mail go out without its policy;
//! - a request other than `get`, or a key with a broken `%` escape, is answered `400`; a key that
//!   decodes to non-UTF-8 bytes, or to nothing, is answered `500`. A CR before the LF is ignored;
//! - a request line over [`Limits::max_query`] bytes (with its LF) is answered `400` and the
//!   connection closed, like an over-long socketmap query.

use super::listen::Listener;
use super::server::{self, Limits, Protocol, Request};
use crate::{Handler, Reply};
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio_util::codec::Decoder;

/// The longest reply line the Postfix tcp_table client reads, including the LF.
pub const MAX_REPLY_LINE: usize = 4096;

/// Serves the tcp_table protocol on `listener`, asking `handler` for every lookup in the table
/// `table`, until `shutdown` resolves; then as [`super::socketmap::serve`].
///
/// # Errors
/// None at present (see [`super::socketmap::serve`]).
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    table: &str,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let table: Arc<str> = Arc::from(table);
    let (max_line, max_reply) = (limits.max_query, limits.max_reply);
    server::run(listener, handler, limits, shutdown, move || TcpTable {
        codec: LineCodec::new(max_line),
        table: Arc::clone(&table),
        max_reply,
        scratch: Vec::new(),
    })
    .await
}

/// A line framing error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// No LF within the maximum line length.
    #[error("request line longer than {max} bytes")]
    TooLong {
        /// The limit in force, including the LF.
        max: usize,
    },
    /// The input ended inside a line.
    #[error("input ended inside a line ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the unfinished line had arrived.
        buffered: usize,
    },
    /// Reading the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// LF-terminated lines of at most `max_line` bytes including the LF; items are the lines without
/// the LF and without one CR before it. An over-long line is an error as soon as `max_line` bytes
/// without LF are buffered; after an error the codec must not be used again.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_line: usize,
    /// How many buffered bytes are known to hold no LF.
    scanned: usize,
}

impl LineCodec {
    /// A codec for lines of at most `max_line` bytes including the LF.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            scanned: 0,
        }
    }
}

impl LineCodec {
    /// Finds the line at the start of `buf` without consuming it: `Ok(Some((len, used)))` with
    /// the length of the line without its LF (and without one CR before it) and the bytes it
    /// takes with its LF, `Ok(None)` while no LF has arrived, [`LineError::TooLong`] as soon as
    /// `max_line` bytes without LF are buffered. `buf` must hold the bytes of the previous call
    /// (plus any that arrived since) until a line is found: the codec remembers how far it
    /// looked.
    pub fn frame(&mut self, buf: &[u8]) -> Result<Option<(usize, usize)>, LineError> {
        let window = buf.len().min(self.max_line);
        let from = self.scanned.min(window);
        match buf[from..window].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let end = from + i;
                self.scanned = 0;
                let len = if end > 0 && buf[end - 1] == b'\r' {
                    end - 1
                } else {
                    end
                };
                Ok(Some((len, end + 1)))
            }
            None if !buf.is_empty() && buf.len() >= self.max_line => {
                Err(LineError::TooLong { max: self.max_line })
            }
            None => {
                self.scanned = window;
                Ok(None)
            }
        }
    }
}

impl Decoder for LineCodec {
    type Item = BytesMut;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        let Some((len, used)) = self.frame(buf)? else {
            return Ok(None);
        };
        let mut line = buf.split_to(used);
        line.truncate(len);
        Ok(Some(line))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, LineError> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            None if buf.is_empty() => Ok(None),
            None => Err(LineError::Truncated {
                buffered: buf.len(),
            }),
        }
    }
}

/// A `%` not followed by two hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed %-encoding at byte {offset}")]
pub struct PercentError {
    /// Where the `%` is.
    pub offset: usize,
}

/// Decodes `%XX` escapes (either case of hex digits); other bytes are taken as they are.
///
/// # Errors
/// [`PercentError`] for a `%` not followed by two hex digits.
pub fn percent_decode(input: &[u8]) -> Result<Vec<u8>, PercentError> {
    let mut out = Vec::with_capacity(input.len());
    percent_decode_into(input, &mut out)?;
    Ok(out)
}

/// [`percent_decode`] appending to `out`.
fn percent_decode_into(input: &[u8], out: &mut Vec<u8>) -> Result<(), PercentError> {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let hex = |j: usize| input.get(j).and_then(|&b| (b as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(PercentError { offset: i });
            };
            // Two hex digits make at most 0xff.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX));
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(())
}

/// Whether Postfix's `hex_quote` sends `b` as it is (printable ASCII other than `%` and space).
fn is_plain(b: u8) -> bool {
    b != b'%' && b.is_ascii_graphic()
}

/// How many bytes [`percent_encode`] makes of `input`.
pub fn encoded_len(input: &[u8]) -> usize {
    input.iter().map(|&b| if is_plain(b) { 1 } else { 3 }).sum()
}

/// Appends `input` to `out`, `%XX`-encoding `%`, whitespace and every byte outside printable
/// ASCII, with upper-case hex digits, as Postfix's `hex_quote` does.
pub fn percent_encode(input: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input {
        if is_plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedLine {
    /// A lookup of the decoded key.
    Lookup(String),
    /// A request answered without the handler.
    Answer(Reply),
}

/// Parses a request line (without its LF): `get SP key`.
pub fn parse_request(line: &[u8]) -> ParsedLine {
    let mut scratch = Vec::new();
    match parse_request_in(line, &mut scratch) {
        LineRequest::Lookup(key) => ParsedLine::Lookup(key.to_owned()),
        LineRequest::Answer(reply) => ParsedLine::Answer(reply),
    }
}

/// [`parse_request`] without allocating: the key borrows from `line`, or from `scratch` when it
/// has `%` escapes to decode.
enum LineRequest<'a> {
    Lookup(&'a str),
    Answer(Reply),
}

fn parse_request_in<'a>(line: &'a [u8], scratch: &'a mut Vec<u8>) -> LineRequest<'a> {
    let Some(encoded) = line.strip_prefix(b"get ") else {
        return LineRequest::Answer(Reply::Temp(
            "unsupported request: expected get SP key".into(),
        ));
    };
    let key = if encoded.contains(&b'%') {
        scratch.clear();
        if percent_decode_into(encoded, scratch).is_err() {
            return LineRequest::Answer(Reply::Temp("malformed %-encoding in the key".into()));
        }
        &scratch[..]
    } else {
        encoded
    };
    match std::str::from_utf8(key) {
        Ok(key) if !key.is_empty() => LineRequest::Lookup(key),
        _ => LineRequest::Answer(Reply::NotFound),
    }
}

/// Appends the request line `get SP key LF` for `key` to `out` (the client side).
pub fn encode_request(key: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b"get ");
    percent_encode(key.as_bytes(), out);
    out.push(b'\n');
}

/// The reply line (with its LF) for `reply`, at most `max_reply` bytes (but never shorter than
/// the status, its space and the LF): an over-long `200` becomes `400` with the reason, an
/// over-long error text is cut at a character boundary.
pub fn render_reply(reply: &Reply, max_reply: usize) -> Vec<u8> {
    let (code, text) = match reply {
        Reply::Ok(data) if data.is_empty() => ("400", "the policy engine returned an empty policy"),
        Reply::Ok(data) => {
            let mut line = b"200 ".to_vec();
            percent_encode(data.as_bytes(), &mut line);
            line.push(b'\n');
            if line.len() <= max_reply {
                return line;
            }
            let why = format!("reply too long ({} bytes, limit {max_reply})", line.len());
            return error_line("400", &why, max_reply);
        }
        Reply::NotFound => ("500", "not found"),
        Reply::Temp(t) | Reply::Timeout(t) | Reply::Perm(t) => ("400", t.as_str()),
    };
    error_line(code, text, max_reply)
}

/// `CODE SP text LF` with the encoded text cut (at a character boundary) to fit `max_reply`.
fn error_line(code: &str, text: &str, max_reply: usize) -> Vec<u8> {
    let mut line = Vec::with_capacity(code.len() + 2 + text.len());
    line.extend_from_slice(code.as_bytes());
    line.push(b' ');
    let budget = max_reply.saturating_sub(1);
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let at = line.len();
        percent_encode(c.encode_utf8(&mut buf).as_bytes(), &mut line);
        if line.len() > budget {
            line.truncate(at);
            break;
        }
    }
    line.push(b'\n');
    line
}

/// A reply line that is not a tcp_table reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TcpReplyError {
    /// Not `200`, `400` or `500` followed by a space.
    #[error("unknown reply status in {0:?}")]
    UnknownStatus(String),
    /// The text has a broken `%` escape.
    #[error(transparent)]
    Percent(#[from] PercentError),
    /// The decoded text is not UTF-8.
    #[error("decoded reply is not UTF-8")]
    NotUtf8,
}

/// Parses a reply line (without its LF; the client side): `200` is [`Reply::Ok`], `500`
/// [`Reply::NotFound`], `400` [`Reply::Temp`].
///
/// # Errors
/// [`TcpReplyError`] for a line Postfix would not accept.
pub fn parse_reply(line: &[u8]) -> Result<Reply, TcpReplyError> {
    let unknown = || {
        TcpReplyError::UnknownStatus(String::from_utf8_lossy(&line[..line.len().min(40)]).into())
    };
    if line.len() < 4 || line[3] != b' ' {
        return Err(unknown());
    }
    let text =
        String::from_utf8(percent_decode(&line[4..])?).map_err(|_| TcpReplyError::NotUtf8)?;
    match &line[..3] {
        b"200" => Ok(Reply::Ok(text)),
        b"500" => Ok(Reply::NotFound),
        b"400" => Ok(Reply::Temp(text)),
        _ => Err(unknown()),
    }
}

/// The tcp_table protocol state of one connection.
#[derive(Debug)]
struct TcpTable {
    codec: LineCodec,
    table: Arc<str>,
    max_reply: usize,
    /// Where a key with `%` escapes is decoded.
    scratch: Vec<u8>,
}

impl Protocol for TcpTable {
    fn decode<'a>(&'a mut self, buf: &'a [u8]) -> Result<Option<(Request<'a>, usize)>, Reply> {
        match self.codec.frame(buf) {
            Ok(Some((len, used))) => Ok(Some((
                match parse_request_in(&buf[..len], &mut self.scratch) {
                    LineRequest::Lookup(key) => Request::Lookup {
                        name: &self.table,
                        key,
                    },
                    LineRequest::Answer(reply) => Request::Answer(reply),
                },
                used,
            ))),
            Ok(None) => Ok(None),
            Err(e) => Err(Reply::Temp(format!("{e}; closing the connection"))),
        }
    }

    fn encode(&self, reply: &Reply, out: &mut Vec<u8>) {
        // The usual `200` line is written straight into `out`; everything else (and a `200`
        // over the limit) goes through `render_reply`.
        if let Reply::Ok(data) = reply
            && !data.is_empty()
        {
            let start = out.len();
            out.extend_from_slice(b"200 ");
            percent_encode(data.as_bytes(), out);
            out.push(b'\n');
            if out.len() - start <= self.max_reply {
                return;
            }
            out.truncate(start);
        }
        out.extend_from_slice(&render_reply(reply, self.max_reply));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_hex_quote() {
        let mut out = Vec::new();
        percent_encode("a b%c\n\u{e9}~".as_bytes(), &mut out);
        assert_eq!(out, b"a%20b%25c%0A%C3%A9~");
        assert_eq!(encoded_len("a b%c\n\u{e9}~".as_bytes()), out.len());
        assert_eq!(
            percent_decode(&out).expect("valid"),
            "a b%c\n\u{e9}~".as_bytes()
        );
        assert_eq!(
            percent_decode(b"%c3%A9").expect("valid"),
            "\u{e9}".as_bytes()
        );
        for bad in [&b"%"[..], b"%4", b"%G0", b"a%0"] {
            assert!(percent_decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn renders_replies_within_the_limit() {
        assert_eq!(
            render_reply(&Reply::Ok("secure match=a:b".into()), 4096),
            b"200 secure%20match=a:b\n"
        );
        assert_eq!(render_reply(&Reply::NotFound, 4096), b"500 not%20found\n");
        assert_eq!(render_reply(&Reply::Timeout("t".into()), 4096), b"400 t\n");
        let long = render_reply(&Reply::Ok("x".repeat(5000)), 4096);
        assert!(
            long.starts_with(b"400 reply%20too%20long%20(5005%20bytes"),
            "{long:?}"
        );
        let cut = render_reply(&Reply::Temp("\u{e9}".repeat(5000)), 4096);
        assert!(
            cut.len() <= 4096 && cut.ends_with(b"%A9\n"),
            "{:?}",
            &cut[cut.len() - 8..]
        );
    }

    #[test]
    fn encode_is_render_reply_and_decode_is_parse_request() {
        let mut server = TcpTable {
            codec: LineCodec::new(100),
            table: Arc::from("postfix"),
            max_reply: 40,
            scratch: Vec::new(),
        };
        for reply in [
            Reply::Ok("secure match=a:b".into()),
            Reply::Ok("x".repeat(50)),
            Reply::Ok(String::new()),
            Reply::NotFound,
            Reply::Perm("p q".into()),
        ] {
            let mut out = b"before".to_vec();
            server.encode(&reply, &mut out);
            assert_eq!(
                out,
                [&b"before"[..], &render_reply(&reply, 40)].concat(),
                "{reply:?}"
            );
        }
        let input = b"get b%C3%BCcher.example\r\nget plain.example\nput x\n";
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((request, used)) = server.decode(&input[at..]).expect("valid") {
            let line = &input[at..at + used];
            let expected = parse_request(line.trim_ascii_end());
            match (request, expected) {
                (Request::Lookup { name, key }, ParsedLine::Lookup(k)) => {
                    assert_eq!((name, key), ("postfix", k.as_str()));
                    got.push(k);
                }
                (Request::Answer(a), ParsedLine::Answer(b)) => assert_eq!(a, b),
                (a, b) => panic!("{a:?} vs {b:?}"),
            }
            at += used;
        }
        assert_eq!(at, input.len());
        assert_eq!(got, ["bücher.example", "plain.example"]);
    }

    #[test]
    fn line_codec_rejects_an_over_long_line_at_once() {
        let mut c = LineCodec::new(8);
        let mut buf = BytesMut::from(&b"get ab\r\nget abc"[..]);
        assert_eq!(
            c.decode(&mut buf).expect("ok").as_deref(),
            Some(&b"get ab"[..])
        );
        assert!(c.decode(&mut buf).expect("ok").is_none());
        buf.extend_from_slice(b"d");
        assert!(matches!(
            c.decode(&mut buf),
            Err(LineError::TooLong { max: 8 })
        ));
    }
}
