//! The server's bytes, held to limits before the IMAP parser sees them.
//!
//! async-imap's reader grows its buffer up to 512 MiB and parses an incomplete response again
//! at every read; a server that sends a huge literal, an endless line or a slow trickle would
//! cost that much memory and CPU. [`Guarded`] sits between the TLS stream and the parser and
//! fails the connection as soon as the server passes one of these limits:
//!
//! - bytes read while one command runs: [`Allowance::bytes`];
//! - the size a literal (`{N}` at a line end) announces: [`Allowance::max_literal`];
//! - text outside literals in one response: [`MAX_RESPONSE_TEXT`], and literals in one
//!   response: [`MAX_LITERALS`] (so the parser's repeated attempts on an incomplete response
//!   read at most that much text each time);
//! - time without a byte while a read waits: [`Allowance::read_timeout`].
//!
//! A broken guard stays broken: every later read fails too, and the connection is dropped.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes outside literals in one server response (one line, or the lines a response's
/// literals join): 64 KiB. Our commands' answers are lines of a few hundred bytes.
pub const MAX_RESPONSE_TEXT: usize = 64 * 1024;
/// Most literals in one server response: 8 (an answer to our `FETCH` has one).
pub const MAX_LITERALS: usize = 8;

/// What the server may send while one command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Bytes in all.
    pub bytes: u64,
    /// The largest literal.
    pub max_literal: u64,
    /// The longest wait for the next byte (`None`: no limit, while idling).
    pub read_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Text of a response.
    Text,
    /// After `{` and `digits` digits making `n`.
    Brace { n: u64, digits: u8 },
    /// After `{N}`.
    Closed(u64),
    /// After `{N}\r`.
    ClosedCr(u64),
    /// Inside a literal, with this many bytes to go.
    Literal(u64),
}

#[derive(Debug)]
struct State {
    allowance: Allowance,
    /// Bytes the current command may still read.
    left: u64,
    lex: Lex,
    /// Text bytes of the current response.
    text: usize,
    /// Literals of the current response.
    literals: usize,
    /// Why the stream was stopped, once it was.
    broken: Option<String>,
}

impl State {
    /// Accounts for `bytes` the server just sent.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let n = bytes.len() as u64;
        if n > self.left {
            return Err(format!(
                "the server sent more than {} bytes for one command",
                self.allowance.bytes
            ));
        }
        self.left -= n;
        let mut i = 0;
        while i < bytes.len() {
            if let Lex::Literal(r) = self.lex {
                let take = r.min((bytes.len() - i) as u64);
                i += usize::try_from(take).unwrap_or(usize::MAX);
                self.lex = match r - take {
                    0 => Lex::Text,
                    rest => Lex::Literal(rest),
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            self.text += 1;
            if self.text > MAX_RESPONSE_TEXT {
                return Err(format!(
                    "the server sent a response with more than {MAX_RESPONSE_TEXT} bytes outside \
                     literals"
                ));
            }
            self.lex = match (self.lex, b) {
                (Lex::Closed(n) | Lex::ClosedCr(n), b'\n') => {
                    self.literals += 1;
                    if self.literals > MAX_LITERALS {
                        return Err(format!(
                            "the server sent a response with more than {MAX_LITERALS} literals"
                        ));
                    }
                    if n > self.allowance.max_literal {
                        return Err(format!(
                            "the server announced a literal of {n} bytes, more than the {} \
                             allowed",
                            self.allowance.max_literal
                        ));
                    }
                    if n == 0 { Lex::Text } else { Lex::Literal(n) }
                }
                (_, b'\n') => {
                    // The end of a response.
                    self.text = 0;
                    self.literals = 0;
                    Lex::Text
                }
                (_, b'{') => Lex::Brace { n: 0, digits: 0 },
                (Lex::Brace { n, digits }, d @ b'0'..=b'9') => {
                    if digits >= 19 {
                        return Err("the server announced a literal of more than 19 digits".into());
                    }
                    Lex::Brace {
                        n: n * 10 + u64::from(d - b'0'),
                        digits: digits + 1,
                    }
                }
                (Lex::Brace { n, digits }, b'}') if digits > 0 => Lex::Closed(n),
                (Lex::Closed(n), b'\r') => Lex::ClosedCr(n),
                _ => Lex::Text,
            };
        }
        Ok(())
    }
}

/// The other end of a [`Guarded`] stream: sets the allowance of each command.
#[derive(Debug, Clone)]
pub struct GuardHandle(Arc<Mutex<State>>);

impl GuardHandle {
    /// What the server may send from now until the next call (the next command).
    pub fn allow(&self, allowance: Allowance) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        s.allowance = allowance;
        s.left = allowance.bytes;
    }

    /// Why the stream was stopped, if it was.
    pub fn broken(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .broken
            .clone()
    }
}

/// A stream whose incoming bytes are held to a [`GuardHandle`]'s allowance.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    state: Arc<Mutex<State>>,
    /// Running while a read waits, reset by every byte.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Guarded<S> {
    /// `inner`, allowed `first` until the handle says otherwise.
    pub fn new(inner: S, first: Allowance) -> (Self, GuardHandle) {
        let state = Arc::new(Mutex::new(State {
            allowance: first,
            left: first.bytes,
            lex: Lex::Text,
            text: 0,
            literals: 0,
            broken: None,
        }));
        let handle = GuardHandle(Arc::clone(&state));
        (
            Self {
                inner,
                state,
                timer: None,
            },
            handle,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read_timeout = {
            let s = this.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(why) = &s.broken {
                return Poll::Ready(Err(io::Error::other(why.clone())));
            }
            s.allowance.read_timeout
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => {
                let Some(limit) = read_timeout else {
                    this.timer = None;
                    return Poll::Pending;
                };
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    let why = format!("the server sent nothing for {} s", limit.as_secs());
                    let mut s = this.state.lock().unwrap_or_else(PoisonError::into_inner);
                    s.broken = Some(why.clone());
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                }
                Poll::Pending
            }
            Poll::Ready(Ok(())) => {
                this.timer = None;
                let mut s = this.state.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(why) = s.feed(&buf.filled()[before..]) {
                    s.broken = Some(why.clone());
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const SMALL: Allowance = Allowance {
        bytes: 1_000_000,
        max_literal: 100,
        read_timeout: Some(Duration::from_secs(5)),
    };

    fn state(allowance: Allowance) -> State {
        State {
            allowance,
            left: allowance.bytes,
            lex: Lex::Text,
            text: 0,
            literals: 0,
            broken: None,
        }
    }

    #[test]
    fn literals_are_skipped_and_their_size_checked() {
        let mut s = state(SMALL);
        let body = vec![b'x'; 100];
        let mut response = b"* 1 FETCH (UID 5 BODY[] {100}\r\n".to_vec();
        response.extend_from_slice(&body);
        response.extend_from_slice(b")\r\n");
        // In pieces, split anywhere: the same outcome.
        for chunk in response.chunks(7) {
            s.feed(chunk).unwrap();
        }
        assert_eq!((s.lex, s.text, s.literals), (Lex::Text, 0, 0));
        // A literal's bytes are not text: `{` or a line end inside one means nothing.
        let mut s = state(SMALL);
        s.feed(b"* 1 FETCH (BODY[] {13}\r\n{99999}\r\n\n\n\n\n)\r\n")
            .unwrap();
        assert_eq!(s.lex, Lex::Text);
        let mut s = state(SMALL);
        let e = s.feed(b"* 1 FETCH (BODY[] {101}\r\n").unwrap_err();
        assert!(e.contains("literal of 101 bytes"), "{e}");
        let mut s = state(SMALL);
        let e = s
            .feed(b"* 1 FETCH (BODY[] {99999999999999999999}\r\n")
            .unwrap_err();
        assert!(e.contains("19 digits"), "{e}");
        // `{N}` not at a line end is text.
        let mut s = state(SMALL);
        s.feed(b"* OK {500} is text\r\n").unwrap();
    }

    #[test]
    fn endless_lines_too_many_literals_and_too_many_bytes_are_refused() {
        let mut s = state(SMALL);
        let e = s.feed(&vec![b'a'; MAX_RESPONSE_TEXT + 1]).unwrap_err();
        assert!(e.contains("outside literals"), "{e}");
        // Line ends reset the count.
        let mut s = state(SMALL);
        for _ in 0..100 {
            s.feed(&[b'a'; 1000]).unwrap();
            s.feed(b"\r\n").unwrap();
        }
        let mut s = state(SMALL);
        let many = "{1}\r\nx".repeat(MAX_LITERALS + 1);
        let e = s
            .feed(format!("* 1 FETCH ({many})\r\n").as_bytes())
            .unwrap_err();
        assert!(e.contains("literals"), "{e}");
        let mut s = state(Allowance { bytes: 10, ..SMALL });
        s.feed(b"* OK\r\n").unwrap();
        let e = s.feed(b"* OK\r\n").unwrap_err();
        assert!(e.contains("more than 10 bytes"), "{e}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_the_guard_stays_broken() {
        let (client, mut server) = tokio::io::duplex(1024);
        let allowance = Allowance {
            read_timeout: Some(Duration::from_millis(200)),
            ..SMALL
        };
        let (mut g, handle) = Guarded::new(client, allowance);
        server.write_all(b"* OK hi\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = g.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"* OK hi\r\n");
        let started = std::time::Instant::now();
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(handle.broken().is_some());
        server.write_all(b"* OK late\r\n").await.unwrap();
        assert!(g.read(&mut buf).await.is_err(), "broken for good");
        // Without a read time-out (idling), a wait is not cut.
        let (client, mut server) = tokio::io::duplex(1024);
        let (mut g, handle) = Guarded::new(client, allowance);
        handle.allow(Allowance {
            read_timeout: None,
            ..SMALL
        });
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            server.write_all(b"* 3 EXISTS\r\n").await.unwrap();
            server
        });
        let n = g.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"* 3 EXISTS\r\n");
        drop(late.await.unwrap());
    }
}
