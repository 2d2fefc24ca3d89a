//! The domain operations layer and the admin API, on SQLite and (with `TEST_DATABASE_URL`)
//! PostgreSQL.

mod api;
mod domains;
mod support;
