//! Pure RFC 8461 (MTA-STS) and RFC 8460 (TLS-RPT) logic for mtasts.
//!
//! No I/O, no clock, no randomness: bytes go in, values and [`Diagnostic`]s come out. Every network
//! and storage concern lives in other crates.
//!
//! # Layout
//! - [`catalog`]: every finding id, declared once (id, severities, summary).
//! - [`domain`]: the validated, normalised [`domain::Domain`] every part takes.
//! - [`finding`]: the finding of an observation (id, severity, observed, fix, untested).
//! - [`diag`]: positioned findings with stable ids, severities and fixes.
//! - [`name`]: host names and MX patterns (one-label wildcard, A-labels).
//! - [`policy`]: the policy file parser (sender view plus checker findings).
//! - [`providers`]: the policy builder: live MX hosts to the narrowest `mx` patterns.
//! - [`record`]: the `_mta-sts` and `_smtp._tls` TXT records, RRset selection included.
//! - [`render`]: canonical policy text and content-derived ids.
//! - [`report`]: the TLS-RPT report model: tolerant parsing (JSON, gzip, MIME mail) and strict
//!   generation.
//! - [`rollout`]: the guided rollout testing -> enforce -> removal, a pure state machine.
//! - [`text`]: escaping foreign strings for terminal text.

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

pub mod catalog;
pub mod diag;
pub mod domain;
pub mod finding;
pub mod name;
pub mod policy;
pub mod providers;
pub mod record;
pub mod render;
pub mod report;
pub mod rollout;
pub mod text;

pub use diag::{Diagnostic, Severity};
pub use finding::Finding;
