//! The domain operations layer and the admin API, on SQLite and (with `TEST_DATABASE_URL`)
//! PostgreSQL. Without `TEST_DATABASE_URL` the PostgreSQL half says SKIP on stderr, and fails
//! when `CI=true`.
#![allow(clippy::print_stderr, reason = "a skipped PostgreSQL half says so")]

mod acme;
mod acme_bad;
mod alerts;
mod api;
mod daemon;
mod domains;
mod drift;
mod intake;
mod publish;
mod smtp;
mod support;
