//! Scripted SMTP MX hosts on loopback: a banner, EHLO with or without STARTTLS, the TLS upgrade,
//! and the ways real servers get it wrong (no STARTTLS, a broken handshake, silence, slowness,
//! rejection, a STARTTLS response with injected bytes).
//!
//! The host speaks just enough SMTP for a STARTTLS probe (EHLO, STARTTLS, NOOP, RSET, QUIT), not
//! mail delivery. TLS uses whatever `rustls::ServerConfig` the test gives it (see `pki`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

pub use crate::oldtls::OldTls;

/// How the host behaves.
#[derive(Clone)]
#[non_exhaustive]
pub enum Behaviour {
    /// A well-behaved MX: offers STARTTLS and completes the TLS handshake with `tls`.
    Normal {
        /// The TLS configuration (certificate chain and versions).
        tls: Arc<rustls::ServerConfig>,
    },
    /// Does not offer STARTTLS, and answers 502 if asked anyway.
    NoStartTls,
    /// Offers STARTTLS, answers 220, then sends bytes that are not TLS and closes.
    BrokenHandshake,
    /// Accepts the connection and never says anything.
    Silent,
    /// Waits before the banner, then behaves like `then`.
    SlowBanner {
        /// The delay.
        delay: Duration,
        /// What follows.
        then: Box<Self>,
    },
    /// Answers the connection with `554` and closes.
    Reject,
    /// Sends the STARTTLS `220` together with extra plaintext bytes in one write (a
    /// man-in-the-middle injection the client must refuse), then behaves like `Normal`.
    InjectAfterStartTls {
        /// The TLS configuration.
        tls: Arc<rustls::ServerConfig>,
    },
    /// Offers STARTTLS, answers 220, then answers the ClientHello like a server that knows
    /// nothing newer than TLS 1.0 (see [`OldTls`]).
    OldTls(OldTls),
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Normal { .. } => "Normal",
            Self::NoStartTls => "NoStartTls",
            Self::BrokenHandshake => "BrokenHandshake",
            Self::Silent => "Silent",
            Self::SlowBanner { .. } => "SlowBanner",
            Self::Reject => "Reject",
            Self::InjectAfterStartTls { .. } => "InjectAfterStartTls",
            Self::OldTls(_) => "OldTls",
        };
        f.write_str(name)
    }
}

/// The longest command line the host reads; longer input closes the connection.
const MAX_LINE: usize = 4096;
/// How long the host waits for a command.
const IDLE: Duration = Duration::from_secs(30);

/// A running MX host.
#[derive(Debug)]
pub struct SmtpHost {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SmtpHost {
    /// Starts a host named `hostname` (used in the banner) on `addr` (port 0 picks a free one).
    pub async fn start(
        addr: SocketAddr,
        hostname: &str,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let hostname: Arc<str> = Arc::from(hostname);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let behaviour = behaviour.clone();
                let hostname = Arc::clone(&hostname);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(120),
                        serve(stream, &hostname, behaviour),
                    )
                    .await;
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The address the host listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SmtpHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    hostname: &str,
    mut behaviour: Behaviour,
) -> std::io::Result<()> {
    while let Behaviour::SlowBanner { delay, then } = behaviour {
        tokio::time::sleep(delay).await;
        behaviour = *then;
    }
    let mut stream = BufReader::new(stream);
    match &behaviour {
        Behaviour::Silent => {
            tokio::time::sleep(IDLE).await;
            return Ok(());
        }
        Behaviour::Reject => {
            stream
                .get_mut()
                .write_all(b"554 5.7.1 no service here\r\n")
                .await?;
            return Ok(());
        }
        _ => {}
    }
    stream
        .get_mut()
        .write_all(format!("220 {hostname} ESMTP testnet\r\n").as_bytes())
        .await?;
    let offers_tls = !matches!(behaviour, Behaviour::NoStartTls);
    if session(&mut stream, hostname, offers_tls).await? != Next::StartTls {
        return Ok(());
    }
    let tls = match &behaviour {
        Behaviour::BrokenHandshake => {
            stream
                .get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await?;
            // Wait for the ClientHello, then answer it with something that is not TLS.
            let mut hello = [0u8; 512];
            let _ = tokio::time::timeout(IDLE, stream.read(&mut hello)).await;
            stream.get_mut().write_all(b"this is not TLS\r\n").await?;
            return Ok(());
        }
        Behaviour::OldTls(old) => {
            stream
                .get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await?;
            return crate::oldtls::answer(stream.get_mut(), *old).await;
        }
        Behaviour::InjectAfterStartTls { tls } => {
            stream
                .get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n250 injected\r\n")
                .await?;
            tls
        }
        Behaviour::Normal { tls } => {
            stream
                .get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await?;
            tls
        }
        _ => return Ok(()),
    };
    let tls_stream = TlsAcceptor::from(Arc::clone(tls))
        .accept(stream.into_inner())
        .await?;
    let mut tls_stream = BufReader::new(tls_stream);
    session(&mut tls_stream, hostname, false).await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Quit,
    StartTls,
}

/// Runs commands until QUIT, STARTTLS (when offered), EOF or an over-long line.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    hostname: &str,
    offers_tls: bool,
) -> std::io::Result<Next> {
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::time::timeout(
            IDLE,
            (&mut *stream)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line),
        )
        .await;
        match read {
            Ok(Ok(0)) | Err(_) => return Ok(Next::Quit),
            Ok(Ok(_)) if !line.ends_with(b"\n") => return Ok(Next::Quit),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
        let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
        let verb = cmd.split_whitespace().next().unwrap_or("");
        let reply: String = match verb {
            "EHLO" => {
                let mut r =
                    format!("250-{hostname} greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n");
                if offers_tls {
                    r.push_str("250-STARTTLS\r\n");
                }
                r.push_str("250 8BITMIME\r\n");
                r
            }
            "HELO" => format!("250 {hostname}\r\n"),
            "STARTTLS" if offers_tls => return Ok(Next::StartTls),
            "STARTTLS" => "502 5.5.1 STARTTLS not available\r\n".into(),
            "NOOP" | "RSET" => "250 2.0.0 ok\r\n".into(),
            "QUIT" => {
                stream.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(Next::Quit);
            }
            _ => "502 5.5.2 command not recognised\r\n".into(),
        };
        stream.get_mut().write_all(reply.as_bytes()).await?;
    }
}
