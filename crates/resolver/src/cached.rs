//! A policy as the cache keeps it: one heap allocation per domain.
//!
//! A resolver may hold 100,000 policies or more, so a cached policy is kept small: the domain,
//! the TXT id and the MX patterns (lower-case A-labels, `*.` form, in the policy's order) share
//! one string; mode, `max_age` and expiry sit beside it. The body as fetched is needed only for
//! the TLSRPT `policy_string` attributes and for persistence, and most published bodies are
//! exactly what their fields print as (the usual key order, one line-end style): those are
//! rebuilt when needed, byte for byte, instead of being kept. Any other body is kept verbatim.
//! The choice is checked when the policy is cached, so [`CachedPolicy::body`] always gives the
//! exact bytes that were fetched.

use mtasts_core::policy::{Mode, parse_policy};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Separates the MX patterns in the shared string (never part of a pattern).
const SEP: char = ' ';

/// How the body is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// After the patterns, as fetched.
    Verbatim,
    /// Rebuilt from the fields: `version: STSv1`, `mode`, then the `mx` lines and `max_age`
    /// (or `max_age` first), each ending in CRLF or LF, the last one too or not.
    Rebuilt(Layout),
}

/// The [`Body::Rebuilt`] layout, as bits (one byte keeps [`CachedPolicy`] at 32 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout(u8);

impl Layout {
    const CRLF: u8 = 1;
    const MAX_AGE_FIRST: u8 = 2;
    const FINAL_EOL: u8 = 4;

    fn new(crlf: bool, max_age_first: bool, final_eol: bool) -> Self {
        let bit = |on: bool, bit: u8| if on { bit } else { 0 };
        Self(
            bit(crlf, Self::CRLF)
                | bit(max_age_first, Self::MAX_AGE_FIRST)
                | bit(final_eol, Self::FINAL_EOL),
        )
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// A cached MTA-STS policy (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPolicy {
    /// Domain, id, patterns separated by [`SEP`], then the body when it is kept verbatim.
    text: Box<str>,
    domain_len: u8,
    id_len: u8,
    /// The patterns are part of the body, which is at most 64 KiB (`FetchSettings`).
    patterns_len: u16,
    max_age: u32,
    /// Expiry, in whole seconds on the engine's clock (see `slots::Clock`), rounded down (a
    /// policy may expire up to a second early, never late).
    expires_s: u32,
    mode: Mode,
    body: Body,
    /// What DANE asked of the answer at the last check (D22).
    pub(crate) dane: crate::engine::Dane,
}

/// Why a body cannot be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unusable {
    /// It is not a policy a sender applies.
    Invalid,
    /// The domain is longer than a DNS name can be, the id than RFC 8461 allows, or the
    /// patterns than a 64 KiB body can hold.
    TooLong,
}

impl CachedPolicy {
    /// Reads `body` as a sender does and packs it with `domain` and `id`.
    pub(crate) fn new(
        domain: &str,
        id: &str,
        body: &str,
        expires_ms: u64,
        dane: crate::engine::Dane,
    ) -> Result<Self, Unusable> {
        let policy = parse_policy(body.as_bytes())
            .policy
            .ok_or(Unusable::Invalid)?;
        let domain_len = u8::try_from(domain.len()).map_err(|_| Unusable::TooLong)?;
        let id_len = u8::try_from(id.len()).map_err(|_| Unusable::TooLong)?;
        let mut text = String::with_capacity(domain.len() + id.len() + 32 * policy.mx.len());
        text.push_str(domain);
        text.push_str(id);
        for (i, p) in policy.mx.iter().enumerate() {
            if i > 0 {
                text.push(SEP);
            }
            let _ = write!(text, "{p}");
        }
        let patterns = &text[domain.len() + id.len()..];
        let patterns_len = u16::try_from(patterns.len()).map_err(|_| Unusable::TooLong)?;
        let layout = Body::Rebuilt(Layout::new(
            body.contains("\r\n"),
            max_age_first(body),
            body.ends_with('\n'),
        ));
        let layout = if rebuild(layout, policy.mode, policy.max_age, patterns) == body {
            layout
        } else {
            text.push_str(body);
            Body::Verbatim
        };
        let mut me = Self {
            // One exact allocation: the scratch string's spare capacity is not kept.
            text: Box::from(text.as_str()),
            domain_len,
            id_len,
            patterns_len,
            max_age: policy.max_age,
            expires_s: 0,
            mode: policy.mode,
            body: layout,
            dane,
        };
        me.set_expires_ms(expires_ms);
        Ok(me)
    }

    /// When the policy expires, in milliseconds on the engine's clock.
    pub(crate) fn expires_ms(&self) -> u64 {
        u64::from(self.expires_s) * 1000
    }

    /// Sets the expiry (rounded down to a whole second).
    pub(crate) fn set_expires_ms(&mut self, ms: u64) {
        self.expires_s = u32::try_from(ms / 1000).unwrap_or(u32::MAX);
    }

    /// The policy domain (A-labels).
    pub fn domain(&self) -> &str {
        &self.text[..usize::from(self.domain_len)]
    }

    /// The TXT id the policy was fetched under.
    pub fn id(&self) -> &str {
        let start = usize::from(self.domain_len);
        &self.text[start..start + usize::from(self.id_len)]
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `max_age`, in seconds.
    pub fn max_age(&self) -> u32 {
        self.max_age
    }

    /// Whether the policy names at least one MX pattern.
    pub fn has_patterns(&self) -> bool {
        self.patterns_len > 0
    }

    /// The MX patterns as a sender applies them (lower-case A-labels, `*.` for wildcards), in
    /// the policy's order.
    pub fn patterns(&self) -> impl Iterator<Item = &str> + Clone {
        self.patterns_str().split(SEP).filter(|p| !p.is_empty())
    }

    fn patterns_str(&self) -> &str {
        let start = usize::from(self.domain_len) + usize::from(self.id_len);
        &self.text[start..start + usize::from(self.patterns_len)]
    }

    /// The body exactly as fetched.
    pub fn body(&self) -> Cow<'_, str> {
        match self.body {
            Body::Verbatim => {
                let start = usize::from(self.domain_len)
                    + usize::from(self.id_len)
                    + usize::from(self.patterns_len);
                Cow::Borrowed(&self.text[start..])
            }
            layout @ Body::Rebuilt(_) => Cow::Owned(rebuild(
                layout,
                self.mode,
                self.max_age,
                self.patterns_str(),
            )),
        }
    }

    /// Hands `f` the lines of the body as `policy_string` carries them
    /// ([`crate::reply::policy_lines`]), in order, until `f` returns false. A rebuilt body is
    /// not rebuilt for this: its lines come from the fields, so a reply allocates nothing for
    /// them.
    pub fn each_line(&self, mut f: impl FnMut(PolicyLine<'_>) -> bool) {
        let Body::Rebuilt(layout) = self.body else {
            let start = usize::from(self.domain_len)
                + usize::from(self.id_len)
                + usize::from(self.patterns_len);
            for line in crate::reply::policy_lines(&self.text[start..]) {
                if !f(PolicyLine::Verbatim(line)) {
                    return;
                }
            }
            return;
        };
        let max_age_first = layout.has(Layout::MAX_AGE_FIRST);
        let max_age = PolicyLine::MaxAge(self.max_age);
        let lines = [PolicyLine::Version, PolicyLine::Mode(self.mode)]
            .into_iter()
            .chain(max_age_first.then_some(max_age))
            .chain(self.patterns().map(PolicyLine::Mx))
            .chain((!max_age_first).then_some(max_age));
        for line in lines {
            if !f(line) {
                return;
            }
        }
    }

    /// Whether the body is rebuilt rather than kept.
    #[cfg(test)]
    fn body_is_rebuilt(&self) -> bool {
        matches!(self.body, Body::Rebuilt(_))
    }

    /// Heap bytes this policy holds (its one allocation).
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.text.len()
    }
}

/// One line of a cached policy's body ([`CachedPolicy::each_line`]); `Display` writes it as it
/// stands in the body, without its line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyLine<'a> {
    /// A line of a body kept verbatim, trimmed.
    Verbatim(&'a str),
    /// `version: STSv1`.
    Version,
    /// `mode: ...`.
    Mode(Mode),
    /// `mx: ...`.
    Mx(&'a str),
    /// `max_age: ...`.
    MaxAge(u32),
}

impl std::fmt::Display for PolicyLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Verbatim(line) => f.write_str(line),
            Self::Version => f.write_str("version: STSv1"),
            Self::Mode(mode) => write!(f, "mode: {mode}"),
            Self::Mx(pattern) => write!(f, "mx: {pattern}"),
            Self::MaxAge(max_age) => write!(f, "max_age: {max_age}"),
        }
    }
}

/// The body `layout` describes (empty for [`Body::Verbatim`]).
fn rebuild(layout: Body, mode: Mode, max_age: u32, patterns: &str) -> String {
    let Body::Rebuilt(layout) = layout else {
        return String::new();
    };
    let max_age_first = layout.has(Layout::MAX_AGE_FIRST);
    let eol = if layout.has(Layout::CRLF) {
        "\r\n"
    } else {
        "\n"
    };
    let mut out = String::with_capacity(48 + patterns.len() * 2);
    let _ = write!(out, "version: STSv1{eol}mode: {mode}{eol}");
    if max_age_first {
        let _ = write!(out, "max_age: {max_age}{eol}");
    }
    for p in patterns.split(SEP).filter(|p| !p.is_empty()) {
        let _ = write!(out, "mx: {p}{eol}");
    }
    if !max_age_first {
        let _ = write!(out, "max_age: {max_age}{eol}");
    }
    if !layout.has(Layout::FINAL_EOL) {
        out.truncate(out.len() - eol.len());
    }
    out
}

/// Whether a `max_age` line comes before the first `mx` line.
fn max_age_first(body: &str) -> bool {
    match (body.find("\nmax_age:"), body.find("\nmx:")) {
        (Some(a), Some(m)) => a < m,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(body: &str) -> CachedPolicy {
        CachedPolicy::new("example.com", "20260101", body, 0, crate::engine::Dane::No).unwrap()
    }

    #[test]
    fn usual_bodies_are_rebuilt_byte_for_byte() {
        for body in [
            "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n",
            "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 604800\n",
            "version: STSv1\nmode: enforce\nmax_age: 604800\nmx: a.example.com\nmx: b.example.com",
            "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n",
        ] {
            let p = cached(body);
            assert!(p.body_is_rebuilt(), "{body:?}");
            assert_eq!(p.body(), body);
            assert_eq!(
                p.heap_bytes(),
                "example.com20260101".len() + p.patterns_len as usize
            );
        }
    }

    #[test]
    fn other_bodies_are_kept_verbatim() {
        for body in [
            "version: STSv1\nmode: enforce\nmx: MX.example.com\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com.\nmax_age: 86400\n",
            "mode: enforce\nversion: STSv1\nmx: mx.example.com\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmx: mx.example.com\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\r\nmx: mx.example.com\nmax_age: 86400\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 086400\n",
            "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\nfoo: bar\n",
            "version:STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n",
        ] {
            let p = cached(body);
            assert!(!p.body_is_rebuilt(), "{body:?}");
            assert_eq!(p.body(), body);
        }
    }

    #[test]
    fn fields_and_patterns() {
        let p = cached(
            "version: STSv1\nmode: enforce\nmx: MX1.Example.com.\nmx: *.example.net\nmax_age: 86400\n",
        );
        assert_eq!(p.domain(), "example.com");
        assert_eq!(p.id(), "20260101");
        assert_eq!(p.mode(), Mode::Enforce);
        assert_eq!(p.max_age(), 86400);
        assert_eq!(
            p.patterns().collect::<Vec<_>>(),
            ["mx1.example.com", "*.example.net"]
        );
        let none = cached("version: STSv1\nmode: none\nmax_age: 86400\n");
        assert!(!none.has_patterns());
        assert_eq!(none.patterns().count(), 0);
    }

    #[test]
    fn invalid_and_oversized_inputs_are_refused() {
        assert_eq!(
            CachedPolicy::new(
                "example.com",
                "1",
                "not a policy",
                0,
                crate::engine::Dane::No
            ),
            Err(Unusable::Invalid)
        );
        let long = "a".repeat(300);
        let body = "version: STSv1\nmode: none\nmax_age: 86400\n";
        assert_eq!(
            CachedPolicy::new(&long, "1", body, 0, crate::engine::Dane::No),
            Err(Unusable::TooLong)
        );
        assert_eq!(
            CachedPolicy::new("example.com", &long, body, 0, crate::engine::Dane::No),
            Err(Unusable::TooLong)
        );
    }

    /// Every real policy in tests/data comes back byte for byte, rebuilt or not.
    #[test]
    fn real_policies_round_trip() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/policies");
        let (mut seen, mut rebuilt) = (0, 0);
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let Ok(body) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            let Ok(p) = CachedPolicy::new("example.com", "1", &body, 0, crate::engine::Dane::No)
            else {
                continue;
            };
            assert_eq!(p.body(), body, "{}", e.path().display());
            let mut lines = Vec::new();
            p.each_line(|l| {
                lines.push(l.to_string());
                true
            });
            let expected: Vec<&str> = crate::reply::policy_lines(&body).collect();
            assert_eq!(lines, expected, "{}", e.path().display());
            seen += 1;
            rebuilt += usize::from(p.body_is_rebuilt());
        }
        assert!(seen >= 25, "only {seen} real policies parsed");
        assert!(rebuilt * 4 >= seen * 3, "only {rebuilt} of {seen} rebuilt");
    }
}
