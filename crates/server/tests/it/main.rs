//! The server on 127.0.0.1 with certificates from the testnet PKI.

// The load tests print what they measured.
#![allow(clippy::print_stderr)]

mod dnsupdate;
mod emitted;
mod hostile;
mod serve;
mod support;
