//! A running server with certificates from the testnet PKI, and raw clients.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mtasts_core::policy::{Mode, Policy};
use mtasts_core::render::build_policy;
use mtasts_net::https::{FetchSettings, PolicyFetch, fetch_policy_at};
use mtasts_net::tls::TlsProbeConfig;
use mtasts_server::{Config, Hosted, HostedDomain, HostedSet, Server};
use mtasts_testnet::pki::{Defect, Pki};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub(crate) const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The policy hosted for `domain` in these tests.
pub(crate) fn policy_for(domain: &str) -> Policy {
    let mx = format!("mx.{domain}");
    build_policy(Mode::Enforce, 86_400, &[mx.as_str()])
        .unwrap()
        .0
}

/// A hosted domain with a valid certificate for `mta-sts.<domain>` from `pki`.
pub(crate) fn hosted_domain(pki: &Pki, domain: &str, policy: Policy) -> HostedDomain {
    let cert = pki
        .issue(&format!("mta-sts.{domain}"), Defect::Valid)
        .unwrap();
    HostedDomain::new(domain, policy, cert.chain, cert.key).unwrap()
}

/// A server on 127.0.0.1 (HTTPS and HTTP on ephemeral ports) hosting `domains`.
pub(crate) struct Running {
    pub(crate) pki: Arc<Pki>,
    pub(crate) hosted: HostedSet,
    pub(crate) https: SocketAddr,
    pub(crate) http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), mtasts_server::Error>>>,
}

/// Limits short enough for tests.
pub(crate) fn test_config() -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    config.http = Some("127.0.0.1:0".parse().unwrap());
    config.grace = Duration::from_secs(2);
    config
}

impl Running {
    pub(crate) async fn start(domains: &[&str]) -> Self {
        Self::start_with(domains, test_config()).await
    }

    pub(crate) async fn start_with(domains: &[&str], config: Config) -> Self {
        let pki = Arc::new(Pki::new().unwrap());
        let hosted = HostedSet::new(Hosted::build(
            domains
                .iter()
                .map(|d| hosted_domain(&pki, d, policy_for(d))),
        ));
        let server = Server::bind(config).await.unwrap();
        let https = server.https_addr();
        let http = server.http_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(hosted.clone(), async move {
            let _ = rx.await;
        }));
        Self {
            pki,
            hosted,
            https,
            http,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the server and waits for `run` to return.
    pub(crate) async fn stop(&mut self) -> Duration {
        let started = std::time::Instant::now();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        started.elapsed()
    }

    pub(crate) fn probe_config(&self) -> TlsProbeConfig {
        TlsProbeConfig::with_roots(self.pki.root_store()).with_now(self.pki.now())
    }

    /// Our own policy fetch (`mtasts_net::https`) against this server.
    pub(crate) async fn fetch(&self, domain: &str) -> PolicyFetch {
        let settings = FetchSettings {
            port: self.https.port(),
            timeout: Duration::from_secs(5),
            ..FetchSettings::default()
        };
        fetch_policy_at(domain, &[LOCALHOST], &self.probe_config(), &settings).await
    }

    /// A rustls client trusting the test PKI, offering `alpn`.
    pub(crate) fn client_config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.pki.root_store())
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }

    /// A TLS connection to the HTTPS listener with SNI `name`.
    pub(crate) async fn tls(
        &self,
        name: &str,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<TcpStream>> {
        self.tls_with(self.client_config(alpn), name).await
    }

    pub(crate) async fn tls_with(
        &self,
        config: Arc<ClientConfig>,
        name: &str,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.https).await?;
        let name = ServerName::try_from(name.to_owned()).unwrap();
        TlsConnector::from(config).connect(name, tcp).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.x: many clients).
pub(crate) async fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(addr).await
}

/// A response with its body collected.
pub(crate) type Answer = Response<Bytes>;

async fn collect(r: Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = r.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Response::from_parts(parts, body)
}

/// An HTTP/1.1 client on an established connection.
pub(crate) async fn h1<T>(io: T) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// An HTTP/2 client on an established connection.
pub(crate) async fn h2<T>(io: T) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// A request with the given method, URI and (for HTTP/1.1) `Host`.
pub(crate) fn request(method: &str, uri: &str, host: Option<&str>) -> Request<Empty<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    b.body(Empty::new()).unwrap()
}

pub(crate) async fn send1(
    s: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> Answer {
    s.ready().await.unwrap();
    collect(s.send_request(req).await.unwrap()).await
}

pub(crate) async fn send2(
    s: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> Answer {
    s.ready().await.unwrap();
    collect(s.send_request(req).await.unwrap()).await
}

/// Reads until the peer closes (or resets), giving up after `limit`; returns how long it took
/// and the bytes read. Bounded: at most 1 MiB is kept.
pub(crate) async fn read_until_closed<T: tokio::io::AsyncRead + Unpin>(
    io: &mut T,
    limit: Duration,
) -> Option<(Duration, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let started = tokio::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + limit, io.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some((started.elapsed(), seen)),
            Ok(Ok(n)) => {
                if seen.len() < 1 << 20 {
                    seen.extend_from_slice(&buf[..n]);
                }
            }
        }
    }
}
