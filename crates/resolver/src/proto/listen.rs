//! Where a protocol server listens: a TCP address or a unix socket path.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tokio::net::{TcpListener, UnixListener, UnixStream};

/// The permissions of a unix socket created by [`ListenAddr::bind`]: readable and writable by
/// everyone, as Postfix's own public sockets are. The socket answers policy lookups only, and
/// Postfix's smtp(8) processes run as the `postfix` user, so anything stricter must match that
/// user or group; restrict access with [`ListenAddr::bind_with_mode`] or the directory's
/// permissions.
pub const DEFAULT_UNIX_MODE: u32 = 0o666;

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
    /// As [`ListenAddr::bind_with_mode`].
    pub async fn bind(&self) -> io::Result<Listener> {
        self.bind_with_mode(DEFAULT_UNIX_MODE).await
    }

    /// Binds the address; a unix socket file gets the permission bits `mode`.
    ///
    /// A stale unix socket file (one nobody accepts on) is removed first. A live one is an
    /// [`io::ErrorKind::AddrInUse`] error, and a path that exists but is not a socket is never
    /// removed ([`io::ErrorKind::AlreadyExists`]).
    ///
    /// # Errors
    /// Binding fails, the path is in use or is not a socket, or setting the mode fails.
    pub async fn bind_with_mode(&self, mode: u32) -> io::Result<Listener> {
        match self {
            Self::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Self::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path)?;
                let guard = SocketFile(path.clone());
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
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
