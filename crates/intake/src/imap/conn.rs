//! One IMAP session on async-imap: TCP and TLS, the greeting, the login, the capabilities, and
//! each command under a deadline and a [`Guarded`] allowance of what the server may send.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_imap::imap_proto::{Capability as ProtoCapability, Response, ResponseCode, Status};
use async_imap::types::UnsolicitedResponse;
use futures_util::TryStreamExt as _;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::guard::{Allowance, GuardHandle, Guarded};
use super::{ImapError, ImapSettings, cut};

type Stream = Guarded<tokio_rustls::client::TlsStream<TcpStream>>;
/// A logged-in session.
pub(super) type Session = async_imap::Session<Stream>;

/// Bytes the server may send for one ordinary command (not a message fetch): 1 MiB.
const ORDINARY_BYTES: u64 = 1024 * 1024;
/// The largest literal in the answer to an ordinary command: 64 KiB.
const ORDINARY_LITERAL: u64 = 64 * 1024;
/// Bytes allowed per message listed (`UID`, `RFC822.SIZE`, `FLAGS`), beyond
/// [`ORDINARY_BYTES`]: 4 KiB.
const LISTED_BYTES: u64 = 4 * 1024;

/// What the server offers that we use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// `IDLE` (RFC 2177).
    pub idle: bool,
    /// `MOVE` (RFC 6851).
    pub moves: bool,
    /// `UIDPLUS` (RFC 4315: `UID EXPUNGE`).
    pub uidplus: bool,
}

/// A message as listed: sequence number, UID, size, and whether it is flagged `\Deleted`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Listed {
    pub(super) uid: u32,
    pub(super) size: Option<u32>,
    pub(super) deleted: bool,
}

/// One connection.
pub(super) struct Conn {
    session: Option<Session>,
    guard: GuardHandle,
    pub(super) caps: Caps,
    read_timeout: Duration,
    command_timeout: Duration,
    max_message: u32,
    /// The selected folder's message count, as the server last said (EXISTS, EXPUNGE).
    pub(super) exists: u32,
    /// The target folders were checked on this connection.
    pub(super) folders_ready: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("caps", &self.caps)
            .field("exists", &self.exists)
            .finish_non_exhaustive()
    }
}

/// `AUTHENTICATE PLAIN` (RFC 4616): no authorization identity, the user, the password.
struct Plain<'a>(&'a str, &'a str);

impl async_imap::Authenticator for Plain<'_> {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8];
        r.extend_from_slice(self.0.as_bytes());
        r.push(0);
        r.extend_from_slice(self.1.as_bytes());
        r
    }
}

impl Conn {
    /// Connects, checks the greeting, logs in and reads the capabilities.
    pub(super) async fn open(s: &ImapSettings) -> Result<Self, ImapError> {
        let l = &s.limits;
        let ordinary = Allowance {
            bytes: ORDINARY_BYTES,
            max_literal: ORDINARY_LITERAL,
            read_timeout: Some(l.read_timeout),
        };
        let connect = async {
            let tcp = TcpStream::connect((s.host.as_str(), s.port))
                .await
                .map_err(|e| ImapError::Connect(format!("{}:{}: {e}", s.host, s.port)))?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(s.tls_name.clone())
                .map_err(|e| ImapError::Config(format!("{}: {e}", s.tls_name)))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&s.tls))
                .connect(name, tcp)
                .await
                .map_err(|e| ImapError::Connect(format!("TLS with {}: {e}", s.tls_name)))?;
            let (stream, guard) = Guarded::new(tls, ordinary);
            let mut client = async_imap::Client::new(stream);
            let greeting = client
                .read_response()
                .await
                .map_err(|e| protocol(&guard, &e.into()))?
                .ok_or_else(|| ImapError::Protocol("the server closed before greeting".into()))?;
            let offered = match greeting.parsed() {
                Response::Data {
                    status: Status::Ok,
                    outcome,
                } => match &outcome.code {
                    Some(ResponseCode::Capabilities(c)) => Some(names(c)),
                    _ => None,
                },
                Response::Data { status, outcome } => {
                    return Err(ImapError::Refused(format!(
                        "greeting {status:?}: {}",
                        cut(outcome.information.as_deref().unwrap_or(""))
                    )));
                }
                _ => return Err(ImapError::Protocol("the greeting is not `* OK`".into())),
            };
            Ok::<_, ImapError>((client, guard, offered))
        };
        let (client, guard, offered) = tokio::time::timeout(l.connect_timeout, connect)
            .await
            .map_err(|_| ImapError::Timeout {
                what: "connect, TLS and greeting".into(),
                after: l.connect_timeout,
            })??;
        let offered = offered.unwrap_or_default();
        let plain = offered.iter().any(|c| c.eq_ignore_ascii_case("AUTH=PLAIN"));
        let disabled = offered
            .iter()
            .any(|c| c.eq_ignore_ascii_case("LOGINDISABLED"));
        if disabled && !plain {
            return Err(ImapError::Refused(
                "the server disables LOGIN and does not offer AUTHENTICATE PLAIN".into(),
            ));
        }
        let login = async {
            let r = if plain {
                client
                    .authenticate("PLAIN", Plain(&s.user, s.password.expose()))
                    .await
            } else {
                client.login(&s.user, s.password.expose()).await
            };
            r.map_err(|(e, _)| match e {
                async_imap::error::Error::No(m) | async_imap::error::Error::Bad(m) => {
                    ImapError::Refused(format!("login as {}: {}", s.user, cut(&m)))
                }
                e => protocol(&guard, &e),
            })
        };
        let session = tokio::time::timeout(l.command_timeout, login)
            .await
            .map_err(|_| ImapError::Timeout {
                what: "login".into(),
                after: l.command_timeout,
            })??;
        let mut conn = Self {
            session: Some(session),
            guard,
            caps: Caps::default(),
            read_timeout: l.read_timeout,
            command_timeout: l.command_timeout,
            max_message: l.max_message,
            exists: 0,
            folders_ready: false,
        };
        let caps = conn
            .command("CAPABILITY", |s| Box::pin(s.capabilities()))
            .await?;
        conn.caps = Caps {
            idle: caps.has_str("IDLE"),
            moves: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        };
        Ok(conn)
    }

    fn ordinary(&self) -> Allowance {
        Allowance {
            bytes: ORDINARY_BYTES,
            max_literal: ORDINARY_LITERAL,
            read_timeout: Some(self.read_timeout),
        }
    }

    fn session(&mut self) -> Result<&mut Session, ImapError> {
        self.session
            .as_mut()
            .ok_or_else(|| ImapError::Protocol("the session was lost while idling".into()))
    }

    /// Runs `f` on the session with the ordinary allowance and the command time-out.
    async fn command<T>(
        &mut self,
        what: &str,
        f: impl for<'s> FnOnce(
            &'s mut Session,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = async_imap::error::Result<T>> + Send + 's>,
        >,
    ) -> Result<T, ImapError> {
        let allowance = self.ordinary();
        self.bounded(what, allowance, self.command_timeout, f).await
    }

    /// Runs `f` on the session with `allowance`, within `deadline`; then takes in what the
    /// server said on the side (EXISTS, EXPUNGE).
    async fn bounded<T>(
        &mut self,
        what: &str,
        allowance: Allowance,
        deadline: Duration,
        f: impl for<'s> FnOnce(
            &'s mut Session,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = async_imap::error::Result<T>> + Send + 's>,
        >,
    ) -> Result<T, ImapError> {
        self.guard.allow(allowance);
        let guard = self.guard.clone();
        let session = self.session()?;
        let out = match tokio::time::timeout(deadline, f(session)).await {
            Err(_) => Err(ImapError::Timeout {
                what: what.to_owned(),
                after: deadline,
            }),
            Ok(Err(async_imap::error::Error::No(m) | async_imap::error::Error::Bad(m))) => {
                Err(ImapError::Server {
                    what: what.to_owned(),
                    answer: cut(&m),
                })
            }
            Ok(Err(e)) => Err(protocol(&guard, &e)),
            Ok(Ok(v)) => Ok(v),
        };
        self.take_unsolicited();
        out
    }

    /// Follows the selected folder's message count through what the server said on the side.
    fn take_unsolicited(&mut self) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        while let Ok(u) = s.unsolicited_responses.try_recv() {
            match u {
                UnsolicitedResponse::Exists(n) => self.exists = n,
                UnsolicitedResponse::Expunge(_) => self.exists = self.exists.saturating_sub(1),
                _ => {}
            }
        }
    }

    /// `SELECT folder`: its UIDVALIDITY (0 when the server gives none).
    pub(super) async fn select(&mut self, folder: &str) -> Result<u32, ImapError> {
        self.take_unsolicited();
        let f = folder.to_owned();
        let mb = self
            .command(&format!("SELECT {folder}"), move |s| {
                Box::pin(async move { s.select(&f).await })
            })
            .await?;
        self.exists = mb.exists;
        Ok(mb.uid_validity.unwrap_or(0))
    }

    /// Creates `folder` unless `LIST` shows it.
    pub(super) async fn ensure_folder(&mut self, folder: &str) -> Result<(), ImapError> {
        let pattern = super::quote(folder);
        let names: Vec<String> = self
            .command(&format!("LIST {folder}"), move |s| {
                Box::pin(async move {
                    let list = s.list(Some(""), Some(&pattern)).await?;
                    let names: Vec<async_imap::types::Name> = list.try_collect().await?;
                    Ok(names.iter().map(|n| n.name().to_owned()).collect())
                })
            })
            .await?;
        if names.iter().any(|n| n == folder) {
            return Ok(());
        }
        let f = folder.to_owned();
        self.command(&format!("CREATE {folder}"), move |s| {
            Box::pin(async move { s.create(&f).await })
        })
        .await
    }

    /// The messages at sequence numbers `start..=end`, in order.
    pub(super) async fn list(&mut self, start: u32, end: u32) -> Result<Vec<Listed>, ImapError> {
        let count = u64::from(end.saturating_sub(start)) + 1;
        let allowance = Allowance {
            bytes: ORDINARY_BYTES + count * LISTED_BYTES,
            ..self.ordinary()
        };
        let set = format!("{start}:{end}");
        let fetched = self
            .bounded(
                &format!("FETCH {set}"),
                allowance,
                self.command_timeout,
                move |s| {
                    Box::pin(async move {
                        let stream = s.fetch(&set, "(UID RFC822.SIZE FLAGS)").await?;
                        let all: Vec<async_imap::types::Fetch> = stream.try_collect().await?;
                        Ok(all)
                    })
                },
            )
            .await?;
        let mut out: Vec<(u32, Listed)> = Vec::with_capacity(fetched.len());
        for f in &fetched {
            if f.message < start || f.message > end {
                continue;
            }
            let uid = f.uid.ok_or_else(|| {
                ImapError::Protocol(format!("no UID for message {} in FETCH", f.message))
            })?;
            let deleted = f
                .flags()
                .any(|fl| matches!(fl, async_imap::types::Flag::Deleted));
            out.push((
                f.message,
                Listed {
                    uid,
                    size: f.size,
                    deleted,
                },
            ));
        }
        out.sort_by_key(|(seq, _)| *seq);
        out.dedup_by_key(|(seq, _)| *seq);
        Ok(out.into_iter().map(|(_, l)| l).collect())
    }

    /// The whole message `uid` (`BODY.PEEK[]`: its flags are left as they are); `None` when
    /// it is gone.
    pub(super) async fn body(&mut self, uid: u32) -> Result<Option<Vec<u8>>, ImapError> {
        let max = u64::from(self.max_message);
        let allowance = Allowance {
            bytes: ORDINARY_BYTES + max,
            max_literal: max,
            read_timeout: Some(self.read_timeout),
        };
        self.bounded(
            &format!("UID FETCH {uid}"),
            allowance,
            self.command_timeout,
            move |s| {
                Box::pin(async move {
                    let mut stream = s.uid_fetch(uid.to_string(), "BODY.PEEK[]").await?;
                    let mut body = None;
                    // Every answer is read (the command is not over before), only ours kept.
                    while let Some(f) = stream.try_next().await? {
                        if f.uid == Some(uid)
                            && body.is_none()
                            && let Some(b) = f.body()
                        {
                            body = Some(b.to_vec());
                        }
                    }
                    Ok(body)
                })
            },
        )
        .await
    }

    /// Moves message `uid` to `folder`: `UID MOVE`, or without MOVE `UID COPY`, then
    /// `\Deleted` on the original (only once the copy succeeded), then `UID EXPUNGE` of that
    /// UID alone with UIDPLUS; without UIDPLUS the flagged original is left for the mailbox's
    /// owner (a plain EXPUNGE would remove others' `\Deleted` mail too).
    pub(super) async fn move_to(&mut self, uid: u32, folder: &str) -> Result<(), ImapError> {
        let f = folder.to_owned();
        if self.caps.moves {
            return self
                .command(&format!("UID MOVE {uid} {folder}"), move |s| {
                    Box::pin(async move { s.uid_mv(uid.to_string(), &f).await })
                })
                .await;
        }
        self.command(&format!("UID COPY {uid} {folder}"), move |s| {
            Box::pin(async move { s.uid_copy(uid.to_string(), &f).await })
        })
        .await?;
        self.command(&format!("UID STORE {uid} +FLAGS (\\Deleted)"), move |s| {
            Box::pin(async move {
                let stream = s
                    .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Deleted)")
                    .await?;
                let _: Vec<async_imap::types::Fetch> = stream.try_collect().await?;
                Ok(())
            })
        })
        .await?;
        if self.caps.uidplus {
            let gone = self
                .command(&format!("UID EXPUNGE {uid}"), move |s| {
                    Box::pin(async move {
                        let stream = s.uid_expunge(uid.to_string()).await?;
                        let gone: Vec<u32> = stream.try_collect().await?;
                        Ok(gone.len())
                    })
                })
                .await?;
            // The EXPUNGE responses are the command's answer here, not said on the side.
            let gone = u32::try_from(gone).unwrap_or(u32::MAX);
            self.exists = self.exists.saturating_sub(gone);
        }
        Ok(())
    }

    /// IDLE until the server says something, `most` has passed, or `stop` resolves; then
    /// `DONE`. Whether the server said something.
    pub(super) async fn idle(
        &mut self,
        most: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<bool, ImapError> {
        let session = self
            .session
            .take()
            .ok_or_else(|| ImapError::Protocol("the session was lost while idling".into()))?;
        // No read time-out while idling: the server may stay silent for the whole IDLE.
        self.guard.allow(Allowance {
            read_timeout: None,
            ..self.ordinary()
        });
        let mut handle = session.idle();
        let init = tokio::time::timeout(self.command_timeout, handle.init()).await;
        match init {
            Err(_) => {
                return Err(ImapError::Timeout {
                    what: "IDLE".into(),
                    after: self.command_timeout,
                });
            }
            Ok(Err(e)) => return Err(protocol(&self.guard, &e)),
            Ok(Ok(())) => {}
        }
        let news = {
            let (wait, _interrupt) = handle.wait_with_timeout(most);
            tokio::select! {
                r = tokio::time::timeout(most, wait) => match r {
                    Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => Ok(true),
                    Ok(Ok(_)) | Err(_) => Ok(false),
                    Ok(Err(e)) => Err(protocol(&self.guard, &e)),
                },
                () = stop => Ok(false),
            }
        };
        let news = news?;
        self.guard.allow(self.ordinary());
        let done = tokio::time::timeout(self.command_timeout, handle.done()).await;
        match done {
            Err(_) => Err(ImapError::Timeout {
                what: "DONE".into(),
                after: self.command_timeout,
            }),
            Ok(Err(e)) => Err(protocol(&self.guard, &e)),
            Ok(Ok(session)) => {
                self.session = Some(session);
                self.take_unsolicited();
                Ok(news)
            }
        }
    }

    /// `LOGOUT`, bounded; its failure does not matter.
    pub(super) async fn logout(mut self) {
        let deadline = self.read_timeout.min(Duration::from_secs(10));
        let allowance = self.ordinary();
        let _ = self
            .bounded("LOGOUT", allowance, deadline, |s| Box::pin(s.logout()))
            .await;
    }
}

/// The capability names in a response code.
fn names(caps: &[ProtoCapability<'_>]) -> Vec<String> {
    caps.iter()
        .map(|c| match c {
            ProtoCapability::Imap4rev1 => "IMAP4rev1".to_owned(),
            ProtoCapability::Auth(a) => format!("AUTH={a}"),
            ProtoCapability::Atom(a) => a.to_string(),
        })
        .collect()
}

/// An error of the client, with the guard's reason when the guard stopped the stream.
fn protocol(guard: &GuardHandle, e: &async_imap::error::Error) -> ImapError {
    match guard.broken() {
        Some(why) => ImapError::Protocol(why),
        None => ImapError::Protocol(cut(&e.to_string())),
    }
}
