//! The plaintext part of the SMTP STARTTLS probe: banner, EHLO, STARTTLS. The caller then runs the
//! TLS handshake on the returned stream (RFC 3207) and ends with QUIT.
//!
//! Every read is bounded: a reply line is at most [`MAX_LINE`] bytes, a reply at most
//! [`MAX_REPLY_LINES`] lines, and the whole exchange runs under the caller's time budget. After
//! the `220` to STARTTLS the read buffer must be empty: bytes already waiting there were sent
//! before the TLS handshake and could be injected by an attacker (the STARTTLS command-injection
//! bug class), so the probe refuses to go on.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line read, in bytes (RFC 5321 §4.5.3.1.5 says 512; real servers send more).
pub const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply.
pub const MAX_REPLY_LINES: usize = 100;

/// One SMTP reply: the code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without the code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply as the server sent it, one line per line (for reports).
    pub fn text(&self) -> String {
        let n = self.lines.len();
        self.lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}{}{}", self.code, if i + 1 == n { ' ' } else { '-' }, l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// True when EHLO advertised STARTTLS.
    pub fn offers_starttls(&self) -> bool {
        self.lines
            .iter()
            .skip(1)
            .any(|l| l.trim().eq_ignore_ascii_case("STARTTLS"))
    }
}

/// What the plaintext phase observed.
#[derive(Debug)]
pub struct Prelude {
    /// The greeting.
    pub banner: Reply,
    /// The EHLO reply.
    pub ehlo: Reply,
    /// The reply to STARTTLS, when it was offered and sent.
    pub starttls: Option<Reply>,
    /// The connection, ready for the TLS handshake when the server answered `220` to STARTTLS
    /// and nothing else was waiting; `None` otherwise.
    pub stream: Option<TcpStream>,
}

/// Why the plaintext phase could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// No complete reply within the budget (`stage` names what was awaited).
    #[error("no {stage} within {budget_ms} ms")]
    Timeout {
        /// `banner`, `EHLO reply` or `STARTTLS reply`.
        stage: &'static str,
        /// The budget, in milliseconds.
        budget_ms: u128,
    },
    /// The server closed the connection.
    #[error("the server closed the connection while we waited for the {stage}")]
    Closed {
        /// What was awaited.
        stage: &'static str,
    },
    /// The server does not accept mail from us (a 4xx or 5xx banner or EHLO reply).
    #[error("the server answered the {stage} with {}", reply.text())]
    Refused {
        /// Where.
        stage: &'static str,
        /// What it said.
        reply: Reply,
    },
    /// The reply is not SMTP (bad code, over-long line, too many lines).
    #[error("malformed {stage}: {message}")]
    Malformed {
        /// Where.
        stage: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Bytes arrived after the `220` to STARTTLS, before the TLS handshake: possible injection.
    #[error(
        "{count} byte(s) arrived after the STARTTLS reply and before the TLS handshake (possible STARTTLS injection)"
    )]
    Injection {
        /// How many bytes were waiting.
        count: usize,
    },
    /// A socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Runs banner, EHLO `ehlo_name` and, when offered, STARTTLS, within `budget` in total.
///
/// Returns the observations even when STARTTLS is not offered or refused (`stream` is then
/// `None`), so the caller can report exactly what happened.
pub async fn starttls_prelude(
    stream: TcpStream,
    ehlo_name: &str,
    budget: Duration,
) -> Result<Prelude, SmtpError> {
    let deadline = tokio::time::Instant::now() + budget;
    let mut conn = BufReader::new(stream);
    let banner = read_reply_by(&mut conn, "banner", deadline, budget).await?;
    if banner.code != 220 {
        return Err(SmtpError::Refused {
            stage: "banner",
            reply: banner,
        });
    }
    conn.get_mut()
        .write_all(format!("EHLO {ehlo_name}\r\n").as_bytes())
        .await?;
    let ehlo = read_reply_by(&mut conn, "EHLO reply", deadline, budget).await?;
    if ehlo.code != 250 {
        return Err(SmtpError::Refused {
            stage: "EHLO reply",
            reply: ehlo,
        });
    }
    if !ehlo.offers_starttls() {
        let _ = quit(&mut conn).await;
        return Ok(Prelude {
            banner,
            ehlo,
            starttls: None,
            stream: None,
        });
    }
    conn.get_mut().write_all(b"STARTTLS\r\n").await?;
    let starttls = read_reply_by(&mut conn, "STARTTLS reply", deadline, budget).await?;
    if starttls.code != 220 {
        let _ = quit(&mut conn).await;
        return Ok(Prelude {
            banner,
            ehlo,
            starttls: Some(starttls),
            stream: None,
        });
    }
    // Anything already buffered was sent before TLS: refuse it (the injection bug class).
    if !conn.buffer().is_empty() {
        return Err(SmtpError::Injection {
            count: conn.buffer().len(),
        });
    }
    Ok(Prelude {
        banner,
        ehlo,
        starttls: Some(starttls),
        stream: Some(conn.into_inner()),
    })
}

/// Sends QUIT and reads the reply, briefly; used on the plaintext or TLS stream.
pub async fn quit<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut BufReader<S>,
) -> Result<(), SmtpError> {
    conn.get_mut().write_all(b"QUIT\r\n").await?;
    let budget = Duration::from_secs(2);
    let _ = read_reply_by(
        conn,
        "QUIT reply",
        tokio::time::Instant::now() + budget,
        budget,
    )
    .await;
    Ok(())
}

/// Reads one (possibly multi-line) reply before `deadline`.
pub async fn read_reply_by<S: AsyncRead + Unpin>(
    conn: &mut BufReader<S>,
    stage: &'static str,
    deadline: tokio::time::Instant,
    budget: Duration,
) -> Result<Reply, SmtpError> {
    match tokio::time::timeout_at(deadline, read_reply(conn, stage)).await {
        Ok(r) => r,
        Err(_) => Err(SmtpError::Timeout {
            stage,
            budget_ms: budget.as_millis(),
        }),
    }
}

async fn read_reply<S: AsyncRead + Unpin>(
    conn: &mut BufReader<S>,
    stage: &'static str,
) -> Result<Reply, SmtpError> {
    let malformed = |message: String| SmtpError::Malformed { stage, message };
    let mut code = None;
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        if lines.len() >= MAX_REPLY_LINES {
            return Err(malformed(format!("more than {MAX_REPLY_LINES} lines")));
        }
        buf.clear();
        let n = (&mut *conn)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Err(SmtpError::Closed { stage });
        }
        if !buf.ends_with(b"\n") {
            return Err(malformed(format!(
                "a line longer than {MAX_LINE} bytes, or cut short"
            )));
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\r', '\n']);
        let (digits, rest) = line
            .split_at_checked(3)
            .ok_or_else(|| malformed(format!("{line:?} is not a reply")))?;
        let this: u16 = digits
            .parse()
            .ok()
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| malformed(format!("{line:?} does not start with a reply code")))?;
        if *code.get_or_insert(this) != this {
            return Err(malformed(format!(
                "reply code changed from {} to {this} inside one reply",
                code.unwrap_or(0)
            )));
        }
        let (sep, text) = match rest.chars().next() {
            None => (' ', ""),
            Some(c) => (c, &rest[1..]),
        };
        lines.push(text.to_owned());
        match sep {
            '-' => {}
            ' ' => return Ok(Reply { code: this, lines }),
            other => {
                return Err(malformed(format!(
                    "unexpected {other:?} after the reply code"
                )));
            }
        }
    }
}
