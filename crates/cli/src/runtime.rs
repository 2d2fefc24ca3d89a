//! The async runtime of the commands that run one.

use anyhow::{Context, Result};

/// A runtime with `threads` worker threads. One thread gets tokio's single-threaded scheduler (no
/// work stealing, no cross-thread wake-ups: the least CPU when the work waits on the network);
/// more get the multi-threaded one.
pub(crate) fn with_threads(threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The CPUs this process may run on (which respects `taskset` and cgroup limits); 1 if unknown.
pub(crate) fn usable_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}
