//! The OpenAPI document of the admin API, checked in at `docs/openapi.json` and served at
//! `GET /openapi.json`.

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("../../../../docs/openapi.json");
