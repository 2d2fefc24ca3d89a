//! A test handler and helpers to run a server and talk to it byte for byte.

use bytes::BytesMut;
use mtasts_resolver::proto::netstring::NetstringCodec;
use mtasts_resolver::proto::{Limits, ListenAddr, Listener, socketmap, tcp_table};
use mtasts_resolver::{Handler, Reply};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Decoder;

/// The policy of Postfix's example exchange (docs/requirements.md §4.1).
pub(crate) const EXAMPLE_POLICY: &str =
    "secure match=mx1.example.com:.example.net servername=hostname";

/// How long a test waits for something that should happen (generous: the machine is shared).
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// An in-memory table: keys to replies, everything else `NotFound`; an optional delay per
/// lookup; records every lookup.
#[derive(Debug, Default)]
pub(crate) struct MapHandler {
    map: HashMap<String, Reply>,
    delay: Duration,
    seen: Mutex<Vec<(String, String)>>,
    calls: AtomicUsize,
}

impl MapHandler {
    pub(crate) fn new(entries: &[(&str, Reply)]) -> Self {
        Self {
            map: entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..Self::default()
        }
    }

    /// The table of the example exchange: `example.com` has a policy.
    pub(crate) fn example() -> Self {
        Self::new(&[("example.com", Reply::Ok(EXAMPLE_POLICY.into()))])
    }

    pub(crate) fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub(crate) fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().expect("not poisoned").clone()
    }

    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` lookups have started.
    pub(crate) async fn wait_for_calls(&self, n: usize) {
        for _ in 0..1000 {
            if self.calls() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the handler was not called {n} times within 10 s");
    }
}

impl Handler for MapHandler {
    async fn lookup(&self, name: &str, key: &str) -> Reply {
        self.seen
            .lock()
            .expect("not poisoned")
            .push((name.to_owned(), key.to_owned()));
        self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.map.get(key).cloned().unwrap_or(Reply::NotFound)
    }
}

/// Which protocol a test server speaks.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Proto {
    Socketmap,
    TcpTable,
}

/// A server running in a task.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) addr: ListenAddr,
    pub(crate) handler: Arc<MapHandler>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// Serves `proto` on 127.0.0.1, an ephemeral port.
    pub(crate) async fn start(proto: Proto, handler: MapHandler, limits: Limits) -> Self {
        let listener = "127.0.0.1:0"
            .parse::<ListenAddr>()
            .expect("valid")
            .bind()
            .await
            .expect("bind loopback");
        Self::start_on(listener, proto, handler, limits)
    }

    pub(crate) fn start_on(
        listener: Listener,
        proto: Proto,
        handler: MapHandler,
        limits: Limits,
    ) -> Self {
        let addr = listener.local_addr().expect("bound");
        let handler = Arc::new(handler);
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let h = Arc::clone(&handler);
        let task = tokio::spawn(async move {
            match proto {
                Proto::Socketmap => socketmap::serve(listener, h, limits, shutdown).await,
                Proto::TcpTable => {
                    tcp_table::serve(listener, h, "tls_policy", limits, shutdown).await
                }
            }
        });
        Self {
            addr,
            handler,
            stop: Some(tx),
            task,
        }
    }

    /// Signals shutdown (the server keeps draining in its task).
    pub(crate) fn signal_stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits (bounded) for the server to return.
    pub(crate) async fn stop(mut self) {
        self.signal_stop();
        timeout(PATIENCE, &mut self.task)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task does not panic")
            .expect("the server returns Ok");
    }

    pub(crate) async fn connect(&self) -> Conn {
        connect(&self.addr)
            .await
            .expect("connect to the test server")
    }
}

/// A client connection over TCP or a unix socket.
#[derive(Debug)]
pub(crate) enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

pub(crate) async fn connect(addr: &ListenAddr) -> io::Result<Conn> {
    Ok(match addr {
        ListenAddr::Tcp(a) => Conn::Tcp(TcpStream::connect(a).await?),
        ListenAddr::Unix(p) => Conn::Unix(UnixStream::connect(p).await?),
    })
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, b),
            Self::Unix(s) => Pin::new(s).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Conn {
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.write_all(bytes).await.expect("write to the server");
    }

    /// Sends `request` and reads a reply of `expected.len()` bytes, which must equal it (what
    /// arrived within 10 s is shown when it does not).
    pub(crate) async fn exchange(&mut self, request: &[u8], expected: &[u8]) {
        self.send(request).await;
        let mut got = Vec::with_capacity(expected.len());
        let _ = timeout(PATIENCE, async {
            while got.len() < expected.len() {
                let mut chunk = vec![0; expected.len() - got.len()];
                match self.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply to {:?}",
            String::from_utf8_lossy(request)
        );
    }

    /// Reads until the server closes (bounded in time): everything it sent before closing.
    pub(crate) async fn read_to_close(&mut self, within: Duration) -> Vec<u8> {
        let mut all = Vec::new();
        timeout(within, self.read_to_end(&mut all))
            .await
            .expect("the server closes the connection in time")
            .expect("the connection closes cleanly");
        all
    }

    /// Whether nothing arrives (and the connection stays open) for `wait`.
    pub(crate) async fn stays_silent(&mut self, wait: Duration) -> bool {
        let mut byte = [0u8; 1];
        timeout(wait, self.read(&mut byte)).await.is_err()
    }

    /// Reads one netstring payload (bounded in time).
    pub(crate) async fn read_netstring(&mut self, max: usize) -> Vec<u8> {
        let mut codec = NetstringCodec::new(max);
        let mut buf = BytesMut::new();
        loop {
            if let Some(p) = codec.decode(&mut buf).expect("a valid netstring") {
                return p.to_vec();
            }
            let n = timeout(PATIENCE, self.read_buf(&mut buf))
                .await
                .expect("the reply arrives within 10 s")
                .expect("read");
            assert!(n > 0, "the server closed the connection mid-reply");
        }
    }
}

/// A netstring for `s`.
pub(crate) fn ns(s: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", s.len()).into_bytes();
    out.extend_from_slice(s);
    out.push(b',');
    out
}
