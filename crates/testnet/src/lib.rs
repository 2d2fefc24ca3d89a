//! A hermetic test internet on loopback, for tests and benchmarks that must reach nothing
//! outside the machine.
//!
//! # Layout
//! - [`dns`]: an authoritative DNS server (hickory-server) serving zones written as zone-file
//!   text, signed or not, with fault injection per name or per (name, record type): SERVFAIL,
//!   REFUSED, silence, delay, truncated UDP answers.
//! - [`dnssec`]: zone keys, DS and trust-anchor lines, spoiled signatures (bogus answers).
//! - [`tlsa`]: TLSA record data computed from a test certificate.
//! - [`https`]: scripted HTTPS policy hosts (a policy, an error status, a redirect, an HTML
//!   page, slowness), recording the last request.
//! - [`smtp`]: scripted SMTP MX hosts (STARTTLS or not, broken handshakes, silence, slowness)
//!   that accept whole messages and keep them for the test.
//! - [`relay`]: a TCP relay a test can cut and restore (a database outage seen by one client).
//! - [`dovecot`]: a real Dovecot IMAP server (Debian's `dovecot-imapd`) on loopback, implicit
//!   TLS with a certificate of our PKI, one passwd-file user, maildir storage; SKIP when
//!   Dovecot is missing, a failure when `CI=true`.
//! - [`knot`]: a real knotd (Debian's `knot`) on loopback, its zones open to RFC 2136 updates
//!   signed with one TSIG key, or refusing them; SKIP when knotd is missing, a failure when
//!   `CI=true`.
//! - `pg` (feature `postgres`): a fresh database per test on the PostgreSQL server of
//!   `TEST_DATABASE_URL`, dropped with its handle; SKIP when unset, a failure when `CI=true`.
//! - [`oldtls`]: handcrafted answers of a server that knows nothing newer than TLS 1.0.
//! - [`pki`]: a root CA, an intermediate and an untrusted root generated at run time (rcgen),
//!   issuing server certificates with scripted defects (expired, wrong name, untrusted, …).
//! - [`pebble`]: a real ACME CA (Let's Encrypt's Pebble, Debian package) per test on loopback,
//!   validating challenges through our DNS; SKIP when not installed, a failure when `CI=true`.
//! - [`world`]: all of the above for one domain, on its own loopback addresses.
//! - [`scenarios`]: a clean domain and one per kind of breakage, served at once (optionally on
//!   the standard ports 53, 25 and 443).

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

pub mod dns;
pub mod dnssec;
pub mod dovecot;
pub mod https;
pub mod knot;
pub mod oldtls;
pub mod pebble;
#[cfg(feature = "postgres")]
pub mod pg;
pub mod pki;
pub mod relay;
pub mod scenarios;
pub mod smtp;
pub mod tlsa;
pub mod world;
