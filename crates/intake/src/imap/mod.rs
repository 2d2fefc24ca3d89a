//! The IMAP importer: TLS-RPT report mail (`rua=mailto:`) read from a mailbox and stored.
//!
//! [`Importer::round`] connects with implicit TLS (rustls with ring, the Mozilla roots and any
//! given ones), logs in (`AUTHENTICATE PLAIN` when offered, else `LOGIN`), selects the source
//! folder and takes up to [`ImapLimits::max_per_round`] messages in mailbox order:
//!
//! 1. it lists them (`UID`, `RFC822.SIZE`, `FLAGS`) a window at a time; a message flagged
//!    `\Deleted` is someone's pending deletion and is left alone;
//! 2. a message larger than [`ImapLimits::max_message`] is not fetched: it is moved to the
//!    unreadable folder;
//! 3. the others are fetched whole (`BODY.PEEK[]`), parsed off the async threads (core's
//!    limits) and stored through [`Intake::store`] (`Via::Imap`, the source an RFC 5092 URL of
//!    the message), accepted for the domains the [`Intake`] accepts (D27: hosted domains);
//! 4. **only after the store committed** the message is moved: to the processed folder when at
//!    least one of its reports was stored (or was a copy), to the refused folder when every
//!    report was refused, to the unreadable folder when it held no valid report. Folders that do
//!    not exist are created.
//!
//! Nothing is ever deleted: a message is always in one of the folders. `UID MOVE` where the
//! server offers MOVE; otherwise `UID COPY`, then `\Deleted` on the original only once the
//! copy succeeded, then `UID EXPUNGE` of that UID alone (UIDPLUS); without UIDPLUS the flagged
//! original is left for the mailbox's owner to expunge. A crash (or a lost connection) between
//! the commit and the move leaves the message where it was: the next round stores it again,
//! which the store counts as a copy. A store failure ends the round without moving anything.
//!
//! [`Importer::run`] repeats rounds until stopped: right away while messages are left, then
//! IDLE where offered (re-issued every [`ImapLimits::idle`], at most 29 minutes, RFC 2177) or
//! a wait of [`ImapLimits::poll_interval`]; after a failure it reconnects with a backoff from
//! 5 s to 5 min.
//!
//! Every read from the server is bounded in size and time ([`guard`]): see [`ImapLimits`].

mod conn;
pub mod guard;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

use mtasts_core::report::RunBudget;
use mtasts_store::{Arrival, Via};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use time::OffsetDateTime;

pub use conn::Caps;
use conn::Conn;

use crate::{Intake, IntakeError, Outcome, Stored};

/// The folder read by default.
pub const DEFAULT_FOLDER: &str = "INBOX";
/// Where mail whose reports were stored goes by default.
pub const DEFAULT_PROCESSED: &str = "TLSRPT.processed";
/// Where mail without a valid report (or too large to fetch) goes by default.
pub const DEFAULT_UNREADABLE: &str = "TLSRPT.unreadable";
/// Where mail whose every report was refused (a domain not hosted here, D27) goes by default.
pub const DEFAULT_REFUSED: &str = "TLSRPT.refused";
/// The longest IDLE before it is re-issued: 29 minutes (RFC 2177: servers may log a client
/// off after 30).
pub const MAX_IDLE: Duration = Duration::from_secs(29 * 60);
/// Messages listed per `FETCH` of `UID RFC822.SIZE FLAGS`: 100.
pub const LIST_WINDOW: u32 = 100;
/// The first wait after a failed round or connection; doubled up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait after failures: 5 minutes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Most characters of a server's text kept in an error: 300.
pub const MAX_SERVER_TEXT: usize = 300;

/// The importer's limits. Every read from the server is also held to the allowance of its
/// command (see [`guard`]): ordinary commands 1 MiB and 64 KiB literals, a listing 4 KiB more
/// per message, a message fetch `max_message` + 1 MiB; 64 KiB of text and 8 literals per
/// response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImapLimits {
    /// The largest message fetched (its `RFC822.SIZE`): 32 MiB, core's largest input. A larger
    /// one is moved to the unreadable folder unfetched.
    pub max_message: u32,
    /// Most messages taken per round: 500.
    pub max_per_round: u32,
    /// TCP connect, TLS handshake and greeting: 30 s.
    pub connect_timeout: Duration,
    /// The longest wait for the next byte while a command runs: 60 s.
    pub read_timeout: Duration,
    /// The longest any one command may take, a message fetch included: 300 s.
    pub command_timeout: Duration,
    /// The longest IDLE before it is re-issued: 25 minutes (at most [`MAX_IDLE`]).
    pub idle: Duration,
    /// The wait between rounds when the server offers no IDLE: 300 s.
    pub poll_interval: Duration,
}

impl Default for ImapLimits {
    fn default() -> Self {
        Self {
            max_message: u32::try_from(mtasts_core::report::MAX_INPUT_SIZE).unwrap_or(u32::MAX),
            max_per_round: 500,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(300),
            idle: Duration::from_secs(25 * 60),
            poll_interval: Duration::from_secs(300),
        }
    }
}

/// The folders: where mail is read, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    /// Read from: `INBOX`.
    pub source: String,
    /// Mail with at least one report stored (or a copy of one): `TLSRPT.processed`.
    pub processed: String,
    /// Mail without a valid report, or too large: `TLSRPT.unreadable`.
    pub unreadable: String,
    /// Mail whose every report was refused (not a hosted domain): `TLSRPT.refused`.
    pub refused: String,
}

impl Default for Folders {
    fn default() -> Self {
        Self {
            source: DEFAULT_FOLDER.into(),
            processed: DEFAULT_PROCESSED.into(),
            unreadable: DEFAULT_UNREADABLE.into(),
            refused: DEFAULT_REFUSED.into(),
        }
    }
}

impl Folders {
    /// Refuses names that cannot be sent as they are (non-ASCII names need IMAP's modified
    /// UTF-7, which is not done here; `*` and `%` are LIST wildcards; quotes, backslashes and
    /// control characters) and a target that is the source.
    ///
    /// # Errors
    /// [`ImapError::Config`] saying which.
    pub fn check(&self) -> Result<(), ImapError> {
        for (what, name) in [
            ("folder", &self.source),
            ("processed folder", &self.processed),
            ("unreadable folder", &self.unreadable),
            ("refused folder", &self.refused),
        ] {
            if name.is_empty()
                || name.len() > 200
                || !name
                    .bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && !b"*%\"\\".contains(&b))
            {
                return Err(ImapError::Config(format!(
                    "{what} {name:?}: use 1 to 200 printable ASCII characters, without * % \" \\"
                )));
            }
        }
        for target in [&self.processed, &self.unreadable, &self.refused] {
            if target.eq_ignore_ascii_case(&self.source) {
                return Err(ImapError::Config(format!(
                    "{target:?} is the folder read: mail would be taken again and again"
                )));
            }
        }
        Ok(())
    }
}

/// A password, never shown by `Debug`.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Wraps `p`.
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Where and how to read mail.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    /// The server's host name or address.
    pub host: String,
    /// Its port (implicit TLS; 993 is IMAPS).
    pub port: u16,
    /// The name its certificate must carry (usually `host`).
    pub tls_name: String,
    /// The user.
    pub user: String,
    /// The password.
    pub password: Password,
    /// The folders.
    pub folders: Folders,
    /// The TLS client ([`tls_config`]).
    pub tls: Arc<rustls::ClientConfig>,
    /// The limits.
    pub limits: ImapLimits,
}

/// The largest password file read: 4 KiB.
pub const MAX_PASSWORD_FILE: u64 = 4096;

/// `HOST:PORT` or `[IPv6]:PORT`.
///
/// # Errors
/// [`ImapError::Config`] for anything else.
pub fn parse_server(s: &str) -> Result<(String, u16), ImapError> {
    let bad = || ImapError::Config(format!("server {s:?}: give HOST:PORT (IMAPS is port 993)"));
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// The password: the first line of `path` (at most [`MAX_PASSWORD_FILE`] bytes read), without
/// its line end.
///
/// # Errors
/// [`ImapError::Config`] when the file cannot be read or its first line is empty.
pub fn read_password_file(path: &std::path::Path) -> Result<Password, ImapError> {
    use std::io::Read as _;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_FILE).read_to_string(&mut text))
        .map_err(|e| {
            ImapError::Config(format!(
                "cannot read the password file {}: {e}",
                path.display()
            ))
        })?;
    match text.lines().next() {
        Some(line) if !line.is_empty() => Ok(Password::new(line)),
        _ => Err(ImapError::Config(format!(
            "the password file {} is empty",
            path.display()
        ))),
    }
}

/// A TLS client trusting the Mozilla roots and the PEM certificates in `extra_roots`, on ring.
///
/// # Errors
/// [`ImapError::Config`] when `extra_roots` holds no usable certificate.
pub fn tls_config(extra_roots: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, ImapError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_roots {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ImapError::Config(format!("not PEM certificates: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ImapError::Config(format!("not a usable root: {e}")))?;
            added += 1;
        }
        if added == 0 {
            return Err(ImapError::Config("the CA file holds no certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ImapError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why a round or a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The settings cannot work.
    #[error("IMAP settings: {0}")]
    Config(String),
    /// No TCP connection or no TLS session.
    #[error("IMAP connection: {0}")]
    Connect(String),
    /// The server refused us (greeting, login).
    #[error("IMAP server refused: {0}")]
    Refused(String),
    /// The server answered a command with NO or BAD.
    #[error("IMAP {what}: the server answered {answer}")]
    Server {
        /// The command.
        what: String,
        /// Its answer (cut to [`MAX_SERVER_TEXT`]).
        answer: String,
    },
    /// A step took longer than its limit.
    #[error("IMAP {what}: no answer within {} s", after.as_secs())]
    Timeout {
        /// The step.
        what: String,
        /// Its limit.
        after: Duration,
    },
    /// The server broke the protocol or a limit, or the connection was lost.
    #[error("IMAP protocol: {0}")]
    Protocol(String),
    /// The store failed: the message was left where it was.
    #[error("{0}")]
    Intake(#[from] IntakeError),
}

/// Where a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sorted {
    /// At least one report stored (or a copy counted): the processed folder.
    Processed,
    /// No valid report, or too large to fetch: the unreadable folder.
    Unreadable,
    /// Every report refused: the refused folder.
    Refused,
}

impl Sorted {
    /// `processed`, `unreadable` or `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Unreadable => "unreadable",
            Self::Refused => "refused",
        }
    }
}

/// One message of a round.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Its UID in the source folder.
    pub uid: u32,
    /// The RFC 5092 URL it was fetched from (the reports' source).
    pub source: String,
    /// Its `RFC822.SIZE`, when the server gave one.
    pub size: Option<u32>,
    /// Where it went.
    pub sorted: Sorted,
    /// Its reports and what became of them.
    pub reports: Vec<Outcome>,
    /// Why it is unreadable.
    pub problem: Option<String>,
}

/// What one round did.
#[derive(Debug, Clone, Default)]
pub struct Round {
    /// The messages taken, in order.
    pub mails: Vec<Mail>,
    /// Messages still in the source folder afterwards (left `\Deleted` ones and any past the
    /// round's limit).
    pub left: u32,
    /// Messages skipped because they are flagged `\Deleted`.
    pub skipped_deleted: u32,
    /// Messages not looked at yet remain (the round's limit was reached): run another now.
    pub more: bool,
    /// What the server offers.
    pub caps: Caps,
}

impl Round {
    /// Messages moved to `sorted`'s folder.
    pub fn mails_to(&self, sorted: Sorted) -> usize {
        self.mails.iter().filter(|m| m.sorted == sorted).count()
    }

    /// Reports by outcome: (stored, duplicates, refused).
    pub fn reports(&self) -> (usize, usize, usize) {
        let mut n = (0, 0, 0);
        for r in self.mails.iter().flat_map(|m| &m.reports) {
            match r.stored {
                Stored::New(_) => n.0 += 1,
                Stored::Duplicate { .. } => n.1 += 1,
                Stored::Refused(_) => n.2 += 1,
            }
        }
        n
    }

    /// The round as JSON (what `mtasts report imap --format json` prints).
    pub fn to_json(&self) -> Value {
        let (stored, duplicates, refused) = self.reports();
        let mails: Vec<Value> = self
            .mails
            .iter()
            .map(|m| {
                let reports: Vec<Value> = m
                    .reports
                    .iter()
                    .map(|r| {
                        let (result, id, why) = match &r.stored {
                            Stored::New(id) => ("stored", Some(*id), None),
                            Stored::Duplicate { id, .. } => ("duplicate", Some(*id), None),
                            Stored::Refused(why) => ("refused", None, Some(why.clone())),
                        };
                        json!({"result": result, "id": id, "refused": why,
                            "organization": r.organization, "report_id": r.report_id,
                            "policy_domain": r.policy_domain})
                    })
                    .collect();
                json!({"uid": m.uid, "source": m.source, "size": m.size,
                    "folder": m.sorted.as_str(), "problem": m.problem, "reports": reports})
            })
            .collect();
        json!({
            "mails": self.mails.len(),
            "processed": self.mails_to(Sorted::Processed),
            "unreadable": self.mails_to(Sorted::Unreadable),
            "refused": self.mails_to(Sorted::Refused),
            "reports_stored": stored, "reports_duplicate": duplicates,
            "reports_refused": refused,
            "left": self.left, "skipped_deleted": self.skipped_deleted, "more": self.more,
            "server": {"idle": self.caps.idle, "move": self.caps.moves, "uidplus": self.caps.uidplus},
            "messages": mails,
        })
    }
}

/// An IMAP quoted string (the names [`Folders::check`] lets through need no escaping, but
/// escape anyway).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `s` with every byte but letters, digits and `-._~` percent-encoded (RFC 3986), for the
/// user and folder in a message's URL.
fn url_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A server's text cut to [`MAX_SERVER_TEXT`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_SERVER_TEXT) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// A stop signal polled between messages without being polled again once it fired.
struct Stop<S> {
    fut: Pin<Box<S>>,
    fired: bool,
}

impl<S: Future<Output = ()>> Stop<S> {
    fn new(fut: S) -> Self {
        Self {
            fut: Box::pin(fut),
            fired: false,
        }
    }

    /// Whether it fired (polled once, without waiting).
    fn is_set(&mut self) -> bool {
        if !self.fired {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            self.fired = self.fut.as_mut().poll(&mut cx).is_ready();
        }
        self.fired
    }

    /// Waits until it fires.
    async fn wait(&mut self) {
        if !self.fired {
            self.fut.as_mut().await;
            self.fired = true;
        }
    }

    /// Sleeps `d`, or less if it fires: whether it fired.
    async fn sleep(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = self.wait() => true,
            () = tokio::time::sleep(d) => self.fired,
        }
    }
}

/// Reads mail from one mailbox into an [`Intake`].
#[derive(Debug, Clone)]
pub struct Importer {
    settings: ImapSettings,
    intake: Intake,
    /// Checks each mail's DKIM signatures (as the SMTP receiver does) when given.
    dkim: Option<crate::dkim::DkimVerifier>,
}

impl Importer {
    /// An importer for `settings`, storing through `intake`.
    ///
    /// # Errors
    /// [`ImapError::Config`] when the folders or limits cannot work.
    pub fn new(mut settings: ImapSettings, intake: Intake) -> Result<Self, ImapError> {
        settings.folders.check()?;
        let l = &mut settings.limits;
        l.idle = l.idle.min(MAX_IDLE);
        if l.max_per_round == 0 || l.max_message == 0 {
            return Err(ImapError::Config(
                "max_per_round and max_message must be at least 1".into(),
            ));
        }
        Ok(Self {
            settings,
            intake,
            dkim: None,
        })
    }

    /// The same, recording each mail's DKIM verdict with its reports (D52).
    #[must_use]
    pub fn with_dkim(mut self, verifier: crate::dkim::DkimVerifier) -> Self {
        self.dkim = Some(verifier);
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &ImapSettings {
        &self.settings
    }

    /// One round on a new connection, then LOGOUT.
    ///
    /// # Errors
    /// [`ImapError`]: the messages taken before the failure stay where they were moved.
    pub async fn round(&self) -> Result<Round, ImapError> {
        let mut conn = Conn::open(&self.settings).await?;
        let mut never = Stop::new(std::future::pending::<()>());
        let round = self.round_on(&mut conn, &mut never).await;
        conn.logout().await;
        round
    }

    /// Rounds until `stop` resolves (between two messages, or while waiting), each one told to
    /// `report`; failures are told too, then a reconnection follows a backoff.
    pub async fn run(
        &self,
        stop: impl Future<Output = ()>,
        mut report: impl FnMut(Result<&Round, &ImapError>),
    ) {
        let mut stop = Stop::new(stop);
        let mut backoff = FIRST_BACKOFF;
        'connect: while !stop.is_set() {
            let opened = tokio::select! {
                () = stop.wait() => return,
                c = Conn::open(&self.settings) => c,
            };
            let mut conn = match opened {
                Ok(c) => c,
                Err(e) => {
                    report(Err(&e));
                    if stop.sleep(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            loop {
                match self.round_on(&mut conn, &mut stop).await {
                    Ok(round) => {
                        backoff = FIRST_BACKOFF;
                        report(Ok(&round));
                        if stop.is_set() {
                            conn.logout().await;
                            return;
                        }
                        if round.more {
                            continue;
                        }
                    }
                    Err(e) => {
                        report(Err(&e));
                        conn.logout().await;
                        if stop.sleep(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue 'connect;
                    }
                }
                if conn.caps.idle {
                    let limits = self.settings.limits;
                    if let Err(e) = conn.idle(limits.idle, stop.wait()).await {
                        report(Err(&e));
                        if stop.sleep(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue 'connect;
                    }
                    if stop.is_set() {
                        conn.logout().await;
                        return;
                    }
                } else if stop.sleep(self.settings.limits.poll_interval).await {
                    conn.logout().await;
                    return;
                }
            }
        }
    }

    async fn round_on<S: Future<Output = ()>>(
        &self,
        conn: &mut Conn,
        stop: &mut Stop<S>,
    ) -> Result<Round, ImapError> {
        let folders = &self.settings.folders;
        let limits = &self.settings.limits;
        if !conn.folders_ready {
            for f in [&folders.processed, &folders.unreadable, &folders.refused] {
                conn.ensure_folder(f).await?;
            }
            conn.folders_ready = true;
        }
        let validity = conn.select(&folders.source).await?;
        let mut round = Round {
            caps: conn.caps,
            ..Round::default()
        };
        let mut run = RunBudget::new(self.intake.limits().max_run_decompressed);
        let mail_budget = u64::try_from(self.intake.limits().max_mail_decompressed).unwrap_or(0);
        // Messages left in place before the window: `\Deleted` ones (and, without UIDPLUS,
        // those we copied and flagged).
        let mut skip = 0u32;
        let mut taken = 0u32;
        'round: while taken < limits.max_per_round && !stop.is_set() {
            let start = skip + 1;
            let end = conn
                .exists
                .min(skip + LIST_WINDOW.min(limits.max_per_round - taken));
            if start > end {
                break;
            }
            let listed = conn.list(start, end).await?;
            if listed.is_empty() {
                break;
            }
            for m in listed {
                if stop.is_set() || run.left() < mail_budget {
                    // A fresh decompression budget next round; no message is blamed for it.
                    break 'round;
                }
                if m.deleted {
                    skip += 1;
                    round.skipped_deleted += 1;
                    continue;
                }
                if let Some(mail) = self.one(conn, m, validity, &mut run).await? {
                    if !conn.caps.moves && !conn.caps.uidplus {
                        // The flagged original stays in place.
                        skip += 1;
                    }
                    round.mails.push(mail);
                }
                taken += 1;
                if taken >= limits.max_per_round {
                    break 'round;
                }
            }
        }
        round.left = conn.exists;
        round.more = conn.exists > skip && !stop.is_set();
        Ok(round)
    }

    /// Fetches, parses, stores and moves one message; `None` when it vanished meanwhile.
    async fn one(
        &self,
        conn: &mut Conn,
        m: conn::Listed,
        validity: u32,
        run: &mut RunBudget,
    ) -> Result<Option<Mail>, ImapError> {
        let s = &self.settings;
        let host = if s.host.contains(':') {
            format!("[{}]", s.host)
        } else {
            s.host.clone()
        };
        let source = format!(
            "imaps://{}@{host}:{}/{};UIDVALIDITY={validity}/;UID={}",
            url_escape(&s.user),
            s.port,
            url_escape(&s.folders.source),
            m.uid
        );
        let mut mail = Mail {
            uid: m.uid,
            source,
            size: m.size,
            sorted: Sorted::Unreadable,
            reports: Vec::new(),
            problem: None,
        };
        match m.size {
            Some(size) if size <= s.limits.max_message => {
                let Some(body) = conn.body(m.uid).await? else {
                    return Ok(None);
                };
                let limits = self.intake.limits().clone();
                let mut budget = std::mem::take(run);
                let body = Arc::new(body);
                let bytes = Arc::clone(&body);
                let (parsed, budget) = tokio::task::spawn_blocking(move || {
                    let r = crate::parse(&bytes, &limits, &mut budget);
                    (r, budget)
                })
                .await
                .map_err(|e| ImapError::Protocol(format!("the parser failed: {e}")))?;
                *run = budget;
                match parsed {
                    Err(e) => mail.problem = Some(IntakeError::NotAReport(e).to_string()),
                    Ok(parsed) => {
                        let dkim = match &self.dkim {
                            Some(v) => Some(v.verify(Arc::clone(&body)).await),
                            None => None,
                        };
                        let arrival = Arrival {
                            via: Via::Imap,
                            source: Some(mail.source.clone()),
                            at: OffsetDateTime::now_utc(),
                            dkim,
                        };
                        mail.reports = self.intake.store(&parsed, &arrival).await?;
                        let any = mail
                            .reports
                            .iter()
                            .any(|r| !matches!(r.stored, Stored::Refused(_)));
                        mail.sorted = if any {
                            Sorted::Processed
                        } else {
                            Sorted::Refused
                        };
                    }
                }
            }
            Some(size) => {
                mail.problem = Some(format!(
                    "{size} bytes, larger than the {} fetched: not fetched",
                    s.limits.max_message
                ));
            }
            None => mail.problem = Some("the server gave no size: not fetched".into()),
        }
        let folder = match mail.sorted {
            Sorted::Processed => &s.folders.processed,
            Sorted::Unreadable => &s.folders.unreadable,
            Sorted::Refused => &s.folders.refused,
        };
        conn.move_to(m.uid, folder).await?;
        Ok(Some(mail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_that_cannot_work_are_refused() {
        assert!(Folders::default().check().is_ok());
        let bad = |f: Folders| f.check().unwrap_err().to_string();
        let e = bad(Folders {
            processed: "INBOX".into(),
            ..Folders::default()
        });
        assert!(e.contains("taken again"), "{e}");
        for name in ["", "Rapports reçus", "a*b", "a%", "a\"b", "a\\b", "a\r\nb"] {
            let e = bad(Folders {
                unreadable: name.into(),
                ..Folders::default()
            });
            assert!(e.contains("printable ASCII"), "{name:?}: {e}");
        }
    }

    #[test]
    fn server_text_is_cut_and_passwords_are_not_shown() {
        let long = "x".repeat(1000);
        assert_eq!(cut(&long).len(), MAX_SERVER_TEXT + 3);
        assert_eq!(cut("short"), "short");
        assert_eq!(format!("{:?}", Password::new("hunter2")), "Password(..)");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(url_escape("tlsrpt@example.test"), "tlsrpt%40example.test");
        assert_eq!(url_escape("Reports/2026 x"), "Reports%2F2026%20x");
    }

    #[test]
    fn servers_are_host_and_port() {
        assert_eq!(
            parse_server("imap.example:993").unwrap(),
            ("imap.example".into(), 993)
        );
        assert_eq!(parse_server("[::1]:10993").unwrap(), ("::1".into(), 10993));
        for bad in [
            "imap.example",
            ":993",
            "imap.example:0",
            "a:b",
            "a@b:993",
            "a:99999",
        ] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(tls_config(None).is_ok());
        let e = tls_config(Some(b"not pem")).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
    }
}
