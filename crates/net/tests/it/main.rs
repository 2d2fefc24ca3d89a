//! Integration tests of mtasts-net against the hermetic test internet (mtasts-testnet).
//! Everything listens on loopback; nothing leaves the machine.

mod dane;
mod dns;
mod dnssec_rounds;
mod https;
mod probe;
mod smtp;
mod tls;
