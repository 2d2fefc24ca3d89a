//! Scripted SMTP MX hosts on loopback: a banner, EHLO with or without STARTTLS, the TLS upgrade,
//! and the ways real servers get it wrong (no STARTTLS, a broken handshake, silence, slowness,
//! rejection, a STARTTLS response with injected bytes).
//!
//! The host speaks enough SMTP for a STARTTLS probe (EHLO, STARTTLS, NOOP, RSET, QUIT) and for a
//! real MTA to deliver to it (MAIL, RCPT, DATA, before or after STARTTLS): every message it
//! accepts is kept, and [`SmtpHost::received`] shows them to the test. TLS uses whatever
//! `rustls::ServerConfig` the test gives it (see `pki`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
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
    /// Greets with this reply line (e.g. `421 4.7.0 try again later`, without CRLF) and closes.
    Banner(&'static str),
    /// Greets with 220, then answers EHLO with this reply line and closes.
    RefuseEhlo(&'static str),
    /// Greets with 220, offers STARTTLS, then answers STARTTLS with this reply line and closes.
    RefuseStartTls(&'static str),
    /// Greets with 220, then waits this long before answering EHLO (as `Normal` would, but
    /// without STARTTLS).
    SlowEhlo(Duration),
    /// Greets, offers STARTTLS and answers it with 220, then says nothing: the TLS handshake
    /// never completes.
    StalledHandshake,
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
            Self::Banner(_) => "Banner",
            Self::RefuseEhlo(_) => "RefuseEhlo",
            Self::RefuseStartTls(_) => "RefuseStartTls",
            Self::SlowEhlo(_) => "SlowEhlo",
            Self::StalledHandshake => "StalledHandshake",
        };
        f.write_str(name)
    }
}

/// The longest command line the host reads; longer input closes the connection.
const MAX_LINE: usize = 4096;
/// How long the host waits for a command.
const IDLE: Duration = Duration::from_secs(30);
/// The largest message the host accepts (as its EHLO `SIZE` says); more closes the connection.
const MAX_MESSAGE: usize = 10_240_000;
/// The most recipients one message may have.
const MAX_RCPT: usize = 100;
/// The most messages a host keeps; later ones are refused with 452.
const MAX_KEPT: usize = 1000;

/// A message the host accepted (after the final `.` of DATA was answered 250).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Received {
    /// The `MAIL FROM` address, without the angle brackets.
    pub from: String,
    /// The `RCPT TO` addresses, in order, without the angle brackets.
    pub to: Vec<String>,
    /// The message as sent after DATA: header and body, CRLF line ends, dots unstuffed, without
    /// the terminating `.` line.
    pub data: Vec<u8>,
    /// Whether it came over TLS (after STARTTLS).
    pub tls: bool,
}

type Mailbox = Arc<Mutex<Vec<Received>>>;

/// A running MX host.
#[derive(Debug)]
pub struct SmtpHost {
    addr: SocketAddr,
    task: JoinHandle<()>,
    mailbox: Mailbox,
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
        let mailbox = Mailbox::default();
        let kept = Arc::clone(&mailbox);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let behaviour = behaviour.clone();
                let hostname = Arc::clone(&hostname);
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(120),
                        serve(stream, &hostname, behaviour, &kept),
                    )
                    .await;
                });
            }
        });
        Ok(Self {
            addr,
            task,
            mailbox,
        })
    }

    /// The address the host listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The messages accepted so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.mailbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
    mailbox: &Mailbox,
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
        Behaviour::Banner(reply) => {
            stream
                .get_mut()
                .write_all(format!("{reply}\r\n").as_bytes())
                .await?;
            return Ok(());
        }
        Behaviour::RefuseEhlo(_) | Behaviour::SlowEhlo(_) => {
            return refuse_ehlo(stream, hostname, &behaviour).await;
        }
        _ => {}
    }
    stream
        .get_mut()
        .write_all(format!("220 {hostname} ESMTP testnet\r\n").as_bytes())
        .await?;
    let offers_tls = !matches!(behaviour, Behaviour::NoStartTls);
    let plain = Session {
        hostname,
        offers_tls,
        tls: false,
        mailbox,
    };
    if plain.run(&mut stream).await? != Next::StartTls {
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
        Behaviour::RefuseStartTls(reply) => {
            stream
                .get_mut()
                .write_all(format!("{reply}\r\n").as_bytes())
                .await?;
            return Ok(());
        }
        Behaviour::StalledHandshake => {
            stream
                .get_mut()
                .write_all(b"220 2.0.0 go ahead\r\n")
                .await?;
            tokio::time::sleep(IDLE).await;
            return Ok(());
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
    let secure = Session {
        hostname,
        offers_tls: false,
        tls: true,
        mailbox,
    };
    secure.run(&mut tls_stream).await?;
    Ok(())
}

/// [`Behaviour::RefuseEhlo`] and [`Behaviour::SlowEhlo`]: greets, reads EHLO, then refuses it
/// or answers it late (without STARTTLS).
async fn refuse_ehlo(
    mut stream: BufReader<tokio::net::TcpStream>,
    hostname: &str,
    behaviour: &Behaviour,
) -> std::io::Result<()> {
    stream
        .get_mut()
        .write_all(format!("220 {hostname} ESMTP testnet\r\n").as_bytes())
        .await?;
    let mut line = Vec::new();
    if read_line(&mut stream, &mut line, MAX_LINE).await?.is_none() {
        return Ok(());
    }
    let reply = match behaviour {
        Behaviour::RefuseEhlo(reply) => format!("{reply}\r\n"),
        Behaviour::SlowEhlo(delay) => {
            tokio::time::sleep(*delay).await;
            format!("250 {hostname}\r\n")
        }
        _ => return Ok(()),
    };
    stream.get_mut().write_all(reply.as_bytes()).await?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Next {
    Quit,
    StartTls,
}

/// One SMTP session, in plaintext or after STARTTLS.
struct Session<'a> {
    hostname: &'a str,
    /// Whether EHLO offers STARTTLS (and STARTTLS is accepted).
    offers_tls: bool,
    /// Whether the session runs over TLS (recorded with each message).
    tls: bool,
    mailbox: &'a Mailbox,
}

/// The envelope being built: `MAIL FROM`, then the recipients.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

/// The address in `MAIL FROM:<a> ...` or `RCPT TO:<a> ...` (`prefix` upper-case, with the colon).
fn address(line: &str, prefix: &str) -> Option<String> {
    let head = line.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = line[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

/// Reads one line of at most `max` bytes into `line` (cleared first); `None` at EOF, time-out or
/// a line longer than `max`.
async fn read_line<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<()>> {
    line.clear();
    let read = tokio::time::timeout(
        IDLE,
        (&mut *stream).take(max as u64).read_until(b'\n', line),
    )
    .await;
    match read {
        Ok(Ok(0)) | Err(_) => Ok(None),
        Ok(Ok(_)) if !line.ends_with(b"\n") => Ok(None),
        Ok(Ok(_)) => Ok(Some(())),
        Ok(Err(e)) => Err(e),
    }
}

impl Session<'_> {
    /// Runs commands until QUIT, STARTTLS (when offered), EOF or an over-long line.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut BufReader<S>,
    ) -> std::io::Result<Next> {
        let hostname = self.hostname;
        let mut line = Vec::new();
        let mut envelope = Envelope::default();
        loop {
            if read_line(stream, &mut line, MAX_LINE).await?.is_none() {
                return Ok(Next::Quit);
            }
            let text = String::from_utf8_lossy(&line).trim().to_string();
            let cmd = text.to_ascii_uppercase();
            let verb = cmd.split_whitespace().next().unwrap_or("");
            let reply: String = match verb {
                "EHLO" => {
                    envelope = Envelope::default();
                    let mut r = format!(
                        "250-{hostname} greets you\r\n250-PIPELINING\r\n250-SIZE {MAX_MESSAGE}\r\n"
                    );
                    if self.offers_tls {
                        r.push_str("250-STARTTLS\r\n");
                    }
                    r.push_str("250 8BITMIME\r\n");
                    r
                }
                "HELO" => format!("250 {hostname}\r\n"),
                "STARTTLS" if self.offers_tls => return Ok(Next::StartTls),
                "STARTTLS" => "502 5.5.1 STARTTLS not available\r\n".into(),
                "MAIL" => match address(&text, "MAIL FROM:") {
                    Some(from) => {
                        envelope = Envelope {
                            from: Some(from),
                            to: Vec::new(),
                        };
                        "250 2.1.0 ok\r\n".into()
                    }
                    None => "501 5.5.4 syntax: MAIL FROM:<address>\r\n".into(),
                },
                "RCPT" => match address(&text, "RCPT TO:") {
                    _ if envelope.from.is_none() => "503 5.5.1 MAIL first\r\n".into(),
                    _ if envelope.to.len() >= MAX_RCPT => {
                        "452 4.5.3 too many recipients\r\n".into()
                    }
                    Some(to) => {
                        envelope.to.push(to);
                        "250 2.1.5 ok\r\n".into()
                    }
                    None => "501 5.5.4 syntax: RCPT TO:<address>\r\n".into(),
                },
                "DATA" if envelope.to.is_empty() => "503 5.5.1 RCPT first\r\n".into(),
                "DATA" => {
                    stream
                        .get_mut()
                        .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let Some(data) = read_data(stream, &mut line).await? else {
                        return Ok(Next::Quit);
                    };
                    let envelope = std::mem::take(&mut envelope);
                    self.keep(Received {
                        from: envelope.from.unwrap_or_default(),
                        to: envelope.to,
                        data,
                        tls: self.tls,
                    })
                }
                "NOOP" => "250 2.0.0 ok\r\n".into(),
                "RSET" => {
                    envelope = Envelope::default();
                    "250 2.0.0 ok\r\n".into()
                }
                "QUIT" => {
                    stream.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                    return Ok(Next::Quit);
                }
                _ => "502 5.5.2 command not recognised\r\n".into(),
            };
            stream.get_mut().write_all(reply.as_bytes()).await?;
        }
    }

    /// Stores a message; the reply to the final dot.
    fn keep(&self, message: Received) -> String {
        let mut kept = self.mailbox.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() >= MAX_KEPT {
            return "452 4.3.1 mailbox full\r\n".into();
        }
        kept.push(message);
        format!("250 2.0.0 ok: queued as {}\r\n", kept.len())
    }
}

/// Reads the message after `354` up to the `.` line, unstuffing dots; `None` at EOF, time-out
/// or past [`MAX_MESSAGE`].
async fn read_data<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    loop {
        let room = MAX_MESSAGE.saturating_sub(data.len()).max(3);
        if read_line(stream, line, room).await?.is_none() {
            return Ok(None);
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            return Ok(Some(data));
        }
        let body = line.strip_prefix(b".").unwrap_or(line);
        data.extend_from_slice(body);
        if data.len() > MAX_MESSAGE {
            return Ok(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// Sends `lines` (each followed by CRLF) and reads replies until `want` lines have arrived.
    async fn exchange(stream: &mut BufReader<TcpStream>, send: &str, want: usize) -> Vec<String> {
        stream.get_mut().write_all(send.as_bytes()).await.unwrap();
        let mut replies = Vec::new();
        while replies.len() < want {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed after {replies:?}");
            replies.push(line.trim_end().to_string());
        }
        replies
    }

    #[tokio::test]
    async fn accepts_and_keeps_a_whole_message_in_plaintext() {
        let host = SmtpHost::start(
            "127.0.0.1:0".parse().unwrap(),
            "mx.example.test",
            Behaviour::NoStartTls,
        )
        .await
        .unwrap();
        let mut s = BufReader::new(TcpStream::connect(host.addr()).await.unwrap());
        assert!(exchange(&mut s, "", 1).await[0].starts_with("220 "));
        let ehlo = exchange(&mut s, "EHLO client.test\r\n", 4).await;
        assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
        // Out of order: DATA and RCPT before MAIL.
        assert!(exchange(&mut s, "DATA\r\n", 1).await[0].starts_with("503 "));
        assert!(exchange(&mut s, "RCPT TO:<a@b.test>\r\n", 1).await[0].starts_with("503 "));
        assert!(exchange(&mut s, "MAIL FROM:a@b\r\n", 1).await[0].starts_with("501 "));
        // Pipelined, as Postfix sends it.
        let r = exchange(
            &mut s,
            "MAIL FROM:<s@e2e.test> SIZE=10\r\nRCPT TO:<u@example.test>\r\nrcpt to:<v@example.test>\r\nDATA\r\n",
            4,
        )
        .await;
        assert!(r[0].starts_with("250 ") && r[1].starts_with("250 ") && r[2].starts_with("250 "));
        assert!(r[3].starts_with("354 "), "{r:?}");
        let r = exchange(&mut s, "Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n", 1).await;
        assert_eq!(r[0], "250 2.0.0 ok: queued as 1");
        assert!(exchange(&mut s, "QUIT\r\n", 1).await[0].starts_with("221 "));
        assert_eq!(
            host.received(),
            vec![Received {
                from: "s@e2e.test".into(),
                to: vec!["u@example.test".into(), "v@example.test".into()],
                data: b"Subject: hi\r\n\r\n.dot\r\nbody\r\n".to_vec(),
                tls: false,
            }]
        );
    }

    #[tokio::test]
    async fn an_unfinished_message_is_not_kept() {
        let host = SmtpHost::start(
            "127.0.0.1:0".parse().unwrap(),
            "mx.example.test",
            Behaviour::NoStartTls,
        )
        .await
        .unwrap();
        let mut s = BufReader::new(TcpStream::connect(host.addr()).await.unwrap());
        exchange(&mut s, "", 1).await;
        let r = exchange(
            &mut s,
            "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<u@x.test>\r\nDATA\r\npartial\r\n",
            4,
        )
        .await;
        assert!(r[3].starts_with("354 "), "{r:?}");
        drop(s);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(host.received().is_empty());
    }
}
