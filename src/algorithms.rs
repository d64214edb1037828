//! The signature algorithms jwtgate accepts.
//!
//! Clerk signs session tokens with RS256; RS384 and RS512 are accepted for
//! JWKS keys that allow them. Everything else (`none`, `HS*`, unknown names)
//! is refused before any key is looked up.

use openssl::hash::MessageDigest;

/// An accepted JWS `alg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
}

impl Algorithm {
    /// Parses a JWS `alg` name; exact and case-sensitive, as RFC 7518 names are.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::RS256),
            "RS384" => Some(Algorithm::RS384),
            "RS512" => Some(Algorithm::RS512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
        }
    }

    /// The hash that the PKCS#1 v1.5 signature is computed over.
    pub fn digest(self) -> MessageDigest {
        match self {
            Algorithm::RS256 => MessageDigest::sha256(),
            Algorithm::RS384 => MessageDigest::sha384(),
            Algorithm::RS512 => MessageDigest::sha512(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_rsa_names_parse() {
        for name in ["RS256", "RS384", "RS512"] {
            assert_eq!(Algorithm::from_name(name).unwrap().name(), name);
        }
        for name in [
            "none", "None", "HS256", "rs256", "RS256 ", "ES256", "PS256", "",
        ] {
            assert_eq!(Algorithm::from_name(name), None, "{name:?} must not parse");
        }
    }
}
