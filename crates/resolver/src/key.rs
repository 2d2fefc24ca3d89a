//! From a Postfix lookup key to the policy domain (RFC 8461 §3.4 for smart hosts).
//!
//! Postfix asks `smtp_tls_policy_maps` with the next-hop destination: a domain (`example.com`),
//! a domain with a port (`example.com:25`), a host in brackets (`[mail.example.com]:587`, no MX
//! lookup: RFC 8461 §3.4 makes the smart host's domain the policy domain), or an IP literal. After
//! a `NOTFOUND` it probes the parent domains `.example.com`, `.com`: those can never carry an
//! MTA-STS policy of their own, so they are answered at once without a lookup.

use mtasts_core::domain::{Domain, DomainError};

/// Longest domain name (RFC 1035 §2.3.4), in presentation form without the trailing dot.
pub const MAX_NAME_LEN: usize = mtasts_core::name::MAX_NAME_LEN;

/// Why a key gets `NOTFOUND` without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A Postfix parent-domain probe (`.example.com`).
    ParentProbe,
    /// An IP address, bracketed or not: no MTA-STS for IP literals.
    IpLiteral,
    /// Not a usable domain name (empty, bad characters, labels too long, bad IDN).
    BadName,
}

impl Skip {
    /// A short word for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParentProbe => "parent-probe",
            Self::IpLiteral => "ip-literal",
            Self::BadName => "bad-name",
        }
    }
}

/// The policy domain a key asks about, in lower-case A-labels without a trailing dot, or why it
/// has none.
///
/// ```
/// use mtasts_resolver::key::{policy_domain, Skip};
/// assert_eq!(policy_domain("Example.COM."), Ok("example.com".to_owned()));
/// assert_eq!(policy_domain("[smtp.example.net]:587"), Ok("smtp.example.net".to_owned()));
/// assert_eq!(policy_domain("bücher.example"), Ok("xn--bcher-kva.example".to_owned()));
/// assert_eq!(policy_domain(".example.com"), Err(Skip::ParentProbe));
/// assert_eq!(policy_domain("[192.0.2.1]"), Err(Skip::IpLiteral));
/// ```
pub fn policy_domain(key: &str) -> Result<String, Skip> {
    let key = key.trim();
    if key.starts_with('.') {
        return Err(Skip::ParentProbe);
    }
    let host = if let Some(rest) = key.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(Skip::BadName)?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return Err(Skip::BadName);
        }
        if inside.len() >= 5 && inside[..5].eq_ignore_ascii_case("ipv6:") {
            return Err(Skip::IpLiteral);
        }
        inside
    } else {
        match key.rsplit_once(':') {
            // `host:port`; more than one colon is an IPv6 address.
            Some((host, port)) if is_port(port) && !host.contains(':') => host,
            _ => key,
        }
    };
    // One rule set for every domain name (`mtasts_core::domain`).
    match Domain::parse(host) {
        Ok(d) => Ok(d.into_string()),
        Err(DomainError::IpAddress) => Err(Skip::IpLiteral),
        Err(_) => Err(Skip::BadName),
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_hop_forms() {
        let ok = |k: &str, d: &str| assert_eq!(policy_domain(k), Ok(d.to_owned()), "{k}");
        ok("example.com", "example.com");
        ok("  EXAMPLE.com  ", "example.com");
        ok("example.com:25", "example.com");
        ok("[mx.example.com]", "mx.example.com");
        ok("[mx.example.com]:587", "mx.example.com");
        ok("xn--bcher-kva.example", "xn--bcher-kva.example");
        ok("BÜCHER.example", "xn--bcher-kva.example");
        ok("_dmarc.example.com", "_dmarc.example.com");
    }

    #[test]
    fn skipped_keys() {
        let skip = |k: &str, s: Skip| assert_eq!(policy_domain(k), Err(s), "{k}");
        skip(".example.com", Skip::ParentProbe);
        skip(".com", Skip::ParentProbe);
        skip("192.0.2.1", Skip::IpLiteral);
        skip("[192.0.2.1]", Skip::IpLiteral);
        skip("[192.0.2.1]:25", Skip::IpLiteral);
        skip("[ipv6:2001:db8::1]", Skip::IpLiteral);
        skip("2001:db8::1", Skip::IpLiteral);
        skip("", Skip::BadName);
        skip("com", Skip::BadName);
        skip("exa mple.com", Skip::BadName);
        skip("example..com", Skip::BadName);
        skip("-a.example.com", Skip::BadName);
        skip("[mx.example.com", Skip::BadName);
        skip("[mx.example.com]x", Skip::BadName);
        skip("[mx.example.com]:99999999", Skip::BadName);
        skip(&format!("{}.com", "a".repeat(64)), Skip::BadName);
        skip(&format!("{}com", "a.".repeat(130)), Skip::BadName);
        skip("ex\u{0}ample.com", Skip::BadName);
        // The shared `Domain` rules: an address with a root dot is still an address, and an
        // `xn--` label must be punycode.
        skip("192.0.2.1.", Skip::IpLiteral);
        skip("xn--a.example.com", Skip::BadName);
    }
}
