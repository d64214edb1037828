//! A rule value as written in the query string, read without allocating.
//!
//! Values are checked once, when the query is parsed: every byte is an
//! allowed one (ASCII letters and digits, `_`, `-`, `.`, `:`) either as is
//! or as a `%XX` escape. After that the decoded bytes are produced on the fly
//! by [`Bytes`], so a value never needs a buffer of its own: `role=org:admin`
//! and `role=org%3Aadmin` are the same value.

use std::fmt;

/// Longest value, decoded, in bytes.
pub const MAX_VALUE_BYTES: usize = 128;

/// A checked rule value (see the module docs): the raw text from the query,
/// and whether it has `%` escapes (when not, the raw text is the value).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Value<'q> {
    raw: &'q str,
    escaped: bool,
}

/// Why a raw value is not a [`Value`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueProblem {
    Empty,
    TooLong,
    /// A byte outside the allowed set, or a bad `%` escape.
    BadCharacter,
}

/// Bytes a value may hold (after decoding).
pub fn is_allowed(b: u8) -> bool {
    ALLOWED[usize::from(b)]
}

const ALLOWED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b':');
        b += 1;
    }
    table
};

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<'q> Value<'q> {
    /// Checks a raw value from the query.
    pub fn new(raw: &'q str) -> Result<Value<'q>, ValueProblem> {
        let bytes = raw.as_bytes();
        if bytes.iter().all(|b| is_allowed(*b)) {
            return match bytes.len() {
                0 => Err(ValueProblem::Empty),
                n if n > MAX_VALUE_BYTES => Err(ValueProblem::TooLong),
                _ => Ok(Value::plain_text(raw)),
            };
        }
        let (mut i, mut decoded) = (0, 0usize);
        while i < bytes.len() {
            let b = if bytes[i] == b'%' {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(ValueProblem::BadCharacter);
                };
                i += 3;
                hi << 4 | lo
            } else {
                i += 1;
                bytes[i - 1]
            };
            if !is_allowed(b) {
                return Err(ValueProblem::BadCharacter);
            }
            decoded += 1;
        }
        match decoded {
            0 => Err(ValueProblem::Empty),
            n if n > MAX_VALUE_BYTES => Err(ValueProblem::TooLong),
            _ => Ok(Value { raw, escaped: true }),
        }
    }

    fn plain_text(raw: &'q str) -> Value<'q> {
        Value {
            raw,
            escaped: false,
        }
    }

    /// A part of this value's raw text (cut at a decoded byte boundary).
    fn part(self, raw: &'q str) -> Value<'q> {
        Value {
            raw,
            escaped: self.escaped && raw.contains('%'),
        }
    }

    /// The text as written in the query (possibly with `%XX` escapes).
    pub fn raw(self) -> &'q str {
        self.raw
    }

    /// The decoded bytes.
    pub fn bytes(self) -> Bytes<'q> {
        Bytes {
            raw: self.raw.as_bytes(),
            pos: 0,
        }
    }

    pub fn is_empty(self) -> bool {
        self.raw.is_empty()
    }

    /// The value when it has no `%` escape (the usual case): then the raw
    /// text is the decoded value and plain string operations apply.
    fn plain(self) -> Option<&'q str> {
        (!self.escaped).then_some(self.raw)
    }

    /// Whether the decoded value is exactly `s`.
    pub fn eq_str(self, s: &str) -> bool {
        match self.plain() {
            Some(plain) => plain == s,
            None => self.bytes().eq(s.bytes()),
        }
    }

    /// The value after a decoded `prefix`, if it starts with one.
    pub fn strip_prefix(self, prefix: &[u8]) -> Option<Value<'q>> {
        if let Some(plain) = self.plain() {
            return plain
                .as_bytes()
                .strip_prefix(prefix)
                .map(|_| Value::plain_text(&plain[prefix.len()..]));
        }
        let mut bytes = self.bytes();
        for want in prefix {
            if bytes.next() != Some(*want) {
                return None;
            }
        }
        Some(self.part(&self.raw[bytes.pos..]))
    }

    /// Splits at the first decoded `sep` (which belongs to neither part).
    pub fn split_once(self, sep: u8) -> Option<(Value<'q>, Value<'q>)> {
        if let Some(plain) = self.plain() {
            let at = plain.bytes().position(|b| b == sep)?;
            return Some((
                Value::plain_text(&plain[..at]),
                Value::plain_text(&plain[at + 1..]),
            ));
        }
        let mut bytes = self.bytes();
        loop {
            let start = bytes.pos;
            if bytes.next()? == sep {
                return Some((
                    self.part(&self.raw[..start]),
                    self.part(&self.raw[bytes.pos..]),
                ));
            }
        }
    }

    /// Whether the decoded value contains `b`.
    pub fn contains(self, b: u8) -> bool {
        match self.plain() {
            Some(plain) => plain.as_bytes().contains(&b),
            None => self.bytes().any(|x| x == b),
        }
    }
}

/// The decoded bytes of a [`Value`].
#[derive(Clone)]
pub struct Bytes<'q> {
    raw: &'q [u8],
    pos: usize,
}

impl Iterator for Bytes<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.raw.get(self.pos)?;
        if b == b'%' {
            // Checked in `Value::new`: two hex digits follow.
            let digit = |at: usize| self.raw.get(at).copied().and_then(hex).unwrap_or(0);
            let decoded = digit(self.pos + 1) << 4 | digit(self.pos + 2);
            self.pos += 3;
            Some(decoded)
        } else {
            self.pos += 1;
            Some(b)
        }
    }
}

/// The decoded value (all ASCII).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.bytes() {
            fmt::Write::write_char(f, char::from(b))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_bad_bytes_are_refused() {
        let v = Value::new("org%3Aadmin").unwrap();
        assert!(v.eq_str("org:admin"));
        assert_eq!(v.to_string(), "org:admin");
        assert!(Value::new("org%3aadmin").unwrap().eq_str("org:admin"));
        for bad in [
            "a b", "a+b", "a%20b", "a%2", "a%zz", "%", "a/b", "é", "a%00", "a,b", "a&b",
        ] {
            assert_eq!(Value::new(bad), Err(ValueProblem::BadCharacter), "{bad:?}");
        }
        assert_eq!(Value::new(""), Err(ValueProblem::Empty));
        assert!(Value::new(&"a".repeat(MAX_VALUE_BYTES)).is_ok());
        assert_eq!(
            Value::new(&"a".repeat(MAX_VALUE_BYTES + 1)),
            Err(ValueProblem::TooLong)
        );
        // The limit counts decoded bytes.
        assert!(Value::new(&"%61".repeat(MAX_VALUE_BYTES)).is_ok());
    }

    #[test]
    fn prefix_and_split_work_on_decoded_bytes() {
        let v = Value::new("org%3Aorg:billing%3amanage").unwrap();
        let rest = v.strip_prefix(b"org:").unwrap();
        assert!(rest.eq_str("org:billing:manage"));
        let rest = rest.strip_prefix(b"org:").unwrap();
        assert!(rest.eq_str("billing:manage"));
        assert_eq!(rest.strip_prefix(b"org:"), None);
        let (a, b) = rest.split_once(b':').unwrap();
        assert!(a.eq_str("billing") && b.eq_str("manage"));
        assert!(b.split_once(b':').is_none());
        assert!(rest.contains(b':') && !b.contains(b':'));
    }
}
