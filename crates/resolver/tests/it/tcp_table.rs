//! The tcp_table server on real sockets.

use crate::support::{EXAMPLE_POLICY, MapHandler, PATIENCE, Proto, Server};
use mtasts_resolver::Reply;
use mtasts_resolver::proto::Limits;
use std::time::Duration;

async fn example() -> Server {
    Server::start(Proto::TcpTable, MapHandler::example(), Limits::tcp_table()).await
}

/// `get SP key LF` -> `200 SP %XX-encoded data LF`; `500` for not found; the handler gets the
/// configured table name and the decoded key.
#[tokio::test]
async fn exchange_byte_for_byte() {
    let server = example().await;
    let mut c = server.connect().await;
    c.exchange(
        b"get example.com\n",
        b"200 secure%20match=mx1.example.com:.example.net%20servername=hostname\n",
    )
    .await;
    c.exchange(b"get b%C3%BCcher.example\n", b"500 not%20found\n")
        .await;
    assert_eq!(
        server.handler.seen(),
        [
            ("tls_policy", "example.com"),
            ("tls_policy", "bücher.example")
        ]
        .map(|(n, k)| (n.to_owned(), k.to_owned()))
    );
    server.stop().await;
}

#[tokio::test]
async fn error_statuses_and_malformed_requests() {
    let handler = MapHandler::new(&[
        ("t.example", Reply::Temp("dns down".into())),
        ("o.example", Reply::Timeout("slow".into())),
        ("p.example", Reply::Perm("bad".into())),
        ("example.com", Reply::Ok(EXAMPLE_POLICY.into())),
    ]);
    let server = Server::start(Proto::TcpTable, handler, Limits::tcp_table()).await;
    let mut c = server.connect().await;
    c.exchange(b"get t.example\n", b"400 dns%20down\n").await;
    c.exchange(b"get o.example\n", b"400 slow\n").await;
    c.exchange(b"get p.example\n", b"400 bad\n").await;
    c.exchange(
        b"put k v\n",
        b"400 unsupported%20request:%20expected%20get%20SP%20key\n",
    )
    .await;
    c.exchange(
        b"get a%ZZ\n",
        b"400 malformed%20%25-encoding%20in%20the%20key\n",
    )
    .await;
    c.exchange(b"get \xff%FE\n", b"500 not%20found\n").await;
    c.exchange(b"get \n", b"500 not%20found\n").await;
    // Pipelined, with a CRLF line: answered in order on the same connection.
    c.exchange(
        b"get .com\r\nget example.com\nget .net\n",
        b"500 not%20found\n200 secure%20match=mx1.example.com:.example.net%20servername=hostname\n500 not%20found\n",
    )
    .await;
    assert_eq!(server.handler.calls(), 6);
    server.stop().await;
}

/// Replies are at most 4096 bytes including the LF: a 200 that does not fit becomes 400.
#[tokio::test]
async fn reply_limit() {
    let fits = "x".repeat(4096 - "200 \n".len());
    let over = "x".repeat(4096 - "200 \n".len() + 1);
    let handler = MapHandler::new(&[
        ("fits.example", Reply::Ok(fits.clone())),
        ("over.example", Reply::Ok(over)),
        // Spaces triple in length when encoded.
        ("spaces.example", Reply::Ok(" ".repeat(1400))),
    ]);
    let server = Server::start(Proto::TcpTable, handler, Limits::tcp_table()).await;
    let mut c = server.connect().await;
    c.exchange(b"get fits.example\n", format!("200 {fits}\n").as_bytes())
        .await;
    c.exchange(
        b"get over.example\n",
        b"400 reply%20too%20long%20(4097%20bytes,%20limit%204096)\n",
    )
    .await;
    c.exchange(
        b"get spaces.example\n",
        b"400 reply%20too%20long%20(4205%20bytes,%20limit%204096)\n",
    )
    .await;
    server.stop().await;
}

/// A request line over the limit is answered 400 and the connection closed at once, without
/// waiting for its end.
#[tokio::test]
async fn request_line_limit() {
    let server = example().await;
    let mut c = server.connect().await;
    let key = "k".repeat(10_000 - "get \n".len());
    c.exchange(format!("get {key}\n").as_bytes(), b"500 not%20found\n")
        .await;
    c.send(format!("get {key}k").as_bytes()).await;
    let rest = c.read_to_close(PATIENCE).await;
    assert_eq!(
        rest,
        b"400 request%20line%20longer%20than%2010000%20bytes;%20closing%20the%20connection\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_timeout_and_shutdown() {
    let limits = Limits {
        idle_timeout: Duration::from_millis(200),
        ..Limits::tcp_table()
    };
    let handler = MapHandler::example().with_delay(Duration::from_millis(300));
    let mut server = Server::start(Proto::TcpTable, handler, limits).await;
    let mut idle = server.connect().await;
    assert!(idle.read_to_close(PATIENCE).await.is_empty());
    let mut busy = server.connect().await;
    busy.send(b"get .com\n").await;
    server.handler.wait_for_calls(1).await;
    server.signal_stop();
    assert_eq!(busy.read_to_close(PATIENCE).await, b"500 not%20found\n");
    server.stop().await;
}
