//! JSON as the token parsers read it, with bounded nesting.
//!
//! A token's header and claims are attacker-controlled JSON parsed on a
//! coroutine with a small stack, so nothing here may recurse with the input:
//! [`Json`] keeps scalars and one level of arrays or objects (all that any
//! claim jwtgate reads needs: `o`, `act`, `org_permissions`, `crit`) and
//! skips anything deeper as [`Json::Skipped`], which serde_json does without
//! recursion. A duplicate key is an error at every level, so a token cannot
//! say two things at once.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Deserializer};

use crate::token::errors::TokenError;

/// A JSON value, nested at most one level.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
    /// An array or object nested deeper than jwtgate reads.
    Skipped,
}

impl Json {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A member of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        Levels(1).deserialize(d)
    }
}

/// Deserializes a [`Json`] that may still open this many levels.
struct Levels(u8);

impl<'de> DeserializeSeed<'de> for Levels {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Levels {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v as f64))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v as f64))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        if self.0 == 0 {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Json::Skipped);
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Levels(self.0 - 1))? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        if self.0 == 0 {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Json::Skipped);
        }
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(Levels(self.0 - 1))?;
            members.push((key, value));
        }
        Ok(Json::Object(members))
    }
}

/// Deserializes a struct from bytes that must hold a JSON *object*.
/// (Invalid UTF-8 is an error where jwtgate reads a value; inside a field
/// it skips, serde_json does not check it, as JSON.parse does not.)
///
/// serde's derived structs also accept a JSON array (fields by position), so
/// the first byte is checked. Duplicate known keys are an error (derive
/// refuses them), and so is invalid UTF-8.
pub fn parse_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, TokenError> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(TokenError::Malformed);
    }
    serde_json::from_slice(json).map_err(|_| TokenError::Malformed)
}

/// Keeps an explicit JSON `null` as `Some(Json::Null)`, so that "present
/// but null" is not mistaken for "absent". Use with `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Json, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn one_level_is_kept_and_deeper_is_skipped() {
        assert_eq!(
            parse(r#"{"a":"x","b":[1]}"#).unwrap(),
            Json::Object(vec![
                ("a".into(), Json::String("x".into())),
                ("b".into(), Json::Skipped),
            ])
        );
        assert_eq!(
            parse(r#"["p",2,null]"#).unwrap(),
            Json::Array(vec![
                Json::String("p".into()),
                Json::Number(2.0),
                Json::Null,
            ])
        );
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        let deep = format!("[{}1{}]", "[".repeat(100_000), "]".repeat(100_000));
        // A small stack, like a coroutine's: recursion would overflow it.
        let handle = std::thread::Builder::new()
            .stack_size(32 * 1024)
            .spawn(move || parse(&deep).map(|j| j == Json::Array(vec![Json::Skipped])))
            .unwrap();
        assert!(handle.join().unwrap().unwrap());
    }

    #[test]
    fn duplicate_keys_in_objects_are_errors() {
        assert!(parse(r#"{"id":"a","id":"b"}"#).is_err());
    }
}
