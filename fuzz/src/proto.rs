//! Postfix protocol decoders (`mtasts-resolver`): the netstring codec and the tcp_table line
//! codec never panic, never hold more than their limit allows without answering, decode the same
//! frames whether the bytes arrive at once or one by one, and every frame re-encodes to the very
//! bytes it came from (the decoders are strict, so there is one spelling per frame).
//!
//! The first input byte chooses the limit (0–255, so over-long frames are common); the rest is
//! the stream.

use bytes::BytesMut;
use mtasts_resolver::Reply;
use mtasts_resolver::proto::netstring::{self, NetstringCodec};
use mtasts_resolver::proto::{socketmap, tcp_table};
use tokio_util::codec::Decoder;

/// Decodes `stream` with `codec`, either at once or one byte at a time: the frames, and whether
/// it ended in an error.
fn frames<D: Decoder<Item = BytesMut>>(
    mut codec: D,
    stream: &[u8],
    bytewise: bool,
    bound: usize,
) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let chunks: Vec<&[u8]> = if bytewise {
        stream.chunks(1).collect()
    } else {
        vec![stream]
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(frame.to_vec()),
                Ok(None) => {
                    assert!(
                        buf.len() <= bound,
                        "{} bytes buffered without an answer (bound {bound})",
                        buf.len()
                    );
                    break;
                }
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

/// The netstring target: see the module docs. Payloads also go through the socketmap request
/// parser and reply renderer.
pub fn check_netstring(data: &[u8]) {
    let Some((&max, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    // A pending netstring holds at most the digits of `max`, the ':' and `max` payload bytes.
    let bound = max + max.to_string().len() + 1;
    let (whole, failed) = frames(NetstringCodec::new(max), stream, false, bound);
    let bytewise = frames(NetstringCodec::new(max), stream, true, bound);
    assert_eq!(
        (&whole, failed),
        (&bytewise.0, bytewise.1),
        "chunking changed the result"
    );
    let mut again = BytesMut::new();
    for payload in &whole {
        assert!(payload.len() <= max);
        netstring::put(payload, &mut again);
        if let socketmap::ParsedRequest::Lookup { name, key } = socketmap::parse_request(payload) {
            assert!(!name.is_empty() && !name.contains(' ') && !key.is_empty());
        }
        let text = String::from_utf8_lossy(payload).into_owned();
        let rendered = socketmap::render_reply(&Reply::Temp(text.clone()), max);
        assert!(rendered.len() <= max);
        if rendered.len() == "TEMP ".len() + text.len() {
            assert_eq!(socketmap::parse_reply(&rendered), Ok(Reply::Temp(text)));
        }
    }
    assert!(
        stream.starts_with(&again),
        "a frame did not re-encode to its bytes"
    );
}

/// The tcp_table target: see the module docs. Lines also go through the request parser, and
/// `%XX` coding must round-trip.
pub fn check_tcp_table(data: &[u8]) {
    let Some((&max, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(max);
    let bound = max.saturating_sub(1);
    let (whole, failed) = frames(tcp_table::LineCodec::new(max), stream, false, bound);
    let bytewise = frames(tcp_table::LineCodec::new(max), stream, true, bound);
    assert_eq!(
        (&whole, failed),
        (&bytewise.0, bytewise.1),
        "chunking changed the result"
    );
    for line in &whole {
        assert!(
            line.len() < max,
            "a line of {} bytes passed the limit {max}",
            line.len()
        );
        if let tcp_table::ParsedLine::Lookup(key) = tcp_table::parse_request(line) {
            let mut request = Vec::new();
            tcp_table::encode_request(&key, &mut request);
            let reparsed = tcp_table::parse_request(&request[..request.len() - 1]);
            assert_eq!(reparsed, tcp_table::ParsedLine::Lookup(key.clone()));
            let reply = tcp_table::render_reply(&Reply::Ok(key.clone()), 4096);
            assert!(reply.len() <= 4096 && reply.ends_with(b"\n"));
            if reply.starts_with(b"200 ") {
                let back = tcp_table::parse_reply(&reply[..reply.len() - 1]);
                assert_eq!(back, Ok(Reply::Ok(key)));
            }
        }
        if let Ok(decoded) = tcp_table::percent_decode(line) {
            let mut encoded = Vec::new();
            tcp_table::percent_encode(&decoded, &mut encoded);
            assert!(encoded.iter().all(|b| b.is_ascii_graphic()));
            assert_eq!(tcp_table::percent_decode(&encoded).as_ref(), Ok(&decoded));
        }
        let text = String::from_utf8_lossy(line).into_owned();
        let reply = tcp_table::render_reply(&Reply::Temp(text), max.max(5));
        assert!(reply.len() <= max.max(5) && reply.starts_with(b"400 "));
    }
}
