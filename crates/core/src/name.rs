//! Host names and MX patterns (RFC 8461 §3.2 `mx`, §4.1 matching; DECISIONS D10, D20, D21, D28).
//!
//! An MX pattern is an RFC 5321 domain, optionally prefixed by `*.`. The wildcard stands for
//! exactly one whole left-most label: `*.example.com` matches `mx1.example.com`, never
//! `example.com` and never `a.b.example.com`. Matching is case-insensitive, on A-labels, and
//! ignores a trailing dot on the host.
//!
//! ```
//! use mtasts_core::name::MxPattern;
//! let p: MxPattern = "*.mail.example.com".parse().unwrap();
//! assert!(p.matches("MX1.mail.example.com."));
//! assert!(!p.matches("mail.example.com"));
//! assert!(!p.matches("a.b.mail.example.com"));
//! ```

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Longest domain name in presentation form, without the trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// What is wrong with a candidate MX pattern. Each maps to one policy diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternProblem {
    /// Nothing, or only dots.
    Empty,
    /// Ends with `.`; a sender strips it.
    TrailingDot,
    /// Holds non-ASCII characters (a U-label); a sender converts it to its A-label (the
    /// payload). `None` when it has no valid A-label.
    ULabel(Option<String>),
    /// An IP address or address literal; never a valid pattern for a sender.
    IpLiteral,
    /// Several names separated by commas: one `mx:` line per pattern is required.
    CommaList,
    /// Holds white space (often a trailing comment).
    Whitespace,
    /// Holds `_`, which RFC 5321 host names do not allow.
    Underscore,
    /// `*` anywhere but as the whole left-most label.
    MisplacedWildcard,
    /// A label that is empty, starts or ends with `-`, or holds a character outside
    /// letters, digits and `-` (the offending label is the payload).
    BadLabel(String),
    /// A label longer than 63 octets.
    LabelTooLong,
    /// A name longer than 253 octets.
    NameTooLong,
    /// An invisible character (zero-width space or joiner, soft hyphen, direction mark, ...):
    /// IDNA drops or maps it silently, so the pattern is not the name it looks like. A sender
    /// drops the pattern.
    Invisible(char),
    /// A character that looks like a Latin letter or digit but is another one (Cyrillic `а`,
    /// Greek `ο`, fullwidth `ｍ`, ...): `(character, what it looks like)`. A sender drops the
    /// pattern rather than match a host other than the one it appears to name.
    LookAlike(char, char),
    /// A label that starts with `xn--` but is not a valid A-label (bad Punycode, or one that
    /// decodes to something IDNA does not allow), e.g. `xn--a`.
    BadPunycode(String),
}

impl PatternProblem {
    /// The stable diagnostic id for this problem.
    pub fn id(&self) -> &'static str {
        match self {
            Self::Empty => "policy.mx.empty",
            Self::TrailingDot => "policy.mx.trailing-dot",
            Self::ULabel(_) => "policy.mx.u-label",
            Self::IpLiteral => "policy.mx.ip-literal",
            Self::CommaList => "policy.mx.comma-list",
            Self::Whitespace => "policy.mx.whitespace",
            Self::Underscore => "policy.mx.underscore",
            Self::MisplacedWildcard => "policy.mx.bad-wildcard",
            Self::BadLabel(_) => "policy.mx.bad-label",
            Self::LabelTooLong => "policy.mx.label-too-long",
            Self::NameTooLong => "policy.mx.name-too-long",
            Self::Invisible(_) => "policy.mx.invisible-character",
            Self::LookAlike(..) => "policy.mx.look-alike",
            Self::BadPunycode(_) => "policy.mx.bad-punycode",
        }
    }

    /// A one-line description of the problem.
    pub fn describe(&self) -> String {
        match self {
            Self::Empty => "is empty".into(),
            Self::TrailingDot => {
                "ends with a dot; patterns are written without the root dot".into()
            }
            Self::ULabel(_) => "holds non-ASCII characters; RFC 8461 §3.2 requires A-labels".into(),
            Self::IpLiteral => {
                "is an IP address; MTA-STS matches MX host names, never addresses".into()
            }
            Self::CommaList => {
                "is a comma-separated list; RFC 8461 §3.2 wants one `mx:` line per pattern".into()
            }
            Self::Whitespace => {
                "holds white space (a trailing comment?); comments are not allowed".into()
            }
            Self::Underscore => "holds `_`, which host names cannot contain".into(),
            Self::MisplacedWildcard => {
                "uses `*` other than as the whole left-most label (`*.example.com`)".into()
            }
            Self::BadLabel(l) if l.is_empty() => {
                "has an empty label (`..` or a leading dot)".into()
            }
            Self::BadLabel(l) => format!(
                "has the label `{l}`: labels are letters, digits and `-`, not starting or ending with `-`"
            ),
            Self::LabelTooLong => format!("has a label longer than {MAX_LABEL_LEN} characters"),
            Self::NameTooLong => format!("is longer than {MAX_NAME_LEN} characters"),
            Self::Invisible(c) => format!(
                "holds the invisible character U+{:04X}: IDNA drops it silently, so the pattern is not the name it looks like",
                u32::from(*c)
            ),
            Self::LookAlike(c, like) => format!(
                "holds `{c}` (U+{:04X}), which looks like `{like}` but is another character: the pattern names another host than it appears to",
                u32::from(*c)
            ),
            Self::BadPunycode(l) => format!(
                "has the label `{l}`, which starts with `xn--` but is not a valid A-label (Punycode)"
            ),
        }
    }
}

/// A valid MX pattern: an A-label domain in lower case, optionally with a leading wildcard label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MxPattern {
    wildcard: bool,
    /// Lower-case A-label domain after the `*.` (if any), without a trailing dot.
    domain: String,
}

impl MxPattern {
    /// True for `*.domain` patterns.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The domain part (after `*.` for wildcards), lower-case A-labels.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Does this pattern cover the MX host name `host` (RFC 8461 §4.1)?
    ///
    /// `host` is compared case-insensitively after dropping one trailing dot; U-labels are converted
    /// to A-labels first. A wildcard covers exactly one extra left-most label (D20).
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.matches_normalized(&host)
    }

    /// Like [`matches`](Self::matches) for a host already normalised with [`normalize_host`].
    pub fn matches_normalized(&self, host: &str) -> bool {
        if self.wildcard {
            match host.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest == self.domain,
                None => false,
            }
        } else {
            host == self.domain
        }
    }

    /// Validates `raw` strictly: the pattern exactly as written must be valid (upper case is
    /// accepted and folded). Use [`check_pattern`] to learn what a sender would do otherwise.
    pub fn parse_strict(raw: &str) -> Result<Self, PatternProblem> {
        let problems = check_pattern(raw);
        match problems.first() {
            Some(p) => Err(p.clone()),
            None => Ok(Self::from_checked(raw)),
        }
    }

    fn from_checked(raw: &str) -> Self {
        let lower = raw.to_ascii_lowercase();
        match lower.strip_prefix("*.") {
            Some(d) => Self {
                wildcard: true,
                domain: d.to_owned(),
            },
            None => Self {
                wildcard: false,
                domain: lower,
            },
        }
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.domain)
    }
}

impl FromStr for MxPattern {
    type Err = PatternProblem;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_strict(s)
    }
}

impl serde::Serialize for MxPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Every problem with `raw` as an MX pattern, most important first; empty when it is valid.
///
/// The order matters to [`sender_pattern`]: a trailing dot or U-label alone is repairable.
pub fn check_pattern(raw: &str) -> Vec<PatternProblem> {
    let mut out = Vec::new();
    let trimmed = raw.trim_matches('.');
    if trimmed.is_empty() {
        out.push(PatternProblem::Empty);
        return out;
    }
    // A comma in the first word is a list; white space after it is a comment or junk.
    let first_word = raw.split(char::is_whitespace).next().unwrap_or("");
    if first_word.contains(',') {
        out.push(PatternProblem::CommaList);
    } else if raw.chars().any(char::is_whitespace) {
        out.push(PatternProblem::Whitespace);
    }
    if looks_like_ip(raw) {
        out.push(PatternProblem::IpLiteral);
        return out;
    }
    if !out.is_empty() {
        return out;
    }
    if let Some(c) = raw.chars().find(|c| is_invisible(*c)) {
        out.push(PatternProblem::Invisible(c));
        return out;
    }
    // A label that reads as Latin: every character ASCII or a look-alike of an ASCII one, and
    // at least one not ASCII (`exаmple`, `аррӏе`). A label in another script (`почта`) is not.
    for label in raw.split('.') {
        let reads_latin = label
            .chars()
            .all(|c| c.is_ascii() || look_alike(c).is_some());
        let first = label.chars().find_map(|c| look_alike(c).map(|l| (c, l)));
        if let (true, Some((c, like))) = (reads_latin, first) {
            out.push(PatternProblem::LookAlike(c, like));
            return out;
        }
    }
    let mut body = raw;
    if let Some(stripped) = body.strip_suffix('.') {
        out.push(PatternProblem::TrailingDot);
        body = stripped;
    }
    if !body.is_ascii() {
        let ascii = idna::domain_to_ascii_strict(body.trim_start_matches("*.")).ok();
        let ascii = ascii.map(|a| {
            if body.starts_with("*.") {
                format!("*.{a}")
            } else {
                a
            }
        });
        out.push(PatternProblem::ULabel(ascii));
        return out;
    }
    let domain = match body.strip_prefix("*.") {
        Some(rest) => rest,
        None => body,
    };
    if domain.contains('*') {
        out.push(PatternProblem::MisplacedWildcard);
        return out;
    }
    if domain.contains('_') {
        out.push(PatternProblem::Underscore);
        return out;
    }
    if domain.len() > MAX_NAME_LEN {
        out.push(PatternProblem::NameTooLong);
        return out;
    }
    for label in domain.split('.') {
        if label.len() > MAX_LABEL_LEN {
            out.push(PatternProblem::LabelTooLong);
            return out;
        }
        if !is_ldh_label(label) {
            out.push(PatternProblem::BadLabel(label.to_owned()));
            return out;
        }
        if label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("xn--"))
            && idna::domain_to_unicode(label).1.is_err()
        {
            out.push(PatternProblem::BadPunycode(label.to_owned()));
            return out;
        }
    }
    out
}

/// Characters that show as nothing (or almost nothing) and that IDNA drops or maps silently.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// The ASCII letter or digit `c` is easily taken for, when it is not one: fullwidth forms
/// (which IDNA maps to ASCII silently) and the Cyrillic and Greek letters that look Latin.
fn look_alike(c: char) -> Option<char> {
    if ('\u{FF10}'..='\u{FF5A}').contains(&c) {
        return char::from_u32(u32::from(c) - 0xFEE0).filter(char::is_ascii_alphanumeric);
    }
    let like = match c {
        'а' | 'α' => 'a',
        'ь' => 'b',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' | 'ı' => 'i',
        'ј' | 'ϳ' => 'j',
        'κ' => 'k',
        'ӏ' => 'l',
        'ո' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        _ => return None,
    };
    Some(like)
}

/// What a sender makes of a pattern (D10): the usable pattern, or `None` when it must be dropped.
///
/// A trailing dot is stripped and a U-label converted to its A-label; every other problem drops
/// the pattern. An IP-looking pattern is never returned.
pub fn sender_pattern(raw: &str) -> Option<MxPattern> {
    let problems = check_pattern(raw);
    match problems.as_slice() {
        [] => Some(MxPattern::from_checked(raw)),
        [PatternProblem::TrailingDot] => MxPattern::parse_strict(&raw[..raw.len() - 1]).ok(),
        [PatternProblem::TrailingDot, PatternProblem::ULabel(Some(a))]
        | [PatternProblem::ULabel(Some(a))] => MxPattern::parse_strict(a).ok(),
        _ => None,
    }
}

/// Normalises a host name for matching: the [`Domain`](crate::domain::Domain) rules (lower
/// case, one trailing dot removed, U-labels converted to A-labels, D28). A name that is not a
/// valid domain (a single label, bad characters) is only lower-cased without its trailing dot:
/// it can equal no valid pattern but itself.
pub fn normalize_host(host: &str) -> String {
    match crate::domain::Domain::parse(host) {
        Ok(d) => d.into_string(),
        Err(_) => host.strip_suffix('.').unwrap_or(host).to_lowercase(),
    }
}

/// Letters, digits and hyphens, starting and ending with a letter or digit (RFC 5321 sub-domain).
fn is_ldh_label(label: &str) -> bool {
    let b = label.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// True for `192.0.2.1`, `[192.0.2.1]`, `2001:db8::1`, `[IPv6:2001:db8::1]` and names whose last
/// label is all digits (no top-level domain is numeric, so such a name can only be an address).
fn looks_like_ip(raw: &str) -> bool {
    let s = raw.trim_end_matches('.');
    if s.starts_with('[') || s.contains(':') || s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let last = s.rsplit('.').next().unwrap_or("");
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> MxPattern {
        s.parse().unwrap()
    }

    #[test]
    fn exact_pattern_matches_only_itself() {
        assert!(p("mx.example.com").matches("mx.example.com"));
        assert!(p("mx.example.com").matches("MX.Example.COM."));
        assert!(!p("mx.example.com").matches("a.mx.example.com"));
        assert!(!p("mx.example.com").matches("example.com"));
    }

    #[test]
    fn wildcard_covers_exactly_one_label() {
        let w = p("*.mx.microsoft");
        assert!(w.matches("contoso.mx.microsoft"));
        assert!(!w.matches("mx.microsoft"), "never the bare domain");
        // The PS.MTA-STS#33 case: two labels under the wildcard.
        assert!(!w.matches("icewolf-li.h-v1.mx.microsoft"));
        assert!(!w.matches(".mx.microsoft"), "empty first label");
        assert!(!w.matches("xmx.microsoft"));
    }

    #[test]
    fn wildcard_star_dot_google_does_not_cover_aspmx() {
        assert!(!p("*.google.com").matches("aspmx.l.google.com"));
        assert!(p("*.l.google.com").matches("aspmx.l.google.com"));
    }

    #[test]
    fn u_label_host_matches_a_label_pattern() {
        let a = p("mx.xn--bcher-kva.example");
        assert!(a.matches("mx.bücher.example"));
    }

    #[test]
    fn problems_are_classified() {
        use PatternProblem as P;
        assert_eq!(check_pattern("mx.example.com."), vec![P::TrailingDot]);
        assert_eq!(check_pattern("192.0.2.1"), vec![P::IpLiteral]);
        assert_eq!(check_pattern("[192.0.2.1]"), vec![P::IpLiteral]);
        assert_eq!(check_pattern("2001:db8::25"), vec![P::IpLiteral]);
        assert_eq!(
            check_pattern("a.example.com,b.example.com"),
            vec![P::CommaList]
        );
        assert_eq!(check_pattern("mx1.your_domain.tld"), vec![P::Underscore]);
        assert_eq!(check_pattern("alt*.google.com"), vec![P::MisplacedWildcard]);
        assert_eq!(check_pattern("*.*.example.com"), vec![P::MisplacedWildcard]);
        assert_eq!(check_pattern("*"), vec![P::MisplacedWildcard]);
        assert_eq!(check_pattern("."), vec![P::Empty]);
        assert_eq!(check_pattern("a..b"), vec![P::BadLabel(String::new())]);
        assert_eq!(check_pattern("-a.example"), vec![P::BadLabel("-a".into())]);
        assert_eq!(
            check_pattern("mx.example.com # primary"),
            vec![P::Whitespace]
        );
        assert_eq!(
            check_pattern(&format!("{}.com", "a".repeat(64))),
            vec![P::LabelTooLong]
        );
        assert_eq!(
            check_pattern("mx.bücher.example"),
            vec![P::ULabel(Some("mx.xn--bcher-kva.example".into()))]
        );
        assert!(check_pattern("329706630.pamx1.hotmail.com").is_empty());
        assert!(check_pattern("localhost").is_empty());
        assert!(check_pattern("MX1.EXAMPLE.COM").is_empty());
    }

    #[test]
    fn sender_repairs_dot_and_u_label_and_drops_the_rest() {
        assert_eq!(
            sender_pattern("mta-gw.infomaniak.ch.").unwrap().to_string(),
            "mta-gw.infomaniak.ch"
        );
        assert_eq!(
            sender_pattern("*.bücher.example.").unwrap().to_string(),
            "*.xn--bcher-kva.example"
        );
        assert_eq!(
            sender_pattern("MX.Example.com").unwrap().to_string(),
            "mx.example.com"
        );
        for bad in [
            "192.0.2.1",
            "a,b",
            "x_y.example",
            "alt*.google.com",
            ".",
            "",
            "a b",
        ] {
            assert!(sender_pattern(bad).is_none(), "{bad}");
        }
    }
}
