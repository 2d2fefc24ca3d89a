//! Connection exhaustion (issue 10 §2.2): a full server makes room for a new client, on TCP and
//! on a unix socket. With the default limits one peer's idle connections are bounded by its own
//! share (`max_per_peer`); with that share raised past the total, the whole listener fills and
//! the total-limit path (evicting the idle connection, then the stalled half-request) is what
//! makes room.

use crate::support::{MapHandler, PATIENCE, Proto, Server, connect, ns};
use mtasts_resolver::proto::{Limits, ListenAddr};
use std::time::Duration;
use tokio::time::Instant;

/// The default connection limit, all of it taken by idle clients.
const IDLE: usize = 1024;

async fn a_new_client_is_answered_promptly(server: Server) {
    assert_eq!(Limits::socketmap().max_connections, IDLE);
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(server.connect().await);
    }
    // Let the server accept them all (bounded: they are local connections).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let mut c = connect(&server.addr).await.expect("connect");
    c.exchange(
        &ns(b"postfix example.com"),
        &ns(b"OK secure match=mx1.example.com:.example.net servername=hostname"),
    )
    .await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the new client waited {took:?} behind {IDLE} idle connections"
    );
    // And again: the server keeps making room.
    let mut d = connect(&server.addr).await.expect("connect");
    d.exchange(&ns(b"postfix .com"), &ns(b"NOTFOUND ")).await;
    assert!(start.elapsed() < PATIENCE);
    drop(idle);
    server.stop().await;
}

/// The default limits with the per-peer share above the total: one peer can fill the listener.
fn one_peer_may_fill_it(limits: Limits) -> Limits {
    Limits {
        max_per_peer: 2 * limits.max_connections,
        ..limits
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_evicts_the_idle_for_a_new_client_over_tcp() {
    let limits = one_peer_may_fill_it(Limits::socketmap());
    let server = Server::start(Proto::Socketmap, MapHandler::example(), limits).await;
    a_new_client_is_answered_promptly(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_evicts_the_idle_for_a_new_client_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = ListenAddr::Unix(dir.path().join("s.sock"));
    let listener = addr.bind().await.expect("bind");
    let limits = one_peer_may_fill_it(Limits::socketmap());
    let server = Server::start_on(listener, Proto::Socketmap, MapHandler::example(), limits);
    a_new_client_is_answered_promptly(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_starve_a_new_client_over_tcp() {
    let server = Server::start(Proto::Socketmap, MapHandler::example(), Limits::socketmap()).await;
    a_new_client_is_answered_promptly(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_starve_a_new_client_over_a_unix_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = ListenAddr::Unix(dir.path().join("s.sock"));
    let listener = addr.bind().await.expect("bind");
    let server = Server::start_on(
        listener,
        Proto::Socketmap,
        MapHandler::example(),
        Limits::socketmap(),
    );
    a_new_client_is_answered_promptly(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_half_requests_never_starve_a_new_client() {
    let limits = one_peer_may_fill_it(Limits::tcp_table());
    let server = Server::start(Proto::TcpTable, MapHandler::example(), limits).await;
    let mut stalled = Vec::new();
    for _ in 0..IDLE {
        let mut c = server.connect().await;
        c.send(b"get exam").await;
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let mut c = connect(&server.addr).await.expect("connect");
    c.exchange(
        b"get example.com\n",
        b"200 secure%20match=mx1.example.com:.example.net%20servername=hostname\n",
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    drop(stalled);
    server.stop().await;
}
