//! The netstring codec: round trips under any chunking, and hostile input fails at once.

use bytes::BytesMut;
use mtasts_resolver::proto::netstring::{self, NetstringCodec, NetstringError};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

/// Decodes `chunks` fed one after another; the frames, or the first error.
fn decode_chunks(max: usize, chunks: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, NetstringError> {
    let mut codec = NetstringCodec::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(p) = codec.decode(&mut buf)? {
            out.push(p.to_vec());
        }
    }
    if let Some(p) = codec.decode_eof(&mut buf)? {
        out.push(p.to_vec());
    }
    Ok(out)
}

/// Splits `bytes` at the given cut points.
fn split(bytes: &[u8], mut cuts: Vec<usize>) -> Vec<Vec<u8>> {
    cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([bytes.len()]) {
        out.push(bytes[from..cut].to_vec());
        from = cut;
    }
    out
}

proptest! {
    #[test]
    fn round_trip_under_any_chunking(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut codec = NetstringCodec::new(300);
        let mut wire = BytesMut::new();
        for p in &payloads {
            codec.encode(p.as_slice(), &mut wire).expect("within the limit");
        }
        let got = decode_chunks(300, &split(&wire, cuts)).expect("valid netstrings");
        prop_assert_eq!(got, payloads);
    }

    /// Any bytes: no panic; while no answer is possible, at most the limit plus the prefix is
    /// buffered; decoded frames re-encode to the input's own bytes.
    #[test]
    fn arbitrary_bytes_are_bounded_and_canonical(
        max in 0usize..64,
        input in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut codec = NetstringCodec::new(max);
        let mut buf = BytesMut::from(input.as_slice());
        let mut again = BytesMut::new();
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => netstring::put(&p, &mut again),
                Ok(None) => {
                    prop_assert!(buf.len() <= max + max.to_string().len() + 1);
                    break;
                }
                Err(_) => break,
            }
        }
        prop_assert!(input.starts_with(&again));
    }
}

#[test]
fn hostile_inputs_fail_with_a_typed_error_at_once() {
    type Expect = fn(&NetstringError) -> bool;
    let cases: [(&[u8], Expect); 7] = [
        (b"x", |e| {
            matches!(e, NetstringError::NotDigit { byte: b'x' })
        }),
        (b"12a", |e| {
            matches!(e, NetstringError::NotDigit { byte: b'a' })
        }),
        (b":", |e| matches!(e, NetstringError::EmptyLength)),
        (b"00", |e| matches!(e, NetstringError::LeadingZero)),
        (b"101", |e| {
            matches!(e, NetstringError::TooLong { max: 100 })
        }),
        (b"18446744073709551616", |e| {
            matches!(e, NetstringError::TooLong { .. })
        }),
        (b"3:abc:", |e| {
            matches!(e, NetstringError::MissingComma { found: b':' })
        }),
    ];
    for (input, expected) in cases {
        let err = decode_chunks(100, &[input.to_vec()]).expect_err("hostile");
        assert!(expected(&err), "{input:?} -> {err:?}");
        // The error message is readable text, not a panic or a debug dump.
        assert!(!err.to_string().is_empty());
    }
    // Truncated at end of input, inside the prefix or the payload.
    for input in [&b"3"[..], b"3:", b"3:ab", b"3:abc"] {
        let err = decode_chunks(100, &[input.to_vec()]).expect_err("truncated");
        assert!(
            matches!(err, NetstringError::Truncated { .. }),
            "{input:?} -> {err:?}"
        );
    }
    // The encoder refuses what the decoder would refuse.
    let mut codec = NetstringCodec::new(2);
    assert!(matches!(
        codec.encode(&b"abc"[..], &mut BytesMut::new()),
        Err(NetstringError::TooLong { max: 2 })
    ));
}
