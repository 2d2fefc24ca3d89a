//! A TCP relay on loopback that a test can cut and restore: an outage of a server (a database,
//! say) as one client sees it, without stopping the server that other tests share.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Relays every connection made to `127.0.0.1:port` to `upstream`. [`Relay::cut`] closes every
/// relayed connection and stops listening; [`Relay::restore`] listens again on the same port.
#[derive(Debug)]
pub struct Relay {
    /// The loopback port clients connect to.
    pub port: u16,
    upstream: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying from `127.0.0.1:port` (0: any free port) to `upstream`.
    ///
    /// # Panics
    /// When the port cannot be bound (a test set-up error).
    pub async fn start(port: u16, upstream: SocketAddr) -> Self {
        let (port, task) = Self::listen(port, upstream).await;
        Self {
            port,
            upstream,
            task,
        }
    }

    async fn listen(port: u16, upstream: SocketAddr) -> (u16, JoinHandle<()>) {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        let task = tokio::spawn(async move {
            // Dropped with the task: aborts every relayed connection.
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        (port, task)
    }

    /// Cuts every connection and stops listening.
    pub async fn cut(&mut self) {
        self.task.abort();
        // Returns once the task (listener and connections) is dropped.
        let _ = (&mut self.task).await;
    }

    /// Listens again on the same port.
    pub async fn restore(&mut self) {
        if !self.task.is_finished() {
            self.cut().await;
        }
        self.task = Self::listen(self.port, self.upstream).await.1;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
