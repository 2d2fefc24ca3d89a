//! The server on 127.0.0.1 with certificates from the testnet PKI.

mod hostile;
mod serve;
mod support;
