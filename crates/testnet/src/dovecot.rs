//! A real IMAP server, Dovecot (Debian's `dovecot-imapd`), on loopback: the other end for the
//! TLS-RPT IMAP importer, where a server of our own would only test us against ourselves.
//!
//! Each [`Dovecot`] runs its own `dovecot -F -c <conf>` in a temporary directory of its own:
//! configuration, certificate and key (issued by the test's [`Pki`] for [`HOST_NAME`]), a
//! passwd-file with one user ([`USER`], [`PASSWORD`]), maildir storage (`.` as the hierarchy
//! separator, so `TLSRPT.processed` is `Maildir/.TLSRPT.processed/`), and Dovecot's state,
//! sockets and log. It listens with implicit TLS only (the `imaps` listener; no plain port) on
//! its own 127.143.x.y address and a free port; IDLE is on (Dovecot's default). The process is
//! killed when the handle is dropped.
//!
//! Dovecot refuses to run its login processes as root and its mail processes as uid 0: as root
//! the harness runs the whole of it as the `dovecot` system user (the temporary directory is
//! given to that user); otherwise as the current user. Either way no privileged port, no
//! system directory and no system service is used.
//!
//! [`Options::without`] drops capabilities from what Dovecot advertises after login (the
//! `imap_capability` setting), e.g. `MOVE` or `IDLE`, so that a client's fallbacks meet a real
//! server.
//!
//! Mail goes in with [`Dovecot::append`] (IMAP `APPEND`, the way a delivery agent or another
//! client puts it there) and is read back from the maildir on disk ([`Dovecot::messages`]),
//! independently of IMAP.
//!
//! `tests/e2e/dovecot/install.sh` installs Dovecot. When it is missing, [`Dovecot::start`] says
//! `SKIP` on stderr and returns `None`; with `CI=true` it panics instead, since CI must not skip.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::pki::{Defect, Pki};

/// The master process.
pub const DOVECOT: &str = "/usr/sbin/dovecot";
/// The IMAP server process (package `dovecot-imapd`).
pub const IMAP: &str = "/usr/lib/dovecot/imap";
/// The name the server's certificate is issued for.
pub const HOST_NAME: &str = "imap.example.test";
/// The one user.
pub const USER: &str = "tlsrpt@example.test";
/// Its password: a space, a quote and a backslash, so that a client's quoting is tested.
pub const PASSWORD: &str = "s3cret \"pass\" \\ word";

/// What Dovecot 2.3 advertises after login, in its order; [`Options::without`] removes names.
const CAPABILITIES: &str = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY \
    THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT \
    CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES \
    WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE \
    SAVEDATE LITERAL+ NOTIFY";

/// How long Dovecot may take to greet (it takes about 0.3 s).
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long one exchange of the harness's own client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Capabilities not advertised after login (e.g. `MOVE`, `IDLE`, `UIDPLUS`).
    pub without: Vec<String>,
}

/// Why the harness could not start Dovecot or talk to it.
#[derive(Debug, thiserror::Error)]
pub enum DovecotError {
    /// The user to run it as, or a setting, is unusable.
    #[error("dovecot harness: {0}")]
    Config(String),
    /// The temporary directory, a file in it, or the process could not be made.
    #[error("dovecot harness: {0}")]
    Io(#[from] std::io::Error),
    /// The certificate could not be issued.
    #[error("dovecot harness: {0}")]
    Pki(#[from] crate::pki::PkiError),
    /// Dovecot exited or did not greet in time; its log says why.
    #[error("dovecot did not start: {why}\n--- dovecot log ---\n{log}")]
    Start {
        /// What the harness saw.
        why: String,
        /// What Dovecot wrote.
        log: String,
    },
    /// The harness's client got an answer other than OK.
    #[error("dovecot answered {command}: {answer}")]
    Imap {
        /// The command.
        command: String,
        /// The tagged answer (or what ended the exchange).
        answer: String,
    },
}

/// A running Dovecot; killed on drop.
#[derive(Debug)]
pub struct Dovecot {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    tls: Arc<rustls::ClientConfig>,
}

impl Dovecot {
    /// Dovecot with the default [`Options`]. `None` (after a `SKIP` line on stderr) when it is
    /// not installed.
    ///
    /// # Panics
    /// When Dovecot is not installed and `CI=true`.
    pub async fn start(pki: &Pki) -> Result<Option<Self>, DovecotError> {
        Self::start_with(pki, &Options::default()).await
    }

    /// Dovecot set up as `options` says, with a certificate for [`HOST_NAME`] from `pki`.
    /// Returns once it greets over TLS. `None` as for [`Dovecot::start`].
    ///
    /// # Panics
    /// When Dovecot is not installed and `CI=true`.
    pub async fn start_with(pki: &Pki, options: &Options) -> Result<Option<Self>, DovecotError> {
        if !Path::new(DOVECOT).exists() || !Path::new(IMAP).exists() {
            skip_or_fail();
            return Ok(None);
        }
        let dir = tempfile::Builder::new().prefix("dovecot-").tempdir()?;
        let account = Account::pick(dir.path())?;
        let cert = pki.issue(HOST_NAME, Defect::Valid)?;
        std::fs::write(dir.path().join("cert.pem"), cert.chain_pem())?;
        std::fs::write(dir.path().join("key.pem"), cert.key_pem())?;
        // passwd-file: user:{scheme}password:uid:gid:gecos:home:shell:extra (the userdb is
        // static, so only the first two fields count).
        std::fs::write(
            dir.path().join("passwd"),
            format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n"),
        )?;
        for sub in ["run", "state", "home"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| DovecotError::Config(e.to_string()))?
            .with_root_certificates(pki.root_store())
            .with_no_client_auth(),
        );
        let mut last = None;
        // A port found free can be taken before Dovecot binds it: Dovecot then exits at once,
        // and we try another.
        for _ in 0..5 {
            let addr = free_addr()?;
            std::fs::write(
                dir.path().join("dovecot.conf"),
                config(dir.path(), addr, &account, options),
            )?;
            match launch(dir.path(), addr, &account, &tls).await {
                Ok(child) => {
                    return Ok(Some(Self {
                        child,
                        addr,
                        dir,
                        tls,
                    }));
                }
                Err(Launch::PortTaken(e)) => last = Some(e),
                Err(Launch::Failed(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DovecotError::Config("no free port".into())))
    }

    /// Where Dovecot listens (implicit TLS).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What Dovecot has logged so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The user's maildir folder `folder` on disk (`INBOX` is the maildir itself).
    pub fn folder_path(&self, folder: &str) -> PathBuf {
        let maildir = self.dir.path().join("home").join(USER).join("Maildir");
        if folder.eq_ignore_ascii_case("INBOX") {
            maildir
        } else {
            maildir.join(format!(".{folder}"))
        }
    }

    /// The messages of `folder` as stored on disk (`cur/` and `new/`, by file name), whatever
    /// their flags; empty when the folder does not exist.
    ///
    /// # Errors
    /// When a file cannot be read.
    pub fn messages(&self, folder: &str) -> Result<Vec<Vec<u8>>, DovecotError> {
        let base = self.folder_path(folder);
        let mut files = Vec::new();
        for sub in ["cur", "new"] {
            let Ok(entries) = std::fs::read_dir(base.join(sub)) else {
                continue;
            };
            for e in entries {
                let e = e?;
                if e.file_type()?.is_file() {
                    files.push(e.path());
                }
            }
        }
        files.sort();
        Ok(files.iter().map(std::fs::read).collect::<Result<_, _>>()?)
    }

    /// How many messages `folder` holds on disk.
    ///
    /// # Errors
    /// As for [`Dovecot::messages`].
    pub fn count(&self, folder: &str) -> Result<usize, DovecotError> {
        Ok(self.messages(folder)?.len())
    }

    /// Creates `folder`; one that exists already is fine.
    ///
    /// # Errors
    /// When the exchange fails.
    pub async fn create(&self, folder: &str) -> Result<(), DovecotError> {
        let mut c = self.login().await?;
        let answer = c.command(&format!("CREATE {}", quoted(folder))).await?;
        if !answer.starts_with("OK") && !answer.contains("[ALREADYEXISTS]") {
            return Err(DovecotError::Imap {
                command: format!("CREATE {folder}"),
                answer,
            });
        }
        c.logout().await
    }

    /// Appends each of `messages` to `folder` (created when missing) over one IMAP session,
    /// in order.
    ///
    /// # Errors
    /// When the exchange fails or Dovecot refuses a message.
    pub async fn append(&self, folder: &str, messages: &[Vec<u8>]) -> Result<(), DovecotError> {
        let mut c = self.login().await?;
        let answer = c.command(&format!("CREATE {}", quoted(folder))).await?;
        if !answer.starts_with("OK") && !answer.contains("[ALREADYEXISTS]") {
            return Err(DovecotError::Imap {
                command: format!("CREATE {folder}"),
                answer,
            });
        }
        for m in messages {
            // LITERAL+: the message follows the command without waiting for a continuation.
            let mut line = format!("APPEND {} {{{}+}}\r\n", quoted(folder), m.len()).into_bytes();
            line.extend_from_slice(m);
            let answer = c.command_bytes(&line).await?;
            if !answer.starts_with("OK") {
                return Err(DovecotError::Imap {
                    command: format!("APPEND {folder} ({} bytes)", m.len()),
                    answer,
                });
            }
        }
        c.logout().await
    }

    /// A logged-in session of the harness's own client.
    async fn login(&self) -> Result<Client, DovecotError> {
        let mut c = Client::connect(self.addr, &self.tls).await?;
        let answer = c
            .command(&format!("LOGIN {} {}", quoted(USER), quoted(PASSWORD)))
            .await?;
        if !answer.starts_with("OK") {
            return Err(DovecotError::Imap {
                command: "LOGIN".into(),
                answer,
            });
        }
        Ok(c)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // The master's children notice that it is gone and exit.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The harness's own minimal client: one command at a time, answers read line by line (it
/// only sends commands whose answers hold no literals).
struct Client {
    stream: BufReader<tokio_rustls::client::TlsStream<TcpStream>>,
    next: u32,
}

impl Client {
    async fn connect(
        addr: SocketAddr,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Self, DovecotError> {
        let connect = async {
            let tcp = TcpStream::connect(addr).await?;
            let name = ServerName::try_from(HOST_NAME).map_err(std::io::Error::other)?;
            let s = tokio_rustls::TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await?;
            let mut stream = BufReader::new(s);
            let mut greeting = String::new();
            stream.read_line(&mut greeting).await?;
            Ok::<_, std::io::Error>((stream, greeting))
        };
        let (stream, greeting) = tokio::time::timeout(CLIENT_TIMEOUT, connect)
            .await
            .map_err(|_| std::io::Error::other("no greeting in time"))??;
        if !greeting.starts_with("* OK") {
            return Err(DovecotError::Imap {
                command: "(greeting)".into(),
                answer: greeting,
            });
        }
        Ok(Self { stream, next: 0 })
    }

    async fn command(&mut self, command: &str) -> Result<String, DovecotError> {
        self.command_bytes(command.as_bytes()).await
    }

    /// Sends `a<N> <bytes>\r\n` and returns the tagged answer without the tag.
    async fn command_bytes(&mut self, bytes: &[u8]) -> Result<String, DovecotError> {
        self.next += 1;
        let tag = format!("a{}", self.next);
        let exchange = async {
            let s = self.stream.get_mut();
            s.write_all(format!("{tag} ").as_bytes()).await?;
            s.write_all(bytes).await?;
            s.write_all(b"\r\n").await?;
            s.flush().await?;
            loop {
                let mut line = String::new();
                if self.stream.read_line(&mut line).await? == 0 {
                    return Err(std::io::Error::other("connection closed"));
                }
                if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                    return Ok(rest.trim_end().to_owned());
                }
            }
        };
        Ok(tokio::time::timeout(CLIENT_TIMEOUT, exchange)
            .await
            .map_err(|_| std::io::Error::other("no answer in time"))??)
    }

    async fn logout(mut self) -> Result<(), DovecotError> {
        self.command("LOGOUT").await.map(drop)
    }
}

fn skip_or_fail() {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {DOVECOT} or {IMAP} is not installed (tests/e2e/dovecot/install.sh): the \
         IMAP tests cannot run"
    );
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("dovecot test");
    #[allow(clippy::print_stderr, reason = "a skipped test must say so loudly")]
    {
        eprintln!(
            "SKIP {test} (dovecot): {DOVECOT} is not installed; run tests/e2e/dovecot/install.sh"
        );
    }
}

/// Who Dovecot runs as.
#[derive(Debug)]
struct Account {
    user: String,
    group: String,
    uid: u32,
    gid: u32,
    /// We are root: run Dovecot as `user` and give it the directory.
    switch: bool,
}

impl Account {
    /// The current user, or the `dovecot` system user when we are root. The current ids are
    /// those of `dir`, which we just made.
    fn pick(dir: &Path) -> Result<Self, DovecotError> {
        let meta = std::fs::metadata(dir)?;
        let passwd = std::fs::read_to_string("/etc/passwd")?;
        let group = std::fs::read_to_string("/etc/group")?;
        let switch = meta.uid() == 0;
        let (user, uid, gid) = if switch {
            passwd_entry(&passwd, |name, _| name == "dovecot").ok_or_else(|| {
                DovecotError::Config("running as root, but there is no `dovecot` user".into())
            })?
        } else {
            passwd_entry(&passwd, |_, uid| uid == meta.uid()).ok_or_else(|| {
                DovecotError::Config(format!("uid {} is not in /etc/passwd", meta.uid()))
            })?
        };
        let group = group
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[2].parse() == Ok(gid)).then(|| f[0].to_owned())
            })
            .ok_or_else(|| DovecotError::Config(format!("gid {gid} is not in /etc/group")))?;
        Ok(Self {
            user,
            group,
            uid,
            gid,
            switch,
        })
    }

    /// Hands `dir` and everything in it to the account (when we are root).
    fn give(&self, dir: &Path) -> std::io::Result<()> {
        if !self.switch {
            return Ok(());
        }
        let mut todo = vec![dir.to_owned()];
        while let Some(p) = todo.pop() {
            std::os::unix::fs::lchown(&p, Some(self.uid), Some(self.gid))?;
            if p.is_dir() && !p.is_symlink() {
                for e in std::fs::read_dir(&p)? {
                    todo.push(e?.path());
                }
            }
        }
        Ok(())
    }
}

/// The first /etc/passwd entry `pick(name, uid)` accepts: (name, uid, gid).
fn passwd_entry(passwd: &str, pick: impl Fn(&str, u32) -> bool) -> Option<(String, u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let (uid, gid) = (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        pick(f[0], uid).then(|| (f[0].to_owned(), uid, gid))
    })
}

enum Launch {
    PortTaken(DovecotError),
    Failed(DovecotError),
}

/// Starts Dovecot and waits until it greets over TLS.
async fn launch(
    dir: &Path,
    addr: SocketAddr,
    account: &Account,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Child, Launch> {
    let io = |e: std::io::Error| Launch::Failed(e.into());
    let log_path = dir.join("dovecot.log");
    let out = File::create(dir.join("dovecot.out")).map_err(io)?;
    // A previous attempt's log would mention its taken port.
    File::create(&log_path).map_err(io)?;
    account.give(dir).map_err(io)?;
    let mut cmd = Command::new(DOVECOT);
    cmd.arg("-F")
        .arg("-c")
        .arg(dir.join("dovecot.conf"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(io)?)
        .stderr(out);
    if account.switch {
        cmd.uid(account.uid).gid(account.gid);
    }
    let mut child = cmd.spawn().map_err(io)?;
    let started = Instant::now();
    let fail = |why: String| {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default()
            + &std::fs::read_to_string(dir.join("dovecot.out")).unwrap_or_default();
        if log.contains("Address already in use") {
            Launch::PortTaken(DovecotError::Start { why, log })
        } else {
            Launch::Failed(DovecotError::Start { why, log })
        }
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!("dovecot exited ({status})")));
        }
        if greets(addr, tls).await {
            return Ok(child);
        }
        if started.elapsed() > READY_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!("no greeting within {READY_WITHIN:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether a server at `addr` completes a TLS handshake for [`HOST_NAME`] with our PKI and
/// greets with `* OK`.
async fn greets(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> bool {
    let attempt = Client::connect(addr, tls);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(_))
    )
}

/// A free TCP port on an address of our own, 127.143.x.y.
fn free_addr() -> std::io::Result<SocketAddr> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mix = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(40_503))
        ^ nanos;
    let ip = Ipv4Addr::new(
        127,
        143,
        (mix % 250) as u8 + 1,
        ((mix >> 8) % 250) as u8 + 1,
    );
    std::net::TcpListener::bind((ip, 0))?.local_addr()
}

/// dovecot.conf: everything under `dir`, implicit TLS only, one passwd-file user, maildir.
fn config(dir: &Path, addr: SocketAddr, account: &Account, options: &Options) -> String {
    let d = dir.display();
    let capabilities: Vec<&str> = CAPABILITIES
        .split_whitespace()
        .filter(|c| !options.without.iter().any(|w| w.eq_ignore_ascii_case(c)))
        .collect();
    format!(
        "# Written by mtasts_testnet::dovecot for one test.\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         instance_name = dovecot-{port}\n\
         log_path = {d}/dovecot.log\n\
         protocols = imap\n\
         listen = {ip}\n\
         ssl = required\n\
         ssl_cert = <{d}/cert.pem\n\
         ssl_key = <{d}/key.pem\n\
         auth_mechanisms = plain login\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {d}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/home/%u\n}}\n\
         first_valid_uid = 1\n\
         mail_location = maildir:~/Maildir\n\
         namespace inbox {{\n  inbox = yes\n  separator = .\n}}\n\
         default_internal_user = {user}\n\
         default_internal_group = {group}\n\
         default_login_user = {user}\n\
         protocol imap {{\n  imap_capability = {caps}\n}}\n\
         service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = 0\n  }}\n  \
         inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n\
         service stats {{\n  unix_listener stats-reader {{\n    mode = 0600\n  }}\n  \
         unix_listener stats-writer {{\n    mode = 0600\n  }}\n}}\n",
        ip = addr.ip(),
        port = addr.port(),
        uid = account.uid,
        gid = account.gid,
        user = account.user,
        group = account.group,
        caps = capabilities.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mail_appended_is_on_disk_and_the_server_stops_when_dropped() {
        let pki = Pki::new().unwrap();
        let Some(d) = Dovecot::start(&pki).await.unwrap() else {
            return;
        };
        let mails = vec![
            b"Subject: one\r\n\r\nfirst\r\n".to_vec(),
            b"Subject: two\r\n\r\nsecond\r\n".to_vec(),
        ];
        d.append("INBOX", &mails).await.unwrap();
        d.append("TLSRPT.processed", &mails[..1]).await.unwrap();
        assert_eq!(d.count("INBOX").unwrap(), 2, "{}", d.log());
        assert_eq!(d.count("TLSRPT.processed").unwrap(), 1);
        assert_eq!(d.count("missing").unwrap(), 0);
        let stored = d.messages("INBOX").unwrap();
        assert!(
            stored
                .iter()
                .any(|m| m.ends_with(b"first\r\n") || m.ends_with(b"first\n")),
            "{stored:?}"
        );
        d.create("TLSRPT.processed").await.unwrap();
        let addr = d.addr();
        drop(d);
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(pki.root_store())
            .with_no_client_auth(),
        );
        assert!(!greets(addr, &tls).await, "dovecot is gone with its handle");
    }

    #[test]
    fn capabilities_can_be_left_out() {
        let account = Account {
            user: "u".into(),
            group: "g".into(),
            uid: 1000,
            gid: 1000,
            switch: false,
        };
        let options = Options {
            without: vec!["MOVE".into(), "idle".into()],
        };
        let addr: SocketAddr = "127.143.1.1:993".parse().unwrap();
        let c = config(Path::new("/tmp/x"), addr, &account, &options);
        let caps = c
            .lines()
            .find_map(|l| l.trim().strip_prefix("imap_capability = "))
            .unwrap();
        assert!(
            caps.contains("UIDPLUS") && caps.contains("LITERAL+"),
            "{caps}"
        );
        assert!(
            !caps.split(' ').any(|c| c == "MOVE" || c == "IDLE"),
            "{caps}"
        );
        assert!(c.contains("port = 993"), "{c}");
    }
}
