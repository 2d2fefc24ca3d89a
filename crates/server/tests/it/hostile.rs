//! Hostile clients: every one is cut off within its limit, and a well-behaved sender is still
//! served (checked with our own policy fetch) while and after it misbehaves.

use crate::support::{
    Running, connect_from, h1, h2, read_until_closed, request, send1, send2, test_config,
};
use mtasts_server::Config;
use mtasts_server::http::POLICY_PATH;
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, split};
use tokio::net::TcpStream;

const HOST: &str = "mta-sts.example.test";

async fn start(tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = test_config();
    tweak(&mut config);
    Running::start_with(&["example.test"], config).await
}

async fn assert_serves(server: &Running) {
    let f = server.fetch("example.test").await;
    assert!(
        f.is_ok(),
        "a well-behaved sender is not served: {:?}",
        f.failure
    );
}

/// Waits for the server to close `io`, which must happen between `min` and `max`.
async fn closed_within<T: tokio::io::AsyncRead + Unpin>(
    io: &mut T,
    min: Duration,
    max: Duration,
) -> Vec<u8> {
    let (took, seen) = read_until_closed(io, max)
        .await
        .unwrap_or_else(|| panic!("still open after {max:?}"));
    assert!(took >= min, "closed after {took:?}, before {min:?}");
    seen
}

#[tokio::test]
async fn slowloris_request_head_is_cut_at_the_request_timeout() {
    let server = start(|c| {
        c.limits.request_timeout = Duration::from_secs(1);
        c.limits.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let tls = server.tls(HOST, &[b"http/1.1"]).await.unwrap();
    let (mut rd, mut wr) = split(tls);
    let trickle = tokio::spawn(async move {
        let _ = wr
            .write_all(b"GET / HTTP/1.1\r\nHost: mta-sts.example.test\r\n")
            .await;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if wr.write_all(b"X").await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    assert_serves(&server).await;
    closed_within(&mut rd, Duration::from_millis(900), Duration::from_secs(4)).await;
    trickle.abort();
}

#[tokio::test]
async fn http2_request_head_that_never_ends_is_cut_at_the_idle_timeout() {
    let server = start(|c| c.limits.idle_timeout = Duration::from_secs(1)).await;
    let mut tls = server.tls(HOST, &[b"h2"]).await.unwrap();
    let mut out = h2_preface();
    // HEADERS without END_HEADERS: a CONTINUATION is owed and never comes.
    out.extend(frame(0x1, 0x1, 1, &request_block()));
    tls.write_all(&out).await.unwrap();
    assert_serves(&server).await;
    closed_within(&mut tls, Duration::from_millis(900), Duration::from_secs(4)).await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let server = start(|c| c.limits.idle_timeout = Duration::from_secs(1)).await;
    let mut tls = server.tls(HOST, &[b"http/1.1"]).await.unwrap();
    let get = format!("GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    tls.write_all(get.as_bytes()).await.unwrap();
    // The answer comes, then the connection stays open (keep-alive) until idle for a second.
    let seen = closed_within(&mut tls, Duration::from_millis(900), Duration::from_secs(4)).await;
    assert!(
        seen.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
}

#[tokio::test]
async fn silent_client_is_cut_at_the_handshake_timeout() {
    let server = start(|c| c.limits.handshake_timeout = Duration::from_secs(1)).await;
    let mut tcp = TcpStream::connect(server.https).await.unwrap();
    // Half a ClientHello record, then silence.
    tcp.write_all(&[22, 3, 1, 0, 200, 1, 0]).await.unwrap();
    assert_serves(&server).await;
    closed_within(&mut tcp, Duration::from_millis(900), Duration::from_secs(4)).await;
}

#[tokio::test]
async fn one_megabyte_header_is_refused_with_431_without_reading_it_all() {
    let server = start(|_| {}).await;
    let tls = server.tls(HOST, &[b"http/1.1"]).await.unwrap();
    let (mut rd, mut wr) = split(tls);
    let writer = tokio::spawn(async move {
        let mut head =
            format!("GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\nX-Big: ").into_bytes();
        head.extend(std::iter::repeat_n(b'a', 1 << 20));
        head.extend_from_slice(b"\r\n\r\n");
        let _ = wr.write_all(&head).await;
    });
    let seen = closed_within(&mut rd, Duration::ZERO, Duration::from_secs(5)).await;
    assert!(
        seen.starts_with(b"HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    writer.abort();
    assert_serves(&server).await;
}

#[tokio::test]
async fn too_many_header_fields_are_refused_with_431() {
    let server = start(|c| c.limits.max_headers = 16).await;
    // HTTP/1.1: hyper's parser refuses past the limit.
    let tls = server.tls(HOST, &[b"http/1.1"]).await.unwrap();
    let mut s = h1(tls).await;
    let mut req = request("GET", POLICY_PATH, Some(HOST));
    for i in 0..20 {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_static("v"),
        );
    }
    assert_eq!(send1(&mut s, req).await.status(), 431);
    // HTTP/2: the handler counts.
    let tls = server.tls(HOST, &[b"h2"]).await.unwrap();
    let mut s = h2(tls).await;
    let uri = format!("https://{HOST}{POLICY_PATH}");
    let mut req = request("GET", &uri, None);
    for i in 0..20 {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            hyper::header::HeaderValue::from_static("v"),
        );
    }
    assert_eq!(send2(&mut s, req).await.status(), 431);
    assert_eq!(
        send2(&mut s, request("GET", &uri, None)).await.status(),
        200
    );
}

#[tokio::test]
async fn one_client_address_cannot_hold_more_than_its_share() {
    let server = start(|c| c.limits.max_connections_per_ip = 4).await;
    let hog = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(hog, server.https).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = connect_from(hog, server.https).await.unwrap();
    closed_within(&mut fifth, Duration::ZERO, Duration::from_secs(2)).await;
    // The four held are still open, and another address is served.
    for c in &mut held {
        assert!(
            read_until_closed(c, Duration::from_millis(50))
                .await
                .is_none()
        );
    }
    assert_serves(&server).await;
}

#[tokio::test]
async fn at_the_total_limit_a_new_client_evicts_the_quietest_connection() {
    let server = start(|c| {
        c.limits.max_connections = 6;
        c.limits.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let idler = Ipv4Addr::new(127, 0, 0, 3);
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(connect_from(idler, server.https).await.unwrap());
    }
    // All six are fresh (not quiet yet): a seventh is shed at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut seventh = connect_from(Ipv4Addr::new(127, 0, 0, 4), server.https)
        .await
        .unwrap();
    closed_within(&mut seventh, Duration::ZERO, Duration::from_secs(2)).await;
    // Once they have been quiet for a second, a new client takes the place of the oldest.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_serves(&server).await;
    closed_within(&mut held[0], Duration::ZERO, Duration::from_secs(2)).await;
    assert!(
        read_until_closed(&mut held[5], Duration::from_millis(50))
            .await
            .is_none()
    );
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_cost_little_and_starve_no_one() {
    // 2,000 here (each end is a descriptor in this process); bench/serve/idle.py holds 10,000.
    const N: usize = 2_000;
    let server = start(|c| c.limits.idle_timeout = Duration::from_secs(60)).await;
    assert_serves(&server).await;
    let before = rss_kib();
    let started = std::time::Instant::now();
    let mut held = Vec::with_capacity(N);
    for i in 0..N {
        // 200 per address: within the per-client limit.
        let from = Ipv4Addr::new(127, 0, 1, u8::try_from(i / 200).unwrap() + 1);
        let mut c = connect_from(from, server.https).await.unwrap();
        // Half of them start a handshake and stall, half never say a word.
        if i % 2 == 0 {
            c.write_all(&[22, 3, 1, 0, 200, 1, 0]).await.unwrap();
        }
        held.push(c);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetch_started = std::time::Instant::now();
    assert_serves(&server).await;
    let fetch = fetch_started.elapsed();
    let per_conn = (rss_kib().saturating_sub(before)) * 1024 / N as u64;
    eprintln!("{N} idle connections: {per_conn} bytes resident each (both ends), fetch {fetch:?}");
    assert!(per_conn < 32 * 1024, "{per_conn} bytes per idle connection");
    assert!(fetch < Duration::from_secs(2), "{fetch:?}");
    // All still open: nothing was shed below the limits.
    for c in held.iter_mut().step_by(97) {
        assert!(
            read_until_closed(c, Duration::from_millis(10))
                .await
                .is_none()
        );
    }
}

/// A client that has sent nothing yet holds no TLS state: rustls reserves a 4 KiB read buffer
/// and the handshake its own state at the first read, and tokio's `readable()` reported fresh
/// sockets ready before any byte came (10 KiB per silent connection in release, 3 KiB since).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_hold_no_tls_state() {
    const N: usize = 2_000;
    let server = start(|c| c.limits.idle_timeout = Duration::from_secs(60)).await;
    assert_serves(&server).await;
    let before = rss_kib();
    let mut held = Vec::with_capacity(N);
    for i in 0..N {
        let from = Ipv4Addr::new(127, 0, 3, u8::try_from(i / 200).unwrap() + 1);
        held.push(connect_from(from, server.https).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_conn = (rss_kib().saturating_sub(before)) * 1024 / N as u64;
    eprintln!("{N} silent connections: {per_conn} bytes resident each (both ends)");
    assert!(
        per_conn < 6 * 1024,
        "{per_conn} bytes per silent connection"
    );
    assert_serves(&server).await;
}

#[tokio::test]
async fn garbage_tls_records_are_refused_quickly() {
    let server = start(|_| {}).await;
    let mut junk: Vec<Vec<u8>> = vec![
        // Plain HTTP on the TLS port.
        b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n".to_vec(),
        // A handshake record claiming 64 KiB, past the TLS maximum.
        [&[22u8, 3, 1, 0xff, 0xff][..], &[1; 1024]].concat(),
        // An alert before anything.
        vec![21, 3, 3, 0, 2, 2, 40],
        // Application data before a handshake.
        [&[23u8, 3, 3, 0, 32][..], &[0; 32]].concat(),
        // A ClientHello record with a garbage body.
        [&[22u8, 3, 1, 0, 64][..], &[0xee; 64]].concat(),
    ];
    // Pseudo-random bytes (xorshift), 64 KiB.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    junk.push(
        (0..65_536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect(),
    );
    for bytes in &junk {
        let mut tcp = TcpStream::connect(server.https).await.unwrap();
        let _ = tcp.write_all(bytes).await;
        let seen = closed_within(&mut tcp, Duration::ZERO, Duration::from_secs(2)).await;
        // At most one alert record comes back; never a ServerHello.
        assert!(
            seen.is_empty() || (seen[0] == 21 && seen.len() == 7),
            "{seen:?}"
        );
    }
    assert_serves(&server).await;
}

/// An HTTP/2 frame.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The client preface and an empty SETTINGS frame.
fn h2_preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out
}

/// `GET https://mta-sts.example.test/.well-known/mta-sts.txt` in HPACK, without Huffman or
/// indexing: static-table indices 2 (`:method GET`) and 7 (`:scheme https`), literal values for
/// `:path` (name index 4) and `:authority` (name index 1).
fn request_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x87];
    for (index, value) in [(0x04u8, POLICY_PATH), (0x01, HOST)] {
        b.push(index);
        b.push(u8::try_from(value.len()).unwrap());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// The frames in `bytes` as (type, stream, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        if rest.len() < 9 + len {
            break;
        }
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
        out.push((rest[3], stream, rest[9..9 + len].to_vec()));
        rest = &rest[9 + len..];
    }
    out
}

#[tokio::test]
async fn http2_settings_announce_the_stream_limit() {
    let server = start(|c| c.limits.h2_max_concurrent_streams = 7).await;
    let mut tls = server.tls(HOST, &[b"h2"]).await.unwrap();
    tls.write_all(&h2_preface()).await.unwrap();
    tls.write_all(&frame(0x7, 0, 0, &[0; 8])).await.unwrap(); // GOAWAY: we are done
    let (_, seen) = read_until_closed(&mut tls, Duration::from_secs(3))
        .await
        .unwrap();
    let settings = frames(&seen).into_iter().find(|f| f.0 == 0x4).unwrap().2;
    let max_streams = settings
        .chunks(6)
        .find(|s| s[..2] == [0, 3])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(max_streams, Some(7));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_gets_goaway_in_bounded_time() {
    const PAIRS: u32 = 5_000;
    let server = start(|_| {}).await;
    let tls = server.tls(HOST, &[b"h2"]).await.unwrap();
    let block = request_block();
    let mut out = h2_preface();
    for i in 0..PAIRS {
        let stream = 2 * i + 1;
        out.extend(frame(0x1, 0x5, stream, &block)); // HEADERS, END_STREAM | END_HEADERS
        out.extend(frame(0x3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let started = std::time::Instant::now();
    let (mut rd, mut wr) = split(tls);
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&out).await;
        let _ = wr.flush().await;
        wr
    });
    let (took, seen) = read_until_closed(&mut rd, Duration::from_secs(10))
        .await
        .expect("the connection outlived the attack");
    writer.abort();
    let got = frames(&seen);
    let goaway = got.iter().find(|f| f.0 == 0x7).expect("no GOAWAY");
    let code = u32::from_be_bytes([goaway.2[4], goaway.2[5], goaway.2[6], goaway.2[7]]);
    assert_eq!(code, 0xb, "GOAWAY code {code:#x}, not ENHANCE_YOUR_CALM");
    let answered = got.iter().filter(|f| f.0 == 0x1).count();
    eprintln!("rapid reset: {answered} of {PAIRS} streams answered, GOAWAY after {took:?}");
    assert!(answered < PAIRS as usize / 2, "{answered} streams answered");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_serves(&server).await;
}

/// Sends `streams` on a fresh HTTP/2 connection, each made by `make(stream_id)`, and returns
/// the GOAWAY code the server sent within `wait`, if any.
async fn h2_goaway_code(
    server: &Running,
    streams: u32,
    make: impl Fn(u32) -> Vec<u8>,
    wait: Duration,
) -> Option<u32> {
    let mut tls = server.tls(HOST, &[b"h2"]).await.unwrap();
    let mut out = h2_preface();
    for i in 0..streams {
        out.extend(make(2 * i + 1));
    }
    tls.write_all(&out).await.unwrap();
    let (_, seen) = read_until_closed(&mut tls, wait).await?;
    frames(&seen)
        .iter()
        .find(|f| f.0 == 0x7)
        .map(|g| u32::from_be_bytes([g.2[4], g.2[5], g.2[6], g.2[7]]))
}

#[tokio::test]
async fn http2_reset_limit_is_the_configured_one() {
    let pair = |stream: u32| {
        let mut f = frame(0x1, 0x5, stream, &request_block());
        f.extend(frame(0x3, 0, stream, &8u32.to_be_bytes()));
        f
    };
    // 200 resets are fine under a limit of 1,000; the connection stays open.
    let lenient = start(|c| c.limits.h2_max_pending_accept_reset_streams = 1_000).await;
    let code = h2_goaway_code(&lenient, 200, pair, Duration::from_millis(500)).await;
    assert_eq!(code, None);
    // The same 200 under the default (20) end the connection.
    let strict = start(|_| {}).await;
    let code = h2_goaway_code(&strict, 200, pair, Duration::from_secs(3)).await;
    assert_eq!(code, Some(0xb));
}

#[tokio::test]
async fn http2_streams_that_keep_erring_end_the_connection() {
    let server = start(|c| c.limits.h2_max_local_error_reset_streams = 10).await;
    // A connection-specific header field makes a request malformed (RFC 9113 §8.2.2): the
    // server resets each such stream, and past the limit gives up on the connection.
    let bad = |stream: u32| {
        let mut block = request_block();
        block.extend_from_slice(b"\x00\x0aconnection\x05close");
        frame(0x1, 0x5, stream, &block)
    };
    let code = h2_goaway_code(&server, 50, bad, Duration::from_secs(3)).await;
    assert_eq!(code, Some(0xb));
    assert_serves(&server).await;
}

/// hyper's head timer starts when the connection starts waiting for a head, so on HTTP/1.1 the
/// wait for the next keep-alive request counts toward the request timeout.
#[tokio::test]
async fn http1_keep_alive_wait_counts_toward_the_request_timeout() {
    let server = start(|c| {
        c.limits.request_timeout = Duration::from_secs(1);
        c.limits.idle_timeout = Duration::from_secs(30);
    })
    .await;
    let mut tls = server.tls(HOST, &[b"http/1.1"]).await.unwrap();
    let get = format!("GET {POLICY_PATH} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    tls.write_all(get.as_bytes()).await.unwrap();
    let seen = closed_within(&mut tls, Duration::from_millis(900), Duration::from_secs(4)).await;
    assert!(seen.starts_with(b"HTTP/1.1 200 OK\r\n"));
}
