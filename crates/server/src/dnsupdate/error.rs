//! What can go wrong in an update, said in plain words: [`UpdateError`] (which server, which
//! zone) around an [`UpdateErrorKind`] (what happened), and the response codes in between.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::MAX_TXT_VALUE;

/// A DNS response code (RCODE, with the extended and TSIG error codes in the same space),
/// shown by its mnemonic: `REFUSED`, `NOTAUTH`, `BADSIG`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    /// No error.
    pub const NOERROR: Self = Self(0);
    /// The server failed (maybe for a moment).
    pub const SERVFAIL: Self = Self(2);
    /// The server refuses the operation (policy).
    pub const REFUSED: Self = Self(5);
    /// The server is not authoritative for the zone, or the request is not authorised.
    pub const NOTAUTH: Self = Self(9);
    /// A name of the update is outside the zone.
    pub const NOTZONE: Self = Self(10);
    /// TSIG: the MAC does not verify (wrong secret).
    pub const BADSIG: Self = Self(16);
    /// TSIG: the key is unknown to the server (or not allowed for this zone).
    pub const BADKEY: Self = Self(17);
    /// TSIG: the signing time is outside the fudge window (clocks differ).
    pub const BADTIME: Self = Self(18);

    /// The mnemonic (IANA "DNS RCODEs"), or `RCODE<n>` for a code without one. 16 reads
    /// `BADSIG`, its TSIG meaning: its other one, BADVERS, needs EDNS, which updates do not send.
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        #[rustfmt::skip]
        const NAMES: [&str; 24] = [
            "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN",
            "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE", "DSOTYPENI", "", "", "", "",
            "BADSIG", "BADKEY", "BADTIME", "BADMODE", "BADNAME", "BADALG", "BADTRUNC", "BADCOOKIE",
        ];
        match NAMES.get(usize::from(self.0)) {
            Some(n) if !n.is_empty() => (*n).into(),
            _ => format!("RCODE{}", self.0).into(),
        }
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A failed update: which server, which zone, and what went wrong ([`UpdateError::kind`]).
/// Shown as `DNS update of zone "example.net." at 192.0.2.1:53: <what went wrong>`.
#[derive(Debug)]
pub struct UpdateError {
    server: SocketAddr,
    zone: String,
    kind: UpdateErrorKind,
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DNS update of zone {:?} at {}: {}",
            self.zone, self.server, self.kind
        )
    }
}

impl std::error::Error for UpdateError {
    // The kind is part of the message already; its own cause (an I/O error) is the source.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// What went wrong in an update.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateErrorKind {
    /// The record's name (or the zone's) is not a domain name in ASCII (A-labels). Not sent.
    #[error("{name:?} is not a domain name in ASCII")]
    BadName {
        /// The name as given.
        name: String,
    },
    /// The record's name is not the zone's apex or below it. Not sent.
    #[error("{name:?} is not inside the zone; nothing was sent")]
    NotInZone {
        /// The name as given.
        name: String,
    },
    /// The TXT value is longer than [`MAX_TXT_VALUE`]. Not sent.
    #[error(
        "the TXT value is {0} bytes, more than the {MAX_TXT_VALUE} we publish; nothing was sent"
    )]
    ValueTooLong(usize),
    /// The connection could not be made, or broke before the answer was read.
    #[error("connection failed: {0}")]
    Io(#[source] std::io::Error),
    /// The update could not be encoded (a bug: names and values are checked before).
    #[error("the update could not be encoded: {0}")]
    Encode(String),
    /// No answer within the time budget.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server refused the update: `REFUSED`, `NOTAUTH` (no key, or the server is not
    /// authoritative for the zone) or `NOTZONE`.
    #[error("the server refused the update ({rcode}){}", unsigned_note(*.signed))]
    Refused {
        /// The response code.
        rcode: Rcode,
        /// Whether the answer was signed with our key (false also when no key is configured).
        signed: bool,
    },
    /// The server rejected our TSIG signature: `BADSIG` (wrong secret), `BADKEY` (key unknown
    /// or not allowed for this zone), `BADTIME` (clocks differ by more than the fudge).
    #[error("the server rejected our TSIG signature ({error}, response code {rcode}): {}",
        tsig_hint(*.error))]
    TsigRejected {
        /// The TSIG error.
        error: Rcode,
        /// The response code beside it (NOTAUTH, per RFC 8945).
        rcode: Rcode,
    },
    /// Any other error response code, e.g. `SERVFAIL`, `FORMERR`, `NOTIMP`.
    #[error("the server failed the update ({rcode}){}", unsigned_note(*.signed))]
    ServerError {
        /// The response code.
        rcode: Rcode,
        /// Whether the answer was signed with our key.
        signed: bool,
    },
    /// A key is configured and the answer is unsigned or its signature does not verify, so it
    /// cannot be trusted to report success.
    #[error("the answer failed our TSIG check: {0}")]
    TsigCheck(String),
    /// The answer is not a DNS message answering our update (garbage, another ID, not a
    /// response).
    #[error("malformed answer: {0}")]
    Malformed(String),
}

fn unsigned_note(signed: bool) -> &'static str {
    if signed { "" } else { " (answer not signed)" }
}

fn tsig_hint(error: Rcode) -> &'static str {
    match error {
        Rcode::BADSIG => "the secret differs from the server's",
        Rcode::BADKEY => {
            "the server does not know this key name and algorithm, or does not allow it to update this zone"
        }
        Rcode::BADTIME => "our clock and the server's differ by more than the fudge (300 s)",
        _ => "see the server's log",
    }
}

impl UpdateError {
    pub(super) fn new(server: SocketAddr, zone: String, kind: UpdateErrorKind) -> Self {
        Self { server, zone, kind }
    }

    /// What went wrong.
    pub fn kind(&self) -> &UpdateErrorKind {
        &self.kind
    }

    /// The server the update went to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The zone of the update.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Whether the same update may succeed later with nothing changed: a time-out, a broken
    /// connection or SERVFAIL. Everything else (a refusal, a rejected or failed TSIG check, a
    /// malformed answer, a bad name or value) is a configuration or input problem that needs a
    /// person; a caller may still retry those, slowly, but should report them as such.
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            UpdateErrorKind::Io(_) | UpdateErrorKind::Timeout(_) => true,
            UpdateErrorKind::ServerError { rcode, .. } => *rcode == Rcode::SERVFAIL,
            _ => false,
        }
    }
}
