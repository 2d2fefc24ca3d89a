//! Network I/O for mtasts. Every step runs under a time budget and reports what it observed:
//! a DNS failure (SERVFAIL, timeout) is told apart from "no such record" (NXDOMAIN, NODATA).
//!
//! # Layout
//! - [`dane`]: DANE for SMTP (RFC 7672): TLSA usability, chain matching, the state of an MX host.
//! - [`dns`]: TXT, MX, A/AAAA lookups through hickory-resolver; validated MX and TLSA lookups.
//! - [`env`](mod@env): the network environment (resolver, trust roots, fetch limits) built once from
//!   one options struct, [`env::NetOptions`].
//! - [`endpoint`]: a harmless check (`OPTIONS`, verified TLS) of a TLS-RPT `https:` endpoint.
//! - [`https`]: the HTTPS policy fetch (no redirects, no cache, body cap, one time budget),
//!   through the recording TLS verifier.
//! - [`probe`]: the whole STARTTLS probe of one MX address (SMTP, then TLS, then QUIT).
//! - [`service`]: the reload/stop life cycle every long-running service shares.
//! - [`smtp`]: the plaintext part of the STARTTLS probe (banner, EHLO, STARTTLS).
//! - [`tls`]: TLS handshakes through a recording certificate verifier: chain, verdict (mapped to
//!   TLS-RPT result types), protocol version, cipher suite, days left.

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

pub mod dane;
pub mod dns;
pub mod endpoint;
pub mod env;
pub mod https;
pub mod probe;
pub mod service;
pub mod smtp;
pub mod tls;
