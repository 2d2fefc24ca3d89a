//! Postfix wire protocols: socketmap (netstrings) and tcp_table.
//!
//! # Layout
//! - [`netstring`]: the netstring codec (sans-I/O, with a maximum length).
//! - [`socketmap`]: the socketmap server and its request/reply syntax.
//! - [`tcp_table`]: the tcp_table server, its line codec and `%XX` coding.
//! - [`ListenAddr`] / [`Listener`]: TCP or unix socket listeners; [`Limits`]: the limits and
//!   time-outs both servers apply.
//!
//! Both servers call only [`crate::Handler`]: one lookup in, one [`crate::Reply`] out. Each
//! connection runs in its own task and answers its requests in order (Postfix keeps one request
//! in flight per connection; pipelined requests are answered in order too). A request that has
//! arrived is always answered before the connection closes, also on shutdown.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mtasts_resolver::{Handler, Reply, proto::{Limits, ListenAddr, socketmap}};
//! use std::sync::Arc;
//!
//! struct Nothing;
//! impl Handler for Nothing {
//!     async fn lookup(&self, _name: &str, _key: &str) -> Reply {
//!         Reply::NotFound
//!     }
//! }
//!
//! let listener = "127.0.0.1:8461".parse::<ListenAddr>().expect("valid").bind().await?;
//! let ctrl_c = async { std::future::pending::<()>().await };
//! socketmap::serve(listener, Arc::new(Nothing), Limits::socketmap(), ctrl_c).await
//! # }
//! ```

mod conns;
mod listen;
pub mod netstring;
mod server;
pub mod socketmap;
pub mod tcp_table;

pub use listen::{
    DEFAULT_UNIX_MODE, ListenAddr, ListenAddrError, Listener, SocketFile, UnixSocket,
};
pub use server::Limits;
