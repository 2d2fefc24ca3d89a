//! The socketmap server on real sockets.

use crate::support::{EXAMPLE_POLICY, MapHandler, PATIENCE, Proto, Server, connect, ns};
use mtasts_resolver::Reply;
use mtasts_resolver::proto::{Limits, ListenAddr};
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn example(limits: Limits) -> Server {
    Server::start(Proto::Socketmap, MapHandler::example(), limits).await
}

/// Postfix's example (docs/requirements.md §4.1):
/// `19:postfix example.com,` -> `64:OK secure match=... servername=hostname,`.
#[tokio::test]
async fn postfix_example_exchange_byte_for_byte() {
    let server = example(Limits::socketmap()).await;
    let mut c = server.connect().await;
    c.exchange(
        b"19:postfix example.com,",
        b"64:OK secure match=mx1.example.com:.example.net servername=hostname,",
    )
    .await;
    // NOTFOUND with the trailing space both existing plugins send.
    c.exchange(b"20:postfix nope.example,", b"9:NOTFOUND ,")
        .await;
    assert_eq!(
        server.handler.seen(),
        [("postfix", "example.com"), ("postfix", "nope.example")]
            .map(|(n, k)| (n.to_owned(), k.to_owned()))
    );
    server.stop().await;
}

#[tokio::test]
async fn every_reply_status_on_the_wire() {
    let handler = MapHandler::new(&[
        ("t.example", Reply::Temp("dns down".into())),
        ("o.example", Reply::Timeout("slow".into())),
        ("p.example", Reply::Perm("broken".into())),
        ("e.example", Reply::Ok(String::new())),
    ]);
    let server = Server::start(Proto::Socketmap, handler, Limits::socketmap()).await;
    let mut c = server.connect().await;
    c.exchange(&ns(b"m t.example"), &ns(b"TEMP dns down")).await;
    c.exchange(&ns(b"m o.example"), &ns(b"TIMEOUT slow")).await;
    c.exchange(&ns(b"m p.example"), &ns(b"PERM broken")).await;
    c.exchange(
        &ns(b"m e.example"),
        &ns(b"TEMP the policy engine returned an empty policy"),
    )
    .await;
    server.stop().await;
}

/// Several requests in one write (and a request split over many writes) are answered in order.
#[tokio::test]
async fn pipelined_and_dribbled_requests() {
    let server = example(Limits::socketmap()).await;
    let mut c = server.connect().await;
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for key in ["example.com", ".com", "[mx.example.com]:587", "example.com"] {
        batch.extend(ns(format!("postfix {key}").as_bytes()));
        expected.extend(if key == "example.com" {
            ns(format!("OK {EXAMPLE_POLICY}").as_bytes())
        } else {
            ns(b"NOTFOUND ")
        });
    }
    c.exchange(&batch, &expected).await;
    for &b in b"19:postfix example.com," {
        c.send(&[b]).await;
        tokio::task::yield_now().await;
    }
    let reply = c.read_netstring(1000).await;
    assert_eq!(reply, format!("OK {EXAMPLE_POLICY}").as_bytes());
    server.stop().await;
}

/// A request without a space is answered PERM; the framing is intact, so the connection stays.
#[tokio::test]
async fn malformed_request_is_perm_and_connection_stays_usable() {
    let server = example(Limits::socketmap()).await;
    let mut c = server.connect().await;
    c.exchange(
        &ns(b"postfix"),
        &ns(b"PERM malformed request: expected NAME SP KEY"),
    )
    .await;
    // A key that is not UTF-8 is not found, without asking the handler.
    c.exchange(&ns(b"postfix \xff\xfe.example"), &ns(b"NOTFOUND "))
        .await;
    // A UTF-8 key reaches the handler as it is (smr#90).
    c.exchange(&ns("postfix bücher.example".as_bytes()), &ns(b"NOTFOUND "))
        .await;
    c.exchange(
        b"19:postfix example.com,",
        &ns(format!("OK {EXAMPLE_POLICY}").as_bytes()),
    )
    .await;
    let keys: Vec<String> = server.handler.seen().into_iter().map(|(_, k)| k).collect();
    assert_eq!(keys, ["bücher.example", "example.com"]);
    server.stop().await;
}

/// The query limit: exactly 10,000 bytes are answered; 10,001 get PERM and the connection
/// closes before the payload is read.
#[tokio::test]
async fn query_limit() {
    let server = example(Limits::socketmap()).await;
    let mut c = server.connect().await;
    let key = "k".repeat(10_000 - "postfix ".len());
    c.exchange(&ns(format!("postfix {key}").as_bytes()), &ns(b"NOTFOUND "))
        .await;
    c.send(b"10001:").await;
    let rest = c.read_to_close(PATIENCE).await;
    assert_eq!(
        rest,
        ns(b"PERM query longer than 10000 bytes; closing the connection")
    );
    assert_eq!(server.handler.calls(), 1);
    // A client that sends the whole over-long query (as an old Postfix would) still reads the
    // reply: the server discards the rest of the input before it closes.
    let mut c = server.connect().await;
    let mut query = ns(format!("postfix {key}kk").as_bytes());
    query.extend(ns(b"postfix example.com"));
    c.send(&query).await;
    let rest = c.read_to_close(PATIENCE).await;
    assert_eq!(
        rest,
        ns(b"PERM query longer than 10000 bytes; closing the connection")
    );
    assert_eq!(server.handler.calls(), 1);
    server.stop().await;
}

/// The reply limit: a reply of exactly 100,000 bytes goes out whole; one byte more becomes TEMP.
#[tokio::test]
async fn reply_limit() {
    let fits = "x".repeat(100_000 - "OK ".len());
    let over = "x".repeat(100_000 - "OK ".len() + 1);
    let handler = MapHandler::new(&[
        ("fits.example", Reply::Ok(fits.clone())),
        ("over.example", Reply::Ok(over)),
    ]);
    let server = Server::start(Proto::Socketmap, handler, Limits::socketmap()).await;
    let mut c = server.connect().await;
    let reply = {
        c.send(&ns(b"postfix fits.example")).await;
        c.read_netstring(100_000).await
    };
    assert_eq!(reply, format!("OK {fits}").as_bytes());
    c.exchange(
        &ns(b"postfix over.example"),
        &ns(b"TEMP reply too long (100001 bytes, limit 100000)"),
    )
    .await;
    server.stop().await;
}

/// Hostile framing: PERM with the reason, then the connection closes; the server goes on.
#[tokio::test]
async fn hostile_bytes_get_perm_and_close() {
    let server = example(Limits::socketmap()).await;
    let cases: [(&[u8], &str); 6] = [
        (b"x:", "byte 0x78 in the length prefix"),
        (b"-1:", "byte 0x2d in the length prefix"),
        (b"01:a,", "leading zero"),
        (b":,", "empty length prefix"),
        (b"3:abc;", "byte 0x3b where the closing ','"),
        (b"99999999999999999999999999:", "longer than 10000 bytes"),
    ];
    for (input, reason) in cases {
        let mut c = server.connect().await;
        c.send(input).await;
        let rest = c.read_to_close(PATIENCE).await;
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.contains("PERM ") && text.contains(reason),
            "{input:?} -> {text:?}"
        );
    }
    let mut c = server.connect().await;
    c.exchange(&ns(b"postfix .com"), &ns(b"NOTFOUND ")).await;
    assert_eq!(server.handler.calls(), 1);
    server.stop().await;
}

/// An idle connection is closed after the idle time-out; a request being answered is never cut
/// by a time-out (the handler takes longer than both the idle and the request time-out here).
#[tokio::test]
async fn idle_timeout_closes_idle_connections_only() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(200),
        ..Limits::socketmap()
    };
    let handler = MapHandler::example().with_delay(Duration::from_millis(600));
    let server = Server::start(Proto::Socketmap, handler, limits).await;
    let mut c = server.connect().await;
    c.exchange(
        b"19:postfix example.com,",
        &ns(format!("OK {EXAMPLE_POLICY}").as_bytes()),
    )
    .await;
    let idle_since = Instant::now();
    assert!(c.read_to_close(PATIENCE).await.is_empty());
    assert!(idle_since.elapsed() >= Duration::from_millis(150));
    server.stop().await;
}

/// The idle time-out counts from the last reply, not from the connection's start: a client
/// that keeps asking within the idle time-out keeps its connection however long it lasts.
#[tokio::test]
async fn idle_timeout_counts_from_the_last_reply() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(400),
        ..Limits::socketmap()
    };
    let server = example(limits).await;
    let mut c = server.connect().await;
    let started = Instant::now();
    let mut asked = 0;
    while started.elapsed() < Duration::from_millis(1200) {
        c.exchange(&ns(b"postfix .com"), &ns(b"NOTFOUND ")).await;
        asked += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let idle_since = Instant::now();
    assert!(c.read_to_close(PATIENCE).await.is_empty());
    assert!(idle_since.elapsed() >= Duration::from_millis(250));
    assert_eq!(server.handler.calls(), asked);
    server.stop().await;
}

/// A client that stops reading is dropped once a write has waited for the write time-out: the
/// connection ends long before all the replies it asked for are sent.
#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_after_the_write_timeout() {
    const REPLY: usize = 90_000;
    const REQUESTS: usize = 400;
    let handler = MapHandler::new(&[("big.example", Reply::Ok("x".repeat(REPLY)))]);
    let limits = Limits {
        write_timeout: Duration::from_millis(300),
        ..Limits::socketmap()
    };
    let server = Server::start(Proto::Socketmap, handler, limits).await;
    let mut c = server.connect().await;
    // 36 MB of replies: far more than the socket buffers hold while the client does not read.
    c.send(&ns(b"postfix big.example").repeat(REQUESTS)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got = 0usize;
    let ended = tokio::time::timeout(PATIENCE, async {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = tokio::io::AsyncReadExt::read(&mut c, &mut buf).await {
            got += n;
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection is still open");
    assert!(got < REQUESTS * REPLY, "{got} bytes arrived: every reply");
    server.stop().await;
}

/// A request that starts but does not finish within the request time-out closes the connection.
#[tokio::test]
async fn partial_request_times_out() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..Limits::socketmap()
    };
    let server = example(limits).await;
    let mut c = server.connect().await;
    let started = Instant::now();
    c.send(b"19:postfix exa").await;
    assert!(c.read_to_close(PATIENCE).await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(server.handler.calls(), 0);
    server.stop().await;
}

/// At most `max_connections` are served: a client arriving at a full server evicts the idle
/// connection, and waits only while every connection is answering a request.
#[tokio::test]
async fn connections_are_bounded_and_the_idle_make_room() {
    let limits = Limits {
        max_connections: 1,
        ..Limits::socketmap()
    };
    let server = Server::start(
        Proto::Socketmap,
        MapHandler::example().with_delay(Duration::from_millis(400)),
        limits,
    )
    .await;
    let mut first = server.connect().await;
    first
        .exchange(&ns(b"postfix .com"), &ns(b"NOTFOUND "))
        .await;
    // `first` is idle now: the next client takes its place at once.
    let mut second = server.connect().await;
    second.send(&ns(b"postfix .net")).await;
    assert_eq!(first.read_to_close(PATIENCE).await, b"");
    assert_eq!(second.read_netstring(100).await, b"NOTFOUND ");
    // While `second` is answering a request it is never evicted: a third client waits.
    second.send(&ns(b"postfix .org")).await;
    server.handler.wait_for_calls(3).await;
    let mut third = server.connect().await;
    third.send(&ns(b"postfix .edu")).await;
    assert!(third.stays_silent(Duration::from_millis(50)).await);
    assert_eq!(second.read_netstring(100).await, b"NOTFOUND ");
    assert_eq!(third.read_netstring(100).await, b"NOTFOUND ");
    server.stop().await;
}

/// Many connections at once, each with its own sequence of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_connections() {
    let handler = MapHandler::example().with_delay(Duration::from_millis(5));
    let server = Arc::new(Server::start(Proto::Socketmap, handler, Limits::socketmap()).await);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..40 {
        let server = Arc::clone(&server);
        clients.spawn(async move {
            let mut c = server.connect().await;
            for j in 0..10 {
                let key = if (i + j) % 3 == 0 {
                    "example.com".to_owned()
                } else {
                    format!("d{i}-{j}.example")
                };
                let expected = if key == "example.com" {
                    ns(format!("OK {EXAMPLE_POLICY}").as_bytes())
                } else {
                    ns(b"NOTFOUND ")
                };
                c.exchange(&ns(format!("postfix {key}").as_bytes()), &expected)
                    .await;
            }
        });
    }
    while let Some(r) = clients.join_next().await {
        r.expect("client task");
    }
    assert_eq!(server.handler.calls(), 400);
    Arc::try_unwrap(server)
        .expect("clients are done")
        .stop()
        .await;
}

/// Shutdown: idle connections close at once, a request in flight still gets its answer, the
/// listener stops accepting.
#[tokio::test]
async fn shutdown_answers_the_request_in_flight() {
    let handler = MapHandler::example().with_delay(Duration::from_millis(400));
    let mut server = Server::start(Proto::Socketmap, handler, Limits::socketmap()).await;
    let mut idle = server.connect().await;
    let mut busy = server.connect().await;
    busy.send(b"19:postfix example.com,").await;
    server.handler.wait_for_calls(1).await;
    server.signal_stop();
    assert!(idle.read_to_close(PATIENCE).await.is_empty());
    let rest = busy.read_to_close(PATIENCE).await;
    assert_eq!(rest, ns(format!("OK {EXAMPLE_POLICY}").as_bytes()));
    let addr = server.addr.clone();
    server.stop().await;
    assert!(
        connect(&addr).await.is_err(),
        "still accepting after shutdown"
    );
}

/// Shutdown while a request is only half received: it is read to its end and answered.
#[tokio::test]
async fn shutdown_waits_for_a_half_received_request() {
    let mut server = example(Limits::socketmap()).await;
    let mut c = server.connect().await;
    c.exchange(&ns(b"postfix .com"), &ns(b"NOTFOUND ")).await;
    c.send(b"19:postfix exam").await;
    // Let the server take in the first half before shutdown is signalled (there is no hook to
    // observe that; half a second is ample even on a loaded machine).
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.signal_stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send(b"ple.com,").await;
    let rest = c.read_to_close(PATIENCE).await;
    assert_eq!(rest, ns(format!("OK {EXAMPLE_POLICY}").as_bytes()));
    server.stop().await;
}

/// A handler that never finishes cannot hold shutdown beyond the grace period.
#[tokio::test]
async fn shutdown_grace_bounds_a_stuck_request() {
    let limits = Limits {
        shutdown_grace: Duration::from_millis(200),
        ..Limits::socketmap()
    };
    let handler = MapHandler::example().with_delay(Duration::from_secs(3600));
    let server = Server::start(Proto::Socketmap, handler, limits).await;
    let mut c = server.connect().await;
    c.send(b"19:postfix example.com,").await;
    server.handler.wait_for_calls(1).await;
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(c.read_to_close(PATIENCE).await.is_empty());
}

/// Unix sockets: a stale socket file is replaced, the mode is set, the file goes at shutdown; a
/// live socket or a non-socket file is never removed.
#[tokio::test]
async fn unix_socket_lifecycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("socketmap.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale socket"));
    assert!(path.exists(), "std leaves the socket file behind");
    let addr: ListenAddr = format!("unix:{}", path.display()).parse().expect("valid");
    let listener = addr.bind().await.expect("bind over a stale socket");
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "not world-writable (issue 10 §2.2)");
    let err = addr
        .bind()
        .await
        .expect_err("a live socket is not replaced");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    let server = Server::start_on(
        listener,
        Proto::Socketmap,
        MapHandler::example(),
        Limits::socketmap(),
    );
    let mut c = server.connect().await;
    c.exchange(
        b"19:postfix example.com,",
        &ns(format!("OK {EXAMPLE_POLICY}").as_bytes()),
    )
    .await;
    server.stop().await;
    assert!(!path.exists(), "the socket file is removed at shutdown");

    let strict = addr.bind_with_mode(0o600).await.expect("bind");
    let mode = std::fs::metadata(&path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(strict);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").expect("write");
    let addr: ListenAddr = format!("unix:{}", file.display()).parse().expect("valid");
    let err = addr
        .bind()
        .await
        .expect_err("a regular file is not replaced");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
}

#[tokio::test]
async fn ipv6_loopback() {
    let Ok(listener) = "[::1]:0".parse::<ListenAddr>().expect("valid").bind().await else {
        #[allow(clippy::print_stderr, reason = "a skipped test must say so")]
        {
            eprintln!("SKIPPED ipv6_loopback: cannot bind [::1] on this machine");
        }
        return;
    };
    let server = Server::start_on(
        listener,
        Proto::Socketmap,
        MapHandler::example(),
        Limits::socketmap(),
    );
    let mut c = server.connect().await;
    c.exchange(&ns(b"postfix .com"), &ns(b"NOTFOUND ")).await;
    server.stop().await;
}

/// Debian's `postmap -q` as a real Postfix client, when installed (never installed by tests).
#[tokio::test]
async fn postmap_as_a_real_client() {
    let Some(postmap) = ["/usr/sbin/postmap", "/usr/bin/postmap"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        #[allow(clippy::print_stderr, reason = "a skipped test must say so")]
        {
            eprintln!(
                "SKIPPED postmap_as_a_real_client: postmap (Debian package postfix) is not installed"
            );
        }
        return;
    };
    let server = example(Limits::socketmap()).await;
    let ListenAddr::Tcp(addr) = server.addr.clone() else {
        unreachable!("the test server listens on TCP")
    };
    // An empty main.cf in a private config directory: the machine's Postfix configuration (if
    // any) plays no part.
    let config = tempfile::tempdir().expect("temp dir");
    std::fs::write(config.path().join("main.cf"), b"").expect("write main.cf");
    let config = config.path().to_owned();
    let map = format!("socketmap:inet:{}:{}:postfix", addr.ip(), addr.port());
    let postmap_q = |key: &'static str| {
        let (config, map) = (config.clone(), map.clone());
        async move {
            let run = tokio::task::spawn_blocking(move || {
                let mut cmd = std::process::Command::new(postmap);
                cmd.arg("-c").arg(&config).args(["-q", key, &map]);
                if key == "-" {
                    use std::io::Write;
                    let mut child = cmd
                        .stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .spawn()?;
                    let mut stdin = child.stdin.take().expect("piped");
                    stdin.write_all(b"example.com\n.com\nexample.com\n")?;
                    drop(stdin);
                    child.wait_with_output()
                } else {
                    cmd.output()
                }
            });
            tokio::time::timeout(PATIENCE, run)
                .await
                .expect("postmap finishes within 10 s")
                .expect("the blocking task does not panic")
                .expect("postmap runs")
        }
    };
    let found = postmap_q("example.com").await;
    assert!(found.status.success(), "{found:?}");
    assert_eq!(
        String::from_utf8_lossy(&found.stdout),
        format!("{EXAMPLE_POLICY}\n")
    );
    // Not found: exit status 1 and nothing printed (the NOTFOUND reply was understood).
    let missing = postmap_q("nope.example").await;
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(missing.stdout.is_empty());
    // Several keys over one persistent connection.
    let batch = postmap_q("-").await;
    assert_eq!(
        String::from_utf8_lossy(&batch.stdout),
        format!("example.com\t{EXAMPLE_POLICY}\nexample.com\t{EXAMPLE_POLICY}\n")
    );
    let keys: Vec<String> = server.handler.seen().into_iter().map(|(_, k)| k).collect();
    assert_eq!(
        keys,
        [
            "example.com",
            "nope.example",
            "example.com",
            ".com",
            "example.com"
        ]
    );
    server.stop().await;
}
