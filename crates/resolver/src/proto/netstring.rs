//! Netstrings (`LEN:BYTES,`), the framing of Postfix's socketmap protocol, as a tokio-util codec
//! with an explicit maximum payload length.
//!
//! The decoder is strict, and it fails at the first byte that cannot start a valid netstring of
//! at most [`NetstringCodec::max_len`] bytes. So it never buffers more than the limit plus the
//! length prefix and the comma:
//! - the length must be decimal digits followed by `:`. An empty length, any other byte
//!   ([`NetstringError::NotDigit`]) or a leading zero (`01:x,`, [`NetstringError::LeadingZero`])
//!   is an error. Postfix's encoder (`netstring_put`, `%ld`) never writes leading zeros, and
//!   rejecting them leaves one spelling per length. `0:,` (the empty payload) is valid.
//! - a length over the limit fails as soon as its digits exceed it
//!   ([`NetstringError::TooLong`]), before any payload is read. This is also what stops an
//!   overflowing length.
//! - the payload must be followed by `,` ([`NetstringError::MissingComma`]).
//! - at end of input, a partly received netstring is [`NetstringError::Truncated`].
//!
//! After an error the stream cannot be resynchronised: the caller answers (or not) and closes the
//! connection. The codec must not be used again.

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// A netstring framing error. Every variant except [`NetstringError::Io`] is hostile or broken
/// input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetstringError {
    /// The length prefix holds a byte that is neither a digit nor the `:` after a digit.
    #[error("malformed netstring: byte 0x{byte:02x} in the length prefix")]
    NotDigit {
        /// The offending byte.
        byte: u8,
    },
    /// The length prefix is empty (`:` first).
    #[error("malformed netstring: empty length prefix")]
    EmptyLength,
    /// The length has a leading zero (`01:`), which Postfix never sends.
    #[error("malformed netstring: leading zero in the length prefix")]
    LeadingZero,
    /// The declared length is larger than the limit.
    #[error("netstring longer than the limit of {max} bytes")]
    TooLong {
        /// The limit in force.
        max: usize,
    },
    /// The byte after the payload is not `,`.
    #[error("malformed netstring: byte 0x{found:02x} where the closing ',' belongs")]
    MissingComma {
        /// The byte found instead.
        found: u8,
    },
    /// The input ended inside a netstring.
    #[error("input ended inside a netstring ({buffered} bytes buffered)")]
    Truncated {
        /// How many bytes of the unfinished netstring had arrived.
        buffered: usize,
    },
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Decoder state: reading the length prefix, or waiting for a payload of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length,
    Payload(usize),
}

/// A netstring codec with a maximum payload length: decodes into the payload bytes (without
/// prefix and comma) and encodes payloads given as byte slices.
#[derive(Debug, Clone)]
pub struct NetstringCodec {
    max_len: usize,
    state: State,
}

impl NetstringCodec {
    /// A codec accepting payloads of at most `max_len` bytes in both directions.
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len,
            state: State::Length,
        }
    }

    /// The maximum payload length.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Whether the decoder is between netstrings (nothing of the next one consumed yet).
    pub fn is_idle(&self) -> bool {
        self.state == State::Length
    }

    /// Finds the netstring at the start of `buf` without consuming it or changing the codec's
    /// state: `Ok(Some((payload, used)))` with the payload's byte range in `buf` and the bytes
    /// the whole netstring takes, `Ok(None)` while it is incomplete, and the same errors as
    /// [`Decoder::decode`] as soon as the bytes cannot become a valid netstring. The server uses
    /// this to answer from the bytes where they were read, with no copy.
    pub fn frame(
        &self,
        buf: &[u8],
    ) -> Result<Option<(std::ops::Range<usize>, usize)>, NetstringError> {
        let Some((len, prefix)) = self.length(buf)? else {
            return Ok(None);
        };
        let end = prefix + len;
        match buf.get(end) {
            None => Ok(None),
            Some(b',') => Ok(Some((prefix..end, end + 1))),
            Some(&found) => Err(NetstringError::MissingComma { found }),
        }
    }

    /// Parses the length prefix at the start of `buf`: `Ok(Some((len, prefix bytes incl. ':')))`,
    /// `Ok(None)` while it is incomplete, an error as soon as it cannot become valid.
    fn length(&self, buf: &[u8]) -> Result<Option<(usize, usize)>, NetstringError> {
        let mut len: usize = 0;
        for (i, &b) in buf.iter().enumerate() {
            match b {
                b':' if i == 0 => return Err(NetstringError::EmptyLength),
                b':' => return Ok(Some((len, i + 1))),
                b'0'..=b'9' => {
                    if i == 1 && buf[0] == b'0' {
                        return Err(NetstringError::LeadingZero);
                    }
                    // `len <= max_len` here, so the product only overflows for absurd limits;
                    // checked arithmetic turns that into the same error.
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(b - b'0')))
                        .filter(|&l| l <= self.max_len)
                        .ok_or(NetstringError::TooLong { max: self.max_len })?;
                }
                byte => return Err(NetstringError::NotDigit { byte }),
            }
        }
        Ok(None)
    }
}

impl Decoder for NetstringCodec {
    type Item = BytesMut;
    type Error = NetstringError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, NetstringError> {
        if self.state == State::Length {
            let Some((len, prefix)) = self.length(buf)? else {
                return Ok(None);
            };
            buf.advance(prefix);
            self.state = State::Payload(len);
        }
        let State::Payload(len) = self.state else {
            unreachable!("the length state always moves on to the payload state above")
        };
        if buf.len() <= len {
            // The reader reserves space as bytes arrive; reserving `len` here would let a
            // declared length allocate before its bytes exist.
            return Ok(None);
        }
        if buf[len] != b',' {
            return Err(NetstringError::MissingComma { found: buf[len] });
        }
        let payload = buf.split_to(len);
        buf.advance(1);
        self.state = State::Length;
        Ok(Some(payload))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, NetstringError> {
        match self.decode(buf)? {
            Some(payload) => Ok(Some(payload)),
            None if buf.is_empty() && self.state == State::Length => Ok(None),
            None => Err(NetstringError::Truncated {
                buffered: buf.len(),
            }),
        }
    }
}

impl Encoder<&[u8]> for NetstringCodec {
    type Error = NetstringError;

    fn encode(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), NetstringError> {
        if payload.len() > self.max_len {
            return Err(NetstringError::TooLong { max: self.max_len });
        }
        put(payload, dst);
        Ok(())
    }
}

/// Appends `payload` as one netstring to `dst`, whatever its length (the limit is the caller's).
pub fn put(payload: &[u8], dst: &mut BytesMut) {
    let mut digits = [0u8; 20];
    let len = decimal(payload.len(), &mut digits);
    dst.reserve(len.len() + payload.len() + 2);
    dst.put_slice(len);
    dst.put_u8(b':');
    dst.put_slice(payload);
    dst.put_u8(b',');
}

/// Appends the netstring whose payload is the concatenation of `parts` to `dst`, with no
/// intermediate copy (the server's reply path).
pub fn put_parts(parts: &[&[u8]], dst: &mut impl BufMut) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut digits = [0u8; 20];
    dst.put_slice(decimal(total, &mut digits));
    dst.put_u8(b':');
    for part in parts {
        dst.put_slice(part);
    }
    dst.put_u8(b',');
}

/// `n` in decimal ASCII, written into the end of `buf` (20 digits hold any `usize`).
fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // `n % 10` is below 10.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        codec: &mut NetstringCodec,
        input: &[u8],
    ) -> Result<Vec<Vec<u8>>, NetstringError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(p) = codec.decode_eof(&mut buf)? {
            out.push(p.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn decodes_the_postfix_example() {
        let mut c = NetstringCodec::new(100);
        let got = decode_all(&mut c, b"19:postfix example.com,0:,").expect("valid");
        assert_eq!(got, vec![b"postfix example.com".to_vec(), Vec::new()]);
    }

    #[test]
    fn over_limit_length_fails_before_the_payload_arrives() {
        let mut c = NetstringCodec::new(10_000);
        let mut buf = BytesMut::from(&b"10001"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(NetstringError::TooLong { max: 10_000 })
        ));
        let mut c = NetstringCodec::new(10_000);
        let mut buf = BytesMut::from(&b"10000"[..]);
        assert!(matches!(c.decode(&mut buf), Ok(None)));
    }

    #[test]
    fn frame_finds_what_decode_finds_without_consuming() {
        let c = NetstringCodec::new(100);
        let input = b"19:postfix example.com,0:,";
        let (range, used) = c.frame(input).expect("valid").expect("complete");
        assert_eq!(&input[range], b"postfix example.com");
        assert_eq!(used, 23);
        assert_eq!(c.frame(&input[used..]).expect("valid"), Some((2..2, 3)));
        for cut in 0..used {
            assert_eq!(c.frame(&input[..cut]).expect("prefix of a valid one"), None);
        }
        assert!(matches!(
            c.frame(b"3:abc;"),
            Err(NetstringError::MissingComma { found: b';' })
        ));
        assert!(matches!(
            c.frame(b"101"),
            Err(NetstringError::TooLong { max: 100 })
        ));
        assert!(matches!(c.frame(b"01:"), Err(NetstringError::LeadingZero)));
        assert!(matches!(c.frame(b":"), Err(NetstringError::EmptyLength)));
    }

    #[test]
    fn put_writes_the_length_in_decimal() {
        for n in [0usize, 1, 9, 10, 99, 100, 12_345] {
            let payload = vec![b'x'; n];
            let mut a = BytesMut::new();
            put(&payload, &mut a);
            let mut b = Vec::new();
            put_parts(&[&payload[..n / 2], &payload[n / 2..]], &mut b);
            let expected = [format!("{n}:").as_bytes(), &payload, b","].concat();
            assert_eq!(&a[..], &expected[..]);
            assert_eq!(b, expected);
        }
    }

    #[test]
    fn huge_length_is_too_long_not_an_overflow() {
        let mut c = NetstringCodec::new(usize::MAX);
        let mut buf = BytesMut::from(&b"99999999999999999999999999999:"[..]);
        assert!(matches!(
            c.decode(&mut buf),
            Err(NetstringError::TooLong { .. })
        ));
    }
}
