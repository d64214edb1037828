//! Small JSON helpers shared by the header and claims parsers.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::errors::TokenError;

/// Deserializes a struct from bytes that must hold a JSON *object*.
///
/// serde's derived structs also accept a JSON array (fields by position), so
/// the first byte is checked. Duplicate known keys are an error (derive
/// refuses them), invalid UTF-8 and nesting deeper than 128 too.
pub fn parse_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, TokenError> {
    let first = json.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(TokenError::Malformed);
    }
    serde_json::from_slice(json).map_err(|_| TokenError::Malformed)
}

/// Keeps an explicit JSON `null` as `Some(Value::Null)`, so that "present
/// but null" is not mistaken for "absent". Use with `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}
