//! JSON reading into a `serde_json::Value` that notices duplicate member names.
//!
//! I-JSON (RFC 7493 §2.3), which RFC 8460 §4 requires, forbids duplicate names; serde_json
//! silently keeps the last one. We keep the last one too (as JavaScript does) but report the
//! path of each duplicate. serde_json's own recursion limit (128 levels) still applies.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

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

/// Parses a whole JSON document. Returns the value and the paths of duplicate member names.
pub(crate) fn parse(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut dups = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed {
        at: Seg::Root,
        dups: &mut dups,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, dups))
}

struct ValueSeed<'a, 'd> {
    at: Seg<'a>,
    dups: &'d mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(ValueSeed {
            at: Seg::Index(&self.at, out.len()),
            dups: &mut *self.dups,
        })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(ValueSeed {
                at: Seg::Key(&self.at, &key),
                dups: &mut *self.dups,
            })?;
            if out.insert(key.clone(), value).is_some() {
                self.dups.push(Seg::Key(&self.at, &key).to_string());
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_reported_with_paths_and_last_wins() {
        let (v, dups) =
            parse(br#"{"a":1,"b":{"c":[{"d":1,"d":2}]},"a":3}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["a"], 3);
        assert_eq!(v["b"]["c"][0]["d"], 2);
        assert_eq!(dups, vec!["b.c[0].d".to_owned(), "a".to_owned()]);
    }

    #[test]
    fn recursion_limit_still_applies() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        let err = parse(deep.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("recursion limit"), "{err}");
    }

    #[test]
    fn trailing_data_and_bad_utf8_are_errors() {
        assert!(parse(b"{} x").is_err());
        assert!(parse(b"{\"a\":\"\xff\"}").is_err());
        assert!(parse(b"{\"a\":1e400}").is_err());
    }
}
