//! The store suite: every test in `both!` runs once on SQLite (a fresh file in a temp dir) and
//! once on PostgreSQL (a fresh database on the server at `TEST_DATABASE_URL`). Without that
//! variable the PostgreSQL half says SKIP on stderr, and fails when `CI=true`.

mod support;

mod acme;
mod certs;
mod crash;
mod domains;
mod reports;
mod tokens_and_history;
mod watch;
