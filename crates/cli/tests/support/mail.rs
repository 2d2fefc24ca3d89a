//! Sending mail with Debian's swaks (tests/e2e/swaks/install.sh): skipped loudly without it,
//! a failure when `CI=true`.
#![allow(clippy::print_stderr, reason = "a skipped test says so")]

use std::net::SocketAddr;
use std::path::Path;

pub(crate) fn swaks_present() -> bool {
    let ok = std::process::Command::new("swaks")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but swaks is not installed (tests/e2e/swaks/install.sh)"
        );
        eprintln!(
            "!!! SKIPPED: swaks is not installed (run tests/e2e/swaks/install.sh as root) !!!"
        );
    }
    ok
}

/// Sends `mail` with swaks (over STARTTLS when `tls`): (exit status, transcript).
pub(crate) async fn swaks(smtp: SocketAddr, mail: &Path, tls: bool) -> (i32, String) {
    let mut args = vec![
        "--server".to_owned(),
        smtp.ip().to_string(),
        "--port".to_owned(),
        smtp.port().to_string(),
        "--from".to_owned(),
        "tlsrpt@reporter.test".to_owned(),
        "--to".to_owned(),
        "tlsrpt@a.test".to_owned(),
        "--ehlo".to_owned(),
        "mail.reporter.test".to_owned(),
        "--data".to_owned(),
        mail.display().to_string(),
        "--timeout".to_owned(),
        "20".to_owned(),
    ];
    if tls {
        args.push("--tls".to_owned());
    }
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("swaks")
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
