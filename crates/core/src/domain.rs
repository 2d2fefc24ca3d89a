//! A domain name as every part of mtasts takes it: validated and normalised once.
//!
//! [`Domain`] holds lower-case A-labels without the trailing root dot (D28). It is what `check`
//! audits, what the resolver looks up for a Postfix next-hop, and what host names are folded to
//! before MX patterns are matched ([`crate::name::normalize_host`]). One rule set:
//!
//! - white space around the name and one trailing dot are dropped;
//! - a name with non-ASCII characters (U-labels) is converted to A-labels by IDNA (UTS #46 with
//!   STD3 rules, [`idna::domain_to_ascii_strict`]); ASCII is lower-cased;
//! - every label is 1 to 63 letters, digits, `-` and `_` (seen in real next-hops such as
//!   `_dmarc.example.com`), not starting or ending with `-`; an `xn--` label must be valid
//!   punycode;
//! - at most 253 characters, at least two labels, and not an IP address.
//!
//! ```
//! use mtasts_core::domain::Domain;
//! let d: Domain = " Bücher.Example. ".parse().unwrap();
//! assert_eq!(d.as_str(), "xn--bcher-kva.example");
//! assert!("localhost".parse::<Domain>().is_err());
//! assert!("192.0.2.1".parse::<Domain>().is_err());
//! assert!("xn--a.com".parse::<Domain>().is_err());
//! ```

use crate::name::{MAX_LABEL_LEN, MAX_NAME_LEN};
use std::fmt;
use std::str::FromStr;

/// A valid domain name: lower-case A-labels, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

/// Why a string is not a [`Domain`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DomainError {
    /// Nothing but white space and dots.
    Empty,
    /// An IP address: MTA-STS is published by domains.
    IpAddress,
    /// One label only (`localhost`, `com`).
    SingleLabel,
    /// Longer than 253 characters.
    TooLong,
    /// A label that is empty, too long, holds other characters or has a `-` at either end.
    BadLabel(String),
    /// An `xn--` label that is not valid punycode, or U-labels IDNA cannot convert.
    Idna,
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::IpAddress => f.write_str("is an IP address; MTA-STS is published by domains"),
            Self::SingleLabel => f.write_str("is not a fully qualified domain name"),
            Self::TooLong => write!(f, "is longer than {MAX_NAME_LEN} characters"),
            Self::BadLabel(l) if l.is_empty() => {
                f.write_str("is not a valid domain name (an empty label)")
            }
            Self::BadLabel(l) => write!(
                f,
                "is not a valid domain name (the label {l:?}: labels are 1 to {MAX_LABEL_LEN} letters, digits, `-` and `_`, not starting or ending with `-`)"
            ),
            Self::Idna => f.write_str("is not a valid internationalised domain name"),
        }
    }
}

impl std::error::Error for DomainError {}

impl Domain {
    /// Validates and normalises `input` (the rules in the [module docs](self)).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let trimmed = input.trim();
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if name.trim_matches('.').is_empty() {
            return Err(DomainError::Empty);
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return Err(DomainError::IpAddress);
        }
        let ascii = if name.is_ascii() {
            name.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(name).map_err(|_| DomainError::Idna)?
        };
        if ascii.len() > MAX_NAME_LEN {
            return Err(DomainError::TooLong);
        }
        for label in ascii.split('.') {
            let b = label.as_bytes();
            let ok = !b.is_empty()
                && b.len() <= MAX_LABEL_LEN
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
            if !ok {
                return Err(DomainError::BadLabel(label.to_owned()));
            }
            if label.starts_with("xn--") && idna::domain_to_ascii(label).is_err() {
                return Err(DomainError::Idna);
            }
        }
        if !ascii.contains('.') {
            return Err(DomainError::SingleLabel);
        }
        Ok(Self(ascii))
    }

    /// The name: lower-case A-labels, no trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl FromStr for Domain {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::parse(s)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> Self {
        d.0
    }
}

impl serde::Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Reads and validates a name with [`Domain::parse`].
impl<'de> serde::Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("{s:?} {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        Domain::parse(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"))
            .into_string()
    }

    #[test]
    fn one_rule_set_for_typed_names_next_hops_and_hosts() {
        assert_eq!(ok("Example.COM."), "example.com");
        assert_eq!(ok("  example.com  "), "example.com");
        assert_eq!(ok("bücher.example."), "xn--bcher-kva.example");
        assert_eq!(ok("BÜCHER.example"), "xn--bcher-kva.example");
        assert_eq!(ok("XN--BCHER-KVA.example"), "xn--bcher-kva.example");
        assert_eq!(ok("_dmarc.example.com"), "_dmarc.example.com");
        assert_eq!(
            ok("329706630.pamx1.hotmail.com"),
            "329706630.pamx1.hotmail.com"
        );
        let err = |input: &str| Domain::parse(input).unwrap_err();
        assert_eq!(err(""), DomainError::Empty);
        assert_eq!(err(" . "), DomainError::Empty);
        assert_eq!(err("localhost"), DomainError::SingleLabel);
        assert_eq!(err("192.0.2.1"), DomainError::IpAddress);
        assert_eq!(err("2001:db8::1"), DomainError::IpAddress);
        assert_eq!(
            err("exa mple.com"),
            DomainError::BadLabel("exa mple".into())
        );
        assert_eq!(err("a..b"), DomainError::BadLabel(String::new()));
        assert_eq!(err("example.com.."), DomainError::BadLabel(String::new()));
        assert_eq!(err("-a.example"), DomainError::BadLabel("-a".into()));
        assert_eq!(err("xn--a.com"), DomainError::Idna, "invalid punycode");
        assert_eq!(
            err(&format!("{}.com", "a".repeat(64))),
            DomainError::BadLabel("a".repeat(64))
        );
        assert_eq!(
            err(&format!("{}com", "a.".repeat(127))),
            DomainError::TooLong
        );
    }

    #[test]
    fn serde_reads_only_valid_names() {
        let d: Domain = serde_json::from_str("\"Example.com.\"").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"example.com\"");
        assert!(serde_json::from_str::<Domain>("\"localhost\"").is_err());
    }
}
