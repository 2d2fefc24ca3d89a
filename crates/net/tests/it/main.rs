//! Integration tests for mtasts-net, one binary: every server runs on 127.0.0.1:0 and nothing
//! leaves loopback.

mod tls;
