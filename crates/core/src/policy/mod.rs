//! The MTA-STS policy file (RFC 8461 §3.2), read by two roles at once.
//!
//! [`parse_policy`] returns what an RFC-conformant **sender** applies ([`ParsedPolicy::policy`],
//! following DECISIONS D1–D10) and every deviation a **checker** reports
//! ([`ParsedPolicy::diagnostics`]); [`ParsedPolicy::is_valid`] is the RFC verdict (no
//! error-severity finding). The two differ on purpose: a sender strips a trailing dot from an `mx`
//! pattern, the checker still calls it an error.
//!
//! ```
//! use mtasts_core::policy::{parse_policy, Mode};
//! let parsed = parse_policy(b"version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 604800\n");
//! assert!(parsed.is_valid());
//! let policy = parsed.policy.unwrap();
//! assert_eq!(policy.mode, Mode::Enforce);
//! assert!(policy.matching_pattern("mail.example.com").is_some());
//! ```

use crate::diag::{Diagnostic, Severity, Sink};
use crate::name::{MxPattern, check_pattern, normalize_host, sender_pattern};
use hints::{bad_mode, is_placeholder, near_miss, pattern_diagnostic, syntax_error};
use lines::split_lines;

mod hints;
mod lines;
mod lint;
pub use lint::MxCoverage;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// Largest policy body read, in bytes: RFC 8461 §3.3 suggests senders cap the fetch at 64 KB,
/// so nothing larger can ever be applied.
pub const MAX_POLICY_SIZE: usize = 64 * 1024;

/// Largest `max_age` the RFC allows (RFC 8461 §3.2: about one year).
pub const MAX_AGE_LIMIT: u32 = 31_557_600;

/// One day, in seconds: below this a `max_age` draws a warning.
const DAY: u32 = 86_400;
/// One week, in seconds: an `enforce` policy below this draws advice.
const WEEK: u32 = 7 * DAY;

/// The policy mode (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse delivery to MX hosts that fail validation.
    Enforce,
    /// Deliver anyway; report failures through TLS-RPT.
    Testing,
    /// No active policy (used to withdraw MTA-STS safely).
    None,
}

impl Mode {
    /// The keyword as written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Testing => "testing",
            Self::None => "none",
        }
    }

    /// Parses the exact, case-sensitive keyword.
    pub fn from_keyword(s: &str) -> Option<Self> {
        match s {
            "enforce" => Some(Self::Enforce),
            "testing" => Some(Self::Testing),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy as a sender applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The mode.
    pub mode: Mode,
    /// Seconds the policy may be cached, at most [`MAX_AGE_LIMIT`].
    pub max_age: u32,
    /// The usable MX patterns, first occurrence order, without duplicates.
    pub mx: Vec<MxPattern>,
}

impl Policy {
    /// The first pattern covering the MX host name `host`, if any (RFC 8461 §4.1).
    pub fn matching_pattern(&self, host: &str) -> Option<&MxPattern> {
        let host = normalize_host(host);
        self.mx.iter().find(|p| p.matches_normalized(&host))
    }
}

/// The result of reading a policy file: the sender's view and the checker's findings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPolicy {
    /// What an RFC-conformant sender applies, or `None` when it treats the policy as invalid
    /// (and reports `sts-policy-invalid`).
    pub policy: Option<Policy>,
    /// Every finding, in input order, then whole-file findings.
    pub diagnostics: Vec<Diagnostic>,
}

impl ParsedPolicy {
    /// The RFC verdict: no error-severity finding.
    pub fn is_valid(&self) -> bool {
        crate::diag::no_errors(&self.diagnostics)
    }
}

/// Reads a policy body. Never fails: every problem is a [`Diagnostic`].
///
/// Bodies over [`MAX_POLICY_SIZE`] are rejected whole (`policy.too-large`) without being read.
pub fn parse_policy(input: &[u8]) -> ParsedPolicy {
    Parser::default().run(input)
}

#[derive(Debug, Clone)]
struct MxLine {
    line: usize,
    column: usize,
    value: String,
}

#[derive(Default)]
struct Parser {
    sink: Sink,
    /// Set by any problem the RFC grammar does not let a sender overlook (D3, D5–D8).
    sender_invalid: bool,
    /// Line of the first field of the file, to check that `version` comes first.
    first_field_line: Option<usize>,
    version: Option<(usize, bool)>,
    mode: Option<(usize, Option<Mode>)>,
    max_age: Option<(usize, Option<u64>)>,
    mx: Vec<MxLine>,
}

const KNOWN_KEYS: [&str; 4] = ["version", "mode", "max_age", "mx"];

impl Parser {
    fn run(mut self, input: &[u8]) -> ParsedPolicy {
        if input.len() > MAX_POLICY_SIZE {
            return self.abort(Diagnostic::new(
                "policy.too-large",
                Severity::Error,
                format!(
                    "the policy is larger than {MAX_POLICY_SIZE} bytes, where senders stop \
                     reading (RFC 8461 §3.3)"
                ),
                "serve only the policy: a few lines of `key: value`, well under 4 KiB",
            ));
        }
        let mut body = input;
        if let Some(rest) = body.strip_prefix(b"\xEF\xBB\xBF") {
            self.error(
                Diagnostic::new(
                    "policy.bom",
                    Severity::Error,
                    "the file starts with a UTF-8 byte order mark, which the policy grammar does not allow",
                    "save the file as UTF-8 without BOM (or plain ASCII)",
                )
                .at_line(1)
                .at_column(1),
            );
            body = rest;
        }
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return self.abort(Diagnostic::new(
                "policy.empty",
                Severity::Error,
                "the policy file is empty",
                "publish `version: STSv1`, `mode`, `mx` and `max_age` lines",
            ));
        }
        // The body is not all white space here, so `start` is in bounds.
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        if body.get(start) == Some(&b'<') {
            return self.abort(
                Diagnostic::new(
                    "policy.html",
                    Severity::Error,
                    "the body is HTML, not a policy (an error page, a login wall or a bot challenge?)",
                    "serve the policy as plain text at /.well-known/mta-sts.txt, reachable without \
                     redirects, cookies or JavaScript",
                )
                .at_line(1),
            );
        }

        let lines = split_lines(body);
        if let Some((line, count)) = lines.bare_cr {
            self.error(
                Diagnostic::new(
                    "policy.bare-cr",
                    Severity::Error,
                    format!(
                        "{count} line(s) end in a bare CR; only LF or CRLF end a line (RFC 8461 §3.2)"
                    ),
                    "save the file with LF or CRLF line endings",
                )
                .at_line(line),
            );
        }
        for (no, text) in lines.lines {
            self.line(no, text, lines.count);
        }
        self.finish()
    }

    fn abort(mut self, d: Diagnostic) -> ParsedPolicy {
        self.sink.push(d);
        ParsedPolicy {
            policy: None,
            diagnostics: self.sink.finish(),
        }
    }

    /// Records an error that a sender cannot overlook.
    fn error(&mut self, d: Diagnostic) {
        self.sender_invalid = true;
        self.sink.push(d);
    }

    fn line(&mut self, no: usize, raw: &[u8], total: usize) {
        if raw.iter().all(|b| *b == b' ' || *b == b'\t') {
            self.sink.push(
                Diagnostic::new(
                    "policy.blank-line",
                    // D5b: the checker calls it invalid (the grammar has none, and senders such
                    // as postfix-tlspol and Mimecast reject the whole policy); the sender view
                    // (`sender_invalid` untouched) skips it, as most senders do.
                    Severity::Error,
                    if no == total {
                        "blank line at the end of the file: the grammar has none, and some senders (postfix-tlspol, Mimecast) reject the whole policy"
                    } else {
                        "blank line: the grammar has none, and some senders (postfix-tlspol, Mimecast) reject the whole policy"
                    },
                    "remove it (one line end after the last field is fine)",
                )
                .at_line(no),
            );
            return;
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            let col = std::str::from_utf8(raw).map_or_else(|e| e.valid_up_to(), |_| 0) + 1;
            self.error(
                Diagnostic::new(
                    "policy.encoding",
                    Severity::Error,
                    "the line is not valid UTF-8",
                    "save the file as ASCII (or UTF-8)",
                )
                .at_line(no)
                .at_column(col),
            );
            return;
        };
        if let Some(col) = text
            .bytes()
            .position(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            self.error(
                Diagnostic::new(
                    "policy.control-char",
                    Severity::Error,
                    format!(
                        "the line holds the control character 0x{:02x}",
                        text.as_bytes()[col]
                    ),
                    "remove control characters; a policy is printable text",
                )
                .at_line(no)
                .at_column(col + 1),
            );
            return;
        }
        let indent = text.len() - text.trim_start_matches([' ', '\t']).len();
        let text = &text[indent..];
        let Some(colon) = text.find(':') else {
            self.error(syntax_error(no, text));
            return;
        };
        if indent > 0 {
            self.error(
                Diagnostic::new(
                    "policy.leading-whitespace",
                    Severity::Error,
                    "the line starts with white space, which the grammar does not allow",
                    format!("remove the indentation: `{}`", text.trim_end()),
                )
                .at_line(no)
                .at_column(1),
            );
        }
        let raw_key = &text[..colon];
        let key = raw_key.trim_end_matches([' ', '\t']);
        if key.len() != raw_key.len() {
            self.error(
                Diagnostic::new(
                    "policy.space-before-colon",
                    Severity::Error,
                    format!("white space between `{key}` and `:`"),
                    format!("write `{key}:` with no space before the colon"),
                )
                .at_line(no)
                .at_column(indent + key.len() + 1),
            );
        }
        let value = text[colon + 1..].trim_matches([' ', '\t']);
        let value_col = indent
            + colon
            + 1
            + (text[colon + 1..].len() - text[colon + 1..].trim_start_matches([' ', '\t']).len())
            + 1;
        if !is_ext_name(key) {
            self.error(
                Diagnostic::new(
                    "policy.key.invalid",
                    Severity::Error,
                    format!("`{key}` is not a valid field name (letters, digits, `_`, `-`, `.`; at most 32)"),
                    "remove the line, or fix the field name",
                )
                .at_line(no)
                .at_column(indent + 1),
            );
            return;
        }
        self.first_field_line.get_or_insert(no);
        match key {
            "version" | "mode" | "max_age" => self.single_field(no, key, value, value_col),
            "mx" => self.mx.push(MxLine {
                line: no,
                column: value_col,
                value: value.to_owned(),
            }),
            _ => self.extension(no, indent, key, value),
        }
    }

    /// `version`, `mode` and `max_age`: the first occurrence counts (D1).
    fn single_field(&mut self, no: usize, key: &str, value: &str, col: usize) {
        let first = match key {
            "version" => self.version.map(|v| v.0),
            "mode" => self.mode.map(|v| v.0),
            _ => self.max_age.map(|v| v.0),
        };
        if let Some(first) = first {
            self.sink.push(
                Diagnostic::new(
                    "policy.key.duplicate",
                    Severity::Warning,
                    format!("`{key}` appears again; only the first one (line {first}) counts"),
                    format!("remove this `{key}` line"),
                )
                .at_line(no),
            );
            return;
        }
        match key {
            "version" => {
                let ok = value == "STSv1";
                if !ok {
                    self.error(
                        Diagnostic::new(
                            "policy.version.invalid",
                            Severity::Error,
                            format!("version `{value}` is not `STSv1` (case-sensitive)"),
                            "write `version: STSv1`",
                        )
                        .at_line(no)
                        .at_column(col),
                    );
                }
                self.version = Some((no, ok));
            }
            "mode" => {
                let mode = Mode::from_keyword(value);
                if mode.is_none() {
                    let d = bad_mode(value).at_line(no).at_column(col);
                    self.error(d);
                }
                self.mode = Some((no, mode));
            }
            _ => {
                let age = self.max_age_value(no, value, col);
                self.max_age = Some((no, age));
            }
        }
    }

    fn max_age_value(&mut self, no: usize, value: &str, col: usize) -> Option<u64> {
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        if !digits || value.len() > 10 {
            let why = if value.is_empty() {
                "is empty".to_owned()
            } else if value.contains([' ', '\t']) {
                format!("`{value}` has text after the number (a comment?)")
            } else if value.starts_with(['+', '-']) {
                format!("`{value}` has a sign")
            } else if value.len() > 10 && digits {
                format!("`{value}` has more than 10 digits")
            } else if value.contains(['_', ',', '.', '\'']) {
                format!("`{value}` has separators or a fraction")
            } else if value.bytes().any(|b| b.is_ascii_alphabetic()) {
                format!("`{value}` has letters (a unit or an exponent?)")
            } else {
                format!("`{value}` is not a plain number")
            };
            self.error(
                Diagnostic::new(
                    "policy.max-age.invalid",
                    Severity::Error,
                    format!("max_age {why}; it must be whole seconds, digits only"),
                    "write e.g. `max_age: 604800` (one week) or `max_age: 1209600` (two weeks)",
                )
                .at_line(no)
                .at_column(col),
            );
            return None;
        }
        let n: u64 = value.parse().ok()?;
        if n > u64::from(MAX_AGE_LIMIT) {
            // D2: the checker says error; the sender clamps, so this does not invalidate the
            // sender's view.
            self.sink.push(
                Diagnostic::new(
                    "policy.max-age.too-large",
                    Severity::Error,
                    format!("max_age {n} exceeds the RFC 8461 maximum of {MAX_AGE_LIMIT} seconds"),
                    format!("write `max_age: {MAX_AGE_LIMIT}` or less"),
                )
                .at_line(no)
                .at_column(col),
            );
        }
        Some(n)
    }

    fn extension(&mut self, no: usize, indent: usize, key: &str, value: &str) {
        if value.is_empty() || value.contains('\t') {
            self.error(
                Diagnostic::new(
                    "policy.value.invalid",
                    Severity::Error,
                    format!("`{key}:` has an empty value or a tab inside it, which the grammar does not allow"),
                    format!("remove the `{key}` line"),
                )
                .at_line(no),
            );
            return;
        }
        let (id, message, fix) = if let Some(known) =
            KNOWN_KEYS.iter().find(|k| k.eq_ignore_ascii_case(key))
        {
            (
                "policy.key.case",
                format!(
                    "`{key}` is not `{known}`: field names are case-sensitive, so senders ignore this line"
                ),
                format!("write `{known}: {value}`"),
            )
        } else if let Some(known) = near_miss(key) {
            (
                "policy.key.misspelled",
                format!("unknown field `{key}`; did you mean `{known}`? Senders ignore this line"),
                format!("write `{known}: {value}`"),
            )
        } else if key == "id" {
            (
                "policy.key.unknown",
                "the `id` belongs in the `_mta-sts` TXT record, not in the policy; senders ignore it here".to_owned(),
                "remove the `id` line from the policy".to_owned(),
            )
        } else {
            (
                "policy.key.unknown",
                format!("unknown field `{key}`; senders ignore it"),
                format!("remove the `{key}` line unless you rely on an extension"),
            )
        };
        let d = Diagnostic::new(id, Severity::Warning, message, fix)
            .at_line(no)
            .at_column(indent + 1);
        if id == "policy.key.case" {
            // D7: a known key in another case makes the policy invalid for senders too.
            self.error(Diagnostic {
                severity: Severity::Error,
                ..d
            });
        } else {
            self.sink.push(d);
        }
    }

    fn finish(mut self) -> ParsedPolicy {
        let version_line = match self.version {
            None => {
                self.error(Diagnostic::new(
                    "policy.version.missing",
                    Severity::Error,
                    "no `version` field",
                    "add the line `version: STSv1`",
                ));
                None
            }
            Some((line, ok)) => {
                self.sender_invalid |= !ok;
                Some(line)
            }
        };
        if let (Some(v), Some(first)) = (version_line, self.first_field_line)
            && v != first
        {
            self.sink.push(
                Diagnostic::new(
                    "policy.version.not-first",
                    Severity::Info,
                    "`version` is not the first line; the RFC allows any order, but some hosting guides and tools expect it first",
                    "move `version: STSv1` to the top",
                )
                .at_line(v),
            );
        }
        let mode = match self.mode {
            None => {
                self.error(Diagnostic::new(
                    "policy.mode.missing",
                    Severity::Error,
                    "no `mode` field; a policy without a valid mode is invalid, never `none` (D8)",
                    "add `mode: testing` (to start) or `mode: enforce`",
                ));
                None
            }
            Some((_, m)) => m,
        };
        let max_age = match self.max_age {
            None => {
                self.error(Diagnostic::new(
                    "policy.max-age.missing",
                    Severity::Error,
                    "no `max_age` field",
                    "add e.g. `max_age: 604800` (one week)",
                ));
                None
            }
            Some((_, a)) => a,
        };
        let mx_lines = self.mx.len();
        let mx = self.patterns();
        if let Some(m) = mode {
            self.mode_findings(m, max_age, mx_lines, mx.len());
        }
        let policy = match (self.sender_invalid, mode, max_age) {
            (false, Some(mode), Some(age)) if mode == Mode::None || !mx.is_empty() => {
                Some(Policy {
                    mode,
                    max_age: age.min(u64::from(MAX_AGE_LIMIT)) as u32,
                    mx,
                })
            }
            _ => None,
        };
        let mut diagnostics = self.sink.finish();
        diagnostics.sort_by_key(|d| d.line.unwrap_or(usize::MAX));
        ParsedPolicy {
            policy,
            diagnostics,
        }
    }

    /// Checks every `mx` line, and returns the patterns a sender uses (D10).
    fn patterns(&mut self) -> Vec<MxPattern> {
        let mut usable: Vec<MxPattern> = Vec::new();
        // Pattern -> line of its first occurrence; a map keeps hostile inputs linear.
        let mut first_line: HashMap<MxPattern, usize> = HashMap::new();
        for mx in std::mem::take(&mut self.mx) {
            if let Some(problem) = check_pattern(&mx.value).into_iter().next() {
                self.sink.push(pattern_diagnostic(&mx, &problem));
            } else {
                self.pattern_advice(&mx);
            }
            let Some(p) = sender_pattern(&mx.value) else {
                continue;
            };
            if let Some(first) = first_line.get(&p) {
                self.sink.push(
                    Diagnostic::new(
                        "policy.mx.duplicate",
                        Severity::Warning,
                        format!("`{p}` is already listed on line {first}"),
                        "remove the repeated `mx` line",
                    )
                    .at_line(mx.line),
                );
            } else {
                first_line.insert(p.clone(), mx.line);
                usable.push(p);
            }
        }
        usable
    }

    fn pattern_advice(&mut self, mx: &MxLine) {
        let value = mx.value.to_ascii_lowercase();
        let domain = value.strip_prefix("*.").unwrap_or(&value);
        let labels = domain.split('.').count();
        let advice = if value.starts_with("*.") && labels == 1 {
            Some((
                "policy.mx.wildcard-too-broad",
                format!("`{value}` covers every host one level under a top-level domain"),
                "list your MX hosts, or a wildcard under your provider's domain".to_owned(),
            ))
        } else if labels == 1 {
            Some((
                "policy.mx.single-label",
                format!("`{value}` is a single label, not a public MX host name"),
                "write the fully qualified MX host name".to_owned(),
            ))
        } else if is_placeholder(domain) {
            Some((
                "policy.mx.placeholder",
                format!("`{value}` looks like a template placeholder, not your MX host"),
                "replace it with the host names your MX records point to".to_owned(),
            ))
        } else {
            None
        };
        if let Some((id, msg, fix)) = advice {
            self.sink.push(
                Diagnostic::new(id, Severity::Warning, msg, fix)
                    .at_line(mx.line)
                    .at_column(mx.column),
            );
        }
    }

    fn mode_findings(
        &mut self,
        mode: Mode,
        max_age: Option<u64>,
        mx_lines: usize,
        usable_mx: usize,
    ) {
        match mode {
            Mode::Testing => self.sink.push(Diagnostic::new(
                "policy.mode.testing",
                Severity::Warning,
                "mode is `testing`: senders report failures but still deliver without TLS, so mail is not protected yet",
                "watch TLS-RPT reports for a few weeks, then switch to `mode: enforce` (and change the TXT id)",
            )),
            Mode::None => self.sink.push(Diagnostic::new(
                "policy.mode.none",
                Severity::Info,
                "mode is `none`: senders treat the domain as having no active policy",
                "keep it published for one max_age before removing MTA-STS, or switch to `testing`/`enforce`",
            )),
            Mode::Enforce => {}
        }
        if mode != Mode::None {
            if mx_lines == 0 {
                self.error(Diagnostic::new(
                    "policy.mx.missing",
                    Severity::Error,
                    format!("mode `{mode}` needs at least one `mx` line"),
                    "add one `mx: <host>` line per MX host (or `mx: *.<provider domain>`)",
                ));
            } else if usable_mx == 0 {
                self.error(Diagnostic::new(
                    "policy.mx.none-usable",
                    Severity::Error,
                    format!("mode `{mode}` but no `mx` pattern is usable, so senders treat the policy as invalid"),
                    "fix the `mx` lines above",
                ));
            }
            match max_age {
                Some(a) if a < u64::from(DAY) => self.sink.push(Diagnostic::new(
                    "policy.max-age.short",
                    Severity::Warning,
                    format!("max_age {a} is under one day: senders refetch often and an attacker only needs to block one fetch"),
                    "use at least `max_age: 604800` (one week); RFC 8461 §10.2 prefers weeks",
                )),
                Some(a) if mode == Mode::Enforce && a < u64::from(WEEK) => {
                    self.sink.push(Diagnostic::new(
                        "policy.max-age.below-week",
                        Severity::Info,
                        format!("max_age {a} is under one week for an enforced policy"),
                        "consider `max_age: 1209600` (two weeks) or more once the policy is stable",
                    ))
                }
                _ => {}
            }
        }
    }
}

/// EXTNAME: a letter or digit, then up to 31 letters, digits, `_`, `-` or `.`.
pub(crate) fn is_ext_name(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}
