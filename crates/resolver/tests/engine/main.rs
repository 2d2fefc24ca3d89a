//! The policy engine against the test internet, with time driven by tokio's paused clock.
//!
//! Each test runs on a current-thread runtime. Network steps run with the clock resumed (real
//! time); [`Fx::advance`] pauses the clock, jumps it forward and resumes it, so expiry, refresh
//! and back-off are tested in milliseconds.

mod daemon;
mod dane;
mod fixture;
mod persist;
mod redis;
mod refresh;
mod replies;
