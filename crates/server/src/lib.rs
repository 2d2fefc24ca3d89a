//! `mtasts serve`: hosts MTA-STS policies for one or ten thousand domains.
//!
//! `GET`/`HEAD https://mta-sts.<domain>/.well-known/mta-sts.txt` for every hosted domain, the
//! certificate chosen by SNI, HTTP/1.1 keep-alive and HTTP/2, TLS 1.2 and 1.3 only, and limits
//! on every connection. The policy path is one lookup: each domain's answer is rendered once,
//! when its snapshot is built, and served as bytes.
//!
//! # Layout
//! - [`hosted`]: the [`Hosted`] snapshot (domain -> policy bytes + certificate) and the
//!   [`HostedSet`] that swaps it as a whole.
//! - [`tls`]: the certificate by SNI, the server configuration, the ClientHello hook (ACME).
//! - [`http`]: the answers (policy, 404, 405, 421) and the port-80 challenge hook.
//! - [`limits`]: every limit, documented, with its default.
//! - [`server`]: the listeners, connection life, graceful drain; [`run`] is the entry point.
//! - [`config`]: `mtasts serve`'s TOML configuration ([`config::ServeConfig`]).
//! - [`acme`]: certificates by ACME for every hosted name: the engine, the challenge answers.
//! - [`publish`]: the TXT records of fully delegated domains, by RFC 2136 update.
//! - [`hosting`]: where hosted names must point, the records each delegation model needs.
//! - [`daemon`]: `mtasts serve` as one call, [`daemon::run`]: store, snapshot, listeners,
//!   reload on store changes, drain.
//! - [`dnsupdate`]: TXT records published by RFC 2136 dynamic update, signed with TSIG.
//!
//! # Metrics
//! Emitted through the `metrics` facade (the binary installs the exporter):
//! `mtasts_serve_requests_total{status}`, `mtasts_serve_connections` (gauge),
//! `mtasts_serve_connections_refused_total{limit}`, `mtasts_serve_connections_evicted_total`,
//! `mtasts_serve_connections_idle_closed_total`, `mtasts_serve_tls_handshakes_failed_total{reason}`.

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

pub mod acme;
pub mod admin;
pub mod alerts;
pub mod config;
pub mod daemon;
pub mod dnsupdate;
pub mod domains;
pub mod drift;
pub mod hosted;
pub mod hosting;
pub mod http;
pub mod limits;
pub mod ops;
pub mod publish;
pub mod report_imap;
pub mod report_sink;
pub mod server;
pub mod smtp_intake;
pub mod tls;

pub use hosted::{Hosted, HostedDomain, HostedSet};
pub use limits::Limits;
/// The reload/stop life cycle shared by every service ([`daemon::run`] takes its [`service::Shutdown`]).
pub use mtasts_net::service;
pub use server::{Config, Error, Server, run};
