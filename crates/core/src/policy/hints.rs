//! Findings that explain a problem the way a person would: what the line looks like it was
//! meant to be, and the exact fix.

use super::{KNOWN_KEYS, Mode, MxLine};
use crate::diag::{Diagnostic, Severity};
use crate::name::PatternProblem;

/// A line without `:`, with a hint for the shapes seen in the wild.
pub(super) fn syntax_error(no: usize, text: &str) -> Diagnostic {
    let t = text.trim();
    let (message, fix) = if t == "---" {
        (
            "`---` looks like YAML/Jekyll front matter".to_owned(),
            "make sure your site generator strips front matter from the served file, or remove it"
                .to_owned(),
        )
    } else if t.starts_with('#') {
        (
            "comment lines are not allowed in a policy".to_owned(),
            "remove the comment".to_owned(),
        )
    } else {
        let shown: String = t.chars().take(60).collect();
        (
            format!("`{shown}` is not a `key: value` field"),
            "remove the line".to_owned(),
        )
    };
    Diagnostic::new("policy.syntax", Severity::Error, message, fix)
        .at_line(no)
        .at_column(1)
}

pub(super) fn bad_mode(value: &str) -> Diagnostic {
    let lower = value.to_ascii_lowercase();
    let fix = if let Some(m) = Mode::from_keyword(&lower) {
        format!("write `mode: {m}` in lower case; keywords are case-sensitive")
    } else if lower == "report" {
        "`report` is a draft-era mode; write `mode: testing`".to_owned()
    } else if lower.starts_with("enforc")
        || ["on", "live", "true", "strict", "yes"].contains(&lower.as_str())
    {
        "write `mode: enforce`".to_owned()
    } else if lower.starts_with("test") {
        "write `mode: testing`".to_owned()
    } else if lower.contains('|') || lower.starts_with('[') || lower.starts_with('<') {
        "this is a template placeholder: pick one of `enforce`, `testing` or `none`".to_owned()
    } else {
        "write `mode: testing`, `mode: enforce` or `mode: none`".to_owned()
    };
    Diagnostic::new(
        "policy.mode.invalid",
        Severity::Error,
        format!(
            "mode `{value}` is not `enforce`, `testing` or `none`; senders treat the whole policy as invalid"
        ),
        fix,
    )
}

pub(super) fn pattern_diagnostic(mx: &MxLine, problem: &PatternProblem) -> Diagnostic {
    let v = &mx.value;
    let fix = match problem {
        PatternProblem::TrailingDot => format!("write `mx: {}` (senders strip the dot, but the RFC grammar does not allow it)", v.trim_end_matches('.')),
        PatternProblem::ULabel(Some(a)) => format!("write `mx: {a}`"),
        PatternProblem::CommaList => {
            let lines: Vec<String> = v.split(',').map(|p| format!("mx: {}", p.trim())).collect();
            format!("write one line per pattern: {}", lines.join(" / "))
        }
        PatternProblem::Whitespace => match v.split_whitespace().next() {
            Some(first) => format!("write `mx: {first}`"),
            None => "remove the line".to_owned(),
        },
        PatternProblem::IpLiteral => "list the MX host name (as in your MX record), not its address; senders drop this pattern".to_owned(),
        PatternProblem::MisplacedWildcard => "use `*.` only as the whole first label (`*.example.com`), or list each host".to_owned(),
        _ => "write the MX host name as it appears in your MX record; senders drop this pattern".to_owned(),
    };
    let shown = if v.is_empty() {
        "`mx:` with no value".to_owned()
    } else {
        format!("`{v}`")
    };
    Diagnostic::new(
        problem.id(),
        Severity::Error,
        format!("mx pattern {shown} {}", problem.describe()),
        fix,
    )
    .at_line(mx.line)
    .at_column(mx.column)
}

/// The known key that `key` most likely meant: same letters with separators changed, or one
/// edit (insert, delete, substitute, swap) away.
pub(super) fn near_miss(key: &str) -> Option<&'static str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['-', '_', '.'], "");
    KNOWN_KEYS
        .iter()
        .find(|k| {
            squash(k) == squash(key)
                || (key.len() > 1 && edit_distance_le1(&key.to_ascii_lowercase(), k))
        })
        .copied()
}

fn edit_distance_le1(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a == b {
        return true;
    }
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[pre..], &b[pre..]);
    match ra.len() as isize - rb.len() as isize {
        0 => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        1 => ra[1..] == *rb,
        -1 => *ra == rb[1..],
        _ => false,
    }
}

/// Host names from documentation and templates that are never a real MX.
pub(super) fn is_placeholder(domain: &str) -> bool {
    let tld = domain.rsplit('.').next().unwrap_or("");
    ["example", "invalid", "test", "localhost", "tld"].contains(&tld)
        || [
            "example.com",
            "example.net",
            "example.org",
            "domain.com",
            "yourdomain.com",
        ]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
        || domain.contains("your-domain")
        || domain.contains("yourdomain")
}
