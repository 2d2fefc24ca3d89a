//! RFC 2136 updates signed with TSIG against a real knotd (`mtasts_testnet::knot`, SKIP when
//! knotd is missing), and against fake servers that answer what no real one should.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode};
use mtasts_net::dns::{Lookup, Resolver, ResolverSettings};
use mtasts_server::dnsupdate::{Rcode, TsigKey, UpdateError, UpdateErrorKind, UpdateServer};
use mtasts_testnet::knot::{Knot, Updates, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const ZONE: &str = "example.test";
const KEY_NAME: &str = "mtasts-update.example.test";
const SECRET: &str = "hK2yc1sC0uVQ8l0m5v0Wb0Jp0lqHcTq3kZ4tqf2mF1E=";
const OTHER_SECRET: &str = "b3RoZXIgc2VjcmV0LCBzYW1lIGtleSBuYW1l";
const BUDGET: Duration = Duration::from_secs(2);

/// knotd serving `example.test`, updatable with the key (hmac-sha256, `SECRET`).
async fn knot() -> Option<Knot> {
    Knot::start(
        ZONE,
        "www A 127.0.0.1\n",
        Some((KEY_NAME, "hmac-sha256", SECRET)),
    )
    .await
    .expect("knotd starts")
}

fn updater(addr: SocketAddr, zone: &str, key: Option<(&str, &str)>) -> UpdateServer {
    let key = key.map(|(alg, secret)| TsigKey::parse(KEY_NAME, alg, secret).unwrap());
    UpdateServer::new(addr, zone, key, BUDGET).unwrap()
}

/// The project's resolver asking knotd directly; a fresh one each time, so nothing is cached.
fn resolver(knot: &Knot) -> Resolver {
    Resolver::new(&ResolverSettings {
        nameservers: vec![knot.addr()],
        timeout: Some(Duration::from_secs(1)),
        ..ResolverSettings::default()
    })
    .unwrap()
}

/// The TXT records at `name` as knotd serves them now, each joined.
async fn txt(knot: &Knot, name: &str) -> Vec<Vec<u8>> {
    match resolver(knot).txt(name).await.expect("knotd answers") {
        Lookup::Records { records, .. } => records.iter().map(|t| t.joined()).collect(),
        Lookup::NoData | Lookup::NxDomain => Vec::new(),
    }
}

#[tokio::test]
async fn replace_publishes_then_replaces_then_delete_removes() {
    let Some(knot) = knot().await else {
        return;
    };
    let up = updater(knot.addr(), ZONE, Some(("hmac-sha256", SECRET)));
    let name = "_mta-sts.example.test";
    let started = Instant::now();

    up.replace_txt(name, "v=STSv1; id=20260101T000000", 300)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", knot.log()));
    assert_eq!(
        txt(&knot, name).await,
        [b"v=STSv1; id=20260101T000000".to_vec()]
    );

    // A second replace leaves exactly the new record; a long value comes back whole.
    let long = format!("v=TLSRPTv1; rua=mailto:{}@example.test", "r".repeat(600));
    up.replace_txt(name, &long, 300).await.unwrap();
    assert_eq!(txt(&knot, name).await, [long.as_bytes().to_vec()]);
    let published = resolver(&knot).txt(name).await.unwrap();
    let lengths: Vec<usize> = published.records()[0]
        .strings
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(
        lengths,
        [255, 255, long.len() - 510],
        "255-byte character-strings"
    );

    up.delete_txt(name).await.unwrap();
    assert!(txt(&knot, name).await.is_empty());
    // Deleting what is not there succeeds too; the rest of the zone is untouched.
    up.delete_txt(name).await.unwrap();
    let www = resolver(&knot).a("www.example.test").await.unwrap();
    assert_eq!(
        www.records(),
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(knot.log().contains("DDNS"), "{}", knot.log());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn replace_on_a_name_with_several_txt_records_leaves_one() {
    let zone = "_smtp._tls TXT \"v=TLSRPTv1; rua=mailto:a@example.test\"\n\
                _smtp._tls TXT \"v=TLSRPTv1; rua=mailto:b@example.test\"\n\
                _smtp._tls A 127.0.0.1\n";
    let Some(knot) = Knot::start(ZONE, zone, Some((KEY_NAME, "hmac-sha512", SECRET)))
        .await
        .expect("knotd starts")
    else {
        return;
    };
    let name = "_smtp._tls.example.test";
    assert_eq!(txt(&knot, name).await.len(), 2);
    let up = updater(knot.addr(), "example.test.", Some(("hmac-sha512", SECRET)));
    up.replace_txt(name, "v=TLSRPTv1; rua=mailto:c@example.test", 60)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", knot.log()));
    assert_eq!(
        txt(&knot, name).await,
        [b"v=TLSRPTv1; rua=mailto:c@example.test".to_vec()]
    );
}

fn failure(result: Result<(), UpdateError>) -> UpdateError {
    result.expect_err("the update must fail")
}

#[tokio::test]
async fn wrong_secret_unknown_key_and_no_key_are_told_apart() {
    let Some(knot) = knot().await else {
        return;
    };
    let name = "_mta-sts.example.test";
    let addr = knot.addr();

    let e = failure(
        updater(addr, ZONE, Some(("hmac-sha256", OTHER_SECRET)))
            .replace_txt(name, "v=STSv1; id=1", 300)
            .await,
    );
    assert!(
        matches!(
            e.kind(),
            UpdateErrorKind::TsigRejected {
                error: Rcode::BADSIG,
                rcode: Rcode::NOTAUTH
            }
        ),
        "{e}"
    );
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("DNS update of zone \"example.test.\" at {addr}: ")));
    assert!(
        shown.contains("BADSIG") && shown.contains("secret differs"),
        "{shown}"
    );
    assert!(!e.is_retryable());

    // Same name, other algorithm: knot does not know that key.
    let e = failure(
        updater(addr, ZONE, Some(("hmac-sha384", SECRET)))
            .replace_txt(name, "v=STSv1; id=1", 300)
            .await,
    );
    let badkey = |e: &UpdateError| {
        matches!(
            e.kind(),
            UpdateErrorKind::TsigRejected {
                error: Rcode::BADKEY,
                ..
            }
        )
    };
    assert!(badkey(&e), "{e}");

    let e = failure(updater(addr, ZONE, None).delete_txt(name).await);
    assert!(
        matches!(
            e.kind(),
            UpdateErrorKind::Refused {
                rcode: Rcode::NOTAUTH,
                signed: false
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("refused the update (NOTAUTH)"),
        "{e}"
    );
    assert!(!e.is_retryable());
    assert!(txt(&knot, name).await.is_empty(), "nothing was published");
}

#[tokio::test]
async fn zones_that_deny_the_key_or_take_no_updates_refuse() {
    let zones = [
        Zone {
            origin: "open.test",
            text: "",
            updates: Updates::Key,
        },
        Zone {
            origin: "denied.test",
            text: "",
            updates: Updates::Denied,
        },
        Zone {
            origin: "static.test",
            text: "",
            updates: Updates::Off,
        },
    ];
    let Some(knot) = Knot::start_zones(&zones, Some((KEY_NAME, "hmac-sha256", SECRET)))
        .await
        .expect("knotd starts")
    else {
        return;
    };
    let key = Some(("hmac-sha256", SECRET));
    updater(knot.addr(), "open.test", key)
        .replace_txt("_mta-sts.open.test", "v=STSv1; id=1", 300)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", knot.log()));
    // knot answers a key that an ACL denies, or that no ACL of the zone names, with BADKEY.
    for zone in ["denied.test", "static.test"] {
        let up = updater(knot.addr(), zone, key);
        let e = failure(up.replace_txt(&format!("_mta-sts.{zone}"), "v", 300).await);
        assert!(
            matches!(
                e.kind(),
                UpdateErrorKind::TsigRejected {
                    error: Rcode::BADKEY,
                    ..
                }
            ),
            "{e}"
        );
    }
    // A zone knot does not serve at all: NOTAUTH, unsigned.
    let up = updater(knot.addr(), "elsewhere.test", key);
    let e = failure(up.replace_txt("_mta-sts.elsewhere.test", "v", 300).await);
    assert!(
        matches!(
            e.kind(),
            UpdateErrorKind::Refused {
                rcode: Rcode::NOTAUTH,
                signed: false
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("(answer not signed)"), "{e}");
    // A name outside the zone never leaves us.
    let up = updater(knot.addr(), "open.test", key);
    let e = failure(up.replace_txt("_mta-sts.static.test", "v", 300).await);
    assert!(matches!(e.kind(), UpdateErrorKind::NotInZone { .. }), "{e}");
    assert_eq!(
        knot.log().matches("DDNS, processing").count(),
        1,
        "{}",
        knot.log()
    );
}

#[tokio::test]
async fn a_dead_port_fails_fast_as_a_connection_error() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let started = Instant::now();
    let e = updater(addr, ZONE, Some(("hmac-sha256", SECRET)))
        .replace_txt("_mta-sts.example.test", "v", 300)
        .await
        .unwrap_err();
    assert!(matches!(e.kind(), UpdateErrorKind::Io(_)), "{e}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains("connection failed"), "{e}");
    assert!(started.elapsed() < BUDGET);
}

/// A TCP server for one connection: reads one framed request and sends what `reply` makes of
/// it (raw bytes, framing included), then keeps the connection open a while; closes it at once
/// when the reply is empty.
async fn fake(reply: impl FnOnce(Message) -> Vec<u8> + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.unwrap();
        let mut request = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut request).await.unwrap();
        let request = Message::from_vec(&request).unwrap();
        let bytes = reply(request);
        if bytes.is_empty() {
            return; // closes the connection
        }
        let _ = s.write_all(&bytes).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    addr
}

fn framed(message: &Message) -> Vec<u8> {
    let bytes = message.to_vec().unwrap();
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(&bytes);
    out
}

fn response(request: &Message, id: u16) -> Message {
    let mut m = Message::response(id, OpCode::Update);
    m.add_queries(request.queries.iter().cloned());
    m
}

async fn update_at(addr: SocketAddr, signed: bool) -> UpdateError {
    let key = signed.then(|| TsigKey::parse(KEY_NAME, "hmac-sha256", SECRET).unwrap());
    let up = UpdateServer::new(addr, ZONE, key, Duration::from_millis(500)).unwrap();
    failure(
        up.replace_txt("_mta-sts.example.test", "v=STSv1; id=1", 300)
            .await,
    )
}

#[tokio::test]
async fn an_unsigned_success_is_not_success_when_we_signed() {
    let addr = fake(|req| framed(&response(&req, req.metadata.id))).await;
    let e = update_at(addr, true).await;
    assert!(
        matches!(e.kind(), UpdateErrorKind::TsigCheck(why) if why.contains("not signed")),
        "{e}"
    );
    assert!(!e.is_retryable());
    // The same answer is success when no key is configured.
    let addr = fake(|req| framed(&response(&req, req.metadata.id))).await;
    let up = UpdateServer::new(addr, ZONE, None, Duration::from_millis(500)).unwrap();
    up.replace_txt("_mta-sts.example.test", "v", 300)
        .await
        .unwrap();
}

#[tokio::test]
async fn another_id_garbage_and_silence_are_errors_not_success() {
    let malformed = |e: &UpdateError| matches!(e.kind(), UpdateErrorKind::Malformed(_));
    let addr = fake(|req| framed(&response(&req, req.metadata.id.wrapping_add(1)))).await;
    let e = update_at(addr, false).await;
    assert!(
        matches!(e.kind(), UpdateErrorKind::Malformed(why) if why.contains("ID")),
        "{e}"
    );

    let garbage = b"\x00\x1bHTTP/1.1 400 Bad Request\r\n\x1b[2J".to_vec();
    let addr = fake(move |_| garbage).await;
    let e = update_at(addr, true).await;
    assert!(malformed(&e), "{e}");
    assert!(!e.to_string().contains('\u{1b}'), "escaped: {e:?}");

    // A header that claims 65,535 records of each kind in 12 bytes.
    let addr = fake(|req| {
        let mut b = vec![0, 12];
        b.extend_from_slice(&req.metadata.id.to_be_bytes());
        b.extend_from_slice(&[0xa8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        b
    })
    .await;
    let e = update_at(addr, true).await;
    assert!(malformed(&e), "{e}");

    // Promises 65,535 bytes, sends three, then says nothing: the budget ends it.
    let started = Instant::now();
    let addr = fake(|_| vec![0xff, 0xff, 1, 2, 3]).await;
    let e = update_at(addr, true).await;
    assert!(matches!(e.kind(), UpdateErrorKind::Timeout(_)), "{e}");
    assert!(e.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(2));

    // Closes the connection without a word: a broken connection.
    let addr = fake(|_| Vec::new()).await;
    let e = update_at(addr, true).await;
    assert!(matches!(e.kind(), UpdateErrorKind::Io(_)), "{e}");
    assert!(e.is_retryable());
}
