//! Integration tests of the TLS-RPT report module (RFC 8460): real reports, the mail-auth
//! oracle, every repair and error, the limits, MIME shapes and property tests.

mod corpus;
mod errors;
mod generate;
mod limits;
mod memory;
mod mime;
mod oracle;
mod props;
mod repairs;
pub(crate) mod support;
mod tolerance;
