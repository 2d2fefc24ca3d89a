//! The STARTTLS probe of one MX address: connect, banner, EHLO, STARTTLS, TLS handshake through
//! the recording verifier, EHLO again over TLS, QUIT.
//!
//! The probe never fails: it returns what it observed and, when a step failed, which step and
//! why ([`ProbeFailure`]). A checker maps that to a finding; "could not connect" and "timed out"
//! stay distinct from "no STARTTLS" and from certificate problems.

use crate::smtp::{Reply, SmtpError, quit, starttls_prelude};
use crate::tls::{TlsError, TlsObservation, TlsProbeConfig, tls_connect};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::TcpStream;

/// Time budgets of the probe's stages.
#[derive(Debug, Clone, Copy)]
pub struct ProbeBudget {
    /// TCP connect.
    pub connect: Duration,
    /// Banner, EHLO and STARTTLS together.
    pub smtp: Duration,
    /// The TLS handshake.
    pub tls: Duration,
}

impl Default for ProbeBudget {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            smtp: Duration::from_secs(30),
            tls: Duration::from_secs(15),
        }
    }
}

/// Where the probe stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProbeFailure {
    /// The TCP connection could not be made (refused, unreachable).
    Connect(std::io::Error),
    /// The TCP connection did not complete within the budget.
    ConnectTimeout(Duration),
    /// The SMTP dialogue before TLS failed (timeout, close, refusal, malformed reply,
    /// injection).
    Smtp(SmtpError),
    /// The server offered STARTTLS but did not answer it with 220.
    StartTlsRefused(Reply),
    /// The TLS handshake failed.
    Tls(TlsError),
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::ConnectTimeout(d) => write!(f, "no TCP connection within {} ms", d.as_millis()),
            Self::Smtp(e) => write!(f, "{e}"),
            Self::StartTlsRefused(r) => write!(f, "STARTTLS was answered with {}", r.text()),
            Self::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl ProbeFailure {
    /// True when the host could not be tested at all (no connection, or no answer in time), as
    /// opposed to a host that answered and did something wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Self::Connect(_)
                | Self::ConnectTimeout(_)
                | Self::Smtp(SmtpError::Timeout {
                    stage: "banner",
                    ..
                })
                | Self::Smtp(SmtpError::Closed { stage: "banner" })
        )
    }
}

impl ProbeFailure {
    /// True when the server answered but turned us away for now, or was too slow, so that
    /// nothing can be said about its TLS (issue class "SMTP refusals are not TLS failures"): a
    /// 4xx or `554` greeting (a checker on a blocklisted address meets 554 routinely, RFC 5321
    /// §3.1), a 4xx or `554` reply to EHLO, a 4xx reply to STARTTLS, a connection closed or a
    /// reply missing within the budget after the banner, and a TLS handshake past its budget.
    /// [`ProbeFailure::is_unreachable`] failures are not included.
    pub fn is_transient(&self) -> bool {
        let turned_away = |code: u16| (400..500).contains(&code) || code == 554;
        match self {
            Self::Smtp(SmtpError::Refused { stage, reply }) => match *stage {
                "banner" | "EHLO reply" => turned_away(reply.code),
                _ => (400..500).contains(&reply.code),
            },
            Self::Smtp(SmtpError::Timeout { .. } | SmtpError::Closed { .. }) => {
                !self.is_unreachable()
            }
            Self::StartTlsRefused(reply) => (400..500).contains(&reply.code),
            Self::Tls(TlsError::Timeout(_)) => true,
            _ => false,
        }
    }
}

/// What the probe of one address observed.
#[derive(Debug)]
pub struct MxProbe {
    /// The address probed.
    pub addr: SocketAddr,
    /// The greeting, when one came.
    pub banner: Option<Reply>,
    /// The EHLO reply, when one came.
    pub ehlo: Option<Reply>,
    /// Whether EHLO advertised STARTTLS (`None` when EHLO was not reached).
    pub starttls_offered: Option<bool>,
    /// The TLS handshake, when it completed (the certificate verdict is inside).
    pub tls: Option<TlsObservation>,
    /// The step that failed, if any.
    pub failure: Option<ProbeFailure>,
}

/// Probes `addr`, the MX host `mx_host` (the name its certificate must match, also sent as SNI),
/// greeting with `EHLO ehlo_name`.
pub async fn probe_mx(
    addr: SocketAddr,
    mx_host: &str,
    ehlo_name: &str,
    tls: &TlsProbeConfig,
    budget: ProbeBudget,
) -> MxProbe {
    let mut probe = MxProbe {
        addr,
        banner: None,
        ehlo: None,
        starttls_offered: None,
        tls: None,
        failure: None,
    };
    let tcp = match tokio::time::timeout(budget.connect, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            probe.failure = Some(ProbeFailure::Connect(e));
            return probe;
        }
        Err(_) => {
            probe.failure = Some(ProbeFailure::ConnectTimeout(budget.connect));
            return probe;
        }
    };
    let prelude = match starttls_prelude(tcp, ehlo_name, budget.smtp).await {
        Ok(p) => p,
        Err(e) => {
            probe.failure = Some(ProbeFailure::Smtp(e));
            return probe;
        }
    };
    probe.starttls_offered = Some(prelude.ehlo.offers_starttls());
    probe.banner = Some(prelude.banner);
    probe.ehlo = Some(prelude.ehlo);
    let Some(stream) = prelude.stream else {
        if let Some(reply) = prelude.starttls {
            probe.failure = Some(ProbeFailure::StartTlsRefused(reply));
        }
        return probe;
    };
    match tls_connect(stream, mx_host, tls, budget.tls).await {
        Ok((tls_stream, observation)) => {
            probe.tls = Some(observation);
            // Be polite: end the session over TLS, briefly.
            let mut conn = BufReader::new(tls_stream);
            let _ = tokio::time::timeout(Duration::from_secs(2), quit(&mut conn)).await;
        }
        Err(e) => probe.failure = Some(ProbeFailure::Tls(e)),
    }
    probe
}
