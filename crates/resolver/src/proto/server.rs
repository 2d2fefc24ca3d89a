//! The connection machinery both protocol servers share: accept with connection limits that
//! make room for new clients (see [`super::conns`]), one task per connection,
//! request/idle/write time limits, graceful shutdown.

use crate::{Handler, Reply};
use bytes::{Buf, BytesMut};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep, sleep_until, timeout};

use super::conns::{Peer, Registry, State, Tracked};
use super::listen::Listener;

/// Limits of a protocol server. [`Limits::socketmap`] and [`Limits::tcp_table`] give Postfix's
/// values; change single fields with struct update syntax:
///
/// ```
/// use mtasts_resolver::proto::Limits;
/// use std::time::Duration;
/// let limits = Limits { idle_timeout: Duration::from_secs(30), ..Limits::socketmap() };
/// assert_eq!(limits.max_query, 10_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The longest request: the netstring payload (socketmap) or the request line including its
    /// LF (tcp_table). A longer one is answered with an error and the connection closed.
    pub max_query: usize,
    /// The longest reply: the netstring payload (socketmap) or the reply line including its LF
    /// (tcp_table). A longer answer from the handler becomes a temporary error.
    pub max_reply: usize,
    /// Once the first byte of a request has arrived, the whole request must arrive within this
    /// time, or the connection is closed (Postfix writes a request in one piece).
    pub request_timeout: Duration,
    /// A connection with no request under way is closed after this long (Postfix closes its own
    /// idle socketmap connections after 10 s and reconnects transparently).
    pub idle_timeout: Duration,
    /// Writing one batch of replies must finish within this time (Postfix: 100 s).
    pub write_timeout: Duration,
    /// Connections served at once. A client arriving at a full server makes room: the
    /// connection idle the longest is closed (then the one stalled longest part-way through a
    /// request); only when every connection is answering a request does the client wait for
    /// the first to finish. A flood cannot exhaust file descriptors, nor keep Postfix out.
    pub max_connections: usize,
    /// A peer's share (a TCP client's IP address, a unix socket client's user id): a peer holding
    /// this many has its own oldest idle connection closed when it opens another. Never a
    /// refusal: on loopback every client, Postfix included, is one peer.
    pub max_per_peer: usize,
    /// On shutdown, how long requests under way may take to finish before their connections
    /// are dropped.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// Postfix's socketmap limits: query 10,000 bytes (`socketmap_max_query_size`), reply
    /// 100,000 bytes (`socketmap_max_reply_size`), 100 s per write (Postfix's); 10 s for a
    /// request to arrive whole once it has started; idle connections closed after 30 s (Postfix
    /// closes its own after 10 s); 1024 connections, 256 per peer; 10 s shutdown grace.
    pub fn socketmap() -> Self {
        Self {
            max_query: 10_000,
            max_reply: 100_000,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(100),
            max_connections: 1024,
            max_per_peer: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// tcp_table limits: request line 10,000 bytes, reply line 4096 bytes including the LF (the
    /// Postfix client's limit), otherwise as [`Limits::socketmap`].
    pub fn tcp_table() -> Self {
        Self {
            max_reply: super::tcp_table::MAX_REPLY_LINE,
            ..Self::socketmap()
        }
    }
}

/// What a protocol's decoder made of the request at the front of the buffer. A lookup borrows
/// its name and key from the buffer (or the protocol's scratch space), so a request costs no
/// allocation.
#[derive(Debug)]
pub(crate) enum Request<'a> {
    /// Ask the handler.
    Lookup { name: &'a str, key: &'a str },
    /// Answer at once without asking the handler (a malformed request the stream survives).
    Answer(Reply),
}

/// A wire protocol: framing and the reply syntax. One instance per connection.
pub(crate) trait Protocol: Send + 'static {
    /// Looks at the request at the front of `buf` without consuming it: `Ok(None)` while it is
    /// incomplete; `Ok(Some((request, used)))` with the bytes it takes (dropped from the buffer
    /// once it is answered); `Err(reply)` when the stream cannot go on: `reply` is sent, then the
    /// connection closed.
    fn decode<'a>(&'a mut self, buf: &'a [u8]) -> Result<Option<(Request<'a>, usize)>, Reply>;
    /// Appends the wire form of `reply` to `out`.
    fn encode(&self, reply: &Reply, out: &mut Vec<u8>);
}

/// How much room each read offers (at least; a longer partial request grows the buffer).
const READ_SIZE: usize = 4096;
/// Replies buffered beyond this many bytes are written before the next request is answered.
const FLUSH_AT: usize = 64 * 1024;
/// The output buffer is kept between batches up to this capacity.
const KEEP_OUT: usize = 16 * 1024;
/// How much input is discarded after a fatal error before the connection is dropped.
const LINGER_BYTES: usize = 256 * 1024;
/// How long input is discarded after a fatal error before the connection is dropped.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// How often a client waiting for a slot looks again for a connection to evict, while every
/// connection is answering a request.
const ROOM_RETRY: Duration = Duration::from_millis(20);
/// Pause after a failed accept (e.g. out of file descriptors), so the loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets requests under way
/// finish within `limits.shutdown_grace`, and returns.
pub(crate) async fn run<H, P, F>(
    listener: Listener,
    handler: Arc<H>,
    limits: Limits,
    shutdown: F,
    protocol: impl Fn() -> P,
) -> io::Result<()>
where
    H: Handler,
    P: Protocol,
    F: Future<Output = ()>,
{
    let limits = Arc::new(limits);
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let registry = Registry::new(limits.max_per_peer);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        let Some(permit) = make_room(&slots, &registry, &mut shutdown).await else {
            break;
        };
        let admitted = registry.admit(peer);
        let conn = Connection {
            handler: Arc::clone(&handler),
            limits: Arc::clone(&limits),
            stop: stop_rx.clone(),
            protocol: protocol(),
            tracked: Arc::clone(&admitted.tracked),
        };
        tasks.spawn(async move {
            match stream {
                Accepted::Tcp(s) => conn.serve(s).await,
                Accepted::Unix(s) => conn.serve(s).await,
            }
            drop(admitted);
            drop(permit);
        });
    }
    if registry.evictions() > 0 {
        tracing::info!(
            evicted = registry.evictions(),
            "connections closed to make room for new clients"
        );
    }
    drop(listener);
    // Every connection sees this at its next idle point; a send error only means none is left.
    let _ = stop_tx.send(true);
    let drained = timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.shutdown().await;
    }
    Ok(())
}

/// A connection slot for a client that has arrived: a free one, or the slot of the connection
/// idle the longest, closed for it (see [`Limits::max_connections`]). When every connection is
/// answering a request, looks again every [`ROOM_RETRY`] until one is idle or done. `None` on
/// shutdown.
async fn make_room<F: Future<Output = ()>>(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    shutdown: &mut Pin<&mut F>,
) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Some(permit);
        }
        let evicted = registry.evict_one();
        let retry = async {
            if evicted {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(ROOM_RETRY).await;
        };
        tokio::select! {
            () = shutdown.as_mut() => return None,
            permit = Arc::clone(slots).acquire_owned() => {
                return Some(permit.expect("the semaphore is never closed"));
            }
            () = retry => {}
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<(Accepted, Peer)> {
    match listener {
        Listener::Tcp(l) => {
            let (s, from) = l.accept().await?;
            // Replies are written in one piece per batch; Nagle would only add latency.
            let _ = s.set_nodelay(true);
            Ok((Accepted::Tcp(s), Peer::Ip(from.ip())))
        }
        Listener::Unix(l, _) => {
            let s = l.accept().await?.0;
            let uid = s.peer_cred().ok().map(|c| c.uid());
            Ok((Accepted::Unix(s), Peer::Uid(uid)))
        }
    }
}

struct Connection<H, P> {
    handler: Arc<H>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
    protocol: P,
    tracked: Arc<Tracked>,
}

impl<H: Handler, P: Protocol> Connection<H, P> {
    /// Serves one connection until the peer closes it, a limit closes it, or shutdown finds it
    /// idle. A request that has been received is always answered before the connection closes.
    ///
    /// The hot path (one request in, one reply out) costs one `read`, one `write` and one clock
    /// reading, and allocates nothing: requests are decoded where they were read, replies are
    /// rendered into a buffer that is reused, and the time limits share one timer per connection
    /// that is only re-armed when it fires early or must fire earlier (see [`wait`]).
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(self, mut stream: S) {
        let Self {
            handler,
            limits,
            stop,
            mut protocol,
            tracked,
        } = self;
        let mut inbuf = BytesMut::with_capacity(READ_SIZE);
        let mut out = Vec::new();
        // Completes once shutdown is signalled (or `run` is gone). Polled only while idle, and
        // the connection ends as soon as it completes, so it is never polled after that.
        let stopped = async move {
            let mut stop = stop;
            let _ = stop.wait_for(|&stopped| stopped).await;
        };
        tokio::pin!(stopped);
        let timer = sleep_until(Instant::now() + limits.idle_timeout);
        tokio::pin!(timer);
        // When the request at the front of `inbuf` started to arrive (set when first needed).
        let mut started = None;
        loop {
            let mut close = false;
            loop {
                let (reply, used) = match protocol.decode(&inbuf) {
                    Ok(Some((Request::Lookup { name, key }, used))) => {
                        tracked.busy();
                        (handler.lookup(name, key).await, used)
                    }
                    Ok(Some((Request::Answer(reply), used))) => (reply, used),
                    Ok(None) => break,
                    Err(reply) => {
                        protocol.encode(&reply, &mut out);
                        close = true;
                        break;
                    }
                };
                inbuf.advance(used);
                protocol.encode(&reply, &mut out);
                // The next request in the buffer (if any) starts now, as far as its time
                // limit is concerned.
                started = None;
                if out.len() >= FLUSH_AT
                    && !flush(&mut stream, &mut out, limits.write_timeout).await
                {
                    return;
                }
            }
            if !flush(&mut stream, &mut out, limits.write_timeout).await {
                return;
            }
            if close {
                linger(&mut stream, limits.write_timeout).await;
                return;
            }
            let idle = inbuf.is_empty();
            let now = Instant::now();
            let deadline = if idle {
                tracked.set(State::Idle, now);
                now + limits.idle_timeout
            } else {
                let started = *started.get_or_insert(now);
                tracked.set(State::Reading, started);
                started + limits.request_timeout
            };
            inbuf.reserve(READ_SIZE);
            let read = tokio::select! {
                biased;
                // Shutdown closes idle connections at once; a request already under way is
                // read to its end (within `shutdown_grace`, enforced by `run`).
                () = &mut stopped, if idle => return,
                // Evicted to make room for a new client (never while a request is answered).
                () = tracked.evicted() => return,
                read = wait(stream.read_buf(&mut inbuf), timer.as_mut(), deadline) => read,
            };
            match read {
                Some(Ok(n)) if n > 0 => {}
                // EOF, a read error, or a time limit: nothing is under way to answer.
                _ => return,
            }
        }
    }
}

/// Runs `io` until `deadline`: `None` once the deadline has passed.
///
/// `timer` is the connection's one timer, and it may be armed for an earlier time than
/// `deadline` (a deadline that has moved on since): it is re-armed only when it must fire
/// earlier, and when it fires early. An idle connection that keeps sending requests thus
/// re-arms it once per idle time-out rather than once per request, which keeps the timer
/// wheel out of the request path.
async fn wait<F: Future>(
    io: F,
    mut timer: Pin<&mut Sleep>,
    deadline: Instant,
) -> Option<F::Output> {
    if deadline < timer.deadline() {
        timer.as_mut().reset(deadline);
    }
    tokio::pin!(io);
    loop {
        tokio::select! {
            biased;
            output = &mut io => return Some(output),
            () = timer.as_mut() => {
                if Instant::now() >= deadline {
                    return None;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// Closes our side after a fatal error, then reads and discards what the client still sends (at
/// most [`LINGER_BYTES`] within [`LINGER_TIME`]): closing a TCP socket with unread input sends
/// a reset, which can destroy the error reply before the client reads it.
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, write_timeout: Duration) {
    if !matches!(timeout(write_timeout, stream.shutdown()).await, Ok(Ok(()))) {
        return;
    }
    let mut sink = vec![0u8; 8192];
    let mut left = LINGER_BYTES;
    let _ = timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => break,
            }
        }
    })
    .await;
}

/// Writes `out` within `limit` and empties it; false when the connection is unusable.
///
/// The usual batch (one reply) goes out in one `write` without a timer; a timer is set only when
/// the socket does not take the whole batch at once.
async fn flush<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut Vec<u8>, limit: Duration) -> bool {
    if out.is_empty() {
        return true;
    }
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *stream).poll_write(cx, out)));
    let written = match first.await {
        Poll::Ready(Ok(n)) if n > 0 => n,
        Poll::Ready(Ok(_) | Err(_)) => {
            out.clear();
            return false;
        }
        Poll::Pending => 0,
    };
    let ok = written == out.len()
        || matches!(
            timeout(limit, stream.write_all(&out[written..])).await,
            Ok(Ok(()))
        );
    out.clear();
    // An unusually large batch (long replies) does not stay allocated for the connection's life.
    if out.capacity() > KEEP_OUT {
        *out = Vec::new();
    }
    ok
}
