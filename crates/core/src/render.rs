//! Canonical policy text and its content-derived id.
//!
//! The canonical form is what mtasts publishes: CRLF line ends, the keys in a fixed order
//! (`version`, `mode`, one `mx` line per pattern, `max_age`), patterns lower-case, sorted and
//! without duplicates. The id is derived from that text, so the same policy always gets the same
//! id and any change gets a new one (RFC 8461 §3.1 requires a new id for every change).
//!
//! ```
//! use mtasts_core::policy::Mode;
//! use mtasts_core::render::build_policy;
//! let (policy, _) = build_policy(Mode::Enforce, 604800, &["mx2.example.net", "mx1.example.net"]).unwrap();
//! assert_eq!(policy.render(), "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.net\r\nmx: mx2.example.net\r\nmax_age: 604800\r\n");
//! assert_eq!(policy.id().len(), 20);
//! ```

use crate::diag::{Diagnostic, Severity};
use crate::name::{PatternProblem, check_pattern, sender_pattern};
use crate::policy::{MAX_AGE_LIMIT, Mode, Policy};
use ring::digest;
use std::fmt::Write as _;

/// Length of the ids [`Policy::id`] returns: 20 hex digits, 80 bits of SHA-256.
pub const ID_LEN: usize = 20;

impl Policy {
    /// The same policy with its patterns sorted and without duplicates.
    pub fn canonical(&self) -> Self {
        let mut mx = self.mx.clone();
        mx.sort();
        mx.dedup();
        Self {
            mode: self.mode,
            max_age: self.max_age,
            mx,
        }
    }

    /// The canonical policy text (see the module docs).
    pub fn render(&self) -> String {
        let c = self.canonical();
        let mut out = String::with_capacity(64 + 32 * c.mx.len());
        out.push_str("version: STSv1\r\n");
        let _ = write!(out, "mode: {}\r\n", c.mode);
        for p in &c.mx {
            let _ = write!(out, "mx: {p}\r\n");
        }
        let _ = write!(out, "max_age: {}\r\n", c.max_age);
        out
    }

    /// The content-derived id for the `_mta-sts` TXT record: the first [`ID_LEN`] hex digits of
    /// the SHA-256 of [`render`](Self::render). Only letters and digits, as RFC 8461 §3.1 requires.
    pub fn id(&self) -> String {
        let d = digest::digest(&digest::SHA256, self.render().as_bytes());
        let mut s = String::with_capacity(ID_LEN);
        for b in &d.as_ref()[..ID_LEN / 2] {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

/// Builds a policy from its parts, strictly: the result always parses back as itself.
///
/// A trailing dot or a U-label in a pattern is repaired with a warning; every other bad pattern, a
/// `max_age` over [`MAX_AGE_LIMIT`], or `enforce`/`testing` without patterns is an error, and all
/// errors are returned together.
pub fn build_policy(
    mode: Mode,
    max_age: u64,
    patterns: &[&str],
) -> Result<(Policy, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if max_age > u64::from(MAX_AGE_LIMIT) {
        errors.push(Diagnostic::new(
            "policy.max-age.too-large",
            Severity::Error,
            format!("max_age {max_age} exceeds the RFC 8461 maximum of {MAX_AGE_LIMIT} seconds"),
            format!("use {MAX_AGE_LIMIT} or less"),
        ));
    }
    let mut mx = Vec::new();
    for raw in patterns {
        let problems = check_pattern(raw);
        match sender_pattern(raw) {
            Some(p) if problems.is_empty() => mx.push(p),
            Some(p) => {
                warnings.push(Diagnostic::new(
                    problems[0].id(),
                    Severity::Warning,
                    format!(
                        "mx pattern `{raw}` {}; written as `{p}`",
                        problems[0].describe()
                    ),
                    format!("pass `{p}`"),
                ));
                mx.push(p);
            }
            None => {
                let problem = problems.first().cloned().unwrap_or(PatternProblem::Empty);
                errors.push(Diagnostic::new(
                    problem.id(),
                    Severity::Error,
                    format!("mx pattern `{raw}` {}", problem.describe()),
                    "pass the MX host name as it appears in your MX record, or `*.<domain>`",
                ));
            }
        }
    }
    if mode != Mode::None && patterns.is_empty() {
        errors.push(Diagnostic::new(
            "policy.mx.missing",
            Severity::Error,
            format!("mode `{mode}` needs at least one mx pattern"),
            "pass --mx once per MX host",
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy = Policy {
        mode,
        max_age: max_age as u32,
        mx,
    }
    .canonical();
    Ok((policy, warnings))
}
