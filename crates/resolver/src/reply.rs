//! What Postfix is told, rendered for the Postfix version it runs (docs/requirements.md §4.3–4.4).
//!
//! A [`Decision`] says what applies to a domain, independent of any Postfix; [`render`] turns it
//! into the socketmap answer a given Postfix accepts:
//!
//! | decision | Postfix < 3.4 | 3.4 – 3.9 | 3.10 and later (TLSRPT attributes on) |
//! |---|---|---|---|
//! | enforce | `secure match=…` | `+ servername=hostname` | `+ policy_type=sts policy_domain=… mx_host_pattern=… { policy_string = … }` |
//! | testing (D24) | `NOTFOUND` | `NOTFOUND` | `<base level> policy_type=sts …` (never blocks delivery) |
//! | fetch failure, nothing cached | `NOTFOUND` | `NOTFOUND` | `<base level> policy_type=sts policy_domain=… policy_failure=…` |
//! | no policy | `NOTFOUND` | `NOTFOUND` | `NOTFOUND`, or `<no_policy_level> policy_type=no-policy-found` when configured |
//! | DANE applies to some MX host (D22) | `dane-only` | `dane-only` | `dane-only` |
//! | MX RRset bogus or indeterminate (DANE on) | `TEMP` | `TEMP` | `TEMP` |
//! | DNS failure, nothing cached (D16) | `NOTFOUND`, or `TEMP` with `on_dns_error = defer` | same | same |
//!
//! `mx_host_pattern` keeps the `*.` form (Postfix 3.10.5 and later match it as RFC 8461 does: one
//! label); `match=` uses Postfix's `.domain` form, which Postfix < 3.10.5 applies to any depth.

use crate::Reply;
use crate::cached::{CachedPolicy, PolicyLine};
use std::fmt::Write as _;
use std::str::FromStr;

/// Largest socketmap reply Postfix reads by default (`socketmap_max_reply_size`), in bytes.
pub const SOCKETMAP_MAX_REPLY: usize = 100_000;

/// A Postfix version, `X.Y` or `X.Y.Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PostfixVersion {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
    /// Patch level (0 when not given).
    pub patch: u16,
}

impl PostfixVersion {
    /// A version from its parts.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// `servername=` is understood (Postfix 3.4; older versions reject the whole policy).
    pub fn has_servername(self) -> bool {
        self >= Self::new(3, 4, 0)
    }

    /// The TLSRPT attributes are understood (Postfix 3.10; older versions reject the policy).
    pub fn has_tlsrpt_attributes(self) -> bool {
        self >= Self::new(3, 10, 0)
    }
}

impl Default for PostfixVersion {
    /// 3.7, the version of Debian 12's package: no TLSRPT attributes.
    fn default() -> Self {
        Self::new(3, 7, 0)
    }
}

impl FromStr for PostfixVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a Postfix version (expected X.Y or X.Y.Z, e.g. 3.10.5)");
        let parts: Vec<&str> = s.trim().split('.').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        let mut n = [0u16; 3];
        for (slot, part) in n.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            *slot = part.parse().map_err(|_| bad())?;
        }
        Ok(Self::new(n[0], n[1], n[2]))
    }
}

impl std::fmt::Display for PostfixVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What to answer when DNS fails for a domain with nothing cached (D16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDnsError {
    /// Deliver without MTA-STS (`NOTFOUND`): the RFC's behaviour for "no policy known".
    #[default]
    Deliver,
    /// Answer `TEMP`: Postfix defers the mail and asks again later.
    Defer,
}

/// How replies are rendered for one socketmap name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySettings {
    /// The Postfix version that asks.
    pub postfix: PostfixVersion,
    /// Send the TLSRPT attributes (needs Postfix 3.10; ignored below).
    pub tlsrpt: bool,
    /// The TLS level of non-blocking answers (testing mode, fetch failures): the level main.cf
    /// uses (`smtp_tls_security_level`), usually `may`.
    pub base_level: String,
    /// When set (Postfix 3.10+ with `tlsrpt`), domains without a policy get
    /// `<level> policy_type=no-policy-found` instead of `NOTFOUND`. Off by default, because the
    /// answer's level replaces main.cf's for those domains.
    pub no_policy_level: Option<String>,
    /// D16.
    pub on_dns_error: OnDnsError,
    /// Longest reply; `policy_string` attributes are dropped first when a reply would be longer.
    pub max_reply: usize,
    /// Measure replies as tcp_table sends them (`%XX` for spaces and other escaped bytes, see
    /// [`crate::proto::tcp_table::encoded_len`]) when checking `max_reply`.
    pub escaped: bool,
}

impl Default for ReplySettings {
    fn default() -> Self {
        Self {
            postfix: PostfixVersion::default(),
            tlsrpt: true,
            base_level: "may".to_owned(),
            no_policy_level: None,
            on_dns_error: OnDnsError::Deliver,
            max_reply: SOCKETMAP_MAX_REPLY - 64,
            escaped: false,
        }
    }
}

impl ReplySettings {
    fn tlsrpt_on(&self) -> bool {
        self.tlsrpt && self.postfix.has_tlsrpt_attributes()
    }
}

/// A TLS-RPT policy failure a sender reports when it has no usable policy (RFC 8460 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyFailure {
    /// The policy could not be fetched (HTTP status, timeout, no connection).
    FetchError,
    /// The policy host's certificate is not valid.
    WebPkiInvalid,
    /// The fetched policy is not a valid policy.
    Invalid,
}

impl PolicyFailure {
    /// The TLS-RPT result type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FetchError => "sts-policy-fetch-error",
            Self::WebPkiInvalid => "sts-webpki-invalid",
            Self::Invalid => "sts-policy-invalid",
        }
    }
}

/// What applies to a domain.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    /// No MTA-STS policy (no record, `mode: none`, or an override).
    NoPolicy,
    /// An `enforce` policy.
    Enforce(&'a CachedPolicy),
    /// A `testing` policy (D24).
    Testing(&'a CachedPolicy),
    /// A TXT record names a policy that could not be had, and nothing is cached.
    Failure(PolicyFailure),
    /// DNS failed and nothing is cached (D16); the text says what failed.
    DnsError(&'a str),
    /// DANE applies to some MX host (D22): Postfix enforces it per host.
    DaneOnly,
    /// The MX RRset could not be DNSSEC-validated: whether DANE applies cannot be known.
    DaneUndecided,
}

/// The reply for `domain` (an A-label domain) under `decision`.
///
/// `Enforce` and `Testing` carry the cached policy: its patterns, and its body as published (whose
/// lines become `policy_string` attributes, see [`policy_lines`]).
pub fn render(domain: &str, decision: Decision<'_>, s: &ReplySettings) -> Reply {
    let tlsrpt = s.tlsrpt_on();
    match decision {
        Decision::NoPolicy => match (&s.no_policy_level, tlsrpt) {
            (Some(level), true) => Reply::Ok(format!(
                "{level} policy_type=no-policy-found policy_domain={domain}"
            )),
            _ => Reply::NotFound,
        },
        Decision::DaneOnly => Reply::Ok("dane-only".to_owned()),
        Decision::DaneUndecided => Reply::Temp(format!(
            "the MX records of {domain} could not be DNSSEC-validated: DANE cannot be ruled out"
        )),
        Decision::DnsError(why) => match s.on_dns_error {
            OnDnsError::Deliver => Reply::NotFound,
            OnDnsError::Defer => Reply::Temp(format!("MTA-STS lookup for {domain} failed: {why}")),
        },
        Decision::Failure(_) if !tlsrpt => Reply::NotFound,
        Decision::Failure(f) => Reply::Ok(format!(
            "{} policy_type=sts policy_domain={domain} policy_failure={}",
            s.base_level,
            f.as_str()
        )),
        Decision::Testing(..) if !tlsrpt => Reply::NotFound,
        Decision::Testing(policy) => {
            let head = s.base_level.clone();
            Reply::Ok(with_attributes(head, domain, policy, s).0)
        }
        Decision::Enforce(policy) if !policy.has_patterns() => Reply::NotFound,
        Decision::Enforce(policy) => {
            let head = enforce_head(policy, s);
            let size = measure(&head, s);
            if size > s.max_reply {
                return Reply::Temp(format!(
                    "the MTA-STS policy of {domain} names {} MX patterns: its shortest answer \
                     is {size} bytes, more than this table's replies may carry ({} bytes)",
                    policy.patterns().count(),
                    s.max_reply
                ));
            }
            if tlsrpt {
                Reply::Ok(with_attributes(head, domain, policy, s).0)
            } else {
                Reply::Ok(head)
            }
        }
    }
}

/// `secure match=... [servername=hostname]`: the part of an enforce answer that cannot be left
/// out.
fn enforce_head(policy: &CachedPolicy, s: &ReplySettings) -> String {
    let mut head = String::with_capacity(64 + policy.patterns().map(str::len).sum::<usize>());
    head.push_str("secure match=");
    for (i, p) in policy.patterns().enumerate() {
        if i > 0 {
            head.push(':');
        }
        // Postfix's `.domain` form for `*.domain`.
        head.push_str(p.strip_prefix('*').unwrap_or(p));
    }
    if s.postfix.has_servername() {
        head.push_str(" servername=hostname");
    }
    head
}

/// Which optional attributes [`render`] left out so the reply fits `max_reply`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// The `mx_host_pattern` attributes (Postfix 3.10.5+ then checks MX names against
    /// `match=` alone, which is broader for `*.` patterns).
    pub mx_host_patterns: bool,
    /// The `policy_string` attributes (TLS-RPT reports then carry no policy text).
    pub policy_strings: bool,
}

impl Trimmed {
    /// Whether anything was left out.
    pub fn any(self) -> bool {
        self.mx_host_patterns || self.policy_strings
    }
}

/// What [`render`] leaves out of the answer for `decision` to fit (for the log line written when
/// a policy is fetched); `None` when nothing is left out. An answer that cannot fit at all is a
/// `TEMP` whose text says so.
pub fn trimmed(domain: &str, decision: Decision<'_>, s: &ReplySettings) -> Option<Trimmed> {
    let (head, policy) = match decision {
        Decision::Testing(p) => (s.base_level.clone(), p),
        Decision::Enforce(p) => (enforce_head(p, s), p),
        _ => return None,
    };
    if !s.tlsrpt_on() || !policy.has_patterns() || measure(&head, s) > s.max_reply {
        return None;
    }
    Some(with_attributes(head, domain, policy, s).1).filter(|t| t.any())
}

fn measure(t: &str, s: &ReplySettings) -> usize {
    if s.escaped {
        crate::proto::tcp_table::encoded_len(t.as_bytes())
    } else {
        t.len()
    }
}

/// `head` plus the TLSRPT attributes: `policy_type` and `policy_domain` always, then the
/// `mx_host_pattern` attributes while all of them fit, then the `policy_string` ones while all
/// of them fit; what was left out.
fn with_attributes(
    mut out: String,
    domain: &str,
    policy: &CachedPolicy,
    s: &ReplySettings,
) -> (String, Trimmed) {
    let mut trimmed = Trimmed::default();
    let _ = write!(out, " policy_type=sts policy_domain={domain}");
    let without_patterns = out.len();
    let mut size = measure(&out, s);
    for p in policy.patterns() {
        let start = out.len();
        let _ = write!(out, " mx_host_pattern={p}");
        size += measure(&out[start..], s);
    }
    if size > s.max_reply {
        out.truncate(without_patterns);
        size = measure(&out, s);
        trimmed.mx_host_patterns = true;
    }
    let without_strings = out.len();
    policy.each_line(|line| {
        // `{ name = value }` cannot carry braces; such a line (an odd extension value) is left out.
        if matches!(line, PolicyLine::Verbatim(l) if l.contains(['{', '}'])) {
            return true;
        }
        let start = out.len();
        let _ = write!(out, " {{ policy_string = {line} }}");
        size += measure(&out[start..], s);
        if size > s.max_reply {
            out.truncate(without_strings);
            trimmed.policy_strings = true;
            return false;
        }
        true
    });
    (out, trimmed)
}

/// The lines of a policy body as `policy_string` carries them: CR stripped, blank lines dropped,
/// surrounding whitespace trimmed.
pub fn policy_lines(body: &str) -> impl Iterator<Item = &str> {
    body.lines().map(str::trim).filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str =
        "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.net\nmax_age: 86400\n";

    fn cached(body: &str) -> CachedPolicy {
        CachedPolicy::new("example.com", "1", body, 0, crate::engine::Dane::No).unwrap()
    }

    fn policy() -> CachedPolicy {
        cached(BODY)
    }

    fn settings(v: &str) -> ReplySettings {
        ReplySettings {
            postfix: v.parse().unwrap(),
            ..ReplySettings::default()
        }
    }

    fn ok(r: Reply) -> String {
        match r {
            Reply::Ok(s) => s,
            other => panic!("expected OK, got {other:?}"),
        }
    }

    #[test]
    fn versions_parse() {
        assert_eq!("3.10.5".parse(), Ok(PostfixVersion::new(3, 10, 5)));
        assert_eq!("3.4".parse(), Ok(PostfixVersion::new(3, 4, 0)));
        for bad in ["", "3", "3.x", "3.4.5.6", "-3.4", "3..4", "99999.1"] {
            assert!(bad.parse::<PostfixVersion>().is_err(), "{bad}");
        }
        assert!(PostfixVersion::new(3, 10, 0) > PostfixVersion::new(3, 9, 9));
    }

    #[test]
    fn enforce_per_version() {
        let p = policy();
        let d = Decision::Enforce(&p);
        assert_eq!(
            ok(render("example.com", d, &settings("3.3"))),
            "secure match=mx1.example.com:.example.net"
        );
        assert_eq!(
            ok(render("example.com", d, &settings("3.9.1"))),
            "secure match=mx1.example.com:.example.net servername=hostname"
        );
        assert_eq!(
            ok(render("example.com", d, &settings("3.10.5"))),
            "secure match=mx1.example.com:.example.net servername=hostname policy_type=sts \
             policy_domain=example.com mx_host_pattern=mx1.example.com mx_host_pattern=*.example.net \
             { policy_string = version: STSv1 } { policy_string = mode: enforce } \
             { policy_string = mx: mx1.example.com } { policy_string = mx: *.example.net } \
             { policy_string = max_age: 86400 }"
        );
        let off = ReplySettings {
            tlsrpt: false,
            ..settings("3.10.5")
        };
        assert_eq!(
            ok(render("example.com", d, &off)),
            "secure match=mx1.example.com:.example.net servername=hostname"
        );
    }

    #[test]
    fn testing_failure_and_no_policy() {
        let p = policy();
        let new = settings("3.10.5");
        let old = settings("3.9");
        let t = Decision::Testing(&p);
        assert_eq!(render("example.com", t, &old), Reply::NotFound);
        assert!(
            ok(render("example.com", t, &new))
                .starts_with("may policy_type=sts policy_domain=example.com mx_host_pattern=")
        );
        let f = Decision::Failure(PolicyFailure::WebPkiInvalid);
        assert_eq!(render("example.com", f, &old), Reply::NotFound);
        assert_eq!(
            ok(render("example.com", f, &new)),
            "may policy_type=sts policy_domain=example.com policy_failure=sts-webpki-invalid"
        );
        assert_eq!(
            render("example.com", Decision::NoPolicy, &new),
            Reply::NotFound
        );
        let np = ReplySettings {
            no_policy_level: Some("dane".into()),
            ..new.clone()
        };
        assert_eq!(
            ok(render("example.com", Decision::NoPolicy, &np)),
            "dane policy_type=no-policy-found policy_domain=example.com"
        );
        assert_eq!(
            render("example.com", Decision::DnsError("x"), &new),
            Reply::NotFound
        );
        let defer = ReplySettings {
            on_dns_error: OnDnsError::Defer,
            ..new
        };
        assert!(
            matches!(render("example.com", Decision::DnsError("SERVFAIL"), &defer), Reply::Temp(t) if t.contains("SERVFAIL"))
        );
        assert_eq!(
            ok(render("example.com", Decision::DaneOnly, &old)),
            "dane-only"
        );
    }

    #[test]
    fn long_policies_drop_policy_strings_not_the_policy() {
        let mut body = String::from("version: STSv1\nmode: enforce\nmax_age: 86400\n");
        for i in 0..1500 {
            body.push_str(&format!("mx: mx{i}.example.com\n"));
        }
        let p = cached(&body);
        let s = settings("3.10.5");
        let r = ok(render("example.com", Decision::Enforce(&p), &s));
        assert!(r.len() <= s.max_reply, "{}", r.len());
        assert!(!r.contains("policy_string"));
        assert!(r.contains("mx_host_pattern=mx1499.example.com"));
        let t = trimmed("example.com", Decision::Enforce(&p), &s).unwrap();
        assert!(t.policy_strings && !t.mx_host_patterns);
    }

    fn many_mx(n: usize, suffix: &str) -> CachedPolicy {
        let mut body = String::from("version: STSv1\nmode: enforce\nmax_age: 86400\n");
        for i in 0..n {
            body.push_str(&format!("mx: mx-{i:04}.{suffix}\n"));
        }
        cached(&body)
    }

    #[test]
    fn oversized_policies_drop_mx_host_patterns_before_deferring() {
        let tcp = ReplySettings {
            max_reply: 4091,
            escaped: true,
            ..settings("3.10.5")
        };
        // 60 mx lines (2 KB): the patterns twice over do not fit a tcp_table line.
        let p = many_mx(60, "mail-cluster.example.net");
        let r = ok(render("example.com", Decision::Enforce(&p), &tcp));
        assert!(crate::proto::tcp_table::encoded_len(r.as_bytes()) <= 4091);
        assert!(
            r.starts_with("secure match=mx-0000.mail-cluster.example.net:"),
            "{r}"
        );
        assert!(r.contains("policy_type=sts policy_domain=example.com"));
        assert!(!r.contains("mx_host_pattern") && !r.contains("policy_string"));
        let t = trimmed("example.com", Decision::Enforce(&p), &tcp).unwrap();
        assert!(t.mx_host_patterns && t.policy_strings);
        // 1,900 mx lines (63 KB) fit a socketmap reply without the optional attributes.
        let big = many_mx(1900, "example.net");
        assert!(big.patterns().map(str::len).sum::<usize>() > 35_000);
        let sm = settings("3.10.5");
        let r = ok(render("example.com", Decision::Enforce(&big), &sm));
        assert!(r.len() <= sm.max_reply && r.contains("mx-1899.example.net"));
        assert!(!r.contains("mx_host_pattern"));
        // ... but not a tcp_table line: deferred, and the reason says why.
        match render("example.com", Decision::Enforce(&big), &tcp) {
            Reply::Temp(why) => assert!(why.contains("1900 MX patterns"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(trimmed("example.com", Decision::Enforce(&big), &tcp), None);
        // A testing policy never defers: its head is the base level.
        let r = ok(render("example.com", Decision::Testing(&big), &tcp));
        assert!(r.starts_with("may policy_type=sts"));
    }

    #[test]
    fn tcp_table_replies_are_measured_as_sent() {
        let tcp = ReplySettings {
            max_reply: 4091,
            escaped: true,
            ..settings("3.10.5")
        };
        let plain = ReplySettings {
            escaped: false,
            ..tcp.clone()
        };
        // Grow the policy until its reply fits unescaped but not %-encoded.
        let mut body = String::from("version: STSv1\nmode: enforce\nmax_age: 86400\n");
        for i in 0..200 {
            body.push_str(&format!("mx: mx{i}.example.com\n"));
            let p = cached(&body);
            let as_plain = ok(render("example.com", Decision::Enforce(&p), &plain));
            let as_tcp = ok(render("example.com", Decision::Enforce(&p), &tcp));
            let sent = crate::proto::tcp_table::encoded_len(as_tcp.as_bytes());
            assert!(sent <= 4091, "{i}: {sent}");
            if as_plain.contains("policy_string") && !as_tcp.contains("policy_string") {
                assert!(as_tcp.contains(&format!("mx_host_pattern=mx{i}.example.com")));
                return;
            }
        }
        panic!("no policy size where escaping changes the answer");
    }

    #[test]
    fn braces_are_never_sent_inside_a_policy_string() {
        let body = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\next: a}b\n";
        let p = cached(body);
        let r = ok(render(
            "example.com",
            Decision::Enforce(&p),
            &settings("3.10.5"),
        ));
        assert!(!r.contains("a}b"), "{r}");
        assert!(r.ends_with("{ policy_string = max_age: 86400 }"), "{r}");
    }
}
