//! The connection machinery both protocol servers share: accept with a connection cap, one task
//! per connection, request/idle/write time limits, graceful shutdown.

use crate::{Handler, Reply};
use bytes::BytesMut;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};

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
    /// time, or the connection is closed (Postfix: 100 s).
    pub request_timeout: Duration,
    /// A connection with no request under way is closed after this long (Postfix closes its own
    /// idle socketmap connections after 10 s and reconnects transparently).
    pub idle_timeout: Duration,
    /// Writing one batch of replies must finish within this time (Postfix: 100 s).
    pub write_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog until one closes,
    /// so a flood cannot exhaust file descriptors.
    pub max_connections: usize,
    /// On shutdown, how long requests under way may take to finish before their connections
    /// are dropped.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// Postfix's socketmap limits: query 10,000 bytes (`socketmap_max_query_size`), reply
    /// 100,000 bytes (`socketmap_max_reply_size`), 100 s per request and write; idle connections
    /// closed after 5 minutes, 1024 connections, 10 s shutdown grace.
    pub fn socketmap() -> Self {
        Self {
            max_query: 10_000,
            max_reply: 100_000,
            request_timeout: Duration::from_secs(100),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(100),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// tcp_table limits: request line 10,000 bytes, reply line 4096 bytes including the LF (the
    /// Postfix client's limit), otherwise as [`Limits::socketmap`].
    pub fn tcp_table() -> Self {
        Self {
            max_reply: 4096,
            ..Self::socketmap()
        }
    }
}

/// What a protocol's decoder made of the buffered bytes.
#[derive(Debug)]
pub(crate) enum Request {
    /// Ask the handler.
    Lookup { name: String, key: String },
    /// Answer at once without asking the handler (a malformed request the stream survives).
    Answer(Reply),
}

/// A wire protocol: framing and the reply syntax. One instance per connection.
pub(crate) trait Protocol: Send + 'static {
    /// Takes one request off the front of `buf`: `Ok(None)` while incomplete; `Err(reply)` when
    /// the stream cannot go on: `reply` is sent, then the connection closed.
    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, Reply>;
    /// Appends the wire form of `reply` to `out`.
    fn encode(&self, reply: &Reply, out: &mut BytesMut);
}

/// Replies buffered beyond this many bytes are written before the next request is answered.
const FLUSH_AT: usize = 64 * 1024;
/// How much input is discarded after a fatal error before the connection is dropped.
const LINGER_BYTES: usize = 256 * 1024;
/// How long input is discarded after a fatal error before the connection is dropped.
const LINGER_TIME: Duration = Duration::from_secs(1);
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
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => accepted,
        };
        let Ok(stream) = accepted else {
            tokio::time::sleep(ACCEPT_BACKOFF).await;
            continue;
        };
        let conn = Connection {
            handler: Arc::clone(&handler),
            limits: Arc::clone(&limits),
            stop: stop_rx.clone(),
            protocol: protocol(),
        };
        tasks.spawn(async move {
            match stream {
                Accepted::Tcp(s) => conn.serve(s).await,
                Accepted::Unix(s) => conn.serve(s).await,
            }
            drop(permit);
        });
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

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            // Replies are written in one piece per batch; Nagle would only add latency.
            let _ = s.set_nodelay(true);
            Ok(Accepted::Tcp(s))
        }
        Listener::Unix(l, _) => Ok(Accepted::Unix(l.accept().await?.0)),
    }
}

struct Connection<H, P> {
    handler: Arc<H>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
    protocol: P,
}

impl<H: Handler, P: Protocol> Connection<H, P> {
    /// Serves one connection until the peer closes it, a limit closes it, or shutdown finds it
    /// idle. A request that has been received is always answered before the connection closes.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut self, mut stream: S) {
        let mut inbuf = BytesMut::with_capacity(4096);
        let mut out = BytesMut::new();
        // When the request at the front of `inbuf` started to arrive.
        let mut started = Instant::now();
        loop {
            let close = loop {
                match self.protocol.decode(&mut inbuf) {
                    Ok(Some(request)) => {
                        let reply = match request {
                            Request::Lookup { name, key } => self.handler.lookup(&name, &key).await,
                            Request::Answer(reply) => reply,
                        };
                        self.protocol.encode(&reply, &mut out);
                        started = Instant::now();
                        if out.len() >= FLUSH_AT
                            && !flush(&mut stream, &mut out, self.limits.write_timeout).await
                        {
                            return;
                        }
                    }
                    Ok(None) => break false,
                    Err(reply) => {
                        self.protocol.encode(&reply, &mut out);
                        break true;
                    }
                }
            };
            if !flush(&mut stream, &mut out, self.limits.write_timeout).await {
                return;
            }
            if close {
                linger(&mut stream, self.limits.write_timeout).await;
                return;
            }
            let idle = inbuf.is_empty();
            if idle && *self.stop.borrow() {
                return;
            }
            let deadline = if idle {
                Instant::now() + self.limits.idle_timeout
            } else {
                started + self.limits.request_timeout
            };
            inbuf.reserve(4096);
            let read = tokio::select! {
                // Shutdown closes idle connections at once; a request already under way is
                // read to its end (within `shutdown_grace`, enforced by `run`).
                _ = self.stop.changed(), if idle => return,
                read = timeout_at(deadline, stream.read_buf(&mut inbuf)) => read,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {
                    if idle {
                        started = Instant::now();
                    }
                }
                // EOF, a read error, or a time limit: nothing is under way to answer.
                _ => return,
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

/// Writes `out` within `limit`; false when the connection is unusable.
async fn flush<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut BytesMut, limit: Duration) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = matches!(timeout(limit, stream.write_all(out)).await, Ok(Ok(())));
    out.clear();
    ok
}
