//! The SMTP receiver for `rua=mailto:` reports (RFC 8460 §3; decisions D51, D52).
//!
//! A small tokio state machine on smtp-proto's codec: `EHLO`/`HELO`, `STARTTLS` (with the
//! certificate configuration the caller gives, the server's), `MAIL` (with `SIZE`), `RCPT`,
//! `DATA`, `RSET`, `NOOP`, `QUIT`; everything else is `502`. Every recipient is accepted: the
//! receiver is a report mailbox, and what decides is the report inside (D27: only policy
//! domains hosted here). A mail is answered `250` only after its reports are committed to the
//! store; a mail holding no valid report is refused with `550 5.6.0` and the parser's reason,
//! one whose reports are all for other domains with `550 5.7.1`, a store out of reach with
//! `451 4.3.0` (the sender retries).
//!
//! The DKIM verdict of each mail ([`crate::dkim`]) is stored with its reports; with
//! [`SmtpLimits::require_dkim`] a mail without a passing signature is refused `550 5.7.20`.
//!
//! Limits ([`SmtpLimits`], all enforced before anything is parsed): connections at once and
//! from one address (more are told `421` and closed), command line length (smtp-proto's 4,096
//! bytes), message size (declared in `MAIL ... SIZE=` or counted while receiving: `552`, the
//! rest read and dropped), recipients per mail, mails and commands per connection, bad commands
//! per connection, the time to send a whole command line, the whole `DATA`, and the whole
//! session. Memory: a connection holds at most one mail (`max_message`); at most one mail per
//! core is parsed and DKIM-verified at once, each within core's limits lowered for strangers
//! ([`MAX_REPORT_DECOMPRESSED`] per report, [`MAX_MAIL_DECOMPRESSED`] per mail, twice that in
//! memory), the others waiting their turn. Bytes a client sends after `STARTTLS` in the same
//! packet (an injection attempt, CVE-2011-0411) are dropped. `STARTTLS` is offered only while a
//! certificate is there ([`SmtpReceiver::with_tls_ready`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mtasts_core::report::RunBudget;
use mtasts_store::{Arrival, DkimVerdict, Via};
use smtp_proto::request::receiver::{
    DataReceiver, DummyDataReceiver, MAX_LINE_LENGTH, RequestReceiver,
};
use smtp_proto::{EhloResponse, Error as ProtoError, Request};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout, timeout_at};

use crate::dkim::DkimVerifier;

mod wire;
use crate::{Intake, Tally};
use wire::{IpSlot, ip_key, one_line, proto_error};

/// The limits of the SMTP receiver. Defaults in [`SmtpLimits::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLimits {
    /// The name in the greeting and the `EHLO` answer.
    pub hostname: String,
    /// The largest mail, in bytes (after dot-unstuffing). Default 10 MiB.
    pub max_message: usize,
    /// Recipients per mail. Default 50.
    pub max_recipients: usize,
    /// Mails per connection. Default 100.
    pub max_messages: usize,
    /// Commands per connection. Default 1,000.
    pub max_commands: usize,
    /// Bad commands (unknown, malformed, out of sequence) per connection. Default 10.
    pub max_errors: usize,
    /// Connections at once. Default 64.
    pub max_connections: usize,
    /// Connections at once from one client address (IPv6 by its /64). Default 8.
    pub max_connections_per_ip: usize,
    /// Time to send one command line (RFC 5321 §4.5.3.2.7 says at least 5 minutes). Default
    /// 300 s.
    pub command_timeout: Duration,
    /// Time to send the whole `DATA`. Default 600 s.
    pub data_timeout: Duration,
    /// Time for the whole connection. Default 1,800 s.
    pub session_timeout: Duration,
    /// Refuse mail without a passing DKIM signature (RFC 8460 §3 allows it). Default false:
    /// kept, with its verdict recorded.
    pub require_dkim: bool,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message: 10 * 1024 * 1024,
            max_recipients: 50,
            max_messages: 100,
            max_commands: 1000,
            max_errors: 10,
            max_connections: 64,
            max_connections_per_ip: 8,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            session_timeout: Duration::from_secs(1800),
            require_dkim: false,
        }
    }
}

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;
/// The most one report in a mail may decompress to (core's per-report limit, lowered for a
/// stranger's mail as for an HTTPS `POST`).
pub const MAX_REPORT_DECOMPRESSED: usize = 16 * 1024 * 1024;
/// The most all of a mail's reports may decompress to.
pub const MAX_MAIL_DECOMPRESSED: usize = 64 * 1024 * 1024;
/// Time for the TLS handshake after `STARTTLS`.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The SMTP receiver: one per listener, shared by its connections.
pub struct SmtpReceiver {
    intake: Intake,
    dkim: Option<DkimVerifier>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: SmtpLimits,
    connections: Arc<Semaphore>,
    /// Mails being parsed and verified at once (CPU and memory): one per core.
    parsing: Arc<Semaphore>,
    /// Open connections by client address (IPv6 by /64).
    per_ip: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    /// Whether `STARTTLS` has a certificate to offer now (no SNI: the hostname's).
    tls_ready: Option<TlsReady>,
}

/// Says whether a certificate is there for `STARTTLS` when the client sends no SNI.
pub type TlsReady = Arc<dyn Fn() -> bool + Send + Sync>;

impl std::fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("limits", &self.limits)
            .field("starttls", &self.tls.is_some())
            .field("dkim", &self.dkim.is_some())
            .finish_non_exhaustive()
    }
}

/// How a session ended (for the log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Quit,
    Closed,
    Dropped,
}

enum Step {
    End(End),
    StartTls,
}

/// One connection's state.
#[derive(Debug, Default)]
struct Session {
    peer: String,
    helo: Option<String>,
    tls: bool,
    from: Option<String>,
    rcpts: usize,
    commands: usize,
    errors: usize,
    messages: usize,
}

/// A connection's stream with its read buffer.
struct Conn<S> {
    io: S,
    buf: Vec<u8>,
    pos: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(io: S) -> Self {
        Self {
            io,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Reads more bytes (replacing what was consumed); `false` at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        self.buf.clear();
        self.pos = 0;
        self.buf.resize(READ_CHUNK, 0);
        let n = self.io.read(&mut self.buf).await?;
        self.buf.truncate(n);
        Ok(n > 0)
    }

    async fn reply(&mut self, code: u16, text: &str) -> std::io::Result<()> {
        let line = format!("{code} {text}\r\n");
        self.io.write_all(line.as_bytes()).await?;
        self.io.flush().await
    }
}

impl SmtpReceiver {
    /// A receiver storing through `intake` (normally [`crate::Accept::Hosted`]), checking DKIM
    /// with `dkim` when given, offering `STARTTLS` with `tls` when given.
    pub fn new(
        intake: Intake,
        dkim: Option<DkimVerifier>,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: SmtpLimits,
    ) -> Self {
        let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        // A stranger's mail gets lower parser limits than a file the operator imports, as an
        // HTTPS POST does: its memory is bounded by twice what it may decompress to.
        let mut l = intake.limits().clone();
        l.max_input = l.max_input.min(limits.max_message);
        l.max_decompressed = l.max_decompressed.min(MAX_REPORT_DECOMPRESSED);
        l.max_mail_decompressed = l.max_mail_decompressed.min(MAX_MAIL_DECOMPRESSED);
        l.max_run_decompressed = l.max_run_decompressed.min(MAX_MAIL_DECOMPRESSED as u64);
        l.max_report_memory = l.max_report_memory.min(2 * MAX_REPORT_DECOMPRESSED);
        l.max_mail_memory = l.max_mail_memory.min(2 * MAX_MAIL_DECOMPRESSED);
        Self {
            intake: intake.with_limits(l),
            dkim,
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            limits,
            connections,
            parsing: Arc::new(Semaphore::new(cores)),
            per_ip: Arc::default(),
            tls_ready: None,
        }
    }

    /// Offers `STARTTLS` only while `ready` says a certificate is there for clients that send
    /// no SNI (otherwise their handshake could only fail).
    #[must_use]
    pub fn with_tls_ready(mut self, ready: TlsReady) -> Self {
        self.tls_ready = Some(ready);
        self
    }

    fn offers_tls(&self) -> bool {
        self.tls.is_some() && self.tls_ready.as_ref().is_none_or(|r| r())
    }

    /// Accepts connections on `listener` until `stop` completes; each runs in its own task.
    /// Sessions under way when `stop` completes run to their end or time-out.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut stop => return,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "SMTP intake: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let this = Arc::clone(&self);
            tokio::spawn(async move { this.connection(stream, peer).await });
        }
    }

    /// Serves one connection to its end.
    pub async fn connection(&self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let key = ip_key(peer.ip());
        let over = match self.per_ip.lock() {
            Ok(mut m) => {
                let n = m.entry(key).or_insert(0);
                if *n >= self.limits.max_connections_per_ip {
                    true
                } else {
                    *n += 1;
                    false
                }
            }
            Err(_) => true,
        };
        if over {
            metrics::counter!("mtasts_intake_smtp_connections_total", "result" => "busy-client")
                .increment(1);
            let mut c = Conn::new(stream);
            let _ = c
                .reply(
                    421,
                    "4.7.0 too many connections from your address, try again later",
                )
                .await;
            return;
        }
        let _slot = IpSlot {
            map: Arc::clone(&self.per_ip),
            key,
        };
        let Ok(_permit) = Arc::clone(&self.connections).try_acquire_owned() else {
            metrics::counter!("mtasts_intake_smtp_connections_total", "result" => "busy")
                .increment(1);
            let mut c = Conn::new(stream);
            let _ = c
                .reply(421, "4.3.2 too many connections, try again later")
                .await;
            return;
        };
        metrics::counter!("mtasts_intake_smtp_connections_total", "result" => "accepted")
            .increment(1);
        let deadline = Instant::now() + self.limits.session_timeout;
        let mut s = Session {
            peer: peer.to_string(),
            ..Session::default()
        };
        let end = match timeout_at(deadline, self.session(stream, &mut s)).await {
            Ok(end) => end,
            Err(_) => End::Dropped,
        };
        tracing::debug!(peer = %s.peer, ?end, messages = s.messages, "SMTP session ended");
    }

    async fn session(&self, stream: TcpStream, s: &mut Session) -> End {
        let mut c = Conn::new(stream);
        let greeting = format!("{} ESMTP mtasts TLS-RPT intake", self.limits.hostname);
        if c.reply(220, &greeting).await.is_err() {
            return End::Closed;
        }
        match self.commands(&mut c, s).await {
            Step::End(e) => e,
            Step::StartTls => {
                let Some(acceptor) = &self.tls else {
                    return End::Dropped;
                };
                let tls = match timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(c.io)).await {
                    Ok(Ok(t)) => t,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %s.peer, error = %e, "SMTP intake: TLS handshake failed");
                        return End::Dropped;
                    }
                    Err(_) => return End::Dropped,
                };
                // RFC 3207 §4.2: the session starts over; nothing said before counts.
                s.tls = true;
                s.helo = None;
                s.from = None;
                s.rcpts = 0;
                let mut c = Conn::new(tls);
                match self.commands(&mut c, s).await {
                    Step::End(e) => e,
                    Step::StartTls => End::Dropped,
                }
            }
        }
    }

    /// Reads and answers commands until the client quits, the connection ends or a limit is
    /// reached, or `STARTTLS` is accepted (the caller upgrades the stream).
    async fn commands<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        c: &mut Conn<S>,
        s: &mut Session,
    ) -> Step {
        let mut requests = RequestReceiver::default();
        // The whole command line must come within command_timeout (not each read: a client
        // sending a byte now and then is cut off as one that sends nothing).
        let mut deadline = Instant::now() + self.limits.command_timeout;
        loop {
            if c.pending().is_empty() {
                match timeout_at(deadline, c.fill()).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false) | Err(_)) => return Step::End(End::Closed),
                    Err(_) => {
                        let _ = c.reply(421, "4.4.2 timeout waiting for a command").await;
                        return Step::End(End::Dropped);
                    }
                }
            }
            let mut iter = c.pending().iter();
            let before = iter.len();
            let parsed = requests.ingest(&mut iter).map(Request::into_owned);
            let consumed = before - iter.len();
            c.pos += consumed;
            // smtp-proto caps a line it has to buffer across reads; one that came whole in a
            // read is capped here, the same.
            let parsed = match parsed {
                Ok(_) if consumed > MAX_LINE_LENGTH => Err(ProtoError::ResponseTooLong),
                other => other,
            };
            let request = match parsed {
                Err(ProtoError::NeedsMoreData { .. }) => continue,
                Err(e) => {
                    s.commands += 1;
                    deadline = Instant::now() + self.limits.command_timeout;
                    let (code, text) = proto_error(&e);
                    if self.bad(c, s, code, &text).await {
                        return Step::End(End::Dropped);
                    }
                    continue;
                }
                Ok(r) => r,
            };
            s.commands += 1;
            deadline = Instant::now() + self.limits.command_timeout;
            if s.commands > self.limits.max_commands {
                let _ = c.reply(421, "4.7.0 too many commands; closing").await;
                return Step::End(End::Dropped);
            }
            let ok = match request {
                Request::Ehlo { host } => {
                    s.helo = Some(host);
                    s.from = None;
                    s.rcpts = 0;
                    self.ehlo(c, s).await
                }
                Request::Helo { host } => {
                    s.helo = Some(host);
                    s.from = None;
                    s.rcpts = 0;
                    c.reply(250, &self.limits.hostname).await
                }
                Request::StartTls => {
                    if !self.offers_tls() || s.tls {
                        if self
                            .bad(c, s, 502, "5.5.1 STARTTLS is not offered here")
                            .await
                        {
                            return Step::End(End::Dropped);
                        }
                        continue;
                    }
                    if c.reply(220, "2.0.0 ready to start TLS").await.is_err() {
                        return Step::End(End::Closed);
                    }
                    let injected = c.pending().len();
                    if injected > 0 {
                        tracing::info!(peer = %s.peer, bytes = injected,
                            "SMTP intake: bytes sent after STARTTLS in the clear dropped");
                    }
                    return Step::StartTls;
                }
                Request::Mail { from } => {
                    if s.helo.is_none() {
                        if self.bad(c, s, 503, "5.5.1 say EHLO first").await {
                            return Step::End(End::Dropped);
                        }
                        continue;
                    }
                    if s.from.is_some() {
                        if self
                            .bad(c, s, 503, "5.5.1 a mail is already under way")
                            .await
                        {
                            return Step::End(End::Dropped);
                        }
                        continue;
                    }
                    if s.messages >= self.limits.max_messages {
                        let _ = c
                            .reply(421, "4.7.0 too many mails on one connection; closing")
                            .await;
                        return Step::End(End::Dropped);
                    }
                    if from.size > self.limits.max_message {
                        let text = format!(
                            "5.3.4 the mail is larger than the {} bytes accepted",
                            self.limits.max_message
                        );
                        c.reply(552, &text).await
                    } else {
                        s.from = Some(from.address);
                        s.rcpts = 0;
                        c.reply(250, "2.1.0 sender ok").await
                    }
                }
                Request::Rcpt { .. } => {
                    if s.from.is_none() {
                        if self.bad(c, s, 503, "5.5.1 say MAIL first").await {
                            return Step::End(End::Dropped);
                        }
                        continue;
                    }
                    if s.rcpts >= self.limits.max_recipients {
                        c.reply(452, "4.5.3 too many recipients").await
                    } else {
                        s.rcpts += 1;
                        c.reply(250, "2.1.5 recipient ok").await
                    }
                }
                Request::Data => {
                    if s.from.is_none() || s.rcpts == 0 {
                        if self.bad(c, s, 503, "5.5.1 say MAIL and RCPT first").await {
                            return Step::End(End::Dropped);
                        }
                        continue;
                    }
                    match self.data(c, s).await {
                        Ok(true) => Ok(()),
                        Ok(false) | Err(_) => return Step::End(End::Dropped),
                    }
                }
                Request::Rset => {
                    s.from = None;
                    s.rcpts = 0;
                    c.reply(250, "2.0.0 reset").await
                }
                Request::Noop { .. } => c.reply(250, "2.0.0 ok").await,
                Request::Quit => {
                    let _ = c.reply(221, "2.0.0 bye").await;
                    return Step::End(End::Quit);
                }
                other => {
                    let text = format!("5.5.1 {} is not implemented here", other.name());
                    if self.bad(c, s, 502, &text).await {
                        return Step::End(End::Dropped);
                    }
                    continue;
                }
            };
            if ok.is_err() {
                return Step::End(End::Closed);
            }
        }
    }

    /// Answers a bad command; `true` when the connection is to be dropped (too many).
    async fn bad<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        c: &mut Conn<S>,
        s: &mut Session,
        code: u16,
        text: &str,
    ) -> bool {
        s.errors += 1;
        if s.errors > self.limits.max_errors || s.commands > self.limits.max_commands {
            let _ = c.reply(421, "4.7.0 too many errors; closing").await;
            return true;
        }
        c.reply(code, text).await.is_err()
    }

    async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        c: &mut Conn<S>,
        s: &Session,
    ) -> std::io::Result<()> {
        let mut e = EhloResponse::new(self.limits.hostname.as_str());
        e.capabilities = smtp_proto::EXT_8BIT_MIME
            | smtp_proto::EXT_ENHANCED_STATUS_CODES
            | smtp_proto::EXT_SIZE;
        if self.offers_tls() && !s.tls {
            e.capabilities |= smtp_proto::EXT_START_TLS;
        }
        e.size = self.limits.max_message;
        let mut out = Vec::new();
        e.write(&mut out)?;
        c.io.write_all(&out).await?;
        c.io.flush().await
    }

    /// Receives one mail after `DATA` and answers it. `Ok(false)`: the connection is to be
    /// dropped (time-out, closed).
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        c: &mut Conn<S>,
        s: &mut Session,
    ) -> std::io::Result<bool> {
        c.reply(354, "end the mail with <CRLF>.<CRLF>").await?;
        let deadline = Instant::now() + self.limits.data_timeout;
        let mut receiver = DataReceiver::new();
        // The receiver finds `.` lines only after a CRLF: prime it with one, so that an empty
        // mail (`.` at once) ends it and a first line `..x` is unstuffed (RFC 5321 §4.5.2).
        let mut primer = Vec::new();
        receiver.ingest(&mut b"\r\n".iter(), &mut primer);
        let mut mail: Vec<u8> = Vec::new();
        let mut over = false;
        let mut dropping: Option<DummyDataReceiver> = None;
        loop {
            if c.pending().is_empty() {
                match timeout_at(deadline, c.fill()).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false) | Err(_)) => return Ok(false),
                    Err(_) => {
                        c.reply(421, "4.4.2 the mail did not arrive in time; closing")
                            .await?;
                        return Ok(false);
                    }
                }
            }
            let mut iter = c.pending().iter();
            let before = iter.len();
            let done = if let Some(d) = &mut dropping {
                d.ingest(&mut iter)
            } else {
                // Feed at most what still fits, plus two bytes: the terminator's CR is pushed and
                // popped again, and one more byte shows the mail is over.
                let room = self
                    .limits
                    .max_message
                    .saturating_add(2)
                    .saturating_sub(mail.len());
                let slice = iter.as_slice();
                let mut part = slice[..slice.len().min(room)].iter();
                let done = receiver.ingest(&mut part, &mut mail);
                let used = slice.len().min(room) - part.len();
                iter = slice[used..].iter();
                if !done && mail.len() > self.limits.max_message.saturating_add(1) {
                    over = true;
                    mail = Vec::new();
                    dropping = Some(DummyDataReceiver::new_data(&receiver));
                }
                done
            };
            c.pos += before - iter.len();
            if done {
                break;
            }
        }
        s.from = None;
        s.rcpts = 0;
        s.messages += 1;
        if mail.len() > self.limits.max_message {
            over = true;
        }
        if over {
            metrics::counter!("mtasts_intake_smtp_mails_total", "result" => "too-large")
                .increment(1);
            let text = format!(
                "5.3.4 the mail is larger than the {} bytes accepted",
                self.limits.max_message
            );
            c.reply(552, &text).await?;
            return Ok(true);
        }
        let (code, text) = self.deliver(mail, s).await;
        c.reply(code, &text).await?;
        Ok(true)
    }

    /// Reads, checks and stores one mail: the SMTP answer.
    async fn deliver(&self, mail: Vec<u8>, s: &Session) -> (u16, String) {
        // One mail per core is parsed and verified at once; the others wait (their senders
        // wait for the answer, within the data time-out).
        let Ok(_parsing) = Arc::clone(&self.parsing).acquire_owned().await else {
            return (451, "4.3.0 shutting down; try again later".into());
        };
        let mail = Arc::new(mail);
        let limits = self.intake.limits().clone();
        let bytes = Arc::clone(&mail);
        let parsed = tokio::task::spawn_blocking(move || {
            let mut run = RunBudget::new(limits.max_run_decompressed);
            crate::parse(&bytes, &limits, &mut run)
        })
        .await;
        let parsed = match parsed {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                metrics::counter!("mtasts_intake_reports_total", "via" => "smtp", "result" => "invalid")
                    .increment(1);
                return (
                    550,
                    one_line(&format!("5.6.0 no valid TLS-RPT report: {e}")),
                );
            }
            Err(_) => {
                return (
                    451,
                    "4.3.0 the mail could not be read; try again later".into(),
                );
            }
        };
        let dkim = match &self.dkim {
            Some(v) => Some(v.verify(Arc::clone(&mail)).await),
            None => None,
        };
        if self.limits.require_dkim && dkim.as_ref().is_none_or(|d| d.verdict != DkimVerdict::Pass)
        {
            let why = dkim
                .as_ref()
                .map_or("DKIM is not checked here", |d| d.detail.as_str());
            metrics::counter!("mtasts_intake_reports_total", "via" => "smtp", "result" => "refused")
                .increment(parsed.len() as u64);
            return (
                550,
                one_line(&format!("5.7.20 no passing DKIM signature: {why}")),
            );
        }
        let arrival = Arrival {
            via: Via::Smtp,
            source: Some(format!(
                "smtp from {} (helo {}, mail from <{}>)",
                s.peer,
                s.helo.as_deref().unwrap_or(""),
                s.from.as_deref().unwrap_or("")
            )),
            at: OffsetDateTime::now_utc(),
            dkim,
        };
        let outcomes = match self.intake.store(&parsed, &arrival).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "SMTP intake: report not stored");
                return (
                    451,
                    "4.3.0 the report could not be stored; try again later".into(),
                );
            }
        };
        let Tally {
            stored,
            duplicates,
            refused,
        } = Tally::of(&outcomes, "smtp");
        metrics::counter!("mtasts_intake_smtp_mails_total", "result" => if stored + duplicates > 0 { "accepted" } else { "refused" })
            .increment(1);
        if stored + duplicates == 0 {
            let why = refused.first().map_or("no report", String::as_str);
            return (550, one_line(&format!("5.7.1 not accepted: {why}")));
        }
        let mut text = format!("2.0.0 stored {stored}, duplicates {duplicates}");
        if !refused.is_empty() {
            text.push_str(&format!(", refused {}", refused.len()));
        }
        (250, text)
    }
}
