//! The Postfix protocol servers on real TCP and unix sockets (loopback only), driven by an
//! in-memory test handler: exchanges byte for byte as Postfix sends them, pipelining, every
//! limit and time-out, hostile bytes, bounded connections and graceful shutdown; plus the
//! netstring codec's properties and the replay of the fuzz corpora.

mod exhaustion;
mod fuzz_corpus;
mod netstring;
mod socketmap;
mod support;
mod tcp_table;
