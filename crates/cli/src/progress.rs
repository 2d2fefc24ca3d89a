//! The progress bar of a bulk `check`: on standard error, only when it is a terminal and more
//! than one domain is checked; never on standard output (results there are drawn around it with
//! [`Progress::suspend`]).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::time::Duration;

/// A progress bar, or nothing.
#[derive(Debug)]
pub(crate) struct Progress(Option<ProgressBar>);

/// Whether to show a bar: standard error is a terminal, and the run checks a list (`--input`)
/// or several domains.
pub(crate) fn wanted(stderr_is_terminal: bool, input: bool, domains: usize) -> bool {
    stderr_is_terminal && (input || domains > 1)
}

impl Progress {
    /// No bar.
    pub(crate) fn none() -> Self {
        Self(None)
    }

    /// A bar on standard error: done/total, rate and ETA when `total` is known, otherwise a
    /// spinner with the count and the rate (a list read from standard input).
    pub(crate) fn start(total: Option<u64>) -> Self {
        let (bar, template) = match total {
            Some(n) => (
                ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} domains, {rate}, ETA {eta}",
            ),
            None => (
                ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                "{spinner} {elapsed_precise} {human_pos} domains checked, {rate}",
            ),
        };
        // The templates are constant and valid; a bad one would only lose the styling.
        if let Ok(style) = ProgressStyle::with_template(template) {
            let rate = |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.1} domains/s", s.per_sec());
            };
            bar.set_style(style.progress_chars("=> ").with_key("rate", rate));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar))
    }

    /// Runs `f` (which writes results to standard output) with the bar cleared, then redraws it.
    pub(crate) fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// One more domain done.
    pub(crate) fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Removes the bar (before the summary is printed).
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_only_on_a_terminal_and_only_for_several_domains() {
        assert!(wanted(true, true, 0));
        assert!(wanted(true, false, 2));
        assert!(!wanted(true, false, 1), "one domain: no bar");
        assert!(!wanted(false, true, 5), "not a terminal: never");
    }
}
