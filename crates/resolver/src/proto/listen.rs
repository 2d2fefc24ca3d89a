//! Where a protocol server listens: a TCP address or a unix socket path.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokio::net::{TcpListener, UnixListener, UnixStream};

/// The permissions of a unix socket created by [`ListenAddr::bind`]: owner and group may
/// connect, nobody else.
///
/// Any process that can connect can hold connections open and stall lookups, so a socket writable
/// by every local user lets any of them delay mail. Postfix's smtp(8) processes run as the
/// `postfix` user: give the socket the `postfix` group ([`UnixSocket::group`], `socket_group`
/// in the configuration) and 0660 lets Postfix in and keeps everyone else out, whoever the
/// daemon runs as. 0600 would need the daemon to run as `postfix` itself.
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// How unix socket listeners are created: their permission bits and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixSocket {
    /// Permission bits (at most 0o777).
    pub mode: u32,
    /// Group id to give the socket; `None` keeps the daemon's own group.
    pub group: Option<u32>,
}

impl Default for UnixSocket {
    fn default() -> Self {
        Self {
            mode: DEFAULT_UNIX_MODE,
            group: None,
        }
    }
}

impl UnixSocket {
    /// From the configuration's `socket_mode` (octal, e.g. `"0660"`) and `socket_group` (a group
    /// name from `/etc/group`, or a number).
    ///
    /// # Errors
    /// The mode is not octal or has bits beyond 0o777, or the group is unknown.
    pub fn parse(mode: Option<&str>, group: Option<&str>) -> Result<Self, String> {
        let mode = match mode {
            None => DEFAULT_UNIX_MODE,
            Some(m) => {
                let digits = m.trim().trim_start_matches("0o");
                match u32::from_str_radix(digits, 8) {
                    Ok(v) if v <= 0o777 && !digits.is_empty() => v,
                    _ => return Err(format!("socket_mode {m:?}: not an octal mode like 0660")),
                }
            }
        };
        if mode & 0o600 != 0o600 {
            return Err(format!(
                "socket_mode {mode:04o}: the daemon's own user must be able to read and write \
                 its socket (0600 at least)"
            ));
        }
        let group = match group {
            None => None,
            Some(g) => Some(group_id(g).ok_or_else(|| {
                format!("socket_group {g:?}: no such group in /etc/group (give a name or a number)")
            })?),
        };
        Ok(Self { mode, group })
    }
}

/// A group's id: a number as it is, a name looked up in `/etc/group`.
fn group_id(group: &str) -> Option<u32> {
    if let Ok(n) = group.parse() {
        return Some(n);
    }
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == group)
            .then(|| fields.nth(1)?.parse().ok())
            .flatten()
    })
}

/// A listen address: `127.0.0.1:8461`, `[::1]:8461` or `unix:/run/mtasts/socketmap.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP address (Postfix `socketmap:inet:HOST:PORT:NAME`, `tcp:HOST:PORT`).
    Tcp(SocketAddr),
    /// A unix socket path (Postfix `socketmap:unix:PATH:NAME`).
    Unix(PathBuf),
}

/// A listen address that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid listen address {input:?}: expected IP:PORT, [IPv6]:PORT or unix:/PATH")]
pub struct ListenAddrError {
    /// The rejected text.
    pub input: String,
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(s: &str) -> Result<Self, ListenAddrError> {
        let err = || ListenAddrError {
            input: s.to_owned(),
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() || path.contains('\0') {
                return Err(err());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>().map(Self::Tcp).map_err(|_| err())
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "{addr}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl ListenAddr {
    /// Binds the address; a unix socket gets [`DEFAULT_UNIX_MODE`].
    ///
    /// # Errors
    /// As [`ListenAddr::bind_with`].
    pub async fn bind(&self) -> io::Result<Listener> {
        self.bind_with(UnixSocket::default()).await
    }

    /// Binds the address; a unix socket file gets the permission bits `mode`.
    ///
    /// # Errors
    /// As [`ListenAddr::bind_with`].
    pub async fn bind_with_mode(&self, mode: u32) -> io::Result<Listener> {
        self.bind_with(UnixSocket { mode, group: None }).await
    }

    /// Binds the address; a unix socket file gets `unix`'s mode and group. The socket is
    /// created with no permissions for anyone but the owner and only then opened up, so there
    /// is no moment when it is more open than asked.
    ///
    /// A stale unix socket file (one nobody accepts on) is removed first. A live one is an
    /// [`io::ErrorKind::AddrInUse`] error, and a path that exists but is not a socket is never
    /// removed ([`io::ErrorKind::AlreadyExists`]).
    ///
    /// # Errors
    /// Binding fails, the path is in use or is not a socket, or setting the mode fails.
    pub async fn bind_with(&self, unix: UnixSocket) -> io::Result<Listener> {
        match self {
            Self::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Self::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path)?;
                let guard = SocketFile(path.clone());
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                if let Some(gid) = unix.group {
                    std::os::unix::fs::chown(path, None, Some(gid))?;
                }
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(unix.mode))?;
                Ok(Listener::Unix(listener, guard))
            }
        }
    }
}

/// Removes `path` if it is a unix socket that nothing accepts on.
async fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is in use by a running server", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

/// Removes the socket file when the listener goes away.
#[derive(Debug)]
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        // Best effort: the file may already be gone, and a failure leaves a stale socket that
        // the next bind removes.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A bound listener, ready for a protocol server's `serve`.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix socket listener; its socket file is removed when it is dropped.
    Unix(UnixListener, SocketFile),
}

impl Listener {
    /// The bound address (the actual port when bound to port 0).
    ///
    /// # Errors
    /// The socket's local address cannot be read.
    pub fn local_addr(&self) -> io::Result<ListenAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().map(ListenAddr::Tcp),
            Self::Unix(_, file) => Ok(ListenAddr::Unix(file.0.clone())),
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Self::Tcp(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_the_three_forms() {
        for text in [
            "127.0.0.1:8461",
            "[::1]:8461",
            "unix:/run/mtasts/socketmap.sock",
        ] {
            let addr: ListenAddr = text.parse().expect(text);
            assert_eq!(addr.to_string(), text);
        }
        assert!(matches!("[::1]:8461".parse(), Ok(ListenAddr::Tcp(a)) if a.is_ipv6()));
    }

    #[test]
    fn socket_modes_and_groups_parse() {
        assert_eq!(UnixSocket::parse(None, None), Ok(UnixSocket::default()));
        assert_eq!(
            DEFAULT_UNIX_MODE & 0o007,
            0,
            "not world-accessible by default"
        );
        assert_eq!(
            UnixSocket::parse(Some("0600"), Some("0")).unwrap().mode,
            0o600
        );
        assert_eq!(UnixSocket::parse(None, Some("0")).unwrap().group, Some(0));
        assert_eq!(
            UnixSocket::parse(None, Some("root")).unwrap().group,
            Some(0)
        );
        for bad in ["8", "01777", "rw", "", "0060"] {
            assert!(UnixSocket::parse(Some(bad), None).is_err(), "{bad}");
        }
        assert!(UnixSocket::parse(None, Some("no-such-group-here")).is_err());
    }

    #[tokio::test]
    async fn unix_sockets_are_not_world_writable_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = ListenAddr::Unix(path.clone()).bind().await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        drop(listener);
        // A group the test may give its own files: the one its temporary directory has.
        let gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(dir.path()).unwrap());
        let _l = ListenAddr::Unix(path.clone())
            .bind_with(UnixSocket {
                mode: 0o600,
                group: Some(gid),
            })
            .await
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), gid);
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "unix:",
            "localhost:8461",
            "127.0.0.1",
            "::1:8461",
            "tcp:1.2.3.4:5",
        ] {
            assert!(text.parse::<ListenAddr>().is_err(), "{text:?} parsed");
        }
    }
}
