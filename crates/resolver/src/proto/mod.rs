//! Postfix wire protocols: socketmap (netstrings) and tcp_table.

pub mod netstring;
