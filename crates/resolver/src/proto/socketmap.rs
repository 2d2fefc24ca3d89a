//! Postfix's socketmap protocol (`socketmap_table(5)`, `dict_sockmap.c`): one netstring per
//! request (`NAME SP KEY`) and per reply (`OK data`, `NOTFOUND `, `TEMP reason`,
//! `TIMEOUT reason`, `PERM reason`).
//!
//! ```text
//! client: 19:postfix example.com,
//! server: 64:OK secure match=mx1.example.com:.example.net servername=hostname,
//! ```
//!
//! Choices where Postfix leaves room:
//! - a request without a space, or with an empty or non-UTF-8 map name, is answered `PERM` and
//!   the connection stays open (the framing is intact);
//! - a key that is not UTF-8, or empty, is answered `NOTFOUND ` without asking the handler
//!   (Postfix sends UTF-8 keys for `smtp_tls_policy_maps`);
//! - a query over [`Limits::max_query`] is answered `PERM` and the connection closed: the payload
//!   is not read, so the stream cannot be resynchronised. Postfix 3.12 never sends one (it treats
//!   longer keys as not found itself); older clients get a logged configuration error instead of
//!   a silent answer. Other framing errors are handled the same way;
//! - a reply over [`Limits::max_reply`] becomes `TEMP` with the reason, never a truncated
//!   policy; `OK` with empty data (a configuration error to Postfix) becomes `TEMP` too.

use super::listen::Listener;
use super::netstring::{self, NetstringCodec, NetstringError};
use super::server::{self, Limits, Protocol, Request};
use crate::{Handler, Reply};
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::sync::Arc;

/// Serves the socketmap protocol on `listener`, asking `handler` for every lookup, until
/// `shutdown` resolves; then stops accepting, lets requests under way finish within
/// [`Limits::shutdown_grace`] and returns. Each connection runs in its own task.
///
/// # Errors
/// None at present: accept errors (such as running out of file descriptors) are retried after a
/// pause. The `io::Result` leaves room for fatal listener errors.
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (max_query, max_reply) = (limits.max_query, limits.max_reply);
    server::run(listener, handler, limits, shutdown, move || Socketmap {
        codec: NetstringCodec::new(max_query),
        max_reply,
    })
    .await
}

/// A parsed request payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedRequest<'a> {
    /// A lookup for the handler.
    Lookup {
        /// The socketmap name (the part before the first space).
        name: &'a str,
        /// The key (everything after the first space).
        key: &'a str,
    },
    /// A request answered without the handler: `PERM` for a malformed one, `NOTFOUND` for a
    /// key that is not UTF-8 or empty.
    Answer(Reply),
}

/// Parses a request payload `NAME SP KEY` (see the module docs for malformed requests).
pub fn parse_request(payload: &[u8]) -> ParsedRequest<'_> {
    let Some(space) = payload.iter().position(|&b| b == b' ') else {
        return ParsedRequest::Answer(Reply::Perm(
            "malformed request: expected NAME SP KEY".into(),
        ));
    };
    let (name, key) = (&payload[..space], &payload[space + 1..]);
    let Ok(name) = std::str::from_utf8(name) else {
        return ParsedRequest::Answer(Reply::Perm(
            "malformed request: the map name is not UTF-8".into(),
        ));
    };
    if name.is_empty() {
        return ParsedRequest::Answer(Reply::Perm("malformed request: empty map name".into()));
    }
    match std::str::from_utf8(key) {
        Ok(key) if !key.is_empty() => ParsedRequest::Lookup { name, key },
        _ => ParsedRequest::Answer(Reply::NotFound),
    }
}

/// Appends the request payload `NAME SP KEY` as a netstring to `out` (the client side).
pub fn encode_request(name: &str, key: &str, out: &mut BytesMut) {
    netstring::put_parts(&[name.as_bytes(), b" ", key.as_bytes()], out);
}

/// The status word with its space, and the text after it.
fn status_and_text(reply: &Reply) -> (&'static str, &str) {
    match reply {
        Reply::Ok(data) => ("OK ", data.as_str()),
        Reply::NotFound => ("NOTFOUND ", ""),
        Reply::Temp(reason) => ("TEMP ", reason.as_str()),
        Reply::Timeout(reason) => ("TIMEOUT ", reason.as_str()),
        Reply::Perm(reason) => ("PERM ", reason.as_str()),
    }
}

/// The reply payload for `reply`, at most `max_reply` bytes: an over-long reply, or `OK` with
/// empty data, becomes `TEMP` with the reason.
pub fn render_reply(reply: &Reply, max_reply: usize) -> Vec<u8> {
    if matches!(reply, Reply::Ok(data) if data.is_empty()) {
        return fit(
            "TEMP the policy engine returned an empty policy".into(),
            max_reply,
        );
    }
    let (status, text) = status_and_text(reply);
    let len = status.len() + text.len();
    if len > max_reply {
        return fit(
            format!("TEMP reply too long ({len} bytes, limit {max_reply})"),
            max_reply,
        );
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

/// `text` (ASCII) cut to `max` bytes: only a limit below the length of the error text cuts it.
fn fit(mut text: String, max: usize) -> Vec<u8> {
    text.truncate(max);
    text.into_bytes()
}

/// A reply payload that is not a socketmap reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The payload is not UTF-8.
    #[error("reply is not UTF-8")]
    NotUtf8,
    /// The status word is unknown (Postfix treats it as a temporary error).
    #[error("unknown reply status in {0:?}")]
    UnknownStatus(String),
    /// `OK` without data (Postfix treats it as a configuration error).
    #[error("OK reply without data")]
    EmptyOk,
}

/// Parses a reply payload (the client side): the inverse of [`render_reply`].
///
/// # Errors
/// [`ReplyError`] for a payload Postfix would not accept as an answer.
pub fn parse_reply(payload: &[u8]) -> Result<Reply, ReplyError> {
    let text = std::str::from_utf8(payload).map_err(|_| ReplyError::NotUtf8)?;
    let (status, rest) = text.split_once(' ').unwrap_or((text, ""));
    match status {
        "OK" if rest.is_empty() => Err(ReplyError::EmptyOk),
        "OK" => Ok(Reply::Ok(rest.to_owned())),
        "NOTFOUND" => Ok(Reply::NotFound),
        "TEMP" => Ok(Reply::Temp(rest.to_owned())),
        "TIMEOUT" => Ok(Reply::Timeout(rest.to_owned())),
        "PERM" => Ok(Reply::Perm(rest.to_owned())),
        _ => Err(ReplyError::UnknownStatus(text.chars().take(40).collect())),
    }
}

/// The socketmap protocol state of one connection.
#[derive(Debug)]
struct Socketmap {
    codec: NetstringCodec,
    max_reply: usize,
}

impl Protocol for Socketmap {
    fn decode<'a>(&'a mut self, buf: &'a [u8]) -> Result<Option<(Request<'a>, usize)>, Reply> {
        match self.codec.frame(buf) {
            Ok(Some((payload, used))) => Ok(Some((
                match parse_request(&buf[payload]) {
                    ParsedRequest::Lookup { name, key } => Request::Lookup { name, key },
                    ParsedRequest::Answer(reply) => Request::Answer(reply),
                },
                used,
            ))),
            Ok(None) => Ok(None),
            Err(NetstringError::TooLong { max }) => Err(Reply::Perm(format!(
                "query longer than {max} bytes; closing the connection"
            ))),
            Err(e) => Err(Reply::Perm(format!("{e}; closing the connection"))),
        }
    }

    fn encode(&self, reply: &Reply, out: &mut Vec<u8>) {
        // The usual reply is written straight into `out`; the rare ones (over-long, empty `OK`)
        // go through `render_reply`.
        let (status, text) = status_and_text(reply);
        let empty_ok = matches!(reply, Reply::Ok(data) if data.is_empty());
        if !empty_ok && status.len() + text.len() <= self.max_reply {
            netstring::put_parts(&[status.as_bytes(), text.as_bytes()], out);
        } else {
            netstring::put_parts(&[&render_reply(reply, self.max_reply)], out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_status_as_the_plugins_do() {
        let max = 100_000;
        assert_eq!(render_reply(&Reply::NotFound, max), b"NOTFOUND ");
        assert_eq!(
            render_reply(&Reply::Ok("dane-only".into()), max),
            b"OK dane-only"
        );
        assert_eq!(render_reply(&Reply::Temp("dns".into()), max), b"TEMP dns");
        assert_eq!(
            render_reply(&Reply::Timeout("slow".into()), max),
            b"TIMEOUT slow"
        );
        assert_eq!(render_reply(&Reply::Perm("bad".into()), max), b"PERM bad");
    }

    #[test]
    fn over_long_or_empty_ok_becomes_temp() {
        let r = render_reply(&Reply::Ok("x".repeat(100)), 50);
        assert!(
            r.starts_with(b"TEMP reply too long (103 bytes, limit 50)"),
            "{r:?}"
        );
        let r = render_reply(&Reply::Ok(String::new()), 100);
        assert!(r.starts_with(b"TEMP "), "{r:?}");
        assert_eq!(render_reply(&Reply::Ok("x".repeat(100)), 4), b"TEMP");
    }

    #[test]
    fn encode_is_the_netstring_of_render_reply() {
        for max in [4, 50, 100_000] {
            let server = Socketmap {
                codec: NetstringCodec::new(10_000),
                max_reply: max,
            };
            for reply in [
                Reply::Ok("secure match=mx.example.net".into()),
                Reply::Ok("x".repeat(100)),
                Reply::Ok(String::new()),
                Reply::NotFound,
                Reply::Temp("dns".into()),
                Reply::Timeout(String::new()),
                Reply::Perm("bad".into()),
            ] {
                let mut out = Vec::new();
                server.encode(&reply, &mut out);
                let mut expected = BytesMut::new();
                netstring::put(&render_reply(&reply, max), &mut expected);
                assert_eq!(out, &expected[..], "{reply:?} with limit {max}");
            }
        }
    }

    #[test]
    fn malformed_requests_are_answered_not_looked_up() {
        assert!(matches!(
            parse_request(b"postfix"),
            ParsedRequest::Answer(Reply::Perm(_))
        ));
        assert!(matches!(
            parse_request(b" key"),
            ParsedRequest::Answer(Reply::Perm(_))
        ));
        assert!(matches!(
            parse_request(b"\xff key"),
            ParsedRequest::Answer(Reply::Perm(_))
        ));
        assert_eq!(
            parse_request(b"postfix \xff"),
            ParsedRequest::Answer(Reply::NotFound)
        );
        assert_eq!(
            parse_request(b"postfix "),
            ParsedRequest::Answer(Reply::NotFound)
        );
        assert_eq!(
            parse_request("postfix bücher.example a b".as_bytes()),
            ParsedRequest::Lookup {
                name: "postfix",
                key: "bücher.example a b"
            }
        );
    }
}
