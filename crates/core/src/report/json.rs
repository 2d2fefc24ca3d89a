//! JSON reading into a `serde_json::Value`, bounded in memory, knowing the report's shape.
//!
//! - I-JSON (RFC 7493 §2.3), which RFC 8460 §4 requires, forbids duplicate names; serde_json
//!   silently keeps the last one. We keep the last one too (as JavaScript does) but report the
//!   path of each duplicate.
//! - Every value kept is charged an estimate of the memory it takes ([`cost`]); past
//!   [`Caps::memory`] reading stops with [`ReportError::TooLarge`], so a document of millions
//!   of tiny values cannot make the tree dozens of times larger than its text.
//! - A member the report schema does not know (it goes to an `extra` map) is kept only while it
//!   costs at most [`Caps::unknown_member`] and the report's unknown members together at most
//!   [`Caps::unknown_total`]; a larger one is read past without being kept and listed in
//!   [`Parsed::dropped`] (the parser turns that into a `report.unknown-member-dropped` repair).
//! - `policies` and `failure-details` stop at their element limits while being read, not after.
//! - The counts are read from their exact text (serde_json gives `1.0000000000000000001` as the
//!   float 1.0): [`Parsed::counts`] holds every count not written as a plain integer.
//!
//! serde_json's own recursion limit (128 levels) still applies.

use super::error::ReportError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use std::fmt;
use std::mem::size_of;

/// Estimated bytes of one value node: its slot in the parent's array or member.
pub(super) const NODE: usize = size_of::<Value>();
/// Estimated bytes of one object member besides its key text and value node: the entry's hash
/// and key, and its slot in the hash index (with its control byte and spare capacity).
pub(super) const ENTRY: usize = size_of::<u64>() + size_of::<String>() + 16;
/// How many entries of [`Parsed::dups`] and [`Parsed::dropped`] are kept (the rest counted):
/// the parser reports at most [`super::MAX_WARNINGS`] repairs anyway.
const MAX_LISTED: usize = super::MAX_WARNINGS;

/// Estimated bytes a [`Value`] takes in memory, as this module charges it.
#[cfg(test)]
fn cost(v: &Value) -> usize {
    NODE + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(cost).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| ENTRY + k.len() + cost(v)).sum(),
        _ => 0,
    }
}

/// The memory limits of one document; see the module docs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Most estimated bytes the whole tree may take.
    pub memory: usize,
    /// What [`ReportError::TooLarge`] names when `memory` is exceeded.
    pub memory_what: &'static str,
    /// Most estimated bytes one unknown member may take and still be kept.
    pub unknown_member: usize,
    /// Most estimated bytes all unknown members of the document may take together.
    pub unknown_total: usize,
    /// Most elements of `policies`.
    pub max_policies: usize,
    /// Most elements of one `failure-details`.
    pub max_failure_details: usize,
}

/// An unknown member that was read past and not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    /// JSON path of the member.
    pub path: String,
    /// Its estimated cost when it was dropped (at least the cap it went past).
    pub cost: usize,
    /// Its cap: the per-member cap, or what was left of the per-document one.
    pub cap: usize,
}

/// A count not written as a plain integer, e.g. `12.0`, `1e3`, `1.0000000000000000001`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CountText {
    /// The number as written (cut after 60 characters).
    pub text: String,
    /// Its exact value when it is a non-negative integer that fits in a `u64`.
    pub exact: Option<u64>,
}

/// A document read by [`parse`].
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The document, without the dropped members.
    pub value: Value,
    /// Paths of duplicate member names (at most [`MAX_LISTED`]).
    pub dups: Vec<String>,
    /// Duplicates beyond those listed.
    pub dups_more: usize,
    /// Unknown members not kept (at most [`MAX_LISTED`]).
    pub dropped: Vec<Dropped>,
    /// Dropped members beyond those listed.
    pub dropped_more: usize,
    /// Counts not written as plain integers, by JSON path.
    pub counts: HashMap<String, CountText>,
    /// Estimated bytes of the tree (see [`cost`]).
    pub cost: usize,
}

/// Parses a whole JSON document from `de` (a slice or a reader).
///
/// # Errors
/// [`ReportError::Json`] for malformed JSON (and for an I/O error of a reader: the caller maps
/// its own reader's errors), [`ReportError::TooLarge`] past [`Caps::memory`],
/// [`ReportError::TooManyElements`] past the element limits.
pub(crate) fn parse<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    caps: &Caps,
) -> Result<Parsed, ReportError> {
    let mut st = State {
        caps,
        used: 0,
        unknown_left: caps.unknown_total,
        member: None,
        out: Parsed {
            value: Value::Null,
            dups: Vec::new(),
            dups_more: 0,
            dropped: Vec::new(),
            dropped_more: 0,
            counts: HashMap::new(),
            cost: 0,
        },
        abort: None,
    };
    let result = Seed {
        at: Seg::Root,
        shape: Shape::Root,
        st: &mut st,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match result {
        Ok(value) => {
            st.out.value = value;
            st.out.cost = st.used;
            Ok(st.out)
        }
        Err(e) => Err(st.abort.take().unwrap_or_else(|| ReportError::json(&e))),
    }
}

/// Where a value sits in the document, built lazily into a path only when needed.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a Self, &'a str),
    Index(&'a Self, usize),
}

impl fmt::Display for Seg<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seg::Root => Ok(()),
            Seg::Key(Seg::Root, k) => f.write_str(k),
            Seg::Key(parent, k) => write!(f, "{parent}.{k}"),
            Seg::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// What the report schema (RFC 8460 §4.4) expects at a place in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The document itself: read as a report when it is an object.
    Root,
    Report,
    DateRange,
    /// `policies`.
    Policies,
    PolicyResult,
    Policy,
    Summary,
    /// `failure-details` (an array, or a single object that the parser wraps).
    Details,
    Detail,
    /// A count: read from its text.
    Count,
    /// A known leaf member (or anything inside one).
    Known,
    /// An unknown member (or anything inside one): capped.
    Unknown,
}

impl Shape {
    /// The shape of member `key` of an object of this shape.
    fn member(self, key: &str) -> Self {
        match (self, key) {
            (Self::Known, _) => Self::Known,
            (Self::Report, "date-range") => Self::DateRange,
            (Self::Report, "policies") => Self::Policies,
            (Self::Report, "organization-name" | "contact-info" | "report-id")
            | (Self::DateRange, "start-datetime" | "end-datetime")
            | (
                Self::Policy,
                "policy-type" | "policy-string" | "policy-domain" | "mx-host" | "mx-host-pattern",
            )
            | (
                Self::Detail,
                "result-type"
                | "sending-mta-ip"
                | "receiving-mx-hostname"
                | "receiving-mx-helo"
                | "receiving-ip"
                | "additional-information"
                | "additional-info-uri"
                | "failure-reason-code",
            ) => Self::Known,
            (Self::PolicyResult, "policy") => Self::Policy,
            (Self::PolicyResult, "summary") => Self::Summary,
            (Self::PolicyResult, "failure-details") => Self::Details,
            (Self::Summary, "total-successful-session-count" | "total-failure-session-count")
            | (Self::Detail, "failed-session-count") => Self::Count,
            _ => Self::Unknown,
        }
    }

    /// The shape of the elements of an array of this shape.
    fn element(self) -> Self {
        match self {
            Self::Policies => Self::PolicyResult,
            Self::Details => Self::Detail,
            Self::Unknown => Self::Unknown,
            _ => Self::Known,
        }
    }

    /// The shape an object of this shape is read as.
    fn object(self) -> Self {
        match self {
            Self::Root => Self::Report,
            Self::Details => Self::Detail,
            other => other,
        }
    }
}

/// The unknown member being read.
struct Member {
    used: usize,
    cap: usize,
}

struct State<'c> {
    caps: &'c Caps,
    /// Estimated bytes kept so far (unknown members once they are finished and kept).
    used: usize,
    /// What unknown members may still take.
    unknown_left: usize,
    member: Option<Member>,
    out: Parsed,
    /// Why reading stopped, when it was a limit (serde errors cannot carry it).
    abort: Option<ReportError>,
}

impl State<'_> {
    /// Charges `n` bytes. Inside an unknown member: false once the member is over its cap (the
    /// value is then not kept). Elsewhere: an error past the document's cap.
    fn charge<E: serde::de::Error>(&mut self, n: usize) -> Result<bool, E> {
        if let Some(m) = &mut self.member {
            m.used = m.used.saturating_add(n);
            return Ok(m.used <= m.cap);
        }
        self.used = self.used.saturating_add(n);
        if self.used > self.caps.memory {
            return Err(self.stop(ReportError::TooLarge {
                what: self.caps.memory_what,
                limit: self.caps.memory,
            }));
        }
        Ok(true)
    }

    fn keeping(&self) -> bool {
        self.member.as_ref().is_none_or(|m| m.used <= m.cap)
    }

    fn stop<E: serde::de::Error>(&mut self, e: ReportError) -> E {
        let message = e.to_string();
        self.abort = Some(e);
        E::custom(message)
    }

    /// Ends an unknown member: true when it is kept (and charged to the document).
    fn end_member<E: serde::de::Error>(&mut self, path: &dyn Fn() -> String) -> Result<bool, E> {
        let Some(m) = self.member.take() else {
            return Ok(true);
        };
        if m.used <= m.cap {
            self.unknown_left -= m.used;
            self.charge(m.used)?;
            return Ok(true);
        }
        if self.out.dropped.len() < MAX_LISTED {
            self.out.dropped.push(Dropped {
                path: path(),
                cost: m.used,
                cap: m.cap,
            });
        } else {
            self.out.dropped_more += 1;
        }
        Ok(false)
    }

    fn duplicate(&mut self, path: &dyn Fn() -> String) {
        if self.out.dups.len() < MAX_LISTED {
            self.out.dups.push(path());
        } else {
            self.out.dups_more += 1;
        }
    }
}

struct Seed<'a, 's, 'c> {
    at: Seg<'a>,
    shape: Shape,
    st: &'s mut State<'c>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl Seed<'_, '_, '_> {
    fn leaf<E: serde::de::Error>(self, v: Value, extra: usize) -> Result<Value, E> {
        if self.st.charge(NODE + extra)? {
            Ok(v)
        } else {
            Ok(Value::Null)
        }
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.leaf(Value::Bool(v), 0)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.leaf(Value::from(v), 0)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.leaf(Value::from(v), 0)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        let n = Number::from_f64(v).ok_or_else(|| E::custom("number is not finite"))?;
        self.leaf(Value::Number(n), 0)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        if self.st.charge(NODE + v.len())? {
            Ok(Value::String(v.to_owned()))
        } else {
            Ok(Value::Null)
        }
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        let n = v.len();
        self.leaf(Value::String(v), n)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null, 0)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.leaf(Value::Null, 0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.st.charge::<A::Error>(NODE)?;
        let limit = match self.shape {
            Shape::Policies => Some(self.st.caps.max_policies),
            Shape::Details => Some(self.st.caps.max_failure_details),
            _ => None,
        };
        let element = self.shape.element();
        let mut out = Vec::new();
        let mut count = 0;
        loop {
            let Some(v) = seq.next_element_seed(Seed {
                at: Seg::Index(&self.at, count),
                shape: element,
                st: &mut *self.st,
            })?
            else {
                break;
            };
            count += 1;
            if let Some(limit) = limit
                && count > limit
            {
                return Err(self.st.stop(ReportError::TooManyElements {
                    path: self.at.to_string(),
                    count,
                    limit,
                }));
            }
            if self.st.keeping() {
                out.push(v);
            }
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.st.charge::<A::Error>(NODE)?;
        let shape = self.shape.object();
        // A single failure-detail object is read as element 0, the path the parser gives it.
        let wrapped = Seg::Index(&self.at, 0);
        let at = if self.shape == Shape::Details {
            &wrapped
        } else {
            &self.at
        };
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = shape.member(&key);
            let here = Seg::Key(at, &key);
            let path = || here.to_string();
            let value = if child == Shape::Count {
                let raw: Box<RawValue> = map.next_value()?;
                count_value(self.st, raw.get(), &path)?
            } else if child == Shape::Unknown && self.st.member.is_none() {
                let cap = self.st.caps.unknown_member.min(self.st.unknown_left);
                self.st.member = Some(Member { used: 0, cap });
                let v = map.next_value_seed(Seed {
                    at: here,
                    shape: child,
                    st: &mut *self.st,
                })?;
                self.st.charge::<A::Error>(ENTRY + key.len())?;
                if !self.st.end_member::<A::Error>(&path)? {
                    continue;
                }
                v
            } else {
                map.next_value_seed(Seed {
                    at: here,
                    shape: child,
                    st: &mut *self.st,
                })?
            };
            if child != Shape::Unknown || self.st.member.is_some() {
                self.st.charge::<A::Error>(ENTRY + key.len())?;
            }
            if !self.st.keeping() {
                continue;
            }
            if out.insert(key.clone(), value).is_some() {
                self.st.duplicate(&path);
            }
        }
        Ok(Value::Object(out))
    }
}

/// Reads a count from its exact text; records it in [`Parsed::counts`] unless it is a plain
/// integer. Values that are not numbers become a value of the same JSON type for the parser's
/// error message, without their (possibly huge) contents.
fn count_value<E: serde::de::Error>(
    st: &mut State<'_>,
    raw: &str,
    path: &dyn Fn() -> String,
) -> Result<Value, E> {
    st.charge::<E>(NODE)?;
    let value = match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => {
            if let Ok(n) = raw.parse::<u64>() {
                return Ok(Value::from(n));
            }
            let exact = exact_integer(raw);
            let text: String = raw.chars().take(60).collect();
            st.charge::<E>(ENTRY + text.len() + 64)?;
            st.out.counts.insert(path(), CountText { text, exact });
            Value::from(exact.unwrap_or(0))
        }
        Some(b'"') => {
            st.charge::<E>(raw.len())?;
            Value::String(serde_json::from_str(raw).map_err(E::custom)?)
        }
        Some(b't') => Value::Bool(true),
        Some(b'f') => Value::Bool(false),
        Some(b'[') => Value::Array(Vec::new()),
        Some(b'{') => Value::Object(Map::new()),
        _ => Value::Null,
    };
    Ok(value)
}

/// The exact value of a JSON number when it is a non-negative integer that fits in a `u64`
/// (`-0`, `12.000`, `1e3`, `1500e-2`... included); `None` otherwise (`1.5`, `1.0…01`, `-1`,
/// `1e20`).
pub(crate) fn exact_integer(text: &str) -> Option<u64> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All the digits, and how many of them sit after the point once the exponent is applied.
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    let point = i64::try_from(frac.len()).ok()?.checked_sub(exp)?;
    let significant = digits.trim_end_matches('0');
    let trailing_zeros = i64::try_from(digits.len() - significant.len()).ok()?;
    if point > trailing_zeros || negative {
        return None;
    }
    // value = digits × 10^(-point); point ≤ trailing zeros, so it is an integer.
    let kept = i64::try_from(digits.len()).ok()? - point;
    if kept > 20 {
        return None;
    }
    let kept = usize::try_from(kept).ok()?;
    let mut n: u64 = 0;
    for i in 0..kept {
        let d = digits.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        n = n.checked_mul(10)?.checked_add(d)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        memory: 1 << 30,
        memory_what: "test",
        unknown_member: 1 << 20,
        unknown_total: 1 << 20,
        max_policies: 10,
        max_failure_details: 10,
    };

    fn read(text: &str) -> Result<Parsed, ReportError> {
        parse(serde_json::Deserializer::from_str(text), &CAPS)
    }

    #[test]
    fn duplicates_are_reported_with_paths_and_last_wins() {
        let p =
            read(r#"{"a":1,"b":{"c":[{"d":1,"d":2}]},"a":3}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.value["a"], 3);
        assert_eq!(p.value["b"]["c"][0]["d"], 2);
        assert_eq!(p.dups, vec!["b.c[0].d".to_owned(), "a".to_owned()]);
    }

    #[test]
    fn recursion_limit_still_applies() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let err = read(&deep).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("recursion limit"), "{err}");
    }

    #[test]
    fn trailing_data_and_bad_utf8_are_errors() {
        assert!(read("{} x").is_err());
        assert!(
            parse(
                serde_json::Deserializer::from_slice(b"{\"a\":\"\xff\"}"),
                &CAPS
            )
            .is_err()
        );
        assert!(read("{\"a\":1e400}").is_err());
    }

    #[test]
    fn cost_estimate_matches_what_is_charged() {
        let text = r#"{"x":[1,"ab",{"k":null}],"report-id":"r"}"#;
        let p = read(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.cost, cost(&p.value));
    }

    #[test]
    fn exact_integers() {
        for (text, want) in [
            ("12", Some(12)),
            ("12.000", Some(12)),
            ("-0", Some(0)),
            ("0.0e5", Some(0)),
            ("1e3", Some(1000)),
            ("1500e-2", Some(15)),
            ("1.5e1", Some(15)),
            ("18446744073709551615.0", Some(u64::MAX)),
            ("18446744073709551616.0", None),
            ("1.0000000000000000001", None),
            ("1.5", None),
            ("-1", None),
            ("1e20", None),
            ("1e-1", None),
            ("1e99999999999999999999", None),
        ] {
            assert_eq!(exact_integer(text), want, "{text}");
        }
    }
}
