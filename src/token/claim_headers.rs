//! Claims as extra response headers, chosen per issuer in the config:
//! `headers = { "X-Email" = "email", "X-Groups" = "groups", "X-Team" = "org.team" }`.
//!
//! A path is a claim name, or dotted names for a claim nested in objects
//! (`"org.team"`); a TOML array of names (`["https://example.com/roles"]`)
//! takes each element as one name, for claim names that hold dots.
//!
//! The value becomes the header value:
//! - a string as it is, a number as JSON writes it, `true`/`false`;
//! - an array of those, joined with `,`;
//! - absent, `null`, `""` or `[]`: the header is sent empty.
//!
//! The rules are those of the identity headers ([`super::identity`]), and
//! strict: a value that could break a header (a control character, edge
//! whitespace, over [`MAX_HEADER_VALUE`] bytes joined) or an array element
//! that is empty or holds a `,` (it would read as two elements) refuses the
//! token (`token-unsafe-claim-value`); an object, or an array holding
//! anything but strings, numbers and booleans, refuses it as the wrong type
//! (`token-invalid-claim`); a mapped claim given twice refuses it as
//! malformed (`token-invalid`), as for the claims jwtgate reads itself.
//! Never a header left out or cut short: the upstream application must not
//! mistake "too many groups" for "no groups".
//!
//! Header names are checked when the config loads ([`ClaimHeaders::new`]):
//! letters, digits and `-`; not one of jwtgate's own headers, not one a
//! proxy treats specially (hop-by-hop, `X-Accel-*`, `X-Forwarded-*`, ...).
//!
//! The payload is walked once, on the verification path only (a cache hit
//! reuses the rendered headers): objects are descended only where a path
//! leads, everything else is skipped without recursion, so nesting depth
//! costs no stack beyond [`MAX_PATH_SEGMENTS`] levels.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::token::errors::TokenError;
use crate::token::identity::{is_safe_header_value, MAX_HEADER_BLOCK, MAX_HEADER_VALUE};

/// Most headers one issuer maps.
pub const MAX_MAPPED_HEADERS: usize = 32;
/// Most names in one path (`a.b.c` is three).
pub const MAX_PATH_SEGMENTS: usize = 8;
/// Longest header name, and longest name in a path, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
const MAX_SEGMENT_BYTES: usize = 256;

/// Header names jwtgate writes itself, or that HTTP and proxies give a
/// meaning of their own (lowercase).
const RESERVED: [&str; 27] = [
    // jwtgate's identity headers and answers
    "x-user-id",
    "x-session-id",
    "x-org-id",
    "x-org-role",
    "x-org-slug",
    "x-org-permissions",
    "x-actor-id",
    "x-issuer",
    "www-authenticate",
    "location",
    "set-cookie",
    "cache-control",
    "retry-after",
    "content-length",
    "content-type",
    // hop-by-hop (RFC 9110 7.6.1) and the like
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // what the request itself carries
    "host",
    "authorization",
    "cookie",
    "date",
    "server",
];

/// Name prefixes reserved the same way: jwtgate's own, nginx's `X-Accel-*`
/// (which nginx acts on), what proxies set about the original request, and
/// `Proxy-*`.
const RESERVED_PREFIXES: [&str; 6] = [
    "x-jwtgate-",
    "x-accel-",
    "x-forwarded-",
    "x-original-",
    "x-real-",
    "proxy-",
];

/// How a path is written in the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSpec {
    /// `"a.b"`: split on dots.
    Dotted(String),
    /// `["a.b", "c"]`: one claim name per element.
    Names(Vec<String>),
}

/// One mapped header.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapping {
    name: String,
    path: Vec<String>,
}

/// The claims-to-headers mapping of one issuer, checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimHeaders {
    mappings: Vec<Mapping>,
}

impl ClaimHeaders {
    /// Checks a mapping from the config. An error names the header it is
    /// about: `("X-Email", "why")`.
    pub fn new(
        entries: impl IntoIterator<Item = (String, PathSpec)>,
    ) -> Result<ClaimHeaders, (String, String)> {
        let mut mappings: Vec<Mapping> = Vec::new();
        for (name, spec) in entries {
            let fail = |why: String| Err((name.clone(), why));
            if mappings.len() == MAX_MAPPED_HEADERS {
                return fail(format!("at most {MAX_MAPPED_HEADERS} headers per issuer"));
            }
            if let Err(why) = check_header_name(&name) {
                return fail(why);
            }
            if mappings.iter().any(|m| m.name.eq_ignore_ascii_case(&name)) {
                return fail("the same header name twice (names are case-insensitive)".into());
            }
            let path = match spec {
                PathSpec::Dotted(text) => text.split('.').map(str::to_string).collect(),
                PathSpec::Names(names) => names,
            };
            if path.is_empty() || path.len() > MAX_PATH_SEGMENTS {
                return fail(format!("a claim path has 1 to {MAX_PATH_SEGMENTS} names"));
            }
            if path
                .iter()
                .any(|s| s.is_empty() || s.len() > MAX_SEGMENT_BYTES)
            {
                return fail(format!(
                    "{:?}: every claim name in a path is 1 to {MAX_SEGMENT_BYTES} bytes (a \
                     claim whose name holds dots: write the path as an array, \
                     [\"https://example.com/roles\"])",
                    path.join(".")
                ));
            }
            if let Some(other) = mappings
                .iter()
                .find(|m| m.path.starts_with(&path) != path.starts_with(&m.path))
            {
                return fail(format!(
                    "claim {:?} holds, or is held by, the claim of {} ({:?}): map one or the other",
                    path.join("."),
                    other.name,
                    other.path.join(".")
                ));
            }
            mappings.push(Mapping { name, path });
        }
        Ok(ClaimHeaders { mappings })
    }

    pub fn is_empty(&self) -> bool {
        self.mappings.is_empty()
    }

    /// The header names, in the order they are rendered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.mappings.iter().map(|m| m.name.as_str())
    }

    /// The header values a payload gives, in the order of [`names`]
    /// (`None`: sent empty), checked as the module doc says.
    ///
    /// [`names`]: ClaimHeaders::names
    pub fn values(&self, payload: &[u8]) -> Result<Vec<Option<String>>, TokenError> {
        if self.mappings.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = vec![Capture::Missing; self.mappings.len()];
        let walk = Walk {
            headers: self,
            active: (1u64 << self.mappings.len()) - 1,
            depth: 0,
            found: &mut found,
        };
        let mut de = serde_json::Deserializer::from_slice(payload);
        walk.deserialize(&mut de)
            .map_err(|_| TokenError::Malformed)?;
        found.into_iter().map(Capture::into_value).collect()
    }

    /// Appends a `\r\n<name>: <value>` line for each of `names` (every
    /// name mapped by any issuer): this mapping's value for a name it maps,
    /// empty otherwise. Fails as [`values`] does, or when the lines exceed
    /// [`MAX_HEADER_BLOCK`].
    ///
    /// [`values`]: ClaimHeaders::values
    pub fn render(
        &self,
        payload: &[u8],
        names: &[String],
        out: &mut String,
    ) -> Result<(), TokenError> {
        let values = self.values(payload)?;
        let start = out.len();
        for name in names {
            let value = self
                .mappings
                .iter()
                .position(|m| m.name.eq_ignore_ascii_case(name))
                .and_then(|i| values[i].as_deref())
                .unwrap_or("");
            out.push_str("\r\n");
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
        }
        if out.len() - start > MAX_HEADER_BLOCK {
            return Err(TokenError::UnsafeHeaderValue);
        }
        Ok(())
    }
}

/// A header name a mapping may use: 1 to 64 letters, digits and `-`,
/// starting with a letter, not reserved.
pub fn check_header_name(name: &str) -> Result<(), String> {
    let shaped = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !shaped {
        return Err(format!(
            "{name:?} is not a header name (1 to {MAX_NAME_BYTES} letters, digits and '-', \
             starting with a letter)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Err(format!(
            "{name} is reserved: jwtgate sets it itself, or HTTP or the proxy gives it a \
             meaning (reserved: X-User-Id and the other identity headers, X-Issuer, \
             X-Jwtgate-*, X-Accel-*, X-Forwarded-*, X-Original-*, X-Real-*, Proxy-*, \
             hop-by-hop headers, Host, Authorization, Cookie, Set-Cookie, Location, ...)"
        ));
    }
    Ok(())
}

/// What the walk found for one mapping.
#[derive(Clone, Debug, PartialEq)]
enum Capture {
    Missing,
    Text(String),
    List(Vec<String>),
    /// An object, or an array holding something else than scalars.
    WrongType,
    /// The claim appears twice.
    Twice,
}

impl Capture {
    fn into_value(self) -> Result<Option<String>, TokenError> {
        match self {
            Capture::Missing => Ok(None),
            Capture::Text(text) if text.is_empty() => Ok(None),
            Capture::Text(text) if is_safe_header_value(&text) => Ok(Some(text)),
            Capture::Text(_) => Err(TokenError::UnsafeHeaderValue),
            Capture::List(items) if items.is_empty() => Ok(None),
            Capture::List(items) => {
                let safe = |item: &String| {
                    !item.is_empty() && !item.contains(',') && is_safe_header_value(item)
                };
                if !items.iter().all(safe) {
                    return Err(TokenError::UnsafeHeaderValue);
                }
                let joined = items.join(",");
                if joined.len() > MAX_HEADER_VALUE {
                    return Err(TokenError::UnsafeHeaderValue);
                }
                Ok(Some(joined))
            }
            Capture::WrongType => Err(TokenError::InvalidClaim),
            Capture::Twice => Err(TokenError::Malformed),
        }
    }
}

/// Descends the objects the paths lead into, `depth` names deep, for the
/// mappings in the bit set `active`.
struct Walk<'a, 'f> {
    headers: &'a ClaimHeaders,
    active: u64,
    depth: usize,
    found: &'f mut [Capture],
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    // Not an object: nothing below it is there.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mappings = &self.headers.mappings;
        while let Some(key) = map.next_key::<String>()? {
            let mut here = 0u64;
            let mut leaves = 0u64;
            for (i, m) in mappings.iter().enumerate() {
                if self.active & (1 << i) != 0 && m.path[self.depth] == key {
                    here |= 1 << i;
                    if m.path.len() == self.depth + 1 {
                        leaves |= 1 << i;
                    }
                }
            }
            if here == 0 {
                map.next_value::<IgnoredAny>()?;
            } else if leaves != 0 {
                // No path holds another (checked at load), so all of
                // `here` end at this name.
                let capture = map.next_value_seed(Leaf)?;
                for (i, slot) in self.found.iter_mut().enumerate() {
                    if leaves & (1 << i) != 0 {
                        *slot = match slot {
                            Capture::Missing => capture.clone(),
                            _ => Capture::Twice,
                        };
                    }
                }
            } else {
                map.next_value_seed(Walk {
                    headers: self.headers,
                    active: here,
                    depth: self.depth + 1,
                    found: &mut *self.found,
                })?;
            }
        }
        Ok(())
    }
}

/// Captures a mapped claim's value.
struct Leaf;

impl<'de> DeserializeSeed<'de> for Leaf {
    type Value = Capture;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Capture, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Leaf {
    type Value = Capture;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Capture, E> {
        Ok(Capture::Text(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Capture, E> {
        Ok(Capture::Text(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Capture, E> {
        Ok(Capture::Text(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Capture, E> {
        Ok(Capture::Text(number_text(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Capture, E> {
        Ok(Capture::Text(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Capture, E> {
        Ok(Capture::Text(v))
    }
    fn visit_unit<E>(self) -> Result<Capture, E> {
        Ok(Capture::Missing)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capture, A::Error> {
        let mut items = Vec::new();
        let mut wrong = false;
        while let Some(item) = seq.next_element_seed(Element)? {
            match item {
                Some(text) if !wrong => items.push(text),
                _ => wrong = true,
            }
        }
        Ok(if wrong {
            Capture::WrongType
        } else {
            Capture::List(items)
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Capture, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Capture::WrongType)
    }
}

/// One array element: a scalar's text, or `None` for anything else.
struct Element;

impl<'de> DeserializeSeed<'de> for Element {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Element {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Option<String>, E> {
        Ok(Some(number_text(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Option<String>, E> {
        Ok(Some(v))
    }
    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// A JSON number as JSON writes it (`1.5`, `1e300`).
fn number_text(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(String::new, |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(entries: &[(&str, &str)]) -> ClaimHeaders {
        ClaimHeaders::new(
            entries
                .iter()
                .map(|(n, p)| (n.to_string(), PathSpec::Dotted(p.to_string()))),
        )
        .unwrap()
    }

    fn values(
        h: &ClaimHeaders,
        payload: serde_json::Value,
    ) -> Result<Vec<Option<String>>, TokenError> {
        h.values(payload.to_string().as_bytes())
    }

    #[test]
    fn scalars_arrays_and_nested_paths() {
        let h = mapping(&[
            ("X-Email", "email"),
            ("X-Groups", "groups"),
            ("X-Team", "org.team"),
            ("X-Deep", "a.b.c.d"),
            ("X-Verified", "email_verified"),
            ("X-Level", "level"),
        ]);
        let got = values(
            &h,
            json!({
                "sub": "u", "email": "a@example.com", "groups": ["admins", "dev-ops", 7, true],
                "org": {"team": "blue", "other": {"x": [1, {"y": 2}]}},
                "a": {"b": {"c": {"d": 1.5}}}, "email_verified": false, "level": 3,
                "ignored": [[[[{"deep": 1}]]]]
            }),
        )
        .unwrap();
        assert_eq!(
            got,
            [
                Some("a@example.com".into()),
                Some("admins,dev-ops,7,true".into()),
                Some("blue".into()),
                Some("1.5".into()),
                Some("false".into()),
                Some("3".into())
            ]
        );
        // Absent, null, empty: sent empty.
        let got = values(
            &h,
            json!({"email": null, "groups": [], "org": "not an object", "a": {"b": []}, "level": ""}),
        )
        .unwrap();
        assert!(got.iter().all(Option::is_none), "{got:?}");
    }

    #[test]
    fn names_with_dots_are_written_as_arrays() {
        let h = ClaimHeaders::new([(
            "X-Roles".to_string(),
            PathSpec::Names(vec!["https://example.com/roles".into()]),
        )])
        .unwrap();
        let got = values(&h, json!({"https://example.com/roles": ["a", "b"]})).unwrap();
        assert_eq!(got, [Some("a,b".into())]);
        // The dotted form looks for nested objects instead.
        let dotted = mapping(&[("X-Roles", "https://example.com/roles")]);
        assert_eq!(
            values(&dotted, json!({"https://example.com/roles": ["a"]})).unwrap(),
            [None]
        );
    }

    #[test]
    fn hostile_values_refuse_the_token() {
        let h = mapping(&[("X-Email", "email"), ("X-Groups", "groups")]);
        let unsafe_value = Err(TokenError::UnsafeHeaderValue);
        for email in [
            "a@x\r\nX-User-Id: admin",
            "a@x\n",
            "a\0b",
            " a@x",
            "a@x\t",
            "a\u{7f}",
            "a\u{85}b",
        ] {
            assert_eq!(
                values(&h, json!({ "email": email })),
                unsafe_value,
                "{email:?}"
            );
        }
        assert_eq!(
            values(&h, json!({"email": "x".repeat(MAX_HEADER_VALUE + 1)})),
            unsafe_value
        );
        assert!(values(&h, json!({"email": "x".repeat(MAX_HEADER_VALUE)})).is_ok());
        for groups in [
            json!(["a", "b\r\nc"]),
            json!(["a,b"]),
            json!(["a", ""]),
            json!([" a"]),
            json!(vec!["g"; 600]),
        ] {
            assert_eq!(
                values(&h, json!({ "groups": groups })),
                unsafe_value,
                "{groups}"
            );
        }
        for wrong in [
            json!({"a": 1}),
            json!([["a"]]),
            json!(["a", null]),
            json!(["a", {"b": 1}]),
        ] {
            assert_eq!(
                values(&h, json!({ "groups": wrong })),
                Err(TokenError::InvalidClaim),
                "{wrong}"
            );
        }
        // Twice: the JSON parsers of the issuer and of the app may disagree
        // on which one counts.
        assert_eq!(
            h.values(br#"{"email":"a@x","email":"admin@x"}"#),
            Err(TokenError::Malformed)
        );
        let nested = mapping(&[("X-Team", "org.team")]);
        assert_eq!(
            nested.values(br#"{"org":{"team":"a"},"org":{"team":"b"}}"#),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn rendering_names_every_header_of_every_issuer() {
        let h = mapping(&[("X-Email", "email"), ("X-Groups", "groups")]);
        let names: Vec<String> = ["X-Email", "X-Groups", "X-Tenant"].map(String::from).into();
        let mut out = String::from("X-User-Id: u");
        h.render(br#"{"email":"a@x","groups":["g1","g2"]}"#, &names, &mut out)
            .unwrap();
        assert_eq!(
            out,
            "X-User-Id: u\r\nX-Email: a@x\r\nX-Groups: g1,g2\r\nX-Tenant: "
        );
        // Values are bounded one by one and all together.
        let many: Vec<(String, PathSpec)> = (0..8)
            .map(|i| (format!("X-C{i}"), PathSpec::Dotted(format!("c{i}"))))
            .collect();
        let h = ClaimHeaders::new(many).unwrap();
        let names: Vec<String> = h.names().map(String::from).collect();
        let payload: serde_json::Map<String, serde_json::Value> = (0..8)
            .map(|i| (format!("c{i}"), json!("v".repeat(500))))
            .collect();
        let payload = serde_json::Value::Object(payload).to_string();
        assert_eq!(
            h.render(payload.as_bytes(), &names, &mut String::new()),
            Err(TokenError::UnsafeHeaderValue)
        );
    }

    #[test]
    fn header_names_are_checked() {
        for bad in [
            "",
            "X Email",
            "X-Email:",
            "X_Email",
            "1X",
            "X-Émail",
            "X-User-Id",
            "x-org-ROLE",
            "X-Issuer",
            "Set-Cookie",
            "Connection",
            "Transfer-Encoding",
            "X-Jwtgate-Location",
            "X-Accel-Redirect",
            "X-Forwarded-For",
            "Proxy-Authorization",
            "Host",
        ] {
            assert!(check_header_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_header_name(&"X".repeat(MAX_NAME_BYTES + 1)).is_err());
        for good in ["X-Email", "X-Groups", "Remote-User", "x-tenant-2"] {
            assert_eq!(check_header_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn mappings_are_checked() {
        let new = |entries: &[(&str, &str)]| {
            ClaimHeaders::new(
                entries
                    .iter()
                    .map(|(n, p)| (n.to_string(), PathSpec::Dotted(p.to_string()))),
            )
        };
        let err = |entries: &[(&str, &str)]| new(entries).unwrap_err();
        assert_eq!(err(&[("X-A", "a"), ("x-a", "b")]).0, "x-a");
        assert!(err(&[("X-A", "a..b")]).1.contains("1 to 256 bytes"));
        assert!(err(&[("X-A", "")]).1.contains("1 to 256 bytes"));
        assert!(err(&[("X-A", "a.b.c.d.e.f.g.h.i")])
            .1
            .contains("1 to 8 names"));
        let nested = err(&[("X-A", "org"), ("X-B", "org.team")]);
        assert_eq!(nested.0, "X-B");
        assert!(nested.1.contains("map one or the other"), "{nested:?}");
        assert!(new(&[("X-B", "org.team"), ("X-A", "org")]).is_err());
        // The same claim under two names is fine; so are siblings.
        assert!(new(&[
            ("X-A", "email"),
            ("X-B", "email"),
            ("X-C", "org.a"),
            ("X-D", "org.b")
        ])
        .is_ok());
        let too_many: Vec<(String, PathSpec)> = (0..=MAX_MAPPED_HEADERS)
            .map(|i| (format!("X-C{i}"), PathSpec::Dotted(format!("c{i}"))))
            .collect();
        assert!(ClaimHeaders::new(too_many).is_err());
    }
}
