//! TLS-RPT reports (RFC 8460 §4): model, tolerant parsing and strict generation.
