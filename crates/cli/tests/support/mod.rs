//! What the tests that run `mtasts serve` as a process share: the binary without the
//! developer's `MTASTS_*` variables, a runner off the async runtime, a guard that kills a
//! server (printing its log when the test failed), a free address, and `/health`.
#![allow(clippy::print_stderr, reason = "a failed test prints the server's log")]

#[allow(dead_code, reason = "only the corpus tests use it")]
pub(crate) mod corpus;
#[allow(dead_code, reason = "only the SMTP tests use it")]
pub(crate) mod mail;

use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The binary, with none of the `MTASTS_*` variables of the environment the tests run in: a
/// developer's exported MTASTS_SERVER or MTASTS_SERVE__* must not change what is tested.
pub(crate) fn bin() -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mtasts"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("MTASTS_")) {
        c.env_remove(k);
    }
    c.env("NO_COLOR", "1");
    c
}

/// Runs the binary with `args` and the variables `envs`, off the runtime (which serves the
/// test's world or relay): (status, stdout, stderr).
pub(crate) async fn run(args: Vec<String>, envs: &[(&str, &str)]) -> (i32, String, String) {
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let out = tokio::task::spawn_blocking(move || bin().envs(envs).args(&args).output().unwrap())
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `mtasts serve`, killed on drop; its log is printed if the test failed.
pub(crate) struct Serve {
    pub(crate) child: std::process::Child,
    pub(crate) log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {}:\n{log}", self.log.display());
        }
    }
}

/// An address on `ip` with a port nobody listens on now.
pub(crate) fn free_addr(ip: Ipv4Addr) -> SocketAddr {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET /health` on the admin listener: (status, JSON), `None` while it does not answer.
pub(crate) async fn health(admin: SocketAddr) -> Option<(u16, Value)> {
    let (status, body) = admin_get(admin, "/health").await?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// `GET path` on the plain admin listener: (status, body), `None` while it does not answer.
pub(crate) async fn admin_get(admin: SocketAddr, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(admin).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    c.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}
